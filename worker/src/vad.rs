//! Voice activity detection (draft; doc comes with the tuned version).

use std::collections::VecDeque;
use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::mel::SAMPLE_RATE;

/// Whisper's window: the longest chunk [`chunks`] should make for it (30 s).
pub const CHUNK_SAMPLES: usize = 30 * SAMPLE_RATE;

/// Hop between analysis frames (10 ms); regions start and end on frame boundaries.
const HOP: usize = 160;
/// Analysis window (Hann, 32 ms).
const WINDOW: usize = 512;
/// FFT size: the window zero-padded to twice its length, so the autocorrelation computed from
/// the power spectrum is linear (not circular) for every lag used.
const FFT_LEN: usize = 2 * WINDOW;
const N_BINS: usize = FFT_LEN / 2 + 1;
/// Critical-band (Bark) edges in Hz: 20 bands from 100 Hz to 7.7 kHz.
const BAND_EDGES_HZ: [f32; 21] = [
    100.0, 200.0, 300.0, 400.0, 510.0, 630.0, 770.0, 920.0, 1080.0, 1270.0, 1480.0, 1720.0,
    2000.0, 2320.0, 2700.0, 3150.0, 3700.0, 4400.0, 5300.0, 6400.0, 7700.0,
];
const N_BANDS: usize = BAND_EDGES_HZ.len() - 1;
/// Bands averaged into a frame's score: the loudest half.
const SCORE_BANDS: usize = N_BANDS / 2;
/// Periodicity is measured on 100 Hz – 4 kHz (the telephone band and a little below).
const VOICING_HIGH_HZ: f32 = 4000.0;
/// Pitch lags: 400 Hz down to 70 Hz.
const LAG_MIN: usize = SAMPLE_RATE / 400;
const LAG_MAX: usize = SAMPLE_RATE / 70;
/// Frames in the moving average the noise floor is tracked on (90 ms).
const FLOOR_SMOOTH_FRAMES: usize = 9;
/// Frames in the moving average the score is computed on (30 ms).
const SCORE_SMOOTH_FRAMES: usize = 3;
/// How far (each way) the minimum-statistics window reaches, in frames (2.5 s).
const FLOOR_REACH_FRAMES: usize = 250;
/// Excess per band is clamped here (dB).
const MAX_EXCESS_DB: f32 = 40.0;
/// Absolute floor: white noise at this RMS level (dBFS, amplitude 1.0 = 0 dB).
const ABSOLUTE_FLOOR_DBFS: f32 = -72.0;
/// A frame is voiced at this periodicity strength (0..1).
const VOICED: f32 = 0.6;
/// Frames between the two spectra compared by the spectral-change measure (40 ms).
const FLUX_LAG_FRAMES: usize = 4;
/// Frames handed to one rayon task.
const FRAMES_PER_TASK: usize = 256;

/// Tuning of [`speech_regions`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadOptions {
    /// Frame score (dB above the tracked noise floor, mean of the loudest half of the bands)
    /// that starts speech.
    pub threshold_db: f32,
    /// Score below which speech that has started ends (hysteresis).
    pub release_db: f32,
    /// Speech shorter than this (after merging) is dropped.
    pub min_speech_ms: u32,
    /// Pauses shorter than this do not split speech.
    pub min_silence_ms: u32,
    /// Padding added on each side of a region (clamped to the recording).
    pub speech_pad_ms: u32,
    /// A stretch of speech needs at least this much voiced (periodic) sound.
    pub min_voiced_ms: u32,
    /// ... and at least this fraction of its active frames voiced.
    pub min_voiced_fraction: f32,
    /// ... and its spectrum must change at least this much (RMS dB over the bands, between
    /// frames 40 ms apart) on average.
    pub min_flux_db: f32,
}

impl Default for VadOptions {
    fn default() -> Self {
        Self {
            threshold_db: 9.0,
            release_db: 6.0,
            min_speech_ms: 250,
            min_silence_ms: 400,
            speech_pad_ms: 200,
            min_voiced_ms: 60,
            min_voiced_fraction: 0.1,
            min_flux_db: 3.0,
        }
    }
}

/// A stretch of speech: sample indices, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpeechRegion {
    pub start: usize,
    pub end: usize,
}

