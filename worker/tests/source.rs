//! Model sources: the bundled CTranslate2 tiny.en against Hugging Face folders written from its
//! own weights (single file, sharded float16, in a fake hub cache), and the errors for every way
//! a folder or spec can be wrong (on a synthetic Whisper of a few KB). Nothing downloads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use callscript_worker::ct2::{Ct2Model, WhisperConfig, WhisperDims};
use callscript_worker::model::Whisper;
use callscript_worker::source::{
    read_hf_config, required_tensors, HubCache, LoadedModel, ModelFormat, ModelSource, SourceError,
};
use candle_core::{DType, Device, Tensor};
use common::{base_dims, model_dir};
use serde_json::{json, Value};

mod common;

const COMMIT_A: &str = "0123456789abcdef0123456789abcdef01234567";
const COMMIT_B: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn load(spec: &Path) -> LoadedModel {
    let source = ModelSource::resolve_with(spec.to_str().unwrap(), None).unwrap();
    source.load(&Device::Cpu).unwrap()
}

fn tiny_en() -> (PathBuf, LoadedModel) {
    let dir = model_dir("whisper-tiny.en");
    let loaded = load(&dir);
    (dir, loaded)
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

/// `config.json` as transformers writes it for Whisper (its real field names).
fn hf_config(dims: &WhisperDims, config: &WhisperConfig) -> Value {
    json!({
        "_name_or_path": "openai/whisper-test",
        "activation_dropout": 0.0,
        "activation_function": "gelu",
        "architectures": ["WhisperForConditionalGeneration"],
        "attention_dropout": 0.0,
        "begin_suppress_tokens": config.suppress_ids_begin,
        "bos_token_id": 50257,
        "d_model": dims.n_audio_state,
        "decoder_attention_heads": dims.n_text_head,
        "decoder_ffn_dim": 4 * dims.n_text_state,
        "decoder_layerdrop": 0.0,
        "decoder_layers": dims.n_text_layer,
        "decoder_start_token_id": 50257,
        "dropout": 0.0,
        "encoder_attention_heads": dims.n_audio_head,
        "encoder_ffn_dim": 4 * dims.n_audio_state,
        "encoder_layerdrop": 0.0,
        "encoder_layers": dims.n_audio_layer,
        "eos_token_id": 50256,
        "init_std": 0.02,
        "is_encoder_decoder": true,
        "max_length": dims.n_text_ctx,
        "max_source_positions": dims.n_audio_ctx,
        "max_target_positions": dims.n_text_ctx,
        "model_type": "whisper",
        "num_hidden_layers": dims.n_audio_layer,
        "num_mel_bins": dims.n_mels,
        "pad_token_id": 50256,
        "scale_embedding": false,
        "suppress_tokens": config.suppress_ids,
        "torch_dtype": "float32",
        "transformers_version": "4.27.0.dev0",
        "use_cache": true,
        "vocab_size": dims.n_vocab,
    })
}

/// `generation_config.json` with the settings of `config`; language names are made up (only
/// their ids matter), listed out of order to check they get sorted.
fn generation_config(config: &WhisperConfig) -> Value {
    let lang_to_id: serde_json::Map<String, Value> = config
        .lang_ids
        .iter()
        .rev()
        .enumerate()
        .map(|(i, id)| (format!("<|l{i}|>"), json!(id)))
        .collect();
    let heads: Vec<[usize; 2]> = config
        .alignment_heads
        .iter()
        .map(|&(l, h)| [l, h])
        .collect();
    json!({
        "alignment_heads": heads,
        "begin_suppress_tokens": config.suppress_ids_begin,
        "bos_token_id": 50257,
        "decoder_start_token_id": 50257,
        "eos_token_id": 50256,
        "is_multilingual": false,
        "lang_to_id": lang_to_id,
        "max_initial_timestamp_index": 50,
        "max_length": 448,
        "no_timestamps_token_id": 50362,
        "pad_token_id": 50256,
        "return_timestamps": false,
        "suppress_tokens": config.suppress_ids,
        "transformers_version": "4.31.0.dev0",
    })
}

/// How to store the weights of a Hugging Face folder.
struct Layout {
    dtype: DType,
    /// 1: `model.safetensors`; more: an index and that many shards.
    shards: usize,
    /// Also store `proj_out.weight` (a copy of the token embeddings, as transformers saves it).
    proj_out: bool,
}

/// Write a Hugging Face Whisper folder holding `model`'s weights and settings.
fn write_hf(dir: &Path, model: &LoadedModel, tokenizer: &Path, layout: &Layout) {
    std::fs::create_dir_all(dir).unwrap();
    write_json(
        &dir.join("config.json"),
        &hf_config(&model.dims, &model.config),
    );
    write_json(
        &dir.join("generation_config.json"),
        &generation_config(&model.config),
    );
    std::fs::copy(tokenizer, dir.join("tokenizer.json")).unwrap();
    let mut tensors: Vec<(String, Tensor)> = model
        .tensors
        .iter()
        .map(|(k, v)| (k.clone(), v.to_dtype(layout.dtype).unwrap()))
        .collect();
    if layout.proj_out {
        let embed = model.tensors["model.decoder.embed_tokens.weight"].clone();
        tensors.push((
            "proj_out.weight".to_owned(),
            embed.to_dtype(layout.dtype).unwrap(),
        ));
    }
    write_weights(dir, tensors, layout.shards);
}

fn write_weights(dir: &Path, mut tensors: Vec<(String, Tensor)>, shards: usize) {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    if shards == 1 {
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
        return;
    }
    let per_shard = tensors.len().div_ceil(shards);
    let mut weight_map = serde_json::Map::new();
    for (i, chunk) in tensors.chunks(per_shard).enumerate() {
        let file = format!("model-{:05}-of-{shards:05}.safetensors", i + 1);
        for (name, _) in chunk {
            weight_map.insert(name.clone(), json!(file));
        }
        let map: HashMap<String, Tensor> = chunk.iter().cloned().collect();
        candle_core::safetensors::save(&map, dir.join(&file)).unwrap();
    }
    write_json(
        &dir.join("model.safetensors.index.json"),
        &json!({"metadata": {"total_size": 0}, "weight_map": weight_map}),
    );
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Same dims, settings, tensor names, shapes and (exactly) values.
fn assert_same_model(got: &LoadedModel, expected: &LoadedModel) {
    assert_eq!(got.dims, expected.dims);
    assert_eq!(got.config, expected.config);
    let mut got_names: Vec<&String> = got.tensors.keys().collect();
    let mut expected_names: Vec<&String> = expected.tensors.keys().collect();
    got_names.sort();
    expected_names.sort();
    assert_eq!(got_names, expected_names);
    for (name, e) in &expected.tensors {
        let g = &got.tensors[name];
        assert_eq!(g.dtype(), DType::F32, "{name}");
        assert_eq!(g.dims(), e.dims(), "{name}");
        assert!(values(g) == values(e), "{name} differs");
    }
}

#[test]
fn ctranslate2_folder_resolves_and_loads_every_required_tensor() {
    let dir = model_dir("whisper-tiny.en");
    let source = ModelSource::resolve_with(dir.to_str().unwrap(), None).unwrap();
    assert_eq!(source.format, ModelFormat::CTranslate2);
    assert_eq!(source.dir, dir);
    assert!(
        source.description.starts_with("CTranslate2 folder ")
            && source.description.ends_with("whisper-tiny.en"),
        "{}",
        source.description
    );
    let loaded = source.load(&Device::Cpu).unwrap();
    assert_eq!(loaded.tokenizer_dir, dir);
    assert_eq!(loaded.dims.n_audio_state, 384);
    assert_eq!(loaded.config.suppress_ids_begin, [220, 50256]);
    let required = required_tensors(&loaded.dims);
    assert_eq!(loaded.tensors.len(), required.len());
    for (name, shape) in &required {
        assert_eq!(loaded.tensors[name].dims(), shape.as_slice(), "{name}");
    }
    // The stored encoder positions, not Candle's computed sinusoids.
    let model = Ct2Model::open(&dir).unwrap();
    let (shape, stored) = model
        .tensor_f32("encoder/position_encodings/encodings")
        .unwrap();
    assert_eq!(shape, [1500, 384]);
    let got = &loaded.tensors["model.encoder.embed_positions.weight"];
    assert!(values(got) == stored);
}

#[test]
fn hugging_face_folder_loads_like_the_ctranslate2_folder() {
    let (ct2_dir, ct2) = tiny_en();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("whisper-tiny.en-hf");
    let layout = Layout {
        dtype: DType::F32,
        shards: 1,
        proj_out: true,
    };
    write_hf(&dir, &ct2, &ct2_dir.join("tokenizer.json"), &layout);

    let source = ModelSource::resolve_with(dir.to_str().unwrap(), None).unwrap();
    assert_eq!(source.format, ModelFormat::SafeTensors);
    assert!(
        source.description.starts_with("Hugging Face folder "),
        "{}",
        source.description
    );
    let hf = source.load(&Device::Cpu).unwrap();
    assert_eq!(hf.tokenizer_dir, dir);
    assert_same_model(&hf, &ct2);
}

#[test]
fn sharded_float16_folder_loads_like_the_ctranslate2_folder() {
    // tiny.en is stored in float16, so a float16 copy is exact.
    let (ct2_dir, ct2) = tiny_en();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout {
        dtype: DType::F16,
        shards: 2,
        proj_out: false,
    };
    write_hf(tmp.path(), &ct2, &ct2_dir.join("tokenizer.json"), &layout);
    assert!(!tmp.path().join("model.safetensors").exists());
    assert!(tmp
        .path()
        .join("model-00002-of-00002.safetensors")
        .is_file());
    let hf = load(tmp.path());
    assert_same_model(&hf, &ct2);
}

/// A fake hub cache: `models--openai--whisper-tiny.en` with blobs, `refs/main` → commit A,
/// `refs/v2` → commit B (a config-only snapshot), snapshots of symlinks into the blobs.
fn fake_hub_cache(root: &Path, ct2: &LoadedModel, tokenizer: &Path) -> PathBuf {
    let cache = root.join("hub");
    let repo = cache.join("models--openai--whisper-tiny.en");
    let blobs = repo.join("blobs");
    let layout = Layout {
        dtype: DType::F16,
        shards: 1,
        proj_out: true,
    };
    let staging = root.join("staging");
    write_hf(&staging, ct2, tokenizer, &layout);
    std::fs::create_dir_all(&blobs).unwrap();
    for (commit, files) in [
        (
            COMMIT_A,
            &[
                "config.json",
                "generation_config.json",
                "tokenizer.json",
                "model.safetensors",
            ][..],
        ),
        (COMMIT_B, &["config.json", "model.safetensors"][..]),
    ] {
        let snapshot = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).unwrap();
        for file in files {
            let blob = blobs.join(format!("{file}.blob"));
            if !blob.exists() {
                std::fs::rename(staging.join(file), &blob).unwrap();
            }
            std::os::unix::fs::symlink(
                Path::new("../../blobs").join(format!("{file}.blob")),
                snapshot.join(file),
            )
            .unwrap();
        }
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    // huggingface_hub writes the hash without a newline; tolerate one.
    std::fs::write(repo.join("refs/main"), COMMIT_A).unwrap();
    std::fs::write(repo.join("refs/v2"), format!("{COMMIT_B}\n")).unwrap();
    cache
}

#[test]
fn hub_id_resolves_in_the_cache_by_branch_tag_and_commit() {
    let (ct2_dir, ct2) = tiny_en();
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(fake_hub_cache(
        tmp.path(),
        &ct2,
        &ct2_dir.join("tokenizer.json"),
    ));
    let repo = cache.dir.join("models--openai--whisper-tiny.en");

    let source = ModelSource::resolve_with("openai/whisper-tiny.en", Some(&cache)).unwrap();
    assert_eq!(source.format, ModelFormat::SafeTensors);
    assert_eq!(source.dir, repo.join("snapshots").join(COMMIT_A));
    assert!(
        source
            .description
            .starts_with("openai/whisper-tiny.en@main (Hugging Face cache ")
            && source.description.contains(COMMIT_A),
        "{}",
        source.description
    );
    // Loading goes through the snapshot's symlinks into blobs/.
    let hf = source.load(&Device::Cpu).unwrap();
    assert_same_model(&hf, &ct2);

    let explicit = ModelSource::resolve_with("openai/whisper-tiny.en@main", Some(&cache)).unwrap();
    assert_eq!(explicit.dir, source.dir);
    let tag = ModelSource::resolve_with("openai/whisper-tiny.en@v2", Some(&cache)).unwrap();
    assert_eq!(tag.dir, repo.join("snapshots").join(COMMIT_B));
    assert!(
        tag.description.starts_with("openai/whisper-tiny.en@v2 "),
        "{}",
        tag.description
    );
    let commit =
        ModelSource::resolve_with(&format!("openai/whisper-tiny.en@{COMMIT_B}"), Some(&cache))
            .unwrap();
    assert_eq!(commit.dir, repo.join("snapshots").join(COMMIT_B));
    // The v2 snapshot lacks tokenizer.json: resolving works, loading says what is missing.
    let err = tag.load(&Device::Cpu).unwrap_err();
    assert!(matches!(err, SourceError::MissingFile { .. }), "{err}");
    assert!(
        err.to_string().contains("tokenizer.json: file not found"),
        "{err}"
    );
}

#[test]
fn hub_id_of_a_ctranslate2_repo_resolves_to_ctranslate2() {
    let ct2_dir = model_dir("whisper-tiny.en");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--Systran--faster-whisper-tiny.en");
    let snapshot = repo.join("snapshots").join(COMMIT_A);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT_A).unwrap();
    for file in ["model.bin", "config.json", "tokenizer.json"] {
        let target = std::fs::canonicalize(ct2_dir.join(file)).unwrap();
        std::os::unix::fs::symlink(target, snapshot.join(file)).unwrap();
    }
    let cache = HubCache::new(tmp.path());
    let source = ModelSource::resolve_with("Systran/faster-whisper-tiny.en", Some(&cache)).unwrap();
    assert_eq!(source.format, ModelFormat::CTranslate2);
    assert_eq!(source.dir, snapshot);
    assert!(
        source.description.ends_with(", CTranslate2)"),
        "{}",
        source.description
    );
    let loaded = source.load(&Device::Cpu).unwrap();
    assert_eq!(loaded.dims.n_vocab, 51864);
}

#[test]
fn uncached_hub_id_says_what_was_searched_and_how_to_fetch_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = HubCache::new(tmp.path().join("hub"));
    let err = ModelSource::resolve_with("openai/whisper-large-v3", Some(&cache)).unwrap_err();
    assert!(matches!(err, SourceError::NotCached { .. }), "{err}");
    let msg = err.to_string();
    for part in [
        "openai/whisper-large-v3@main is not in the Hugging Face cache ",
        &cache.dir.display().to_string(),
        "no models--openai--whisper-large-v3",
        "no local folder of that name exists either",
        "Nothing is downloaded at run time",
        "`hf download openai/whisper-large-v3`",
        "`huggingface-cli download openai/whisper-large-v3`",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }

    // The repo is cached, the revision is not: the cached ones are listed.
    let repo = cache.repo_dir("openai/whisper-large-v3");
    std::fs::create_dir_all(repo.join("refs/refs/pr")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT_A).unwrap();
    std::fs::write(repo.join("refs/refs/pr/7"), COMMIT_A).unwrap();
    let err = ModelSource::resolve_with("openai/whisper-large-v3@v9", Some(&cache)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("openai/whisper-large-v3@v9 is not"), "{msg}");
    assert!(msg.contains("no refs/v9"), "{msg}");
    assert!(msg.contains("cached revisions: main, refs/pr/7"), "{msg}");
    assert!(
        msg.contains("hf download openai/whisper-large-v3 --revision v9"),
        "{msg}"
    );

    // The ref exists but its snapshot does not (an interrupted download).
    let err = ModelSource::resolve_with("openai/whisper-large-v3", Some(&cache)).unwrap_err();
    assert!(matches!(err, SourceError::NotCached { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("has no snapshots/{COMMIT_A}")),
        "{err}"
    );

    // No cache folder known at all.
    let err = ModelSource::resolve_with("openai/whisper-tiny", None).unwrap_err();
    assert!(matches!(err, SourceError::NoCache { .. }), "{err}");
}

#[test]
fn bad_specs_and_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let resolve = |spec: &str| ModelSource::resolve_with(spec, None).unwrap_err();

    let missing = tmp.path().join("nowhere");
    let err = resolve(missing.to_str().unwrap());
    assert!(matches!(err, SourceError::PathNotFound { .. }), "{err}");
    assert!(
        err.to_string().contains("nowhere: no such model folder"),
        "{err}"
    );

    for spec in ["", "  ", "openai/whisper-tiny@", "openai/whisper-tiny@../x"] {
        let err = resolve(spec);
        assert!(
            matches!(err, SourceError::InvalidSpec { .. }),
            "{spec:?}: {err}"
        );
    }

    let err = resolve(tmp.path().to_str().unwrap());
    assert!(matches!(err, SourceError::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("neither a CTranslate2"), "{err}");

    let file = tmp.path().join("model.bin");
    std::fs::write(&file, b"").unwrap();
    let err = resolve(file.to_str().unwrap());
    assert!(matches!(err, SourceError::NotADirectory { .. }), "{err}");
}

// --- A synthetic Whisper, small enough to write a folder per error case. ---

fn small_dims() -> WhisperDims {
    WhisperDims {
        n_mels: 80,
        n_audio_ctx: 6,
        n_audio_state: 64,
        n_audio_head: 1,
        n_audio_layer: 2,
        n_text_ctx: 5,
        n_text_state: 64,
        n_text_head: 1,
        n_text_layer: 2,
        n_vocab: 40,
    }
}

fn small_config() -> WhisperConfig {
    WhisperConfig {
        alignment_heads: vec![(1, 0)],
        lang_ids: vec![3, 4, 5],
        suppress_ids: vec![1, 2],
        suppress_ids_begin: vec![7],
    }
}

/// Distinct values per tensor, so a swapped tensor would not compare equal.
fn small_tensors(dims: &WhisperDims) -> Vec<(String, Tensor)> {
    required_tensors(dims)
        .into_iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n).map(|j| (i * 1000 + j) as f32 * 1e-3).collect();
            (name, Tensor::from_vec(data, shape, &Device::Cpu).unwrap())
        })
        .collect()
}

