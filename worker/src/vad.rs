//! Voice activity detection for one channel of 16 kHz samples, and WhisperX-style chunking of
//! the speech found into windows of at most 30 s.
//!
//! Whisper hallucinates on silence and on noise (a phrase repeated, "Thank you.", subtitle
//! credits), so the transcriber decodes only what [`speech_regions`] finds, cut into windows by
//! [`chunks`]. A call channel is mostly not speech: the other party talks, there is hold,
//! ringback, line hiss, mains hum, comfort noise. Level alone cannot tell those from speech (a
//! hum can be louder than a quiet talker), and no fixed threshold can. So every stretch must
//! pass three tests, each against a different way of being fooled:
//!
//! 1. **Above the noise floor, wherever that floor is.** Frames of 32 ms (Hann, zero-padded to
//!    a 1024-point FFT) every 10 ms; power in 20 critical bands (Bark, 100 Hz – 7.7 kHz). Each
//!    band's floor is tracked by minimum statistics (Martin 2001) on its 90 ms moving average:
//!    `floor(t) = max(min over the past 2.5 s, min over the next 2.5 s)`. A one-sided minimum
//!    lags a change of noise level by its window (noise that starts, gets louder, stops); the
//!    larger of the two minima follows a step either way at once, because one side of a step
//!    always lies wholly in noise of the new level, while inside speech both sides reach a
//!    pause. So anything stationary (white, pink or brown noise, hiss, hum with its harmonics, a
//!    steady tone, at any level) is its own floor. Below an absolute floor (white noise at
//!    −80 dBFS, the level `audio` calls silent) nothing counts, so digital silence and dither
//!    score 0. A frame's score is the mean excess `10 log10(power / floor)` (30 ms average,
//!    clamped to 0–40 dB) of its loudest 10 bands: speech fills only part of the spectrum
//!    (telephone audio has nothing above 3.4 kHz), so a mean over all bands would dilute it,
//!    and one band alone is as noisy as a single band's estimate. Speech starts at 9 dB and
//!    lasts while the score stays at 5 dB; pauses shorter than 400 ms are bridged.
//! 2. **Voiced.** Non-stationary noise passes test 1: a fan that gusts, a door, paper, a
//!    keyboard, wind or handling rumble on a handset. Speech is periodic (70–400 Hz pitch) in
//!    much of its duration; those sounds are not. Periodicity is one minus the deepest dip of
//!    YIN's cumulative-mean-normalized difference over the pitch lags, computed from the
//!    autocorrelation (window-corrected, Boersma 1993) of a **whitened** spectrum: each band
//!    divided by its own power, so the color of a sound is gone (brown noise and rumble are so
//!    low-pass that, unwhitened, half of a brown noise's frames scored above 0.9, as periodic
//!    as a vowel; divided by the noise floor alone, rumble bursts still passed), and weighted by
//!    the share of its power above the noise floor, so bands holding only noise add nothing.
//!    Only the bands up to 2 kHz count: there pitch harmonics are resolved and every codec
//!    keeps them, while above it low-bitrate coding (Opus's SILK and CELT at 24 kbit/s, MP3 at
//!    32 kbit/s) replaces them with noise (noise filling, spreading, coarse LPC excitation).
//!    Whitened, each band weighs the same, so with the bands up to 4 kHz those noisy ones
//!    outvoted the harmonic ones, and a talker coded as LiveKit's egress writes it (Ogg/Opus,
//!    24 kbit/s) had 7 % of its frames voiced, no speech at all. A stretch needs ≥ 60 ms and
//!    ≥ 10 % of its frames voiced (periodicity ≥ 0.6).
//! 3. **Moving.** Beeps, DTMF digits and ringback cadences are periodic and start and stop, so
//!    they pass 1 and 2, but their spectrum is frozen while speech's formants and pitch never
//!    are: the median, over the stretch, of the RMS change (dB) of the bands above the floor
//!    between frames 40 ms apart must reach 3 dB.
//!
//! Stretches shorter than 250 ms are dropped; the rest are padded by 200 ms on each side
//! (clamped to the recording) and merged where they then touch.
//!
//! Measured here (2 cores, the test build at opt-level 3), in this module's and
//! `tests/vad.rs`'s tests:
//!
//! - Stationary noise stays at the floor: 60 s of white, pink or brown noise at −70 to −3 dBFS
//!   peak below 6 dB (median 3 dB, the minimum's bias), mains hum and steady tones below 1 dB,
//!   dither at 0. Comfort noise whose level and tilt jump every 160 ms, noise bursts and
//!   rumble do reach 9 dB, and then fail test 2 (at most 9 % of frames voiced; the fixtures'
//!   speech 20 % or more, 15 % or more after Opus at 24 kbit/s or MP3 at 32 kbit/s, 49 % or
//!   more in white noise at 10 to 0 dB SNR); beeps, DTMF and ringback fail test 3 (median
//!   change at most 2.1 dB; speech 4.0 dB or more, 3.3 dB or more at 0 dB SNR).
//! - Coded speech (`tests/vad.rs`): after Opus at 24 kbit/s (audio or voip), MP3 at 32 kbit/s,
//!   Opus at 64 kbit/s, 8 kHz µ-law, 8 kHz Opus at 12 kbit/s and a 300–3400 Hz band, the
//!   fixtures' regions lie within 0.05 s of the uncoded ones; 20 s of white or pink noise and
//!   digital silence through the same codings give none.
//! - `shared/eval/asr`, 23 recordings: every 20 ms frame within 20 dB of the loudest
//!   (pre-emphasized), i.e. every syllable nucleus, lies in a region, but for the JFK clip's
//!   closing applause (2.7 % of its frames). With white noise at 10 dB SNR 99.1 % of them
//!   (worst file 96 %), at 5 dB 97 %, at 0 dB 91 %; with brown noise or 60 Hz hum at 0 dB SNR,
//!   or scaled to a −50 dBFS peak, 98–99.8 %.
//! - One hour of audio in 1.3–1.5 s (0.04 % of real time); about 100 MB besides the samples.
//!
//! Not rejected, by design: sounds that are speech-like in all three ways: music (hold music
//! too), voices on a television or behind the caller, the far end's echo. Nor, measured since,
//! DTMF keyed as a card number (digits changing every 180 ms pass test 3), and a short
//! utterance next to tones can fail test 3 with them as one stretch. So where the Silero model
//! is loaded the transcriber finds speech with [`crate::silero`] instead (figures there); this
//! detector serves transcribers built without it. Noise that a gate
//! switches on only around speech (no noise in the pauses, digital silence instead) has no
//! floor of its own to be measured against, so the region reaches over it, by up to the gate's
//! opening; a voiceless burst of it alone is still rejected by test 2.