impl SpeechRegion {
    /// Its length in samples.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether it holds no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Consecutive speech regions to be transcribed together: `start..end` spans them all (the
/// pauses between them included) and is at most the `max_samples` given to [`chunks`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub start: usize,
    pub end: usize,
    /// The regions (or pieces of a region too long for one chunk) inside, in order.
    pub regions: Vec<SpeechRegion>,
}

/// The speech in one channel of 16 kHz samples, in order, non-overlapping, padded.
pub fn speech_regions(samples: &[f32], options: &VadOptions) -> Vec<SpeechRegion> {
    let analysis = analyze(samples, options);
    let pad = ms_to_samples(options.speech_pad_ms);
    let mut regions: Vec<SpeechRegion> = Vec::new();
    for segment in analysis.segments.iter().filter(|s| s.accepted) {
        let start = (segment.start * HOP).saturating_sub(pad);
        let end = (segment.end * HOP).saturating_add(pad).min(samples.len());
        match regions.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ => regions.push(SpeechRegion { start, end }),
        }
    }
    regions
}

fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE / 1000
}

fn ms_to_frames(ms: u32) -> usize {
    ms_to_samples(ms).div_ceil(HOP)
}

/// A stretch of frames above the noise floor and what it was judged on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Segment {
    /// Frames `start..end`.
    pub start: usize,
    pub end: usize,
    /// Frames at or above the release threshold.
    pub active: usize,
    /// Active frames that are periodic.
    pub voiced: usize,
    /// Mean spectral change (dB).
    pub flux: f32,
    pub accepted: bool,
}

/// Everything [`speech_regions`] computes, for inspection.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// Score of each frame (dB).
    pub score: Vec<f32>,
    /// Periodicity of each frame, measured only inside segments (0 elsewhere).
    pub voicing: Vec<f32>,
    pub segments: Vec<Segment>,
}

pub(crate) fn analyze(samples: &[f32], options: &VadOptions) -> Analysis {
    let analyzer = Analyzer::new();
    let frames = samples.len().div_ceil(HOP);

    // Pass 1: band powers of every frame (frame-major), then one band at a time.
    let mut by_frame = vec![0.0f32; frames * N_BANDS];
    by_frame
        .par_chunks_mut(FRAMES_PER_TASK * N_BANDS)
        .enumerate()
        .for_each(|(task, out)| analyzer.band_powers(samples, task * FRAMES_PER_TASK, out));
    let mut excess = vec![0.0f32; frames * N_BANDS];
    let mut floor = vec![0.0f32; frames * N_BANDS];
    let mut band = vec![0.0f32; frames];
    for b in 0..N_BANDS {
        for (t, p) in band.iter_mut().enumerate() {
            *p = by_frame[t * N_BANDS + b];
        }
        let (band_excess, band_floor) = track_band(&band, analyzer.absolute_floor[b]);
        for t in 0..frames {
            excess[t * N_BANDS + b] = band_excess[t];
            floor[t * N_BANDS + b] = band_floor[t];
        }
    }
    drop(by_frame);

    let score: Vec<f32> = excess.par_chunks_exact(N_BANDS).map(frame_score).collect();

    // Candidate segments: hysteresis, then pauses shorter than min_silence bridged.
    let mut segments = Vec::new();
    let mut t = 0;
    while t < frames {
        if score[t] < options.threshold_db {
            t += 1;
            continue;
        }
        let mut start = t;
        while start > 0 && score[start - 1] >= options.release_db {
            start -= 1;
        }
        let mut end = t + 1;
        while end < frames && score[end] >= options.release_db {
            end += 1;
        }
        match segments.last_mut() {
            Some(Segment { end: last_end, .. })
                if start < *last_end + ms_to_frames(options.min_silence_ms) =>
            {
                *last_end = end
            }
            _ => segments.push(Segment {
                start,
                end,
                active: 0,
                voiced: 0,
                flux: 0.0,
                accepted: false,
            }),
        }
        t = end;
    }

    // Pass 2: periodicity, only where it is needed, on the spectrum whitened by the floor.
    let mut in_segment = vec![false; frames];
    for s in &segments {
        for t in s.start..s.end {
            in_segment[t] = score[t] >= options.release_db;
        }
    }
    let mut voicing = vec![0.0f32; frames];
    voicing
        .par_chunks_mut(FRAMES_PER_TASK)
        .enumerate()
        .for_each(|(task, out)| {
            let first = task * FRAMES_PER_TASK;
            let mut buffers = analyzer.buffers();
            for (i, v) in out.iter_mut().enumerate() {
                let t = first + i;
                if in_segment[t] {
                    let floor = &floor[t * N_BANDS..(t + 1) * N_BANDS];
                    *v = analyzer.voicing(samples, t, floor, &mut buffers);
                }
            }
        });

    let min_speech = ms_to_frames(options.min_speech_ms);
    let min_voiced = ms_to_frames(options.min_voiced_ms);
    let mut fluxes = Vec::new();
    for s in &mut segments {
        fluxes.clear();
        for t in s.start..s.end {
            if !in_segment[t] {
                continue;
            }
            s.active += 1;
            if voicing[t] >= VOICED {
                s.voiced += 1;
            }
            if t >= s.start + FLUX_LAG_FRAMES {
                let a = &excess[t * N_BANDS..(t + 1) * N_BANDS];
                let b = &excess[(t - FLUX_LAG_FRAMES) * N_BANDS..(t - FLUX_LAG_FRAMES + 1) * N_BANDS];
                fluxes.push(spectral_change(a, b));
            }
        }
        s.flux = median(&mut fluxes);
        s.accepted = s.end - s.start >= min_speech
            && s.voiced >= min_voiced
            && s.voiced as f32 >= options.min_voiced_fraction * s.active as f32
            && s.flux >= options.min_flux_db;
    }
    Analysis {
        score,
        voicing,
        segments,
    }
}

