//! The diarization error rate.
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

use std::collections::HashMap;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use super::Turn;

/// Seconds of each kind of diarization error, and of reference speech (per speaker: two
/// speakers talking for 1 s count 2 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
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
pub(crate) fn best_mapping(cooccurrence: &[Vec<f64>], n_hyp: usize) -> Vec<Option<usize>> {
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
pub(crate) fn hungarian(cost: &[Vec<f64>]) -> Vec<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diarize::parse_rttm;

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
}
