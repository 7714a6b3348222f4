//! The mono diarization pipeline: segmentation in sliding chunks, one speaker embedding per
//! chunk and local speaker, clustering bounded by the expected speaker count, and frame-level
//! assignment with overlaps kept.
//!
//! 1. **Segmentation** ([`crate::segmentation`], pyannote segmentation-3.0) over 10 s chunks
//!    every [`DiarizeOptions::step_seconds`] (a whole number of 270-sample frames, so every
//!    chunk's frames fall on one global frame grid): per 17 ms frame, which of up to three
//!    *local* speakers talk, overlaps included. Chunks without any speech region are skipped.
//! 2. **Embeddings**: for each (chunk, local speaker) the samples of the frames where that
//!    speaker talks *alone* (overlap would mix two voices into one embedding), joined; at least
//!    [`DiarizeOptions::min_clean_seconds`] of them make an embedding that is clustered. A local
//!    speaker with less clean speech but at least [`DiarizeOptions::min_assign_seconds`] of
//!    speech is embedded from all its frames and only assigned to a cluster afterwards.
//!    Embeddings come from a [`SpeakerEmbedder`]: resemblyzer's GE2E encoder
//!    ([`crate::speaker::SpeakerEncoder`]) or any other that maps 16 kHz clips to vectors.
//! 3. **Clustering** ([`super::agglomerative`]): average-linkage on cosine distance, each
//!    embedding weighted by its clean seconds; the speaker count from the merge distances,
//!    bounded by [`SpeakerCount`] (a phone call: two expected, a third only when clearly apart).
//!    [`Clustering::Spectral`] uses NME-SC ([`super::spectral`]) instead, for comparison.
//! 4. **Assignment**: in each chunk, its local speakers get distinct clusters (the Hungarian
//!    algorithm on centroid similarity; a chunk with more local speakers than clusters gives
//!    the rest their most similar cluster).
//! 5. **Reconstruction** (as pyannote's): per global frame, the number of speakers is the
//!    rounded mean over the chunks covering it of their active local speakers, and that many
//!    clusters with the most support (chunks in which a local speaker of that cluster is
//!    active) are active: overlapped speech keeps both speakers.
//! 6. **Turns** ([`super::turns::frame_turns`]): runs of active frames, short gaps within a
//!    speaker filled; speakers renumbered in order of first appearance.

use super::agglomerative::{choose_speaker_count, nearest, CountThresholds, Dendrogram};
use super::der::hungarian;
use super::spectral::{cluster, ClusterOptions};
use super::turns::frame_turns;
use super::vectors::{dot, normalized};
use super::Turn;
use crate::segmentation::{
    active_speakers, Segmentation, SegmentationError, CHUNK_SAMPLES, FRAMES_PER_CHUNK,
    FRAME_SAMPLES, FRAME_STEP_SAMPLES, LOCAL_SPEAKERS, SAMPLE_RATE,
};
use crate::speaker::{SpeakerEncoder, SpeakerError};
use crate::vad::SpeechRegion;

pub use super::agglomerative::SpeakerCount;

