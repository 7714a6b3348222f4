//! Alert latency and delivery throughput on a real Postgres (`DATABASE_URL`) and a loopback
//! webhook receiver.
//!
//! - **Hot-lead latency**: `NOTIFY_BENCH_CALLS` (default 1000) transcribed calls of buyers, each
//!   from its own number, are judged by the judge lane while a delivery lane (LISTEN wake-up,
//!   the defaults of `callscript notify`) runs beside it. For each call, the time from the
//!   judge's transaction (the outbox row's `created_at`: the transaction's start, a few
//!   milliseconds before its commit, so the figure slightly overstates) to the hot-lead message
//!   arriving at the receiver; p50, p90, p99 and the worst.
//! - **Deliveries per second**: `NOTIFY_BENCH_BACKLOG` (default 5000) queued flag alerts sent
//!   by one lane, then by four lanes at once, to a receiver that answers at once.
//!
//! Run with `scripts/bench notify` (or `cargo bench -p callscript-benches --bench notify` with
//! `DATABASE_URL` set).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use callscript_core::credentials::{CredentialKey, Secret};
use callscript_core::model::{Category, Severity, SpeakerRole};
use callscript_core::orgs;
use callscript_core::queue::{self, NewCall, Until};
use callscript_core::transcripts::SegmentRecord;
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_notify::channels::{self, Routing, Target};
use callscript_notify::{enqueue_event, Event, EventKind, NotifyConfig, NotifyLane};
use callscript_testkit::vendors::LoopbackServer;
use callscript_testkit::{downloaded_call, save_transcript, TestDatabase};
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use uuid::Uuid;

/// Each message's time from its outbox row's `created_at` to its arrival, in milliseconds.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<f64>>>);

impl Arrivals {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    async fn serve(&self) -> LoopbackServer {
        let router = Router::new()
            .route("/hook", post(arrive))
            .with_state(self.clone());
        LoopbackServer::start(router).await
    }
}

async fn arrive(State(arrivals): State<Arrivals>, body: Bytes) -> &'static str {
    let at = Utc::now();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    let created_at: DateTime<Utc> = body["created_at"]
        .as_str()
        .and_then(|text| text.parse().ok())
        .expect("created_at");
    let waited = (at - created_at).as_seconds_f64() * 1000.0;
    arrivals.0.lock().unwrap().push(waited);
    "ok"
}

fn key() -> CredentialKey {
    CredentialKey::from_base64(&format!("{}A=", "B".repeat(42))).unwrap()
}

async fn org_with_webhook(db: &TestDatabase, kinds: &[EventKind], url: String) -> Uuid {
    let client = db.client().await;
    let org = orgs::ensure(&**client, "bench", "Bench", "America/New_York")
        .await
        .unwrap()
        .0
        .id;
    let routing = Routing {
        event_kinds: kinds.to_vec(),
        ..Routing::default()
    };
    let target = Target::Webhook {
        url,
        signing_secret: Secret::new("whsec_bench"),
    };
    channels::save(&**client, &key(), org, "sales", &routing, &target)
        .await
        .unwrap();
    org
}

fn delivery_lane(db: &TestDatabase) -> NotifyLane {
    let config = NotifyConfig {
        health_check_every: None,
        ..NotifyConfig::default()
    };
    NotifyLane::new(db.pool.clone(), key(), config).listening(db.url.clone())
}

