//! What the judge's integration tests share: transcribed calls with written transcripts.

// Each test target uses its own part of these.
#![allow(dead_code)]

use callscript_core::model::SpeakerRole;
use callscript_core::queue;
use callscript_core::queue::NewCall;
use callscript_core::transcripts::SegmentRecord;
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_testkit::{downloaded_call, save_transcript, TestDatabase};
use chrono::Utc;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub const DISCLOSURE: &str = "Hi, this is Sam from Acme Solar, this call may be recorded.";

/// A buyer's first 14 seconds: the disclosure, interest and a price.
pub fn interested_opening() -> Vec<SegmentRecord> {
    use SpeakerRole::{Agent, Customer};
    vec![
        segment(0.0, 4.0, Agent, DISCLOSURE),
        segment(
            5.0,
            9.0,
            Customer,
            "Yes I'm interested. How much does the installation cost?",
        ),
        segment(10.0, 14.0, Agent, "It starts at nine thousand dollars."),
    ]
}

pub fn segment(start_s: f64, end_s: f64, role: SpeakerRole, text: &str) -> SegmentRecord {
    let channel = match role {
        SpeakerRole::Agent => 0,
        _ => 1,
    };
    SegmentRecord {
        start_ms: (start_s * 1000.0) as i32,
        end_ms: (end_s * 1000.0) as i32,
        speaker: Some(format!("SPEAKER_{channel:02}")),
        channel: Some(channel),
        role: Some(role),
        text: text.to_owned(),
        avg_logprob: Some(-0.2),
        no_speech_prob: Some(0.01),
    }
}

/// An upload call of `org` in `transcribed`, started now, with `segments` as its transcript.
pub async fn transcribed_call(
    client: &impl GenericClient,
    org: Uuid,
    id: &str,
    segments: Vec<SegmentRecord>,
) -> Uuid {
    transcribed(client, downloaded_call(org, id, Utc::now()), segments).await
}

/// `call` queued in `transcribed` with `segments` as its transcript (and a second of audio
/// after the last).
pub async fn transcribed(
    client: &impl GenericClient,
    mut call: NewCall,
    segments: Vec<SegmentRecord>,
) -> Uuid {
    let org = call.org_id;
    call.duration_ms = segments.last().map(|s| s.end_ms + 1000);
    let call_id = queue::enqueue(client, &call).await.unwrap().call_id;
    client
        .execute(
            "UPDATE core.calls SET state = 'transcribed' WHERE id = $1",
            &[&call_id],
        )
        .await
        .unwrap();
    save_transcript(client, call_id, org, segments).await;
    call_id
}

pub fn lane(db: &TestDatabase) -> JudgeLane {
    JudgeLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        rulebook: None,
        brain: None,
        config: JudgeConfig::default(),
    }
}
