//! Speaker embeddings: resemblyzer 0.1.4's GE2E speaker encoder (`VoiceEncoder`), ours, on the
//! CPU with Candle, from its own `pretrained.pt` (see [`legacy`] for the file format).
//!
//! For 16 kHz samples of one speaker (`voice_encoder.py`, `audio.py`, `hparams.py`):
//!
//! 1. **Volume**: `normalize_volume(wav, -30 dBFS, increase_only=True)`: a quieter signal is
//!    scaled up to an RMS of -30 dBFS (of `i16` full scale), a louder one is left alone. Silence
//!    (RMS 0) is left alone here (resemblyzer would produce NaNs).
//!    resemblyzer's `preprocess_wav` also removes long silences with webrtcvad
//!    (`trim_long_silences`); **we do not**: the caller hands in speech (our VAD's regions or
//!    diarization windows). On the fixtures that trim moves the embedding by a cosine of 0.89–0.99,
//!    so compare like with like.
//! 2. **Partials**: the utterance is cut into partials of 160 frames (1.6 s) every 77 frames
//!    (1.3 partials/s); the last one is kept if at least 75 % of it is audio, and there is always
//!    at least one ([`partial_slices`], resemblyzer's `compute_partial_slices`). The samples are
//!    zero-padded to the end of the last partial.
//! 3. **Mel**: librosa 0.10+'s `melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40)`:
//!    centered frames with 200 zeros of padding on each side (`pad_mode="constant"`, librosa
//!    0.9 padded by reflection), periodic Hann window, power `|X|²`, Slaney mel filters (0–8 kHz,
//!    Slaney-normalized, [`crate::mel::mel_filters`]); no log.
//! 4. **Network**: each partial's `[160, 40]` mels through a 3-layer LSTM (hidden 256, PyTorch's
//!    gate order i, f, g, o and its two biases), the top layer's last hidden state through
//!    `Linear(256, 256)`, ReLU, L2 normalization.
//! 5. The utterance embedding is the mean of its partials' embeddings, L2-normalized.
//!
//! [`SpeakerEncoder::embed_windows`] runs the partials of many utterances (diarization's sliding
//! windows) through the LSTM in batches; each result equals [`SpeakerEncoder::embed_utterance`]
//! of that window. A 1.5 s window is one partial.

pub mod legacy;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use realfft::{RealFftPlanner, RealToComplex};

/// The encoder's sample rate.
pub const SAMPLE_RATE: usize = 16_000;
/// Mel channels.
pub const N_MELS: usize = 40;
/// STFT size (25 ms).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Frames of one partial utterance (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;
/// Partials per second (`embed_utterance`'s default `rate`).
pub const PARTIALS_PER_SECOND: f64 = 1.3;
/// The share of the last partial that must be audio for it to be kept.
pub const MIN_COVERAGE: f64 = 0.75;
/// Size of an embedding.
pub const EMBEDDING_SIZE: usize = 256;
/// LSTM hidden size.
const HIDDEN: usize = 256;
/// LSTM layers.
const LAYERS: usize = 3;
/// `audio_norm_target_dBFS`.
const TARGET_DBFS: f64 = -30.0;
/// Partials run through the LSTM together (bounds the memory of the input projections:
/// 160 × 128 × 1024 f32 = 84 MB).
const MAX_BATCH: usize = 128;

/// Why the speaker encoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a usable resemblyzer checkpoint: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: tensor {name}: {reason}", path.display())]
    Tensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("no samples to embed")]
    Empty,
    #[error("speaker encoder: {0}")]
    Candle(#[from] candle_core::Error),
}

struct LstmLayer {
    /// `weight_ih` transposed: `[input, 4 × 256]`.
    w_ih_t: Tensor,
    /// `weight_hh` transposed: `[256, 4 × 256]`.
    w_hh_t: Tensor,
    /// `bias_ih + bias_hh`: `[4 × 256]`.
    bias: Tensor,
}

/// resemblyzer's voice encoder, loaded once and shared (it is `Sync`).
pub struct SpeakerEncoder {
    layers: Vec<LstmLayer>,
    /// `linear.weight` transposed: `[256, 256]`.
    linear_w_t: Tensor,
    linear_b: Tensor,
    mel: MelSpectrogram,
    device: Device,
}

