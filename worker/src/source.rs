//! Where a Whisper model comes from: a `--model` argument resolved to a folder, and that folder
//! loaded into Candle tensors under Hugging Face names.
//!
//! Three sources, tried in this order ([`ModelSource::resolve`]):
//!
//! 1. **A local CTranslate2 Whisper folder** (`model.bin`, `config.json`, `tokenizer.json`): the
//!    format faster-whisper uses, read by [`crate::ct2`] and mapped by
//!    [`crate::whisper::candle_tensors`].
//! 2. **A local Hugging Face folder**: `config.json` with `"model_type": "whisper"`, the weights
//!    in `model.safetensors` or sharded (`model.safetensors.index.json` and the shards it
//!    names), `tokenizer.json`, optionally `generation_config.json`.
//! 3. **A Hugging Face hub id** (`openai/whisper-tiny.en`, `org/name@revision`) looked up in the
//!    local hub cache ([`HubCache`]: `HF_HUB_CACHE`, else `HF_HOME/hub`, else
//!    `~/.cache/huggingface/hub`), whose snapshot folder is then one of the two formats above
//!    (so `Systran/faster-whisper-*` CTranslate2 repos work as well as `openai/whisper-*`).
//!
//! A spec that names an existing path is a local folder, whatever else it looks like; only a
//! spec that is no path and reads as `org/name[@revision]` goes to the cache.
//!
//! **Offline by design.** Nothing here downloads: a worker must start the same way with or
//! without network, a model must not change under a running fleet because a branch moved, and
//! the project's rule is that models only come from explicit fetch steps (`scripts/fetch-models`
//! for the bundled ones). A hub id that is not cached is an error saying which id and revision,
//! which cache folder was searched, and the command that fills it (`hf download <id>`, formerly
//! `huggingface-cli download <id>`). The cache layout (`models--org--name/refs/<revision>` holding
//! a commit hash, `snapshots/<hash>/<files>` symlinked into `blobs/`) is read directly; see
//! [`HubCache`] for why not through the `hf-hub` crate.
//!
//! [`ModelSource::load`] gives the same [`LoadedModel`] for both formats: dims, generation
//! settings, and every tensor Candle's Whisper asks for, as f32, plus
//! `model.encoder.embed_positions.weight` (the stored encoder positions), each name and shape
//! checked against the dims ([`required_tensors`]). Hugging Face settings follow CTranslate2's
//! converter, so both formats of one model give the same [`WhisperConfig`]: suppressed tokens
//! from `generation_config.json` (else `config.json`), language ids from its `lang_to_id` (else
//! the language tokens of `tokenizer.json`), alignment heads from it (else every head of the
//! last half of the decoder layers).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::safetensors::{Load, SliceSafetensors};
use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value};

use crate::ct2::{Ct2Error, Ct2Whisper, WhisperConfig, WhisperDims};
use crate::whisper::{candle_tensors, WhisperLoadError};

/// The single-file Hugging Face weights.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The index of sharded Hugging Face weights.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// The tied output projection of `WhisperForConditionalGeneration`, not loaded (Candle ties it to
/// `model.decoder.embed_tokens.weight`).
pub const PROJ_OUT: &str = "proj_out.weight";

/// Errors resolving a model spec or loading its folder.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("invalid model spec {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error(
        "{}: no such model folder (and not a Hugging Face hub id of the form \
         org/name[@revision])",
        path.display()
    )]
    PathNotFound { path: PathBuf },
    #[error(
        "{}: not a folder; give the model folder (the one holding model.bin or config.json)",
        path.display()
    )]
    NotADirectory { path: PathBuf },
    #[error(
        "{}: neither a CTranslate2 Whisper folder (no model.bin) nor a Hugging Face one \
         (no config.json)",
        dir.display()
    )]
    UnknownFormat { dir: PathBuf },
    #[error("{}: file not found{hint}", path.display())]
    MissingFile { path: PathBuf, hint: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {detail}", path.display())]
    Json { path: PathBuf, detail: String },
    #[error("{}: {field} {detail}", path.display())]
    BadField {
        path: PathBuf,
        field: String,
        detail: String,
    },
    #[error("{}: model_type is {found}, expected \"whisper\"", path.display())]
    WrongModelType { path: PathBuf, found: String },
    #[error("{}: tensor {name} is missing", file.display())]
    MissingTensor { file: PathBuf, name: String },
    #[error("{}: tensor {name} has shape {shape:?}, expected {expected:?}", file.display())]
    Shape {
        file: PathBuf,
        name: String,
        shape: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{}: tensor {name} is stored as {dtype:?}, expected a float type", file.display())]
    NotFloat {
        file: PathBuf,
        name: String,
        dtype: DType,
    },
    #[error("{}: tensor {name} is stored twice (also in {})", file.display(), other.display())]
    DuplicateTensor {
        file: PathBuf,
        name: String,
        other: PathBuf,
    },
    #[error("{}: tensors this loader does not know: {names}", file.display())]
    UnknownTensors { file: PathBuf, names: String },
    #[error(
        "{}: {PROJ_OUT} differs from model.decoder.embed_tokens.weight ({detail}); this loader \
         ties them as Whisper does",
        file.display()
    )]
    UntiedProjection { file: PathBuf, detail: String },
    #[error("{}: {detail}", index.display())]
    Index { index: PathBuf, detail: String },
    #[error(
        "{what}: encoder width {encoder} and decoder width {decoder} differ; Candle's Whisper \
         has one d_model"
    )]
    WidthMismatch {
        what: String,
        encoder: usize,
        decoder: usize,
    },
    #[error(
        "{id}@{revision} is not in the Hugging Face cache {} ({reason}), and no local folder \
         of that name exists either. Nothing is downloaded at run time: fetch it first with \
         `hf download {id}{rev_arg}` (or `huggingface-cli download {id}{rev_arg}`) into that \
         cache (HF_HUB_CACHE or HF_HOME/hub), or give a local model folder",
        cache.display(),
        rev_arg = revision_arg(revision)
    )]
    NotCached {
        id: String,
        revision: String,
        cache: PathBuf,
        reason: String,
    },
    #[error(
        "{id}@{revision} is a Hugging Face hub id, but no hub cache folder is known (HF_HUB_CACHE, \
         HF_HOME and HOME are unset); set HF_HUB_CACHE or give a local model folder"
    )]
    NoCache { id: String, revision: String },
    #[error("{}: {source}", file.display())]
    Safetensors {
        file: PathBuf,
        source: candle_core::Error,
    },
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error(transparent)]
    Ct2Weights(#[from] WhisperLoadError),
    #[error("{what}: {source}")]
    Candle {
        what: String,
        source: candle_core::Error,
    },
}

