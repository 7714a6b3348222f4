//! `vad` on real speech: the fixtures, the same speech in noise, quiet and between long
//! silences, and (where this machine has them) the evaluation recordings of `shared/eval/asr`.
//!
//! "Speech" to be covered is measured from the recording itself: the 20 ms frames whose
//! pre-emphasized energy (which ignores rumble and DC) is within 20 dB of the loudest frame,
//! that is the syllable nuclei.
//!
//! The coded variants (Opus, MP3, µ-law, telephone band) are made from the fixtures with ffmpeg
//! (Debian package `ffmpeg`) in a temporary directory, as `tests/audio.rs` does.

use std::path::Path;
use std::time::Instant;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::vad::{chunks, speech_regions, SpeechRegion, VadOptions, CHUNK_SAMPLES};
use common::{audio_fixture, ffmpeg, goforward_samples, read, repo_path, Rng};

mod common;

const SECOND: usize = 16_000;
/// The evaluation set of the development checkout, beside the repository.
const EVAL_DIR: &str = "../shared/eval/asr";

fn regions(samples: &[f32]) -> Vec<SpeechRegion> {
    speech_regions(samples, &VadOptions::default())
}

fn seconds(regions: &[SpeechRegion]) -> Vec<(f32, f32)> {
    regions
        .iter()
        .map(|r| (r.start as f32 / SECOND as f32, r.end as f32 / SECOND as f32))
        .collect()
}

fn power(samples: &[f32]) -> f32 {
    samples.iter().map(|v| v * v).sum::<f32>() / samples.len() as f32
}

/// `speech` plus white noise `snr_db` below the power of `speech[reference]`.
fn with_white_noise(speech: &[f32], reference: &[f32], snr_db: f32, rng: &mut Rng) -> Vec<f32> {
    let sigma = (power(reference) / 10f32.powf(snr_db / 10.0)).sqrt();
    speech.iter().map(|v| v + sigma * rng.gaussian()).collect()
}

/// The start of each loud 20 ms frame (see the module comment).
fn loud_frames(samples: &[f32]) -> Vec<usize> {
    const FRAME: usize = SECOND / 50;
    let energy: Vec<f32> = (0..samples.len() / FRAME)
        .map(|i| {
            let start = i * FRAME;
            let e: f32 = (start.max(1)..start + FRAME)
                .map(|j| (samples[j] - 0.95 * samples[j - 1]).powi(2))
                .sum();
            10.0 * (e + 1e-20).log10()
        })
        .collect();
    let max = energy.iter().copied().fold(f32::MIN, f32::max);
    (0..energy.len())
        .filter(|&i| energy[i] >= max - 20.0)
        .map(|i| i * FRAME)
        .collect()
}

/// The fraction of `frames` (20 ms each) lying wholly inside a region.
fn coverage(frames: &[usize], regions: &[SpeechRegion]) -> f32 {
    let covered = frames
        .iter()
        .filter(|&&f| {
            regions
                .iter()
                .any(|r| r.start <= f && f + SECOND / 50 <= r.end)
        })
        .count();
    covered as f32 / frames.len() as f32
}

#[test]
fn goforward_is_one_region_around_its_words() {
    let samples = goforward_samples();
    // "go forward ten meters": syllables from 0.50 s to 2.22 s; a click at 0.22 s is bridged.
    let found = regions(&samples);
    assert_eq!(found.len(), 1, "{:?}", seconds(&found));
    let r = found[0];
    assert!(r.start <= SECOND / 2 - SECOND / 10, "{:?}", seconds(&found));
    assert!(
        r.end >= 2_220 * SECOND / 1000 + SECOND / 10,
        "{:?}",
        seconds(&found)
    );
    assert!(r.end <= samples.len());
    assert_eq!(coverage(&loud_frames(&samples), &found), 1.0);
}

