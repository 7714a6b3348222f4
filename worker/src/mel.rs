//! Whisper's log-mel spectrogram, computed exactly as faster-whisper 1.2.1 computes it
//! (`faster_whisper/feature_extractor.py`, which follows OpenAI's `whisper/audio.py`).
//!
//! For 16 kHz samples `x` (one channel):
//!
//! 1. `x` gets 160 zeros appended (faster-whisper's default `padding=160`), then 200 samples of
//!    reflection padding on each side (`np.pad(mode="reflect")`, the edge sample not repeated).
//! 2. Frames of 400 samples every 160 samples, times a periodic Hann window
//!    (`np.hanning(401)[:-1]`), real FFT, power `|X|²` of the 201 bins. The last frame is dropped
//!    (`stft[..., :-1]`), so `len(x) / 160 + 1` frames remain (integer division).
//! 3. A Slaney-normalized mel filterbank (80 or 128 bands, 0–8 kHz, built here the way
//!    faster-whisper's `get_mel_filters` builds it) maps the power spectrum to mel bands.
//! 4. `log10(max(m, 1e-10))`, floored at (the maximum over the **whole recording**) − 8, then
//!    `(v + 4) / 4`.
//!
//! faster-whisper then cuts 30 s windows out of these features: a window is the frames from
//! `seek` on, at most 3000, zero-padded to 3000 frames (its `pad_or_trim`); the last frame of the
//! recording is not content (`content_frames = frames - 1`). [`LogMel::window`] does that.
//!
//! The FFT is planned once per [`MelExtractor`] (`realfft` over `rustfft`) and frames are
//! spread over rayon's pool, each worker reusing its own buffers.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Whisper's sample rate.
pub const SAMPLE_RATE: usize = crate::audio::TARGET_SAMPLE_RATE as usize;
/// FFT size (25 ms).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Frames in one 30 s encoder window.
pub const WINDOW_FRAMES: usize = 3000;
/// Samples appended before the STFT (faster-whisper's `padding=160`).
const TAIL_PADDING: usize = 160;
/// Frequency bins of the one-sided spectrum.
const N_BINS: usize = N_FFT / 2 + 1;
/// Frames handed to one rayon task.
const FRAMES_PER_TASK: usize = 64;

/// One mel band: weights for the FFT bins `first..first + weights.len()` (the band's non-zero
/// span).
#[derive(Debug, Clone)]
struct MelBand {
    first: usize,
    weights: Vec<f32>,
}

/// Computes log-mel features; build once (per number of mel bands) and reuse.
#[derive(Clone)]
pub struct MelExtractor {
    n_mels: usize,
    bands: Vec<MelBand>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

/// Log-mel features of one channel, row-major `[n_mels, n_frames]` (as faster-whisper's
/// `FeatureExtractor.__call__` returns them).
#[derive(Debug, Clone, PartialEq)]
pub struct LogMel {
    /// Mel bands (rows).
    pub n_mels: usize,
    /// Frames (columns), one per 10 ms.
    pub n_frames: usize,
    /// `n_mels * n_frames` values, band after band.
    pub data: Vec<f32>,
}

impl LogMel {
    /// Frames that are content: all but the last (faster-whisper's `content_frames`).
    pub fn content_frames(&self) -> usize {
        self.n_frames.saturating_sub(1)
    }