/// Excess (dB) a band needs, in one of two frames, to count in their spectral change.
const FLUX_BAND_DB: f32 = 6.0;

/// RMS change (dB) of the bands above the floor between two frames' excess.
fn spectral_change(a: &[f32], b: &[f32]) -> f32 {
    let (mut sum, mut n) = (0.0f32, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        if x.max(y) >= FLUX_BAND_DB {
            sum += (x - y) * (x - y);
            n += 1;
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / n as f32).sqrt()
    }
}

fn median(values: &mut [f32]) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let mid = values.len() / 2;
    *values.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// A frame's score: the mean excess of its loudest half of the bands.
fn frame_score(excess: &[f32]) -> f32 {
    let mut sorted = [0.0f32; N_BANDS];
    sorted.copy_from_slice(excess);
    sorted.select_nth_unstable_by(SCORE_BANDS - 1, |a, b| b.total_cmp(a));
    sorted[..SCORE_BANDS].iter().sum::<f32>() / SCORE_BANDS as f32
}

/// One band's excess over its noise floor (dB, per frame) and the floor itself.
fn track_band(power: &[f32], absolute_floor: f32) -> (Vec<f32>, Vec<f32>) {
    let slow = moving_average(power, FLOOR_SMOOTH_FRAMES);
    let fast = moving_average(power, SCORE_SMOOTH_FRAMES);
    let past = trailing_min(slow.iter().copied(), FLOOR_REACH_FRAMES);
    let mut future = trailing_min(slow.iter().rev().copied(), FLOOR_REACH_FRAMES);
    future.reverse();
    let floor: Vec<f32> = past
        .iter()
        .zip(&future)
        .map(|(&p, &f)| p.max(f).max(absolute_floor))
        .collect();
    let excess = fast
        .iter()
        .zip(&floor)
        .map(|(&e, &n)| (10.0 * (e / n).log10()).clamp(0.0, MAX_EXCESS_DB))
        .collect();
    (excess, floor)
}

/// Centered moving average over `width` frames (fewer at the edges).
fn moving_average(values: &[f32], width: usize) -> Vec<f32> {
    let half = width / 2;
    let mut prefix = Vec::with_capacity(values.len() + 1);
    let mut sum = 0.0f64;
    prefix.push(sum);
    for &v in values {
        sum += f64::from(v);
        prefix.push(sum);
    }
    (0..values.len())
        .map(|t| {
            let lo = t.saturating_sub(half);
            let hi = (t + half + 1).min(values.len());
            ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32
        })
        .collect()
}