fn revision_arg(revision: &str) -> String {
    if revision == DEFAULT_REVISION {
        String::new()
    } else {
        format!(" --revision {revision}")
    }
}

/// The revision a hub id without `@revision` means.
pub const DEFAULT_REVISION: &str = "main";

/// How a model folder stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// CTranslate2: `model.bin` + `config.json` (faster-whisper's format).
    CTranslate2,
    /// Hugging Face transformers: `config.json` + `model.safetensors` (or sharded).
    SafeTensors,
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelFormat::CTranslate2 => "CTranslate2",
            ModelFormat::SafeTensors => "Hugging Face safetensors",
        })
    }
}

/// A resolved `--model`: the folder holding the model and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSource {
    /// The folder (for a hub id, its snapshot folder in the cache).
    pub dir: PathBuf,
    pub format: ModelFormat,
    /// Where it came from, for logs: `CTranslate2 folder models/whisper-tiny.en`,
    /// `openai/whisper-tiny.en@main (Hugging Face cache …, snapshot …, Hugging Face safetensors)`.
    pub description: String,
}

/// A model's weights and settings, whatever its format.
#[derive(Debug)]
pub struct LoadedModel {
    pub dims: WhisperDims,
    pub config: WhisperConfig,
    /// Every tensor of [`required_tensors`], as f32 on the requested device, by Hugging Face name.
    pub tensors: HashMap<String, Tensor>,
    /// The folder holding `tokenizer.json`.
    pub tokenizer_dir: PathBuf,
}

impl ModelSource {
    /// Resolve `spec` with the hub cache of the environment ([`HubCache::from_env`]): the one
    /// place this module reads the environment. See [`ModelSource::resolve_with`].
    pub fn resolve(spec: &str) -> Result<ModelSource, SourceError> {
        ModelSource::resolve_with(spec, HubCache::from_env().as_ref())
    }

    /// Resolve `spec`: an existing path is a local folder (CTranslate2 first, then Hugging
    /// Face); otherwise `org/name[@revision]` is looked up in `cache` (`None`: no cache known).
    pub fn resolve_with(spec: &str, cache: Option<&HubCache>) -> Result<ModelSource, SourceError> {
        if spec.trim().is_empty() {
            return Err(SourceError::InvalidSpec {
                spec: spec.to_owned(),
                reason: "empty".to_owned(),
            });
        }
        let path = Path::new(spec);
        if path.exists() {
            let format = detect_format(path)?;
            let kind = match format {
                ModelFormat::CTranslate2 => "CTranslate2 folder",
                ModelFormat::SafeTensors => "Hugging Face folder",
            };
            return Ok(ModelSource {
                dir: path.to_owned(),
                format,
                description: format!("{kind} {}", path.display()),
            });
        }
        let Some(hub) = HubId::parse(spec)? else {
            return Err(SourceError::PathNotFound {
                path: path.to_owned(),
            });
        };
        let Some(cache) = cache else {
            return Err(SourceError::NoCache {
                id: hub.id,
                revision: hub.revision,
            });
        };
        let (dir, commit) = cache.snapshot(&hub.id, &hub.revision)?;
        let format = detect_format(&dir)?;
        Ok(ModelSource {
            description: format!(
                "{}@{} (Hugging Face cache {}, snapshot {commit}, {format})",
                hub.id,
                hub.revision,
                cache.dir.display()
            ),
            dir,
            format,
        })
    }

    /// Load the model's dims, settings and f32 tensors onto `device`, checking every tensor's
    /// name and shape.
    pub fn load(&self, device: &Device) -> Result<LoadedModel, SourceError> {
        let tokenizer = self.dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(missing(&tokenizer));
        }
        match self.format {
            ModelFormat::CTranslate2 => load_ct2(&self.dir, device),
            ModelFormat::SafeTensors => load_safetensors(&self.dir, device),
        }
    }
}