use std::collections::VecDeque;
use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::mel::SAMPLE_RATE;

/// Whisper's window: the longest chunk to hand it (30 s of 16 kHz samples).
pub const CHUNK_SAMPLES: usize = 30 * SAMPLE_RATE;

/// Hop between analysis frames (10 ms); regions start and end on multiples of it (or are
/// clamped to the recording).
const HOP: usize = 160;
/// Analysis window (Hann, 32 ms).
const WINDOW: usize = 512;
/// FFT size: the window zero-padded to twice its length, so the autocorrelation computed from
/// the power spectrum is linear, not circular, at every lag used.
const FFT_LEN: usize = 2 * WINDOW;
const N_BINS: usize = FFT_LEN / 2 + 1;
/// Critical-band (Bark) edges in Hz: 20 bands from 100 Hz to 7.7 kHz.
const BAND_EDGES_HZ: [f32; 21] = [
    100.0, 200.0, 300.0, 400.0, 510.0, 630.0, 770.0, 920.0, 1080.0, 1270.0, 1480.0, 1720.0, 2000.0,
    2320.0, 2700.0, 3150.0, 3700.0, 4400.0, 5300.0, 6400.0, 7700.0,
];
const N_BANDS: usize = BAND_EDGES_HZ.len() - 1;
/// Bands averaged into a frame's score: the loudest half.
const SCORE_BANDS: usize = N_BANDS / 2;
/// Frames in the moving average the noise floor is tracked on (90 ms).
const FLOOR_SMOOTH_FRAMES: usize = 9;
/// Frames in the moving average the score is computed on (30 ms).
const SCORE_SMOOTH_FRAMES: usize = 3;
/// How far back and ahead the minimum-statistics windows reach (2.5 s).
const FLOOR_REACH_FRAMES: usize = 250;
/// A band's excess over its floor is clamped to `0..=MAX_EXCESS_DB`.
const MAX_EXCESS_DB: f32 = 40.0;
/// The absolute floor: each band's power for white noise at this RMS level (dBFS, amplitude
/// 1.0 = 0 dB); `audio::SILENCE_PEAK_THRESHOLD`'s level.
const ABSOLUTE_FLOOR_DBFS: f32 = -80.0;
/// Periodicity is measured on the bands up to here (100 Hz – 2 kHz): above it, low-bitrate
/// codecs replace the harmonics with noise.
const VOICING_HIGH_HZ: f32 = 2000.0;
/// Pitch lags: 400 Hz down to 70 Hz.
const LAG_MIN: usize = SAMPLE_RATE / 400;
const LAG_MAX: usize = SAMPLE_RATE / 70;
/// The mean power of stationary noise over its tracked floor (the minimum's bias, about 3 dB).
const NOISE_MEAN_OVER_FLOOR: f32 = 2.0;
/// A frame is voiced at this periodicity (1 − the deepest normalized difference).
const VOICED: f32 = 0.6;
/// A stretch needs this much voiced sound...
const MIN_VOICED_MS: u32 = 60;
/// ...and this fraction of its active frames voiced.
const MIN_VOICED_FRACTION: f32 = 0.1;
/// Frames between the two spectra the spectral change compares (40 ms).
const FLUX_LAG_FRAMES: usize = 4;
/// Excess (dB) a band needs, in one of the two frames, to count in their spectral change.
const FLUX_BAND_DB: f32 = 6.0;
/// The median spectral change (dB) a stretch needs.
const MIN_FLUX_DB: f32 = 3.0;
/// Frames handed to one rayon task.
const FRAMES_PER_TASK: usize = 256;
/// Samples of the window whose energy decides where a long region is cut (100 ms).
const CUT_WINDOW: usize = 10 * HOP;

/// Tuning of [`speech_regions`]; the defaults suit telephone and wideband speech alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadOptions {
    /// Frame score (dB above the tracked noise floor, mean of the loudest half of the bands)
    /// at which speech starts.
    pub threshold_db: f32,
    /// Score below which speech that has started ends (hysteresis).
    pub release_db: f32,
    /// Speech shorter than this, after bridging pauses, is dropped.
    pub min_speech_ms: u32,
    /// Pauses shorter than this do not split speech.
    pub min_silence_ms: u32,
    /// Padding added on each side of a region (clamped to the recording).
    pub speech_pad_ms: u32,
}

impl Default for VadOptions {
    /// 9 dB onset and 5 dB release (stationary noise sits near 3 dB and peaks below 6 dB),
    /// 250 ms shortest speech, 400 ms shortest pause, 200 ms padding.
    fn default() -> Self {
        Self {
            threshold_db: 9.0,
            release_db: 5.0,
            min_speech_ms: 250,
            min_silence_ms: 400,
            speech_pad_ms: 200,
        }
    }
}

/// A stretch of speech: sample indices into the channel, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpeechRegion {
    pub start: usize,
    pub end: usize,
}

impl SpeechRegion {
    /// Its length in samples.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Consecutive speech regions to transcribe as one Whisper window: `start..end` spans them
/// (with the pauses between them) and is at most the `max_samples` given to [`chunks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    /// The regions inside, in order; a region too long for one chunk appears as its pieces.
    pub regions: Vec<SpeechRegion>,
}

/// The speech in one channel of 16 kHz samples: in order, padded, not overlapping, within
/// `0..samples.len()`. Non-finite samples count as 0.
pub fn speech_regions(samples: &[f32], options: &VadOptions) -> Vec<SpeechRegion> {
    let pad = ms_to_samples(options.speech_pad_ms);
    let mut regions: Vec<SpeechRegion> = Vec::new();
    for segment in analyze(samples, options).segments {
        if !segment.accepted {
            continue;
        }
        let start = (segment.start * HOP).saturating_sub(pad);
        let end = (segment.end * HOP).saturating_add(pad).min(samples.len());
        match regions.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => regions.push(SpeechRegion { start, end }),
        }
    }
    regions
}

