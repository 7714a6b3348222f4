//! Spectral clustering of speaker embeddings with the normalized maximum eigengap (NME-SC).
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
//! Eigen-decomposition is [`super::eigen`]'s, O(n³), so at most [`ClusterOptions::max_points`]
//! embeddings (default 500) are clustered spectrally; beyond that, that many evenly spaced in
//! time are, and every other one takes the label of the nearest cluster centroid (cosine).
//! Labels are numbered in order of first appearance. (The text above speaks of windows: NME-SC
//! was first used here on GE2E embeddings of sliding windows; the pipeline now clusters one
//! embedding per segmentation chunk and local speaker.)

use super::eigen::symmetric_eigen;
use super::vectors::{dot, first_appearance, normalized};

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
    let sample_labels = spectral(&points, min_k, max_k, options);

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

/// NME-SC on unit vectors `points` (at least 3).
fn spectral(points: &[&[f64]], min_k: usize, max_k: usize, options: &ClusterOptions) -> Vec<usize> {
    let m = points.len();
    // Each row's other points, most similar first (ties: lower index first).
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
            others.sort_by(|&a, &b| similarity[i * m + b].total_cmp(&similarity[i * m + a]));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diarize::der::best_mapping;
    use crate::diarize::test_rng::SplitMix;

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
}
