//! Reading CTranslate2 Whisper model folders (`model.bin`, `config.json`) directly, without
//! CTranslate2 or Python: the format faster-whisper uses, so its model folders work as they are.
//!
//! - [`Ct2Model`]: the variables of a `model.bin` (binary versions 1 to 6), aliases resolved,
//!   each converted to `f32` on request ([`Ct2Model::tensor_f32`]) from float32, float16,
//!   bfloat16, int8 (per-row `weight_scale`) or int16/int32.
//! - [`WhisperDims`]: the model's dimensions, derived from variable shapes and scalars.
//! - [`WhisperConfig`]: the generation settings of `config.json` (suppressed tokens, language
//!   tokens, alignment heads).
//! - [`Ct2Whisper`]: all three, opened and checked together.
//!
//! `model.bin` is read into memory once (`std::fs::read`) and variables are views into that
//! buffer: the file is at most a few GB, every tensor is converted (copied) on its way to the
//! compute device anyway, and an owned buffer needs no `unsafe` (a memory map does, and a file
//! replaced under a map is undefined behaviour). Parsing checks every length against the
//! buffer, so no input makes it panic.
//!
//! Layout (little-endian): `u32 binary_version`; from version 2 `str spec_name`,
//! `u32 spec_revision`; `u32 variable_count`, then per variable `str name`, `u8 rank`,
//! `u32 dims[rank]`, then from version 4 `u8 dtype` + `u32 byte_size`, before it
//! `u8 item_size` + `u32 item_count`, then the data; from version 3 `u32 alias_count` and
//! `str alias`, `str target` pairs. A `str` is a `u16` length (including a trailing NUL) and its
//! bytes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

/// The newest `model.bin` binary version this reader knows (CTranslate2 4.x writes 6).
pub const MAX_BINARY_VERSION: u32 = 6;

/// The spec name CTranslate2's Whisper converter writes.
pub const WHISPER_SPEC: &str = "WhisperSpec";

/// Errors reading a CTranslate2 model folder.
#[derive(Debug, thiserror::Error)]
pub enum Ct2Error {
    #[error("{}: file not found", path.display())]
    MissingFile { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{file} is truncated: reading {what} at byte offset {offset} needs {needed} bytes, \
         only {available} left"
    )]
    Truncated {
        file: String,
        what: String,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error(
        "{file}: unsupported binary_version {version} (this reader handles 1 to {max})",
        max = MAX_BINARY_VERSION
    )]
    UnsupportedVersion { file: String, version: u32 },
    #[error("{file}: variable {name} has unknown dtype {dtype}")]
    UnknownDType {
        file: String,
        name: String,
        dtype: String,
    },
    #[error("{file}: spec is {found:?}, expected {expected:?}")]
    WrongSpec {
        file: String,
        found: String,
        expected: &'static str,
    },
    #[error("{file}: variable {name} not found")]
    VariableNotFound { file: String, name: String },
    #[error("{file}: {detail}")]
    Invalid { file: String, detail: String },
    #[error("{}: {detail}", path.display())]
    Config { path: PathBuf, detail: String },
}