    /// The 30 s encoder window starting at frame `seek`: content frames `seek..seek + 3000`
    /// (fewer at the end), zero-padded to 3000 frames, row-major `[n_mels, 3000]`; faster-whisper's
    /// `pad_or_trim(features[:, seek:seek + segment_size])`.
    pub fn window(&self, seek: usize) -> Vec<f32> {
        let end = self
            .content_frames()
            .min(seek.saturating_add(WINDOW_FRAMES));
        let len = end.saturating_sub(seek);
        let mut out = vec![0.0f32; self.n_mels * WINDOW_FRAMES];
        if len > 0 {
            for (row, dst) in out.chunks_exact_mut(WINDOW_FRAMES).enumerate() {
                let src = &self.data[row * self.n_frames + seek..][..len];
                dst[..len].copy_from_slice(src);
            }
        }
        out
    }
}

impl MelExtractor {
    /// An extractor for `n_mels` bands (80 for most Whisper models, 128 for large-v3 and
    /// turbo).
    ///
    /// # Panics
    ///
    /// When `n_mels` is 0.
    pub fn new(n_mels: usize) -> MelExtractor {
        assert!(n_mels > 0, "a mel spectrogram needs at least one band");
        let bands = mel_filters(n_mels)
            .chunks_exact(N_BINS)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
                MelBand {
                    first,
                    weights: row[first..last].to_vec(),
                }
            })
            .collect();
        // np.hanning(401)[:-1].astype("float32"): 0.5 - 0.5 cos(2πn / 400), in f64 then cast.
        let window = (0..N_FFT)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos()) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        MelExtractor {
            n_mels,
            bands,
            window,
            fft,
        }
    }

    /// Mel bands this extractor produces.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The features of a whole recording's channel (16 kHz samples), as faster-whisper's
    /// `FeatureExtractor(feature_size=n_mels)(samples)`: `samples.len() / 160 + 1` frames, the
    /// floor taken from the maximum over all of them.
    pub fn compute(&self, samples: &[f32]) -> LogMel {
        let padded = pad(samples);
        // 1 + (len - N_FFT) / HOP frames from the STFT, minus the dropped last one.
        // At least 1: the tail padding alone is one hop.
        let n_frames = (padded.len() - N_FFT) / HOP_LENGTH;
        let n_mels = self.n_mels;

        // Frame-major log10 values first (each task writes whole frames), then transposed.
        let mut by_frame = vec![0.0f32; n_frames * n_mels];
        let max = by_frame
            .par_chunks_mut(FRAMES_PER_TASK * n_mels)
            .enumerate()
            .map(|(task, out)| self.log_frames(&padded, task * FRAMES_PER_TASK, out))
            .reduce(|| f32::NEG_INFINITY, f32::max);

        let floor = max - 8.0;
        let mut data = vec![0.0f32; n_mels * n_frames];
        data.par_chunks_mut(n_frames)
            .enumerate()
            .for_each(|(band, row)| {
                for (frame, v) in row.iter_mut().enumerate() {
                    *v = (by_frame[frame * n_mels + band].max(floor) + 4.0) / 4.0;
                }
            });
        LogMel {
            n_mels,
            n_frames,
            data,
        }
    }

    /// `log10(max(mel, 1e-10))` of the frames `first..first + out.len() / n_mels` into `out`
    /// (frame-major); returns their maximum.
    fn log_frames(&self, padded: &[f32], first: usize, out: &mut [f32]) -> f32 {
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f32; N_BINS];
        let mut max = f32::NEG_INFINITY;
        for (i, mel) in out.chunks_exact_mut(self.n_mels).enumerate() {
            let start = (first + i) * HOP_LENGTH;
            let frame = &padded[start..start + N_FFT];
            for ((dst, &x), &w) in input.iter_mut().zip(frame).zip(&self.window) {
                *dst = x * w;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers come from the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = norm_sqr(*c);
            }
            for (m, band) in mel.iter_mut().zip(&self.bands) {
                let bins = &power[band.first..band.first + band.weights.len()];
                let sum: f32 = bins.iter().zip(&band.weights).map(|(p, w)| p * w).sum();
                *m = sum.max(1e-10).log10();
                max = max.max(*m);
            }
        }
        max
    }
}

/// `|c|²` as numpy computes `np.abs(c) ** 2` for complex64: the hypotenuse, then squared.
fn norm_sqr(c: Complex<f32>) -> f32 {
    let a = c.re.hypot(c.im);
    a * a
}

/// The samples with 160 zeros appended, then reflection-padded by `N_FFT / 2` on both sides
/// (`np.pad(mode="reflect")`: mirrored about the edge samples, which are not repeated; pads
/// longer than the signal keep mirroring, as numpy does).
fn pad(samples: &[f32]) -> Vec<f32> {
    let half = N_FFT / 2;
    let len = samples.len() + TAIL_PADDING;
    let at = |i: usize| samples.get(i).copied().unwrap_or(0.0);
    // len >= 160 > 1, so the mirror period is positive.
    let period = 2 * (len - 1);
    let reflect = |i: isize| -> usize {
        let m = i.rem_euclid(period as isize) as usize;
        if m < len {
            m
        } else {
            period - m
        }
    };
    (-(half as isize)..(len + half) as isize)
        .map(|i| at(reflect(i)))
        .collect()
}