#[test]
fn each_stereo_channel_follows_its_own_speaker() {
    let bytes = read(&audio_fixture("faster_whisper_stereo_diarization.wav"));
    let audio = decode(&bytes, Some("wav"), &AudioLimits::default()).unwrap();
    assert_eq!(audio.channels.len(), 2);
    // From the energy envelope (50 ms blocks): channel 0 talks from 0.30 s to 4.75 s with a
    // 0.25 s pause at 2.40 s; channel 1 from 0.35 s to 2.55 s, then fades out to digital
    // silence by 3.0 s.
    let expected = [(0.30, 4.75), (0.35, 2.55)];
    for (channel, (samples, (start, end))) in audio.channels.iter().zip(expected).enumerate() {
        let found = regions(samples);
        let spans = seconds(&found);
        assert_eq!(found.len(), 1, "channel {channel}: {spans:?}");
        let (s, e) = spans[0];
        assert!(
            s <= start && s >= start - 0.3,
            "channel {channel}: {spans:?}"
        );
        assert!(e >= end && e <= end + 0.5, "channel {channel}: {spans:?}");
        assert_eq!(
            coverage(&loud_frames(samples), &found),
            1.0,
            "channel {channel}"
        );
    }
}

#[test]
fn speech_in_white_noise_at_10_db_snr() {
    let clean = goforward_samples();
    let speech = &clean[SECOND / 2..2_250 * SECOND / 1000];
    for seed in 1..=5 {
        let noisy = with_white_noise(&clean, speech, 10.0, &mut Rng(seed));
        let found = regions(&noisy);
        let spans = seconds(&found);
        assert_eq!(found.len(), 1, "seed {seed}: {spans:?}");
        // All of the words ("meters" ends at 2.22 s), and nothing from the noise alone: the
        // region starts after the click at 0.22 s and ends within 0.3 s of the words.
        let (s, e) = spans[0];
        assert!((0.25..=0.45).contains(&s), "seed {seed}: {spans:?}");
        assert!((2.22..=2.5).contains(&e), "seed {seed}: {spans:?}");
        assert_eq!(coverage(&loud_frames(&clean), &found), 1.0, "seed {seed}");
    }
}

#[test]
fn quiet_speech_at_minus_30_dbfs() {
    let clean = goforward_samples();
    let peak = clean.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let loud = loud_frames(&clean);
    for peak_dbfs in [-30.0f32, -45.0] {
        let gain = 10f32.powf(peak_dbfs / 20.0) / peak;
        let quiet: Vec<f32> = clean.iter().map(|v| v * gain).collect();
        let found = regions(&quiet);
        let spans = seconds(&found);
        assert_eq!(found.len(), 1, "{peak_dbfs} dBFS: {spans:?}");
        assert_eq!(coverage(&loud, &found), 1.0, "{peak_dbfs} dBFS: {spans:?}");
        assert!(
            spans[0].0 >= 0.25 && spans[0].1 <= 2.5,
            "{peak_dbfs} dBFS: {spans:?}"
        );
    }
}

#[test]
fn speech_between_20_s_of_silence_or_line_noise() {
    let clean = goforward_samples();
    let lead = 20 * SECOND;
    let mut rng = Rng(11);
    // Digital silence; then the hiss and hum of a line, 40 dB below the speech peak.
    let hiss_and_hum = |rng: &mut Rng, i: usize| {
        let t = i as f64 / SECOND as f64;
        let hum: f64 = (1..=5)
            .map(|h| (2.0 * std::f64::consts::PI * 60.0 * h as f64 * t).sin() / h as f64)
            .sum();
        0.002 * rng.gaussian() + 0.002 * hum as f32
    };
    for with_noise in [false, true] {
        let mut signal = vec![0.0f32; lead];
        signal.extend(&clean);
        signal.extend(vec![0.0f32; lead]);
        if with_noise {
            for (i, v) in signal.iter_mut().enumerate() {
                *v += hiss_and_hum(&mut rng, i);
            }
        }
        let found = regions(&signal);
        let spans = seconds(&found);
        assert_eq!(found.len(), 1, "noise {with_noise}: {spans:?}");
        // Within the clip (20.0–22.79 s) and its padding, covering every syllable.
        let (s, e) = spans[0];
        assert!(
            s >= 20.0 - 0.2 && e <= 22.79 + 0.2,
            "noise {with_noise}: {spans:?}"
        );
        let loud: Vec<usize> = loud_frames(&clean).iter().map(|f| f + lead).collect();
        assert_eq!(
            coverage(&loud, &found),
            1.0,
            "noise {with_noise}: {spans:?}"
        );
        eprintln!("goforward between 20 s of silence (line noise: {with_noise}): {spans:?}");
    }
}