/// Element type of a variable, as `model.bin` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    /// Binary versions before 4 store an item size instead of a dtype.
    fn from_item_size(size: u8) -> Option<DType> {
        Some(match size {
            4 => DType::F32,
            2 => DType::I16,
            1 => DType::I8,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }

    /// CTranslate2's name for it (`float16` etc.).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One stored variable: its name, row-major shape (PyTorch order) and element type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    offset: usize,
    len: usize,
}

impl Variable {
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Byte offset of the data in `model.bin`.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Byte length of the data.
    pub fn byte_len(&self) -> usize {
        self.len
    }
}

/// The contents of a CTranslate2 `model.bin`.
#[derive(Debug)]
pub struct Ct2Model {
    file: String,
    bytes: Vec<u8>,
    binary_version: u32,
    spec_name: String,
    spec_revision: u32,
    variables: Vec<Variable>,
    index: HashMap<String, usize>,
    aliases: Vec<(String, String)>,
    alias_index: HashMap<String, usize>,
}

impl Ct2Model {
    /// Read and parse `dir/model.bin`.
    pub fn open(dir: &Path) -> Result<Ct2Model, Ct2Error> {
        let path = dir.join("model.bin");
        let bytes = read_file(&path)?;
        Ct2Model::from_bytes(bytes, &path.display().to_string())
    }

    /// Parse the bytes of a `model.bin`; `file` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, file: &str) -> Result<Ct2Model, Ct2Error> {
        let parsed = parse(&bytes, file)?;
        let mut index = HashMap::with_capacity(parsed.variables.len());
        for (i, v) in parsed.variables.iter().enumerate() {
            if index.insert(v.name.clone(), i).is_some() {
                return Err(invalid(
                    file,
                    format!("variable {} is stored twice", v.name),
                ));
            }
        }
        let mut alias_index = HashMap::with_capacity(parsed.aliases.len());
        for (alias, target) in &parsed.aliases {
            let Some(&i) = index.get(target) else {
                return Err(invalid(
                    file,
                    format!("alias {alias} points to {target}, which is not stored"),
                ));
            };
            alias_index.insert(alias.clone(), i);
        }
        Ok(Ct2Model {
            file: file.to_owned(),
            bytes,
            binary_version: parsed.binary_version,
            spec_name: parsed.spec_name,
            spec_revision: parsed.spec_revision,
            variables: parsed.variables,
            index,
            aliases: parsed.aliases,
            alias_index,
        })
    }

    /// The file this model came from, as errors name it.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Size of `model.bin` in bytes (all of it is parsed: trailing bytes are an error).
    pub fn file_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn binary_version(&self) -> u32 {
        self.binary_version
    }

    /// `WhisperSpec` for Whisper models; empty for binary version 1, which stores none.
    pub fn spec_name(&self) -> &str {
        &self.spec_name
    }

    pub fn spec_revision(&self) -> u32 {
        self.spec_revision
    }

    /// The stored variables, in file order (aliases not included).
    pub fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// `(alias, target)` pairs, e.g. `decoder/projection/weight` → `decoder/embeddings/weight`.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }

    /// Whether `name` is stored or an alias of a stored variable.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name) || self.alias_index.contains_key(name)
    }

    /// The variable called `name`, following an alias.
    pub fn variable(&self, name: &str) -> Result<&Variable, Ct2Error> {
        self.index
            .get(name)
            .or_else(|| self.alias_index.get(name))
            .map(|&i| &self.variables[i])
            .ok_or_else(|| Ct2Error::VariableNotFound {
                file: self.file.clone(),
                name: name.to_owned(),
            })
    }

    /// The raw little-endian bytes of a variable (for zero-conversion uploads).
    pub fn raw(&self, name: &str) -> Result<(&Variable, &[u8]), Ct2Error> {
        let v = self.variable(name)?;
        Ok((v, &self.bytes[v.offset..v.offset + v.len]))
    }

    /// A variable as `f32` with its shape. Floats are widened; int8 is dequantized with its
    /// per-row `<name>_scale` (`value / scale[row]`, as CTranslate2's `Dequantize` does), int16
    /// with its scalar `<name>_scale` when there is one; other integers are cast.
    pub fn tensor_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), Ct2Error> {
        let (v, data) = self.raw(name)?;
        let values: Vec<f32> = match v.dtype {
            DType::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => data
                .chunks_exact(2)
                .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            DType::BF16 => data
                .chunks_exact(2)
                .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            DType::I32 => data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
            DType::I16 => {
                let scale_name = format!("{}_scale", v.name);
                let scale = if self.contains(&scale_name) {
                    let (_, s) = self.tensor_f32(&scale_name)?;
                    if s.len() != 1 {
                        return Err(self.invalid(format!(
                            "{scale_name} has {} values, expected a scalar int16 scale",
                            s.len()
                        )));
                    }
                    s[0]
                } else {
                    1.0
                };
                data.chunks_exact(2)
                    .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / scale)
                    .collect()
            }
            DType::I8 => self.dequantize_int8(v, data)?,
        };
        Ok((v.shape.clone(), values))
    }

    fn dequantize_int8(&self, v: &Variable, data: &[u8]) -> Result<Vec<f32>, Ct2Error> {
        let scale_name = format!("{}_scale", v.name);
        if !self.contains(&scale_name) {
            return Err(self.invalid(format!(
                "{} is int8 but {scale_name} (its quantization scale) is not stored",
                v.name
            )));
        }
        let (_, scales) = self.tensor_f32(&scale_name)?;
        let depth = v.shape.last().copied().unwrap_or(1);
        let rows = v.numel().checked_div(depth).unwrap_or(0);
        if scales.len() != rows {
            return Err(self.invalid(format!(
                "{scale_name} has {} values, expected one per row of {} ({rows})",
                scales.len(),
                v.name
            )));
        }
        if depth == 0 {
            return Ok(Vec::new());
        }
        Ok(data
            .chunks_exact(depth)
            .zip(&scales)
            .flat_map(|(row, &scale)| row.iter().map(move |&q| f32::from(q as i8) / scale))
            .collect())
    }

    /// An integer scalar such as `encoder/num_heads` (any dtype; floats must be whole).
    pub fn scalar_i64(&self, name: &str) -> Result<i64, Ct2Error> {
        let (v, data) = self.raw(name)?;
        if v.numel() != 1 {
            return Err(self.invalid(format!("{name} has shape {:?}, expected a scalar", v.shape)));
        }
        let value = match v.dtype {
            DType::I8 => i64::from(data[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([data[0], data[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([data[0], data[1], data[2], data[3]])),
            DType::F32 | DType::F16 | DType::BF16 => {
                let (_, f) = self.tensor_f32(name)?;
                let x = f[0];
                if x.fract() != 0.0 || !x.is_finite() {
                    return Err(self.invalid(format!("{name} is {x}, expected an integer")));
                }
                x as i64
            }
        };
        Ok(value)
    }

    fn invalid(&self, detail: String) -> Ct2Error {
        invalid(&self.file, detail)
    }
}

/// Whisper's dimensions, named as in OpenAI's `ModelDimensions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperDims {
    pub n_mels: usize,
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
    pub n_vocab: usize,
}

/// Every Whisper size uses 64-dimensional attention heads.
const WHISPER_HEAD_DIM: usize = 64;

impl WhisperDims {
    /// Derive the dimensions from a Whisper model's shapes and scalars, checking they agree.
    pub fn from_model(model: &Ct2Model) -> Result<WhisperDims, Ct2Error> {
        if model.spec_name() != WHISPER_SPEC {
            return Err(Ct2Error::WrongSpec {
                file: model.file().to_owned(),
                found: model.spec_name().to_owned(),
                expected: WHISPER_SPEC,
            });
        }
        let shape = |name: &str, rank: usize| -> Result<Vec<usize>, Ct2Error> {
            let v = model.variable(name)?;
            if v.shape.len() != rank || v.shape.contains(&0) {
                return Err(model.invalid(format!(
                    "{name} has shape {:?}, expected {rank} non-zero dimensions",
                    v.shape
                )));
            }
            Ok(v.shape.clone())
        };
        let conv1 = shape("encoder/conv1/weight", 3)?;
        let audio_pos = shape("encoder/position_encodings/encodings", 2)?;
        let embed = shape("decoder/embeddings/weight", 2)?;
        let text_pos = shape("decoder/position_encodings/encodings", 2)?;
        let (n_audio_state, n_mels) = (conv1[0], conv1[1]);
        let (n_vocab, n_text_state) = (embed[0], embed[1]);
        let n_audio_ctx = audio_pos[0];
        let n_text_ctx = text_pos[0];
        if audio_pos[1] != n_audio_state {
            return Err(model.invalid(format!(
                "encoder/position_encodings/encodings has width {}, conv1 has {n_audio_state}",
                audio_pos[1]
            )));
        }
        if text_pos[1] != n_text_state {
            return Err(model.invalid(format!(
                "decoder/position_encodings/encodings has width {}, the embeddings {n_text_state}",
                text_pos[1]
            )));
        }
        let n_audio_head = heads(model, "encoder/num_heads", n_audio_state)?;
        let n_text_head = heads(model, "decoder/num_heads", n_text_state)?;
        Ok(WhisperDims {
            n_mels,
            n_audio_ctx,
            n_audio_state,
            n_audio_head,
            n_audio_layer: count_layers(model, "encoder")?,
            n_text_ctx,
            n_text_state,
            n_text_head,
            n_text_layer: count_layers(model, "decoder")?,
            n_vocab,
        })
    }

    /// Whether the vocabulary is the multilingual one (51865 and up; English-only is 51864).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

fn heads(model: &Ct2Model, name: &str, state: usize) -> Result<usize, Ct2Error> {
    let heads = if model.contains(name) {
        let h = model.scalar_i64(name)?;
        usize::try_from(h)
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| model.invalid(format!("{name} is {h}")))?
    } else {
        // Older converters did not store it; every Whisper head is 64 wide.
        state / WHISPER_HEAD_DIM
    };
    if heads == 0 || state % heads != 0 || state / heads != WHISPER_HEAD_DIM {
        return Err(model.invalid(format!(
            "{name} = {heads} with width {state} does not give Whisper's head size {WHISPER_HEAD_DIM}"
        )));
    }
    Ok(heads)
}

/// Count `prefix/layer_N/...` layers, requiring N to run 0, 1, … without gaps.
fn count_layers(model: &Ct2Model, prefix: &str) -> Result<usize, Ct2Error> {
    let start = format!("{prefix}/layer_");
    let layers: BTreeSet<usize> = model
        .variables()
        .iter()
        .filter_map(|v| v.name.strip_prefix(&start))
        .filter_map(|rest| rest.split('/').next()?.parse().ok())
        .collect();
    let n = layers.len();
    if n == 0 {
        return Err(model.invalid(format!("no {start}N variables")));
    }
    if layers.last() != Some(&(n - 1)) {
        return Err(model.invalid(format!(
            "{prefix} layers are not numbered 0 to {}: {layers:?}",
            n - 1
        )));
    }
    Ok(n)
}

/// The generation settings CTranslate2's converter writes to `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WhisperConfig {
    /// `(decoder layer, head)` pairs whose cross-attention aligns text with audio.
    pub alignment_heads: Vec<(usize, usize)>,
    /// Token ids of the language tokens (`<|en|>` …).
    pub lang_ids: Vec<u32>,
    /// Tokens never sampled.
    pub suppress_ids: Vec<u32>,
    /// Tokens not sampled as the first token.
    pub suppress_ids_begin: Vec<u32>,
}

impl WhisperConfig {
    /// Read `dir/config.json`.
    pub fn open(dir: &Path) -> Result<WhisperConfig, Ct2Error> {
        let path = dir.join("config.json");
        let bytes = read_file(&path)?;
        WhisperConfig::from_json(&bytes, &path)
    }

    /// Parse the JSON of a `config.json`; `path` names it in errors. Absent keys are empty.
    pub fn from_json(json: &[u8], path: &Path) -> Result<WhisperConfig, Ct2Error> {
        let err = |detail: String| Ct2Error::Config {
            path: path.to_owned(),
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_slice(json).map_err(|e| err(format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| err("expected a JSON object".to_owned()))?;
        let ids = |key: &str| -> Result<Vec<u32>, Ct2Error> {
            match obj.get(key) {
                None | Some(serde_json::Value::Null) => Ok(Vec::new()),
                Some(v) => v
                    .as_array()
                    .ok_or_else(|| err(format!("{key} is not an array")))?
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|x| u32::try_from(x).ok())
                            .ok_or_else(|| err(format!("{key} holds {x}, not a token id")))
                    })
                    .collect(),
            }
        };
        let mut alignment_heads = Vec::new();
        if let Some(v) = obj.get("alignment_heads").filter(|v| !v.is_null()) {
            let pairs = v
                .as_array()
                .ok_or_else(|| err("alignment_heads is not an array".to_owned()))?;
            for p in pairs {
                let pair = p
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
                    .and_then(|(l, h)| Some((usize::try_from(l).ok()?, usize::try_from(h).ok()?)))
                    .ok_or_else(|| err(format!("alignment_heads holds {p}, not [layer, head]")))?;
                alignment_heads.push(pair);
            }
        }
        Ok(WhisperConfig {
            alignment_heads,
            lang_ids: ids("lang_ids")?,
            suppress_ids: ids("suppress_ids")?,
            suppress_ids_begin: ids("suppress_ids_begin")?,
        })
    }
}

