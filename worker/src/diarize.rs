//! Speaker diarization of mono recordings, the parts that need no neural network: RTTM files,
//! the diarization error rate, clustering of speaker embeddings, and turning window labels into
//! speaker turns.
//!
//! The pipeline (DESIGN.md, "Diarization"): VAD regions → sliding windows (~1.5 s, 0.75 s hop)
//! → one L2-normalized speaker embedding per window (the GE2E encoder) → [`cluster`] → window
//! labels → [`merge_similar`] → [`turns`] → [`speaker_for`] each transcript segment
//! ([`diarize_channel`] runs it up to the turns). Stereo calls need none of this: there a
//! channel is a speaker.
//!
//! # RTTM
//!
//! [`parse_rttm`] reads the `SPEAKER` records of NIST's Rich Transcription Time Marked format
//! (`SPEAKER file 1 start duration <NA> <NA> speaker <NA> <NA>`); other record types and `;;`
//! comments are skipped, a malformed `SPEAKER` line is an error naming its line number.
//! [`write_rttm`] writes the same records, times in milliseconds.
//!
//! # Diarization error rate
//!
//! [`diarization_error`] computes DER as `pyannote.metrics` does (`DiarizationErrorRate`), so
//! our figures compare with published ones:
//!
//! - **Collar** is the *total* width removed around every reference turn boundary, half on each
//!   side (pyannote's `_get_collar`: `t ± collar / 2`); `collar = 0.25` removes ±0.125 s. (NIST
//!   md-eval's `-c 0.25` means ±0.25 s, i.e. pyannote's `collar = 0.5`.) The regions removed are
//!   removed for reference and hypothesis alike.
//! - **skip_overlap** also removes every region where two or more reference speakers talk.
//! - **Mapping**: one-to-one between reference and hypothesis labels, maximizing their total
//!   co-occurrence in the scored regions, by the Hungarian algorithm (any number of speakers,
//!   O(n³)); hypothesis labels left unmapped never count as correct.
//! - **Per instant**, with `n_ref` and `n_hyp` speakers active and `n_correct` of the
//!   reference's speakers matched by their mapped hypothesis label: missed =
//!   `max(0, n_ref − n_hyp)`, false alarm = `max(0, n_hyp − n_ref)`, confusion =
//!   `min(n_ref, n_hyp) − n_correct`, total = `n_ref`. So overlapped speech counts once per
//!   speaker, in the errors and in the total.
//! - The timeline is exact: every turn boundary and collar edge is an event; nothing is cut
//!   into frames. Turns of one speaker that overlap each other are merged first (pyannote would
//!   count such a doubled track twice; RTTM references do not contain them).
//! - `der = (missed + false_alarm + confusion) / total`; with no reference speech it is 0 when
//!   there is no error either and 1 otherwise (pyannote's rule). [`DiarizationErrors`] add up,
//!   so a corpus DER is summed errors over summed reference time, not a mean of rates.
//!
//! # Clustering: spectral, with the normalized maximum eigengap
//!
//! [`cluster`] is NME-SC (Park et al., "Auto-Tuning Spectral Clustering for Speaker Diarization
//! Using Normalized Maximum Eigengap", 2019), the clustering of NVIDIA NeMo's diarizer, chosen
//! over agglomerative clustering with a distance threshold because it has **no similarity
//! threshold to tune**. GE2E embeddings are non-negative (a ReLU precedes the normalization), so
//! even different speakers have cosine similarities around 0.5–0.7 and the same speaker
//! 0.7–0.9, and both ranges move with the channel (codec, handset, noise): a fixed stopping
//! threshold that suits one campaign's phone lines over- or under-splits another's. NME-SC only
//! uses the *ranking* of similarities within each window's row:
//!
//! 1. Cosine similarity between all windows.
//! 2. For a candidate `p`, each window is joined to its `p` most similar windows (a binary
//!    k-nearest-neighbour graph, then symmetrized `(A + Aᵀ) / 2`).
//! 3. Eigenvalues of the graph Laplacian `L = D − A`, ascending. With `k` well-separated
//!    speakers the graph has `k` nearly disconnected parts, so `λ₁ … λ_k ≈ 0` and the largest
//!    gap `λ_{k+1} − λ_k` among the first `max_speakers` gaps gives the count `k`. A single
//!    speaker gives a connected graph whose `λ₂` is large: the first gap wins and `k = 1`, no
//!    separate one-speaker test is needed.
//! 4. `p` itself is chosen automatically: the smallest `p / g_p`, where `g_p` is that largest
//!    gap divided by the largest eigenvalue. Too small a `p` splits one speaker into fragments
//!    (more than `max_speakers` near-zero eigenvalues: no gap in range at all); too large a `p`
//!    joins speakers. Candidate `p` go up to a quarter of the windows, so a speaker with a tenth
//!    of the windows (an agent who only greets and closes) still forms its own part.
//! 5. The eigenvectors of the `k` smallest eigenvalues, each window's row normalized to unit
//!    length, are clustered by k-means (farthest-first initialization, Lloyd iterations:
//!    deterministic, no random seed).
//!
//! Eigen-decomposition is ours (Householder tridiagonalization and the implicit QL algorithm,
//! as in EISPACK's `tred2`/`tql2`), O(n³), so at most [`ClusterOptions::max_points`] windows
//! (default 500, about six minutes of speech) are clustered spectrally; in longer calls that
//! many windows evenly spaced in time are, and every other window takes the label of the
//! nearest cluster centroid (cosine). Labels are numbered in order of first appearance.
//!
//! # Turns
//!
//! [`turns`] gives each instant of speech (the VAD regions) the label of the window whose centre
//! is nearest, so a change of speaker falls halfway between two window centres, and joins
//! touching pieces of one label. Silence between VAD regions stays silence.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use crate::speaker::{normalize_volume, SpeakerEncoder, SpeakerError, SAMPLE_RATE};
use crate::vad::SpeechRegion;

/// A stretch of time (seconds) where one speaker talks.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub start: f64,
    pub end: f64,
    pub speaker: String,
}

impl Turn {
    pub fn new(start: f64, end: f64, speaker: impl Into<String>) -> Self {
        Self {
            start,
            end,
            speaker: speaker.into(),
        }
    }

    pub fn duration(&self) -> f64 {
        (self.end - self.start).max(0.0)
    }
}

/// The speaker name [`turns`] gives cluster label `label`: `SPEAKER_00`, `SPEAKER_01`, …
pub fn speaker_name(label: usize) -> String {
    format!("SPEAKER_{label:02}")
}

// ---------------------------------------------------------------------------------------------
// RTTM
// ---------------------------------------------------------------------------------------------

/// A `SPEAKER` line of an RTTM file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("RTTM line {line}: {reason}: {text:?}")]
pub struct RttmError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
    /// The line as written.
    pub text: String,
}

/// The `SPEAKER` records of an RTTM file, in file order. Empty lines, `;;` / `#` comments and
/// other record types (`SPKR-INFO`, `LEXEME`, …) are skipped.
pub fn parse_rttm(text: &str) -> Result<Vec<Turn>, RttmError> {
    let mut turns = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(";;") || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] != "SPEAKER" {
            continue;
        }
        let error = |reason: String| RttmError {
            line: index + 1,
            reason,
            text: raw.to_string(),
        };
        if fields.len() < 8 {
            return Err(error(format!(
                "a SPEAKER record has at least 8 fields (type file channel start duration \
                 ortho subtype speaker), this one {}",
                fields.len()
            )));
        }
        let number = |i: usize, what: &str| -> Result<f64, RttmError> {
            match fields[i].parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(error(format!(
                    "field {} ({what}) must be a non-negative number of seconds, not {:?}",
                    i + 1,
                    fields[i]
                ))),
            }
        };
        let start = number(3, "start")?;
        let duration = number(4, "duration")?;
        turns.push(Turn {
            start,
            end: start + duration,
            speaker: fields[7].to_string(),
        });
    }
    Ok(turns)
}

