//! A call's transcript into its rows, and the transaction that stores it: the lease fence first
//! (which also moves the call to `transcribed`), then the transcript and its segments, the
//! call's audio facts, its usage and how sure its roles are. If the fence refuses, nothing of it is written.

use callscript_core::db::Pool;
use callscript_core::model::SpeakerRole;
use callscript_core::queue::{self, Lease, QueueError};
use callscript_core::transcripts::{self, SegmentRecord, TranscriptRecord};
use callscript_core::usage::{self, UsageRecord};
use uuid::Uuid;

use crate::roles::Role;
use crate::transcript::Transcript;

/// What the lane knows about a call besides its transcript.
pub(super) struct CallFacts {
    pub duration_seconds: f64,
    pub channels: usize,
    pub source_sample_rate: u32,
    /// How sure the speakers' roles are ([`crate::roles`]); `None` when none were assigned.
    pub role_confidence: Option<f64>,
}

/// The rows of a transcript: segments of all channels in time order (channel order on ties),
/// empty ones left out.
pub(super) fn to_record(
    call_id: Uuid,
    org_id: Uuid,
    model: &str,
    transcript: &Transcript,
) -> TranscriptRecord {
    let mut segments: Vec<(usize, &crate::transcript::Segment)> = transcript
        .channels
        .iter()
        .flat_map(|channel| channel.segments.iter().map(move |s| (channel.channel, s)))
        .filter(|(_, s)| !s.text.trim().is_empty())
        .collect();
    segments.sort_by(|a, b| a.1.start.total_cmp(&b.1.start).then(a.0.cmp(&b.0)));
    let (mut logprob_sum, mut tokens) = (0.0, 0usize);
    for (_, segment) in &segments {
        logprob_sum += segment.avg_logprob * segment.tokens.len() as f64;
        tokens += segment.tokens.len();
    }
    let text = transcript.text();
    TranscriptRecord {
        call_id,
        org_id,
        model: model.to_owned(),
        language: transcript.channels.first().map(|c| c.language.clone()),
        word_count: i32::try_from(text.split_whitespace().count()).unwrap_or(i32::MAX),
        text,
        avg_logprob: (tokens > 0).then(|| (logprob_sum / tokens as f64) as f32),
        segments: segments
            .into_iter()
            .map(|(channel, s)| SegmentRecord {
                start_ms: millis(s.start),
                end_ms: millis(s.end).max(millis(s.start)),
                speaker: s.speaker.clone(),
                channel: i16::try_from(channel).ok(),
                role: s
                    .speaker
                    .as_ref()
                    .map(|speaker| match transcript.roles.get(speaker) {
                        Some(Role::Agent) => SpeakerRole::Agent,
                        Some(Role::Customer) => SpeakerRole::Customer,
                        None => SpeakerRole::Unknown,
                    }),
                text: s.text.trim().to_owned(),
                avg_logprob: Some(s.avg_logprob as f32),
                no_speech_prob: Some(s.no_speech_prob as f32),
            })
            .collect(),
    }
}

fn millis(seconds: f64) -> i32 {
    (seconds.max(0.0) * 1000.0).round().min(i32::MAX as f64) as i32
}

/// Stores a call's result under its lease, in one transaction.
pub(super) async fn store(
    pool: &Pool,
    lease: &Lease,
    record: &TranscriptRecord,
    facts: &CallFacts,
    usage: &UsageRecord,
) -> Result<(), QueueError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    // First: it takes the call's row lock and checks the fence; on LeaseLost the transaction
    // is dropped, and rolled back, with nothing written.
    queue::complete(&*transaction, lease).await?;
    transcripts::save(&*transaction, record).await?;
    queue::record_audio_facts(
        &*transaction,
        lease.call_id,
        (facts.duration_seconds * 1000.0).round() as i32,
        facts.channels as i16,
        facts.source_sample_rate as i32,
    )
    .await?;
    usage::record(&*transaction, usage).await?;
    transaction
        .execute(
            "UPDATE core.transcripts SET role_confidence = $2 WHERE call_id = $1",
            &[&lease.call_id, &facts.role_confidence.map(|c| c as f32)],
        )
        .await?;
    transaction.commit().await?;
    Ok(())
}