/// Regions merged into chunks of at most `max_samples` ([`CHUNK_SAMPLES`] for Whisper), as
/// WhisperX's `merge_chunks` does: a region joins the current chunk while the chunk, from its
/// first region's start to this region's end, stays within `max_samples`; otherwise it starts
/// the next chunk. A region longer than `max_samples` is first cut into pieces, each cut at the
/// quietest 100 ms of the last quarter of the span the piece may have (so in a pause rather
/// than inside a word, and no piece shorter than ¾ of the maximum but the last).
///
/// `regions` index `samples` and are in order, as [`speech_regions`] returns them; empty ones
/// are skipped.
///
/// # Panics
///
/// When `max_samples` is 0.
pub fn chunks(samples: &[f32], regions: &[SpeechRegion], max_samples: usize) -> Vec<Chunk> {
    assert!(
        max_samples > 0,
        "a chunk must be allowed at least one sample"
    );
    let mut out: Vec<Chunk> = Vec::new();
    for &region in regions.iter().filter(|r| !r.is_empty()) {
        for piece in split(samples, region, max_samples) {
            match out.last_mut() {
                Some(chunk)
                    if piece.start >= chunk.start && piece.end - chunk.start <= max_samples =>
                {
                    chunk.end = chunk.end.max(piece.end);
                    chunk.regions.push(piece);
                }
                _ => out.push(Chunk {
                    start: piece.start,
                    end: piece.end,
                    regions: vec![piece],
                }),
            }
        }
    }
    out
}

fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE / 1000
}

fn ms_to_frames(ms: u32) -> usize {
    ms_to_samples(ms).div_ceil(HOP)
}

/// `region` cut into pieces of at most `max_samples`.
fn split(samples: &[f32], region: SpeechRegion, max_samples: usize) -> Vec<SpeechRegion> {
    let mut pieces = Vec::new();
    let mut start = region.start;
    while region.end - start > max_samples {
        let latest = start + max_samples;
        let cut = quietest_cut(samples, latest - max_samples / 4, latest).max(start + 1);
        pieces.push(SpeechRegion { start, end: cut });
        start = cut;
    }
    pieces.push(SpeechRegion {
        start,
        end: region.end,
    });
    pieces
}

/// The position in `earliest..=latest`, on a 10 ms grid counted back from `latest`, whose
/// surrounding 100 ms holds the least energy; the latest such position on ties, so pieces stay
/// as long as they may.
fn quietest_cut(samples: &[f32], earliest: usize, latest: usize) -> usize {
    let energy = |center: usize| -> f64 {
        let end = (center + CUT_WINDOW / 2).min(samples.len());
        let start = center.saturating_sub(CUT_WINDOW / 2).min(end);
        samples[start..end]
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| f64::from(x) * f64::from(x))
            .sum()
    };
    let mut best = (f64::INFINITY, latest);
    let mut position = latest;
    loop {
        let e = energy(position);
        if e < best.0 {
            best = (e, position);
        }
        if position < earliest + HOP {
            return best.1;
        }
        position -= HOP;
    }
}

/// A stretch of frames above the noise floor and what it was judged on.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// Frames `start..end`.
    start: usize,
    end: usize,
    /// Frames at or above the release threshold.
    active: usize,
    /// Active frames that are periodic.
    voiced: usize,
    /// Median spectral change (dB).
    flux: f32,
    accepted: bool,
}

/// What [`speech_regions`] decides on, kept for the tests.
#[derive(Debug, Clone)]
struct Analysis {
    /// Score of each frame (dB).
    #[cfg_attr(not(test), allow(dead_code))]
    score: Vec<f32>,
    segments: Vec<Segment>,
}

fn analyze(samples: &[f32], options: &VadOptions) -> Analysis {
    let analyzer = Analyzer::new();
    let frames = samples.len().div_ceil(HOP);

    // Band powers of every frame (frame-major), then band by band: floor and excess.
    let mut by_frame = vec![0.0f32; frames * N_BANDS];
    by_frame
        .par_chunks_mut(FRAMES_PER_TASK * N_BANDS)
        .enumerate()
        .for_each(|(task, out)| analyzer.band_powers(samples, task * FRAMES_PER_TASK, out));
    let mut excess = vec![0.0f32; frames * N_BANDS];
    let mut floor = vec![0.0f32; frames * N_BANDS];
    let mut band = vec![0.0f32; frames];
    for b in 0..N_BANDS {
        for (t, p) in band.iter_mut().enumerate() {
            *p = by_frame[t * N_BANDS + b];
        }
        let (band_excess, band_floor) = track_band(&band, analyzer.absolute_floor[b]);
        for t in 0..frames {
            excess[t * N_BANDS + b] = band_excess[t];
            floor[t * N_BANDS + b] = band_floor[t];
        }
    }
    drop(by_frame);
    let score: Vec<f32> = excess.par_chunks_exact(N_BANDS).map(frame_score).collect();

    let mut segments = candidates(&score, options);
    let mut active = vec![false; frames];
    for s in &segments {
        for (t, a) in active.iter_mut().enumerate().take(s.end).skip(s.start) {
            *a = score[t] >= options.release_db;
        }
    }

    // Periodicity only where it is asked for.
    let mut voicing = vec![0.0f32; frames];
    voicing
        .par_chunks_mut(FRAMES_PER_TASK)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * FRAMES_PER_TASK;
            let mut buffers = analyzer.buffers();
            for (i, v) in out.iter_mut().enumerate() {
                let t = first + i;
                if active[t] {
                    let floor = &floor[t * N_BANDS..(t + 1) * N_BANDS];
                    *v = analyzer.voicing(samples, t, floor, &mut buffers);
                }
            }
        });

    let min_speech = ms_to_frames(options.min_speech_ms);
    let min_voiced = ms_to_frames(MIN_VOICED_MS);
    let mut changes = Vec::new();
    for s in &mut segments {
        changes.clear();
        for t in (s.start..s.end).filter(|&t| active[t]) {
            s.active += 1;
            if voicing[t] >= VOICED {
                s.voiced += 1;
            }
            if t >= s.start + FLUX_LAG_FRAMES {
                let before = t - FLUX_LAG_FRAMES;
                changes.push(spectral_change(
                    &excess[t * N_BANDS..(t + 1) * N_BANDS],
                    &excess[before * N_BANDS..(before + 1) * N_BANDS],
                ));
            }
        }
        s.flux = median(&mut changes);
        s.accepted = s.end - s.start >= min_speech
            && s.voiced >= min_voiced
            && s.voiced as f32 >= MIN_VOICED_FRACTION * s.active as f32
            && s.flux >= MIN_FLUX_DB;
    }
    Analysis { score, segments }
}

/// Stretches that reach `threshold_db`, extended while they stay at `release_db`, with pauses
/// shorter than `min_silence_ms` bridged.
fn candidates(score: &[f32], options: &VadOptions) -> Vec<Segment> {
    let min_silence = ms_to_frames(options.min_silence_ms);
    let mut segments: Vec<Segment> = Vec::new();
    let mut t = 0;
    while t < score.len() {
        if score[t] < options.threshold_db {
            t += 1;
            continue;
        }
        let mut start = t;
        while start > 0 && score[start - 1] >= options.release_db {
            start -= 1;
        }
        let mut end = t + 1;
        while end < score.len() && score[end] >= options.release_db {
            end += 1;
        }
        match segments.last_mut() {
            Some(last) if start < last.end + min_silence => last.end = end,
            _ => segments.push(Segment {
                start,
                end,
                active: 0,
                voiced: 0,
                flux: 0.0,
                accepted: false,
            }),
        }
        t = end;
    }
    segments
}

