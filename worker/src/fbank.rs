//! Kaldi's log-mel filterbank features, computed as torchaudio's `compliance.kaldi.fbank`
//! computes them with its defaults and 80 bins at 16 kHz without dither: the input of
//! 3D-Speaker's speaker models (`speakerlab/process/processor.py`, `FBank(80, 16000,
//! mean_nor=True)`).
//!
//! For 16 kHz samples `x` in [-1, 1] (not scaled to 16-bit integers):
//!
//! 1. Frames of 400 samples (25 ms) every 160 (10 ms), only whole frames (`snip_edges=True`):
//!    `1 + (len - 400) / 160` frames, none for fewer than 400 samples.
//! 2. Each frame: its mean subtracted (`remove_dc_offset`), pre-emphasis
//!    `y[i] = x[i] - 0.97 x[i-1]` with `x[-1] = x[0]`, times Povey's window (a symmetric Hann
//!    window to the power 0.85), zero-padded to 512 samples, real FFT, power `|X|²`.
//! 3. 80 triangular filters, equally spaced on Kaldi's mel scale `1127 ln(1 + f / 700)` from
//!    20 Hz to 8 kHz, over FFT bins 0..256 (the Nyquist bin has weight 0).
//! 4. `ln(max(energy, f32::EPSILON))`.
//!
//! [`mean_normalize`] subtracts each bin's mean over the utterance (3D-Speaker's `mean_nor`).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Sample rate the features are defined for.
pub const SAMPLE_RATE: usize = 16_000;
/// Mel bins.
pub const N_BINS: usize = 80;
/// Samples per frame (25 ms).
pub const FRAME_LENGTH: usize = 400;
/// Samples between frames (10 ms).
pub const FRAME_SHIFT: usize = 160;
/// The frame zero-padded to a power of two (`round_to_power_of_two`).
const PADDED_LENGTH: usize = 512;
const PREEMPHASIS: f32 = 0.97;
/// Povey's window is `hann^0.85`.
const POVEY_EXPONENT: f64 = 0.85;
const LOW_FREQ: f64 = 20.0;
/// `high_freq=0` means the Nyquist frequency.
const HIGH_FREQ: f64 = SAMPLE_RATE as f64 / 2.0;

/// One triangular filter: weights for FFT bins `first..first + weights.len()`.
#[derive(Debug, Clone)]
struct MelFilter {
    first: usize,
    weights: Vec<f32>,
}

/// Computes filterbank features; build once and reuse (it is `Sync`).
#[derive(Clone)]
pub struct Fbank {
    filters: Vec<MelFilter>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank")
            .field("bins", &self.filters.len())
            .finish_non_exhaustive()
    }
}

impl Default for Fbank {
    fn default() -> Self {
        Fbank::new()
    }
}

impl Fbank {
    pub fn new() -> Fbank {
        let window = (0..FRAME_LENGTH)
            .map(|n| {
                let hann = 0.5
                    - 0.5
                        * (2.0 * std::f64::consts::PI * n as f64 / (FRAME_LENGTH - 1) as f64).cos();
                hann.powf(POVEY_EXPONENT) as f32
            })
            .collect();
        Fbank {
            filters: mel_filters(),
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(PADDED_LENGTH),
        }
    }

    /// The number of frames of `samples` samples.
    pub fn frames(samples: usize) -> usize {
        if samples < FRAME_LENGTH {
            0
        } else {
            1 + (samples - FRAME_LENGTH) / FRAME_SHIFT
        }
    }

    /// Log-mel energies `[frames, 80]`, row-major (see the module documentation).
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let frames = Fbank::frames(samples.len());
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spectrum.len()];
        let mut out = vec![0f32; frames * N_BINS];
        for (frame, row) in out.chunks_exact_mut(N_BINS).enumerate() {
            let chunk = &samples[frame * FRAME_SHIFT..frame * FRAME_SHIFT + FRAME_LENGTH];
            let mean = chunk.iter().sum::<f32>() / FRAME_LENGTH as f32;
            let mut previous = chunk[0] - mean;
            for ((slot, &x), &w) in input.iter_mut().zip(chunk).zip(&self.window) {
                let centred = x - mean;
                *slot = (centred - PREEMPHASIS * previous) * w;
                previous = centred;
            }
            input[FRAME_LENGTH..].fill(0.0);
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers sized by the planner");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (value, filter) in row.iter_mut().zip(&self.filters) {
                let energy: f32 = filter
                    .weights
                    .iter()
                    .zip(&power[filter.first..])
                    .map(|(w, p)| w * p)
                    .sum();
                *value = energy.max(f32::EPSILON).ln();
            }
        }
        out
    }
}