/// RTTM `SPEAKER` records for `turns` (times to the millisecond, channel 1). Whitespace in
/// `file_id` or a speaker name, which would shift the fields, becomes `_`.
pub fn write_rttm(file_id: &str, turns: &[Turn]) -> String {
    let clean = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect();
        if s.is_empty() {
            "<NA>".to_string()
        } else {
            s
        }
    };
    let file_id = clean(file_id);
    let mut out = String::new();
    for turn in turns {
        let _ = writeln!(
            out,
            "SPEAKER {file_id} 1 {:.3} {:.3} <NA> <NA> {} <NA> <NA>",
            turn.start,
            turn.duration(),
            clean(&turn.speaker)
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Diarization error rate
// ---------------------------------------------------------------------------------------------

/// Seconds of each kind of diarization error, and of reference speech (per speaker: two
/// speakers talking for 1 s count 2 s).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiarizationErrors {
    pub missed: f64,
    pub false_alarm: f64,
    pub confusion: f64,
    pub total: f64,
}

impl DiarizationErrors {
    /// Missed + false alarm + confusion.
    pub fn errors(&self) -> f64 {
        self.missed + self.false_alarm + self.confusion
    }

    /// Diarization error rate: errors over reference speech (0 when both are 0, 1 when there
    /// are errors but no reference speech, as pyannote.metrics).
    pub fn der(&self) -> f64 {
        if self.total > 0.0 {
            self.errors() / self.total
        } else if self.errors() > 0.0 {
            1.0
        } else {
            0.0
        }
    }
}

impl Add for DiarizationErrors {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            missed: self.missed + other.missed,
            false_alarm: self.false_alarm + other.false_alarm,
            confusion: self.confusion + other.confusion,
            total: self.total + other.total,
        }
    }
}

impl AddAssign for DiarizationErrors {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl Sum for DiarizationErrors {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::default(), Add::add)
    }
}

/// Speakers' labels → indices, and per speaker its turns merged into disjoint sorted intervals.
fn speaker_intervals(turns: &[Turn]) -> (Vec<String>, Vec<Vec<(f64, f64)>>) {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut intervals: Vec<Vec<(f64, f64)>> = Vec::new();
    for turn in turns {
        if turn.end <= turn.start || !turn.start.is_finite() || !turn.end.is_finite() {
            continue;
        }
        let i = *index.entry(turn.speaker.as_str()).or_insert_with(|| {
            names.push(turn.speaker.clone());
            intervals.push(Vec::new());
            names.len() - 1
        });
        intervals[i].push((turn.start, turn.end));
    }
    for list in &mut intervals {
        *list = merge_intervals(std::mem::take(list));
    }
    (names, intervals)
}

