//! Whisper's network: the encoder, and a decoder that runs one step at a time over a batch of
//! rows with its own key/value caches.
//!
//! Our own rather than candle-transformers' model, for three reasons found by measuring it
//! against CTranslate2 on the same weights:
//! - **Fidelity**: Whisper (and CTranslate2) use the exact erf GELU and add the *stored* encoder
//!   positions; candle-transformers uses tanh GELU and recomputes the sinusoids, 1.7e-2 off on
//!   tiny.en's encoder output. This model is 1e-4 off.
//! - **Speed**: decoding re-ran the decoder over the whole prefix at every step (no self-attention
//!   cache); here each step feeds only the new token. On CPU the attention, softmax and GELU go
//!   through [`crate::kernels`].
//! - **Batching with beams**: rows are grouped by window (`rows_per_window` beams each), and the
//!   cross-attention keys/values exist once per window: a window's beams are its queries, never
//!   copies of the 1500 encoder positions.
//!
//! Weights come as f32 tensors under Hugging Face's names (what [`crate::source`] produces for
//! both CTranslate2 and safetensors folders); q/k/v projections are fused into one matrix at load
//! (the key projection has no bias: its third is zero), and so are the cross-attention k/v.

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Module, Result, Tensor, D};

use crate::ct2::WhisperDims;
use crate::kernels;

const LAYER_NORM_EPS: f64 = 1e-5;

/// Whisper, in one dtype on one device.
#[derive(Debug)]
pub struct Whisper {
    pub dims: WhisperDims,
    dtype: DType,
    device: Device,
    encoder: Encoder,
    decoder: Decoder,
}

/// The decoder's state for one batch: the encoder's keys/values per window and the
/// self-attention cache per row.
#[derive(Debug, Clone)]
pub struct DecoderState {
    /// Per layer: cross-attention keys and values `[windows, 1500, heads, head_dim]`.
    cross: Vec<(Tensor, Tensor)>,
    /// Per layer: self-attention keys and values so far `[rows, t, heads, head_dim]`.
    cache: Vec<Option<(Tensor, Tensor)>>,
    rows_per_window: usize,
    /// Tokens fed so far (the position of the next one).
    position: usize,
}

impl DecoderState {
    /// Windows in the batch.
    pub fn windows(&self) -> usize {
        self.cross.first().map_or(0, |(k, _)| k.dims()[0])
    }

    /// Rows (windows × rows per window).
    pub fn rows(&self) -> usize {
        self.windows() * self.rows_per_window
    }

    /// Tokens fed so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Keep `windows` (indices into the current windows, ascending) with, for each, the rows
    /// `rows` names (indices into the current rows; `rows_per_window` per kept window, window by
    /// window, each taken from that same window): beam search reorders rows this way, and
    /// finished windows leave the batch.
    pub fn select(&mut self, windows: &[usize], rows: &[usize]) -> Result<()> {
        if rows.len() != windows.len() * self.rows_per_window {
            candle_core::bail!(
                "select: {} rows for {} windows of {}",
                rows.len(),
                windows.len(),
                self.rows_per_window
            );
        }
        let old_rows = self.rows();
        let device = self.cross.first().map(|(k, _)| k.device().clone());
        let Some(device) = device else {
            return Ok(());
        };
        let as_index = |ids: &[usize]| {
            let ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
            let len = ids.len();
            Tensor::from_vec(ids, len, &device)
        };
        if windows.len() != self.windows() || windows.iter().enumerate().any(|(i, &w)| i != w) {
            let index = as_index(windows)?;
            for (k, v) in &mut self.cross {
                *k = k.index_select(&index, 0)?;
                *v = v.index_select(&index, 0)?;
            }
        }
        if rows.len() != old_rows || rows.iter().enumerate().any(|(i, &r)| i != r) {
            let index = as_index(rows)?;
            for (k, v) in self.cache.iter_mut().flatten() {
                *k = k.index_select(&index, 0)?;
                *v = v.index_select(&index, 0)?;
            }
        }
        Ok(())
    }
}

