//! Speaker embeddings for speaker verification: 3D-Speaker's CAM++ network
//! (`speech_campplus_sv_zh_en_16k-common_advanced`, Apache-2.0, trained on Chinese and English
//! speakers), ours, in Candle, from its PyTorch state dict (`campplus_cn_en_common.pt`, a zip
//! checkpoint read with [`candle_core::pickle`]).
//!
//! What 3D-Speaker computes (`speakerlab/bin/infer_sv.py`, `speakerlab/models/campplus/DTDNN.py`
//! and `layers.py`), for 16 kHz mono samples in [-1, 1]:
//!
//! 1. **Features**: 80 Kaldi log-mel filterbank bins every 10 ms ([`crate::fbank`]), each bin's
//!    mean over the clip subtracted. Loudness is a constant offset of the log energies, so the
//!    mean subtraction removes it: no volume normalization is needed.
//! 2. **FCM head** (a small 2-D ResNet over frequency × time, frequency strided): `Conv2d(1, 32,
//!    3)`, BN, ReLU; two stages of two residual blocks (32 channels, the first block of each
//!    strides frequency by 2, with a 1×1 strided shortcut); `Conv2d(32, 32, 3, stride (2, 1))`,
//!    BN, ReLU. 80 bins become 10; the 32 × 10 values per frame are the 320 channels of the rest.
//! 3. **TDNN**: `Conv1d(320, 128, 5, stride 2)`, BN, ReLU: half the frame rate.
//! 4. **Three CAM dense blocks** (12, 24 and 16 layers; dilation 1, 2, 2), each followed by a
//!    transition (BN, ReLU, 1×1 conv halving the channels): 128 → 512 → 256 → 1024 → 512 →
//!    1024 → 512. A layer: BN, ReLU, 1×1 conv to 128, BN, ReLU, then its context-aware mask
//!    (CAM): a 3-tap conv to 32 channels, times `sigmoid(W2 relu(W1 c + b1) + b2)` where `c` is
//!    the clip's mean plus the mean of the 100-frame segment the frame falls in (the last segment
//!    may be shorter; it is averaged over its own frames). Its 32 outputs are appended to its
//!    input (dense connectivity).
//! 5. BN, ReLU; **statistics pooling**: per channel the mean and the unbiased standard deviation
//!    over time (1024 values); `Conv1d(1024, 192, 1)` and a BN without affine parameters: the
//!    192-dimensional embedding. We L2-normalize it (cosine scoring, as 3D-Speaker scores).
//!
//! Batch normalization runs in eval mode (running statistics, eps 1e-5); where it directly
//! follows a convolution it is folded into that convolution's weights, elsewhere applied as a
//! per-channel scale and shift. Activations are kept channels-last (`[batch, …, time, channels]`)
//! so that every convolution is one matrix product over all frames of the batch; the 3×3 and
//! strided convolutions gather their taps first (im2col) with tensor operations, so the same code
//! runs on any Candle device.
//!
//! Clips of different lengths give different time axes, and every mean over time depends on the
//! length, so [`CamPlus::embed`] batches only clips with the same number of frames (sliding
//! windows of one size all batch together) and never pads.
//!
//! `scripts/campplus-references` writes `fixtures/campplus/references.json`, 3D-Speaker's
//! features and embeddings computed with PyTorch, that `worker/tests/campplus.rs` compares with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

use crate::fbank::{self, Fbank};

/// The sample rate the model expects.
pub const SAMPLE_RATE: usize = fbank::SAMPLE_RATE;
/// Size of an embedding.
pub const EMBEDDING_SIZE: usize = 192;
/// The fewest samples [`CamPlus::embed`] accepts: 3 feature frames (two after the strided
/// TDNN, so that a standard deviation over time exists).
pub const MIN_SAMPLES: usize = fbank::FRAME_LENGTH + 2 * fbank::FRAME_SHIFT;
/// Channels of the FCM head.
const HEAD_CHANNELS: usize = 32;
/// Channels after the TDNN layer.
const TDNN_CHANNELS: usize = 128;
/// Outputs each dense layer appends.
const GROWTH: usize = 32;
/// Width of a dense layer's bottleneck.
const BOTTLENECK: usize = 128;
/// `(layers, dilation)` of the three dense blocks (all with 3-tap convolutions).
const BLOCKS: [(usize, usize); 3] = [(12, 1), (24, 2), (16, 2)];
/// CAM's segment pooling length in frames (after the TDNN's stride: 2 s).
const SEGMENT: usize = 100;
const BATCH_NORM_EPS: f64 = 1e-5;
/// Frames (clips × frames per clip) run through the network together: bounds the memory of the
/// head's gathered 3×3 taps (about 11.5 kB per frame).
const MAX_BATCH_FRAMES: usize = 4_096;