/// `out[t] = min(values[t - reach ..= t])` (the window clipped at 0), in O(n).
fn trailing_min(values: impl Iterator<Item = f32>, reach: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.size_hint().0);
    let mut window: VecDeque<(usize, f32)> = VecDeque::new();
    for (t, v) in values.enumerate() {
        while window.back().is_some_and(|&(_, w)| w >= v) {
            window.pop_back();
        }
        window.push_back((t, v));
        while window.front().is_some_and(|&(j, _)| j + reach < t) {
            window.pop_front();
        }
        out.push(window.front().map_or(v, |&(_, w)| w));
    }
    out
}

/// FFT plans and tables shared by every frame.
struct Analyzer {
    window: Vec<f32>,
    /// Autocorrelation of the window, normalized to 1 at lag 0.
    window_ac: Vec<f32>,
    /// FFT bins `lo..hi` of each band.
    band_bins: [(usize, usize); N_BANDS],
    /// The band of each bin that periodicity is measured on (`None` outside).
    voicing_band: Vec<Option<usize>>,
    /// Band power of white noise at the absolute floor level.
    absolute_floor: [f32; N_BANDS],
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
}

/// Per-task scratch space.
struct Buffers {
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    ac: Vec<f32>,
    ac_scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

fn hz_to_bin(hz: f32) -> usize {
    (hz * FFT_LEN as f32 / SAMPLE_RATE as f32).ceil() as usize
}

impl Analyzer {
    fn new() -> Self {
        let window: Vec<f32> = (0..WINDOW)
            .map(|n| {
                (0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / WINDOW as f64).cos()) as f32
            })
            .collect();
        let energy: f32 = window.iter().map(|w| w * w).sum();
        let window_ac = (0..=LAG_MAX)
            .map(|lag| {
                let sum: f32 = window.iter().zip(&window[lag..]).map(|(a, b)| a * b).sum();
                sum / energy
            })
            .collect();
        let mut band_bins = [(0, 0); N_BANDS];
        let mut absolute_floor = [0.0; N_BANDS];
        // E|X_k|² of white noise of variance σ² is σ² Σw², in every bin.
        let variance = 10f32.powf(ABSOLUTE_FLOOR_DBFS / 10.0);
        for (b, edges) in BAND_EDGES_HZ.windows(2).enumerate() {
            band_bins[b] = (hz_to_bin(edges[0]), hz_to_bin(edges[1]));
            absolute_floor[b] = variance * energy * (band_bins[b].1 - band_bins[b].0) as f32;
        }
        let voicing_band = (0..N_BINS)
            .map(|k| {
                band_bins
                    .iter()
                    .position(|&(lo, hi)| (lo..hi).contains(&k))
                    .filter(|_| k < hz_to_bin(VOICING_HIGH_HZ))
            })
            .collect();
        let mut planner = RealFftPlanner::<f32>::new();
        Self {
            window,
            window_ac,
            band_bins,
            voicing_band,
            absolute_floor,
            forward: planner.plan_fft_forward(FFT_LEN),
            inverse: planner.plan_fft_inverse(FFT_LEN),
        }
    }

    fn buffers(&self) -> Buffers {
        Buffers {
            input: self.forward.make_input_vec(),
            spectrum: self.forward.make_output_vec(),
            scratch: self.forward.make_scratch_vec(),
            ac: self.inverse.make_output_vec(),
            ac_scratch: self.inverse.make_scratch_vec(),
            power: vec![0.0; N_BINS],
        }
    }

    /// The power spectrum of frame `t` into `buffers.power`. The window is centered on the
    /// frame's 10 ms and shifted inside the recording at its ends (zero-padded only when the
    /// recording is shorter than a window), so edge frames see as much signal as any other.
    fn power_spectrum(&self, samples: &[f32], t: usize, buffers: &mut Buffers) {
        let center = t * HOP + HOP / 2;
        let start = center
            .saturating_sub(WINDOW / 2)
            .min(samples.len().saturating_sub(WINDOW));
        let frame = &samples[start..samples.len().min(start + WINDOW)];
        buffers.input.fill(0.0);
        for ((dst, &x), &w) in buffers.input.iter_mut().zip(frame).zip(&self.window) {
            *dst = if x.is_finite() { x * w } else { 0.0 };
        }
        self.forward
            .process_with_scratch(&mut buffers.input, &mut buffers.spectrum, &mut buffers.scratch)
            .expect("buffers come from the plan");
        for (p, c) in buffers.power.iter_mut().zip(&buffers.spectrum) {
            *p = c.norm_sqr();
        }
    }