/// A CTranslate2 Whisper folder: `model.bin` with its dimensions, and `config.json`.
#[derive(Debug)]
pub struct Ct2Whisper {
    pub model: Ct2Model,
    pub dims: WhisperDims,
    pub config: WhisperConfig,
}

impl Ct2Whisper {
    /// Open `dir`, check it holds a Whisper model and that `config.json` fits it.
    pub fn open(dir: &Path) -> Result<Ct2Whisper, Ct2Error> {
        let model = Ct2Model::open(dir)?;
        let dims = WhisperDims::from_model(&model)?;
        let config = WhisperConfig::open(dir)?;
        let config_path = dir.join("config.json");
        let bad_token = config
            .lang_ids
            .iter()
            .chain(&config.suppress_ids)
            .chain(&config.suppress_ids_begin)
            .find(|&&id| id as usize >= dims.n_vocab);
        if let Some(id) = bad_token {
            return Err(Ct2Error::Config {
                path: config_path,
                detail: format!("token id {id} is outside the vocabulary ({})", dims.n_vocab),
            });
        }
        if let Some(&(layer, head)) = config
            .alignment_heads
            .iter()
            .find(|&&(l, h)| l >= dims.n_text_layer || h >= dims.n_text_head)
        {
            return Err(Ct2Error::Config {
                path: config_path,
                detail: format!(
                    "alignment head [{layer}, {head}] is outside the decoder ({} layers, {} heads)",
                    dims.n_text_layer, dims.n_text_head
                ),
            });
        }
        Ok(Ct2Whisper {
            model,
            dims,
            config,
        })
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Ct2Error> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Ct2Error::MissingFile {
                path: path.to_owned(),
            }
        } else {
            Ct2Error::Io {
                path: path.to_owned(),
                source,
            }
        }
    })
}

