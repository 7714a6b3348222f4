//! Silero VAD v6 (silero-vad 6.2.3, MIT, Silero Team): a speech probability for every 32 ms of
//! 16 kHz audio, and the speech regions silero's `get_speech_timestamps` cuts from them.
//!
//! The weights are read from the wheel's 16 kHz ONNX model `silero_vad/data/silero_vad_16k_op15.onnx`
//! (its initializers: float32 tensors in protobuf), which `scripts/fetch-models --only silero`
//! unpacks into `models/silero-vad/` (sha256-pinned, the licence beside it). Not from the wheel's
//! `silero_vad_16k.safetensors`: that file holds other weights (every layer but the STFT
//! differs; on `goforward.wav` its probabilities are up to 0.18 off those of the ONNX and
//! TorchScript models that silero's `load_silero_vad` runs). The network is the one the wheel's
//! `tinygrad_model.py` spells out, the same computation as its ONNX graph:
//!
//! 1. a frame is 512 samples with the previous frame's last 64 in front (zeros before the first),
//!    reflect-padded by 64 on the right: 640 samples;
//! 2. an STFT as a convolution (258 filters of 256 taps, hop 128: four columns of 129 real and
//!    129 imaginary parts), its magnitude;
//! 3. four convolutions (kernel 3, ReLU; 129 → 128 → 64 (stride 2) → 64 (stride 2) → 128
//!    channels), down to one column of 128;
//! 4. one LSTM cell (128 → 128) whose state is carried from frame to frame, then ReLU, a
//!    1 × 1 convolution to one value, and a sigmoid.
//!
//! Steps 1–3 do not depend on the state, so they run for many frames at once as matrix
//! products; only the cell's recurrent product runs frame by frame.
//!
//! Checked against the wheel's own ONNX model run by onnxruntime (`scripts/silero-references`
//! writes `fixtures/silero/references.json`; `worker/tests/vad.rs` compares every frame, clean
//! and telephone-coded: largest difference 5.1e-7).
//!
//! # Why the transcriber uses it alone ([`speech`], [`TRANSCRIBER`])
//!
//! Measured by `worker/tests/vad.rs`'s `measure_speech_detectors` (2 cores): every recording of
//! `shared/eval` (23 asr clips, alternately tuned on and held out; the stereo file's channels and
//! the diarization file held out) between 3 s of two kinds of non-speech (silence, line noise,
//! comfort noise, ringback, DTMF, hold music), clean and through a telephone line (300–3400 Hz,
//! 8 kHz µ-law). Syllables covered / precision (region time within the clip ± 0.3 s) /
//! non-speech taken:
//!
//! | detector | clean tuned | clean held-out | telephone tuned | telephone held-out |
//! |---|---|---|---|---|
//! | `vad::speech_regions` (DSP) | 0.853 / 0.668 / 24.7 s | 0.979 / 0.723 / 25.6 s | 0.982 / 0.641 / 32.1 s | 0.979 / 0.721 / 25.6 s |
//! | silero defaults | 0.993 / 1.000 / 0 s | 0.980 / 1.000 / 0 s | 0.977 / 1.000 / 0 s | 0.969 / 1.000 / 0 s |
//! | silero, 400 ms pauses, 200 ms padding | 1.000 / 0.995 / 0.3 s | 0.998 / 1.000 / 0 s | 1.000 / 1.000 / 0 s | 0.994 / 1.000 / 0 s |
//! | the same ∧ DSP | 0.853 / 1.000 / 0 s | 0.977 / 1.000 / 0 s | 0.982 / 1.000 / 0 s | 0.973 / 1.000 / 0 s |
//!
//! The DSP detector lost two clips whole (coverage 0: a short utterance merged with the DTMF or
//! ringback beside it fails its "moving" test as one stretch) and took DTMF (20.2 s of 30 s) and
//! hold music (29.7 s of 30 s) for speech; intersecting it with Silero removed no false alarm
//! Silero had and lost its misses. Thresholds 0.6/0.45 and 0.4/0.25 changed coverage by under
//! 0.005. Silero's only false alarm was 30 s of hold music through the telephone line (12.7 s
//! taken; 0 s clean), held between 0.5 and 0.8, hence [`SileroOptions::confident_threshold`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Module};

