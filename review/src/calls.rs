//! One call as a reviewer sees it: what it is, who said what when, and what was flagged.

use callscript_core::queue::get_call;
use callscript_core::transcripts::{self, SegmentRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::flags::{self, FlagFilter, FlagRow, PageRequest, MAX_PAGE_SIZE};
use crate::ReviewError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub source: String,
    pub external_id: String,
    pub state: String,
    pub campaign: Option<String>,
    pub call_started_at: DateTime<Utc>,
    pub duration_ms: Option<i32>,
    pub channels: Option<i16>,
    pub caller_number: Option<String>,
    pub callee_number: Option<String>,
    /// Where the recording is stored (the API serves or presigns it; never a vendor link).
    pub object_key: Option<String>,
    pub content_type: Option<String>,
    pub flagged: Option<bool>,
    pub last_error: Option<String>,
    pub metadata: serde_json::Value,
    pub transcript_model: Option<String>,
    pub segments: Vec<Segment>,
    pub flags: Vec<FlagRow>,
}

/// A transcript segment with the flags whose evidence falls in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub start_ms: i32,
    pub end_ms: i32,
    pub speaker: Option<String>,
    pub channel: Option<i16>,
    pub role: Option<String>,
    pub text: String,
    /// Ids of the flags whose evidence starts within this segment.
    pub flag_ids: Vec<Uuid>,
}

impl Segment {
    fn new(segment: SegmentRecord, flags: &[FlagRow]) -> Segment {
        let flag_ids = flags
            .iter()
            .filter(|f| {
                f.start_ms.is_some_and(|at| {
                    at >= segment.start_ms && at < segment.end_ms.max(segment.start_ms + 1)
                })
            })
            .map(|f| f.id)
            .collect();
        Segment {
            start_ms: segment.start_ms,
            end_ms: segment.end_ms,
            speaker: segment.speaker,
            channel: segment.channel,
            role: segment.role.map(|r| r.as_str().to_owned()),
            text: segment.text,
            flag_ids,
        }
    }
}

/// The call with its transcript and flags.
pub async fn show(client: &impl GenericClient, call_id: Uuid) -> Result<CallView, ReviewError> {
    let call = get_call(client, call_id)
        .await?
        .ok_or(ReviewError::UnknownCall(call_id))?;
    let extra = client
        .query_one(
            "SELECT cp.name, c.flagged FROM core.calls c
             LEFT JOIN core.campaigns cp ON cp.id = c.campaign_id WHERE c.id = $1",
            &[&call_id],
        )
        .await?;
    let flags = flags::list(
        client,
        &FlagFilter {
            call_id: Some(call_id),
            ..FlagFilter::default()
        },
        PageRequest {
            limit: MAX_PAGE_SIZE,
            offset: 0,
        },
    )
    .await?
    .items;
    let transcript = transcripts::load(client, call_id).await?;
    let (transcript_model, segments) = match transcript {
        Some(t) => (
            Some(t.model),
            t.segments
                .into_iter()
                .map(|s| Segment::new(s, &flags))
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    Ok(CallView {
        id: call.id,
        org_id: call.org_id,
        source: call.source.as_str().to_owned(),
        external_id: call.external_id,
        state: call.state.as_str().to_owned(),
        campaign: extra.get(0),
        call_started_at: call.call_started_at,
        duration_ms: call.duration_ms,
        channels: call.channels,
        caller_number: call.caller_number,
        callee_number: call.callee_number,
        object_key: call.object_key,
        content_type: call.content_type,
        flagged: extra.get(1),
        last_error: call.last_error,
        metadata: call.metadata,
        transcript_model,
        segments,
        flags,
    })
}

/// "m:ss" (or "h:mm:ss") of a position in a call.
pub fn clock(ms: i32) -> String {
    let seconds = ms.max(0) / 1000;
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{Category, ReviewStatus, Severity};

    #[test]
    fn a_flag_belongs_to_the_segment_it_starts_in() {
        let at = |start_ms: i32| FlagRow {
            id: Uuid::from_u128(start_ms as u128),
            call_id: Uuid::nil(),
            org_slug: "a".into(),
            campaign: None,
            call_started_at: Utc::now(),
            caller_number: None,
            rule_id: "r".into(),
            rulebook_version: "default@1".into(),
            category: Category::Compliance,
            severity: Severity::High,
            evidence: String::new(),
            start_ms: Some(start_ms),
            end_ms: None,
            speaker: None,
            role: None,
            review_status: ReviewStatus::Open,
            reviewer: None,
            reviewed_at: None,
            note: None,
            created_at: Utc::now(),
        };
        let flags = [at(0), at(3_500), at(4_000)];
        let segment = |start_ms, end_ms| SegmentRecord {
            start_ms,
            end_ms,
            speaker: None,
            channel: None,
            role: None,
            text: String::new(),
            avg_logprob: None,
            no_speech_prob: None,
        };
        let ids = |s: Segment| s.flag_ids.iter().map(|id| id.as_u128()).collect::<Vec<_>>();
        assert_eq!(ids(Segment::new(segment(0, 3_000), &flags)), [0]);
        assert_eq!(ids(Segment::new(segment(4_000, 7_000), &flags)), [4_000]);
        // A zero-length segment still holds a flag at its instant.
        assert_eq!(ids(Segment::new(segment(4_000, 4_000), &flags)), [4_000]);
    }

    #[test]
    fn clock() {
        assert_eq!(super::clock(0), "0:00");
        assert_eq!(super::clock(65_400), "1:05");
        assert_eq!(super::clock(3_725_000), "1:02:05");
        assert_eq!(super::clock(-5), "0:00");
    }
}
