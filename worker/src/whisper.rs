//! A CTranslate2 Whisper's variables under Hugging Face's names, which [`crate::model`] (and
//! [`crate::source`] for safetensors folders) uses: one naming for every model format.
//!
//! CTranslate2 stores OpenAI's Whisper with its own names and some tensors fused. The map, per
//! layer `N` (`d` = model width):
//!
//! | Hugging Face (`model.encoder.` / `model.decoder.`) | CTranslate2 (`encoder/` / `decoder/`) |
//! |---|---|
//! | `conv1.{weight,bias}`, `conv2.…` | `conv1/{weight,bias}`, `conv2/…` (same `[out, in, 3]` layout) |
//! | `layers.N.self_attn.{q,k,v}_proj.weight` | `layer_N/self_attention/linear_0/weight` rows `0..d`, `d..2d`, `2d..3d` |
//! | `layers.N.self_attn.{q,v}_proj.bias` | `layer_N/self_attention/linear_0/bias`, same split (the `k` part must be zero: Whisper's `k_proj` has no bias) |
//! | `layers.N.self_attn.out_proj.…` | `layer_N/self_attention/linear_1/…` |
//! | `layers.N.self_attn_layer_norm.{weight,bias}` | `layer_N/self_attention/layer_norm/{gamma,beta}` |
//! | `layers.N.encoder_attn.q_proj.…` (decoder) | `layer_N/attention/linear_0/…` |
//! | `layers.N.encoder_attn.{k,v}_proj.…` (decoder) | `layer_N/attention/linear_1/…` rows `0..d`, `d..2d` (`k` bias zero) |
//! | `layers.N.encoder_attn.out_proj.…` (decoder) | `layer_N/attention/linear_2/…` |
//! | `layers.N.encoder_attn_layer_norm.…` (decoder) | `layer_N/attention/layer_norm/{gamma,beta}` |
//! | `layers.N.fc1.…`, `layers.N.fc2.…` | `layer_N/ffn/linear_0/…`, `layer_N/ffn/linear_1/…` |
//! | `layers.N.final_layer_norm.…` | `layer_N/ffn/layer_norm/{gamma,beta}` |
//! | `layer_norm.…` | `layer_norm/{gamma,beta}` |
//! | `embed_tokens.weight`, `embed_positions.weight` (decoder) | `decoder/embeddings/weight`, `decoder/position_encodings/encodings` |
//!
//! | `embed_positions.weight` (encoder) | `encoder/position_encodings/encodings` (the stored sinusoids, added as stored, as CTranslate2 does) |
//!
//! Every other tensor of the file must be used (scalars and int8/int16 `…_scale` factors aside),
//! so a model with parts this map does not know fails to load instead of running without them.
//!
//! Weights are dequantized to f32 ([`Ct2Model::tensor_f32`]).

use std::collections::{HashMap, HashSet};

use candle_core::{Device, Tensor};

use crate::ct2::{Ct2Error, Ct2Model, WhisperDims};