/// Writes the synthetic model to `dir` after `edit` changes its tensors or JSON files.
fn write_small(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, Tensor)>, &mut Value, &mut Value),
) -> PathBuf {
    let dims = small_dims();
    let mut tensors = small_tensors(&dims);
    let mut config = hf_config(&dims, &small_config());
    let mut generation = generation_config(&small_config());
    edit(&mut tensors, &mut config, &mut generation);
    std::fs::create_dir_all(dir).unwrap();
    write_json(&dir.join("config.json"), &config);
    write_json(&dir.join("generation_config.json"), &generation);
    write_json(&dir.join("tokenizer.json"), &json!({"added_tokens": []}));
    write_weights(dir, tensors, 1);
    dir.to_owned()
}

fn small_error(edit: impl FnOnce(&mut Vec<(String, Tensor)>, &mut Value, &mut Value)) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_small(tmp.path(), edit);
    let err = ModelSource::resolve_with(dir.to_str().unwrap(), None)
        .and_then(|s| s.load(&Device::Cpu))
        .unwrap_err();
    err.to_string()
}

#[test]
fn synthetic_folder_loads_into_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    // Stored the way `WhisperModel` saves them (no `model.` prefix), with a tied proj_out.
    let dir = write_small(tmp.path(), |tensors, _, _| {
        let embed = tensors
            .iter()
            .find(|(n, _)| n == "model.decoder.embed_tokens.weight")
            .unwrap()
            .1
            .clone();
        for (name, _) in tensors.iter_mut() {
            *name = name.strip_prefix("model.").unwrap().to_owned();
        }
        tensors.push(("proj_out.weight".to_owned(), embed));
    });
    let loaded = load(&dir);
    assert_eq!(loaded.dims, small_dims());
    assert_eq!(loaded.config, small_config());
    for (name, expected) in small_tensors(&small_dims()) {
        assert!(
            values(&loaded.tensors[&name]) == values(&expected),
            "{name}"
        );
    }
    let model = Whisper::new(loaded.dims, &loaded.tensors, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(model.dims.n_audio_state, 64);
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let msg = small_error(|tensors, _, _| {
        tensors.retain(|(n, _)| n != "model.decoder.layers.1.encoder_attn.k_proj.weight")
    });
    assert!(
        msg.ends_with(
            "model.safetensors: tensor model.decoder.layers.1.encoder_attn.k_proj.weight is missing"
        ),
        "{msg}"
    );
}