/// Which format `dir` holds: `model.bin` makes it CTranslate2; otherwise a `config.json` must
/// say `"model_type": "whisper"` and safetensors weights must be there.
pub fn detect_format(dir: &Path) -> Result<ModelFormat, SourceError> {
    if !dir.is_dir() {
        return Err(if dir.exists() {
            SourceError::NotADirectory {
                path: dir.to_owned(),
            }
        } else {
            SourceError::PathNotFound {
                path: dir.to_owned(),
            }
        });
    }
    if dir.join("model.bin").is_file() {
        return Ok(ModelFormat::CTranslate2);
    }
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(SourceError::UnknownFormat {
            dir: dir.to_owned(),
        });
    }
    let config = read_json(&config_path)?;
    let obj = object(&config, &config_path)?;
    match obj.get("model_type") {
        Some(Value::String(t)) if t == "whisper" => {}
        Some(other) => {
            return Err(SourceError::WrongModelType {
                path: config_path,
                found: other.to_string(),
            })
        }
        None => {
            return Err(SourceError::WrongModelType {
                path: config_path,
                found: "absent (a CTranslate2 folder would have model.bin)".to_owned(),
            })
        }
    }
    if !dir.join(SAFETENSORS_FILE).is_file() && !dir.join(SAFETENSORS_INDEX).is_file() {
        let hint = if dir.join("pytorch_model.bin").exists() {
            format!(
                " (nor {SAFETENSORS_INDEX}; only pytorch_model.bin, which is not read: \
                 use the repository's safetensors or convert it)"
            )
        } else {
            format!(" (nor {SAFETENSORS_INDEX})")
        };
        return Err(SourceError::MissingFile {
            path: dir.join(SAFETENSORS_FILE),
            hint,
        });
    }
    Ok(ModelFormat::SafeTensors)
}

/// A hub id and revision parsed from `org/name[@revision]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HubId {
    id: String,
    revision: String,
}

impl HubId {
    /// `Ok(None)` when `spec` is not shaped like a hub id at all (then it was meant as a path);
    /// an error when the id is fine but the revision is not.
    fn parse(spec: &str) -> Result<Option<HubId>, SourceError> {
        let (id, revision) = match spec.split_once('@') {
            Some((id, revision)) => (id, Some(revision)),
            None => (spec, None),
        };
        if !is_repo_id(id) {
            return Ok(None);
        }
        let revision = match revision {
            None => DEFAULT_REVISION.to_owned(),
            Some(r) => {
                let bad = r.is_empty()
                    || r.contains('\\')
                    || r.split('/').any(|c| c.is_empty() || c == "." || c == "..");
                if bad {
                    return Err(SourceError::InvalidSpec {
                        spec: spec.to_owned(),
                        reason: format!(
                            "revision {r:?} is not a branch, tag or commit hash \
                             (expected org/name@revision)"
                        ),
                    });
                }
                r.to_owned()
            }
        };
        Ok(Some(HubId {
            id: id.to_owned(),
            revision,
        }))
    }
}

/// Hugging Face's repo id rules: `name` or `org/name`, each part of `[A-Za-z0-9._-]`, not
/// starting or ending with `.` or `-`, no `--` or `..`, at most 96 characters.
fn is_repo_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    id.len() <= 96
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && !p.starts_with(['.', '-'])
                && !p.ends_with(['.', '-'])
                && !p.contains("--")
                && !p.contains("..")
        })
}

/// The local Hugging Face hub cache (the folder holding `models--org--name/`).
///
/// Its layout is read directly rather than through the `hf-hub` crate: without default features
/// that crate is light (`dirs`, `log`), but its `Cache` ignores `HF_HUB_CACHE`, panics without a
/// home folder, does not take a commit hash as revision, and answers a miss with `None`, so
/// errors could not say what was missing; its download side needs a TLS stack, and nothing here
/// downloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    pub dir: PathBuf,
}

impl HubCache {
    pub fn new(dir: impl Into<PathBuf>) -> HubCache {
        HubCache { dir: dir.into() }
    }

    /// The cache `huggingface_hub` uses, from the environment ([`HubCache::from_vars`] with
    /// `std::env::var_os`); `None` when no variable names one and `HOME` is unset.
    pub fn from_env() -> Option<HubCache> {
        HubCache::from_vars(|name| std::env::var_os(name))
    }

    /// The cache named by these variables, in `huggingface_hub`'s order: `HF_HUB_CACHE`,
    /// `HUGGINGFACE_HUB_CACHE` (its old name), `HF_HOME/hub`, `XDG_CACHE_HOME/huggingface/hub`,
    /// `HOME/.cache/huggingface/hub`. Empty values count as unset; a leading `~` is `HOME`.
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Option<HubCache> {
        let get = |name: &str| var(name).filter(|v| !v.is_empty());
        let home = get("HOME").map(PathBuf::from);
        let expand = |value: OsString| -> PathBuf {
            let path = PathBuf::from(value);
            match (path.strip_prefix("~"), &home) {
                (Ok(rest), Some(home)) => home.join(rest),
                _ => path,
            }
        };
        let dir = if let Some(dir) = get("HF_HUB_CACHE").or_else(|| get("HUGGINGFACE_HUB_CACHE")) {
            expand(dir)
        } else if let Some(hf_home) = get("HF_HOME") {
            expand(hf_home).join("hub")
        } else if let Some(xdg) = get("XDG_CACHE_HOME") {
            expand(xdg).join("huggingface").join("hub")
        } else {
            home?.join(".cache").join("huggingface").join("hub")
        };
        Some(HubCache { dir })
    }