/// The evaluation recordings, decoded (first channel), with their names; empty where the
/// directory is absent (it is not distributed with the repository).
fn eval_recordings() -> Vec<(String, Vec<f32>)> {
    let Ok(entries) = std::fs::read_dir(repo_path(EVAL_DIR)) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let ext = path.extension()?.to_str()?.to_owned();
            if !["wav", "flac", "mp3"].contains(&ext.as_str()) {
                return None;
            }
            let audio = decode(&read(&path), Some(&ext), &AudioLimits::default()).unwrap();
            let name = path.file_name()?.to_str()?.to_owned();
            Some((name, audio.channels.into_iter().next()?))
        })
        .collect()
}

#[test]
fn eval_recordings_are_covered_clean_and_in_noise() {
    let recordings = eval_recordings();
    if recordings.is_empty() {
        eprintln!("{EVAL_DIR} not found: skipped");
        return;
    }
    let mut rng = Rng(12);
    let (mut clean_sum, mut noisy_sum) = (0.0, 0.0);
    for (name, samples) in &recordings {
        let loud = loud_frames(samples);
        let found = regions(samples);
        assert!(!found.is_empty(), "{name}: no speech");
        // Every syllable; the JFK clip ends in 0.2 s of applause (3 % of its loud frames).
        let clean = coverage(&loud, &found);
        assert!(clean >= 0.97, "{name}: {clean:.3} {:?}", seconds(&found));
        let noisy = coverage(
            &loud,
            &regions(&with_white_noise(samples, samples, 10.0, &mut rng)),
        );
        assert!(noisy >= 0.9, "{name} at 10 dB SNR: {noisy:.3}");
        eprintln!(
            "{name:48} syllables covered: clean {clean:.3}, white noise 10 dB SNR {noisy:.3}"
        );
        clean_sum += clean;
        noisy_sum += noisy;
    }
    let n = recordings.len() as f32;
    eprintln!(
        "{} recordings, mean coverage clean {:.3}, 10 dB SNR {:.3}",
        recordings.len(),
        clean_sum / n,
        noisy_sum / n
    );
}

/// `minutes` of a call-like channel: the fixtures' speech at random levels, separated by
/// 1–8 s of line noise (hiss), plus the speech of the eval set where present.
fn long_channel(minutes: usize) -> Vec<f32> {
    let mut rng = Rng(13);
    let mut speech: Vec<Vec<f32>> = vec![goforward_samples()];
    speech.extend(eval_recordings().into_iter().map(|(_, s)| s));
    let total = minutes * 60 * SECOND;
    let mut out = Vec::with_capacity(total);
    let mut k = 0;
    while out.len() < total {
        let pause = SECOND + (rng.uniform() * 7.0 * SECOND as f32) as usize;
        out.extend((0..pause).map(|_| 0.001 * rng.gaussian()));
        let gain = 0.3 + rng.uniform();
        out.extend(
            speech[k % speech.len()]
                .iter()
                .map(|v| v * gain + 0.001 * rng.gaussian()),
        );
        k += 1;
    }
    out.truncate(total);
    out
}

fn real_time_fraction(samples: &[f32]) -> (f64, Vec<SpeechRegion>) {
    let started = Instant::now();
    let found = regions(samples);
    let seconds = started.elapsed().as_secs_f64();
    (seconds / (samples.len() as f64 / SECOND as f64), found)
}

#[test]
fn five_minutes_take_well_under_1_percent_of_real_time() {
    let samples = long_channel(5);
    let (fraction, found) = real_time_fraction(&samples);
    eprintln!("5 min analysed in {:.3} % of real time", 100.0 * fraction);
    assert!(fraction < 0.01, "{:.2} % of real time", 100.0 * fraction);
    assert!(found.len() > 20);
    let out = chunks(&samples, &found, CHUNK_SAMPLES);
    assert!(out.iter().all(|c| c.end - c.start <= CHUNK_SAMPLES));
    assert_eq!(
        out.iter().map(|c| c.regions.len()).sum::<usize>(),
        found.len()
    );
}