#[test]
fn misshaped_tensor_is_named_with_both_shapes() {
    let msg = small_error(|tensors, _, _| {
        let fc1 = tensors
            .iter_mut()
            .find(|(n, _)| n == "model.encoder.layers.1.fc1.weight")
            .unwrap();
        fc1.1 = Tensor::zeros((128, 64), DType::F32, &Device::Cpu).unwrap();
    });
    assert!(
        msg.ends_with(
            "model.safetensors: tensor model.encoder.layers.1.fc1.weight has shape [128, 64], \
             expected [256, 64]"
        ),
        "{msg}"
    );
}

#[test]
fn wrong_model_type_is_rejected_at_resolve() {
    let msg = small_error(|_, config, _| config["model_type"] = json!("wav2vec2"));
    assert!(
        msg.ends_with("config.json: model_type is \"wav2vec2\", expected \"whisper\""),
        "{msg}"
    );
}

#[test]
fn unknown_and_untied_tensors_are_errors() {
    let msg = small_error(|tensors, _, _| {
        let extra = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        tensors.push((
            "model.encoder.layers.0.self_attn.k_proj.bias".to_owned(),
            extra,
        ));
    });
    assert!(
        msg.contains(
            "tensors this loader does not know: model.encoder.layers.0.self_attn.k_proj.bias"
        ),
        "{msg}"
    );

    let msg = small_error(|tensors, _, _| {
        let proj = Tensor::zeros((40, 64), DType::F32, &Device::Cpu).unwrap();
        tensors.push(("proj_out.weight".to_owned(), proj));
    });
    assert!(
        msg.contains("proj_out.weight differs from model.decoder.embed_tokens.weight"),
        "{msg}"
    );
}