/// Errors mapping a CTranslate2 model's variables.
#[derive(Debug, thiserror::Error)]
pub enum WhisperLoadError {
    #[error(transparent)]
    Ct2(#[from] Ct2Error),
    #[error("{file}: {name} has shape {shape:?}, expected {expected:?}")]
    Shape {
        file: String,
        name: String,
        shape: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{file}: {name} has a non-zero key bias, which Whisper has no place for")]
    KeyBias { file: String, name: String },
    #[error("{file}: variables this loader does not know: {names}")]
    Unmapped { file: String, names: String },
    #[error("building tensors: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Every tensor of the model under its Hugging Face name, as f32 on `device`.
pub fn candle_tensors(
    model: &Ct2Model,
    dims: &WhisperDims,
    device: &Device,
) -> Result<HashMap<String, Tensor>, WhisperLoadError> {
    let mut map = Mapper {
        model,
        device,
        tensors: HashMap::new(),
        used: HashSet::new(),
    };
    let d = dims.n_audio_state;
    for (conv, inputs) in [("conv1", dims.n_mels), ("conv2", d)] {
        map.copy(
            &format!("encoder/{conv}/weight"),
            &format!("model.encoder.{conv}.weight"),
            &[d, inputs, 3],
        )?;
        map.copy(
            &format!("encoder/{conv}/bias"),
            &format!("model.encoder.{conv}.bias"),
            &[d],
        )?;
    }
    map.copy(
        "encoder/position_encodings/encodings",
        "model.encoder.embed_positions.weight",
        &[dims.n_audio_ctx, d],
    )?;
    for n in 0..dims.n_audio_layer {
        let ct2 = format!("encoder/layer_{n}");
        let hf = format!("model.encoder.layers.{n}");
        map.fused_self_attention(&ct2, &hf, d)?;
        map.ffn(&ct2, &hf, d)?;
    }
    map.layer_norm("encoder/layer_norm", "model.encoder.layer_norm", d)?;

    let d = dims.n_text_state;
    map.copy(
        "decoder/embeddings/weight",
        "model.decoder.embed_tokens.weight",
        &[dims.n_vocab, d],
    )?;
    map.copy(
        "decoder/position_encodings/encodings",
        "model.decoder.embed_positions.weight",
        &[dims.n_text_ctx, d],
    )?;
    for n in 0..dims.n_text_layer {
        let ct2 = format!("decoder/layer_{n}");
        let hf = format!("model.decoder.layers.{n}");
        map.fused_self_attention(&ct2, &hf, d)?;
        let (att, enc) = (format!("{ct2}/attention"), format!("{hf}.encoder_attn"));
        map.linear(&format!("{att}/linear_0"), &format!("{enc}.q_proj"), d, d)?;
        map.split_linear(
            &format!("{att}/linear_1"),
            &[&format!("{enc}.k_proj"), &format!("{enc}.v_proj")],
            d,
        )?;
        map.linear(&format!("{att}/linear_2"), &format!("{enc}.out_proj"), d, d)?;
        map.layer_norm(
            &format!("{att}/layer_norm"),
            &format!("{hf}.encoder_attn_layer_norm"),
            d,
        )?;
        map.ffn(&ct2, &hf, d)?;
    }
    map.layer_norm("decoder/layer_norm", "model.decoder.layer_norm", d)?;
    map.finish()
}

/// Collects the Candle tensors and remembers which CTranslate2 variables were read.
struct Mapper<'a> {
    model: &'a Ct2Model,
    device: &'a Device,
    tensors: HashMap<String, Tensor>,
    used: HashSet<String>,
}

impl Mapper<'_> {
    /// Reads `name` as f32, checking its shape.
    fn read(&mut self, name: &str, expected: &[usize]) -> Result<Vec<f32>, WhisperLoadError> {
        let (shape, values) = self.model.tensor_f32(name)?;
        if shape != expected {
            return Err(WhisperLoadError::Shape {
                file: self.model.file().to_owned(),
                name: name.to_owned(),
                shape,
                expected: expected.to_vec(),
            });
        }
        self.used.insert(name.to_owned());
        Ok(values)
    }

    fn insert(&mut self, hf: &str, values: Vec<f32>, shape: &[usize]) -> candle_core::Result<()> {
        let tensor = Tensor::from_vec(values, shape, self.device)?;
        self.tensors.insert(hf.to_owned(), tensor);
        Ok(())
    }

    fn copy(&mut self, ct2: &str, hf: &str, shape: &[usize]) -> Result<(), WhisperLoadError> {
        let values = self.read(ct2, shape)?;
        Ok(self.insert(hf, values, shape)?)
    }

    fn linear(
        &mut self,
        ct2: &str,
        hf: &str,
        outputs: usize,
        inputs: usize,
    ) -> Result<(), WhisperLoadError> {
        self.copy(
            &format!("{ct2}/weight"),
            &format!("{hf}.weight"),
            &[outputs, inputs],
        )?;
        self.copy(&format!("{ct2}/bias"), &format!("{hf}.bias"), &[outputs])
    }

    fn layer_norm(&mut self, ct2: &str, hf: &str, d: usize) -> Result<(), WhisperLoadError> {
        self.copy(&format!("{ct2}/gamma"), &format!("{hf}.weight"), &[d])?;
        self.copy(&format!("{ct2}/beta"), &format!("{hf}.bias"), &[d])
    }

    /// A linear layer of `parts.len() * d` outputs split into `d`-output layers named `parts`;
    /// a part named `….k_proj` gets no bias (and its slice of the bias must be zero).
    fn split_linear(
        &mut self,
        ct2: &str,
        parts: &[&str],
        d: usize,
    ) -> Result<(), WhisperLoadError> {
        let n = parts.len();
        let weight = self.read(&format!("{ct2}/weight"), &[n * d, d])?;
        let bias_name = format!("{ct2}/bias");
        let bias = self.read(&bias_name, &[n * d])?;
        for (i, part) in parts.iter().enumerate() {
            let rows = i * d..(i + 1) * d;
            self.insert(
                &format!("{part}.weight"),
                weight[rows.start * d..rows.end * d].to_vec(),
                &[d, d],
            )?;
            let part_bias = &bias[rows];
            if part.ends_with(".k_proj") {
                if part_bias.iter().any(|&b| b != 0.0) {
                    return Err(WhisperLoadError::KeyBias {
                        file: self.model.file().to_owned(),
                        name: bias_name,
                    });
                }
            } else {
                self.insert(&format!("{part}.bias"), part_bias.to_vec(), &[d])?;
            }
        }
        Ok(())
    }

    /// A layer's self-attention: fused q/k/v, output projection and its layer norm.
    fn fused_self_attention(
        &mut self,
        ct2: &str,
        hf: &str,
        d: usize,
    ) -> Result<(), WhisperLoadError> {
        let (att, hf_att) = (format!("{ct2}/self_attention"), format!("{hf}.self_attn"));
        self.split_linear(
            &format!("{att}/linear_0"),
            &[
                &format!("{hf_att}.q_proj"),
                &format!("{hf_att}.k_proj"),
                &format!("{hf_att}.v_proj"),
            ],
            d,
        )?;
        self.linear(
            &format!("{att}/linear_1"),
            &format!("{hf_att}.out_proj"),
            d,
            d,
        )?;
        self.layer_norm(
            &format!("{att}/layer_norm"),
            &format!("{hf}.self_attn_layer_norm"),
            d,
        )
    }

    /// A layer's feed-forward block and its layer norm.
    fn ffn(&mut self, ct2: &str, hf: &str, d: usize) -> Result<(), WhisperLoadError> {
        self.linear(
            &format!("{ct2}/ffn/linear_0"),
            &format!("{hf}.fc1"),
            4 * d,
            d,
        )?;
        self.linear(
            &format!("{ct2}/ffn/linear_1"),
            &format!("{hf}.fc2"),
            d,
            4 * d,
        )?;
        self.layer_norm(
            &format!("{ct2}/ffn/layer_norm"),
            &format!("{hf}.final_layer_norm"),
            d,
        )
    }

    /// The tensors, once every tensor variable of the file has been used.
    fn finish(self) -> Result<HashMap<String, Tensor>, WhisperLoadError> {
        let unmapped: Vec<&str> = self
            .model
            .variables()
            .iter()
            .filter(|v| {
                !v.shape.is_empty() && !v.name.ends_with("_scale") && !self.used.contains(&v.name)
            })
            .map(|v| v.name.as_str())
            .collect();
        if !unmapped.is_empty() {
            return Err(WhisperLoadError::Unmapped {
                file: self.model.file().to_owned(),
                names: unmapped.join(", "),
            });
        }
        Ok(self.tensors)
    }
}