use crate::mel::SAMPLE_RATE;
use crate::vad::SpeechRegion;

/// Samples per frame (32 ms): one probability each.
pub const FRAME_SAMPLES: usize = 512;
/// Samples of the previous frame the network sees in front of each frame.
const CONTEXT_SAMPLES: usize = 64;
/// Right padding (reflected) of the framed input.
const REFLECT_SAMPLES: usize = 64;
const FRAME_INPUT: usize = CONTEXT_SAMPLES + FRAME_SAMPLES + REFLECT_SAMPLES;
const STFT_TAPS: usize = 256;
const STFT_HOP: usize = 128;
const STFT_COLUMNS: usize = (FRAME_INPUT - STFT_TAPS) / STFT_HOP + 1;
const STFT_BINS: usize = STFT_TAPS / 2 + 1;
const HIDDEN: usize = 128;
const GATES: usize = 4 * HIDDEN;
/// Frames whose convolutions run as one batch (about 65 s of audio, 15 MB of STFT input).
const FRAMES_PER_BLOCK: usize = 2048;

/// Errors loading the weights or running the network.
#[derive(Debug, thiserror::Error)]
pub enum SileroError {
    #[error("{}: {source} (run scripts/fetch-models --only silero)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not an ONNX model: {reason}", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("{}: not Silero VAD v6's 16 kHz weights: {name} {reason}", path.display())]
    Tensor {
        path: PathBuf,
        name: String,
        reason: String,
    },
    #[error("silero vad: {0}")]
    Compute(#[from] candle_core::Error),
}

/// The network, loaded once; `Sync`, so channels may share it.
pub struct SileroVad {
    /// The STFT's basis (`stft_conv.weight` in `tinygrad_model.py`) as `[256, 258]`: a window times it gives the real then imaginary parts.
    stft_t: Tensor,
    convs: [Conv1d; 4],
    /// `model.decoder.rnn.weight_ih` transposed: `[128, 512]`.
    input_gates_t: Tensor,
    /// `bias_ih + bias_hh`.
    gate_bias: Tensor,
    /// `model.decoder.rnn.weight_hh`, row-major `[512, 128]`.
    recurrent: Vec<f32>,
    output_weight: Vec<f32>,
    output_bias: f32,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Loads `silero_vad_16k_op15.onnx`.
    pub fn open(path: &Path) -> Result<SileroVad, SileroError> {
        let bytes = std::fs::read(path).map_err(|source| SileroError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut tensors = onnx::initializers(&bytes).map_err(|reason| SileroError::Format {
            path: path.to_path_buf(),
            reason,
        })?;
        let mut tensor = |name: &str, shape: &[usize]| take(&mut tensors, path, name, shape);
        let stft_t = tensor(
            "model.stft.forward_basis_buffer",
            &[2 * STFT_BINS, 1, STFT_TAPS],
        )?
        .reshape((2 * STFT_BINS, STFT_TAPS))?
        .t()?
        .contiguous()?;
        let mut conv = |index: usize, input: usize, output: usize, stride: usize| {
            let layer = format!("model.encoder.{index}.reparam_conv");
            let weight = tensor(&format!("{layer}.weight"), &[output, input, 3])?;
            let bias = tensor(&format!("{layer}.bias"), &[output])?;
            let config = Conv1dConfig {
                padding: 1,
                stride,
                ..Default::default()
            };
            Ok::<_, SileroError>(Conv1d::new(weight, Some(bias), config))
        };
        let convs = [
            conv(0, STFT_BINS, 128, 1)?,
            conv(1, 128, 64, 2)?,
            conv(2, 64, 64, 2)?,
            conv(3, 64, HIDDEN, 1)?,
        ];
        let input_gates_t = tensor("model.decoder.rnn.weight_ih", &[GATES, HIDDEN])?
            .t()?
            .contiguous()?;
        let recurrent = tensor("model.decoder.rnn.weight_hh", &[GATES, HIDDEN])?
            .flatten_all()?
            .to_vec1()?;
        let gate_bias = (tensor("model.decoder.rnn.bias_ih", &[GATES])?
            + tensor("model.decoder.rnn.bias_hh", &[GATES])?)?;
        let output_weight = tensor("model.decoder.decoder.2.weight", &[1, HIDDEN, 1])?
            .flatten_all()?
            .to_vec1()?;
        let output_bias = tensor("model.decoder.decoder.2.bias", &[1])?.to_vec1::<f32>()?[0];
        Ok(SileroVad {
            stft_t,
            convs,
            input_gates_t,
            gate_bias,
            recurrent,
            output_weight,
            output_bias,
        })
    }

    /// The speech probability of every 512-sample frame of one channel of 16 kHz samples (the
    /// last frame zero-padded), with the state carried from the first frame to the last, as
    /// silero's `get_speech_timestamps` computes them.
    pub fn probabilities(&self, samples: &[f32]) -> Result<Vec<f32>, SileroError> {
        let frames = samples.len().div_ceil(FRAME_SAMPLES);
        // The context of frame f is padded[f * 512..][..64]: zeros, then each frame's tail.
        let mut padded = vec![0.0f32; CONTEXT_SAMPLES + frames * FRAME_SAMPLES];
        padded[CONTEXT_SAMPLES..CONTEXT_SAMPLES + samples.len()].copy_from_slice(samples);
        let mut state = LstmState::default();
        let mut probabilities = Vec::with_capacity(frames);
        for first in (0..frames).step_by(FRAMES_PER_BLOCK) {
            let count = FRAMES_PER_BLOCK.min(frames - first);
            let input_gates = self.input_gates(&padded, first, count)?;
            for gates in input_gates.chunks_exact(GATES) {
                probabilities.push(self.step(gates, &mut state));
            }
        }
        Ok(probabilities)
    }

    /// Frames `first..first + count` through the STFT, the convolutions and the cell's input
    /// product (with both biases): `[count, 512]`, row-major.
    fn input_gates(
        &self,
        padded: &[f32],
        first: usize,
        count: usize,
    ) -> Result<Vec<f32>, SileroError> {
        let mut windows = Vec::with_capacity(count * STFT_COLUMNS * STFT_TAPS);
        let mut frame = [0.0f32; FRAME_INPUT];
        for f in first..first + count {
            let start = f * FRAME_SAMPLES;
            let body = CONTEXT_SAMPLES + FRAME_SAMPLES;
            frame[..body].copy_from_slice(&padded[start..start + body]);
            for j in 0..REFLECT_SAMPLES {
                frame[body + j] = frame[body - 2 - j];
            }
            for column in 0..STFT_COLUMNS {
                windows.extend_from_slice(&frame[column * STFT_HOP..][..STFT_TAPS]);
            }
        }
        let windows = Tensor::from_vec(windows, (count * STFT_COLUMNS, STFT_TAPS), &Device::Cpu)?;
        let spectrum = windows.matmul(&self.stft_t)?;
        let real = spectrum.narrow(1, 0, STFT_BINS)?;
        let imaginary = spectrum.narrow(1, STFT_BINS, STFT_BINS)?;
        let mut x = (real.sqr()? + imaginary.sqr()?)?
            .sqrt()?
            .reshape((count, STFT_COLUMNS, STFT_BINS))?
            .transpose(1, 2)?
            .contiguous()?;
        for conv in &self.convs {
            x = conv.forward(&x)?.relu()?;
        }
        let x = x.reshape((count, HIDDEN))?;
        let gates = x
            .matmul(&self.input_gates_t)?
            .broadcast_add(&self.gate_bias)?;
        Ok(gates.flatten_all()?.to_vec1()?)
    }

    /// One step of the LSTM cell (PyTorch's gate order: input, forget, cell, output) and the
    /// output layer: the frame's speech probability.
    fn step(&self, input_gates: &[f32], state: &mut LstmState) -> f32 {
        let mut gates = [0.0f32; GATES];
        for ((gate, row), input) in gates
            .iter_mut()
            .zip(self.recurrent.chunks_exact(HIDDEN))
            .zip(input_gates)
        {
            *gate = input + dot(row, &state.h);
        }
        let mut logit = self.output_bias;
        for k in 0..HIDDEN {
            let i = sigmoid(gates[k]);
            let f = sigmoid(gates[HIDDEN + k]);
            let g = gates[2 * HIDDEN + k].tanh();
            let o = sigmoid(gates[3 * HIDDEN + k]);
            state.c[k] = f * state.c[k] + i * g;
            state.h[k] = o * state.c[k].tanh();
            logit += self.output_weight[k] * state.h[k].max(0.0);
        }
        sigmoid(logit)
    }
}

/// Removes `name` from `tensors`, checking its shape.
fn take(
    tensors: &mut HashMap<String, onnx::Initializer>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Tensor, SileroError> {
    let error = |reason: String| SileroError::Tensor {
        path: path.to_path_buf(),
        name: name.to_owned(),
        reason,
    };
    let tensor = tensors
        .remove(name)
        .ok_or_else(|| error("is missing".into()))?;
    if tensor.dims != shape {
        return Err(error(format!(
            "has shape {:?}, expected {shape:?}",
            tensor.dims
        )));
    }
    Ok(Tensor::from_vec(tensor.values, shape, &Device::Cpu)?)
}

/// The little of ONNX's protobuf encoding the model's weights need: a `ModelProto`'s graph's
/// float32 initializers stored as raw little-endian bytes, as `torch.onnx.export` writes them.
mod onnx {
    use std::collections::HashMap;

    /// A float32 tensor: its shape and values, row-major.
    pub struct Initializer {
        pub dims: Vec<usize>,
        pub values: Vec<f32>,
    }

    /// `ModelProto.graph` (field 7), `GraphProto.initializer` (field 5).
    const MODEL_GRAPH: u64 = 7;
    const GRAPH_INITIALIZER: u64 = 5;
    /// `TensorProto` fields.
    const TENSOR_DIMS: u64 = 1;
    const TENSOR_DATA_TYPE: u64 = 2;
    const TENSOR_NAME: u64 = 8;
    const TENSOR_RAW_DATA: u64 = 9;
    /// `TensorProto.DataType.FLOAT`.
    const FLOAT: u64 = 1;

    /// Every initializer of the model in `bytes`, by name.
    pub fn initializers(bytes: &[u8]) -> Result<HashMap<String, Initializer>, String> {
        let mut found = HashMap::new();
        for field in Fields(bytes) {
            if let (MODEL_GRAPH, Value::Bytes(graph)) = field? {
                for field in Fields(graph) {
                    if let (GRAPH_INITIALIZER, Value::Bytes(tensor)) = field? {
                        let (name, initializer) = tensor_proto(tensor)?;
                        found.insert(name, initializer);
                    }
                }
            }
        }
        if found.is_empty() {
            return Err("no graph initializers".into());
        }
        Ok(found)
    }

    fn tensor_proto(bytes: &[u8]) -> Result<(String, Initializer), String> {
        let (mut dims, mut data_type, mut name, mut raw) = (Vec::new(), None, None, None);
        for field in Fields(bytes) {
            match field? {
                (TENSOR_DIMS, Value::Varint(d)) => dims.push(d as usize),
                (TENSOR_DIMS, Value::Bytes(packed)) => {
                    let mut rest = packed;
                    while !rest.is_empty() {
                        dims.push(varint(&mut rest)? as usize);
                    }
                }
                (TENSOR_DATA_TYPE, Value::Varint(t)) => data_type = Some(t),
                (TENSOR_NAME, Value::Bytes(n)) => {
                    name = Some(String::from_utf8(n.to_vec()).map_err(|e| e.to_string())?)
                }
                (TENSOR_RAW_DATA, Value::Bytes(data)) => raw = Some(data),
                _ => {}
            }
        }
        let name = name.ok_or("an initializer without a name")?;
        let raw = raw.ok_or_else(|| format!("{name}: no raw data"))?;
        if data_type != Some(FLOAT) {
            return Err(format!("{name}: data type {data_type:?}, expected float32"));
        }
        let count: usize = dims.iter().product();
        if raw.len() != 4 * count {
            return Err(format!("{name}: {} bytes for shape {dims:?}", raw.len()));
        }
        let values = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((name, Initializer { dims, values }))
    }

    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    /// The fields of one protobuf message: (field number, value).
    struct Fields<'a>(&'a [u8]);

    impl<'a> Iterator for Fields<'a> {
        type Item = Result<(u64, Value<'a>), String>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.0.is_empty() {
                return None;
            }
            let field = (|| {
                let key = varint(&mut self.0)?;
                let value = match key & 7 {
                    0 => Value::Varint(varint(&mut self.0)?),
                    1 | 5 => {
                        let width = if key & 7 == 1 { 8 } else { 4 };
                        self.0 = self.0.get(width..).ok_or("truncated")?;
                        Value::Fixed
                    }
                    2 => {
                        let len = varint(&mut self.0)? as usize;
                        let bytes = self.0.get(..len).ok_or("truncated")?;
                        self.0 = &self.0[len..];
                        Value::Bytes(bytes)
                    }
                    wire => return Err(format!("wire type {wire}")),
                };
                Ok((key >> 3, value))
            })();
            if field.is_err() {
                self.0 = &[];
            }
            Some(field)
        }
    }

    fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().ok_or("truncated varint")?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("overlong varint".into())
    }
}

struct LstmState {
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
}

impl Default for LstmState {
    fn default() -> Self {
        Self {
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
        }
    }
}

/// A dot product in eight lanes, so the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    for (a, b) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            lanes[k] += a[k] * b[k];
        }
    }
    lanes.iter().sum()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// How probabilities become speech regions: silero's `get_speech_timestamps` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SileroOptions {
    /// Probability at which speech starts.
    pub threshold: f32,
    /// Probability below which speech that has started counts as silence (hysteresis).
    pub neg_threshold: f32,
    /// Speech shorter than this is dropped.
    pub min_speech_ms: u32,
    /// Silence shorter than this does not end speech.
    pub min_silence_ms: u32,
    /// Added on each side of a region; between two regions closer than twice this, the gap is
    /// split between them.
    pub speech_pad_ms: u32,
    /// Ours, not silero's: a region must hold `min_confident_ms` of frames at this probability
    /// or more. Music through a telephone line keeps Silero between 0.5 and 0.8 for seconds, while
    /// every stretch of speech in the evaluation set, clean or telephone-coded, reaches 0.999
    /// for at least 22 frames (700 ms).
    pub confident_threshold: f32,
    pub min_confident_ms: u32,
}