/// Sorted, disjoint union of `intervals` (touching ones joined, empty ones dropped).
fn merge_intervals(mut intervals: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    intervals.retain(|&(s, e)| e > s);
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(intervals.len());
    for (s, e) in intervals {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Whether `t` lies inside one of the sorted disjoint `intervals`.
fn inside(intervals: &[(f64, f64)], t: f64) -> bool {
    let i = intervals.partition_point(|&(_, e)| e <= t);
    i < intervals.len() && intervals[i].0 <= t
}

/// DER components of `hypothesis` against `reference`, as pyannote.metrics'
/// `DiarizationErrorRate(collar=collar, skip_overlap=skip_overlap)` computes them (see the
/// module documentation): `collar` is the total width (seconds) removed around each reference
/// boundary, half on each side.
pub fn diarization_error(
    reference: &[Turn],
    hypothesis: &[Turn],
    collar: f64,
    skip_overlap: bool,
) -> DiarizationErrors {
    let (_, ref_iv) = speaker_intervals(reference);
    let (_, hyp_iv) = speaker_intervals(hypothesis);

    // Regions not scored: collars around every reference turn boundary (as written, before
    // merging: pyannote puts collars on each segment), and reference overlap if asked.
    let mut excluded = Vec::new();
    if collar > 0.0 {
        for turn in reference {
            if turn.end > turn.start {
                for t in [turn.start, turn.end] {
                    excluded.push((t - collar / 2.0, t + collar / 2.0));
                }
            }
        }
    }

    // Elementary intervals between consecutive events.
    let mut events: Vec<f64> = ref_iv
        .iter()
        .chain(&hyp_iv)
        .flatten()
        .flat_map(|&(s, e)| [s, e])
        .collect();
    if skip_overlap {
        let mut ref_events: Vec<f64> = ref_iv.iter().flatten().flat_map(|&(s, e)| [s, e]).collect();
        ref_events.sort_by(f64::total_cmp);
        ref_events.dedup();
        for w in ref_events.windows(2) {
            let mid = 0.5 * (w[0] + w[1]);
            if ref_iv.iter().filter(|iv| inside(iv, mid)).count() >= 2 {
                excluded.push((w[0], w[1]));
            }
        }
    }
    let excluded = merge_intervals(excluded);
    events.extend(excluded.iter().flat_map(|&(s, e)| [s, e]));
    events.sort_by(f64::total_cmp);
    events.dedup();

    struct Piece {
        duration: f64,
        refs: Vec<usize>,
        hyps: Vec<usize>,
    }
    let mut pieces = Vec::new();
    let mut cooccurrence = vec![vec![0.0f64; hyp_iv.len()]; ref_iv.len()];
    for w in events.windows(2) {
        let (a, b) = (w[0], w[1]);
        let mid = 0.5 * (a + b);
        if b <= a || inside(&excluded, mid) {
            continue;
        }
        let refs: Vec<usize> = (0..ref_iv.len())
            .filter(|&r| inside(&ref_iv[r], mid))
            .collect();
        let hyps: Vec<usize> = (0..hyp_iv.len())
            .filter(|&h| inside(&hyp_iv[h], mid))
            .collect();
        if refs.is_empty() && hyps.is_empty() {
            continue;
        }
        for &r in &refs {
            for &h in &hyps {
                cooccurrence[r][h] += b - a;
            }
        }
        pieces.push(Piece {
            duration: b - a,
            refs,
            hyps,
        });
    }

    let mapping = best_mapping(&cooccurrence, hyp_iv.len());
    let mut errors = DiarizationErrors::default();
    for piece in pieces {
        let (n_ref, n_hyp) = (piece.refs.len() as f64, piece.hyps.len() as f64);
        let correct = piece
            .refs
            .iter()
            .filter(|&&r| mapping[r].is_some_and(|h| piece.hyps.contains(&h)))
            .count() as f64;
        errors.total += piece.duration * n_ref;
        errors.missed += piece.duration * (n_ref - n_hyp).max(0.0);
        errors.false_alarm += piece.duration * (n_hyp - n_ref).max(0.0);
        errors.confusion += piece.duration * (n_ref.min(n_hyp) - correct);
    }
    errors
}

/// For each reference speaker (row), its hypothesis speaker (column) in the one-to-one mapping
/// of largest total co-occurrence; `None` when it is paired with no one or with a speaker it
/// never co-occurs with.
fn best_mapping(cooccurrence: &[Vec<f64>], n_hyp: usize) -> Vec<Option<usize>> {
    let n = cooccurrence.len().max(n_hyp);
    let cost: Vec<Vec<f64>> = (0..n)
        .map(|r| {
            (0..n)
                .map(|h| {
                    -cooccurrence
                        .get(r)
                        .and_then(|row| row.get(h))
                        .copied()
                        .unwrap_or(0.0)
                })
                .collect()
        })
        .collect();
    let assignment = hungarian(&cost);
    (0..cooccurrence.len())
        .map(|r| {
            let h = assignment[r];
            (h < n_hyp && cooccurrence[r][h] > 0.0).then_some(h)
        })
        .collect()
}

/// Minimum-cost perfect assignment of a square cost matrix (Hungarian algorithm with
/// potentials, O(n³)): `result[row] = column`.
fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    // 1-based arrays, column 0 is the virtual start.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; n + 1];
    let mut p = vec![0usize; n + 1]; // p[column] = row
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut result = vec![0usize; n];
    for j in 1..=n {
        if p[j] > 0 {
            result[p[j] - 1] = j - 1;
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Clustering
// ---------------------------------------------------------------------------------------------

/// Settings of [`cluster`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// Fewest speakers to find (1; 2 when a mono call is known to have both parties). When the
    /// eigengap says fewer, the spectral embedding is cut into this many clusters.
    pub min_speakers: usize,
    /// Most speakers to find (8).
    pub max_speakers: usize,
    /// Most windows clustered spectrally (500); the rest are assigned to the nearest centroid.
    pub max_points: usize,
    /// Largest neighbour count `p` tried, as a share of the windows (0.25).
    pub max_neighbor_share: f64,
    /// How many values of `p` are tried, evenly spread from 2 up (16).
    pub p_candidates: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            min_speakers: 1,
            max_speakers: 8,
            max_points: 500,
            max_neighbor_share: 0.25,
            p_candidates: 16,
        }
    }
}

/// A cluster label per embedding (numbered from 0 in order of first appearance), with the
/// number of speakers chosen automatically in `min_speakers..=max_speakers` (NME-SC; see the
/// module documentation). Deterministic. Embeddings need not be normalized; fewer than three
/// give one speaker.
///
/// # Panics
///
/// If the embeddings differ in length.
pub fn cluster(embeddings: &[Vec<f32>], options: &ClusterOptions) -> Vec<usize> {
    cluster_ranked_last(embeddings, options, &|_, _| false)
}

/// [`cluster`] where pairs `(i, j)` (indices of `embeddings`) for which `last` holds are ranked
/// after all others as neighbours.
fn cluster_ranked_last(
    embeddings: &[Vec<f32>],
    options: &ClusterOptions,
    last: &dyn Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let n = embeddings.len();
    if n == 0 {
        return Vec::new();
    }
    let dim = embeddings[0].len();
    assert!(
        embeddings.iter().all(|e| e.len() == dim),
        "speaker embeddings differ in length"
    );
    let unit: Vec<Vec<f64>> = embeddings.iter().map(|e| normalized(e)).collect();
    let max_k = options.max_speakers.max(1);
    let min_k = options.min_speakers.clamp(1, max_k);
    if n < 3 || max_k == 1 {
        return vec![0; n];
    }

    // Windows clustered spectrally: all, or `max_points` evenly spaced.
    let m = n.min(options.max_points.max(3));
    let sample: Vec<usize> = (0..m).map(|i| i * n / m).collect();
    let points: Vec<&[f64]> = sample.iter().map(|&i| unit[i].as_slice()).collect();
    let sample_last = |a: usize, b: usize| last(sample[a], sample[b]);
    let sample_labels = spectral(&points, min_k, max_k, options, &sample_last);

    let mut labels = vec![usize::MAX; n];
    for (&i, &l) in sample.iter().zip(&sample_labels) {
        labels[i] = l;
    }
    if m < n {
        let k = sample_labels.iter().max().map_or(1, |&l| l + 1);
        let mut centroids = vec![vec![0.0f64; dim]; k];
        for (&i, &l) in sample.iter().zip(&sample_labels) {
            for (c, x) in centroids[l].iter_mut().zip(&unit[i]) {
                *c += x;
            }
        }
        for c in &mut centroids {
            *c = normalized(c);
        }
        for (i, label) in labels.iter_mut().enumerate() {
            if *label == usize::MAX {
                *label = (0..k)
                    .max_by(|&a, &b| {
                        dot(&unit[i], &centroids[a]).total_cmp(&dot(&unit[i], &centroids[b]))
                    })
                    .unwrap_or(0);
            }
        }
    }
    first_appearance(&labels)
}

fn normalized<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
    let norm = v.iter().map(|&x| x.into() * x.into()).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter().map(|&x| x.into() / norm).collect()
    } else {
        vec![0.0; v.len()]
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Labels renumbered 0, 1, … in order of first appearance.
fn first_appearance(labels: &[usize]) -> Vec<usize> {
    let mut map: HashMap<usize, usize> = HashMap::new();
    labels
        .iter()
        .map(|&l| {
            let next = map.len();
            *map.entry(l).or_insert(next)
        })
        .collect()
}

/// NME-SC on unit vectors `points` (at least 3).
fn spectral(
    points: &[&[f64]],
    min_k: usize,
    max_k: usize,
    options: &ClusterOptions,
    last: &dyn Fn(usize, usize) -> bool,
) -> Vec<usize> {
    let m = points.len();
    // Each row's other points, most similar first (ties: lower index first), those `last`
    // names after all others.
    let mut similarity = vec![0.0f64; m * m];
    for i in 0..m {
        for j in i..m {
            let s = dot(points[i], points[j]);
            similarity[i * m + j] = s;
            similarity[j * m + i] = s;
        }
    }
    let ranked: Vec<Vec<usize>> = (0..m)
        .map(|i| {
            let mut others: Vec<usize> = (0..m).filter(|&j| j != i).collect();
            others.sort_by(|&a, &b| {
                last(i, a)
                    .cmp(&last(i, b))
                    .then(similarity[i * m + b].total_cmp(&similarity[i * m + a]))
            });
            others
        })
        .collect();

    let p_max = ((m as f64 * options.max_neighbor_share).floor() as usize).clamp(2, m - 1);
    let count = options.p_candidates.max(1);
    let mut candidates: Vec<usize> = (0..count)
        .map(|i| {
            if count == 1 {
                p_max
            } else {
                2 + ((p_max.saturating_sub(2)) as f64 * i as f64 / (count - 1) as f64).round()
                    as usize
            }
        })
        .map(|p| p.min(m - 1))
        .collect();
    candidates.dedup();

    // Speaker count and normalized gap for a Laplacian's ascending eigenvalues.
    let gap = |lambdas: &[f64]| -> Option<(usize, f64)> {
        let top = max_k.min(lambdas.len() - 1);
        let mut best: Option<(usize, f64)> = None;
        for k in 1..=top {
            let g = lambdas[k] - lambdas[k - 1];
            if best.is_none_or(|(_, b)| g > b) {
                best = Some((k, g));
            }
        }
        let largest = lambdas.last().copied().unwrap_or(0.0);
        best.map(|(k, g)| (k, g / (largest + 1e-10)))
    };

    let mut chosen: Option<(f64, usize)> = None; // (score, p)
    for &p in &candidates {
        let laplacian = knn_laplacian(&ranked, p);
        let (lambdas, _) = symmetric_eigen(laplacian, m, false);
        if let Some((_, g)) = gap(&lambdas) {
            let score = p as f64 / (g + 1e-10);
            if chosen.is_none_or(|(s, _)| score < s) {
                chosen = Some((score, p));
            }
        }
    }
    let Some((_, p)) = chosen else {
        return vec![0; m];
    };
    let (lambdas, vectors) = symmetric_eigen(knn_laplacian(&ranked, p), m, true);
    let k = gap(&lambdas).map_or(1, |(k, _)| k).max(min_k).min(m);
    if k == 1 {
        return vec![0; m];
    }
    // Spectral embedding: row i = (v_1[i], …, v_k[i]), normalized.
    let rows: Vec<Vec<f64>> = (0..m)
        .map(|i| normalized(&(0..k).map(|c| vectors[i * m + c]).collect::<Vec<f64>>()))
        .collect();
    kmeans(&rows, k)
}

/// Laplacian `D − A` (row-major m×m) of the symmetrized graph joining each point to its `p`
/// nearest (most similar) others.
fn knn_laplacian(ranked: &[Vec<usize>], p: usize) -> Vec<f64> {
    let m = ranked.len();
    let mut a = vec![0.0f64; m * m];
    for (i, others) in ranked.iter().enumerate() {
        for &j in others.iter().take(p) {
            a[i * m + j] += 0.5;
            a[j * m + i] += 0.5;
        }
    }
    for i in 0..m {
        let degree: f64 = a[i * m..(i + 1) * m].iter().sum();
        for x in &mut a[i * m..(i + 1) * m] {
            *x = -*x;
        }
        a[i * m + i] = degree;
    }
    a
}

/// k-means on `rows` with farthest-first initialization (from the point farthest from the
/// mean) and Lloyd iterations; deterministic.
fn kmeans(rows: &[Vec<f64>], k: usize) -> Vec<usize> {
    let n = rows.len();
    let dim = rows[0].len();
    let dist2 =
        |a: &[f64], b: &[f64]| -> f64 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    let mean: Vec<f64> = (0..dim)
        .map(|d| rows.iter().map(|r| r[d]).sum::<f64>() / n as f64)
        .collect();
    let farthest = |from: &dyn Fn(&[f64]) -> f64| -> usize {
        (0..n)
            .max_by(|&a, &b| from(&rows[a]).total_cmp(&from(&rows[b])).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    let mut centroids: Vec<Vec<f64>> = vec![rows[farthest(&|r| dist2(r, &mean))].clone()];
    while centroids.len() < k {
        let next = farthest(&|r| {
            centroids
                .iter()
                .map(|c| dist2(r, c))
                .fold(f64::INFINITY, f64::min)
        });
        centroids.push(rows[next].clone());
    }
    let mut labels = vec![usize::MAX; n];
    for _ in 0..300 {
        let mut changed = false;
        for (i, row) in rows.iter().enumerate() {
            let best = (0..k)
                .min_by(|&a, &b| dist2(row, &centroids[a]).total_cmp(&dist2(row, &centroids[b])))
                .unwrap_or(0);
            if labels[i] != best {
                labels[i] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = vec![vec![0.0f64; dim]; k];
        let mut counts = vec![0usize; k];
        for (row, &l) in rows.iter().zip(&labels) {
            counts[l] += 1;
            for (s, x) in sums[l].iter_mut().zip(row) {
                *s += x;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                centroids[c] = sums[c].iter().map(|s| s / counts[c] as f64).collect();
            }
        }
    }
    labels
}

/// Eigenvalues (ascending) of the symmetric row-major `n×n` matrix `a`, and with `vectors` the
/// eigenvectors as columns of a row-major matrix (`v[row * n + column]`, column `c` belongs to
/// eigenvalue `c`). Householder reduction to tridiagonal form and the implicit QL algorithm
/// (EISPACK `tred2` and `tql2`, as in JAMA).
fn symmetric_eigen(a: Vec<f64>, n: usize, vectors: bool) -> (Vec<f64>, Vec<f64>) {
    let mut v = a;
    let mut d = vec![0.0f64; n];
    let mut e = vec![0.0f64; n];
    if n == 0 {
        return (d, v);
    }
    let idx = |r: usize, c: usize| r * n + c;

    // tred2: Householder tridiagonalization.
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for &dk in &d[..i] {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
                v[idx(j, i)] = 0.0;
            }
        } else {
            for dk in &mut d[..i] {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in &mut e[..i] {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[idx(j, i)] = f;
                g = e[j] + v[idx(j, j)] * f;
                for k in j + 1..i {
                    g += v[idx(k, j)] * d[k];
                    e[k] += v[idx(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[idx(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[idx(i - 1, j)];
                v[idx(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
    // Accumulate the transformations.
    for i in 0..n - 1 {
        v[idx(n - 1, i)] = v[idx(i, i)];
        v[idx(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 && vectors {
            for k in 0..=i {
                d[k] = v[idx(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[idx(k, i + 1)] * v[idx(k, j)];
                }
                for k in 0..=i {
                    v[idx(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[idx(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[idx(n - 1, j)];
        v[idx(n - 1, j)] = 0.0;
    }
    v[idx(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;

    // tql2: implicit QL on the tridiagonal matrix.
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0f64;
    let mut tst1 = 0.0f64;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n {
            if e[m].abs() <= eps * tst1 {
                break;
            }
            m += 1;
        }
        if m > l {
            let mut iterations = 0;
            loop {
                iterations += 1;
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in &mut d[l + 2..n] {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    if vectors {
                        for k in 0..n {
                            h = v[idx(k, i + 1)];
                            v[idx(k, i + 1)] = s * v[idx(k, i)] + c * h;
                            v[idx(k, i)] = c * v[idx(k, i)] - s * h;
                        }
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || iterations >= 60 {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }

    // Sort ascending, columns along.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].total_cmp(&d[b]));
    let values: Vec<f64> = order.iter().map(|&i| d[i]).collect();
    if !vectors {
        return (values, Vec::new());
    }
    let mut sorted = vec![0.0f64; n * n];
    for (c, &src) in order.iter().enumerate() {
        for r in 0..n {
            sorted[idx(r, c)] = v[idx(r, src)];
        }
    }
    (values, sorted)
}

// ---------------------------------------------------------------------------------------------
// Turns
// ---------------------------------------------------------------------------------------------

/// Speaker turns from window labels: every instant of `speech` (VAD regions, seconds) gets the
/// label of the window (`(start, end)`, seconds) whose centre is nearest; touching stretches of
/// one label are joined, silence between regions is kept. Speakers are named by
/// [`speaker_name`].
///
/// # Panics
///
/// If `windows` and `labels` differ in length.
pub fn turns(windows: &[(f64, f64)], labels: &[usize], speech: &[(f64, f64)]) -> Vec<Turn> {
    assert_eq!(windows.len(), labels.len(), "one label per window");
    let mut centres: Vec<(f64, usize)> = windows
        .iter()
        .zip(labels)
        .map(|(&(s, e), &l)| (0.5 * (s + e), l))
        .filter(|(c, _)| c.is_finite())
        .collect();
    if centres.is_empty() {
        return Vec::new();
    }
    // Stable: of windows with the same centre, the first one listed wins.
    centres.sort_by(|a, b| a.0.total_cmp(&b.0));
    centres.dedup_by(|b, a| a.0 == b.0);

    let mut pieces: Vec<(f64, f64, usize)> = Vec::new();
    for (start, end) in merge_intervals(speech.to_vec()) {
        // Window cells are [mid(c[i-1], c[i]), mid(c[i], c[i+1])).
        let mut i = centres
            .partition_point(|&(c, _)| c <= start)
            .saturating_sub(1);
        // Move to the cell containing `start`.
        while i + 1 < centres.len() && 0.5 * (centres[i].0 + centres[i + 1].0) <= start {
            i += 1;
        }
        let mut t = start;
        while t < end {
            let cell_end = if i + 1 < centres.len() {
                0.5 * (centres[i].0 + centres[i + 1].0)
            } else {
                f64::INFINITY
            };
            let piece_end = cell_end.min(end);
            if piece_end > t {
                let label = centres[i].1;
                match pieces.last_mut() {
                    Some(last) if last.2 == label && last.1 >= t => last.1 = piece_end,
                    _ => pieces.push((t, piece_end, label)),
                }
            }
            t = piece_end;
            i += 1;
        }
    }
    pieces
        .into_iter()
        .map(|(s, e, l)| Turn::new(s, e, speaker_name(l)))
        .collect()
}

/// The speaker of `turns` overlapping `segment` (start, end) the longest; `None` when none
/// overlaps it. Ties go to the speaker whose turn comes first.
pub fn speaker_for(segment: (f64, f64), turns: &[Turn]) -> Option<String> {
    let mut totals: Vec<(&str, f64)> = Vec::new();
    for turn in turns {
        let overlap = segment.1.min(turn.end) - segment.0.max(turn.start);
        if overlap > 0.0 {
            match totals.iter_mut().find(|(s, _)| *s == turn.speaker) {
                Some((_, total)) => *total += overlap,
                None => totals.push((&turn.speaker, overlap)),
            }
        }
    }
    totals
        .into_iter()
        .fold(None::<(&str, f64)>, |best, (s, t)| match best {
            Some((_, b)) if b >= t => best,
            _ => Some((s, t)),
        })
        .map(|(s, _)| s.to_string())
}

// ---------------------------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------------------------

/// Settings of [`diarize_channel`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// Length of a sliding window (1.5 s: one partial of the encoder).
    pub window_seconds: f64,
    /// Step between windows (0.75 s).
    pub hop_seconds: f64,
    /// The clustering of the windows' embeddings.
    pub cluster: ClusterOptions,
    /// Clusters whose centroids are at least this similar (cosine) are joined afterwards
    /// (0.75; [`merge_similar`]). On short recordings (a few dozen windows) NME-SC splits one
    /// speaker's separate turns into clusters of their own (the nearest neighbours of a window
    /// are its neighbours in time, which share its audio). 0.75 joins those fragments and keeps
    /// the speakers apart on `tests/diarize.rs`'s two voices and the 3-speaker eval file (0.8
    /// left one of its speakers in two clusters).
    pub merge_similarity: f64,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        Self {
            window_seconds: 1.5,
            hop_seconds: 0.75,
            cluster: ClusterOptions::default(),
            merge_similarity: 0.75,
        }
    }
}

/// `labels` with clusters joined, the two with the most similar centroids (cosine of the mean
/// unit embedding) first, while that similarity is at least `threshold` and more than
/// `min_speakers` clusters are left; renumbered in order of first appearance.
pub fn merge_similar(
    embeddings: &[Vec<f32>],
    labels: &[usize],
    threshold: f64,
    min_speakers: usize,
) -> Vec<usize> {
    let mut labels = labels.to_vec();
    loop {
        let k = labels.iter().max().map_or(0, |&l| l + 1);
        if k <= min_speakers.max(1) {
            break;
        }
        let dim = embeddings.first().map_or(0, Vec::len);
        let mut centroids = vec![vec![0.0f64; dim]; k];
        for (e, &l) in embeddings.iter().zip(&labels) {
            for (c, x) in centroids[l].iter_mut().zip(normalized(e)) {
                *c += x;
            }
        }
        let centroids: Vec<Vec<f64>> = centroids.iter().map(|c| normalized(c)).collect();
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..k {
            for b in a + 1..k {
                let s = dot(&centroids[a], &centroids[b]);
                if best.is_none_or(|(bs, _, _)| s > bs) {
                    best = Some((s, a, b));
                }
            }
        }
        match best {
            Some((s, a, b)) if s >= threshold => {
                for l in &mut labels {
                    if *l == b {
                        *l = a;
                    }
                }
                labels = first_appearance(&labels);
            }
            _ => break,
        }
    }
    labels
}

/// The sliding windows (sample ranges) of [`diarize_channel`] over `regions` of a channel of
/// `n_samples`: in a region longer than a window, the fewest windows at most `hop` apart, evenly
/// spaced, the first starting at its start and the last ending at its end; a region no longer
/// than a window gets one window centred on it, clamped to the recording (shorter only when the
/// recording is). In order of start, duplicates dropped; empty regions give none.
pub fn window_ranges(
    n_samples: usize,
    regions: &[SpeechRegion],
    window: usize,
    hop: usize,
) -> Vec<std::ops::Range<usize>> {
    let window = window.max(1);
    let hop = hop.max(1);
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for region in regions {
        let start = region.start.min(n_samples);
        let end = region.end.min(n_samples);
        if end <= start {
            continue;
        }
        if end - start <= window {
            let centre = start + (end - start) / 2;
            let first = centre
                .saturating_sub(window / 2)
                .min(n_samples.saturating_sub(window));
            out.push(first..(first + window).min(n_samples));
            continue;
        }
        let count = (end - start - window).div_ceil(hop) + 1;
        let span = (end - start - window) as f64;
        for i in 0..count {
            let first = start + (span * i as f64 / (count - 1) as f64).round() as usize;
            out.push(first..first + window);
        }
    }
    out.sort_by_key(|r| (r.start, r.end));
    out.dedup();
    out
}

/// Speaker turns of one channel of 16 kHz `samples` (a mono call, or a stereo channel holding
/// more than one voice) whose speech is `regions` (from [`crate::vad::speech_regions`]): the
/// channel volume-normalized once ([`normalize_volume`]), sliding windows within the regions
/// ([`window_ranges`]) embedded by `encoder` in one batch, [`cluster`]ed, and the labels spread
/// over the regions by [`turns`]. Speakers are `SPEAKER_00`, `SPEAKER_01`, … in order of first
/// appearance; silence between regions belongs to nobody. No regions give no turns.
pub fn diarize_channel(
    encoder: &SpeakerEncoder,
    samples: &[f32],
    regions: &[SpeechRegion],
    options: &DiarizeOptions,
) -> Result<Vec<Turn>, SpeakerError> {
    let rate = SAMPLE_RATE as f64;
    let window = ((options.window_seconds * rate).round() as usize).max(1);
    let hop = ((options.hop_seconds * rate).round() as usize).max(1);
    let ranges = window_ranges(samples.len(), regions, window, hop);
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let normalized = normalize_volume(samples);
    let slices: Vec<&[f32]> = ranges.iter().map(|r| &normalized[r.clone()]).collect();
    let embeddings = encoder.embed_prepared(&slices)?;
    let seconds = |i: usize| i as f64 / rate;
    let windows: Vec<(f64, f64)> = ranges
        .iter()
        .map(|r| (seconds(r.start), seconds(r.end)))
        .collect();
    let labels = cluster(&embeddings, &options.cluster);
    let labels = merge_similar(
        &embeddings,
        &labels,
        options.merge_similarity,
        options.cluster.min_speakers,
    );
    let speech: Vec<(f64, f64)> = regions
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| (seconds(r.start), seconds(r.end.min(samples.len()))))
        .collect();
    Ok(turns(&windows, &labels, &speech))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(start: f64, end: f64, speaker: &str) -> Turn {
        Turn::new(start, end, speaker)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn assert_errors(e: DiarizationErrors, missed: f64, fa: f64, confusion: f64, total: f64) {
        assert!(
            close(e.missed, missed)
                && close(e.false_alarm, fa)
                && close(e.confusion, confusion)
                && close(e.total, total),
            "got {e:?}, want missed {missed}, false alarm {fa}, confusion {confusion}, total {total}"
        );
    }

    // ----- RTTM -----

    #[test]
    fn rttm_round_trip() {
        let text = ";; comment\n\
            SPEAKER call 1 1.700 2.200 <NA> <NA> speaker1 <NA> <NA>\n\
            SPKR-INFO call 1 <NA> <NA> <NA> unknown speaker1 <NA>\n\
            \n\
            SPEAKER call 1 6.2 4.9 <NA> <NA> speaker2 <NA>\n";
        let turns = parse_rttm(text).unwrap();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].speaker, "speaker1");
        assert!(close(turns[0].start, 1.7) && close(turns[0].end, 3.9));
        assert!(close(turns[1].end, 11.1));
        let written = write_rttm("call", &turns);
        assert_eq!(
            written,
            "SPEAKER call 1 1.700 2.200 <NA> <NA> speaker1 <NA> <NA>\n\
             SPEAKER call 1 6.200 4.900 <NA> <NA> speaker2 <NA> <NA>\n"
        );
        assert_eq!(parse_rttm(&written).unwrap().len(), 2);
        assert!(write_rttm("my call", &[t(0.0, 1.0, "a b")]).starts_with("SPEAKER my_call 1 "));
    }

    #[test]
    fn rttm_errors_name_the_line() {
        let err =
            parse_rttm("SPEAKER f 1 0 1 <NA> <NA> a\nSPEAKER f 1 x 1 <NA> <NA> b\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(
            err.to_string().starts_with("RTTM line 2: field 4 (start)"),
            "{err}"
        );
        let err = parse_rttm("\nSPEAKER f 1 0 1\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.reason.contains("8 fields"), "{err}");
        let err = parse_rttm("SPEAKER f 1 0 -1 <NA> <NA> a\n").unwrap_err();
        assert!(err.reason.contains("duration"), "{err}");
    }

    // ----- DER -----

    fn two_speakers() -> Vec<Turn> {
        vec![t(0.0, 10.0, "A"), t(10.0, 20.0, "B")]
    }

    #[test]
    fn der_perfect_and_swapped_labels() {
        let hyp = vec![t(0.0, 10.0, "x"), t(10.0, 20.0, "y")];
        let e = diarization_error(&two_speakers(), &hyp, 0.0, false);
        assert_errors(e, 0.0, 0.0, 0.0, 20.0);
        let swapped = vec![t(0.0, 10.0, "B"), t(10.0, 20.0, "A")];
        let e = diarization_error(&two_speakers(), &swapped, 0.0, false);
        assert_errors(e, 0.0, 0.0, 0.0, 20.0);
        assert_eq!(e.der(), 0.0);
    }

    #[test]
    fn der_all_missed_and_all_false_alarm() {
        let e = diarization_error(&two_speakers(), &[], 0.0, false);
        assert_errors(e, 20.0, 0.0, 0.0, 20.0);
        assert!(close(e.der(), 1.0));
        let e = diarization_error(&[], &two_speakers(), 0.0, false);
        assert_errors(e, 0.0, 20.0, 0.0, 0.0);
        assert_eq!(e.der(), 1.0);
        assert_eq!(diarization_error(&[], &[], 0.25, true).der(), 0.0);
    }

    #[test]
    fn der_partial_confusion_and_extra_speaker() {
        // x runs 2 s into B's turn: 2 s confused.
        let hyp = vec![t(0.0, 12.0, "x"), t(12.0, 20.0, "y")];
        let e = diarization_error(&two_speakers(), &hyp, 0.0, false);
        assert_errors(e, 0.0, 0.0, 2.0, 20.0);
        assert!(close(e.der(), 0.1));
        // A second hypothesis speaker over 8–12, beside A's own: 2 s of false alarm inside A's
        // turn, 2 s after it.
        let ref1 = vec![t(0.0, 10.0, "A")];
        let hyp = vec![t(0.0, 10.0, "x"), t(8.0, 12.0, "y")];
        let e = diarization_error(&ref1, &hyp, 0.0, false);
        assert_errors(e, 0.0, 4.0, 0.0, 10.0);
        // Speakers mapped for the largest overlap, not the first seen: y has 6 s of A, x 4 s.
        let hyp = vec![t(0.0, 4.0, "x"), t(4.0, 10.0, "y")];
        let e = diarization_error(&ref1, &hyp, 0.0, false);
        assert_errors(e, 0.0, 0.0, 4.0, 10.0);
    }

    #[test]
    fn der_overlap_counts_per_speaker() {
        // A 0–10, B 6–15; one hypothesis speaker 0–15, mapped to A (10 s against B's 9 s).
        // 0–6 correct; 6–10 two reference speakers, one hypothesis: 4 s missed;
        // 10–15 B alone, hypothesis is A: 5 s confusion. Total 10 + 9 = 19.
        let reference = vec![t(0.0, 10.0, "A"), t(6.0, 15.0, "B")];
        let hyp = vec![t(0.0, 15.0, "x")];
        let e = diarization_error(&reference, &hyp, 0.0, false);
        assert_errors(e, 4.0, 0.0, 5.0, 19.0);
        assert!(close(e.der(), 9.0 / 19.0));
        // skip_overlap removes 6–10: total 6 + 5, only the confusion left.
        let e = diarization_error(&reference, &hyp, 0.0, true);
        assert_errors(e, 0.0, 0.0, 5.0, 11.0);
        // Two hypothesis speakers over the overlap: no miss, and both mapped right.
        let hyp = vec![t(0.0, 10.0, "x"), t(6.0, 15.0, "y")];
        assert_errors(
            diarization_error(&reference, &hyp, 0.0, false),
            0.0,
            0.0,
            0.0,
            19.0,
        );
        // Overlap in the hypothesis only: false alarm per extra speaker.
        let hyp = vec![t(0.0, 10.0, "x"), t(0.0, 10.0, "y")];
        assert_errors(
            diarization_error(&[t(0.0, 10.0, "A")], &hyp, 0.0, false),
            0.0,
            10.0,
            0.0,
            10.0,
        );
    }

    #[test]
    fn der_collar_is_total_width_half_each_side() {
        let reference = vec![t(0.0, 10.0, "A")];
        let hyp = vec![t(0.5, 10.0, "x")];
        let e = diarization_error(&reference, &hyp, 0.0, false);
        assert_errors(e, 0.5, 0.0, 0.0, 10.0);
        // collar 1.0: ±0.5 around 0 and 10 removed; scored 0.5–9.5, nothing wrong.
        let e = diarization_error(&reference, &hyp, 1.0, false);
        assert_errors(e, 0.0, 0.0, 0.0, 9.0);
        // collar 0.5: ±0.25; scored 0.25–9.75, 0.25 s missed.
        let e = diarization_error(&reference, &hyp, 0.5, false);
        assert_errors(e, 0.25, 0.0, 0.0, 9.5);
        // Collars are around reference boundaries only: hypothesis errors elsewhere stay.
        let hyp = vec![t(0.0, 10.0, "x"), t(20.0, 21.0, "y")];
        let e = diarization_error(&reference, &hyp, 1.0, false);
        assert_errors(e, 0.0, 1.0, 0.0, 9.0);
        // A boundary between two turns of one speaker gets its collar too (as in pyannote).
        let split = vec![t(0.0, 5.0, "A"), t(5.0, 10.0, "A")];
        let e = diarization_error(&split, &[t(0.0, 10.0, "x")], 1.0, false);
        assert_errors(e, 0.0, 0.0, 0.0, 8.0);
    }

    #[test]
    fn der_adds_up_over_files() {
        let a = diarization_error(&two_speakers(), &[], 0.0, false);
        let b = diarization_error(&two_speakers(), &two_speakers(), 0.0, false);
        let sum: DiarizationErrors = [a, b].into_iter().sum();
        assert!(close(sum.der(), 0.5));
    }

    #[test]
    fn hungarian_finds_the_optimum() {
        // Greedy would take 9 (row 0 → col 0) and then 1: 10; the optimum is 8 + 7 = 15.
        let co = vec![vec![9.0, 8.0], vec![7.0, 1.0]];
        assert_eq!(best_mapping(&co, 2), vec![Some(1), Some(0)]);
        // More hypothesis speakers than reference ones, and the other way round.
        let co = vec![vec![0.0, 1.0, 5.0]];
        assert_eq!(best_mapping(&co, 3), vec![Some(2)]);
        let co = vec![vec![1.0], vec![3.0], vec![2.0]];
        assert_eq!(best_mapping(&co, 1), vec![None, Some(0), None]);
    }

    /// The eval set's reference, where it exists (not on users' machines).
    #[test]
    fn falcon_reference() {
        let path = "/work/shared/eval/diarization/picovoice_falcon_test.rttm";
        let Ok(text) = std::fs::read_to_string(path) else {
            return;
        };
        let reference = parse_rttm(&text).unwrap();
        // speaker1 1.7–3.9, speaker2 6.2–11.1, speaker3 12.8–18.0: 2.2 + 4.9 + 5.2 = 12.3 s.
        assert_eq!(reference.len(), 3);
        let e = diarization_error(&reference, &reference, 0.0, false);
        assert_errors(e, 0.0, 0.0, 0.0, 12.3);
        assert_eq!(
            diarization_error(&reference, &reference, 0.25, true).der(),
            0.0
        );

        // One speaker on exactly the reference's speech: mapped to speaker3 (the longest), the
        // other two confused: 7.1 / 12.3.
        let one: Vec<Turn> = reference.iter().map(|r| t(r.start, r.end, "S")).collect();
        let e = diarization_error(&reference, &one, 0.0, false);
        assert_errors(e, 0.0, 0.0, 7.1, 12.3);
        assert!((e.der() - 0.577_235_8).abs() < 1e-6);
        // With a 0.25 s collar each turn loses 2 × 0.125 s: 1.95 + 4.65 + 4.95 = 11.55 scored,
        // 1.95 + 4.65 = 6.6 confused.
        let e = diarization_error(&reference, &one, 0.25, false);
        assert_errors(e, 0.0, 0.0, 6.6, 11.55);
        // One speaker for the whole 18.6 s file: also 18.6 − 12.3 = 6.3 s of false alarm.
        let e = diarization_error(&reference, &[t(0.0, 18.6, "S")], 0.0, false);
        assert_errors(e, 0.0, 6.3, 7.1, 12.3);
        assert!((e.der() - 13.4 / 12.3).abs() < 1e-9);
    }

    // ----- Eigen-decomposition -----

    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn uniform(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn gaussian(&mut self) -> f64 {
            let u1 = self.uniform().max(1e-300);
            let u2 = self.uniform();
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
        fn unit(&mut self, dim: usize) -> Vec<f64> {
            normalized(&(0..dim).map(|_| self.gaussian()).collect::<Vec<f64>>())
        }
    }

    #[test]
    fn symmetric_eigen_decomposes() {
        let mut rng = SplitMix(7);
        for n in [1, 2, 5, 40] {
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in i..n {
                    let x = rng.gaussian();
                    a[i * n + j] = x;
                    a[j * n + i] = x;
                }
            }
            let (values, vectors) = symmetric_eigen(a.clone(), n, true);
            let (only, _) = symmetric_eigen(a.clone(), n, false);
            assert!(values.windows(2).all(|w| w[0] <= w[1]));
            for (x, y) in values.iter().zip(&only) {
                assert!((x - y).abs() < 1e-9);
            }
            for c in 0..n {
                for r in 0..n {
                    let av: f64 = (0..n).map(|k| a[r * n + k] * vectors[k * n + c]).sum();
                    assert!((av - values[c] * vectors[r * n + c]).abs() < 1e-9, "n {n}");
                }
                let norm: f64 = (0..n).map(|r| vectors[r * n + c].powi(2)).sum();
                assert!((norm - 1.0).abs() < 1e-9);
            }
        }
        // A diagonal matrix and one with a repeated eigenvalue.
        let (values, _) =
            symmetric_eigen(vec![3.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 2.0], 3, true);
        assert_eq!(values, vec![1.0, 2.0, 3.0]);
        let (values, _) = symmetric_eigen(vec![1.0; 9], 3, false);
        assert!(
            values[0].abs() < 1e-12 && values[1].abs() < 1e-12 && (values[2] - 3.0).abs() < 1e-12
        );
    }

    // ----- Clustering -----

    /// GE2E-like embeddings: non-negative-ish, so speakers share a common direction (centres
    /// ~0.5 apart in cosine), with noise giving ~0.8 similarity within a speaker. `sizes[s]`
    /// windows of speaker `s`, in turns of `turn` windows.
    fn synthetic(
        seed: u64,
        sizes: &[usize],
        turn: usize,
        noise: f64,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let dim = 256;
        let mut rng = SplitMix(seed);
        let common = rng.unit(dim);
        let centres: Vec<Vec<f64>> = sizes
            .iter()
            .map(|_| {
                let u = rng.unit(dim);
                normalized(
                    &common
                        .iter()
                        .zip(&u)
                        .map(|(c, x)| 0.7 * c + 0.7 * x)
                        .collect::<Vec<f64>>(),
                )
            })
            .collect();
        let mut left = sizes.to_vec();
        let mut truth = Vec::new();
        let mut s = 0;
        while left.iter().any(|&l| l > 0) {
            if left[s] > 0 {
                let take = turn.min(left[s]);
                truth.extend(std::iter::repeat_n(s, take));
                left[s] -= take;
            }
            s = (s + 1) % sizes.len();
        }
        let embeddings = truth
            .iter()
            .map(|&s| {
                let g = rng.unit(dim);
                let v: Vec<f64> = centres[s]
                    .iter()
                    .zip(&g)
                    .map(|(c, x)| c + noise * x)
                    .collect();
                normalized(&v).into_iter().map(|x| x as f32).collect()
            })
            .collect();
        (embeddings, truth)
    }

    /// Whether `labels` equal `truth` up to a renaming, with at most `errors` windows off.
    fn same_partition(labels: &[usize], truth: &[usize], errors: usize) -> bool {
        let k = truth.iter().max().unwrap() + 1;
        let l = labels.iter().max().unwrap() + 1;
        if k != l {
            return false;
        }
        let mut co = vec![vec![0.0; l]; k];
        for (&t, &x) in truth.iter().zip(labels) {
            co[t][x] += 1.0;
        }
        let mapping = best_mapping(&co, l);
        let correct: f64 = (0..k).filter_map(|t| mapping[t].map(|x| co[t][x])).sum();
        truth.len() - correct as usize <= errors
    }

    #[test]
    fn clusters_one_to_four_speakers() {
        let options = ClusterOptions::default();
        for (seed, sizes) in [
            (1, vec![60]),
            (2, vec![40, 40]),
            (3, vec![30, 30, 30]),
            (4, vec![30, 30, 30, 30]),
            (5, vec![25, 50, 20]),
        ] {
            let (embeddings, truth) = synthetic(seed, &sizes, 6, 0.5);
            let labels = cluster(&embeddings, &options);
            assert_eq!(labels[0], 0, "labels by first appearance");
            let found = labels.iter().max().unwrap() + 1;
            assert_eq!(found, sizes.len(), "sizes {sizes:?}");
            assert!(
                same_partition(&labels, &truth, 0),
                "sizes {sizes:?}: {labels:?}"
            );
            // Deterministic.
            assert_eq!(cluster(&embeddings, &options), labels);
        }
    }

    #[test]
    fn clusters_imbalanced_two_speakers() {
        // An agent who only greets and closes: 10 % of the windows.
        for seed in [11, 12, 13] {
            let (embeddings, truth) = synthetic(seed, &[90, 10], 15, 0.5);
            let labels = cluster(&embeddings, &ClusterOptions::default());
            assert!(
                same_partition(&labels, &truth, 0),
                "seed {seed}: {labels:?}"
            );
        }
    }

    #[test]
    fn clusters_noisier_one_speaker_as_one() {
        for seed in [21, 22] {
            let (embeddings, _) = synthetic(seed, &[80], 80, 0.8);
            let labels = cluster(&embeddings, &ClusterOptions::default());
            assert!(labels.iter().all(|&l| l == 0), "seed {seed}: {labels:?}");
        }
    }

    #[test]
    fn cluster_long_call_timing() {
        // 20 minutes of windows (0.75 s hop): 500 clustered spectrally, the rest by centroid.
        let (embeddings, truth) = synthetic(41, &[900, 700], 12, 0.5);
        let start = std::time::Instant::now();
        let labels = cluster(&embeddings, &ClusterOptions::default());
        eprintln!("1600 windows clustered in {:?}", start.elapsed());
        assert!(same_partition(&labels, &truth, 0));
    }

    #[test]
    fn cluster_bounds_and_subsampling() {
        assert!(cluster(&[], &ClusterOptions::default()).is_empty());
        let (embeddings, truth) = synthetic(31, &[2], 1, 0.5);
        assert_eq!(cluster(&embeddings, &ClusterOptions::default()), vec![0, 0]);
        assert_eq!(truth.len(), 2);
        // Three speakers, but at most two allowed.
        let (embeddings, _) = synthetic(32, &[30, 30, 30], 6, 0.5);
        let two = ClusterOptions {
            max_speakers: 2,
            ..ClusterOptions::default()
        };
        assert_eq!(cluster(&embeddings, &two).iter().max(), Some(&1));
        // One speaker, but two required.
        let (embeddings, _) = synthetic(33, &[40], 40, 0.5);
        let at_least_two = ClusterOptions {
            min_speakers: 2,
            ..ClusterOptions::default()
        };
        assert_eq!(cluster(&embeddings, &at_least_two).iter().max(), Some(&1));
        // More windows than `max_points`: the rest follow the nearest centroid.
        let (embeddings, truth) = synthetic(34, &[150, 100], 10, 0.5);
        let few = ClusterOptions {
            max_points: 60,
            ..ClusterOptions::default()
        };
        let labels = cluster(&embeddings, &few);
        assert!(same_partition(&labels, &truth, 0), "{labels:?}");
    }

    // ----- Turns -----

    #[test]
    fn turns_follow_nearest_window_centre() {
        // Windows 1.5 s, hop 0.75 s: centres 0.75, 1.5, 2.25, 3.0, 3.75.
        let windows: Vec<(f64, f64)> = (0..5)
            .map(|i| (0.75 * i as f64, 0.75 * i as f64 + 1.5))
            .collect();
        let labels = [0, 0, 1, 1, 0];
        let got = turns(&windows, &labels, &[(0.0, 4.5)]);
        // Changes halfway between centres: 1.875 and 3.375.
        assert_eq!(
            got,
            vec![
                t(0.0, 1.875, "SPEAKER_00"),
                t(1.875, 3.375, "SPEAKER_01"),
                t(3.375, 4.5, "SPEAKER_00"),
            ]
        );
        // Silence between VAD regions stays silence, even within one label.
        let got = turns(&windows, &[0; 5], &[(0.2, 1.0), (2.0, 2.5), (1.0, 1.2)]);
        assert_eq!(
            got,
            vec![t(0.2, 1.2, "SPEAKER_00"), t(2.0, 2.5, "SPEAKER_00")]
        );
        // Unsorted windows are fine; no windows or no speech give no turns.
        let got = turns(&[(2.0, 3.0), (0.0, 1.0)], &[1, 0], &[(0.0, 3.0)]);
        assert_eq!(
            got,
            vec![t(0.0, 1.5, "SPEAKER_00"), t(1.5, 3.0, "SPEAKER_01")]
        );
        assert!(turns(&[], &[], &[(0.0, 1.0)]).is_empty());
        assert!(turns(&windows, &labels, &[]).is_empty());
    }

    #[test]
    fn windows_slide_within_regions() {
        let r = |start, end| SpeechRegion { start, end };
        // 10-sample windows, hop at most 5, from the region's start to its end: a 22-sample
        // region gets 4 windows, 4 apart.
        assert_eq!(
            window_ranges(100, &[r(0, 22)], 10, 5),
            vec![0..10, 4..14, 8..18, 12..22]
        );
        // An exact fit keeps the hop.
        assert_eq!(
            window_ranges(100, &[r(30, 50)], 10, 5),
            vec![30..40, 35..45, 40..50]
        );
        // Short regions: one window centred on them, clamped to the recording.
        assert_eq!(window_ranges(100, &[r(40, 44)], 10, 5), vec![37..47]);
        assert_eq!(window_ranges(100, &[r(0, 4)], 10, 5), vec![0..10]);
        assert_eq!(window_ranges(100, &[r(97, 100)], 10, 5), vec![90..100]);
        assert_eq!(window_ranges(6, &[r(1, 5)], 10, 5), vec![0..6]);
        // Empty regions, regions past the end, none at all: no windows. Two short regions
        // whose windows coincide give it once; windows come out sorted.
        assert!(window_ranges(100, &[r(5, 5), r(120, 130)], 10, 5).is_empty());
        assert!(window_ranges(100, &[], 10, 5).is_empty());
        assert_eq!(window_ranges(10, &[r(1, 2), r(8, 9)], 10, 5), vec![0..10]);
        assert_eq!(
            window_ranges(100, &[r(60, 62), r(0, 3)], 10, 5),
            vec![0..10, 56..66]
        );
    }

    #[test]
    fn merge_similar_joins_close_centroids() {
        let e = |x: f32, y: f32| vec![x, y];
        // Clusters 0 and 2 point the same way, 1 elsewhere.
        let embeddings = vec![e(1.0, 0.0), e(0.0, 1.0), e(0.99, 0.1), e(1.0, 0.05)];
        let labels = [0, 1, 2, 2];
        assert_eq!(
            merge_similar(&embeddings, &labels, 0.9, 1),
            vec![0, 1, 0, 0]
        );
        // Nothing close enough, or no fewer than `min_speakers` allowed.
        assert_eq!(
            merge_similar(&embeddings, &labels, 0.9999, 1),
            vec![0, 1, 2, 2]
        );
        assert_eq!(
            merge_similar(&embeddings, &labels, 0.9, 3),
            vec![0, 1, 2, 2]
        );
        // Down to one at a threshold everything passes.
        assert_eq!(merge_similar(&embeddings, &labels, -1.0, 1), vec![0; 4]);
        assert!(merge_similar(&[], &[], 0.5, 1).is_empty());
    }

    #[test]
    fn speaker_for_takes_the_longest_overlap() {
        let turns = vec![
            t(0.0, 2.0, "A"),
            t(2.0, 3.0, "B"),
            t(3.0, 4.0, "A"),
            t(4.0, 6.5, "B"),
        ];
        assert_eq!(speaker_for((1.5, 3.5), &turns).as_deref(), Some("A"));
        assert_eq!(speaker_for((2.0, 5.0), &turns).as_deref(), Some("B"));
        // A tie goes to the speaker whose turn comes first.
        assert_eq!(speaker_for((1.5, 2.5), &turns).as_deref(), Some("A"));
        assert_eq!(speaker_for((7.0, 8.0), &turns), None);
    }
}