impl std::fmt::Debug for SpeakerEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakerEncoder")
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl SpeakerEncoder {
    /// Loads resemblyzer's `pretrained.pt` (PyTorch's legacy format; the weights under
    /// `model_state`).
    pub fn open(path: &Path) -> Result<SpeakerEncoder, SpeakerError> {
        let bytes = std::fs::read(path).map_err(|source| SpeakerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tensors = legacy::read_state_dict(&bytes, "model_state").map_err(|reason| {
            SpeakerError::Format {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        let device = Device::Cpu;
        let mut take = |name: &str, shape: &[usize]| -> Result<Tensor, SpeakerError> {
            let tensor = tensors.remove(name).ok_or_else(|| SpeakerError::Tensor {
                path: path.to_path_buf(),
                name: name.to_string(),
                reason: "missing".into(),
            })?;
            if tensor.shape != shape {
                return Err(SpeakerError::Tensor {
                    path: path.to_path_buf(),
                    name: name.to_string(),
                    reason: format!("shape {:?}, expected {shape:?}", tensor.shape),
                });
            }
            Ok(Tensor::from_vec(tensor.data, shape, &device)?)
        };
        let mut layers = Vec::with_capacity(LAYERS);
        for layer in 0..LAYERS {
            let input = if layer == 0 { N_MELS } else { HIDDEN };
            let w_ih = take(&format!("lstm.weight_ih_l{layer}"), &[4 * HIDDEN, input])?;
            let w_hh = take(&format!("lstm.weight_hh_l{layer}"), &[4 * HIDDEN, HIDDEN])?;
            let b_ih = take(&format!("lstm.bias_ih_l{layer}"), &[4 * HIDDEN])?;
            let b_hh = take(&format!("lstm.bias_hh_l{layer}"), &[4 * HIDDEN])?;
            layers.push(LstmLayer {
                w_ih_t: w_ih.t()?.contiguous()?,
                w_hh_t: w_hh.t()?.contiguous()?,
                bias: (b_ih + b_hh)?,
            });
        }
        let linear_w_t = take("linear.weight", &[EMBEDDING_SIZE, HIDDEN])?
            .t()?
            .contiguous()?;
        let linear_b = take("linear.bias", &[EMBEDDING_SIZE])?;
        Ok(SpeakerEncoder {
            layers,
            linear_w_t,
            linear_b,
            mel: MelSpectrogram::new(),
            device,
        })
    }

    /// The embedding of one utterance of 16 kHz samples (volume-normalized here; see the module
    /// documentation): 256 values, L2-normalized, all ≥ 0.
    pub fn embed_utterance(&self, samples_16k: &[f32]) -> Result<Vec<f32>, SpeakerError> {
        Ok(self.embed_windows(&[samples_16k])?.remove(0))
    }

    /// [`embed_utterance`](Self::embed_utterance) of each window, their partials batched
    /// through the network together.
    pub fn embed_windows(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakerError> {
        let normalized: Vec<Vec<f32>> = windows.iter().map(|w| normalize_volume(w)).collect();
        let refs: Vec<&[f32]> = normalized.iter().map(Vec::as_slice).collect();
        self.embed_prepared(&refs)
    }

    /// Like [`embed_windows`](Self::embed_windows) without the volume normalization, for
    /// samples the caller normalized already (a whole channel with [`normalize_volume`], say).
    pub fn embed_prepared(&self, windows: &[&[f32]]) -> Result<Vec<Vec<f32>>, SpeakerError> {
        // Every window's partials' mels, and which window each partial belongs to.
        let mut mels: Vec<f32> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        for (index, window) in windows.iter().enumerate() {
            if window.is_empty() {
                return Err(SpeakerError::Empty);
            }
            let slices = partial_slices(window.len());
            let padded_len = slices.last().map_or(0, |s| s.end * HOP_LENGTH);
            let spectrogram = if padded_len >= window.len() {
                let mut padded = window.to_vec();
                padded.resize(padded_len, 0.0);
                self.mel.compute(&padded)
            } else {
                self.mel.compute(window)
            };
            for slice in slices {
                mels.extend_from_slice(&spectrogram[slice.start * N_MELS..slice.end * N_MELS]);
                owners.push(index);
            }
        }

        let partials = owners.len();
        let mut partial_embeds = Vec::with_capacity(partials * EMBEDDING_SIZE);
        let per_partial = PARTIAL_FRAMES * N_MELS;
        for first in (0..partials).step_by(MAX_BATCH) {
            let count = MAX_BATCH.min(partials - first);
            let batch = &mels[first * per_partial..(first + count) * per_partial];
            let batch = Tensor::from_slice(batch, (count, PARTIAL_FRAMES, N_MELS), &self.device)?;
            let embeds = self.forward(&batch)?;
            partial_embeds.extend(embeds.flatten_all()?.to_vec1::<f32>()?);
        }

        let mut sums = vec![vec![0f32; EMBEDDING_SIZE]; windows.len()];
        let mut counts = vec![0usize; windows.len()];
        for (partial, &owner) in owners.iter().enumerate() {
            let embed = &partial_embeds[partial * EMBEDDING_SIZE..(partial + 1) * EMBEDDING_SIZE];
            for (sum, value) in sums[owner].iter_mut().zip(embed) {
                *sum += value;
            }
            counts[owner] += 1;
        }
        for (sum, count) in sums.iter_mut().zip(counts) {
            for value in sum.iter_mut() {
                *value /= count as f32;
            }
            l2_normalize(sum);
        }
        Ok(sums)
    }

    /// The network on a batch of partials' mels `[batch, 160, 40]` → `[batch, 256]`, each row
    /// L2-normalized (resemblyzer's `VoiceEncoder.forward`).
    pub fn forward(&self, mels: &Tensor) -> Result<Tensor, SpeakerError> {
        let (batch, frames, _) = mels.dims3()?;
        // Time-major, so that each step's input rows are contiguous.
        let mut x = mels.transpose(0, 1)?.contiguous()?;
        let mut last_h = None;
        for (index, layer) in self.layers.iter().enumerate() {
            let top = index + 1 == self.layers.len();
            let input = x.dim(2)?;
            // The input projection of every step at once: [frames × batch, 4 × 256].
            let projected = x
                .reshape((frames * batch, input))?
                .matmul(&layer.w_ih_t)?
                .broadcast_add(&layer.bias)?
                .reshape((frames, batch, 4 * HIDDEN))?;
            let mut h = Tensor::zeros((batch, HIDDEN), mels.dtype(), &self.device)?;
            let mut c = h.clone();
            let mut outputs = Vec::with_capacity(if top { 0 } else { frames });
            for t in 0..frames {
                let gates = (projected.get(t)? + h.matmul(&layer.w_hh_t)?)?;
                let in_gate = candle_nn::ops::sigmoid(&gates.narrow(1, 0, HIDDEN)?)?;
                let forget_gate = candle_nn::ops::sigmoid(&gates.narrow(1, HIDDEN, HIDDEN)?)?;
                let cell_gate = gates.narrow(1, 2 * HIDDEN, HIDDEN)?.tanh()?;
                let out_gate = candle_nn::ops::sigmoid(&gates.narrow(1, 3 * HIDDEN, HIDDEN)?)?;
                c = ((forget_gate * &c)? + (in_gate * cell_gate)?)?;
                h = (out_gate * c.tanh()?)?;
                if !top {
                    outputs.push(h.clone());
                }
            }
            if top {
                last_h = Some(h);
            } else {
                x = Tensor::stack(&outputs, 0)?;
            }
        }
        let h = last_h.expect("the encoder has layers");
        let raw = h
            .matmul(&self.linear_w_t)?
            .broadcast_add(&self.linear_b)?
            .relu()?;
        let norm = raw.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(raw.broadcast_div(&norm)?)
    }

    /// The mel spectrogram the encoder sees, `[frames, 40]` row-major, `1 + len / 160` frames
    /// (no volume normalization, no padding to partials).
    pub fn mel_spectrogram(&self, samples_16k: &[f32]) -> Vec<f32> {
        self.mel.compute(samples_16k)
    }
}

/// resemblyzer's `normalize_volume(wav, -30, increase_only=True)`: scales `samples` up to an RMS
/// of -30 dBFS when quieter; louder or silent samples are returned unchanged.
pub fn normalize_volume(samples: &[f32]) -> Vec<f32> {
    if samples.is_empty() {
        return Vec::new();
    }
    let int16_max = f64::from(i16::MAX);
    let mean_square = samples
        .iter()
        .map(|&x| (f64::from(x) * int16_max).powi(2))
        .sum::<f64>()
        / samples.len() as f64;
    let rms = mean_square.sqrt();
    if rms == 0.0 {
        return samples.to_vec();
    }
    let change = TARGET_DBFS - 20.0 * (rms / int16_max).log10();
    if change < 0.0 {
        return samples.to_vec();
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    samples.iter().map(|&x| x * gain).collect()
}

/// resemblyzer's `compute_partial_slices(n_samples, rate=1.3, min_coverage=0.75)`: the mel frame
/// ranges of the partials (multiply by 160 for samples; they may run past the end).
pub fn partial_slices(n_samples: usize) -> Vec<Range<usize>> {
    let n_frames = (n_samples + 1).div_ceil(HOP_LENGTH);
    let frame_step =
        (SAMPLE_RATE as f64 / PARTIALS_PER_SECOND / HOP_LENGTH as f64).round() as usize;
    let steps = (n_frames as i64 - PARTIAL_FRAMES as i64 + frame_step as i64 + 1).max(1) as usize;
    let mut slices: Vec<Range<usize>> = (0..steps)
        .step_by(frame_step)
        .map(|start| start..start + PARTIAL_FRAMES)
        .collect();
    let last = slices.last().expect("at least one partial").start * HOP_LENGTH;
    let coverage = (n_samples as f64 - last as f64) / (PARTIAL_FRAMES as f64 * HOP_LENGTH as f64);
    if coverage < MIN_COVERAGE && slices.len() > 1 {
        slices.pop();
    }
    slices
}

fn l2_normalize(values: &mut [f32]) {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        for value in values {
            *value /= norm;
        }
    }
}

/// Cosine similarity of two embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// librosa's power mel spectrogram with the encoder's settings (see the module documentation).
#[derive(Clone)]
struct MelSpectrogram {
    /// `[40, 201]` row-major.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl MelSpectrogram {
    fn new() -> MelSpectrogram {
        // scipy's get_window("hann", 400, fftbins=True): periodic.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        MelSpectrogram {
            filters: crate::mel::mel_filters(N_MELS),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT),
        }
    }

    /// `[1 + len / 160, 40]` row-major.
    fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let half = N_FFT / 2;
        let mut padded = vec![0f32; samples.len() + 2 * half];
        padded[half..half + samples.len()].copy_from_slice(samples);
        let frames = 1 + samples.len() / HOP_LENGTH;
        let bins = N_FFT / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; bins];
        let mut out = vec![0f32; frames * N_MELS];
        for (frame, row) in out.chunks_exact_mut(N_MELS).enumerate() {
            let start = frame * HOP_LENGTH;
            for ((slot, &x), &w) in input
                .iter_mut()
                .zip(&padded[start..start + N_FFT])
                .zip(&self.window)
            {
                *slot = x * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers sized by the planner");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (value, filter) in row.iter_mut().zip(self.filters.chunks_exact(bins)) {
                *value = filter.iter().zip(&power).map(|(f, p)| f * p).sum();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_slices_follow_resemblyzer() {
        // Values from resemblyzer's compute_partial_slices(n, 1.3, 0.75).
        assert_eq!(partial_slices(24_000), vec![0..160]);
        assert_eq!(partial_slices(1), vec![0..160]);
        // goforward.wav: 44 580 samples → 3 partials.
        assert_eq!(partial_slices(44_580), vec![0..160, 77..237, 154..314]);
        // 5 s: 80 000 samples → 5 partials.
        assert_eq!(partial_slices(80_000).len(), 5);
    }

    #[test]
    fn volume_is_only_raised() {
        let quiet = vec![0.001f32; 100];
        let raised = normalize_volume(&quiet);
        let rms = (raised[0] as f64) * f64::from(i16::MAX);
        let dbfs = 20.0 * (rms / f64::from(i16::MAX)).log10();
        assert!((dbfs + 30.0).abs() < 1e-4, "{dbfs}");
        let loud = vec![0.5f32; 100];
        assert_eq!(normalize_volume(&loud), loud);
        assert_eq!(normalize_volume(&[0.0; 10]), vec![0.0; 10]);
    }

    #[test]
    fn mel_frames_and_silence() {
        let mel = MelSpectrogram::new();
        assert_eq!(mel.compute(&[0.0; 1600]).len(), 11 * N_MELS);
        assert!(mel.compute(&[0.0; 1600]).iter().all(|&v| v == 0.0));
    }
}