#[test]
fn bad_config_fields_are_named() {
    let msg = small_error(|_, config, _| {
        config.as_object_mut().unwrap().remove("d_model");
    });
    assert!(msg.ends_with("config.json: d_model is missing"), "{msg}");

    let msg = small_error(|_, config, _| config["decoder_ffn_dim"] = json!(100));
    assert!(msg.contains("decoder_ffn_dim is 100"), "{msg}");

    let msg = small_error(|_, _, generation| generation["suppress_tokens"] = json!([1, 40]));
    assert!(
        msg.ends_with(
            "generation_config.json: suppress_tokens holds token id 40, outside the vocabulary (40)"
        ),
        "{msg}"
    );

    let msg = small_error(|_, _, generation| generation["alignment_heads"] = json!([[2, 0]]));
    assert!(
        msg.contains("alignment_heads holds [2, 0], outside the decoder"),
        "{msg}"
    );
}

#[test]
fn folder_without_safetensors_points_at_pytorch_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_small(tmp.path(), |_, _, _| {});
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), b"").unwrap();
    let err = ModelSource::resolve_with(dir.to_str().unwrap(), None).unwrap_err();
    assert!(matches!(err, SourceError::MissingFile { .. }), "{err}");
    assert!(err.to_string().contains("only pytorch_model.bin"), "{err}");
}