/// The figure quoted in `vad`'s documentation; an hour of samples is 230 MB, so not by default.
#[test]
#[ignore = "an hour of audio: run with --ignored to measure"]
fn one_hour() {
    let samples = long_channel(60);
    let (fraction, found) = real_time_fraction(&samples);
    let speech: usize = found.iter().map(SpeechRegion::len).sum();
    let started = Instant::now();
    let out = chunks(&samples, &found, CHUNK_SAMPLES);
    eprintln!(
        "60 min: speech_regions {:.2} s ({:.3} % of real time), {} regions, {:.0} % speech; \
         chunks {:.3} s, {} chunks",
        fraction * 3600.0,
        100.0 * fraction,
        found.len(),
        100.0 * speech as f64 / samples.len() as f64,
        started.elapsed().as_secs_f64(),
        out.len()
    );
    assert!(fraction < 0.01);
}

/// A lossy or telephone coding of the call path: its name, the file extension, an audio filter
/// to apply first (if any) and ffmpeg's output options.
struct Coding {
    name: &'static str,
    extension: &'static str,
    filter: Option<&'static str>,
    args: &'static [&'static str],
}

/// LiveKit egress's Ogg/Opus at low and usual bitrates, a low-bitrate MP3, G.711 µ-law, 8 kHz
/// Opus at a telephone bitrate, and GSM-like 300–3400 Hz band-limited speech.
const CODINGS: [Coding; 7] = [
    Coding {
        name: "Opus 24 kbit/s",
        extension: "opus",
        filter: None,
        args: &["-c:a", "libopus", "-b:a", "24k"],
    },
    Coding {
        name: "Opus 24 kbit/s voip",
        extension: "opus",
        filter: None,
        args: &["-c:a", "libopus", "-b:a", "24k", "-application", "voip"],
    },
    Coding {
        name: "MP3 32 kbit/s",
        extension: "mp3",
        filter: None,
        args: &["-c:a", "libmp3lame", "-b:a", "32k"],
    },
    Coding {
        name: "Opus 64 kbit/s",
        extension: "opus",
        filter: None,
        args: &["-c:a", "libopus", "-b:a", "64k"],
    },
    Coding {
        name: "8 kHz µ-law",
        extension: "wav",
        filter: None,
        args: &["-ar", "8000", "-c:a", "pcm_mulaw"],
    },
    Coding {
        name: "8 kHz Opus 12 kbit/s voip",
        extension: "opus",
        filter: None,
        args: &[
            "-ar",
            "8000",
            "-c:a",
            "libopus",
            "-b:a",
            "12k",
            "-application",
            "voip",
        ],
    },
    Coding {
        name: "300–3400 Hz band",
        extension: "wav",
        filter: Some("highpass=300,lowpass=3400"),
        args: &[],
    },
];

impl Coding {
    /// `input` coded, with `pre` (e.g. a channel pick) filtered in before the coding's filter;
    /// decoded back by `decode`.
    fn apply(&self, dir: &Path, input: &[&str], pre: Option<&str>, name: &str) -> Vec<Vec<f32>> {
        let filter: Vec<&str> = pre.into_iter().chain(self.filter).collect();
        let filter = filter.join(",");
        let mut args: Vec<&str> = Vec::new();
        if !filter.is_empty() {
            args.extend(["-af", &filter]);
        }
        args.extend(self.args);
        let output_name = format!("{name}.{}", self.extension);
        let path = ffmpeg(dir, input, &args, &output_name);
        match decode(&read(&path), Some(self.extension), &AudioLimits::default()) {
            Ok(audio) => audio.channels,
            Err(e) => panic!("{}: {output_name}: {e}", self.name),
        }
    }
}

/// Asserts that `found` is one region within 0.3 s of `original`'s at both ends, covering
/// every syllable of `clean` (the uncoded channel).
fn assert_like_original(what: &str, found: &[SpeechRegion], original: SpeechRegion, clean: &[f32]) {
    let spans = seconds(found);
    let tolerance = 3 * SECOND / 10;
    assert_eq!(found.len(), 1, "{what}: {spans:?}");
    assert!(
        found[0].start.abs_diff(original.start) <= tolerance
            && found[0].end.abs_diff(original.end) <= tolerance,
        "{what}: {spans:?}, uncoded {:?}",
        seconds(&[original])
    );
    assert_eq!(
        coverage(&loud_frames(clean), found),
        1.0,
        "{what}: {spans:?}"
    );
}