fn invalid(file: &str, detail: String) -> Ct2Error {
    Ct2Error::Invalid {
        file: file.to_owned(),
        detail,
    }
}

struct Parsed {
    binary_version: u32,
    spec_name: String,
    spec_revision: u32,
    variables: Vec<Variable>,
    aliases: Vec<(String, String)>,
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8], Ct2Error> {
        let available = self.bytes.len() - self.pos;
        if n > available {
            return Err(Ct2Error::Truncated {
                file: self.file.to_owned(),
                what: what(),
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, Ct2Error> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &dyn Fn() -> String) -> Result<u16, Ct2Error> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, Ct2Error> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, Ct2Error> {
        let start = self.pos;
        let len = self.u16(&|| format!("the length of {}", what()))?;
        let raw = self.take(usize::from(len), what)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| {
            invalid(
                self.file,
                format!("{} at byte offset {start} is not UTF-8", what()),
            )
        })
    }
}

fn parse(bytes: &[u8], file: &str) -> Result<Parsed, Ct2Error> {
    let mut r = Reader {
        bytes,
        pos: 0,
        file,
    };
    let binary_version = r.u32(&|| "binary_version".to_owned())?;
    if !(1..=MAX_BINARY_VERSION).contains(&binary_version) {
        return Err(Ct2Error::UnsupportedVersion {
            file: file.to_owned(),
            version: binary_version,
        });
    }
    let (spec_name, spec_revision) = if binary_version >= 2 {
        let name = r.string(&|| "spec_name".to_owned())?;
        let revision = r.u32(&|| "spec_revision".to_owned())?;
        (name, revision)
    } else {
        (String::new(), 1)
    };
    let count = r.u32(&|| "variable_count".to_owned())?;
    // Each variable takes at least 2 (name) + 1 (rank) + 1 (dtype) + 4 (size) bytes: a garbled
    // count cannot make us reserve more than the file could hold.
    let mut variables = Vec::with_capacity((count as usize).min(bytes.len() / 8));
    for i in 0..count {
        let name = r.string(&|| format!("the name of variable {i} of {count}"))?;
        let rank = r.u8(&|| format!("the rank of variable {name}"))?;
        let mut shape = Vec::with_capacity(usize::from(rank));
        for d in 0..rank {
            let dim = r.u32(&|| format!("dimension {d} of variable {name}"))?;
            shape.push(dim as usize);
        }
        let (dtype, len) = if binary_version >= 4 {
            let id = r.u8(&|| format!("the dtype of variable {name}"))?;
            let dtype = DType::from_id(id).ok_or_else(|| Ct2Error::UnknownDType {
                file: file.to_owned(),
                name: name.clone(),
                dtype: format!("id {id}"),
            })?;
            let len = r.u32(&|| format!("the byte size of variable {name}"))?;
            (dtype, len as usize)
        } else {
            let size = r.u8(&|| format!("the item size of variable {name}"))?;
            let dtype = DType::from_item_size(size).ok_or_else(|| Ct2Error::UnknownDType {
                file: file.to_owned(),
                name: name.clone(),
                dtype: format!("of item size {size}"),
            })?;
            let items = r.u32(&|| format!("the item count of variable {name}"))?;
            let len = (items as usize)
                .checked_mul(usize::from(size))
                .ok_or_else(|| invalid(file, format!("variable {name} is too large")))?;
            (dtype, len)
        };
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d));
        if expected != Some(len) {
            return Err(invalid(
                file,
                format!("variable {name} has shape {shape:?} of {dtype} but stores {len} bytes",),
            ));
        }
        let offset = r.pos;
        r.take(len, &|| {
            format!("the data of variable {name} ({len} bytes)")
        })?;
        variables.push(Variable {
            name,
            shape,
            dtype,
            offset,
            len,
        });
    }
    let mut aliases = Vec::new();
    if binary_version >= 3 {
        let n = r.u32(&|| "alias_count".to_owned())?;
        for i in 0..n {
            let alias = r.string(&|| format!("alias {i} of {n}"))?;
            let target = r.string(&|| format!("the target of alias {alias}"))?;
            aliases.push((alias, target));
        }
    }
    if r.pos != bytes.len() {
        return Err(invalid(
            file,
            format!(
                "{} unexpected bytes after the last {} at byte offset {}",
                bytes.len() - r.pos,
                if binary_version >= 3 {
                    "alias"
                } else {
                    "variable"
                },
                r.pos
            ),
        ));
    }
    Ok(Parsed {
        binary_version,
        spec_name,
        spec_revision,
        variables,
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds `model.bin` bytes (binary version 6 unless changed).
    struct Writer(Vec<u8>);

    impl Writer {
        fn new(version: u32, spec: &str, count: u32) -> Writer {
            let mut w = Writer(Vec::new());
            w.u32(version);
            if version >= 2 {
                w.str(spec);
                w.u32(3);
            }
            w.u32(count);
            w
        }
        fn u32(&mut self, v: u32) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        fn str(&mut self, s: &str) {
            self.0
                .extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
        }
        fn var(&mut self, name: &str, shape: &[u32], dtype: u8, data: &[u8]) {
            self.str(name);
            self.0.push(shape.len() as u8);
            for &d in shape {
                self.u32(d);
            }
            self.0.push(dtype);
            self.u32(data.len() as u32);
            self.0.extend_from_slice(data);
        }
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(6, "WhisperSpec", 5);
        w.var("a/weight", &[2, 2], 0, &f32_bytes(&[1.0, -2.0, 0.5, 4.0]));
        let h: Vec<u8> = [1.5f32, -0.25]
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_bits().to_le_bytes())
            .collect();
        w.var("b/weight", &[2], 4, &h);
        w.var("q/weight", &[2, 3], 1, &[127, 0, 129, 10, 20, 30]);
        w.var("q/weight_scale", &[2], 0, &f32_bytes(&[127.0, 10.0]));
        w.var("n/num_heads", &[], 2, &6i16.to_le_bytes());
        w.u32(1);
        w.str("alias/weight");
        w.str("a/weight");
        w.0
    }

    #[test]
    fn parses_synthetic_model() {
        let m = Ct2Model::from_bytes(sample(), "t.bin").unwrap();
        assert_eq!(m.binary_version(), 6);
        assert_eq!(m.spec_name(), "WhisperSpec");
        assert_eq!(m.spec_revision(), 3);
        assert_eq!(m.variables().len(), 5);
        assert_eq!(m.tensor_f32("a/weight").unwrap().1, [1.0, -2.0, 0.5, 4.0]);
        assert_eq!(m.tensor_f32("alias/weight").unwrap().0, [2, 2]);
        assert_eq!(m.tensor_f32("b/weight").unwrap().1, [1.5, -0.25]);
        let (_, q) = m.tensor_f32("q/weight").unwrap();
        assert_eq!(q, [1.0, 0.0, -1.0, 1.0, 2.0, 3.0]);
        assert_eq!(m.scalar_i64("n/num_heads").unwrap(), 6);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample();
        for len in 0..bytes.len() {
            let err = Ct2Model::from_bytes(bytes[..len].to_vec(), "t.bin").unwrap_err();
            assert!(
                matches!(err, Ct2Error::Truncated { .. }),
                "cut at {len}: {err}"
            );
        }
    }

    #[test]
    fn truncation_names_what_and_where() {
        let bytes = sample();
        let err = Ct2Model::from_bytes(bytes[..40].to_vec(), "t.bin").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.bin is truncated"), "{msg}");
        assert!(msg.contains("variable a/weight"), "{msg}");
        assert!(msg.contains("byte offset"), "{msg}");
    }

    #[test]
    fn garbled_bytes_never_panic() {
        let base = sample();
        // Deterministic xorshift: flip bytes all over the sample.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = base.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % bytes.len();
                bytes[i] = (state >> 32) as u8;
            }
            if let Ok(m) = Ct2Model::from_bytes(bytes, "t.bin") {
                for v in m.variables().to_vec() {
                    let _ = m.tensor_f32(&v.name);
                    let _ = m.scalar_i64(&v.name);
                }
                let _ = WhisperDims::from_model(&m);
            }
        }
        let mut junk = Vec::new();
        for i in 0..4096u32 {
            junk.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
            let _ = Ct2Model::from_bytes(junk.clone(), "junk.bin");
        }
    }

    #[test]
    fn unknown_dtype_is_named() {
        let mut w = Writer::new(6, "WhisperSpec", 1);
        w.var("x", &[1], 9, &[0]);
        w.u32(0);
        let err = Ct2Model::from_bytes(w.0, "t.bin").unwrap_err();
        assert!(matches!(err, Ct2Error::UnknownDType { .. }), "{err}");
        assert!(err.to_string().contains("variable x"), "{err}");
    }

    #[test]
    fn unsupported_version_is_named() {
        let err = Ct2Model::from_bytes(7u32.to_le_bytes().to_vec(), "t.bin").unwrap_err();
        assert!(err.to_string().contains("binary_version 7"), "{err}");
    }

    #[test]
    fn size_mismatch_and_trailing_bytes_are_errors() {
        let mut w = Writer::new(6, "WhisperSpec", 1);
        w.var("x", &[2], 0, &[0; 4]);
        w.u32(0);
        let err = Ct2Model::from_bytes(w.0, "t.bin").unwrap_err();
        assert!(err.to_string().contains("stores 4 bytes"), "{err}");

        let mut bytes = sample();
        bytes.push(0);
        let err = Ct2Model::from_bytes(bytes, "t.bin").unwrap_err();
        assert!(err.to_string().contains("1 unexpected bytes"), "{err}");
    }

    #[test]
    fn old_binary_versions_parse() {
        // Version 3: item size + count instead of dtype + byte size.
        let mut w = Writer::new(3, "WhisperSpec", 1);
        w.str("x");
        w.0.push(1);
        w.u32(2);
        w.0.push(4);
        w.u32(2);
        w.0.extend_from_slice(&f32_bytes(&[3.0, 4.0]));
        w.u32(0);
        let m = Ct2Model::from_bytes(w.0, "t.bin").unwrap();
        assert_eq!(m.tensor_f32("x").unwrap().1, [3.0, 4.0]);

        // Version 1: no spec, no aliases.
        let mut w = Writer::new(1, "", 1);
        w.str("y");
        w.0.push(0);
        w.0.push(2);
        w.u32(1);
        w.0.extend_from_slice(&7i16.to_le_bytes());
        let m = Ct2Model::from_bytes(w.0, "t.bin").unwrap();
        assert_eq!(m.spec_name(), "");
        assert_eq!(m.scalar_i64("y").unwrap(), 7);
    }

    #[test]
    fn missing_variable_and_wrong_spec_are_named() {
        let m = Ct2Model::from_bytes(sample(), "t.bin").unwrap();
        let err = m.tensor_f32("decoder/nope").unwrap_err();
        assert_eq!(err.to_string(), "t.bin: variable decoder/nope not found");

        let mut w = Writer::new(6, "TransformerSpec", 0);
        w.u32(0);
        let m = Ct2Model::from_bytes(w.0, "t.bin").unwrap();
        let err = WhisperDims::from_model(&m).unwrap_err();
        assert!(matches!(err, Ct2Error::WrongSpec { .. }), "{err}");
        assert!(err.to_string().contains("TransformerSpec"), "{err}");
    }

    #[test]
    fn alias_to_missing_target_is_an_error() {
        let mut w = Writer::new(6, "WhisperSpec", 0);
        w.u32(1);
        w.str("a");
        w.str("b");
        let err = Ct2Model::from_bytes(w.0, "t.bin").unwrap_err();
        assert!(err.to_string().contains("alias a points to b"), "{err}");
    }

    #[test]
    fn int8_without_scale_is_an_error() {
        let mut w = Writer::new(6, "WhisperSpec", 1);
        w.var("q/weight", &[1, 2], 1, &[1, 2]);
        w.u32(0);
        let m = Ct2Model::from_bytes(w.0, "t.bin").unwrap();
        let err = m.tensor_f32("q/weight").unwrap_err();
        assert!(err.to_string().contains("q/weight_scale"), "{err}");
    }

    #[test]
    fn missing_folder_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Ct2Model::open(dir.path()).unwrap_err();
        assert!(matches!(err, Ct2Error::MissingFile { .. }), "{err}");
        assert!(
            err.to_string().contains("model.bin: file not found"),
            "{err}"
        );
    }

    #[test]
    fn config_json_parses_and_rejects_garbage() {
        let p = Path::new("config.json");
        let c = WhisperConfig::from_json(
            br#"{"alignment_heads": [[1, 0], [2, 5]], "lang_ids": [50259],
                 "suppress_ids": [1, 2], "suppress_ids_begin": [220, 50256]}"#,
            p,
        )
        .unwrap();
        assert_eq!(c.alignment_heads, [(1, 0), (2, 5)]);
        assert_eq!(c.lang_ids, [50259]);
        assert_eq!(c.suppress_ids_begin, [220, 50256]);
        assert_eq!(
            WhisperConfig::from_json(b"{}", p).unwrap(),
            WhisperConfig::default()
        );
        for bad in [
            &b"[1]"[..],
            b"{",
            br#"{"lang_ids": [-1]}"#,
            br#"{"alignment_heads": [[1]]}"#,
        ] {
            let err = WhisperConfig::from_json(bad, p).unwrap_err();
            assert!(err.to_string().starts_with("config.json: "), "{err}");
        }
    }
}
