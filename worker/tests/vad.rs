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
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::silero::{self, SileroOptions, SileroVad};
use callscript_worker::transcribe::{Recording, TranscribeOptions};
use callscript_worker::vad::{chunks, speech_regions, SpeechRegion, VadOptions, CHUNK_SAMPLES};
use callscript_worker::wer::normalize;
use common::{audio_fixture, ffmpeg, goforward_samples, max_abs_diff, read, repo_path, Rng};

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

// ---------------------------------------------------------------------------------------------
// Silero VAD v6 (`callscript_worker::silero`).

/// The bundled Silero VAD; the tests fail (not skip) without it.
fn silero() -> &'static SileroVad {
    static MODEL: OnceLock<SileroVad> = OnceLock::new();
    MODEL.get_or_init(|| {
        SileroVad::open(&repo_path("models/silero-vad/silero_vad_16k_op15.onnx"))
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Every frame's probability within 1e-3 of silero's own ONNX model run by onnxruntime
/// (`scripts/silero-references`), on clean speech and on telephone-coded speech (300–3400 Hz,
/// 8 kHz µ-law), with the state carried over 10 s.
#[test]
fn silero_probabilities_match_onnxruntime() {
    let references: serde_json::Value =
        serde_json::from_slice(&read(&repo_path("fixtures/silero/references.json"))).unwrap();
    for file in references["files"].as_array().unwrap() {
        let path = file["path"].as_str().unwrap();
        let extension = Path::new(path).extension().unwrap().to_str().unwrap();
        let audio = decode(
            &read(&repo_path(path)),
            Some(extension),
            &AudioLimits::default(),
        )
        .unwrap();
        let samples = &audio.channels[0];
        assert_eq!(
            samples.len() as u64,
            file["samples"].as_u64().unwrap(),
            "{path}"
        );
        let expected: Vec<f32> = file["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap() as f32)
            .collect();
        let found = silero().probabilities(samples).unwrap();
        assert_eq!(found.len(), expected.len(), "{path}");
        let diff = max_abs_diff(&found, &expected);
        eprintln!(
            "{path}: {} frames, largest difference {diff:.2e}",
            found.len()
        );
        assert!(diff < 1e-3, "{path}: largest difference {diff}");
        // Not a model that says the same everywhere: speech and pauses both occur.
        assert!(expected.iter().any(|&p| p > 0.9) && expected.iter().any(|&p| p < 0.1));
    }
}

/// Non-speech a call carries, at 16 kHz, `seconds` long.
fn non_speech(kind: &str, seconds: usize, rng: &mut Rng) -> Vec<f32> {
    let n = seconds * SECOND;
    let t = |i: usize| i as f64 / SECOND as f64;
    let sine = |hz: f64, i: usize| (2.0 * std::f64::consts::PI * hz * t(i)).sin() as f32;
    match kind {
        // Digital silence with the dither of a 16-bit converter.
        "silence" => (0..n).map(|_| 3e-5 * rng.gaussian()).collect(),
        // A line's hiss and mains hum, 40 dB below a talker.
        "line noise" => (0..n)
            .map(|i| {
                let hum: f32 = (1..=5).map(|h| sine(60.0 * h as f64, i) / h as f32).sum();
                0.003 * rng.gaussian() + 0.002 * hum
            })
            .collect(),
        // A codec's comfort noise: level and tilt change every 160 ms.
        "comfort noise" => {
            let mut out = Vec::with_capacity(n);
            let mut low = 0.0f32;
            while out.len() < n {
                let level = 10f32.powf((-60.0 + 20.0 * rng.uniform()) / 20.0);
                let tilt = 0.3 + 0.65 * rng.uniform();
                for _ in 0..SECOND * 160 / 1000 {
                    low = tilt * low + (1.0 - tilt) * rng.gaussian();
                    out.push(level * 3.0 * low);
                }
            }
            out.truncate(n);
            out
        }
        // North American ringback: 440 + 480 Hz, 2 s on, 4 s off.
        "ringback" => (0..n)
            .map(|i| {
                let on = (i % (6 * SECOND)) < 2 * SECOND;
                if on {
                    0.08 * (sine(440.0, i) + sine(480.0, i))
                } else {
                    0.0
                }
            })
            .collect(),
        // A card number keyed: 16 digits of 100 ms, 80 ms apart, then 2 s of quiet.
        "dtmf" => {
            const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
            const COLUMNS: [f64; 3] = [1209.0, 1336.0, 1477.0];
            let mut out = Vec::with_capacity(n);
            while out.len() < n {
                for _ in 0..16 {
                    let row = ROWS[(rng.uniform() * 4.0) as usize % 4];
                    let column = COLUMNS[(rng.uniform() * 3.0) as usize % 3];
                    let start = out.len();
                    out.extend(
                        (0..SECOND / 10)
                            .map(|k| 0.1 * (sine(row, start + k) + sine(column, start + k))),
                    );
                    out.extend(vec![0.0; SECOND * 80 / 1000]);
                }
                out.extend(vec![0.0; 2 * SECOND]);
            }
            out.truncate(n);
            out
        }
        // Hold music: a melody of plucked notes (six harmonics, decaying) over a chord that
        // changes every 2 s, with a bass note and a little vibrato.
        "hold music" => {
            const SCALE: [f64; 8] = [261.6, 293.7, 329.6, 392.0, 440.0, 523.3, 587.3, 659.3];
            const CHORDS: [[f64; 3]; 4] = [
                [261.6, 329.6, 392.0],
                [220.0, 261.6, 329.6],
                [174.6, 220.0, 261.6],
                [196.0, 246.9, 293.7],
            ];
            let mut out = vec![0.0f32; n];
            let mut start = 0;
            while start < n {
                let length = SECOND / 4 * (1 + (rng.uniform() * 2.0) as usize);
                let pitch = SCALE[(rng.uniform() * 8.0) as usize % 8];
                for k in 0..length.min(n - start) {
                    let decay = (-3.0 * k as f64 / SECOND as f64).exp() as f32;
                    let note: f32 = (1..=6)
                        .map(|h| sine(pitch * h as f64, start + k) / h as f32)
                        .sum();
                    out[start + k] += 0.12 * decay * note;
                }
                start += length;
            }
            for (i, v) in out.iter_mut().enumerate() {
                let chord = CHORDS[(i / (2 * SECOND)) % 4];
                let vibrato = 1.0 + 0.004 * (2.0 * std::f64::consts::PI * 5.0 * t(i)).sin();
                let pad: f32 = chord.iter().map(|&f| sine(f * vibrato, i)).sum();
                *v += 0.04 * pad + 0.06 * sine(chord[0] / 2.0, i);
            }
            out
        }
        _ => unreachable!("{kind}"),
    }
}

const NON_SPEECH: [&str; 6] = [
    "silence",
    "line noise",
    "comfort noise",
    "ringback",
    "dtmf",
    "hold music",
];

/// `samples` (16 kHz) through a telephone line: 300–3400 Hz, 8 kHz G.711 µ-law, decoded back.
fn telephone(samples: &[f32], dir: &Path, name: &str) -> Vec<f32> {
    let raw = dir.join(format!("{name}.f32"));
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();
    let input = [
        "-f",
        "f32le",
        "-ar",
        "16000",
        "-ac",
        "1",
        "-i",
        raw.to_str().unwrap(),
    ];
    let args = [
        "-af",
        "highpass=300,lowpass=3400",
        "-ar",
        "8000",
        "-c:a",
        "pcm_mulaw",
    ];
    let coded = ffmpeg(dir, &input, &args, &format!("{name}.wav"));
    let audio = decode(&read(&coded), Some("wav"), &AudioLimits::default()).unwrap();
    audio.channels.into_iter().next().unwrap()
}

/// The ways of finding speech compared by `measure_speech_detectors`.
#[derive(Debug, Clone, Copy)]
enum Detector {
    /// `vad::speech_regions` alone (the DSP tests).
    Dsp,
    /// Silero with these options alone.
    Silero(SileroOptions),
    /// Silero's regions where the DSP detector also finds speech (sample-wise intersection).
    Both(SileroOptions),
}

fn detect(detector: Detector, samples: &[f32]) -> Vec<SpeechRegion> {
    match detector {
        Detector::Dsp => regions(samples),
        Detector::Silero(options) => {
            let probabilities = silero().probabilities(samples).unwrap();
            silero::speech_regions(&probabilities, samples.len(), &options)
        }
        Detector::Both(options) => {
            let probabilities = silero().probabilities(samples).unwrap();
            let neural = silero::speech_regions(&probabilities, samples.len(), &options);
            let dsp = regions(samples);
            let mut out = Vec::new();
            for a in &neural {
                for b in &dsp {
                    let (start, end) = (a.start.max(b.start), a.end.min(b.end));
                    if end > start + SECOND / 4 {
                        out.push(SpeechRegion { start, end });
                    }
                }
            }
            out
        }
    }
}

fn region_samples(regions: &[SpeechRegion]) -> usize {
    regions.iter().map(SpeechRegion::len).sum()
}

/// Samples of `regions` inside `start..end`.
fn inside(regions: &[SpeechRegion], start: usize, end: usize) -> usize {
    regions
        .iter()
        .map(|r| r.end.min(end).saturating_sub(r.start.max(start)))
        .sum()
}

/// The speech of the evaluation set: (name, samples, held out). The asr clips alternate between
/// tuning and held out in name order; the stereo channels and the diarization file are held out.
fn speech_set() -> Vec<(String, Vec<f32>, bool)> {
    let mut set: Vec<(String, Vec<f32>, bool)> = eval_recordings()
        .into_iter()
        .enumerate()
        .map(|(i, (name, samples))| (name, samples, i % 2 == 1))
        .collect();
    for (dir, file) in [
        (
            "../shared/eval/stereo",
            "faster_whisper_stereo_diarization.wav",
        ),
        ("../shared/eval/diarization", "picovoice_falcon_test.wav"),
    ] {
        let path = repo_path(dir).join(file);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let audio = decode(&bytes, Some("wav"), &AudioLimits::default()).unwrap();
        for (c, samples) in audio.channels.into_iter().enumerate() {
            set.push((format!("{file}[{c}]"), samples, true));
        }
    }
    set
}

/// The figures behind the choice of detector (`silero` module docs): speech found (syllables
/// covered) and non-speech taken for speech, on the evaluation set clean and telephone-coded,
/// each clip between 3 s of two kinds of non-speech; region seconds on 30 s of each kind of
/// non-speech; the time each takes. Prints them; asserts only what the choice rests on.
#[test]
#[ignore = "measurement (minutes): cargo test --test vad -- --ignored --nocapture measure"]
fn measure_speech_detectors() {
    let set = speech_set();
    assert!(!set.is_empty(), "{EVAL_DIR} is needed");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(21);
    let transcriber = SileroOptions {
        min_silence_ms: 400,
        speech_pad_ms: 200,
        ..SileroOptions::default()
    };
    let detectors: Vec<(String, Detector)> = vec![
        ("dsp".into(), Detector::Dsp),
        (
            "silero default".into(),
            Detector::Silero(SileroOptions::default()),
        ),
        ("silero pad 200".into(), Detector::Silero(transcriber)),
        (
            "silero transcriber".into(),
            Detector::Silero(silero::TRANSCRIBER),
        ),
        ("silero ∧ dsp".into(), Detector::Both(transcriber)),
    ];
    // Each clip between 3 s of two kinds of non-speech.
    let margin = 3 * SECOND;
    let composites: Vec<(String, Vec<f32>, Vec<f32>, bool)> = set
        .iter()
        .enumerate()
        .map(|(i, (name, samples, held_out))| {
            let mut composite = non_speech(NON_SPEECH[i % 6], 3, &mut rng);
            composite.extend(samples);
            composite.extend(non_speech(NON_SPEECH[(i + 1) % 6], 3, &mut rng));
            let coded = telephone(&composite, dir.path(), &format!("speech{i}"));
            (name.clone(), composite, coded, *held_out)
        })
        .collect();
    for (label, detector) in &detectors {
        for coded in [false, true] {
            for held_out in [false, true] {
                let (mut covered, mut loud, mut in_clip, mut outside) = (0.0, 0usize, 0, 0);
                let mut worst = (1.0f32, String::new());
                for ((name, clean, tel, _), (_, samples, _)) in composites
                    .iter()
                    .zip(&set)
                    .filter(|((_, _, _, h), _)| *h == held_out)
                {
                    let signal = if coded { tel } else { clean };
                    let found = detect(*detector, signal);
                    let frames: Vec<usize> =
                        loud_frames(samples).iter().map(|f| f + margin).collect();
                    let c = coverage(&frames, &found);
                    if c < worst.0 {
                        worst = (c, name.clone());
                    }
                    covered += c * frames.len() as f32;
                    loud += frames.len();
                    // The clip and 0.3 s either side (a region's padding) count as speech.
                    let (start, end) = (
                        margin - SECOND * 3 / 10,
                        margin + samples.len() + SECOND * 3 / 10,
                    );
                    let within = inside(&found, start, end);
                    in_clip += within;
                    outside += region_samples(&found) - within;
                }
                eprintln!(
                    "{label:26} {} {}: syllables covered {:.4} (worst {:.3} {}), precision {:.4}, \
                     {:.1} s of non-speech taken",
                    if coded { "telephone" } else { "clean    " },
                    if held_out { "held-out" } else { "tuned   " },
                    covered / loud as f32,
                    worst.0,
                    worst.1,
                    in_clip as f32 / (in_clip + outside).max(1) as f32,
                    outside as f32 / SECOND as f32
                );
            }
        }
    }
    // 30 s of each kind of non-speech alone, clean and through the telephone line.
    for kind in NON_SPEECH {
        let clean = non_speech(kind, 30, &mut rng);
        let coded = telephone(&clean, dir.path(), kind);
        for (label, detector) in &detectors {
            let a = region_samples(&detect(*detector, &clean)) as f32 / SECOND as f32;
            let b = region_samples(&detect(*detector, &coded)) as f32 / SECOND as f32;
            eprintln!("{kind:14} {label:26} regions: clean {a:5.1} s, telephone {b:5.1} s");
        }
    }
    let long = long_channel(5);
    for (label, detector) in &detectors[..2] {
        let started = Instant::now();
        detect(*detector, &long);
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{label}: 5 min in {seconds:.2} s, {:.3} % of real time",
            100.0 * seconds / 300.0
        );
    }
}

/// Words tiny.en writes on 30 s of each kind of non-speech (clean and through a telephone
/// line) when it is given what each detector finds, chunked as the transcriber chunks it
/// (`vad::chunks`), and when it is given everything (no VAD).
#[test]
#[ignore = "measurement (minutes): cargo test --test vad -- --ignored --nocapture measure"]
fn measure_words_on_non_speech() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(22);
    let transcriber_options = SileroOptions {
        min_silence_ms: 400,
        speech_pad_ms: 200,
        ..SileroOptions::default()
    };
    let detectors: [(&str, Option<Detector>); 4] = [
        ("no vad", None),
        ("dsp", Some(Detector::Dsp)),
        (
            "silero pad 200",
            Some(Detector::Silero(transcriber_options)),
        ),
        (
            "silero transcriber",
            Some(Detector::Silero(silero::TRANSCRIBER)),
        ),
    ];
    let mut transcriber = common::tiny_en_transcriber(TranscribeOptions {
        vad: None,
        ..TranscribeOptions::default()
    });
    for kind in NON_SPEECH {
        let clean = non_speech(kind, 30, &mut rng);
        let coded = telephone(&clean, dir.path(), kind);
        for (line, samples) in [("clean", &clean), ("telephone", &coded)] {
            for (label, detector) in &detectors {
                let spans: Vec<(usize, usize)> = match detector {
                    None => vec![(0, samples.len())],
                    Some(d) => chunks(samples, &detect(*d, samples), CHUNK_SAMPLES)
                        .iter()
                        .map(|c| (c.start, c.end))
                        .collect(),
                };
                let recordings: Vec<Recording> = spans
                    .iter()
                    .map(|&(start, end)| Recording {
                        name: format!("{kind} {start}"),
                        channels: vec![samples[start..end].to_vec()],
                    })
                    .collect();
                let transcripts = transcriber.transcribe(&recordings, &mut |_| {}).unwrap();
                let text: Vec<String> = transcripts.iter().map(|t| t.text()).collect();
                let words: usize = text.iter().map(|t| normalize(t).len()).sum();
                eprintln!(
                    "{kind:14} {line:9} {label:16} {words:3} words {:?}",
                    text.join(" | ")
                );
            }
        }
    }
}

/// Through the whole transcriber (tiny.en, Silero VAD wired in): the fixture's words are heard,
/// also after a telephone line, and 20 s of silence, line noise, comfort noise, ringback, DTMF
/// or hold music, clean or through the line, give no segment at all.
#[test]
fn the_transcriber_writes_speech_and_nothing_for_non_speech() {
    let dir = tempfile::tempdir().unwrap();
    let model = SileroVad::open(&repo_path("models/silero-vad/silero_vad_16k_op15.onnx")).unwrap();
    let mut transcriber =
        common::tiny_en_transcriber(TranscribeOptions::default()).with_silero(Arc::new(model));
    let mut rng = Rng(23);
    let goforward = goforward_samples();
    let mut recordings = vec![
        Recording {
            name: "goforward".into(),
            channels: vec![goforward.clone()],
        },
        Recording {
            name: "goforward, telephone".into(),
            channels: vec![telephone(&goforward, dir.path(), "goforward")],
        },
    ];
    for kind in NON_SPEECH {
        let clean = non_speech(kind, 20, &mut rng);
        let coded = telephone(&clean, dir.path(), kind);
        recordings.push(Recording {
            name: kind.into(),
            channels: vec![clean],
        });
        recordings.push(Recording {
            name: format!("{kind}, telephone"),
            channels: vec![coded],
        });
    }
    let transcripts = transcriber.transcribe(&recordings, &mut |_| {}).unwrap();
    for (recording, transcript) in recordings.iter().zip(&transcripts) {
        let words = normalize(&transcript.text());
        eprintln!("{}: {words:?}", recording.name);
        if recording.name.starts_with("goforward") {
            assert!(
                words.contains(&"forward".to_owned()),
                "{}: {words:?}",
                recording.name
            );
        } else {
            assert!(words.is_empty(), "{}: {words:?}", recording.name);
        }
    }
}

/// Words the transcriber (tiny.en) puts inside the `hold_music`, `ringback`, `dtmf` and
/// `silence` events of the phone-call suite (`scripts/phone-suite --out DIR`, then
/// `CALLSCRIPT_PHONE_SUITE=DIR`), stereo and mono, tune and holdout, with each way of finding
/// speech (`MODES`, default `none,dsp,silero`). A segment's words count when at least half of
/// it lies inside an event.
#[test]
#[ignore = "measurement (minutes): CALLSCRIPT_PHONE_SUITE=DIR cargo test --test vad -- --ignored --nocapture measure_words_in_suite"]
fn measure_words_in_suite_events() {
    let dir = std::path::PathBuf::from(
        std::env::var("CALLSCRIPT_PHONE_SUITE").expect("CALLSCRIPT_PHONE_SUITE=<suite dir>"),
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("manifest.json"))).unwrap();
    let model = Arc::new(
        SileroVad::open(&repo_path("models/silero-vad/silero_vad_16k_op15.onnx")).unwrap(),
    );
    let modes = std::env::var("MODES").unwrap_or_else(|_| "none,dsp,silero".into());
    let mut words_by_mode = Vec::new();
    for mode in modes.split(',') {
        let mut transcriber = common::tiny_en_transcriber(TranscribeOptions {
            vad: (mode != "none").then(VadOptions::default),
            ..TranscribeOptions::default()
        });
        if mode == "silero" {
            transcriber = transcriber.with_silero(model.clone());
        }
        // [tune, holdout][stereo, mono]
        let mut totals = [[0usize; 2]; 2];
        let started = Instant::now();
        let mut audio_seconds = 0.0;
        for call in manifest["calls"].as_array().unwrap() {
            let spans: Vec<(f64, f64)> = call["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    ["hold_music", "ringback", "dtmf", "silence"]
                        .contains(&e["kind"].as_str().unwrap())
                })
                .map(|e| (e["start"].as_f64().unwrap(), e["end"].as_f64().unwrap()))
                .collect();
            if spans.is_empty() {
                continue;
            }
            let holdout = usize::from(call["split"] == "holdout");
            for (k, key) in ["stereo", "mono"].iter().enumerate() {
                let name = call[key].as_str().unwrap();
                let extension = name.rsplit('.').next().unwrap();
                let audio = decode(
                    &read(&dir.join(name)),
                    Some(extension),
                    &AudioLimits::default(),
                )
                .unwrap();
                let recording = Recording {
                    name: name.into(),
                    channels: audio.channels,
                };
                audio_seconds += recording.duration();
                let transcript = transcriber
                    .transcribe(std::slice::from_ref(&recording), &mut |_| {})
                    .unwrap();
                let mut words = Vec::new();
                for segment in transcript[0].channels.iter().flat_map(|c| &c.segments) {
                    let length = (segment.end - segment.start).max(1e-6);
                    let inside: f64 = spans
                        .iter()
                        .map(|&(s, e)| (segment.end.min(e) - segment.start.max(s)).max(0.0))
                        .sum();
                    if inside / length >= 0.5 {
                        words.extend(normalize(&segment.text));
                    }
                }
                totals[holdout][k] += words.len();
                eprintln!("{mode} {} {key}: {words:?}", call["id"]);
            }
        }
        eprintln!(
            "{mode}: words inside events: tune stereo {} mono {}, holdout stereo {} mono {} \
             ({audio_seconds:.0} s of audio in {:.0} s)",
            totals[0][0],
            totals[0][1],
            totals[1][0],
            totals[1][1],
            started.elapsed().as_secs_f64()
        );
        words_by_mode.push((mode.to_owned(), totals));
    }
    if let Some((_, silero)) = words_by_mode.iter().find(|(m, _)| m == "silero") {
        assert_eq!(
            silero.iter().flatten().sum::<usize>(),
            0,
            "{words_by_mode:?}"
        );
    }
}
