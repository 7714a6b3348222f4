//! Crosstalk between the channels of a call recording: each party's microphone also picks up
//! the other party, faintly (headset bleed, speaker phones, a mixer's leakage). Whisper
//! transcribes that faint copy as readily as the real speech, so without this step a stereo
//! call's text appears twice, once per channel.
//!
//! A moment of a channel is its own speech when it is active (clearly above the channel's noise
//! floor) and no other channel is much louder at the same moment ([`BLEED_MARGIN_DB`]): bleed arrives 20–40 dB down, while two parties talking over
//! each other are within a few dB of each other, so overlapping speech is kept on both channels.
//! [`own_speech`] cuts a channel's speech regions down to its own stretches, bridging short gaps
//! and padding like the VAD does, and drops what is left too short to hold a word. A channel
//! that only copies another ([`duplicate_of`]: mono calls stored as dual-mono stereo) is not
//! transcribed at all.

use crate::mel::SAMPLE_RATE;
use crate::vad::SpeechRegion;

/// How much louder another channel must be for a moment to count as bleed from it.
pub const BLEED_MARGIN_DB: f32 = 15.0;

/// A frame is active when it is this far above its channel's noise floor (the 10th percentile
/// of its frame energies): pauses count as nobody's speech, not as the quiet channel's.
const ACTIVE_DB: f32 = 10.0;

/// Energy frame: 20 ms.
const FRAME: usize = SAMPLE_RATE / 50;
/// Own-speech gaps shorter than this are bridged (a word's stop consonant, a breath).
const BRIDGE_FRAMES: usize = 20;
/// Padding around own speech, as the VAD pads its regions.
const PAD_FRAMES: usize = 10;
/// Own speech shorter than this is dropped.
const MIN_FRAMES: usize = 12;

/// Frame energies in dB (RMS, full scale 0 dB).
fn frame_db(samples: &[f32], frames: usize) -> Vec<f32> {
    (0..frames)
        .map(|f| {
            let frame = samples.get(f * FRAME..((f + 1) * FRAME).min(samples.len()));
            let power = frame.map_or(0.0, |frame| {
                frame.iter().map(|&s| s * s).sum::<f32>() / frame.len().max(1) as f32
            });
            10.0 * (power + 1e-12).log10()
        })
        .collect()
}

/// `regions` of channel `channel` without the stretches where another channel is louder by
/// more than [`BLEED_MARGIN_DB`]. A single channel is returned as it is.
pub fn own_speech(
    channels: &[Vec<f32>],
    channel: usize,
    regions: &[SpeechRegion],
) -> Vec<SpeechRegion> {
    if channels.len() < 2 || regions.is_empty() {
        return regions.to_vec();
    }
    let frames = channels[channel].len().div_ceil(FRAME);
    if frames == 0 {
        return Vec::new();
    }
    let energies: Vec<Vec<f32>> = channels.iter().map(|c| frame_db(c, frames)).collect();
    let mut sorted = energies[channel].clone();
    sorted.sort_by(f32::total_cmp);
    let active = sorted[sorted.len() / 10] + ACTIVE_DB;
    let mut own: Vec<bool> = (0..frames)
        .map(|f| {
            if energies[channel][f] < active {
                return false;
            }
            let loudest_other = energies
                .iter()
                .enumerate()
                .filter(|&(c, _)| c != channel)
                .map(|(_, e)| e[f])
                .fold(f32::NEG_INFINITY, f32::max);
            energies[channel][f] >= loudest_other - BLEED_MARGIN_DB
        })
        .collect();
    bridge_gaps(&mut own, BRIDGE_FRAMES);
    let own = pad(&own, PAD_FRAMES);

    let mut kept = Vec::new();
    for region in regions {
        let (first, last) = (region.start / FRAME, region.end.div_ceil(FRAME).min(frames));
        let mut f = first;
        while f < last {
            if !own[f] {
                f += 1;
                continue;
            }
            let start = f;
            while f < last && own[f] {
                f += 1;
            }
            if f - start >= MIN_FRAMES {
                kept.push(SpeechRegion {
                    start: (start * FRAME).max(region.start),
                    end: (f * FRAME).min(region.end),
                });
            }
        }
    }
    kept
}

/// Below this energy of their difference (relative to the channel's own, −20 dB) two channels
/// carry the same audio: a mono call stored as dual-mono stereo. Copies are rarely exact: two
/// microphones of one recorder, or lossy stereo coding, leave differences around −30 dB (the
/// eval set's JFK recording: −31.5 dB), while the channels of two parties differ by about their
/// own level, each holding a voice the other has only as bleed.
const DUPLICATE_RATIO: f64 = 1e-2;

/// The earlier channel that `channel` merely copies (dual-mono recordings), if any: such a
/// channel is the same party again, and transcribing it would print every line twice.
pub fn duplicate_of(channels: &[Vec<f32>], channel: usize) -> Option<usize> {
    let own = &channels[channel];
    let energy: f64 = own.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (0..channel).find(|&earlier| {
        let other = &channels[earlier];
        other.len() == own.len() && {
            let difference: f64 = own
                .iter()
                .zip(other)
                .map(|(&a, &b)| f64::from(a - b) * f64::from(a - b))
                .sum();
            difference <= DUPLICATE_RATIO * energy
        }
    })
}

