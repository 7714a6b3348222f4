//! Transcripts as stored: `core.transcripts` and its segments, written by the worker lane in the
//! transaction that moves the call to `transcribed`, read by the judge and by reviewers.
//!
//! Saving is an upsert keyed by the call: a call transcribed again (a retry after a lost
//! commit, a re-run with a new model) replaces its transcript and all its segments, so there is
//! never more than one transcript per call nor a segment left over from an earlier run.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;
use crate::model::SpeakerRole;

/// A call's transcript: the text of all channels in time order, and its segments.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptRecord {
    pub call_id: Uuid,
    pub org_id: Uuid,
    /// The model that produced it (`whisper-tiny.en`, `openai/whisper-large-v3-turbo`).
    pub model: String,
    pub language: Option<String>,
    pub text: String,
    pub word_count: i32,
    pub avg_logprob: Option<f32>,
    /// In time order; their position is their `segment_index`.
    pub segments: Vec<SegmentRecord>,
}

/// One stretch of speech of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRecord {
    pub start_ms: i32,
    pub end_ms: i32,
    /// `SPEAKER_00`… when diarized.
    pub speaker: Option<String>,
    /// The recording's channel, from 0.
    pub channel: Option<i16>,
    pub role: Option<SpeakerRole>,
    pub text: String,
    pub avg_logprob: Option<f32>,
    pub no_speech_prob: Option<f32>,
}

/// Writes `transcript`, replacing any earlier transcript of the call and all its segments.
/// Call it inside the transaction that completes the call's lease.
pub async fn save(
    client: &impl GenericClient,
    transcript: &TranscriptRecord,
) -> Result<(), DbError> {
    let t = transcript;
    client
        .execute(
            "INSERT INTO core.transcripts
               (call_id, org_id, model, language, text, word_count, avg_logprob)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (call_id) DO UPDATE SET
               model = excluded.model, language = excluded.language, text = excluded.text,
               word_count = excluded.word_count, avg_logprob = excluded.avg_logprob,
               updated_at = now()",
            &[
                &t.call_id,
                &t.org_id,
                &t.model,
                &t.language,
                &t.text,
                &t.word_count,
                &t.avg_logprob,
            ],
        )
        .await?;
    client
        .execute(
            "DELETE FROM core.transcript_segments WHERE call_id = $1",
            &[&t.call_id],
        )
        .await?;
    if t.segments.is_empty() {
        return Ok(());
    }
    // One statement for all segments: a long call has hundreds.
    let column = |f: fn(&SegmentRecord) -> i32| t.segments.iter().map(f).collect::<Vec<_>>();
    let starts = column(|s| s.start_ms);
    let ends = column(|s| s.end_ms);
    let speakers: Vec<Option<&str>> = t.segments.iter().map(|s| s.speaker.as_deref()).collect();
    let channels: Vec<Option<i16>> = t.segments.iter().map(|s| s.channel).collect();
    let roles: Vec<Option<&str>> = t
        .segments
        .iter()
        .map(|s| s.role.map(SpeakerRole::as_str))
        .collect();
    let texts: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
    let logprobs: Vec<Option<f32>> = t.segments.iter().map(|s| s.avg_logprob).collect();
    let no_speech: Vec<Option<f32>> = t.segments.iter().map(|s| s.no_speech_prob).collect();
    client
        .execute(
            "INSERT INTO core.transcript_segments
               (call_id, org_id, segment_index, start_ms, end_ms, speaker, channel, role, text,
                avg_logprob, no_speech_prob)
             SELECT $1, $2, s.ordinality - 1, s.start_ms, s.end_ms, s.speaker, s.channel,
                    s.role::core.speaker_role, s.text, s.avg_logprob, s.no_speech_prob
             FROM unnest($3::int[], $4::int[], $5::text[], $6::int2[], $7::text[], $8::text[],
                         $9::real[], $10::real[])
                  WITH ORDINALITY AS s(start_ms, end_ms, speaker, channel, role, text,
                                       avg_logprob, no_speech_prob, ordinality)",
            &[
                &t.call_id, &t.org_id, &starts, &ends, &speakers, &channels, &roles, &texts,
                &logprobs, &no_speech,
            ],
        )
        .await?;
    Ok(())
}

/// Reads a call's transcript with its segments in order; `None` when it has none.
pub async fn load(
    client: &impl GenericClient,
    call_id: Uuid,
) -> Result<Option<TranscriptRecord>, DbError> {
    let Some(row) = client
        .query_opt(
            "SELECT org_id, model, language, text, word_count, avg_logprob
             FROM core.transcripts WHERE call_id = $1",
            &[&call_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let segments = client
        .query(
            "SELECT start_ms, end_ms, speaker, channel, role::text, text, avg_logprob,
                    no_speech_prob
             FROM core.transcript_segments WHERE call_id = $1 ORDER BY segment_index",
            &[&call_id],
        )
        .await?
        .iter()
        .map(|s| {
            Ok(SegmentRecord {
                start_ms: s.get(0),
                end_ms: s.get(1),
                speaker: s.get(2),
                channel: s.get(3),
                role: s.get::<_, Option<&str>>(4).map(str::parse).transpose()?,
                text: s.get(5),
                avg_logprob: s.get(6),
                no_speech_prob: s.get(7),
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok(Some(TranscriptRecord {
        call_id,
        org_id: row.get(0),
        model: row.get(1),
        language: row.get(2),
        text: row.get(3),
        word_count: row.get(4),
        avg_logprob: row.get(5),
        segments,
    }))
}