/// Why an embedder failed.
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// Speaker embeddings of 16 kHz mono clips, one vector per clip (all of one length). What the
/// pipeline needs of a speaker model.
pub trait SpeakerEmbedder: Send + Sync {
    fn embed(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

impl SpeakerEmbedder for SpeakerEncoder {
    fn embed(&self, clips: &[&[f32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_windows(clips)
            .map_err(|e: SpeakerError| Box::new(e) as EmbedError)
    }
}

/// Why a channel could not be diarized.
#[derive(Debug, thiserror::Error)]
pub enum DiarizeError {
    #[error(transparent)]
    Segmentation(#[from] SegmentationError),
    #[error("speaker embeddings: {0}")]
    Embedding(EmbedError),
}

/// How the (chunk, speaker) embeddings are clustered.
#[derive(Debug, Clone, PartialEq)]
pub enum Clustering {
    /// Average linkage with the count from the merge distances ([`super::agglomerative`]).
    Agglomerative(CountThresholds),
    /// NME-SC ([`super::spectral`]): the count from the eigengap, no threshold.
    Spectral,
}

/// Settings of [`diarize_channel`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiarizeOptions {
    /// Seconds between the starts of two 10 s segmentation chunks.
    pub step_seconds: f64,
    /// How many speakers to find.
    pub speakers: SpeakerCount,
    pub clustering: Clustering,
    /// Clean (non-overlapped) speech of a local speaker in a chunk needed for an embedding that
    /// takes part in the clustering.
    pub min_clean_seconds: f64,
    /// Speech of a local speaker in a chunk needed for it to be assigned to a speaker at all.
    pub min_assign_seconds: f64,
    /// Clean speech (summed over its embeddings) a cluster needs to count as a speaker.
    pub min_speaker_seconds: f64,
    /// Gaps within one speaker's speech up to this long are filled.
    pub fill_gap_seconds: f64,
    /// Most embeddings clustered (the ones with the most clean speech); the rest are assigned
    /// to the nearest cluster.
    pub max_clustered: usize,
}

impl Default for DiarizeOptions {
    fn default() -> Self {
        Self {
            step_seconds: 2.5,
            speakers: SpeakerCount {
                expected: Some(2),
                min: 1,
                max: 6,
            },
            clustering: Clustering::Agglomerative(CountThresholds {
                threshold: 0.35,
                split_threshold: 0.4,
                join_threshold: 0.15,
            }),
            min_clean_seconds: 1.0,
            min_assign_seconds: 0.2,
            min_speaker_seconds: 1.0,
            fill_gap_seconds: 0.5,
            max_clustered: 400,
        }
    }
}

/// One local speaker of one chunk with enough speech to be placed.
struct LocalSpeaker {
    chunk: usize,
    local: usize,
    /// Seconds of speech where it talks alone.
    clean_seconds: f64,
    embedding: Vec<f64>,
}

/// Speaker turns of one channel of 16 kHz `samples` (a mono call, or a stereo channel holding
/// more than one voice); see the module documentation. `regions` (speech found by
/// [`crate::vad::speech_regions`]) only decide which chunks are worth segmenting: the turns
/// follow the segmentation model's own speech detection. Speakers are `SPEAKER_00`,
/// `SPEAKER_01`, … in order of first appearance, turns sorted by start, overlaps kept. No
/// regions give no turns.
pub fn diarize_channel(
    segmentation: &Segmentation,
    embedder: &dyn SpeakerEmbedder,
    samples: &[f32],
    regions: &[SpeechRegion],
    options: &DiarizeOptions,
) -> Result<Vec<Turn>, DiarizeError> {
    let step_frames = ((options.step_seconds * SAMPLE_RATE as f64 / FRAME_STEP_SAMPLES as f64)
        .round() as usize)
        .clamp(1, FRAMES_PER_CHUNK);
    let step = step_frames * FRAME_STEP_SAMPLES;
    let mut starts = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + CHUNK_SAMPLES).min(samples.len());
        if regions
            .iter()
            .any(|r| r.start < end && r.end > start && r.end > r.start)
        {
            starts.push(start);
        }
        if start + CHUNK_SAMPLES >= samples.len() {
            break;
        }
        start += step;
    }
    if starts.is_empty() {
        return Ok(Vec::new());
    }
    let clips: Vec<&[f32]> = starts
        .iter()
        .map(|&s| &samples[s..(s + CHUNK_SAMPLES).min(samples.len())])
        .collect();
    let activity: Vec<Vec<[bool; LOCAL_SPEAKERS]>> = segmentation
        .log_probs(&clips)?
        .iter()
        .map(|chunk| active_speakers(chunk))
        .collect();

    let speakers = embed_local_speakers(embedder, samples, &starts, &activity, options)?;
    let labels = cluster_local_speakers(&speakers, options);
    let clusters = labels.iter().max().map_or(0, |&l| l + 1);
    if clusters == 0 {
        return Ok(Vec::new());
    }

    // Global frames: frame g of the recording is frame g − start / 270 of a chunk.
    let frames = samples.len().div_ceil(FRAME_STEP_SAMPLES);
    let mut support = vec![vec![0u32; clusters]; frames];
    let mut count_sum = vec![0u32; frames];
    let mut covering = vec![0u32; frames];
    let mut cluster_of = vec![[None; LOCAL_SPEAKERS]; starts.len()];
    for (speaker, &label) in speakers.iter().zip(&labels) {
        cluster_of[speaker.chunk][speaker.local] = Some(label);
    }
    for (chunk, (&start, active)) in starts.iter().zip(&activity).enumerate() {
        let first = start / FRAME_STEP_SAMPLES;
        // Frames of the zero padding past the recording's end are not counted.
        let real = ((samples.len() - start).saturating_sub(FRAME_SAMPLES) / FRAME_STEP_SAMPLES + 1)
            .min(FRAMES_PER_CHUNK);
        for (f, row) in active.iter().enumerate().take(real) {
            let g = first + f;
            if g >= frames {
                break;
            }
            covering[g] += 1;
            count_sum[g] += row.iter().filter(|&&a| a).count() as u32;
            // One chunk supports a cluster once per frame, however many of its local speakers
            // were given it.
            let mut given: Vec<usize> = row
                .iter()
                .zip(&cluster_of[chunk])
                .filter_map(|(&on, &label)| if on { label } else { None })
                .collect();
            given.sort_unstable();
            given.dedup();
            for label in given {
                support[g][label] += 1;
            }
        }
    }
    let active: Vec<Vec<bool>> = (0..frames)
        .map(|g| {
            let mut row = vec![false; clusters];
            if covering[g] == 0 {
                return row;
            }
            let count = (f64::from(count_sum[g]) / f64::from(covering[g])).round() as usize;
            let mut ranked: Vec<usize> = (0..clusters).filter(|&c| support[g][c] > 0).collect();
            ranked.sort_by(|&a, &b| support[g][b].cmp(&support[g][a]).then(a.cmp(&b)));
            for &c in ranked.iter().take(count) {
                row[c] = true;
            }
            row
        })
        .collect();
    // Frame g's cell: the middle 270 samples of its 991-sample receptive field.
    let step_seconds = FRAME_STEP_SAMPLES as f64 / SAMPLE_RATE as f64;
    let offset = (FRAME_SAMPLES - FRAME_STEP_SAMPLES) as f64 / 2.0 / SAMPLE_RATE as f64;
    let duration = samples.len() as f64 / SAMPLE_RATE as f64;
    Ok(frame_turns(
        &by_first_activity(active),
        step_seconds,
        offset,
        options.fill_gap_seconds,
    )
    .into_iter()
    .filter_map(|turn| {
        let end = turn.end.min(duration);
        (end > turn.start).then(|| Turn::new(turn.start, end, turn.speaker))
    })
    .collect())
}

/// `active[frame][cluster]` with the clusters reordered by the frame they are first active in
/// (never-active ones last).
fn by_first_activity(active: Vec<Vec<bool>>) -> Vec<Vec<bool>> {
    let clusters = active.first().map_or(0, Vec::len);
    let first = |c: usize| active.iter().position(|row| row[c]).unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..clusters).collect();
    order.sort_by_key(|&c| (first(c), c));
    active
        .iter()
        .map(|row| order.iter().map(|&c| row[c]).collect())
        .collect()
}

/// The embedding of every (chunk, local speaker) with enough speech.
fn embed_local_speakers(
    embedder: &dyn SpeakerEmbedder,
    samples: &[f32],
    starts: &[usize],
    activity: &[Vec<[bool; LOCAL_SPEAKERS]>],
    options: &DiarizeOptions,
) -> Result<Vec<LocalSpeaker>, DiarizeError> {
    let frame_seconds = FRAME_STEP_SAMPLES as f64 / SAMPLE_RATE as f64;
    let mut wanted: Vec<(usize, usize, f64, Vec<f32>)> = Vec::new();
    for (chunk, (&start, active)) in starts.iter().zip(activity).enumerate() {
        for local in 0..LOCAL_SPEAKERS {
            let talking: Vec<usize> = (0..active.len()).filter(|&f| active[f][local]).collect();
            let clean: Vec<usize> = talking
                .iter()
                .copied()
                .filter(|&f| active[f].iter().filter(|&&a| a).count() == 1)
                .collect();
            let clean_seconds = clean.len() as f64 * frame_seconds;
            let frames = if clean_seconds >= options.min_clean_seconds {
                clean
            } else if talking.len() as f64 * frame_seconds >= options.min_assign_seconds {
                talking
            } else {
                continue;
            };
            let clip = frame_samples(samples, start, &frames);
            if !clip.is_empty() {
                wanted.push((chunk, local, clean_seconds, clip));
            }
        }
    }
    let clips: Vec<&[f32]> = wanted.iter().map(|w| w.3.as_slice()).collect();
    let embeddings = if clips.is_empty() {
        Vec::new()
    } else {
        embedder.embed(&clips).map_err(DiarizeError::Embedding)?
    };
    Ok(wanted
        .into_iter()
        .zip(embeddings)
        .map(|((chunk, local, clean_seconds, _), e)| LocalSpeaker {
            chunk,
            local,
            clean_seconds,
            embedding: normalized(&e),
        })
        .collect())
}

/// The samples of `frames` (indices within the chunk starting at sample `start`): each frame's
/// middle 270 samples, runs of frames joined.
fn frame_samples(samples: &[f32], start: usize, frames: &[usize]) -> Vec<f32> {
    let margin = (FRAME_SAMPLES - FRAME_STEP_SAMPLES) / 2;
    let mut clip = Vec::with_capacity(frames.len() * FRAME_STEP_SAMPLES);
    for &f in frames {
        let from = (start + f * FRAME_STEP_SAMPLES + margin).min(samples.len());
        let to = (from + FRAME_STEP_SAMPLES).min(samples.len());
        clip.extend_from_slice(&samples[from..to]);
    }
    clip
}

/// A cluster label per local speaker (0.. in order of the speakers), distinct within a chunk
/// where there are clusters enough.
fn cluster_local_speakers(speakers: &[LocalSpeaker], options: &DiarizeOptions) -> Vec<usize> {
    // The embeddings clustered: clean enough, the cleanest `max_clustered` of them.
    let mut clustered: Vec<usize> = (0..speakers.len())
        .filter(|&i| speakers[i].clean_seconds >= options.min_clean_seconds)
        .collect();
    if clustered.is_empty() {
        // Nothing clean enough: cluster what there is.
        clustered = (0..speakers.len()).collect();
    }
    clustered.sort_by(|&a, &b| {
        speakers[b]
            .clean_seconds
            .total_cmp(&speakers[a].clean_seconds)
            .then(a.cmp(&b))
    });
    clustered.truncate(options.max_clustered.max(1));
    clustered.sort_unstable();
    if clustered.is_empty() {
        return Vec::new();
    }
    let points: Vec<Vec<f32>> = clustered
        .iter()
        .map(|&i| speakers[i].embedding.iter().map(|&x| x as f32).collect())
        .collect();
    let labels = match &options.clustering {
        Clustering::Agglomerative(thresholds) => {
            let weights: Vec<f64> = clustered
                .iter()
                .map(|&i| speakers[i].clean_seconds)
                .collect();
            let dendrogram = Dendrogram::build(&points, &weights, options.min_speaker_seconds);
            let k = choose_speaker_count(&dendrogram, &options.speakers, thresholds);
            dendrogram.labels(k)
        }
        Clustering::Spectral => cluster(
            &points,
            &ClusterOptions {
                min_speakers: options.speakers.min.max(1),
                max_speakers: options.speakers.max.max(1),
                ..ClusterOptions::default()
            },
        ),
    };
    let clusters = labels.iter().max().map_or(0, |&l| l + 1);
    let dim = speakers[0].embedding.len();
    let mut sums = vec![vec![0.0f64; dim]; clusters];
    for (&i, &label) in clustered.iter().zip(&labels) {
        for (s, x) in sums[label].iter_mut().zip(&speakers[i].embedding) {
            *s += x;
        }
    }
    let centroids: Vec<Vec<f64>> = sums.iter().map(|s| normalized(s)).collect();

    // Distinct clusters per chunk: Hungarian on (1 − similarity).
    let mut result = vec![0usize; speakers.len()];
    let mut i = 0;
    while i < speakers.len() {
        let chunk = speakers[i].chunk;
        let members: Vec<usize> = (i..speakers.len())
            .take_while(|&j| speakers[j].chunk == chunk)
            .collect();
        i += members.len();
        let n = members.len().max(clusters);
        let cost: Vec<Vec<f64>> = (0..n)
            .map(|r| {
                (0..n)
                    .map(|c| match (members.get(r), centroids.get(c)) {
                        (Some(&m), Some(centroid)) => 1.0 - dot(&speakers[m].embedding, centroid),
                        _ => 0.0,
                    })
                    .collect()
            })
            .collect();
        let assignment = hungarian(&cost);
        for (r, &m) in members.iter().enumerate() {
            result[m] = if assignment[r] < clusters {
                assignment[r]
            } else {
                nearest(&speakers[m].embedding, &centroids)
            };
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_samples_takes_the_middle_of_each_frame() {
        let samples: Vec<f32> = (0..5000).map(|i| i as f32).collect();
        let clip = frame_samples(&samples, 100, &[0, 1, 5]);
        assert_eq!(clip.len(), 3 * FRAME_STEP_SAMPLES);
        assert_eq!(clip[0], 460.0); // 100 + 360
        assert_eq!(clip[FRAME_STEP_SAMPLES], 730.0);
        assert_eq!(clip[2 * FRAME_STEP_SAMPLES], (100 + 5 * 270 + 360) as f32);
        // Past the end: cut short.
        assert_eq!(frame_samples(&samples, 4800, &[0]).len(), 0);
    }

    fn local(chunk: usize, local: usize, embedding: &[f64]) -> LocalSpeaker {
        LocalSpeaker {
            chunk,
            local,
            clean_seconds: 5.0,
            embedding: normalized(embedding),
        }
    }

    #[test]
    fn local_speakers_of_a_chunk_get_distinct_clusters() {
        // Two voices along x and y; chunk 2's two local speakers both lean towards x, but one
        // less: it must take y.
        let speakers = vec![
            local(0, 0, &[1.0, 0.05]),
            local(0, 1, &[0.05, 1.0]),
            local(1, 0, &[1.0, 0.1]),
            local(1, 1, &[0.1, 1.0]),
            local(2, 0, &[1.0, 0.2]),
            local(2, 1, &[1.0, 0.6]),
        ];
        let options = DiarizeOptions {
            min_speaker_seconds: 1.0,
            ..DiarizeOptions::default()
        };
        let labels = cluster_local_speakers(&speakers, &options);
        assert_eq!(labels, vec![0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn clusters_are_ordered_by_their_first_active_frame() {
        let active = vec![
            vec![false, false, true],
            vec![true, false, true],
            vec![true, false, false],
        ];
        assert_eq!(
            by_first_activity(active),
            vec![
                vec![true, false, false],
                vec![true, true, false],
                vec![false, true, false],
            ]
        );
    }
}
