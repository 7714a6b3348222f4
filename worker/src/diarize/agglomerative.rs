//! Agglomerative clustering of speaker embeddings (average linkage on cosine distance), with the
//! speaker count chosen from the merge distances and bounded by what the call is expected to
//! hold.
//!
//! [`Dendrogram::build`] merges, again and again, the two clusters whose members are least
//! distant on average (`1 − cosine`; UPGMA, so merge distances never decrease). Each point
//! carries a weight (seconds of clean speech behind it); a cluster whose weight reaches
//! `min_speaker_weight` is *large*: a speaker. Small clusters (a cough, a few words the
//! segmentation gave an extra local speaker) are not counted as speakers; [`Dendrogram::labels`]
//! hands their points to the nearest large cluster.
//!
//! [`choose_speaker_count`] reads the count off the dendrogram: the large clusters left after
//! every merge closer than a threshold. With an expected count (a phone call: two parties) that
//! count is kept unless the merge distances clearly say otherwise: more speakers only where they
//! are apart by `split_threshold` (a transfer to a supervisor), fewer only where even
//! `join_threshold`, a smaller distance, joins them (a one-sided recording).

use super::vectors::{dot, normalized};

/// The history of average-linkage merges over a set of weighted points.
#[derive(Debug, Clone)]
pub struct Dendrogram {
    points: Vec<Vec<f64>>,
    weights: Vec<f64>,
    /// `(a, b, distance)`: cluster `b` joined into cluster `a` (clusters named by their
    /// smallest point index), in order.
    merges: Vec<(usize, usize, f64)>,
    min_speaker_weight: f64,
}

impl Dendrogram {
    /// Merges all `embeddings` (any length, normalized here) into one cluster, remembering each
    /// step. O(n²) memory, O(n³) time in the worst case: keep n to a few hundred.
    ///
    /// # Panics
    ///
    /// If `weights` and `embeddings` differ in length.
    pub fn build(embeddings: &[Vec<f32>], weights: &[f64], min_speaker_weight: f64) -> Self {
        assert_eq!(embeddings.len(), weights.len(), "one weight per embedding");
        let points: Vec<Vec<f64>> = embeddings.iter().map(|e| normalized(e)).collect();
        let n = points.len();
        // Average distance between clusters, kept for live clusters only.
        let mut distance = vec![0.0f64; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let d = 1.0 - dot(&points[i], &points[j]);
                distance[i * n + j] = d;
                distance[j * n + i] = d;
            }
        }
        let mut size = vec![1usize; n];
        let mut alive = vec![true; n];
        let mut merges = Vec::with_capacity(n.saturating_sub(1));
        for _ in 1..n {
            let mut best: Option<(usize, usize, f64)> = None;
            for i in (0..n).filter(|&i| alive[i]) {
                for j in (i + 1..n).filter(|&j| alive[j]) {
                    let d = distance[i * n + j];
                    if best.is_none_or(|(_, _, b)| d < b) {
                        best = Some((i, j, d));
                    }
                }
            }
            let Some((a, b, d)) = best else { break };
            for k in (0..n).filter(|&k| alive[k] && k != a && k != b) {
                let joined = (distance[a * n + k] * size[a] as f64
                    + distance[b * n + k] * size[b] as f64)
                    / (size[a] + size[b]) as f64;
                distance[a * n + k] = joined;
                distance[k * n + a] = joined;
            }
            size[a] += size[b];
            alive[b] = false;
            merges.push((a, b, d));
        }
        Dendrogram {
            points,
            weights: weights.to_vec(),
            merges,
            min_speaker_weight,
        }
    }

    /// Points in the dendrogram.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The distance of each merge, in order (non-decreasing).
    pub fn merge_distances(&self) -> Vec<f64> {
        self.merges.iter().map(|&(_, _, d)| d).collect()
    }

    /// Large clusters after each number of merges `0..=merges` (at least 1 when there are
    /// points: a recording whose every cluster is small still has a speaker).
    fn large_counts(&self) -> Vec<usize> {
        let is_large = |w: f64| i64::from(w >= self.min_speaker_weight);
        let mut weight = self.weights.clone();
        let mut large: i64 = weight.iter().map(|&w| is_large(w)).sum();
        let floor = i64::from(!self.is_empty());
        let mut counts = vec![large.max(floor) as usize];
        for &(a, b, _) in &self.merges {
            large -= is_large(weight[a]) + is_large(weight[b]);
            weight[a] += weight[b];
            weight[b] = 0.0;
            large += is_large(weight[a]);
            counts.push(large.max(floor) as usize);
        }
        counts
    }

    /// Each point's cluster (its smallest member) and each cluster's weight after `applied`
    /// merges.
    fn replay(&self, applied: usize) -> (Vec<usize>, Vec<f64>) {
        let mut roots: Vec<usize> = (0..self.len()).collect();
        let mut weight = self.weights.clone();
        for &(a, b, _) in &self.merges[..applied.min(self.merges.len())] {
            for r in roots.iter_mut() {
                if *r == b {
                    *r = a;
                }
            }
            weight[a] += weight[b];
            weight[b] = 0.0;
        }
        (roots, weight)
    }

    /// Speakers (large clusters) once every merge at most `threshold` apart is done.
    pub fn speakers_at(&self, threshold: f64) -> usize {
        let applied = self.merges.iter().take_while(|m| m.2 <= threshold).count();
        self.large_counts()[applied]
    }

    /// A label per point for `speakers` speakers: the dendrogram cut where it last has at least
    /// that many large clusters (the closest large clusters joined if the cut has more), every
    /// point of a small cluster given to the large cluster with the most similar centroid.
    /// Labels are numbered 0.. in order of the points.
    pub fn labels(&self, speakers: usize) -> Vec<usize> {
        let n = self.len();
        if n == 0 {
            return Vec::new();
        }
        let speakers = speakers.max(1);
        let counts = self.large_counts();
        let applied = (0..counts.len())
            .rev()
            .find(|&m| counts[m] >= speakers)
            .unwrap_or(0);
        let (roots, weight) = self.replay(applied);
        let mut large: Vec<usize> = (0..n)
            .filter(|&i| roots[i] == i && weight[i] >= self.min_speaker_weight)
            .collect();
        if large.is_empty() {
            // Every cluster is small: the heaviest one stands for the speaker.
            large.push(
                (0..n)
                    .filter(|&i| roots[i] == i)
                    .max_by(|&a, &b| weight[a].total_cmp(&weight[b]))
                    .unwrap_or(0),
            );
        }
        // Each large cluster's members: itself and, for now, its own points.
        let mut groups: Vec<Vec<usize>> = large
            .iter()
            .map(|&root| (0..n).filter(|&i| roots[i] == root).collect())
            .collect();
        while groups.len() > speakers {
            let centroids: Vec<Vec<f64>> = groups.iter().map(|g| self.centroid(g)).collect();
            let mut best = (0, 1, f64::NEG_INFINITY);
            for a in 0..groups.len() {
                for b in a + 1..groups.len() {
                    let s = dot(&centroids[a], &centroids[b]);
                    if s > best.2 {
                        best = (a, b, s);
                    }
                }
            }
            let moved = groups.remove(best.1);
            groups[best.0].extend(moved);
        }
        let mut labels = vec![usize::MAX; n];
        for (label, group) in groups.iter().enumerate() {
            for &i in group {
                labels[i] = label;
            }
        }
        let centroids: Vec<Vec<f64>> = groups.iter().map(|g| self.centroid(g)).collect();
        for (i, label) in labels.iter_mut().enumerate() {
            if *label == usize::MAX {
                *label = nearest(&self.points[i], &centroids);
            }
        }
        super::vectors::first_appearance(&labels)
    }

    /// The unit mean of the points `members`.
    fn centroid(&self, members: &[usize]) -> Vec<f64> {
        let mut sum = vec![0.0f64; self.points.first().map_or(0, Vec::len)];
        for &i in members {
            for (s, x) in sum.iter_mut().zip(&self.points[i]) {
                *s += x;
            }
        }
        normalized(&sum)
    }
}