    /// Band powers of frames `first..first + out.len() / N_BANDS` (frame-major).
    fn band_powers(&self, samples: &[f32], first: usize, out: &mut [f32]) {
        let mut buffers = self.buffers();
        for (i, bands) in out.chunks_exact_mut(N_BANDS).enumerate() {
            self.power_spectrum(samples, first + i, &mut buffers);
            for (o, &(lo, hi)) in bands.iter_mut().zip(&self.band_bins) {
                *o = buffers.power[lo..hi].iter().sum();
            }
        }
    }

    /// Periodicity of frame `t` (0..1): YIN's cumulative-mean-normalized difference on the
    /// autocorrelation of the spectrum divided by the noise floor, corrected for the window.
    fn voicing(&self, samples: &[f32], t: usize, floor: &[f32], buffers: &mut Buffers) -> f32 {
        self.power_spectrum(samples, t, buffers);
        for (k, c) in buffers.spectrum.iter_mut().enumerate() {
            let p = self.voicing_band[k].map_or(0.0, |b| buffers.power[k] / floor[b]);
            *c = Complex::new(p, 0.0);
        }
        self.inverse
            .process_with_scratch(&mut buffers.spectrum, &mut buffers.ac, &mut buffers.ac_scratch)
            .expect("buffers come from the plan");
        let r0 = buffers.ac[0];
        if r0 <= 0.0 || !r0.is_finite() {
            return 0.0;
        }
        let mut cumulative = 0.0f32;
        let mut best = f32::INFINITY;
        for lag in 1..=LAG_MAX {
            let r = buffers.ac[lag] / r0 / self.window_ac[lag];
            let d = (1.0 - r).max(0.0);
            cumulative += d;
            if lag >= LAG_MIN && cumulative > 0.0 {
                best = best.min(d * lag as f32 / cumulative);
            }
        }
        (1.0 - best).clamp(0.0, 1.0)
    }
}

/// Consecutive regions merged into chunks of at most `max_samples` (WhisperX's
/// `merge_chunks`): a region joins the current chunk while the chunk, from its first region's
/// start to this region's end, stays within `max_samples`. A region longer than `max_samples`
/// is first cut into pieces, each cut at the quietest 100 ms within the last quarter of the
/// span a piece may have, so that the cut falls in a pause rather than inside a word.
///
/// `regions` are sample indices into `samples` (as [`speech_regions`] returns them), in order.
///
/// # Panics
///
/// When `max_samples` is 0.
pub fn chunks(samples: &[f32], regions: &[SpeechRegion], max_samples: usize) -> Vec<Chunk> {
    assert!(max_samples > 0, "a chunk must be allowed at least one sample");
    let mut out: Vec<Chunk> = Vec::new();
    for &region in regions.iter().filter(|r| !r.is_empty()) {
        for piece in split(samples, region, max_samples) {
            match out.last_mut() {
                Some(chunk) if piece.end.saturating_sub(chunk.start) <= max_samples => {
                    chunk.end = chunk.end.max(piece.end);
                    chunk.regions.push(piece);
                }
                _ => out.push(Chunk {
                    start: piece.start,
                    end: piece.end,
                    regions: vec![piece],
                }),
            }
        }
    }
    out
}

/// `region` cut into pieces of at most `max_samples`.
fn split(samples: &[f32], region: SpeechRegion, max_samples: usize) -> Vec<SpeechRegion> {
    let mut pieces = Vec::new();
    let mut start = region.start;
    while region.end - start > max_samples {
        let cut = quietest_cut(samples, start + max_samples - max_samples / 4, start + max_samples)
            .max(start + 1);
        pieces.push(SpeechRegion { start, end: cut });
        start = cut;
    }
    pieces.push(SpeechRegion {
        start,
        end: region.end,
    });
    pieces
}

/// Samples of the window whose energy decides where to cut (100 ms).
const CUT_WINDOW: usize = 10 * HOP;