    /// The cache folder of model repo `id` (`models--org--name`).
    pub fn repo_dir(&self, id: &str) -> PathBuf {
        self.dir.join(format!("models--{}", id.replace('/', "--")))
    }

    /// The snapshot folder of `id` at `revision` (a branch or tag with a file under `refs/`, or
    /// a commit hash with a snapshot) and its commit hash.
    pub fn snapshot(&self, id: &str, revision: &str) -> Result<(PathBuf, String), SourceError> {
        let not_cached = |reason: String| SourceError::NotCached {
            id: id.to_owned(),
            revision: revision.to_owned(),
            cache: self.dir.clone(),
            reason,
        };
        let repo = self.repo_dir(id);
        if !repo.is_dir() {
            return Err(not_cached(format!(
                "no {}",
                repo.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
        let ref_path = repo.join("refs").join(revision);
        let commit = if ref_path.is_file() {
            let text = std::fs::read_to_string(&ref_path).map_err(|source| SourceError::Io {
                path: ref_path.clone(),
                source,
            })?;
            let commit = text.trim().to_owned();
            let valid = !commit.is_empty()
                && commit.chars().all(|c| c.is_ascii_alphanumeric())
                && commit.len() <= 64;
            if !valid {
                return Err(SourceError::BadField {
                    path: ref_path,
                    field: "the commit hash".to_owned(),
                    detail: format!("is {commit:?}, not a hash"),
                });
            }
            commit
        } else if is_commit_hash(revision) {
            revision.to_owned()
        } else {
            let refs = list_refs(&repo.join("refs"));
            let known = if refs.is_empty() {
                "none".to_owned()
            } else {
                refs.join(", ")
            };
            return Err(not_cached(format!(
                "no refs/{revision} in {}; cached revisions: {known}",
                repo.display()
            )));
        };
        let snapshot = repo.join("snapshots").join(&commit);
        if !snapshot.is_dir() {
            return Err(not_cached(format!(
                "{} has no snapshots/{commit}",
                repo.display()
            )));
        }
        Ok((snapshot, commit))
    }
}

fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit())
}

/// Branch and tag names under `refs/` (nested ones like `pr/1` joined with `/`).
fn list_refs(refs: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let full = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            if path.is_dir() {
                walk(&path, &full, out);
            } else {
                out.push(full);
            }
        }
    }
    let mut out = Vec::new();
    walk(refs, "", &mut out);
    out.sort();
    out
}

/// Every tensor a [`LoadedModel`] holds, with its shape for `dims`: what Candle's
/// `Whisper::load` asks for, plus `model.encoder.embed_positions.weight`.
pub fn required_tensors(dims: &WhisperDims) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut add = |name: String, shape: &[usize]| out.push((name, shape.to_vec()));
    let d = dims.n_audio_state;
    let e = "model.encoder";
    add(format!("{e}.conv1.weight"), &[d, dims.n_mels, 3]);
    add(format!("{e}.conv1.bias"), &[d]);
    add(format!("{e}.conv2.weight"), &[d, d, 3]);
    add(format!("{e}.conv2.bias"), &[d]);
    add(
        format!("{e}.embed_positions.weight"),
        &[dims.n_audio_ctx, d],
    );
    let layer = |add: &mut dyn FnMut(String, &[usize]), prefix: &str, d: usize, cross: bool| {
        let mut attention = |name: &str| {
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                add(format!("{prefix}.{name}.{proj}.weight"), &[d, d]);
                if proj != "k_proj" {
                    add(format!("{prefix}.{name}.{proj}.bias"), &[d]);
                }
            }
            add(format!("{prefix}.{name}_layer_norm.weight"), &[d]);
            add(format!("{prefix}.{name}_layer_norm.bias"), &[d]);
        };
        attention("self_attn");
        if cross {
            attention("encoder_attn");
        }
        add(format!("{prefix}.fc1.weight"), &[4 * d, d]);
        add(format!("{prefix}.fc1.bias"), &[4 * d]);
        add(format!("{prefix}.fc2.weight"), &[d, 4 * d]);
        add(format!("{prefix}.fc2.bias"), &[d]);
        add(format!("{prefix}.final_layer_norm.weight"), &[d]);
        add(format!("{prefix}.final_layer_norm.bias"), &[d]);
    };
    for n in 0..dims.n_audio_layer {
        layer(&mut add, &format!("{e}.layers.{n}"), d, false);
    }
    add(format!("{e}.layer_norm.weight"), &[d]);
    add(format!("{e}.layer_norm.bias"), &[d]);
    let d = dims.n_text_state;
    let dec = "model.decoder";
    add(format!("{dec}.embed_tokens.weight"), &[dims.n_vocab, d]);
    add(
        format!("{dec}.embed_positions.weight"),
        &[dims.n_text_ctx, d],
    );
    for n in 0..dims.n_text_layer {
        layer(&mut add, &format!("{dec}.layers.{n}"), d, true);
    }
    add(format!("{dec}.layer_norm.weight"), &[d]);
    add(format!("{dec}.layer_norm.bias"), &[d]);
    out
}