/// Low-bitrate codecs band-limit the speech, replace its harmonics above 2–3 kHz with noise
/// (noise filling, spreading, coarse LPC excitation) and flatten its spectral change; the
/// speech must still be found, where the uncoded speech is.
#[test]
fn speech_is_found_after_lossy_and_telephone_coding() {
    let dir = tempfile::tempdir().unwrap();
    let stereo = audio_fixture("faster_whisper_stereo_diarization.wav");
    let stereo = stereo.to_str().unwrap();
    let clean = decode(
        &read(Path::new(stereo)),
        Some("wav"),
        &AudioLimits::default(),
    )
    .unwrap()
    .channels;
    let original: Vec<SpeechRegion> = clean
        .iter()
        .map(|samples| {
            let found = regions(samples);
            assert_eq!(found.len(), 1, "{:?}", seconds(&found));
            found[0]
        })
        .collect();
    let goforward = audio_fixture("goforward.wav");
    let goforward = goforward.to_str().unwrap();
    let goforward_clean = goforward_samples();
    let goforward_original = regions(&goforward_clean);
    assert_eq!(goforward_original.len(), 1);

    for (k, coding) in CODINGS.iter().enumerate() {
        // Both channels in one stereo file, as egress writes a room (at 8 kHz and 12 kbit/s
        // libopus codes stereo as one channel, so that one only per channel)...
        if coding.args.iter().all(|&a| a != "12k") {
            let coded = coding.apply(dir.path(), &["-i", stereo], None, &format!("stereo{k}"));
            assert_eq!(coded.len(), 2, "{}", coding.name);
            for (channel, samples) in coded.iter().enumerate() {
                let found = regions(samples);
                let what = format!("{} stereo, channel {channel}", coding.name);
                assert_like_original(&what, &found, original[channel], &clean[channel]);
                eprintln!("{what}: {:?}", seconds(&found));
            }
        }
        // ...each channel alone, as a track per participant...
        for (channel, clean) in clean.iter().enumerate() {
            let pick = format!("pan=mono|c0=c{channel}");
            let coded = coding.apply(
                dir.path(),
                &["-i", stereo],
                Some(&pick),
                &format!("channel{channel}_{k}"),
            );
            let found = regions(&coded[0]);
            let what = format!("{} mono, channel {channel}", coding.name);
            assert_like_original(&what, &found, original[channel], clean);
            eprintln!("{what}: {:?}", seconds(&found));
        }
        // ...and the mono fixture.
        let coded = coding.apply(
            dir.path(),
            &["-i", goforward],
            None,
            &format!("goforward{k}"),
        );
        let found = regions(&coded[0]);
        let what = format!("{} goforward", coding.name);
        assert_like_original(&what, &found, goforward_original[0], &goforward_clean);
        eprintln!("{what}: {:?}", seconds(&found));
    }
}

/// Lossy coding does not make speech of noise or of silence: 20 s of white and pink noise, at
/// a line's level and a quiet one, and digital silence, through every coding.
#[test]
fn lossy_coding_of_noise_and_silence_is_not_speech() {
    let dir = tempfile::tempdir().unwrap();
    let sources = [
        ("white noise", "anoisesrc=d=20:c=white:r=16000:a=0.1:seed=1"),
        ("pink noise", "anoisesrc=d=20:c=pink:r=16000:a=0.1:seed=2"),
        (
            "quiet white noise",
            "anoisesrc=d=20:c=white:r=16000:a=0.003:seed=3",
        ),
        (
            "quiet pink noise",
            "anoisesrc=d=20:c=pink:r=16000:a=0.003:seed=4",
        ),
        ("digital silence", "anullsrc=r=16000:cl=mono:d=20"),
    ];
    for (s, (source_name, source)) in sources.iter().enumerate() {
        let input = ["-f", "lavfi", "-i", source];
        for (k, coding) in CODINGS.iter().enumerate() {
            let coded = coding.apply(dir.path(), &input, None, &format!("noise{s}_{k}"));
            assert!(
                coded[0].len() >= 19 * SECOND,
                "{source_name}, {}: {} samples",
                coding.name,
                coded[0].len()
            );
            for samples in &coded {
                let found = regions(samples);
                assert!(
                    found.is_empty(),
                    "{source_name}, {}: {:?}",
                    coding.name,
                    seconds(&found)
                );
            }
        }
    }
}
