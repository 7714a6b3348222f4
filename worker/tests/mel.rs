//! The log-mel spectrogram against faster-whisper's own features of the same recording
//! (`fixtures/whisper/`, written by `scripts/whisper-references`).

use std::time::Instant;

use callscript_worker::mel::{mel_filters, MelExtractor, WINDOW_FRAMES};
use common::{goforward_samples, max_abs_diff, reference};

mod common;

/// The largest absolute difference allowed after the log scaling. Measured: 7.5e-6 (numpy 2's
/// float32 FFT and float32 matrix product against realfft's float32 FFT and a sparse sum, in
/// another order; the values lie in about [-0.7, 1.3]).
const MEL_TOLERANCE: f32 = 2e-5;

#[test]
fn goforward_matches_faster_whisper() {
    let samples = goforward_samples();
    let (meta, expected, shape) = reference("goforward.mel80");
    assert_eq!(meta["samples"].as_u64().unwrap() as usize, samples.len());

    let extractor = MelExtractor::new(80);
    let start = Instant::now();
    let mel = extractor.compute(&samples);
    eprintln!(
        "{} frames of log-mel in {:?}",
        mel.n_frames,
        start.elapsed()
    );
    assert_eq!(vec![mel.n_mels, mel.n_frames], shape);
    let diff = max_abs_diff(&mel.data, &expected);
    eprintln!("max abs difference from faster-whisper: {diff:e}");
    assert!(diff <= MEL_TOLERANCE, "max abs difference {diff:e}");

    // The first encoder window is the content frames, then zeros.
    let window = mel.window(0);
    let content = mel.content_frames();
    assert_eq!(content, mel.n_frames - 1);
    for band in [0, 40, 79] {
        let row = &window[band * WINDOW_FRAMES..(band + 1) * WINDOW_FRAMES];
        assert_eq!(
            &row[..content],
            &mel.data[band * mel.n_frames..band * mel.n_frames + content]
        );
        assert!(row[content..].iter().all(|&v| v == 0.0));
    }
}

#[test]
fn filterbank_128_matches_faster_whisper() {
    let (meta, _, _) = reference("goforward.mel80");
    let sums: Vec<f64> = meta["mel_filters_128_row_sums"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let maxima: Vec<f64> = meta["mel_filters_128_row_max"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!((sums.len(), maxima.len()), (128, 128));
    let filters = mel_filters(128);
    for (band, row) in filters.chunks_exact(201).enumerate() {
        let sum: f64 = row.iter().map(|&w| f64::from(w)).sum();
        let max = row.iter().copied().fold(0.0f32, f32::max);
        assert!(
            (sum - sums[band]).abs() <= 1e-6 * sums[band],
            "band {band}: sum {sum} vs {}",
            sums[band]
        );
        // The JSON holds float32 values; serde_json's default parsing may be off by an f64 ulp.
        assert_eq!(max, maxima[band] as f32, "band {band}");
    }
}

#[test]
fn ten_minutes_in_one_call() {
    // Ten minutes of a chirp-like signal: the work of 20 encoder windows, in many rayon tasks.
    let samples: Vec<f32> = (0..10 * 60 * 16_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            (t * (200.0 + 10.0 * (t % 60.0)) * std::f32::consts::TAU).sin() * 0.1
        })
        .collect();
    let extractor = MelExtractor::new(128);
    let start = Instant::now();
    let mel = extractor.compute(&samples);
    let elapsed = start.elapsed();
    eprintln!("10 min of audio: {} frames in {elapsed:?}", mel.n_frames);
    assert_eq!(mel.n_frames, samples.len() / 160 + 1);
    assert!(mel.data.iter().all(|v| v.is_finite()));
}