/// A frame's score: the mean excess of its loudest half of the bands.
fn frame_score(excess: &[f32]) -> f32 {
    let mut sorted = [0.0f32; N_BANDS];
    sorted.copy_from_slice(excess);
    sorted.select_nth_unstable_by(SCORE_BANDS - 1, |a, b| b.total_cmp(a));
    sorted[..SCORE_BANDS].iter().sum::<f32>() / SCORE_BANDS as f32
}

/// RMS difference (dB) between two frames' excess, over the bands above the floor in either.
fn spectral_change(a: &[f32], b: &[f32]) -> f32 {
    let (mut sum, mut n) = (0.0f32, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        if x.max(y) >= FLUX_BAND_DB {
            sum += (x - y) * (x - y);
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f32).sqrt()
    }
}

fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    *values.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// One band's excess over its noise floor (dB, per frame) and the floor itself.
fn track_band(power: &[f32], absolute_floor: f32) -> (Vec<f32>, Vec<f32>) {
    let slow = moving_average(power, FLOOR_SMOOTH_FRAMES);
    let fast = moving_average(power, SCORE_SMOOTH_FRAMES);
    let past = trailing_min(slow.iter().copied(), FLOOR_REACH_FRAMES);
    let mut future = trailing_min(slow.iter().rev().copied(), FLOOR_REACH_FRAMES);
    future.reverse();
    let floor: Vec<f32> = past
        .iter()
        .zip(&future)
        .map(|(&p, &f)| p.max(f).max(absolute_floor))
        .collect();
    let excess = fast
        .iter()
        .zip(&floor)
        .map(|(&e, &n)| (10.0 * (e / n).log10()).clamp(0.0, MAX_EXCESS_DB))
        .collect();
    (excess, floor)
}

/// Centered moving average over `width` frames (fewer at the edges).
fn moving_average(values: &[f32], width: usize) -> Vec<f32> {
    let half = width / 2;
    let mut prefix = Vec::with_capacity(values.len() + 1);
    let mut sum = 0.0f64;
    prefix.push(sum);
    for &v in values {
        sum += f64::from(v);
        prefix.push(sum);
    }
    (0..values.len())
        .map(|t| {
            let lo = t.saturating_sub(half);
            let hi = (t + half + 1).min(values.len());
            ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32
        })
        .collect()
}

/// `out[t] = min(values[t - reach ..= t])` (the window clipped at 0), in O(n): a deque of the
/// positions that can still become the minimum.
fn trailing_min(values: impl Iterator<Item = f32>, reach: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.size_hint().0);
    let mut window: VecDeque<(usize, f32)> = VecDeque::new();
    for (t, v) in values.enumerate() {
        while window.back().is_some_and(|&(_, w)| w >= v) {
            window.pop_back();
        }
        window.push_back((t, v));
        while window.front().is_some_and(|&(j, _)| j + reach < t) {
            window.pop_front();
        }
        out.push(window.front().map_or(v, |&(_, w)| w));
    }
    out
}

