//! Speaker diarization of mono recordings: who talks when in one channel holding several
//! voices (a mono phone call, or a stereo channel with a transfer on it). Stereo calls need
//! none of this: there a channel is a speaker.
//!
//! - [`pipeline`]: the pipeline, [`diarize_channel`]: pyannote segmentation-3.0 over sliding
//!   10 s chunks, one speaker embedding per chunk and local speaker from its clean
//!   (non-overlapped) frames, clustering bounded by the expected speaker count (two on a phone
//!   call), frame-level assignment with overlaps kept.
//! - [`agglomerative`]: average-linkage clustering and the speaker count;
//!   [`spectral`]: NME-SC, the alternative; [`eigen`]: its symmetric eigen-solver.
//! - [`turns`]: frames → turns, and [`speaker_for`] a transcript segment.
//! - [`rttm`]: RTTM files; [`der`]: the diarization error rate, as pyannote.metrics computes it.
//!
//! # Measured
//!
//! MEASUREMENTS

pub mod agglomerative;
pub mod der;
pub mod eigen;
pub mod pipeline;
pub mod rttm;
pub mod spectral;
#[cfg(test)]
mod test_rng;
pub mod turns;
mod vectors;

pub use der::{diarization_error, DiarizationErrors};
pub use pipeline::{
    diarize_channel, Clustering, DiarizeError, DiarizeOptions, EmbedError, SpeakerCount,
    SpeakerEmbedder,
};
pub use rttm::{parse_rttm, write_rttm, RttmError};
pub use turns::{frame_turns, speaker_for};

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

/// The speaker name [`frame_turns`] gives cluster label `label`: `SPEAKER_00`, `SPEAKER_01`, …
pub fn speaker_name(label: usize) -> String {
    format!("SPEAKER_{label:02}")
}
