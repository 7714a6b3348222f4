//! Reading the bundled CTranslate2 Whisper models (`scripts/fetch-models` puts them in
//! `models/`).

use std::path::PathBuf;
use std::time::Instant;

use callscript_worker::ct2::{Ct2Model, Ct2Whisper, DType, WhisperDims};
use common::{base_dims, model_dir};

mod common;

fn tiny_en() -> PathBuf {
    model_dir("whisper-tiny.en")
}

#[test]
fn tiny_en_parses_to_the_last_byte() {
    let dir = tiny_en();
    let start = Instant::now();
    let model = Ct2Model::open(&dir).unwrap();
    eprintln!("tiny.en model.bin parsed in {:?}", start.elapsed());
    let file_len = std::fs::metadata(dir.join("model.bin")).unwrap().len();
    assert_eq!(model.file_len() as u64, file_len);
    assert_eq!(model.binary_version(), 6);
    assert_eq!(model.spec_name(), "WhisperSpec");
    assert_eq!(model.spec_revision(), 3);
    assert_eq!(model.variables().len(), 148);
    // The last variable's data ends where the alias table begins, and that table ends the file
    // (`from_bytes` rejects trailing bytes).
    let last = model.variables().last().unwrap();
    let aliases_len: usize = 4 + model
        .aliases()
        .iter()
        .map(|(a, t)| 2 + a.len() + 1 + 2 + t.len() + 1)
        .sum::<usize>();
    assert_eq!(
        (last.offset() + last.byte_len() + aliases_len) as u64,
        file_len
    );
}

#[test]
fn tiny_en_dims_and_config() {
    let w = Ct2Whisper::open(&tiny_en()).unwrap();
    assert_eq!(
        w.dims,
        WhisperDims {
            n_mels: 80,
            n_audio_ctx: 1500,
            n_audio_state: 384,
            n_audio_head: 6,
            n_audio_layer: 4,
            n_text_ctx: 448,
            n_text_state: 384,
            n_text_head: 6,
            n_text_layer: 4,
            n_vocab: 51864,
        }
    );
    assert!(!w.dims.is_multilingual());
    assert_eq!(w.config.suppress_ids_begin, [220, 50256]);
    assert!(w.config.suppress_ids.contains(&50257));
    assert_eq!(w.config.alignment_heads.len(), 8);
    assert_eq!(w.config.alignment_heads[0], (1, 0));
}

#[test]
fn tiny_en_float16_weights_convert() {
    let model = Ct2Model::open(&tiny_en()).unwrap();
    let v = model.variable("encoder/conv1/weight").unwrap();
    assert_eq!(v.dtype, DType::F16);
    let (shape, values) = model.tensor_f32("encoder/conv1/weight").unwrap();
    assert_eq!(shape, [384, 80, 3]);
    assert_eq!(values.len(), 384 * 80 * 3);
    assert!(values.iter().all(|x| x.is_finite() && x.abs() < 10.0));
    let mean_abs = values.iter().map(|x| x.abs()).sum::<f32>() / values.len() as f32;
    assert!(mean_abs > 1e-3 && mean_abs < 1.0, "mean |w| = {mean_abs}");

    // Layer-norm gains sit around 1, the stored sinusoidal positions within [-1, 1].
    let (_, gamma) = model.tensor_f32("encoder/layer_norm/gamma").unwrap();
    let mean = gamma.iter().sum::<f32>() / gamma.len() as f32;
    assert!(mean > 0.1 && mean < 10.0, "mean gamma = {mean}");
    let (shape, pos) = model
        .tensor_f32("encoder/position_encodings/encodings")
        .unwrap();
    assert_eq!(shape, [1500, 384]);
    assert!(pos.iter().all(|x| (-1.001..=1.001).contains(x)));
    assert_eq!(model.scalar_i64("encoder/num_heads").unwrap(), 6);
}

#[test]
fn tiny_en_projection_alias_resolves_to_embeddings() {
    let model = Ct2Model::open(&tiny_en()).unwrap();
    assert!(model
        .aliases()
        .iter()
        .any(|(a, t)| a == "decoder/projection/weight" && t == "decoder/embeddings/weight"));
    assert!(!model
        .variables()
        .iter()
        .any(|v| v.name == "decoder/projection/weight"));
    let projection = model.variable("decoder/projection/weight").unwrap();
    assert_eq!(projection.name, "decoder/embeddings/weight");
    assert_eq!(projection.shape, [51864, 384]);
    let (_, a) = model.tensor_f32("decoder/projection/weight").unwrap();
    let (_, b) = model.tensor_f32("decoder/embeddings/weight").unwrap();
    assert_eq!(a, b);
}

#[test]
fn tiny_en_unknown_variable_is_named() {
    let model = Ct2Model::open(&tiny_en()).unwrap();
    let err = model
        .tensor_f32("encoder/layer_9/ffn/linear_0/weight")
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("variable encoder/layer_9/ffn/linear_0/weight not found"),
        "{err}"
    );
}

#[test]
fn tiny_en_truncated_copy_names_the_offset() {
    let bytes = std::fs::read(tiny_en().join("model.bin")).unwrap();
    let cut = bytes.len() / 2;
    let err = Ct2Model::from_bytes(bytes[..cut].to_vec(), "half.bin").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("half.bin is truncated: reading "), "{msg}");
    assert!(msg.contains("byte offset"), "{msg}");
}

#[test]
fn base_is_multilingual_with_its_own_dims() {
    let dir = model_dir("whisper-base");
    let w = Ct2Whisper::open(&dir).unwrap();
    assert_eq!(w.model.variables().len(), 212);
    assert_eq!(w.dims, base_dims());
    assert!(w.dims.is_multilingual());
    assert_eq!(w.config.lang_ids.len(), 99);
    assert_eq!(w.config.lang_ids[0], 50259);
    let (shape, values) = w.model.tensor_f32("decoder/projection/weight").unwrap();
    assert_eq!(shape, [51865, 512]);
    assert!(values.iter().all(|x| x.is_finite()));
}
