//! What the worker's integration tests share: paths to fixtures and models, and the reference
//! outputs written by `scripts/whisper-references`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use callscript_worker::audio::{decode, AudioLimits};
use serde_json::Value;

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// A recording of `fixtures/audio/`.
pub fn audio_fixture(name: &str) -> PathBuf {
    repo_path("fixtures/audio").join(name)
}

/// `goforward.wav` decoded: 2.786 s of 16 kHz mono.
pub fn goforward_samples() -> Vec<f32> {
    let bytes = read(&audio_fixture("goforward.wav"));
    let mut audio = decode(&bytes, Some("wav"), &AudioLimits::default()).unwrap();
    assert_eq!(audio.channels.len(), 1);
    audio.channels.remove(0)
}

/// A bundled model folder; the tests fail (not skip) without it.
pub fn model_dir(name: &str) -> PathBuf {
    let dir = repo_path("models").join(name);
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run scripts/fetch-models first",
        dir.display()
    );
    dir
}

/// A reference of `fixtures/whisper/`: its JSON, its float32 values and their shape.
pub fn reference(name: &str) -> (Value, Vec<f32>, Vec<usize>) {
    let dir = repo_path("fixtures/whisper");
    let meta: Value = serde_json::from_slice(&read(&dir.join(format!("{name}.json")))).unwrap();
    let values: Vec<f32> = read(&dir.join(format!("{name}.f32")))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let shape: Vec<usize> = meta["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(values.len(), shape.iter().product::<usize>(), "{name}");
    (meta, values, shape)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