impl Default for SileroOptions {
    /// silero's defaults: 0.5 and 0.35, 250 ms shortest speech, 100 ms shortest silence, 30 ms
    /// padding; no confident stretch required.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            neg_threshold: 0.35,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
            confident_threshold: 0.0,
            min_confident_ms: 0,
        }
    }
}

/// What the transcriber decodes: silero's defaults, but pauses under 400 ms do not split speech
/// and regions get 200 ms either side (as `vad::VadOptions::default`), so a word's soft onset
/// and release reach the decoder; and a region needs 96 ms (3 frames) at 0.9 or more.
pub const TRANSCRIBER: SileroOptions = SileroOptions {
    threshold: 0.5,
    neg_threshold: 0.35,
    min_speech_ms: 250,
    min_silence_ms: 400,
    speech_pad_ms: 200,
    confident_threshold: 0.9,
    min_confident_ms: 96,
};

/// The speech regions of one channel that the transcriber decodes.
pub fn speech(model: &SileroVad, samples: &[f32]) -> Result<Vec<SpeechRegion>, SileroError> {
    let probabilities = model.probabilities(samples)?;
    Ok(speech_regions(&probabilities, samples.len(), &TRANSCRIBER))
}

fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE / 1000
}

/// The speech regions of a channel of `samples` samples whose frame probabilities are
/// `probabilities` ([`SileroVad::probabilities`]): silero's `get_speech_timestamps_from_probs`
/// without its maximum speech length (`vad::chunks` cuts long regions), plus the confident
/// stretch a region must hold ([`SileroOptions::confident_threshold`]).
pub fn speech_regions(
    probabilities: &[f32],
    samples: usize,
    options: &SileroOptions,
) -> Vec<SpeechRegion> {
    let min_speech = ms_to_samples(options.min_speech_ms);
    let min_silence = ms_to_samples(options.min_silence_ms);
    let pad = ms_to_samples(options.speech_pad_ms);
    let min_confident = ms_to_samples(options.min_confident_ms);
    let mut regions: Vec<SpeechRegion> = Vec::new();
    let mut start: Option<usize> = None;
    // Where the silence that may end the current speech began.
    let mut silence_from: Option<usize> = None;
    // Samples of the current speech in frames at `confident_threshold` or more.
    let mut confident = 0;
    for (i, &probability) in probabilities.iter().enumerate() {
        let sample = i * FRAME_SAMPLES;
        if start.is_some() && probability >= options.confident_threshold {
            confident += FRAME_SAMPLES;
        }
        if probability >= options.threshold {
            silence_from = None;
            if start.is_none() {
                start = Some(sample);
                confident = if probability >= options.confident_threshold {
                    FRAME_SAMPLES
                } else {
                    0
                };
            }
            continue;
        }
        let Some(speech_start) = start else {
            continue;
        };
        if probability < options.neg_threshold {
            let silence = *silence_from.get_or_insert(sample);
            if sample - silence >= min_silence {
                if silence - speech_start > min_speech && confident >= min_confident {
                    regions.push(SpeechRegion {
                        start: speech_start,
                        end: silence,
                    });
                }
                start = None;
                silence_from = None;
            }
        }
    }
    if let Some(speech_start) = start {
        if samples.saturating_sub(speech_start) > min_speech && confident >= min_confident {
            regions.push(SpeechRegion {
                start: speech_start,
                end: samples,
            });
        }
    }
    pad_regions(&mut regions, pad, samples);
    regions
}