/// Checks that `tensors` holds exactly [`required_tensors`] with their shapes; `file` names
/// where they came from.
fn check_tensor_map(
    tensors: &HashMap<String, Tensor>,
    dims: &WhisperDims,
    file: &Path,
) -> Result<(), SourceError> {
    let required = required_tensors(dims);
    for (name, expected) in &required {
        let Some(t) = tensors.get(name) else {
            return Err(SourceError::MissingTensor {
                file: file.to_owned(),
                name: name.clone(),
            });
        };
        if t.dims() != expected.as_slice() {
            return Err(SourceError::Shape {
                file: file.to_owned(),
                name: name.clone(),
                shape: t.dims().to_vec(),
                expected: expected.clone(),
            });
        }
    }
    let known: HashSet<&str> = required.iter().map(|(n, _)| n.as_str()).collect();
    let mut unknown: Vec<&str> = tensors
        .keys()
        .map(String::as_str)
        .filter(|n| !known.contains(n))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(SourceError::UnknownTensors {
            file: file.to_owned(),
            names: unknown.join(", "),
        });
    }
    Ok(())
}

fn load_ct2(dir: &Path, device: &Device) -> Result<LoadedModel, SourceError> {
    let ct2 = Ct2Whisper::open(dir)?;
    let dims = ct2.dims;
    if dims.n_audio_state != dims.n_text_state {
        return Err(SourceError::WidthMismatch {
            what: ct2.model.file().to_owned(),
            encoder: dims.n_audio_state,
            decoder: dims.n_text_state,
        });
    }
    let tensors = candle_tensors(&ct2.model, &dims, device)?;
    check_tensor_map(&tensors, &dims, &dir.join("model.bin"))?;
    Ok(LoadedModel {
        dims,
        config: ct2.config,
        tensors,
        tokenizer_dir: dir.to_owned(),
    })
}

fn load_safetensors(dir: &Path, device: &Device) -> Result<LoadedModel, SourceError> {
    let dims = read_hf_dims(dir)?;
    let config = read_hf_config(dir, &dims)?;
    let tensors = read_hf_tensors(dir, &dims, device)?;
    Ok(LoadedModel {
        dims,
        config,
        tensors,
        tokenizer_dir: dir.to_owned(),
    })
}

/// The dims of a Hugging Face Whisper `dir/config.json` (`d_model` is both widths; the
/// feed-forward widths must be `4 × d_model`, as Candle's Whisper assumes).
pub fn read_hf_dims(dir: &Path) -> Result<WhisperDims, SourceError> {
    let path = dir.join("config.json");
    let value = read_json(&path)?;
    let obj = object(&value, &path)?;
    match obj.get("model_type") {
        Some(Value::String(t)) if t == "whisper" => {}
        other => {
            return Err(SourceError::WrongModelType {
                path,
                found: other.map_or_else(|| "absent".to_owned(), Value::to_string),
            })
        }
    }
    let field = |key: &str| -> Result<usize, SourceError> {
        let bad = |detail: String| SourceError::BadField {
            path: path.clone(),
            field: key.to_owned(),
            detail,
        };
        let v = obj.get(key).ok_or_else(|| bad("is missing".to_owned()))?;
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .filter(|&x| x > 0)
            .ok_or_else(|| bad(format!("is {v}, expected a positive integer")))
    };
    let d = field("d_model")?;
    let dims = WhisperDims {
        n_mels: field("num_mel_bins")?,
        n_audio_ctx: field("max_source_positions")?,
        n_audio_state: d,
        n_audio_head: field("encoder_attention_heads")?,
        n_audio_layer: field("encoder_layers")?,
        n_text_ctx: field("max_target_positions")?,
        n_text_state: d,
        n_text_head: field("decoder_attention_heads")?,
        n_text_layer: field("decoder_layers")?,
        n_vocab: field("vocab_size")?,
    };
    for (key, heads) in [
        ("encoder_attention_heads", dims.n_audio_head),
        ("decoder_attention_heads", dims.n_text_head),
    ] {
        if d % heads != 0 {
            return Err(SourceError::BadField {
                path,
                field: key.to_owned(),
                detail: format!("is {heads}, which does not divide d_model {d}"),
            });
        }
    }
    for key in ["encoder_ffn_dim", "decoder_ffn_dim"] {
        if obj.contains_key(key) {
            let ffn = field(key)?;
            if ffn != 4 * d {
                return Err(SourceError::BadField {
                    path,
                    field: key.to_owned(),
                    detail: format!(
                        "is {ffn}, but Candle's Whisper needs 4 × d_model = {}",
                        4 * d
                    ),
                });
            }
        }
    }
    Ok(dims)
}

