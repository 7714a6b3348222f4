//! What the binary's tests share: paths in the repository and the bundled model.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A path relative to the repository root.
pub fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The bundled tiny.en folder; the tests fail (not skip) without it.
pub fn model() -> String {
    let dir = repo("models/whisper-tiny.en");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run scripts/fetch-models first",
        dir.display()
    );
    dir.display().to_string()
}

/// A recording of `fixtures/audio/`.
pub fn fixture(name: &str) -> String {
    repo("fixtures/audio").join(name).display().to_string()
}