/// Why CAM++ could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum CamPlusError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("{}: tensor {name}: {reason}", path.display())]
    Tensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("clip {index}: {samples} samples, CAM++ needs at least {MIN_SAMPLES}")]
    TooShort { index: usize, samples: usize },
    #[error("CAM++: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Eval-mode batch normalization as `x * scale + shift` per channel.
struct Affine {
    scale: Tensor,
    shift: Tensor,
}

impl Affine {
    fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }

    fn apply_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.apply(x)?.relu()
    }
}

/// A convolution as one matrix product over gathered taps: `weight` is `[taps × in, out]`
/// (tap-major rows, matching the gathered input), `bias` the folded batch norm's shift (or the
/// convolution's own bias).
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `x[..., in]` → `[..., out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let y = x
            .reshape((rows, dims[dims.len() - 1]))?
            .matmul(&self.weight)?;
        let y = match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank ≥ 1") = self.weight.dim(1)?;
        y.reshape(out_dims)
    }
}

/// A residual block of the FCM head.
struct ResBlock {
    /// 3×3, frequency stride `stride`, BN folded, ReLU after.
    conv1: Linear,
    /// 3×3, BN folded.
    conv2: Linear,
    /// 1×1 with frequency stride, BN folded; `None` where the input passes through.
    shortcut: Option<Linear>,
    stride: usize,
}

/// One layer of a CAM dense block.
struct DenseLayer {
    /// BN before the bottleneck.
    input_norm: Affine,
    /// 1×1 conv to 128 channels with the following BN folded in; ReLU after.
    bottleneck: Linear,
    /// The 3-tap dilated conv to 32 channels (no bias).
    local: Linear,
    /// CAM's `linear1` (128 → 64, bias) and `linear2` (64 → 32, bias).
    context1: Linear,
    context2: Linear,
}

struct DenseBlock {
    layers: Vec<DenseLayer>,
    dilation: usize,
    /// The transition after the block: BN, ReLU, 1×1 conv halving the channels.
    transit_norm: Affine,
    transit: Linear,
}

/// The CAM++ network with its feature extractor, loaded once and shared (it is `Sync`).
pub struct CamPlus {
    head_conv1: Linear,
    head_blocks: Vec<ResBlock>,
    head_conv2: Linear,
    tdnn: Linear,
    blocks: Vec<DenseBlock>,
    out_norm: Affine,
    /// `Conv1d(1024, 192, 1)` with the affine-free BN folded in.
    embedding: Linear,
    fbank: Fbank,
    device: Device,
}

impl std::fmt::Debug for CamPlus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CamPlus")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// The state dict's tensors by name, taken one by one with their expected shapes.
struct StateDict<'a> {
    tensors: HashMap<String, Tensor>,
    path: &'a Path,
    device: &'a Device,
}

impl StateDict<'_> {
    fn error(&self, name: &str, reason: String) -> CamPlusError {
        CamPlusError::Tensor {
            path: self.path.to_path_buf(),
            name: name.to_string(),
            reason,
        }
    }

    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, CamPlusError> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| self.error(name, "missing".into()))?;
        if tensor.dims() != shape {
            return Err(self.error(
                name,
                format!("shape {:?}, expected {shape:?}", tensor.dims()),
            ));
        }
        Ok(tensor.to_dtype(DType::F32)?.to_device(self.device)?)
    }

    /// `prefix.{weight,bias,running_mean,running_var}` of a `BatchNorm` over `channels`
    /// (`affine=false`: no weight and bias) as a scale and shift.
    fn batch_norm(
        &mut self,
        prefix: &str,
        channels: usize,
        affine: bool,
    ) -> Result<Affine, CamPlusError> {
        let mean = self.take(&format!("{prefix}.running_mean"), &[channels])?;
        let var = self.take(&format!("{prefix}.running_var"), &[channels])?;
        let inv_std = (var + BATCH_NORM_EPS)?.sqrt()?.recip()?;
        let (scale, shift) = if affine {
            let weight = self.take(&format!("{prefix}.weight"), &[channels])?;
            let bias = self.take(&format!("{prefix}.bias"), &[channels])?;
            let scale = (weight * inv_std)?;
            let shift = (bias - (mean * &scale)?)?;
            (scale, shift)
        } else {
            let shift = (mean * &inv_std)?.neg()?;
            (inv_std, shift)
        };
        // Training-time bookkeeping, not needed for inference.
        self.tensors
            .remove(&format!("{prefix}.num_batches_tracked"));
        Ok(Affine { scale, shift })
    }

    /// A PyTorch convolution weight `[out, in, taps…]` as `[taps × in, out]`, tap-major.
    fn conv_weight(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, CamPlusError> {
        let weight = self.take(name, shape)?;
        let (out, inputs) = (shape[0], shape[1]);
        let taps: usize = shape[2..].iter().product();
        Ok(weight
            .reshape((out, inputs, taps))?
            .permute((2, 1, 0))?
            .reshape((taps * inputs, out))?
            .contiguous()?)
    }

    /// A bias-free convolution followed by the batch norm `norm`, folded into one.
    fn conv_bn(
        &mut self,
        conv: &str,
        shape: &[usize],
        norm: &str,
        affine: bool,
    ) -> Result<Linear, CamPlusError> {
        let weight = self.conv_weight(conv, shape)?;
        let norm = self.batch_norm(norm, shape[0], affine)?;
        Ok(Linear {
            weight: weight.broadcast_mul(&norm.scale)?,
            bias: Some(norm.shift),
        })
    }

    /// A convolution with (`bias`) or without its own bias.
    fn conv(&mut self, prefix: &str, shape: &[usize], bias: bool) -> Result<Linear, CamPlusError> {
        let weight = self.conv_weight(&format!("{prefix}.weight"), shape)?;
        let bias = if bias {
            Some(self.take(&format!("{prefix}.bias"), &shape[..1])?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }
}

impl CamPlus {
    /// Loads `campplus_cn_en_common.pt` for the CPU.
    pub fn load(path: &Path) -> Result<CamPlus, CamPlusError> {
        CamPlus::load_on(path, &Device::Cpu)
    }

    /// Loads the state dict onto `device` (f32 everywhere).
    pub fn load_on(path: &Path, device: &Device) -> Result<CamPlus, CamPlusError> {
        let tensors = candle_core::pickle::read_all(path).map_err(|source| CamPlusError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut state = StateDict {
            tensors: tensors.into_iter().collect(),
            path,
            device,
        };
        let c = HEAD_CHANNELS;
        let head_conv1 = state.conv_bn("head.conv1.weight", &[c, 1, 3, 3], "head.bn1", true)?;
        let mut head_blocks = Vec::new();
        for stage in ["head.layer1", "head.layer2"] {
            for (index, stride) in [(0, 2), (1, 1)] {
                let p = format!("{stage}.{index}");
                let shortcut = if stride == 1 {
                    None
                } else {
                    Some(state.conv_bn(
                        &format!("{p}.shortcut.0.weight"),
                        &[c, c, 1, 1],
                        &format!("{p}.shortcut.1"),
                        true,
                    )?)
                };
                head_blocks.push(ResBlock {
                    conv1: state.conv_bn(
                        &format!("{p}.conv1.weight"),
                        &[c, c, 3, 3],
                        &format!("{p}.bn1"),
                        true,
                    )?,
                    conv2: state.conv_bn(
                        &format!("{p}.conv2.weight"),
                        &[c, c, 3, 3],
                        &format!("{p}.bn2"),
                        true,
                    )?,
                    shortcut,
                    stride,
                });
            }
        }
        let head_conv2 = state.conv_bn("head.conv2.weight", &[c, c, 3, 3], "head.bn2", true)?;
        let head_out = c * fbank::N_BINS / 8;
        let tdnn = state.conv_bn(
            "xvector.tdnn.linear.weight",
            &[TDNN_CHANNELS, head_out, 5],
            "xvector.tdnn.nonlinear.batchnorm",
            true,
        )?;

        let mut channels = TDNN_CHANNELS;
        let mut blocks = Vec::new();
        for (number, &(count, dilation)) in BLOCKS.iter().enumerate() {
            let block = format!("xvector.block{}", number + 1);
            let mut layers = Vec::with_capacity(count);
            for layer in 0..count {
                let p = format!("{block}.tdnnd{}", layer + 1);
                let inputs = channels + layer * GROWTH;
                let input_norm =
                    state.batch_norm(&format!("{p}.nonlinear1.batchnorm"), inputs, true)?;
                let bottleneck = state.conv_bn(
                    &format!("{p}.linear1.weight"),
                    &[BOTTLENECK, inputs, 1],
                    &format!("{p}.nonlinear2.batchnorm"),
                    true,
                )?;
                let cam = format!("{p}.cam_layer");
                layers.push(DenseLayer {
                    input_norm,
                    bottleneck,
                    local: state.conv(
                        &format!("{cam}.linear_local"),
                        &[GROWTH, BOTTLENECK, 3],
                        false,
                    )?,
                    context1: state.conv(
                        &format!("{cam}.linear1"),
                        &[BOTTLENECK / 2, BOTTLENECK, 1],
                        true,
                    )?,
                    context2: state.conv(
                        &format!("{cam}.linear2"),
                        &[GROWTH, BOTTLENECK / 2, 1],
                        true,
                    )?,
                });
            }
            channels += count * GROWTH;
            let transit = format!("xvector.transit{}", number + 1);
            let transit_norm =
                state.batch_norm(&format!("{transit}.nonlinear.batchnorm"), channels, true)?;
            let transit = state.conv(
                &format!("{transit}.linear"),
                &[channels / 2, channels, 1],
                false,
            )?;
            channels /= 2;
            blocks.push(DenseBlock {
                layers,
                dilation,
                transit_norm,
                transit,
            });
        }
        let out_norm = state.batch_norm("xvector.out_nonlinear.batchnorm", channels, true)?;
        let embedding = state.conv_bn(
            "xvector.dense.linear.weight",
            &[EMBEDDING_SIZE, channels * 2, 1],
            "xvector.dense.nonlinear.batchnorm",
            false,
        )?;
        if let Some(name) = state.tensors.keys().min() {
            return Err(state.error(name, "not part of CAM++ (a different model?)".into()));
        }
        Ok(CamPlus {
            head_conv1,
            head_blocks,
            head_conv2,
            tdnn,
            blocks,
            out_norm,
            embedding,
            fbank: Fbank::new(),
            device: device.clone(),
        })
    }

    /// One L2-normalized 192-value embedding per clip of 16 kHz mono samples (at least
    /// [`MIN_SAMPLES`] each). Clips with the same number of feature frames run through the
    /// network together; a clip's embedding does not depend on the others.
    pub fn embed(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, CamPlusError> {
        if let Some((index, clip)) = clips
            .iter()
            .enumerate()
            .find(|(_, clip)| clip.len() < MIN_SAMPLES)
        {
            return Err(CamPlusError::TooShort {
                index,
                samples: clip.len(),
            });
        }
        let features: Vec<Vec<f32>> = clips.par_iter().map(|clip| self.features(clip)).collect();
        let mut by_frames: HashMap<usize, Vec<usize>> = HashMap::new();
        for (index, clip) in features.iter().enumerate() {
            by_frames
                .entry(clip.len() / fbank::N_BINS)
                .or_default()
                .push(index);
        }
        let mut embeddings = vec![Vec::new(); clips.len()];
        for (frames, members) in by_frames {
            let per_batch = (MAX_BATCH_FRAMES / frames).max(1);
            for group in members.chunks(per_batch) {
                let mut batch = Vec::with_capacity(group.len() * frames * fbank::N_BINS);
                for &index in group {
                    batch.extend_from_slice(&features[index]);
                }
                let batch =
                    Tensor::from_vec(batch, (group.len(), frames, fbank::N_BINS), &self.device)?;
                let rows = self.forward(&batch)?.to_vec2::<f32>()?;
                for (&index, mut row) in group.iter().zip(rows) {
                    l2_normalize(&mut row);
                    embeddings[index] = row;
                }
            }
        }
        Ok(embeddings)
    }

    /// The mean-normalized filterbank features of a clip, `[frames, 80]` row-major: the
    /// network's input.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let mut features = self.fbank.compute(samples);
        fbank::mean_normalize(&mut features);
        features
    }

    /// The network on features `[batch, frames, 80]` → the raw (not normalized) embeddings
    /// `[batch, 192]`.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor, CamPlusError> {
        let (batch, frames, bins) = features.dims3()?;
        // The head's image: [batch, frequency, time, channels].
        let x = features.transpose(1, 2)?.unsqueeze(3)?;
        let mut x = conv2d_3x3(&x, &self.head_conv1, 1)?.relu()?;
        for block in &self.head_blocks {
            let y = conv2d_3x3(&x, &block.conv1, block.stride)?.relu()?;
            let y = conv2d_3x3(&y, &block.conv2, 1)?;
            let shortcut = match &block.shortcut {
                Some(conv) => conv.forward(&stride_dim(&x, 1, block.stride)?)?,
                None => x,
            };
            x = (y + shortcut)?.relu()?;
        }
        let x = conv2d_3x3(&x, &self.head_conv2, 2)?.relu()?;
        // [batch, frequency, time, channels] → [batch, time, channels × frequency], PyTorch's
        // channel order (channel-major).
        let x = x
            .permute((0, 2, 3, 1))?
            .reshape((batch, frames, HEAD_CHANNELS * bins / 8))?;

        let mut x = conv1d(&x, &self.tdnn, 5, 2, 1)?.relu()?;
        for block in &self.blocks {
            for layer in &block.layers {
                let y = layer.forward(&x, block.dilation)?;
                x = Tensor::cat(&[&x, &y], 2)?;
            }
            x = block.transit.forward(&block.transit_norm.apply_relu(&x)?)?;
        }
        let x = self.out_norm.apply_relu(&x)?;
        let mean = x.mean(1)?;
        let time = x.dim(1)?;
        let centred = x.broadcast_sub(&mean.unsqueeze(1)?)?;
        let std = (centred.sqr()?.sum(1)? / (time - 1) as f64)?.sqrt()?;
        let stats = Tensor::cat(&[&mean, &std], 1)?;
        Ok(self.embedding.forward(&stats)?)
    }
}

impl DenseLayer {
    /// `x[batch, time, in]` → the layer's 32 new channels `[batch, time, 32]`.
    fn forward(&self, x: &Tensor, dilation: usize) -> candle_core::Result<Tensor> {
        let h = self
            .bottleneck
            .forward(&self.input_norm.apply_relu(x)?)?
            .relu()?;
        let local = conv1d(&h, &self.local, 3, 1, dilation)?;
        // CAM's context: the clip's mean plus each 100-frame segment's mean, [batch, segments,
        // 128]; the mask is computed per segment and then spread over its frames.
        let time = h.dim(1)?;
        let clip_mean = h.mean_keepdim(1)?;
        let segments = (0..time.div_ceil(SEGMENT))
            .map(|s| {
                let start = s * SEGMENT;
                h.narrow(1, start, SEGMENT.min(time - start))?
                    .mean_keepdim(1)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let context = Tensor::cat(&segments, 1)?.broadcast_add(&clip_mean)?;
        let mask = candle_nn::ops::sigmoid(
            &self
                .context2
                .forward(&self.context1.forward(&context)?.relu()?)?,
        )?;
        let mask = if segments.len() == 1 {
            mask
        } else {
            let owner: Vec<u32> = (0..time).map(|t| (t / SEGMENT) as u32).collect();
            let owner = Tensor::from_vec(owner, time, x.device())?;
            mask.index_select(&owner, 1)?
        };
        local.broadcast_mul(&mask)
    }
}

/// Every `stride`-th index of `dim`, starting at 0.
fn stride_dim(x: &Tensor, dim: usize, stride: usize) -> candle_core::Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    let len = x.dim(dim)?;
    let out = len.div_ceil(stride);
    let x = x.pad_with_zeros(dim, 0, out * stride - len)?;
    let mut dims = x.dims().to_vec();
    dims[dim] = out;
    dims.insert(dim + 1, stride);
    x.reshape(dims)?.narrow(dim + 1, 0, 1)?.squeeze(dim + 1)
}

/// A 3×3 convolution with padding 1 over `x[batch, frequency, time, channels]`, frequency
/// strided by `stride`: the nine taps gathered along channels, then one matrix product.
fn conv2d_3x3(x: &Tensor, conv: &Linear, stride: usize) -> candle_core::Result<Tensor> {
    let (_, freq, time, _) = x.dims4()?;
    let out_freq = (freq - 1) / stride + 1;
    let padded = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let mut taps = Vec::with_capacity(9);
    for df in 0..3 {
        let rows = stride_dim(
            &padded.narrow(1, df, (out_freq - 1) * stride + 1)?,
            1,
            stride,
        )?;
        for dt in 0..3 {
            taps.push(rows.narrow(2, dt, time)?);
        }
    }
    conv.forward(&Tensor::cat(&taps, 3)?)
}

/// A 1-D convolution over `x[batch, time, channels]` with `kernel` taps, PyTorch's "same"
/// padding (`(kernel - 1) / 2 × dilation`), `stride` and `dilation`.
fn conv1d(
    x: &Tensor,
    conv: &Linear,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> candle_core::Result<Tensor> {
    let time = x.dim(1)?;
    let pad = (kernel - 1) / 2 * dilation;
    let out_time = (time + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
    let padded = x.pad_with_zeros(1, pad, pad)?;
    let taps = (0..kernel)
        .map(|k| {
            stride_dim(
                &padded.narrow(1, k * dilation, (out_time - 1) * stride + 1)?,
                1,
                stride,
            )
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    conv.forward(&Tensor::cat(&taps, D::Minus1)?)
}

fn l2_normalize(values: &mut [f32]) {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in values {
            *value /= norm;
        }
    }
}