impl Whisper {
    /// The model from f32 tensors under Hugging Face names, cast to `dtype` on `device`.
    pub fn new(
        dims: WhisperDims,
        tensors: &HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
    ) -> Result<Whisper> {
        let weights = Weights {
            tensors,
            dtype,
            device,
        };
        let encoder = Encoder::new(&weights, &dims)?;
        let decoder = Decoder::new(&weights, &dims)?;
        Ok(Whisper {
            dims,
            dtype,
            device: device.clone(),
            encoder,
            decoder,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Log-mel windows `[batch, n_mels, 3000]` → encoder states `[batch, 1500, width]`.
    pub fn encode(&self, mel: &Tensor) -> Result<Tensor> {
        self.encoder.forward(&mel.to_dtype(self.dtype)?)
    }

    /// A decoder state for encoder states `[windows, 1500, width]`, each window decoded as
    /// `rows_per_window` rows (beams).
    pub fn start(&self, features: &Tensor, rows_per_window: usize) -> Result<DecoderState> {
        let cross = self
            .decoder
            .layers
            .iter()
            .map(|layer| layer.cross_keys_values(features, self.dims.n_text_head))
            .collect::<Result<_>>()?;
        Ok(DecoderState {
            cross,
            cache: vec![None; self.decoder.layers.len()],
            rows_per_window: rows_per_window.max(1),
            position: 0,
        })
    }

    /// Feed `tokens` `[rows, n]` (row-major ids, the same count per row) and return the
    /// f32 logits `[rows, vocab]` of each row's last position.
    pub fn step(&self, state: &mut DecoderState, tokens: &[u32], n: usize) -> Result<Tensor> {
        let hidden = self.decoder.forward(state, tokens, n, &self.device)?;
        let last = hidden.i((.., n - 1, ..))?;
        self.decoder.logits(&last)
    }

    /// Like [`Whisper::step`], also returning the logits at position `at` of this step's tokens
    /// (the no-speech probability is read at `<|startoftranscript|>`).
    pub fn step_with_logits_at(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        n: usize,
        at: usize,
    ) -> Result<(Tensor, Tensor)> {
        let hidden = self.decoder.forward(state, tokens, n, &self.device)?;
        let last = self.decoder.logits(&hidden.i((.., n - 1, ..))?)?;
        let at = self.decoder.logits(&hidden.i((.., at, ..))?)?;
        Ok((last, at))
    }
}

/// Reads, fuses and casts the f32 tensors.
struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    dtype: DType,
    device: &'a Device,
}

impl Weights<'_> {
    fn f32(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let Some(tensor) = self.tensors.get(name) else {
            candle_core::bail!("missing tensor {name}");
        };
        if tensor.dims() != shape {
            candle_core::bail!("{name} has shape {:?}, expected {shape:?}", tensor.dims());
        }
        tensor.to_dtype(DType::F32)
    }

    fn cast(&self, tensor: Tensor) -> Result<Tensor> {
        tensor.to_device(self.device)?.to_dtype(self.dtype)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.cast(self.f32(name, shape)?)
    }

    fn linear(&self, prefix: &str, outputs: usize, inputs: usize) -> Result<Linear> {
        Ok(Linear {
            weight: self.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: Some(self.get(&format!("{prefix}.bias"), &[outputs])?),
        })
    }

    /// Projections `parts` (each `d` → `d`) stacked into one `d` → `parts.len() · d` layer; a
    /// `k_proj` has no bias (zeros in its place).
    fn fused(&self, prefix: &str, parts: &[&str], d: usize) -> Result<Linear> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for part in parts {
            weights.push(self.f32(&format!("{prefix}.{part}.weight"), &[d, d])?);
            let bias = if *part == "k_proj" {
                Tensor::zeros(d, DType::F32, &Device::Cpu)?
            } else {
                self.f32(&format!("{prefix}.{part}.bias"), &[d])?
            };
            biases.push(bias.to_device(&Device::Cpu)?);
        }
        let weights: Vec<Tensor> = weights
            .into_iter()
            .map(|w| w.to_device(&Device::Cpu))
            .collect::<Result<_>>()?;
        Ok(Linear {
            weight: self.cast(Tensor::cat(&weights, 0)?)?,
            bias: Some(self.cast(Tensor::cat(&biases, 0)?)?),
        })
    }