/// The generation settings of a Hugging Face Whisper folder, as CTranslate2's converter derives
/// them: from `generation_config.json` (`suppress_tokens`, `begin_suppress_tokens`, `lang_to_id`,
/// `alignment_heads`), suppressed tokens falling back to `config.json`, language ids to the
/// `<|xx|>` special tokens of `tokenizer.json`, alignment heads to every head of the last half
/// of the decoder layers. Token ids and heads are checked against `dims`.
pub fn read_hf_config(dir: &Path, dims: &WhisperDims) -> Result<WhisperConfig, SourceError> {
    let config_path = dir.join("config.json");
    let config_value = read_json(&config_path)?;
    let config = object(&config_value, &config_path)?;
    let generation_path = dir.join("generation_config.json");
    let generation_value = if generation_path.is_file() {
        Some(read_json(&generation_path)?)
    } else {
        None
    };
    let generation = match &generation_value {
        Some(v) => Some(object(v, &generation_path)?),
        None => None,
    };
    // A key of generation_config.json, else of config.json (null counts as absent).
    let lookup = |key: &str, fallback: bool| -> Option<(&Value, &Path)> {
        let from_generation = generation
            .and_then(|g| g.get(key))
            .filter(|v| !v.is_null())
            .map(|v| (v, generation_path.as_path()));
        let from_config = || {
            config
                .get(key)
                .filter(|v| fallback && !v.is_null())
                .map(|v| (v, config_path.as_path()))
        };
        from_generation.or_else(from_config)
    };
    let ids = |key: &str| -> Result<Vec<u32>, SourceError> {
        match lookup(key, true) {
            None => Ok(Vec::new()),
            Some((v, path)) => token_ids(v, key, path, dims),
        }
    };
    let suppress_ids = ids("suppress_tokens")?;
    let suppress_ids_begin = ids("begin_suppress_tokens")?;

    let lang_ids = match lookup("lang_to_id", false) {
        Some((v, path)) => {
            let map = v.as_object().ok_or_else(|| SourceError::BadField {
                path: path.to_owned(),
                field: "lang_to_id".to_owned(),
                detail: format!("is {}, expected an object", kind(v)),
            })?;
            let values: Vec<Value> = map.values().cloned().collect();
            let mut ids = token_ids(&Value::Array(values), "lang_to_id", path, dims)?;
            ids.sort_unstable();
            ids.dedup();
            ids
        }
        None => tokenizer_lang_ids(&dir.join("tokenizer.json"), dims)?,
    };

    let alignment_heads = match lookup("alignment_heads", false) {
        Some((v, path)) => alignment_heads(v, path, dims)?,
        None => (dims.n_text_layer / 2..dims.n_text_layer)
            .flat_map(|layer| (0..dims.n_text_head).map(move |head| (layer, head)))
            .collect(),
    };
    Ok(WhisperConfig {
        alignment_heads,
        lang_ids,
        suppress_ids,
        suppress_ids_begin,
    })
}

fn token_ids(
    v: &Value,
    key: &str,
    path: &Path,
    dims: &WhisperDims,
) -> Result<Vec<u32>, SourceError> {
    let bad = |detail: String| SourceError::BadField {
        path: path.to_owned(),
        field: key.to_owned(),
        detail,
    };
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("is {}, expected an array of token ids", kind(v))))?;
    items
        .iter()
        .map(|x| {
            let id = x
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| bad(format!("holds {x}, not a token id")))?;
            if id as usize >= dims.n_vocab {
                return Err(bad(format!(
                    "holds token id {id}, outside the vocabulary ({})",
                    dims.n_vocab
                )));
            }
            Ok(id)
        })
        .collect()
}

fn alignment_heads(
    v: &Value,
    path: &Path,
    dims: &WhisperDims,
) -> Result<Vec<(usize, usize)>, SourceError> {
    let bad = |detail: String| SourceError::BadField {
        path: path.to_owned(),
        field: "alignment_heads".to_owned(),
        detail,
    };
    let pairs = v
        .as_array()
        .ok_or_else(|| bad(format!("is {}, expected [[layer, head], …]", kind(v))))?;
    pairs
        .iter()
        .map(|p| {
            let (layer, head) = p
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
                .and_then(|(l, h)| Some((usize::try_from(l).ok()?, usize::try_from(h).ok()?)))
                .ok_or_else(|| bad(format!("holds {p}, not [layer, head]")))?;
            if layer >= dims.n_text_layer || head >= dims.n_text_head {
                return Err(bad(format!(
                    "holds [{layer}, {head}], outside the decoder ({} layers, {} heads)",
                    dims.n_text_layer, dims.n_text_head
                )));
            }
            Ok((layer, head))
        })
        .collect()
}

/// The ids of the language tokens (`<|en|>`, `<|haw|>` …: special added tokens of two or three
/// lowercase letters) of a `tokenizer.json`, sorted.
fn tokenizer_lang_ids(path: &Path, dims: &WhisperDims) -> Result<Vec<u32>, SourceError> {
    let value = read_json(path)?;
    let bad = |detail: String| SourceError::BadField {
        path: path.to_owned(),
        field: "added_tokens".to_owned(),
        detail,
    };
    let tokens = value
        .get("added_tokens")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("is missing or not an array".to_owned()))?;
    let mut ids = Vec::new();
    for token in tokens {
        let content = token.get("content").and_then(Value::as_str);
        let special = token.get("special").and_then(Value::as_bool) == Some(true);
        let Some(code) = content
            .and_then(|c| c.strip_prefix("<|"))
            .and_then(|c| c.strip_suffix("|>"))
        else {
            continue;
        };
        if !special
            || !(2..=3).contains(&code.len())
            || !code.bytes().all(|b| b.is_ascii_lowercase())
        {
            continue;
        }
        let id = token
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|x| u32::try_from(x).ok())
            .filter(|&id| (id as usize) < dims.n_vocab)
            .ok_or_else(|| bad(format!("holds {token} with an invalid id")))?;
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The safetensors files of `dir` with, for sharded weights, the names the index puts in each.
struct WeightFiles {
    /// `model.safetensors` or the index: what "missing tensor" errors name.
    origin: PathBuf,
    files: Vec<(PathBuf, Option<BTreeSet<String>>)>,
    /// The index's `weight_map` (stored name → shard file name); empty for a single file.
    index: HashMap<String, String>,
}