/// The position in `lo..=hi` (on a 10 ms grid from `hi` back) whose surrounding 100 ms holds
/// the least energy; the latest such position on ties, so chunks stay as long as they may.
fn quietest_cut(samples: &[f32], lo: usize, hi: usize) -> usize {
    let energy = |from: usize, to: usize| -> f64 {
        let to = to.min(samples.len());
        let from = from.min(to);
        samples[from..to]
            .iter()
            .map(|&x| if x.is_finite() { f64::from(x) * f64::from(x) } else { 0.0 })
            .sum()
    };
    let mut best = (f64::INFINITY, hi);
    let mut position = hi;
    loop {
        let e = energy(position.saturating_sub(CUT_WINDOW / 2), position + CUT_WINDOW / 2);
        if e < best.0 {
            best = (e, position);
        }
        if position < lo + HOP {
            break;
        }
        position -= HOP;
    }
    best.1
}
#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next_u32(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 32) as u32
        }
        fn uniform(&mut self) -> f32 {
            self.next_u32() as f32 / 4_294_967_296.0
        }
        fn gaussian(&mut self) -> f32 {
            let u1 = self.uniform().max(1e-9);
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        }
    }

    fn load(path: &str) -> Vec<Vec<f32>> {
        let bytes = std::fs::read(path).unwrap();
        let ext = path.rsplit('.').next();
        crate::audio::decode(&bytes, ext, &crate::audio::AudioLimits::default())
            .unwrap()
            .channels
    }

    fn summary(name: &str, x: &[f32]) {
        let a = analyze(x, &VadOptions::default());
        let mut s = a.score.clone();
        s.sort_by(f32::total_cmp);
        let q = |p: f32| s[((s.len() - 1) as f32 * p) as usize];
        println!(
            "{name:40} score p50 {:5.1} p90 {:5.1} p99 {:5.1} p999 {:5.1} max {:5.1}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0),
        );
        for seg in &a.segments {
            println!("    seg {:6.2}-{:6.2} active {:4} voiced {:4} flux {:5.2} {}", seg.start as f32 / 100.0, seg.end as f32 / 100.0, seg.active, seg.voiced, seg.flux, seg.accepted);
        }
    }

    fn line(name: &str, x: &[f32]) {
        let a = analyze(x, &VadOptions::default());
        let mut out = String::new();
        for t in (0..a.score.len()).step_by(5) {
            let s = a.score[t];
            let c = if s >= 12.0 {
                '#'
            } else if s >= 9.0 {
                '+'
            } else if s >= 6.0 {
                '-'
            } else {
                '.'
            };
            out.push(c);
        }
        println!("{name}\n  {out}");
        let mut out = String::new();
        for t in (0..a.score.len()).step_by(5) {
            let v = a.voicing[t];
            out.push(if v >= 0.8 {
                '#'
            } else if v >= 0.6 {
                '+'
            } else if v >= 0.4 {
                '-'
            } else {
                '.'
            });
        }
        println!("  {out}");
        for seg in &a.segments {
            println!("    seg {:6.2}-{:6.2} active {:4} voiced {:4} flux {:5.2} {}", seg.start as f32 / 100.0, seg.end as f32 / 100.0, seg.active, seg.voiced, seg.flux, seg.accepted);
        }
        let r = speech_regions(x, &VadOptions::default());
        println!("    regions {:?}", r.iter().map(|r| (r.start as f32 / 16000.0, r.end as f32 / 16000.0)).collect::<Vec<_>>());
    }

    fn cover(x: &[f32], r: &[SpeechRegion]) -> (f32, f32) {
        // (fraction of loud 20 ms frames covered, fraction of file in regions)
        let f = 320;
        let e: Vec<f32> = x.chunks(f).map(|c| { let mut p = 0.0; let mut s = 0.0f32; for &v in c { s += (v - 0.95 * p) * (v - 0.95 * p); p = v; } 10.0 * (s / c.len() as f32 + 1e-20).log10() }).collect();
        let max = e.iter().cloned().fold(f32::MIN, f32::max);
        let loud: Vec<usize> = (0..e.len()).filter(|&i| e[i] >= max - 20.0).collect();
        let covered = loud.iter().filter(|&&i| r.iter().any(|r| r.start <= i * f && (i + 1) * f <= r.end.max(x.len().min((i+1)*f)) && r.end >= ((i + 1) * f).min(x.len()))).count();
        let total: usize = r.iter().map(|r| r.len()).sum();
        (covered as f32 / loud.len() as f32, total as f32 / x.len() as f32)
    }

    #[test]
    #[ignore]
    fn dev_snr() {
        let mut rng = Rng(7);
        let dir = "/work/shared/eval/asr";
        let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for kind in ["clean", "w10", "w5", "w0", "brown10", "brown0", "hum0", "m30", "m50", "babble?"] {
            let mut worst = 1.0f32;
            let mut n_files = 0;
            let mut sum_cov = 0.0;
            let mut sum_frac = 0.0;
            for p in &names {
                let ch = load(p.to_str().unwrap());
                let x = &ch[0];
                let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let e: f32 = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
                let mut brown = 0.0f32;
                let y: Vec<f32> = match kind {
                    "clean" => x.clone(),
                    "w10" | "w5" | "w0" => { let snr: f32 = kind[1..].parse().unwrap(); let g = (e / 10f32.powf(snr / 10.0)).sqrt(); x.iter().map(|v| v + g * rng.gaussian()).collect() }
                    "brown10" | "brown0" => { let snr: f32 = kind[5..].parse().unwrap(); let g = (e / 10f32.powf(snr / 10.0)).sqrt() * 0.0447 / 0.05; x.iter().map(|v| { brown = 0.999 * brown + 0.05 * rng.gaussian(); v + g * brown }).collect() }
                    "hum0" => { let g = e.sqrt(); x.iter().enumerate().map(|(i, v)| v + g * (1..=8).map(|h| ((2.0 * std::f64::consts::PI * 60.0 * h as f64 * i as f64 / 16000.0).sin() / h as f64) as f32).sum::<f32>()).collect() }
                    "m30" => x.iter().map(|v| v / peak * 0.0316).collect(),
                    "m50" => x.iter().map(|v| v / peak * 0.00316).collect(),
                    _ => continue,
                };
                let r = speech_regions(&y, &VadOptions::default());
                let (c, fr) = cover(x, &r);
                worst = worst.min(c);
                sum_cov += c;
                sum_frac += fr;
                n_files += 1;
                if c < 0.95 { println!("   {kind} {} cov {c:.2} regions {:?}", p.display(), r.iter().map(|r| (r.start as f32 / 16000.0, r.end as f32 / 16000.0)).collect::<Vec<_>>()); }
            }
            println!("{kind:8} worst loud-frame coverage {worst:.3} mean {:.3} mean region fraction {:.3}", sum_cov / n_files as f32, sum_frac / n_files as f32);
        }
    }

    #[test]
    #[ignore]
    fn dev_stats() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let n = 60 * SAMPLE_RATE;
        let white: Vec<f32> = (0..n).map(|_| 0.1 * rng.gaussian()).collect();
        summary("white -20", &white);
        let mut brown = Vec::with_capacity(n);
        let mut b = 0.0f32;
        for _ in 0..n {
            b = 0.998 * b + 0.02 * rng.gaussian();
            brown.push(b);
        }
        summary("brown", &brown);
        let mut pink = Vec::with_capacity(n);
        let (mut b0, mut b1, mut b2) = (0.0f32, 0.0f32, 0.0f32);
        for _ in 0..n {
            let w = rng.gaussian() * 0.05;
            b0 = 0.99765 * b0 + w * 0.0990460;
            b1 = 0.96300 * b1 + w * 0.2965164;
            b2 = 0.57000 * b2 + w * 1.0526913;
            pink.push(b0 + b1 + b2 + w * 0.1848);
        }
        summary("pink", &pink);
        let hum: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / SAMPLE_RATE as f32;
                (1..=10)
                    .map(|h| 0.1 / h as f32 * (2.0 * std::f32::consts::PI * 60.0 * h as f32 * t).sin())
                    .sum::<f32>()
            })
            .collect();
        summary("hum 60", &hum);
        let dither: Vec<f32> = (0..n)
            .map(|_| (rng.uniform() - rng.uniform()) / 32768.0)
            .collect();
        summary("dither", &dither);
        let tone: Vec<f32> = (0..n)
            .map(|i| (0.3 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 16000.0).sin()) as f32)
            .collect();
        summary("tone", &tone);
        // Adversarial.
        let sr = SAMPLE_RATE;
        let mut step: Vec<f32> = vec![0.0; 20 * sr];
        step.extend((0..20 * sr).map(|_| 0.05 * rng.gaussian()));
        step.extend((0..20 * sr).map(|_| 0.15 * rng.gaussian()));
        step.extend((0..20 * sr).map(|_| 0.02 * rng.gaussian()));
        step.extend(vec![0.0; 10 * sr]);
        summary("silence/noise/steps", &step);
        let mut bumps: Vec<f32> = Vec::new();
        for k in 0..20 {
            let len = sr * (3 + k % 3);
            bumps.extend((0..len).map(|_| 0.01 * rng.gaussian()));
            let g = 0.01 * 10f32.powf((6.0 + k as f32) / 20.0);
            bumps.extend((0..sr / 10 * (2 + k % 7)).map(|_| g * rng.gaussian()));
        }
        summary("noise bumps", &bumps);
        let mut beeps: Vec<f32> = Vec::new();
        let mut ph = 0.0f64;
        for k in 0..20 {
            bumps.clear();
            beeps.extend((0..sr * 2).map(|_| 0.003 * rng.gaussian()));
            let f = [1000.0, 440.0, 350.0, 697.0, 1209.0][k % 5];
            let f2 = [0.0, 480.0, 440.0, 1336.0, 0.0][k % 5];
            beeps.extend((0..sr / 10 * (3 + k % 8)).map(|_| {
                ph += 1.0 / 16000.0;
                0.003 * rng.gaussian() + (0.2 * (2.0 * std::f64::consts::PI * f * ph).sin() + 0.2 * (2.0 * std::f64::consts::PI * f2 * ph).sin()) as f32
            }));
        }
        summary("beeps", &beeps);
        // Comfort noise: level and tilt updated every 160 ms by a small random step.
        let mut cng = Vec::new();
        let (mut lvl, mut state) = (0.02f32, 0.0f32);
        for _ in 0..(60 * 100 / 16) {
            let target = (0.02 * 10f32.powf((rng.uniform() - 0.5) * 4.0 / 20.0)).max(0.001);
            let tilt = 0.3 + 0.5 * rng.uniform();
            for _ in 0..(16 * HOP) {
                lvl += (target - lvl) * 0.001;
                state = tilt * state + rng.gaussian();
                cng.push(lvl * state);
            }
        }
        summary("comfort noise", &cng);
        let dir = "/work/shared/eval/asr";
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let ch = load(p.to_str().unwrap());
            let name = p.file_name().unwrap().to_str().unwrap().to_owned();
            summary(&name, &ch[0]);
            line(&name, &ch[0]);
            let noisy: Vec<f32> = {
                let e: f32 = ch[0].iter().map(|x| x * x).sum::<f32>() / ch[0].len() as f32;
                let g = (e / 10.0).sqrt();
                ch[0].iter().map(|x| x + g * rng.gaussian()).collect()
            };
            line("  +10dB white", &noisy);
        }
        let g = load("/work/main/fixtures/audio/goforward.wav");
        let a = analyze(&g[0], &VadOptions::default());
        for t in (0..a.score.len()).step_by(2) {
            println!("gf {:.2} {:5.1} {:.2}", t as f32 / 100.0, a.score[t], a.voicing[t]);
        }
        let an = Analyzer::new();
        let mut bp = vec![0.0f32; 300 * N_BANDS];
        an.band_powers(&g[0], 0, &mut bp[..(g[0].len() / HOP) * N_BANDS]);
        for t in [35, 40, 150, 226, 230, 235, 238, 245, 260] {
            let row: Vec<String> = bp[t * N_BANDS..(t + 1) * N_BANDS].iter().map(|p| format!("{:4.0}", 10.0 * p.max(1e-20).log10())).collect();
            println!("band {t} {}", row.join(""));
        }
        let st = load("/work/main/fixtures/audio/faster_whisper_stereo_diarization.wav");
        line("stereo 0", &st[0]);
        line("stereo 1", &st[1]);
    }
}