/// Subtracts from each of the 80 bins its mean over the frames of `features` (`[frames, 80]`).
pub fn mean_normalize(features: &mut [f32]) {
    let frames = features.len() / N_BINS;
    if frames == 0 {
        return;
    }
    let mut means = [0f64; N_BINS];
    for row in features.chunks_exact(N_BINS) {
        for (mean, &v) in means.iter_mut().zip(row) {
            *mean += f64::from(v);
        }
    }
    for mean in &mut means {
        *mean /= frames as f64;
    }
    for row in features.chunks_exact_mut(N_BINS) {
        for (v, mean) in row.iter_mut().zip(&means) {
            *v -= *mean as f32;
        }
    }
}

/// Kaldi's mel scale.
fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// torchaudio's `get_mel_banks(80, 512, 16000, 20, 0, …)` without VTLN, each filter kept as its
/// non-zero span.
fn mel_filters() -> Vec<MelFilter> {
    let fft_bins = PADDED_LENGTH / 2;
    let bin_width = SAMPLE_RATE as f64 / PADDED_LENGTH as f64;
    let low = mel(LOW_FREQ);
    let delta = (mel(HIGH_FREQ) - low) / (N_BINS + 1) as f64;
    (0..N_BINS)
        .map(|band| {
            let left = low + band as f64 * delta;
            let centre = low + (band + 1) as f64 * delta;
            let right = low + (band + 2) as f64 * delta;
            let weights: Vec<f32> = (0..fft_bins)
                .map(|bin| {
                    let m = mel(bin_width * bin as f64);
                    let up = (m - left) / (centre - left);
                    let down = (right - m) / (right - centre);
                    up.min(down).max(0.0) as f32
                })
                .collect();
            let first = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
            let last = weights.iter().rposition(|&w| w > 0.0).unwrap_or(0);
            MelFilter {
                first,
                weights: weights[first..=last].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_keeps_whole_frames_only() {
        assert_eq!(Fbank::frames(399), 0);
        assert_eq!(Fbank::frames(400), 1);
        assert_eq!(Fbank::frames(559), 1);
        assert_eq!(Fbank::frames(560), 2);
        // 1.5 s and 3 s.
        assert_eq!(Fbank::frames(24_000), 148);
        assert_eq!(Fbank::frames(48_000), 298);
        assert!(Fbank::new().compute(&[0.1; 399]).is_empty());
    }

    #[test]
    fn filters_cover_20_hz_to_nyquist() {
        let filters = mel_filters();
        assert_eq!(filters.len(), N_BINS);
        // Bin 0 (0 Hz) is below 20 Hz; the last filter ends before bin 256 (8 kHz).
        assert!(filters[0].first >= 1);
        let end = filters.last().map(|f| f.first + f.weights.len()).unwrap();
        assert!(end <= PADDED_LENGTH / 2);
        assert!(filters.iter().all(|f| f.weights.iter().all(|&w| w <= 1.0)));
    }

    #[test]
    fn silence_is_floored_and_mean_normalization_centres_bins() {
        let fbank = Fbank::new();
        let silent = fbank.compute(&[0.0; 1_000]);
        assert!(silent.iter().all(|&v| v == f32::EPSILON.ln()));
        let tone: Vec<f32> = (0..8_000)
            .map(|n| (2.0 * std::f32::consts::PI * 440.0 * n as f32 / 16_000.0).sin() * 0.3)
            .collect();
        let mut features = fbank.compute(&tone);
        mean_normalize(&mut features);
        for bin in 0..N_BINS {
            let mean: f32 = features.iter().skip(bin).step_by(N_BINS).sum::<f32>();
            assert!(mean.abs() < 1e-3, "bin {bin}: {mean}");
        }
    }
}