/// A buyer's call: a disclosure, interest, a price, and a yes.
fn buyer_call() -> Vec<SegmentRecord> {
    let lines = [
        (
            SpeakerRole::Agent,
            "Hi, this is Sam from Acme Solar, this call may be recorded.",
        ),
        (
            SpeakerRole::Customer,
            "Yes I'm interested. How much does the installation cost?",
        ),
        (
            SpeakerRole::Agent,
            "It starts at nine thousand dollars with no money down.",
        ),
        (
            SpeakerRole::Customer,
            "That sounds good. Sign me up, what's the next step?",
        ),
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, &(role, text))| {
            let start_ms = i as i32 * 5_000;
            let agent = role == SpeakerRole::Agent;
            SegmentRecord {
                start_ms,
                end_ms: start_ms + 4_500,
                speaker: Some(if agent { "SPEAKER_00" } else { "SPEAKER_01" }.into()),
                channel: Some(if agent { 0 } else { 1 }),
                role: Some(role),
                text: text.into(),
                avg_logprob: Some(-0.2),
                no_speech_prob: Some(0.01),
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn hot_lead_latency(calls: usize) {
    let db = TestDatabase::new(12).await;
    let arrivals = Arrivals::default();
    let receiver = arrivals.serve().await;
    let org = org_with_webhook(&db, &[EventKind::HotLead], receiver.url("/hook")).await;
    let client = db.client().await;
    for call in 0..calls {
        let mut new: NewCall = downloaded_call(org, &format!("buyer-{call}"), Utc::now());
        new.caller_number = Some(format!("+1555{call:07}"));
        new.duration_ms = Some(20_000);
        let call_id = queue::enqueue(&**client, &new).await.unwrap().call_id;
        save_transcript(&**client, call_id, org, buyer_call()).await;
    }
    client
        .execute(
            "UPDATE core.calls SET state = 'transcribed' WHERE org_id = $1",
            &[&org],
        )
        .await
        .unwrap();

    let (stop_delivery, stop) = watch::channel(false);
    let delivery = delivery_lane(&db);
    let delivering = tokio::spawn(async move { delivery.run(false, stop).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let judge = JudgeLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        rulebook: None,
        brain: None,
        config: JudgeConfig::default(),
    };
    let (_keep, stop) = watch::channel(false);
    let started = Instant::now();
    let until = Until::Idle {
        wait: Duration::ZERO,
    };
    let report = judge.run(until, stop).await.unwrap();
    let judged_in = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.count() < report.hot && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all_in = started.elapsed().as_secs_f64();
    stop_delivery.send(true).unwrap();
    let delivered = delivering.await.unwrap().unwrap().delivered;

    let mut latencies = arrivals.0.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    assert!(!latencies.is_empty(), "no hot-lead message arrived");
    println!(
        "hot-lead alerts, {calls} calls judged in {judged_in:.1} s ({:.0} calls/s), {} hot, {} \
         messages delivered ({} received, all by {all_in:.1} s)",
        calls as f64 / judged_in,
        report.hot,
        delivered,
        latencies.len()
    );
    println!(
        "  judged commit -> message at the receiver: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, \
         worst {:.0} ms (target: p99 under 5000 ms)",
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        latencies[latencies.len() - 1]
    );
}

async fn delivery_throughput(backlog: usize, lanes: usize) {
    let db = TestDatabase::new(4 * lanes + 2).await;
    let arrivals = Arrivals::default();
    let receiver = arrivals.serve().await;
    let org = org_with_webhook(&db, &[EventKind::Flag], receiver.url("/hook")).await;
    let mut client = db.client().await;
    let transaction = client.transaction().await.unwrap();
    for i in 0..backlog {
        let event = Event::Flag {
            call_id: Uuid::new_v4(),
            flag_id: None,
            rule_id: "card-number".into(),
            category: Category::Compliance,
            severity: Severity::Critical,
            evidence: format!("it's ending {:04}", i % 10_000),
            start_ms: Some(42_000),
            speaker: Some("customer".into()),
        };
        enqueue_event(&*transaction, org, &event).await.unwrap();
    }
    transaction.commit().await.unwrap();

    let started = Instant::now();
    let runs = (0..lanes).map(|_| {
        let lane = delivery_lane(&db);
        tokio::spawn(async move {
            let (_keep, stop) = watch::channel(false);
            lane.run(true, stop).await.unwrap()
        })
    });
    let mut delivered = 0;
    for run in runs.collect::<Vec<_>>() {
        delivered += run.await.unwrap().delivered;
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(delivered, backlog);
    assert_eq!(arrivals.count(), backlog, "each message arrives once");
    println!(
        "deliveries, {backlog} queued alerts, {lanes} lane(s) of batches of 32: {:.0} \
         deliveries/s ({elapsed:.2} s)",
        backlog as f64 / elapsed
    );
}

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let calls = from_env("NOTIFY_BENCH_CALLS", 1000);
    let backlog = from_env("NOTIFY_BENCH_BACKLOG", 5000);
    hot_lead_latency(calls).await;
    delivery_throughput(backlog, 1).await;
    delivery_throughput(backlog, 4).await;
}
