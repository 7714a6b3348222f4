//! The speaker encoder against resemblyzer 0.1.4 (`fixtures/speaker/references.json`, written by
//! `scripts/speaker-references`). Needs `models/resemblyzer/pretrained.pt`
//! (`scripts/fetch-models`); the tests fail without it.

use std::time::Instant;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::speaker::{cosine, SpeakerEncoder, SpeakerError, EMBEDDING_SIZE};
use common::{repo_path, speaker_encoder};
use serde_json::Value;

mod common;

/// A recording of `fixtures/audio/`, one buffer per channel (16 kHz f32).
fn channels(name: &str) -> Vec<Vec<f32>> {
    let path = repo_path("fixtures/audio").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode(&bytes, Some("wav"), &AudioLimits::default())
        .unwrap()
        .channels
}

/// The samples a reference was computed on: `goforward`, `stereo.N` or `stereo.N[a..b]`.
fn samples_of(name: &str) -> Vec<f32> {
    let (base, range) = match name.split_once('[') {
        Some((base, range)) => {
            let (a, b) = range.trim_end_matches(']').split_once("..").unwrap();
            (
                base,
                Some(a.parse::<usize>().unwrap()..b.parse::<usize>().unwrap()),
            )
        }
        None => (name, None),
    };
    let samples = match base {
        "goforward" => channels("goforward.wav").remove(0),
        "stereo.0" => channels("faster_whisper_stereo_diarization.wav").remove(0),
        "stereo.1" => channels("faster_whisper_stereo_diarization.wav").remove(1),
        other => panic!("unknown reference {other}"),
    };
    match range {
        Some(range) => samples[range].to_vec(),
        None => samples,
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// `(name, samples, resemblyzer's embedding)` of every reference.
fn references() -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let path = repo_path("fixtures/speaker/references.json");
    let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap().to_string();
            let samples = samples_of(&name);
            assert_eq!(samples.len() as u64, entry["samples"].as_u64().unwrap());
            (name, samples, floats(&entry["embedding"]))
        })
        .collect()
}

#[test]
fn embeddings_match_resemblyzer() {
    let encoder = speaker_encoder();
    let references = references();
    assert_eq!(references.len(), 7);
    for (name, samples, expected) in &references {
        let start = Instant::now();
        let ours = encoder.embed_utterance(samples).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(ours.len(), EMBEDDING_SIZE);
        let norm = ours.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{name}: norm {norm}");
        assert!(ours.iter().all(|&v| v >= 0.0), "{name}: negative values");
        let similarity = cosine(&ours, expected);
        let max_diff = ours
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "{name}: {:.2} s of audio in {elapsed:.2?}, cosine {similarity:.7}, max |diff| {max_diff:.2e}",
            samples.len() as f64 / 16_000.0
        );
        assert!(similarity >= 0.99, "{name}: cosine {similarity}");
        // Measured: ≤ 2.6e-7 (same f32 arithmetic up to summation order).
        assert!(max_diff < 1e-5, "{name}: max |diff| {max_diff}");
    }
}

#[test]
fn batched_windows_equal_single_utterances() {
    let encoder = speaker_encoder();
    let references = references();
    let windows: Vec<&[f32]> = references.iter().map(|(_, s, _)| s.as_slice()).collect();
    let batched = encoder.embed_windows(&windows).unwrap();

    // Diarization's use: 1.5 s windows every 0.25 s over both channels, in one call.
    let stereo = channels("faster_whisper_stereo_diarization.wav");
    let sliding: Vec<&[f32]> = stereo
        .iter()
        .flat_map(|c| {
            (0..=c.len() - 24_000)
                .step_by(4_000)
                .map(|s| &c[s..s + 24_000])
        })
        .collect();
    let start = Instant::now();
    let embeds = encoder.embed_windows(&sliding).unwrap();
    eprintln!(
        "{} windows of 1.5 s in {:.2?}",
        embeds.len(),
        start.elapsed()
    );
    assert_eq!(embeds.len(), sliding.len());
    for ((name, samples, _), batched) in references.iter().zip(&batched) {
        let single = encoder.embed_utterance(samples).unwrap();
        let similarity = cosine(&single, batched);
        assert!(similarity > 0.999_99, "{name}: {similarity}");
    }
}

#[test]
fn the_two_stereo_speakers_are_far_apart() {
    let encoder = speaker_encoder();
    let stereo = channels("faster_whisper_stereo_diarization.wav");
    let half = stereo[0].len() / 2;
    let halves: Vec<&[f32]> = stereo
        .iter()
        .flat_map(|c| [&c[..half], &c[half..]])
        .collect();
    let whole = encoder.embed_windows(&[&stereo[0], &stereo[1]]).unwrap();
    let parts = encoder.embed_windows(&halves).unwrap();
    let across = cosine(&whole[0], &whole[1]);
    let mut same = Vec::new();
    for channel in 0..2 {
        for part in &parts[2 * channel..2 * channel + 2] {
            same.push(cosine(&whole[channel], part));
        }
    }
    let mut crossed = vec![across];
    for (channel, other) in [(0, 1), (1, 0)] {
        for part in &parts[2 * other..2 * other + 2] {
            crossed.push(cosine(&whole[channel], part));
        }
    }
    eprintln!("same speaker (channel vs its halves): {same:?}; across speakers: {crossed:?}");
    let lowest_same = same.iter().copied().fold(f32::INFINITY, f32::min);
    let highest_across = crossed.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    assert!(
        highest_across < lowest_same,
        "across {highest_across} ≥ same {lowest_same}"
    );
    assert!(across < 0.8, "the two channels' speakers: cosine {across}");
}

#[test]
fn missing_or_wrong_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("pretrained.pt");
    let error = SpeakerEncoder::open(&missing).unwrap_err();
    assert!(matches!(error, SpeakerError::Io { .. }), "{error}");
    assert!(error.to_string().contains("pretrained.pt"), "{error}");

    let wrong = dir.path().join("wrong.pt");
    std::fs::write(&wrong, b"not a checkpoint").unwrap();
    let error = SpeakerEncoder::open(&wrong).unwrap_err();
    assert!(error.to_string().contains("magic number"), "{error}");

    let truncated = dir.path().join("truncated.pt");
    let bytes = std::fs::read(repo_path("models/resemblyzer/pretrained.pt")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = SpeakerEncoder::open(&truncated).unwrap_err();
    assert!(error.to_string().contains("truncated"), "{error}");

    assert!(matches!(
        speaker_encoder().embed_utterance(&[]),
        Err(SpeakerError::Empty)
    ));
}