/// silero's padding: `pad` on each side, but a gap narrower than twice it is split in half.
fn pad_regions(regions: &mut [SpeechRegion], pad: usize, samples: usize) {
    if let Some(first) = regions.first_mut() {
        first.start = first.start.saturating_sub(pad);
    }
    for i in 0..regions.len() {
        if i + 1 < regions.len() {
            let gap = regions[i + 1].start - regions[i].end;
            let widen = if gap < 2 * pad { gap / 2 } else { pad };
            regions[i].end += widen;
            regions[i + 1].start -= widen;
        } else {
            regions[i].end = (regions[i].end + pad).min(samples);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds(regions: &[SpeechRegion]) -> Vec<(f32, f32)> {
        regions
            .iter()
            .map(|r| {
                (
                    r.start as f32 / SAMPLE_RATE as f32,
                    r.end as f32 / SAMPLE_RATE as f32,
                )
            })
            .collect()
    }

    /// `frames` frames of probability `p`.
    fn run(p: f32, frames: usize) -> impl Iterator<Item = f32> {
        std::iter::repeat_n(p, frames)
    }

    #[test]
    fn regions_follow_silero_hysteresis_and_padding() {
        // 10 frames of silence, 20 of speech, a 2-frame dip to 0.4 (above neg_threshold: no
        // silence), 10 more of speech, 5 frames below 0.35 (160 ms ≥ 100 ms: the end), 3 of
        // speech (96 ms < 250 ms: dropped), silence.
        let probabilities: Vec<f32> = run(0.1, 10)
            .chain(run(0.9, 20))
            .chain(run(0.4, 2))
            .chain(run(0.9, 10))
            .chain(run(0.1, 5))
            .chain(run(0.8, 3))
            .chain(run(0.1, 10))
            .collect();
        let samples = probabilities.len() * FRAME_SAMPLES;
        let regions = speech_regions(&probabilities, samples, &SileroOptions::default());
        let pad = ms_to_samples(30);
        assert_eq!(
            regions,
            vec![SpeechRegion {
                start: 10 * FRAME_SAMPLES - pad,
                end: 42 * FRAME_SAMPLES + pad
            }],
            "{:?}",
            seconds(&regions)
        );
    }

    #[test]
    fn short_silence_is_bridged_and_close_regions_share_the_gap() {
        // Two 10-frame talks 2 frames (64 ms < 100 ms) apart stay one; 6 frames (192 ms) apart
        // they are two, and as the gap is narrower than twice the 100 ms padding, it is split.
        let options = SileroOptions {
            speech_pad_ms: 100,
            ..SileroOptions::default()
        };
        let bridged: Vec<f32> = run(0.9, 10)
            .chain(run(0.0, 2))
            .chain(run(0.9, 10))
            .collect();
        assert_eq!(
            speech_regions(&bridged, bridged.len() * FRAME_SAMPLES, &options).len(),
            1
        );
        let split: Vec<f32> = run(0.9, 10)
            .chain(run(0.0, 6))
            .chain(run(0.9, 10))
            .collect();
        let samples = split.len() * FRAME_SAMPLES;
        let regions = speech_regions(&split, samples, &options);
        assert_eq!(regions.len(), 2, "{:?}", seconds(&regions));
        assert_eq!(regions[0].start, 0);
        assert_eq!(regions[0].end, regions[1].start);
        assert_eq!(regions[0].end, 13 * FRAME_SAMPLES);
        assert_eq!(regions[1].end, samples);
    }

    #[test]
    fn a_region_without_a_confident_stretch_is_dropped() {
        // Music-like: a second between 0.5 and 0.8; speech-like: the same with 3 frames at 0.95.
        let hesitant: Vec<f32> = run(0.1, 5)
            .chain((0..31).map(|i| 0.55 + 0.2 * (i % 2) as f32))
            .chain(run(0.1, 20))
            .collect();
        let mut confident = hesitant.clone();
        confident[20..23].fill(0.95);
        let samples = hesitant.len() * FRAME_SAMPLES;
        assert!(speech_regions(&hesitant, samples, &TRANSCRIBER).is_empty());
        assert_eq!(speech_regions(&confident, samples, &TRANSCRIBER).len(), 1);
        confident[21] = 0.85;
        assert!(speech_regions(&confident, samples, &TRANSCRIBER).is_empty());
        // silero's own rule takes both.
        let silero = SileroOptions::default();
        assert_eq!(speech_regions(&hesitant, samples, &silero).len(), 1);
    }

    #[test]
    fn speech_running_to_the_end_ends_with_the_recording() {
        let probabilities: Vec<f32> = run(0.0, 5).chain(run(0.7, 20)).collect();
        let samples = probabilities.len() * FRAME_SAMPLES - 100;
        let regions = speech_regions(&probabilities, samples, &SileroOptions::default());
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].end, samples);
        assert!(speech_regions(&[], 0, &SileroOptions::default()).is_empty());
    }
}