/// The index of the centroid most similar (cosine) to the unit vector `point`.
pub(crate) fn nearest(point: &[f64], centroids: &[Vec<f64>]) -> usize {
    (0..centroids.len())
        .max_by(|&a, &b| dot(point, &centroids[a]).total_cmp(&dot(point, &centroids[b])))
        .unwrap_or(0)
}

/// How many speakers a recording holds, and what it may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeakerCount {
    /// The count expected (2 on a phone call), kept unless the distances clearly say
    /// otherwise; `None`: the threshold alone decides.
    pub expected: Option<usize>,
    /// Fewest speakers reported (1).
    pub min: usize,
    /// Most speakers reported.
    pub max: usize,
}

/// Cosine-distance thresholds of [`choose_speaker_count`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountThresholds {
    /// Without an expected count: clusters closer than this are one speaker.
    pub threshold: f64,
    /// With one: a speaker beyond the expected count must be at least this far from the others.
    pub split_threshold: f64,
    /// With one: fewer speakers than expected only where clusters are closer than this.
    pub join_threshold: f64,
}

/// The number of speakers in `dendrogram` (see the module documentation), within
/// `count.min..=count.max`. No points: 0.
pub fn choose_speaker_count(
    dendrogram: &Dendrogram,
    count: &SpeakerCount,
    thresholds: &CountThresholds,
) -> usize {
    if dendrogram.is_empty() {
        return 0;
    }
    let found = match count.expected {
        None => dendrogram.speakers_at(thresholds.threshold),
        Some(expected) => {
            let more = dendrogram.speakers_at(thresholds.split_threshold);
            let fewer = dendrogram.speakers_at(thresholds.join_threshold);
            if more > expected {
                more
            } else if fewer < expected {
                fewer
            } else {
                expected
            }
        }
    };
    let max = count.max.max(1);
    found.clamp(count.min.clamp(1, max), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diarize::test_rng::SplitMix;

    /// `sizes[s]` points around speaker `s`'s direction (speakers ~0.4 apart in cosine), each
    /// with weight 1.
    fn speakers(seed: u64, sizes: &[usize], noise: f64) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = SplitMix(seed);
        let dim = 64;
        let common = rng.unit(dim);
        let centres: Vec<Vec<f64>> = sizes
            .iter()
            .map(|_| {
                let own = rng.unit(dim);
                normalized(
                    &common
                        .iter()
                        .zip(&own)
                        .map(|(c, o)| 0.6 * c + o)
                        .collect::<Vec<f64>>(),
                )
            })
            .collect();
        let mut points = Vec::new();
        let mut truth = Vec::new();
        for (s, &size) in sizes.iter().enumerate() {
            for _ in 0..size {
                let jitter = rng.unit(dim);
                points.push(
                    centres[s]
                        .iter()
                        .zip(&jitter)
                        .map(|(c, j)| (c + noise * j) as f32)
                        .collect(),
                );
                truth.push(s);
            }
        }
        (points, truth)
    }

    const THRESHOLDS: CountThresholds = CountThresholds {
        threshold: 0.35,
        split_threshold: 0.5,
        join_threshold: 0.15,
    };

    #[test]
    fn merge_distances_never_decrease_and_labels_recover_speakers() {
        for (seed, sizes) in [(1, vec![10]), (2, vec![12, 8]), (3, vec![6, 9, 7])] {
            let (points, truth) = speakers(seed, &sizes, 0.3);
            let dendrogram = Dendrogram::build(&points, &vec![1.0; points.len()], 2.0);
            let distances = dendrogram.merge_distances();
            assert_eq!(distances.len(), points.len() - 1);
            assert!(distances.windows(2).all(|w| w[0] <= w[1] + 1e-12));
            let free = SpeakerCount {
                expected: None,
                min: 1,
                max: 8,
            };
            let k = choose_speaker_count(&dendrogram, &free, &THRESHOLDS);
            assert_eq!(k, sizes.len(), "sizes {sizes:?}, distances {distances:?}");
            let labels = dendrogram.labels(k);
            // Same partition as the truth, labels by first appearance.
            for (i, j) in (0..truth.len()).flat_map(|i| (0..truth.len()).map(move |j| (i, j))) {
                assert_eq!(labels[i] == labels[j], truth[i] == truth[j], "{labels:?}");
            }
            assert_eq!(labels[0], 0);
        }
    }

    #[test]
    fn the_expected_count_holds_unless_the_distances_clearly_disagree() {
        let phone = SpeakerCount {
            expected: Some(2),
            min: 1,
            max: 4,
        };
        // Two speakers: two.
        let (points, _) = speakers(4, &[10, 10], 0.3);
        let d = Dendrogram::build(&points, &[1.0; 20], 2.0);
        assert_eq!(choose_speaker_count(&d, &phone, &THRESHOLDS), 2);
        // Three clearly apart (a transfer): three.
        let (points, _) = speakers(5, &[10, 10, 8], 0.3);
        let d = Dendrogram::build(&points, &vec![1.0; 28], 2.0);
        assert_eq!(choose_speaker_count(&d, &phone, &THRESHOLDS), 3);
        // One voice only, tightly clustered: one, not a made-up second.
        let (points, _) = speakers(6, &[20], 0.1);
        let d = Dendrogram::build(&points, &[1.0; 20], 2.0);
        assert_eq!(choose_speaker_count(&d, &phone, &THRESHOLDS), 1);
        // Hard bounds win.
        let exactly_two = SpeakerCount {
            expected: Some(2),
            min: 2,
            max: 2,
        };
        assert_eq!(choose_speaker_count(&d, &exactly_two, &THRESHOLDS), 2);
        assert_eq!(d.labels(2).iter().max(), Some(&1));
        assert_eq!(
            choose_speaker_count(&Dendrogram::build(&[], &[], 1.0), &phone, &THRESHOLDS),
            0
        );
    }

    #[test]
    fn small_clusters_are_not_speakers_and_join_the_nearest() {
        // 12 points of one speaker, 1 point of another with little weight: one speaker.
        let (points, _) = speakers(7, &[12, 1], 0.2);
        let mut weights = vec![1.0; 12];
        weights.push(0.5);
        let d = Dendrogram::build(&points, &weights, 2.0);
        assert_eq!(d.speakers_at(THRESHOLDS.threshold), 1);
        assert_eq!(d.labels(1), vec![0; 13]);
        // With weight enough, it is a speaker of its own.
        weights[12] = 3.0;
        let d = Dendrogram::build(&points, &weights, 2.0);
        assert_eq!(d.speakers_at(THRESHOLDS.threshold), 2);
        assert_eq!(d.labels(2)[12], 1);
    }
}