/// Gaps of `false` shorter than `max` between two `true`s become `true`.
fn bridge_gaps(mask: &mut [bool], max: usize) {
    let mut last_true: Option<usize> = None;
    for f in 0..mask.len() {
        if mask[f] {
            if let Some(previous) = last_true {
                if f - previous - 1 < max {
                    mask[previous + 1..f].fill(true);
                }
            }
            last_true = Some(f);
        }
    }
}

/// `mask` with every `true` widened by `by` frames on each side.
fn pad(mask: &[bool], by: usize) -> Vec<bool> {
    let mut padded = vec![false; mask.len()];
    for (f, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
        let (start, end) = (f.saturating_sub(by), (f + by + 1).min(mask.len()));
        padded[start..end].fill(true);
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: usize = SAMPLE_RATE;

    /// A 200 Hz tone at `amplitude` over `start..end` seconds of a `seconds` long buffer.
    fn burst(seconds: f64, start: f64, end: f64, amplitude: f32) -> Vec<f32> {
        let len = (seconds * SECOND as f64) as usize;
        (0..len)
            .map(|i| {
                let t = i as f64 / SECOND as f64;
                if (start..end).contains(&t) {
                    amplitude * (2.0 * std::f64::consts::PI * 200.0 * t).sin() as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    fn add(a: &[f32], b: &[f32], gain: f32) -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| x + gain * y).collect()
    }

    fn region(start: f64, end: f64) -> SpeechRegion {
        SpeechRegion {
            start: (start * SECOND as f64) as usize,
            end: (end * SECOND as f64) as usize,
        }
    }

    fn seconds(regions: &[SpeechRegion]) -> Vec<(f64, f64)> {
        regions
            .iter()
            .map(|r| {
                (
                    (r.start as f64 / SECOND as f64 * 100.0).round() / 100.0,
                    (r.end as f64 / SECOND as f64 * 100.0).round() / 100.0,
                )
            })
            .collect()
    }

    #[test]
    fn bleed_is_cut_and_own_speech_kept() {
        // Agent speaks 1–3 s; the customer's microphone hears it at −30 dB, and the customer
        // speaks 4–5 s.
        let agent = burst(6.0, 1.0, 3.0, 0.3);
        let customer = add(&burst(6.0, 4.0, 5.0, 0.2), &agent, 0.03);
        let channels = vec![agent, customer];
        let customer_regions = [region(0.8, 3.2), region(3.8, 5.2)];
        let kept = seconds(&own_speech(&channels, 1, &customer_regions));
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].0 >= 3.8 && kept[0].1 <= 5.2, "{kept:?}");
        // The agent's own region is untouched.
        let agent_regions = [region(0.8, 3.2)];
        assert_eq!(
            seconds(&own_speech(&channels, 0, &agent_regions)),
            seconds(&agent_regions)
        );
    }

    #[test]
    fn overlapping_speech_stays_on_both_channels() {
        // Both talk over each other at 2–3 s, a few dB apart, each with bleed of the other.
        let a = burst(4.0, 1.0, 3.0, 0.3);
        let b = burst(4.0, 2.0, 3.5, 0.2);
        let channels = vec![add(&a, &b, 0.03), add(&b, &a, 0.03)];
        let b_regions = [region(1.8, 3.7)];
        let kept = seconds(&own_speech(&channels, 1, &b_regions));
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].0 <= 2.0 && kept[0].1 >= 3.4, "{kept:?}");
    }

    #[test]
    fn mono_and_empty_input_pass_through() {
        let mono = vec![burst(2.0, 0.5, 1.5, 0.3)];
        let regions = [region(0.3, 1.7)];
        assert_eq!(own_speech(&mono, 0, &regions), regions.to_vec());
        assert!(own_speech(&[vec![], vec![]], 0, &[]).is_empty());
    }

    #[test]
    fn dual_mono_channels_are_duplicates() {
        let voice = burst(2.0, 0.5, 1.5, 0.3);
        let other = burst(2.0, 0.2, 0.8, 0.3);
        let near_copy: Vec<f32> = voice.iter().map(|v| v * 0.999).collect();
        // The same voice through another microphone: 3 % off in level, a −30 dB difference.
        let other_microphone: Vec<f32> = voice.iter().map(|v| v * 0.97).collect();
        // The other party's channel, with this voice as −15 dB bleed: not a copy.
        let party_with_bleed: Vec<f32> = other
            .iter()
            .zip(&voice)
            .map(|(o, v)| o + 0.18 * v)
            .collect();
        let channels = vec![
            voice.clone(),
            other,
            near_copy,
            voice,
            other_microphone,
            party_with_bleed,
        ];
        assert_eq!(duplicate_of(&channels, 0), None);
        assert_eq!(duplicate_of(&channels, 1), None);
        assert_eq!(duplicate_of(&channels, 2), Some(0));
        assert_eq!(duplicate_of(&channels, 3), Some(0));
        assert_eq!(duplicate_of(&channels, 4), Some(0));
        assert_eq!(duplicate_of(&channels, 5), None);
    }

    #[test]
    fn masks_bridge_and_pad() {
        let mut mask = vec![true, false, false, true, false, false, false, false, true];
        bridge_gaps(&mut mask, 3);
        assert_eq!(
            mask,
            [true, true, true, true, false, false, false, false, true]
        );
        assert_eq!(
            pad(&[false, false, true, false, false], 1),
            [false, true, true, true, false]
        );
    }
}