    fn layer_norm(&self, prefix: &str, d: usize) -> Result<LayerNorm> {
        Ok(LayerNorm {
            weight: self.get(&format!("{prefix}.weight"), &[d])?,
            bias: self.get(&format!("{prefix}.bias"), &[d])?,
        })
    }

    fn conv(&self, prefix: &str, outputs: usize, inputs: usize, stride: usize) -> Result<Conv> {
        Ok(Conv {
            weight: self.get(&format!("{prefix}.weight"), &[outputs, inputs, 3])?,
            bias: self.get(&format!("{prefix}.bias"), &[outputs])?,
            stride,
        })
    }
}

#[derive(Debug)]
struct Linear {
    /// `[outputs, inputs]`.
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Module for Linear {
    /// `[…, inputs]` → `[…, outputs]`, as one matrix product over all leading dimensions.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let inputs = dims[dims.len() - 1];
        let rows = x.elem_count() / inputs;
        let y = x.reshape((rows, inputs))?.matmul(&self.weight.t()?)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("a linear input has dimensions") = self.weight.dims()[0];
        y.reshape(out_dims)
    }
}

#[derive(Debug)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() != DType::F64 {
            return candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                LAYER_NORM_EPS as f32,
            );
        }
        // Candle's fused layer norm has no f64 kernel; f64 is how the tests check the generic
        // path against the f32 kernels.
        let mean = x.mean_keepdim(D::Minus1)?;
        let centered = x.broadcast_sub(&mean)?;
        let variance = centered.sqr()?.mean_keepdim(D::Minus1)?;
        centered
            .broadcast_div(&(variance + LAYER_NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

#[derive(Debug)]
struct Conv {
    /// `[outputs, inputs, 3]`.
    weight: Tensor,
    bias: Tensor,
    stride: usize,
}

impl Module for Conv {
    /// `[batch, inputs, frames]` → `[batch, outputs, frames / stride]`, padding 1, then GELU.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv1d(&self.weight, 1, self.stride, 1, 1)?;
        gelu(&y.broadcast_add(&self.bias.reshape((1, (), 1))?)?)
    }
}

fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        kernels::gelu_erf(x)
    } else {
        x.gelu_erf()
    }
}