#[test]
fn sharded_index_must_match_its_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let dims = small_dims();
    write_small(tmp.path(), |_, _, _| {});
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    write_weights(tmp.path(), small_tensors(&dims), 2);
    let index_path = tmp.path().join("model.safetensors.index.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let loaded = load(tmp.path());
    assert_eq!(loaded.tensors.len(), required_tensors(&dims).len());

    // The index claims a tensor for the wrong shard.
    let mut wrong = index.clone();
    assert_eq!(
        wrong["weight_map"]["model.decoder.embed_tokens.weight"],
        "model-00001-of-00002.safetensors"
    );
    wrong["weight_map"]["model.decoder.embed_tokens.weight"] =
        json!("model-00002-of-00002.safetensors");
    write_json(&index_path, &wrong);
    let err = ModelSource::resolve_with(tmp.path().to_str().unwrap(), None)
        .unwrap()
        .load(&Device::Cpu)
        .unwrap_err();
    assert!(matches!(err, SourceError::Index { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "puts model.decoder.embed_tokens.weight in model-00002-of-00002.safetensors, \
             but model-00001-of-00002.safetensors holds it"
        ),
        "{err}"
    );

    // A shard is missing.
    write_json(&index_path, &index);
    std::fs::remove_file(tmp.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = ModelSource::resolve_with(tmp.path().to_str().unwrap(), None)
        .unwrap()
        .load(&Device::Cpu)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("model-00002-of-00002.safetensors: file not found"),
        "{err}"
    );
}

#[test]
fn settings_fall_back_like_ctranslate2s_converter() {
    // base: without generation_config.json, suppressed tokens come from config.json, language
    // ids from tokenizer.json (the same CTranslate2 wrote), alignment heads default to every
    // head of the last half of the decoder.
    let base = model_dir("whisper-base");
    let ct2 = WhisperConfig::open(&base).unwrap();
    let dims = base_dims();
    let tmp = tempfile::tempdir().unwrap();
    write_json(&tmp.path().join("config.json"), &hf_config(&dims, &ct2));
    std::fs::copy(
        base.join("tokenizer.json"),
        tmp.path().join("tokenizer.json"),
    )
    .unwrap();
    let config = read_hf_config(tmp.path(), &dims).unwrap();
    assert_eq!(config.suppress_ids, ct2.suppress_ids);
    assert_eq!(config.suppress_ids_begin, ct2.suppress_ids_begin);
    assert_eq!(config.lang_ids.len(), 99);
    assert_eq!(config.lang_ids, ct2.lang_ids);
    assert_eq!(config.alignment_heads.len(), 3 * 8);
    assert_eq!(config.alignment_heads[0], (3, 0));
    assert_eq!(config.alignment_heads[23], (5, 7));

    // generation_config.json wins over config.json where it has the key.
    write_json(
        &tmp.path().join("generation_config.json"),
        &json!({
            "begin_suppress_tokens": [220],
            "lang_to_id": {"<|en|>": 50259, "<|de|>": 50261, "<|zh|>": 50260},
        }),
    );
    let config = read_hf_config(tmp.path(), &dims).unwrap();
    assert_eq!(config.suppress_ids_begin, [220]);
    assert_eq!(config.suppress_ids, ct2.suppress_ids);
    assert_eq!(config.lang_ids, [50259, 50260, 50261]);
}