/// FFT plans and tables shared by every frame.
struct Analyzer {
    window: Vec<f32>,
    /// Autocorrelation of the window, 1 at lag 0.
    window_ac: Vec<f32>,
    /// FFT bins `lo..hi` of each band.
    band_bins: [(usize, usize); N_BANDS],
    /// The band of each bin periodicity is measured on (`None` outside them).
    voicing_band: Vec<Option<usize>>,
    /// Each band's power for white noise at [`ABSOLUTE_FLOOR_DBFS`].
    absolute_floor: [f32; N_BANDS],
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

/// One task's scratch space.
struct Buffers {
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    autocorrelation: Vec<f32>,
    inverse_scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

fn hz_to_bin(hz: f32) -> usize {
    (hz * FFT_LEN as f32 / SAMPLE_RATE as f32).ceil() as usize
}

impl Analyzer {
    fn new() -> Self {
        let window: Vec<f32> = (0..WINDOW)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WINDOW as f64).cos()) as f32
            })
            .collect();
        let energy: f32 = window.iter().map(|w| w * w).sum();
        let window_ac = (0..=LAG_MAX)
            .map(|lag| {
                let sum: f32 = window.iter().zip(&window[lag..]).map(|(a, b)| a * b).sum();
                sum / energy
            })
            .collect();
        // White noise of variance σ² has E|X_k|² = σ² Σw² in every bin.
        let variance = 10f32.powf(ABSOLUTE_FLOOR_DBFS / 10.0);
        let mut band_bins = [(0, 0); N_BANDS];
        let mut absolute_floor = [0.0; N_BANDS];
        for (b, edges) in BAND_EDGES_HZ.windows(2).enumerate() {
            band_bins[b] = (hz_to_bin(edges[0]), hz_to_bin(edges[1]));
            absolute_floor[b] = variance * energy * (band_bins[b].1 - band_bins[b].0) as f32;
        }
        let voicing_band = (0..N_BINS)
            .map(|k| {
                band_bins
                    .iter()
                    .position(|&(lo, hi)| (lo..hi).contains(&k))
                    .filter(|_| k < hz_to_bin(VOICING_HIGH_HZ))
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            window,
            window_ac,
            band_bins,
            voicing_band,
            absolute_floor,
            forward: planner.plan_fft_forward(FFT_LEN),
            inverse: planner.plan_fft_inverse(FFT_LEN),
        }
    }

    fn buffers(&self) -> Buffers {
        Buffers {
            input: self.forward.make_input_vec(),
            spectrum: self.forward.make_output_vec(),
            scratch: self.forward.make_scratch_vec(),
            autocorrelation: self.inverse.make_output_vec(),
            inverse_scratch: self.inverse.make_scratch_vec(),
            power: vec![0.0; N_BINS],
        }
    }

    /// The power spectrum of frame `t` into `buffers.power`. The window is centered on the
    /// frame's 10 ms but kept inside the recording at its ends (zero-padded only when the
    /// recording is shorter than a window), so edge frames see as much signal as any other and
    /// do not drag the floor down.
    fn power_spectrum(&self, samples: &[f32], t: usize, buffers: &mut Buffers) {
        let center = t * HOP + HOP / 2;
        let start = center
            .saturating_sub(WINDOW / 2)
            .min(samples.len().saturating_sub(WINDOW));
        let frame = &samples[start..samples.len().min(start + WINDOW)];
        buffers.input.fill(0.0);
        for ((dst, &x), &w) in buffers.input.iter_mut().zip(frame).zip(&self.window) {
            *dst = if x.is_finite() { x * w } else { 0.0 };
        }
        self.forward
            .process_with_scratch(
                &mut buffers.input,
                &mut buffers.spectrum,
                &mut buffers.scratch,
            )
            .expect("buffers come from the plan");
        for (p, c) in buffers.power.iter_mut().zip(&buffers.spectrum) {
            *p = c.norm_sqr();
        }
    }

    /// Band powers of frames `first..first + out.len() / N_BANDS` into `out` (frame-major).
    fn band_powers(&self, samples: &[f32], first: usize, out: &mut [f32]) {
        let mut buffers = self.buffers();
        for (i, bands) in out.chunks_exact_mut(N_BANDS).enumerate() {
            self.power_spectrum(samples, first + i, &mut buffers);
            for (o, &(lo, hi)) in bands.iter_mut().zip(&self.band_bins) {
                *o = buffers.power[lo..hi].iter().sum();
            }
        }
    }

    /// Periodicity of frame `t`, 0–1: one minus the deepest dip, at pitch lags, of YIN's
    /// cumulative-mean-normalized difference `d'(τ) = d(τ) / mean(d(1..=τ))`, with
    /// `d(τ) = 1 − r(τ) / (r(0) · w(τ))` from the autocorrelation `r` of the spectrum divided
    /// by the noise floor `floor` (one value per band) and the window's autocorrelation `w`.
    fn voicing(&self, samples: &[f32], t: usize, floor: &[f32], buffers: &mut Buffers) -> f32 {
        self.power_spectrum(samples, t, buffers);
        let mut gain = [0.0f32; N_BANDS];
        for ((g, &(lo, hi)), &floor) in gain.iter_mut().zip(&self.band_bins).zip(floor) {
            let band: f32 = buffers.power[lo..hi].iter().sum();
            if band > 0.0 {
                *g = (1.0 - NOISE_MEAN_OVER_FLOOR * floor / band).max(0.0) / band;
            }
        }
        for (k, c) in buffers.spectrum.iter_mut().enumerate() {
            let whitened = self.voicing_band[k].map_or(0.0, |b| buffers.power[k] * gain[b]);
            *c = Complex::new(whitened, 0.0);
        }
        self.inverse
            .process_with_scratch(
                &mut buffers.spectrum,
                &mut buffers.autocorrelation,
                &mut buffers.inverse_scratch,
            )
            .expect("buffers come from the plan");
        let r0 = buffers.autocorrelation[0];
        if !(r0.is_finite() && r0 > 0.0) {
            return 0.0;
        }
        let mut cumulative = 0.0f32;
        let mut deepest = f32::INFINITY;
        for lag in 1..=LAG_MAX {
            let r = buffers.autocorrelation[lag] / r0 / self.window_ac[lag];
            let d = (1.0 - r).max(0.0);
            cumulative += d;
            if lag >= LAG_MIN && cumulative > 0.0 {
                deepest = deepest.min(d * lag as f32 / cumulative);
            }
        }
        (1.0 - deepest).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use std::f64::consts::PI;

    use super::*;

    const SECOND: usize = SAMPLE_RATE;

    /// xorshift64*: deterministic noise without a `rand` dependency.
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
            bits as f32 / (1u64 << 24) as f32
        }

        /// Box–Muller.
        fn gaussian(&mut self) -> f32 {
            let u = self.uniform().max(1e-7);
            let v = self.uniform();
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
        }
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt()
    }

    fn at_dbfs(mut x: Vec<f32>, dbfs: f32) -> Vec<f32> {
        let gain = 10f32.powf(dbfs / 20.0) / rms(&x);
        x.iter_mut().for_each(|v| *v *= gain);
        x
    }

    fn white(rng: &mut Rng, samples: usize) -> Vec<f32> {
        (0..samples).map(|_| rng.gaussian()).collect()
    }

    /// Paul Kellet's economy pink filter (−3 dB/octave within 0.5 dB above 40 Hz).
    fn pink(rng: &mut Rng, samples: usize) -> Vec<f32> {
        let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
        (0..samples)
            .map(|_| {
                let w = rng.gaussian();
                b0 = 0.99765 * b0 + w * 0.099_046;
                b1 = 0.96300 * b1 + w * 0.296_516;
                b2 = 0.57000 * b2 + w * 1.052_691;
                b0 + b1 + b2 + w * 0.1848
            })
            .collect()
    }

    /// Leaky-integrated white noise (−6 dB/octave above 5 Hz).
    fn brown(rng: &mut Rng, samples: usize) -> Vec<f32> {
        let mut b = 0.0f32;
        (0..samples)
            .map(|_| {
                b = 0.998 * b + rng.gaussian();
                b
            })
            .collect()
    }

    /// Sum of sines `(hz, amplitude)`, phase computed in f64 (an f32 phase drifts audibly).
    fn tones(partials: &[(f64, f32)], samples: usize) -> Vec<f32> {
        (0..samples)
            .map(|i| {
                let t = i as f64 / SAMPLE_RATE as f64;
                partials
                    .iter()
                    .map(|&(hz, a)| a * (2.0 * PI * hz * t).sin() as f32)
                    .sum()
            })
            .collect()
    }

    /// Mains hum: the fundamental and 9 harmonics falling as 1/h.
    fn hum(fundamental: f64, samples: usize) -> Vec<f32> {
        let partials: Vec<(f64, f32)> = (1..=10)
            .map(|h| (fundamental * h as f64, 1.0 / h as f32))
            .collect();
        tones(&partials, samples)
    }

    fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
        a.iter().zip(b).map(|(x, y)| x + y).collect()
    }

    /// Synthetic words: voiced syllables (harmonics of a gliding 100–180 Hz pitch shaped by the
    /// formants of a vowel) with fricative noise between some of them. Returns the samples
    /// (peak about 0.5) and each word's sample range.
    fn synthetic_speech(
        rng: &mut Rng,
        words: usize,
        gap_seconds: f32,
    ) -> (Vec<f32>, Vec<(usize, usize)>) {
        const VOWELS: [[f64; 3]; 5] = [
            [730.0, 1090.0, 2440.0],
            [270.0, 2290.0, 3010.0],
            [530.0, 1840.0, 2480.0],
            [570.0, 840.0, 2410.0],
            [300.0, 870.0, 2240.0],
        ];
        let mut out = Vec::new();
        let mut spans = Vec::new();
        let mut phase = 0.0f64;
        for _ in 0..words {
            let start = out.len();
            let syllables = 2 + (rng.uniform() * 3.0) as usize;
            for s in 0..syllables {
                let len = ((0.12 + 0.13 * rng.uniform()) * SECOND as f32) as usize;
                let formants = VOWELS[(rng.uniform() * 5.0) as usize % 5];
                let f0_start = 100.0 + 80.0 * f64::from(rng.uniform());
                let f0_end = f0_start * (0.8 + 0.4 * f64::from(rng.uniform()));
                for i in 0..len {
                    let x = i as f64 / len as f64;
                    let f0 = f0_start + (f0_end - f0_start) * x;
                    phase += 2.0 * PI * f0 / SAMPLE_RATE as f64;
                    let mut v = 0.0;
                    let mut h = 1.0;
                    while h * f0 < 3800.0 {
                        let f = h * f0;
                        let gain: f64 = formants
                            .iter()
                            .enumerate()
                            .map(|(n, &fc)| {
                                let width = 80.0 + 40.0 * n as f64;
                                0.5f64.powi(n as i32) / (1.0 + ((f - fc) / width).powi(2))
                            })
                            .sum();
                        v += gain * (h * phase).sin() / h.sqrt();
                        h += 1.0;
                    }
                    out.push((0.15 * v * (PI * x).sin()) as f32);
                }
                if s + 1 < syllables {
                    // A stop closure or a fricative.
                    let len = ((0.03 + 0.05 * rng.uniform()) * SECOND as f32) as usize;
                    let level = if rng.uniform() < 0.5 { 0.0 } else { 0.03 };
                    out.extend((0..len).map(|_| level * rng.gaussian()));
                }
            }
            spans.push((start, out.len()));
            out.extend(std::iter::repeat_n(
                0.0,
                (gap_seconds * SECOND as f32) as usize,
            ));
        }
        (out, spans)
    }

    fn regions(samples: &[f32]) -> Vec<SpeechRegion> {
        speech_regions(samples, &VadOptions::default())
    }

    fn seconds(regions: &[SpeechRegion]) -> Vec<(f32, f32)> {
        regions
            .iter()
            .map(|r| (r.start as f32 / SECOND as f32, r.end as f32 / SECOND as f32))
            .collect()
    }

    /// No speech, and the peak score reached (so that a test can tell a signal judged from one
    /// too quiet to be looked at).
    fn assert_no_speech(name: &str, samples: &[f32]) -> f32 {
        let analysis = analyze(samples, &VadOptions::default());
        let found = regions(samples);
        assert!(
            found.is_empty(),
            "{name}: speech found at {:?}",
            seconds(&found)
        );
        analysis.score.iter().copied().fold(0.0, f32::max)
    }

    /// No speech, for the first reason: nothing ever rose above the noise floor enough to be
    /// a candidate (stationary sound is its own floor, whatever its level or spectrum).
    fn assert_at_floor(name: &str, samples: &[f32]) {
        let peak = assert_no_speech(name, samples);
        assert!(
            peak < VadOptions::default().threshold_db - 2.0,
            "{name}: score reached {peak:.1} dB"
        );
    }

    #[test]
    fn silence_and_dither_are_not_speech() {
        let mut rng = Rng(1);
        assert!(regions(&[]).is_empty());
        assert!(regions(&[0.0; 100]).is_empty());
        assert_eq!(
            assert_no_speech("digital silence", &vec![0.0; 60 * SECOND]),
            0.0
        );
        // TPDF dither of ±1 LSB at 16 bits (about −95 dBFS).
        let dither: Vec<f32> = (0..60 * SECOND)
            .map(|_| (rng.uniform() - rng.uniform()) / 32768.0)
            .collect();
        assert_eq!(assert_no_speech("dither", &dither), 0.0);
        // Sporadic ±1 LSB clicks in digital silence: below the absolute floor.
        let clicks: Vec<f32> = (0..60 * SECOND)
            .map(|_| {
                if rng.uniform() < 0.001 {
                    1.0 / 32768.0
                } else {
                    0.0
                }
            })
            .collect();
        assert_no_speech("LSB clicks", &clicks);
        let broken: Vec<f32> = (0..10 * SECOND)
            .map(|i| match i % 3 {
                0 => f32::NAN,
                1 => f32::INFINITY,
                _ => 0.0,
            })
            .collect();
        assert_no_speech("non-finite samples", &broken);
    }

    #[test]
    fn stationary_noise_is_not_speech_at_any_level() {
        let mut rng = Rng(2);
        for dbfs in [-70.0, -40.0, -20.0, -3.0] {
            for (color, noise) in [
                ("white", white(&mut rng, 60 * SECOND)),
                ("pink", pink(&mut rng, 60 * SECOND)),
                ("brown", brown(&mut rng, 60 * SECOND)),
            ] {
                let peak = assert_no_speech(
                    &format!("{color} noise at {dbfs} dBFS"),
                    &at_dbfs(noise, dbfs),
                );
                // Loud enough to be looked at, yet well under the onset threshold.
                assert!(
                    (2.0..7.0).contains(&peak),
                    "{color} noise at {dbfs} dBFS peaks at {peak:.1} dB"
                );
            }
        }
    }

    #[test]
    fn hum_and_steady_tones_are_not_speech() {
        let mut rng = Rng(3);
        let n = 60 * SECOND;
        for (name, signal) in [
            ("50 Hz hum", at_dbfs(hum(50.0, n), -20.0)),
            ("60 Hz hum", at_dbfs(hum(60.0, n), -10.0)),
            // Rectified-mains buzz: its period lies in the pitch range.
            ("120 Hz buzz", at_dbfs(hum(120.0, n), -30.0)),
            ("440 Hz tone", at_dbfs(tones(&[(440.0, 1.0)], n), -6.0)),
            ("1 kHz tone", at_dbfs(tones(&[(1000.0, 1.0)], n), -40.0)),
            (
                "dial tone",
                at_dbfs(tones(&[(350.0, 1.0), (440.0, 1.0)], n), -15.0),
            ),
            (
                "hum in hiss",
                mix(
                    &at_dbfs(hum(60.0, n), -30.0),
                    &at_dbfs(white(&mut rng, n), -45.0),
                ),
            ),
        ] {
            assert_at_floor(name, &signal);
        }
    }

    #[test]
    fn noise_that_starts_stops_and_changes_level_is_not_speech() {
        let mut rng = Rng(4);
        let mut signal = vec![0.0; 20 * SECOND];
        for dbfs in [-30.0, -20.0, -40.0, -25.0] {
            signal.extend(at_dbfs(pink(&mut rng, 20 * SECOND), dbfs));
        }
        signal.extend(vec![0.0; 20 * SECOND]);
        assert_at_floor("noise steps", &signal);
        // A fade over 10 s each way.
        let n = 30 * SECOND;
        let mut fade = at_dbfs(white(&mut rng, n), -20.0);
        for (i, v) in fade.iter_mut().enumerate() {
            *v *= 1.0 - (2.0 * i as f32 / n as f32 - 1.0).abs();
        }
        assert_at_floor("noise fade", &fade);
    }

    #[test]
    fn comfort_noise_and_noise_bursts_are_found_but_rejected_as_unvoiced() {
        let mut rng = Rng(5);
        // Comfort noise whose level (±2 dB) and tilt are redrawn every 160 ms, as a decoder
        // does on each SID frame.
        let mut comfort = Vec::new();
        let (mut level, mut state) = (0.02f32, 0.0f32);
        while comfort.len() < 60 * SECOND {
            let target = 0.02 * 10f32.powf((rng.uniform() - 0.5) * 4.0 / 20.0);
            let tilt = 0.3 + 0.5 * rng.uniform();
            for _ in 0..16 * HOP {
                level += (target - level) * 0.001;
                state = tilt * state + rng.gaussian();
                comfort.push(level * state);
            }
        }
        // Bursts 6–25 dB above a background, 200–800 ms long: doors, rustle, gusts.
        let mut bursts = Vec::new();
        for k in 0..20 {
            bursts.extend((0..(3 + k % 3) * SECOND).map(|_| 0.01 * rng.gaussian()));
            let gain = 0.01 * 10f32.powf((6.0 + k as f32) / 20.0);
            bursts.extend((0..SECOND / 10 * (2 + k % 7)).map(|_| gain * rng.gaussian()));
        }
        // Handling noise and wind on a handset: bursts of rumble (brown noise) whose level
        // wanders. Unwhitened, brown noise is so low-pass that most of its frames look periodic.
        let mut rumble = Vec::new();
        for k in 0..20 {
            rumble.extend((0..(3 + k % 3) * SECOND).map(|_| 0.002 * rng.gaussian()));
            let burst = brown(&mut rng, SECOND / 10 * (3 + k % 8));
            let len = burst.len() as f32;
            rumble.extend(burst.iter().enumerate().map(|(i, v)| {
                let wander = 1.0 + 0.5 * (i as f32 / len * 9.0).sin();
                0.004 * wander * v + 0.002 * rng.gaussian()
            }));
        }
        for (name, signal) in [
            ("comfort noise", comfort),
            ("noise bursts", bursts),
            ("rumble bursts", rumble),
        ] {
            let analysis = analyze(&signal, &VadOptions::default());
            assert!(
                !analysis.segments.is_empty(),
                "{name}: the level test alone should have let something through"
            );
            for s in &analysis.segments {
                let unvoiced = s.voiced < ms_to_frames(MIN_VOICED_MS)
                    || (s.voiced as f32) < MIN_VOICED_FRACTION * s.active as f32;
                assert!(!s.accepted && unvoiced, "{name}: {s:?}");
            }
            assert_no_speech(name, &signal);
        }
    }

    #[test]
    fn beeps_dtmf_and_ringback_are_found_but_rejected_as_steady() {
        let mut rng = Rng(6);
        let mut signal = Vec::new();
        let partials: [&[(f64, f32)]; 5] = [
            &[(1000.0, 0.2)],               // voicemail beep
            &[(440.0, 0.1), (480.0, 0.1)],  // North American ringback
            &[(350.0, 0.1), (440.0, 0.1)],  // dial tone
            &[(697.0, 0.1), (1209.0, 0.1)], // DTMF "1"
            &[(425.0, 0.2)],                // European ringback
        ];
        for k in 0..20 {
            signal.extend((0..2 * SECOND).map(|_| 0.003 * rng.gaussian()));
            let burst = tones(partials[k % 5], SECOND / 10 * (3 + k % 8));
            signal.extend(burst.iter().map(|v| v + 0.003 * rng.gaussian()));
        }
        signal.extend((0..2 * SECOND).map(|_| 0.003 * rng.gaussian()));
        let analysis = analyze(&signal, &VadOptions::default());
        assert!(analysis.segments.len() >= 20, "{:?}", analysis.segments);
        for s in &analysis.segments {
            assert!(!s.accepted, "accepted {s:?}");
            assert!(s.flux < MIN_FLUX_DB, "{s:?}");
        }
    }

    #[test]
    fn synthetic_words_are_found_in_silence_noise_and_hum() {
        let mut rng = Rng(7);
        let (words, spans) = synthetic_speech(&mut rng, 6, 1.0);
        let lead = 3 * SECOND;
        let mut speech = vec![0.0; lead];
        speech.extend(&words);
        speech.extend(vec![0.0; 3 * SECOND]);
        let n = speech.len();
        let speech_rms = rms(&words);
        let noise_at = |noise: Vec<f32>, snr_db: f32| {
            let gain = speech_rms / 10f32.powf(snr_db / 20.0) / rms(&noise);
            noise.iter().map(|v| v * gain).collect::<Vec<f32>>()
        };
        let cases = [
            ("in silence", speech.clone()),
            ("at −40 dBFS", speech.iter().map(|v| v * 0.02).collect()),
            (
                "white noise at 10 dB SNR",
                mix(&speech, &noise_at(white(&mut rng, n), 10.0)),
            ),
            (
                "brown noise at 5 dB SNR",
                mix(&speech, &noise_at(brown(&mut rng, n), 5.0)),
            ),
            (
                "60 Hz hum at 0 dB SNR",
                mix(&speech, &noise_at(hum(60.0, n), 0.0)),
            ),
        ];
        let pad = ms_to_samples(VadOptions::default().speech_pad_ms);
        for (name, signal) in cases {
            let found = regions(&signal);
            // Words 1 s apart are separate regions, each covering its word and ending within
            // the padding (and a frame of slack) of it.
            assert_eq!(found.len(), spans.len(), "{name}: {:?}", seconds(&found));
            for (r, &(start, end)) in found.iter().zip(&spans) {
                let (start, end) = (start + lead, end + lead);
                assert!(
                    r.start <= start && r.end >= end,
                    "{name}: {r:?} misses {start}..{end}"
                );
                assert!(
                    r.start + pad + 3 * HOP >= start && r.end <= end + pad + 3 * HOP,
                    "{name}: {r:?} reaches too far beyond {start}..{end}"
                );
            }
        }
    }

    #[test]
    fn pauses_are_bridged_blips_dropped_and_regions_padded() {
        let mut rng = Rng(8);
        let (word, _) = synthetic_speech(&mut rng, 1, 0.0);
        let mut signal = vec![0.0; 2 * SECOND];
        // Two words 250 ms apart are one region; 1.5 s later a third.
        signal.extend(&word);
        let first_end = signal.len();
        signal.extend(vec![0.0; SECOND / 4]);
        signal.extend(&word);
        let second_end = signal.len();
        signal.extend(vec![0.0; 3 * SECOND / 2]);
        let third_start = signal.len();
        signal.extend(&word);
        let third_end = signal.len();
        // A 100 ms syllable 2 s later: too short to be speech.
        signal.extend(vec![0.0; 2 * SECOND]);
        signal.extend(&word[word.len() / 2..word.len() / 2 + SECOND / 10]);
        signal.extend(vec![0.0; 2 * SECOND]);
        let found = regions(&signal);
        assert_eq!(found.len(), 2, "{:?}", seconds(&found));
        assert!(
            found[0].start < 2 * SECOND && found[0].end > second_end,
            "{found:?}"
        );
        assert!(found[0].end > first_end);
        assert!(
            found[1].start < third_start && found[1].end > third_end,
            "{found:?}"
        );
        // Speech 50 ms from the edges: the padding is clamped.
        let mut edges = vec![0.0; SECOND / 20];
        edges.extend(&word);
        edges.extend(vec![0.0; SECOND / 20]);
        let found = regions(&edges);
        assert_eq!(
            found,
            vec![SpeechRegion {
                start: 0,
                end: edges.len()
            }]
        );
    }

    #[test]
    fn trailing_min_is_the_windowed_minimum() {
        let mut rng = Rng(9);
        let values: Vec<f32> = (0..500).map(|_| rng.uniform()).collect();
        for reach in [0, 1, 7, 100, 600] {
            let fast = trailing_min(values.iter().copied(), reach);
            for (t, &m) in fast.iter().enumerate() {
                let naive = values[t.saturating_sub(reach)..=t]
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min);
                assert_eq!(m, naive, "reach {reach}, t {t}");
            }
        }
    }

    fn region(start: usize, end: usize) -> SpeechRegion {
        SpeechRegion { start, end }
    }

    /// Every region appears in order, whole or as contiguous pieces; chunks stay within `max`.
    fn assert_chunks_cover(chunks: &[Chunk], regions: &[SpeechRegion], max: usize) {
        let pieces: Vec<SpeechRegion> = chunks.iter().flat_map(|c| c.regions.clone()).collect();
        let mut pieces = pieces.iter().peekable();
        for r in regions {
            let mut at = r.start;
            while at < r.end {
                let piece = pieces.next().expect("a piece for every region");
                assert_eq!(piece.start, at, "{r:?}");
                assert!(
                    piece.end > piece.start && piece.end <= r.end,
                    "{piece:?} of {r:?}"
                );
                at = piece.end;
            }
        }
        assert!(pieces.next().is_none());
        for c in chunks {
            assert!(c.end - c.start <= max, "{c:?}");
            assert_eq!(c.start, c.regions[0].start);
            assert_eq!(c.end, c.regions.last().unwrap().end);
        }
    }

    #[test]
    fn no_regions_no_chunks() {
        assert!(chunks(&[], &[], CHUNK_SAMPLES).is_empty());
        assert!(chunks(&[0.0; 10], &[region(5, 5)], CHUNK_SAMPLES).is_empty());
    }

    #[test]
    fn a_long_region_is_cut_in_its_pauses() {
        let mut rng = Rng(10);
        // 75 s of loud noise with 200 ms pauses at 10, 27, 41 and 55 s.
        let mut samples: Vec<f32> = (0..75 * SECOND).map(|_| 0.1 * rng.gaussian()).collect();
        let pauses = [10.0, 27.0, 41.0, 55.0].map(|s: f32| (s * SECOND as f32) as usize);
        for &p in &pauses {
            samples[p..p + SECOND / 5]
                .iter_mut()
                .for_each(|v| *v *= 0.01);
        }
        let all = [region(0, samples.len())];
        let out = chunks(&samples, &all, CHUNK_SAMPLES);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_chunks_cover(&out, &all, CHUNK_SAMPLES);
        // The first cut may fall in 22.5–30 s: the pause at 27 s, not the one at 10 s.
        for (chunk, &pause) in out.iter().zip(&[pauses[1], pauses[3]]) {
            assert!(
                (pause..pause + SECOND / 5).contains(&chunk.end),
                "cut at {} s, pause at {} s",
                chunk.end as f32 / SECOND as f32,
                pause as f32 / SECOND as f32
            );
        }
        // Without any pause the cuts fall as late as allowed.
        let flat = vec![0.1; 75 * SECOND];
        let out = chunks(&flat, &all, CHUNK_SAMPLES);
        let bounds: Vec<(usize, usize)> = out.iter().map(|c| (c.start, c.end)).collect();
        assert_eq!(
            bounds,
            [
                (0, 30 * SECOND),
                (30 * SECOND, 60 * SECOND),
                (60 * SECOND, 75 * SECOND)
            ]
        );
    }

    #[test]
    fn short_regions_are_merged_greedily() {
        // 200 regions of 1 s every 2.5 s (500 s).
        let regions: Vec<SpeechRegion> = (0..200)
            .map(|i| region(i * 5 * SECOND / 2, i * 5 * SECOND / 2 + SECOND))
            .collect();
        let out = chunks(&[], &regions, CHUNK_SAMPLES);
        assert_chunks_cover(&out, &regions, CHUNK_SAMPLES);
        for pair in out.windows(2) {
            // The next region did not fit.
            assert!(pair[1].regions[0].end - pair[0].start > CHUNK_SAMPLES);
        }
        // 12 regions (28.5 s from the first start to the 12th end) per chunk.
        assert!(out
            .iter()
            .all(|c| c.regions.len() == 12 || c == out.last().unwrap()));
        assert_eq!(out.len(), 17);
        // Exactly the maximum fits; one sample more does not.
        assert_eq!(
            chunks(&[], &[region(7, 7 + CHUNK_SAMPLES)], CHUNK_SAMPLES).len(),
            1
        );
        let out = chunks(&[], &[region(7, 8 + CHUNK_SAMPLES)], CHUNK_SAMPLES);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].end, out[1].start, out[1].end),
            (7 + CHUNK_SAMPLES, 7 + CHUNK_SAMPLES, 8 + CHUNK_SAMPLES)
        );
        // Two regions that together just fit are one chunk.
        let pair = [region(0, SECOND), region(29 * SECOND, 30 * SECOND)];
        assert_eq!(chunks(&[], &pair, CHUNK_SAMPLES).len(), 1);
    }

    #[test]
    #[should_panic(expected = "at least one sample")]
    fn chunks_need_room() {
        chunks(&[], &[region(0, 1)], 0);
    }
}