/// `softmax(q·kᵀ/√head_dim)·v` over `[batch, t, heads, head_dim]` operands →
/// `[batch, tq, heads · head_dim]`.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, causal: bool) -> Result<Tensor> {
    let head_dim = q.dim(D::Minus1)?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    if q.device().is_cpu() && q.dtype() == DType::F32 {
        return kernels::attention(q, k, v, scale, causal);
    }
    let (batch, tq, heads, _) = q.dims4()?;
    let tk = k.dim(1)?;
    let q = q.transpose(1, 2)?.contiguous()?;
    let k = k.transpose(1, 2)?.contiguous()?;
    let v = v.transpose(1, 2)?.contiguous()?;
    let mut scores = (q.matmul(&k.t()?)? * f64::from(scale))?;
    if causal {
        let mask: Vec<f32> = (0..tq)
            .flat_map(|i| {
                (0..tk).map(move |j| {
                    if j <= i + tk - tq {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let mask = Tensor::from_vec(mask, (tq, tk), q.device())?.to_dtype(scores.dtype())?;
        scores = scores.broadcast_add(&mask)?;
    }
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    weights
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((batch, tq, heads * head_dim))
}

/// Splits `[batch, t, parts · heads · head_dim]` into `parts` views `[batch, t, heads, head_dim]`.
fn split_heads(x: &Tensor, parts: usize, heads: usize) -> Result<Vec<Tensor>> {
    let (batch, t, width) = x.dims3()?;
    let head_dim = width / parts / heads;
    let x = x.reshape((batch, t, parts, heads, head_dim))?;
    (0..parts).map(|p| x.i((.., .., p))).collect()
}

/// Pre-norm self-attention with fused q/k/v, as both stacks have it.
#[derive(Debug)]
struct SelfAttention {
    ln: LayerNorm,
    qkv: Linear,
    out: Linear,
}

impl SelfAttention {
    fn new(w: &Weights, prefix: &str, d: usize) -> Result<SelfAttention> {
        Ok(SelfAttention {
            ln: w.layer_norm(&format!("{prefix}.self_attn_layer_norm"), d)?,
            qkv: w.fused(
                &format!("{prefix}.self_attn"),
                &["q_proj", "k_proj", "v_proj"],
                d,
            )?,
            out: w.linear(&format!("{prefix}.self_attn.out_proj"), d, d)?,
        })
    }

    /// `x + attention(ln(x))`; with a `cache` (the decoder), the new keys and values are
    /// appended to it and attention is causal.
    fn forward(
        &self,
        x: &Tensor,
        heads: usize,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let qkv = self.qkv.forward(&self.ln.forward(x)?)?;
        let parts = split_heads(&qkv, 3, heads)?;
        let attended = match cache {
            None => attention(&parts[0], &parts[1], &parts[2], false)?,
            Some(cache) => {
                let (k, v) = match cache.take() {
                    None => (parts[1].contiguous()?, parts[2].contiguous()?),
                    // Contiguous parts keep the cache contiguous (Candle's `cat` of a strided
                    // view returns a transposed view), as `DecoderState::select` needs.
                    Some((k, v)) => (
                        Tensor::cat(&[&k, &parts[1].contiguous()?], 1)?,
                        Tensor::cat(&[&v, &parts[2].contiguous()?], 1)?,
                    ),
                };
                let attended = attention(&parts[0], &k, &v, true)?;
                *cache = Some((k, v));
                attended
            }
        };
        x + self.out.forward(&attended)?
    }
}

/// Pre-norm feed-forward block: `x + fc2(gelu(fc1(ln(x))))`.
#[derive(Debug)]
struct Mlp {
    ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn new(w: &Weights, prefix: &str, d: usize) -> Result<Mlp> {
        Ok(Mlp {
            ln: w.layer_norm(&format!("{prefix}.final_layer_norm"), d)?,
            fc1: w.linear(&format!("{prefix}.fc1"), 4 * d, d)?,
            fc2: w.linear(&format!("{prefix}.fc2"), d, 4 * d)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = gelu(&self.fc1.forward(&self.ln.forward(x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

#[derive(Debug)]
struct EncoderLayer {
    attention: SelfAttention,
    mlp: Mlp,
}

impl EncoderLayer {
    fn forward(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        self.mlp.forward(&self.attention.forward(x, heads, None)?)
    }
}

#[derive(Debug)]
struct Encoder {
    conv1: Conv,
    conv2: Conv,
    /// `[n_audio_ctx, width]`.
    positions: Tensor,
    layers: Vec<EncoderLayer>,
    ln_post: LayerNorm,
    heads: usize,
}

impl Encoder {
    fn new(w: &Weights, dims: &WhisperDims) -> Result<Encoder> {
        let d = dims.n_audio_state;
        let layers = (0..dims.n_audio_layer)
            .map(|n| {
                let p = format!("model.encoder.layers.{n}");
                Ok(EncoderLayer {
                    attention: SelfAttention::new(w, &p, d)?,
                    mlp: Mlp::new(w, &p, d)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Encoder {
            conv1: w.conv("model.encoder.conv1", d, dims.n_mels, 1)?,
            conv2: w.conv("model.encoder.conv2", d, d, 2)?,
            positions: w.get(
                "model.encoder.embed_positions.weight",
                &[dims.n_audio_ctx, d],
            )?,
            layers,
            ln_post: w.layer_norm("model.encoder.layer_norm", d)?,
            heads: dims.n_audio_head,
        })
    }

    fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let x = self.conv2.forward(&self.conv1.forward(mel)?)?;
        let x = x.transpose(1, 2)?;
        let frames = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, frames)?)?;
        for layer in &self.layers {
            x = layer.forward(&x, self.heads)?;
        }
        self.ln_post.forward(&x)
    }
}

#[derive(Debug)]
struct DecoderLayer {
    attention: SelfAttention,
    cross_ln: LayerNorm,
    cross_q: Linear,
    cross_kv: Linear,
    cross_out: Linear,
    mlp: Mlp,
}

impl DecoderLayer {
    fn cross_keys_values(&self, features: &Tensor, heads: usize) -> Result<(Tensor, Tensor)> {
        let kv = self.cross_kv.forward(features)?;
        let mut parts = split_heads(&kv, 2, heads)?;
        // Contiguous, so that finished windows can leave the batch (`index_select`).
        let v = parts.pop().expect("two parts").contiguous()?;
        let k = parts.pop().expect("two parts").contiguous()?;
        Ok((k, v))
    }

    fn forward(
        &self,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        cross: &(Tensor, Tensor),
        heads: usize,
    ) -> Result<Tensor> {
        let (rows, n, width) = x.dims3()?;
        let x = self.attention.forward(x, heads, Some(cache))?;

        // A window's rows are its cross-attention queries: [windows, rows_per_window · n, …].
        let windows = cross.0.dim(0)?;
        let q = self.cross_q.forward(&self.cross_ln.forward(&x)?)?;
        let q = q.reshape((windows, rows / windows * n, heads, width / heads))?;
        let attended = attention(&q, &cross.0, &cross.1, false)?.reshape((rows, n, width))?;
        let x = (x + self.cross_out.forward(&attended)?)?;
        self.mlp.forward(&x)
    }
}

#[derive(Debug)]
struct Decoder {
    /// `[vocab, width]`, also the output projection (tied).
    embeddings: Tensor,
    /// `[n_text_ctx, width]`.
    positions: Tensor,
    layers: Vec<DecoderLayer>,
    ln: LayerNorm,
    heads: usize,
}

impl Decoder {
    fn new(w: &Weights, dims: &WhisperDims) -> Result<Decoder> {
        let d = dims.n_text_state;
        let layers = (0..dims.n_text_layer)
            .map(|n| {
                let p = format!("model.decoder.layers.{n}");
                let cross = format!("{p}.encoder_attn");
                Ok(DecoderLayer {
                    attention: SelfAttention::new(w, &p, d)?,
                    cross_ln: w.layer_norm(&format!("{cross}_layer_norm"), d)?,
                    cross_q: w.linear(&format!("{cross}.q_proj"), d, d)?,
                    cross_kv: w.fused(&cross, &["k_proj", "v_proj"], d)?,
                    cross_out: w.linear(&format!("{cross}.out_proj"), d, d)?,
                    mlp: Mlp::new(w, &p, d)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Decoder {
            embeddings: w.get("model.decoder.embed_tokens.weight", &[dims.n_vocab, d])?,
            positions: w.get(
                "model.decoder.embed_positions.weight",
                &[dims.n_text_ctx, d],
            )?,
            layers,
            ln: w.layer_norm("model.decoder.layer_norm", d)?,
            heads: dims.n_text_head,
        })
    }

    /// Hidden states `[rows, n, width]` for the next `n` tokens of every row.
    fn forward(
        &self,
        state: &mut DecoderState,
        tokens: &[u32],
        n: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let rows = state.rows();
        if tokens.len() != rows * n {
            candle_core::bail!("{} tokens for {rows} rows of {n}", tokens.len());
        }
        let context = self.positions.dim(0)?;
        if state.position + n > context {
            candle_core::bail!(
                "{} tokens exceed the decoder's {context} positions",
                state.position + n
            );
        }
        let ids = Tensor::from_slice(tokens, rows * n, device)?;
        let x = self
            .embeddings
            .index_select(&ids, 0)?
            .reshape((rows, n, ()))?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, state.position, n)?)?;
        for ((layer, cache), cross) in self.layers.iter().zip(&mut state.cache).zip(&state.cross) {
            x = layer.forward(&x, cache, cross, self.heads)?;
        }
        state.position += n;
        self.ln.forward(&x)
    }

    /// Hidden states `[rows, width]` → f32 logits `[rows, vocab]`.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden
            .contiguous()?
            .matmul(&self.embeddings.t()?)?
            .to_dtype(DType::F32)
    }
}
