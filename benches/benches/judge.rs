//! Judge lane throughput on a real Postgres (`DATABASE_URL`): transcribed calls → flags, lead
//! scores and CRM rows committed, calls per second; and the rule engine and lead assessment
//! alone (no database), per call.
//!
//! The calls are five-minute conversations (60 segments, agent and customer taking turns) built
//! from lines that trigger the default rulebook's rules and the lead signals: disclosures or
//! not, prices and objections, callbacks, card numbers said as words, do-not-call requests.
//!
//! Run with `scripts/bench judge` (or `cargo bench -p callscript-benches --bench judge` with
//! `DATABASE_URL` set). `JUDGE_BENCH_CALLS` sets the number of calls (default 1000).

use std::time::{Duration, Instant};

use callscript_core::model::SpeakerRole;
use callscript_core::orgs;
use callscript_core::queue::{self, NewCall, Until};
use callscript_core::transcripts::SegmentRecord;
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_judge::lead::{assess, CallFacts};
use callscript_judge::Rulebook;
use callscript_testkit::{downloaded_call, save_transcript, TestDatabase};
use chrono::Utc;

const AGENT_LINES: &[&str] = &[
    "Hi, this is Sam from Acme Solar, this call may be recorded for quality.",
    "Hi, this is Sam from Acme Solar, how are you today?",
    "The installation starts at nine thousand dollars with no money down.",
    "With us you get guaranteed approval, everyone qualifies.",
    "I can call you back tomorrow at ten if that works.",
    "Could you read me the card number please?",
    "The warranty covers twenty five years of panel output.",
    "Let me check the incentives available in your area.",
];

const CUSTOMER_LINES: &[&str] = &[
    "Yes I'm interested, how much does it cost?",
    "It's a bit too expensive for us right now.",
    "Call me back tomorrow at ten.",
    "Sure, it's four one one one one one one one one one one one one one one one.",
    "Please stop calling me and take me off your list.",
    "What does the warranty cover?",
    "That sounds good, what's the next step?",
    "I need to talk to my wife first.",
    "We already have a provider, not interested.",
];

const SEGMENTS_PER_CALL: usize = 60;
const SEGMENT_MS: i32 = 5_000;

fn conversation(call: usize) -> Vec<SegmentRecord> {
    (0..SEGMENTS_PER_CALL)
        .map(|i| {
            let agent = i % 2 == 0;
            let lines = if agent { AGENT_LINES } else { CUSTOMER_LINES };
            let text = lines[(call * 7 + i * 3) % lines.len()];
            let start_ms = i as i32 * SEGMENT_MS;
            SegmentRecord {
                start_ms,
                end_ms: start_ms + SEGMENT_MS - 500,
                speaker: Some(if agent { "SPEAKER_00" } else { "SPEAKER_01" }.into()),
                channel: Some(if agent { 0 } else { 1 }),
                role: Some(if agent {
                    SpeakerRole::Agent
                } else {
                    SpeakerRole::Customer
                }),
                text: text.into(),
                avg_logprob: Some(-0.2),
                no_speech_prob: Some(0.01),
            }
        })
        .collect()
}

fn engine_alone(calls: usize) {
    let rulebook = Rulebook::default_rulebook();
    let started_at = Utc::now().with_timezone(&chrono_tz::America::New_York);
    let transcripts: Vec<Vec<SegmentRecord>> = (0..calls).map(conversation).collect();
    let facts = CallFacts {
        duration_ms: Some(SEGMENTS_PER_CALL as i32 * SEGMENT_MS),
        ..CallFacts::default()
    };
    let t = Instant::now();
    let mut findings = 0;
    for segments in &transcripts {
        findings += rulebook.evaluate(segments, facts.duration_ms).len();
    }
    let rules = t.elapsed();
    let t = Instant::now();
    let mut score = 0u64;
    for segments in &transcripts {
        score += u64::from(assess(segments, &facts, started_at).score);
    }
    let leads = t.elapsed();
    let per_call = |d: Duration| d.as_secs_f64() * 1000.0 / calls as f64;
    println!(
        "engine alone, {calls} calls of {SEGMENTS_PER_CALL} segments: rules {:.2} ms/call \
         ({findings} findings), lead assessment {:.2} ms/call (mean score {:.1})",
        per_call(rules),
        per_call(leads),
        score as f64 / calls as f64
    );
}

async fn lane(calls: usize) {
    let db = TestDatabase::new(8).await;
    let client = db.client().await;
    let org = orgs::ensure(&**client, "bench", "Bench", "America/New_York")
        .await
        .unwrap()
        .0
        .id;
    for call in 0..calls {
        let mut new: NewCall = downloaded_call(org, &format!("call-{call}"), Utc::now());
        new.caller_number = Some(format!("+1555{:07}", call % 700));
        new.duration_ms = Some(SEGMENTS_PER_CALL as i32 * SEGMENT_MS);
        let call_id = queue::enqueue(&**client, &new).await.unwrap().call_id;
        let segments = conversation(call);
        save_transcript(&**client, call_id, org, segments).await;
    }
    client
        .execute(
            "UPDATE core.calls SET state = 'transcribed' WHERE org_id = $1",
            &[&org],
        )
        .await
        .unwrap();
    let lane = JudgeLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        rulebook: None,
        brain: None,
        config: JudgeConfig::default(),
    };
    let (_stop, stop) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let until = Until::Idle {
        wait: Duration::ZERO,
    };
    let report = lane.run(until, stop).await.unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(report.judged, calls);
    println!(
        "judge lane, {calls} calls (one process, batches of 32): {:.0} calls/s, {:.1} s; {} \
         flags, {} new leads, {} hot, {} follow-ups, {} cancelled by do-not-call, {} \
         conversions, {} card numbers redacted",
        calls as f64 / elapsed,
        elapsed,
        report.flags,
        report.new_leads,
        report.hot,
        report.actions,
        report.cancelled,
        report.conversions,
        report.redacted
    );
}

#[tokio::main]
async fn main() {
    let calls = std::env::var("JUDGE_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    engine_alone(calls);
    lane(calls).await;
}