fn weight_files(dir: &Path) -> Result<WeightFiles, SourceError> {
    let single = dir.join(SAFETENSORS_FILE);
    if single.is_file() {
        return Ok(WeightFiles {
            origin: single.clone(),
            files: vec![(single, None)],
            index: HashMap::new(),
        });
    }
    let index = dir.join(SAFETENSORS_INDEX);
    if !index.is_file() {
        return Err(SourceError::MissingFile {
            path: single,
            hint: format!(" (nor {SAFETENSORS_INDEX})"),
        });
    }
    let value = read_json(&index)?;
    let bad = |detail: String| SourceError::Index {
        index: index.clone(),
        detail,
    };
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("weight_map is missing or not an object".to_owned()))?;
    let mut shards: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut weight_map = HashMap::with_capacity(map.len());
    for (name, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("weight_map[{name:?}] is {file}, not a file name")))?;
        let plain = Path::new(file).file_name().and_then(|f| f.to_str()) == Some(file)
            && file != ".."
            && file != ".";
        if !plain {
            return Err(bad(format!(
                "weight_map[{name:?}] is {file:?}, not a file name in this folder"
            )));
        }
        weight_map.insert(name.clone(), file.to_owned());
        match shards.iter_mut().find(|(f, _)| f == file) {
            Some((_, names)) => {
                names.insert(name.clone());
            }
            None => shards.push((file.to_owned(), BTreeSet::from([name.clone()]))),
        }
    }
    if shards.is_empty() {
        return Err(bad("weight_map is empty".to_owned()));
    }
    shards.sort();
    let files = shards
        .into_iter()
        .map(|(file, names)| {
            let path = dir.join(&file);
            if path.is_file() {
                Ok((path, Some(names)))
            } else {
                Err(SourceError::MissingFile {
                    path,
                    hint: format!(" (a shard {SAFETENSORS_INDEX} names)"),
                })
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(WeightFiles {
        origin: index,
        files,
        index: weight_map,
    })
}

/// A stored name as a [`required_tensors`] name: `WhisperModel` checkpoints lack `model.`.
fn hf_name(stored: &str) -> String {
    if stored.starts_with("encoder.") || stored.starts_with("decoder.") {
        format!("model.{stored}")
    } else {
        stored.to_owned()
    }
}

/// Reads every required tensor (and checks `proj_out.weight`) from `dir`'s safetensors, one
/// file in memory at a time, each tensor converted to f32 on `device`.
pub fn read_hf_tensors(
    dir: &Path,
    dims: &WhisperDims,
    device: &Device,
) -> Result<HashMap<String, Tensor>, SourceError> {
    let weights = weight_files(dir)?;
    let required: HashMap<String, Vec<usize>> = required_tensors(dims).into_iter().collect();
    let mut tensors: HashMap<String, Tensor> = HashMap::with_capacity(required.len());
    let mut found_in: HashMap<String, PathBuf> = HashMap::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut proj_out: Option<(PathBuf, Tensor)> = None;
    for (file, listed) in &weights.files {
        let bytes = std::fs::read(file).map_err(|source| io_error(file, source))?;
        let st = SliceSafetensors::new(&bytes).map_err(|source| SourceError::Safetensors {
            file: file.clone(),
            source,
        })?;
        let mut stored: BTreeSet<String> = BTreeSet::new();
        for (stored_name, view) in st.tensors() {
            stored.insert(stored_name.clone());
            let name = hf_name(&stored_name);
            if let Some(other) = found_in.get(&name) {
                return Err(SourceError::DuplicateTensor {
                    file: file.clone(),
                    name,
                    other: other.clone(),
                });
            }
            found_in.insert(name.clone(), file.clone());
            let expected = if name == PROJ_OUT {
                vec![dims.n_vocab, dims.n_text_state]
            } else if let Some(shape) = required.get(&name) {
                shape.clone()
            } else {
                unknown.push(stored_name);
                continue;
            };
            if view.shape() != expected.as_slice() {
                return Err(SourceError::Shape {
                    file: file.clone(),
                    name,
                    shape: view.shape().to_vec(),
                    expected,
                });
            }
            let candle_error = |source| SourceError::Safetensors {
                file: file.clone(),
                source,
            };
            let tensor = view.load(device).map_err(candle_error)?;
            if !tensor.dtype().is_float() {
                return Err(SourceError::NotFloat {
                    file: file.clone(),
                    name,
                    dtype: tensor.dtype(),
                });
            }
            let tensor = tensor.to_dtype(DType::F32).map_err(candle_error)?;
            if name == PROJ_OUT {
                proj_out = Some((file.clone(), tensor));
            } else {
                tensors.insert(name, tensor);
            }
        }
        if let Some(listed) = listed {
            let index_error = |detail: String| SourceError::Index {
                index: weights.origin.clone(),
                detail,
            };
            let file_name = file.file_name().unwrap_or_default().to_string_lossy();
            if let Some(name) = listed.difference(&stored).next() {
                return Err(index_error(format!(
                    "puts {name} in {file_name}, which does not hold it"
                )));
            }
            if let Some(name) = stored.difference(listed).next() {
                return Err(index_error(match weights.index.get(name) {
                    Some(other) => format!("puts {name} in {other}, but {file_name} holds it"),
                    None => format!("does not list {name}, which {file_name} holds"),
                }));
            }
        }
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(SourceError::UnknownTensors {
            file: weights.origin,
            names: unknown.join(", "),
        });
    }
    // Names and shapes were checked as they were read: what is left to find is a missing one.
    let mut names: Vec<&String> = required.keys().collect();
    names.sort_unstable();
    if let Some(name) = names.into_iter().find(|n| !tensors.contains_key(*n)) {
        return Err(SourceError::MissingTensor {
            file: weights.origin,
            name: name.clone(),
        });
    }
    if let Some((file, proj)) = proj_out {
        check_tied(&file, &proj, &tensors["model.decoder.embed_tokens.weight"])?;
    }
    Ok(tensors)
}

/// `proj_out.weight` must equal the token embeddings, which Candle's Whisper uses in its place.
fn check_tied(file: &Path, proj: &Tensor, embed: &Tensor) -> Result<(), SourceError> {
    let candle = |source| SourceError::Candle {
        what: format!("{}: comparing {PROJ_OUT}", file.display()),
        source,
    };
    let difference = (proj - embed)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_scalar::<f32>())
        .map_err(candle)?;
    // NaN compares unequal too: only exact zero is tied.
    if difference != 0.0 {
        return Err(SourceError::UntiedProjection {
            file: file.to_owned(),
            detail: format!("largest difference {difference}"),
        });
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    serde_json::from_slice(&bytes).map_err(|e| SourceError::Json {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn object<'a>(value: &'a Value, path: &Path) -> Result<&'a Map<String, Value>, SourceError> {
    value.as_object().ok_or_else(|| SourceError::Json {
        path: path.to_owned(),
        detail: format!("expected a JSON object, found {}", kind(value)),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn missing(path: &Path) -> SourceError {
    SourceError::MissingFile {
        path: path.to_owned(),
        hint: String::new(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> SourceError {
    if source.kind() == std::io::ErrorKind::NotFound {
        missing(path)
    } else {
        SourceError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_parse_and_paths_do_not() {
        let id = |s: &str| HubId::parse(s).unwrap();
        assert_eq!(
            id("openai/whisper-tiny.en"),
            Some(HubId {
                id: "openai/whisper-tiny.en".to_owned(),
                revision: "main".to_owned()
            })
        );
        assert_eq!(id("gpt2@v1.0").unwrap().revision, "v1.0");
        assert_eq!(id("org/name@refs/pr/1").unwrap().revision, "refs/pr/1");
        for path in [
            "./models/x",
            "/abs/model",
            "a/b/c",
            "../x",
            "org/-bad",
            "org/a--b",
            "org/",
            "~/models/x",
        ] {
            assert_eq!(id(path), None, "{path}");
        }
        for bad in [
            "org/name@",
            "org/name@../x",
            "org/name@a//b",
            "org/name@a\\b",
        ] {
            let err = HubId::parse(bad).unwrap_err();
            assert!(
                matches!(err, SourceError::InvalidSpec { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn cache_dir_follows_huggingface_hub_order() {
        let vars = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, OsString)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            HubCache::from_vars(move |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
            .map(|c| c.dir)
        };
        let all = [
            ("HF_HUB_CACHE", "/a"),
            ("HF_HOME", "/h"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(vars(&all), Some(PathBuf::from("/a")));
        assert_eq!(vars(&all[1..]), Some(PathBuf::from("/h/hub")));
        assert_eq!(vars(&all[2..]), Some(PathBuf::from("/x/huggingface/hub")));
        assert_eq!(
            vars(&all[3..]),
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        assert_eq!(vars(&[]), None);
        assert_eq!(
            vars(&[
                ("HF_HUB_CACHE", ""),
                ("HF_HOME", "~/hf"),
                ("HOME", "/home/u")
            ]),
            Some(PathBuf::from("/home/u/hf/hub"))
        );
    }

    #[test]
    fn required_tensors_count() {
        let dims = WhisperDims {
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
        };
        let names = required_tensors(&dims);
        // 5 stem + 4 × 15 encoder layer + 2 final norm; 2 embeddings + 4 × 24 + 2 decoder.
        assert_eq!(names.len(), 5 + 4 * 15 + 2 + 2 + 4 * 24 + 2);
        let unique: HashSet<&String> = names.iter().map(|(n, _)| n).collect();
        assert_eq!(unique.len(), names.len());
    }
}