/// faster-whisper's `FeatureExtractor.get_mel_filters(16000, 400, n_mels)` (librosa's Slaney
/// mel scale and normalization), row-major `[n_mels, 201]`, computed in f64 and stored as f32
/// (faster-whisper's `.astype("float32")`).
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let sr = SAMPLE_RATE as f64;
    // np.fft.rfftfreq(400, 1 / sr): k * sr / 400.
    let fftfreqs: Vec<f64> = (0..N_BINS).map(|k| k as f64 * sr / N_FFT as f64).collect();

    // Mel band edges uniformly spaced between 0 and mel(8 kHz) (np.linspace).
    let min_mel = 0.0f64;
    let max_mel = 45.245_640_471_924_965f64;
    let n_points = n_mels + 2;
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0f64;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    let freqs: Vec<f64> = (0..n_points)
        .map(|i| {
            // np.linspace: start + i * step, the last point exactly `stop`.
            let mel = if i == n_points - 1 {
                max_mel
            } else {
                min_mel + i as f64 * step
            };
            if mel >= min_log_mel {
                min_log_hz * (logstep * (mel - min_log_mel)).exp()
            } else {
                f_sp * mel
            }
        })
        .collect();

    let mut weights = Vec::with_capacity(n_mels * N_BINS);
    for i in 0..n_mels {
        let fdiff_lo = freqs[i + 1] - freqs[i];
        let fdiff_hi = freqs[i + 2] - freqs[i + 1];
        let enorm = 2.0 / (freqs[i + 2] - freqs[i]);
        for &f in &fftfreqs {
            let lower = -(freqs[i] - f) / fdiff_lo;
            let upper = (freqs[i + 2] - f) / fdiff_hi;
            weights.push((0.0f64.max(lower.min(upper)) * enorm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_padding_matches_numpy() {
        // np.pad(np.pad([1, 2, 3], (0, 160)), 200, mode="reflect"): mirrored about the first
        // sample on the left; on the right the 200 samples run back through the 160 zeros and
        // mirror again about the first sample.
        let p = pad(&[1.0, 2.0, 3.0]);
        assert_eq!(p.len(), 3 + 160 + 400);
        assert_eq!(&p[197..203], &[0.0, 3.0, 2.0, 1.0, 2.0, 3.0]);
        assert!(p[203..522].iter().all(|&x| x == 0.0));
        assert_eq!(&p[520..528], &[0.0, 0.0, 3.0, 2.0, 1.0, 2.0, 3.0, 0.0]);
    }

    #[test]
    fn frame_counts_follow_faster_whisper() {
        let mel = MelExtractor::new(80);
        for (samples, frames) in [(0, 1), (159, 1), (160, 2), (16_000, 101), (480_000, 3001)] {
            let out = mel.compute(&vec![0.0; samples]);
            assert_eq!(
                (out.n_mels, out.n_frames),
                (80, frames),
                "{samples} samples"
            );
            assert_eq!(out.data.len(), 80 * frames);
        }
    }

    #[test]
    fn silence_is_the_floor() {
        // Every band is log10(1e-10) = -10, which is also the maximum: (-10 + 4) / 4.
        let out = MelExtractor::new(80).compute(&[0.0; 1600]);
        assert!(out.data.iter().all(|&v| (v + 1.5).abs() < 1e-6));
    }

    #[test]
    fn window_pads_and_trims_like_pad_or_trim() {
        let mel = LogMel {
            n_mels: 2,
            n_frames: 4,
            data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        };
        let w = mel.window(1);
        assert_eq!(w.len(), 2 * WINDOW_FRAMES);
        // Content frames 1 and 2 (frame 3 is the last, not content), then zeros.
        assert_eq!(&w[..3], &[2.0, 3.0, 0.0]);
        assert_eq!(&w[WINDOW_FRAMES..WINDOW_FRAMES + 3], &[6.0, 7.0, 0.0]);
        assert!(mel.window(3).iter().all(|&v| v == 0.0));
    }
}
