//! What the notify tests share: the sealing key, a lane that retries within milliseconds, a
//! loopback webhook receiver, and the outbox as the tests look at it.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use callscript_core::credentials::{CredentialKey, Secret};
use callscript_core::model::{Category, Severity};
use callscript_notify::channels::{self, Routing, Target};
use callscript_notify::{Event, EventKind, NotifyConfig, NotifyLane, NotifyReport};
use callscript_testkit::vendors::LoopbackServer;
use callscript_testkit::{insert_downloaded_calls, TestDatabase};
use chrono::Utc;
use serde_json::Value;
use tokio_postgres::GenericClient;
use uuid::Uuid;

pub const PUBLIC_URL: &str = "https://qa.example.com";

pub fn key() -> CredentialKey {
    // 32 bytes of base64: the last symbol before `=` carries 2 bits, which must be zero.
    CredentialKey::from_base64(&format!("{}A=", "B".repeat(42))).unwrap()
}

/// Retries within milliseconds, so tests see several attempts quickly.
pub fn fast_config() -> NotifyConfig {
    NotifyConfig {
        poll_interval: Duration::from_millis(10),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        public_url: Some(PUBLIC_URL.into()),
        // Tests that want queue health checked say so.
        health_check_every: None,
        ..NotifyConfig::default()
    }
}

pub fn lane(db: &TestDatabase) -> NotifyLane {
    NotifyLane::new(db.pool.clone(), key(), fast_config())
}

pub fn routing(kinds: &[EventKind], min_severity: Severity) -> Routing {
    Routing {
        event_kinds: kinds.to_vec(),
        min_severity,
        enabled: true,
    }
}

pub fn flag(call_id: Uuid, severity: Severity) -> Event {
    Event::Flag {
        call_id,
        flag_id: Some(Uuid::new_v4()),
        rule_id: "card-number".into(),
        category: Category::Compliance,
        severity,
        evidence: "sure it's 4242".into(),
        start_ms: Some(42_500),
        speaker: Some("customer".into()),
    }
}

/// Runs batches until no row is pending or sending (retries included), within `limit`.
pub async fn settle(lane: &NotifyLane, db: &TestDatabase, limit: Duration) -> NotifyReport {
    let deadline = tokio::time::Instant::now() + limit;
    let mut report = NotifyReport::default();
    loop {
        if let Some(batch) = lane.run_batch().await.unwrap() {
            report.delivered += batch.delivered;
            report.retrying += batch.retrying;
            report.failed += batch.failed;
            report.lost += batch.lost;
            continue;
        }
        if open_rows(db).await == 0 {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rows still open after {limit:?}: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn open_rows(db: &TestDatabase) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM core.notifications WHERE state IN ('pending', 'sending')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// (channel, state, attempts, last_error) of every row, by channel.
pub async fn rows(db: &TestDatabase) -> Vec<(String, String, i32, Option<String>)> {
    db.client()
        .await
        .query(
            "SELECT channel, state::text, attempts, last_error FROM core.notifications
             ORDER BY channel, created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

pub const SIGNING_SECRET: &str = "whsec_test_secret";

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
pub struct InboxState {
    /// Statuses to answer with, in order; 200 once they run out (or `always` when set).
    answers: VecDeque<u16>,
    always: Option<u16>,
    seen: Vec<Seen>,
}

/// A webhook receiver on loopback that records what it gets.
#[derive(Clone, Default)]
pub struct Inbox(Arc<Mutex<InboxState>>);

impl Inbox {
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{*path}", post(receive))
            .with_state(self.clone())
    }

    pub async fn start(&self) -> LoopbackServer {
        LoopbackServer::start(self.router()).await
    }

    pub fn answer(&self, statuses: &[u16]) {
        self.0.lock().unwrap().answers.extend(statuses);
    }

    pub fn always(&self, status: u16) {
        self.0.lock().unwrap().always = Some(status);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().seen.clone()
    }
}

async fn receive(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut state = inbox.0.lock().unwrap();
    state.seen.push(Seen { headers, body });
    let status = state.answers.pop_front().or(state.always).unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

pub async fn add_webhook(
    client: &impl GenericClient,
    org: Uuid,
    name: &str,
    url: String,
    routing: &Routing,
) {
    let target = Target::Webhook {
        url,
        signing_secret: Secret::new(SIGNING_SECRET),
    };
    channels::save(client, &key(), org, name, routing, &target)
        .await
        .unwrap();
}

pub async fn add_slack(
    client: &impl GenericClient,
    org: Uuid,
    name: &str,
    url: String,
    routing: &Routing,
) {
    let target = Target::Slack {
        webhook_url: Secret::new(url),
    };
    channels::save(client, &key(), org, name, routing, &target)
        .await
        .unwrap();
}

pub async fn one_call(client: &impl GenericClient, org: Uuid, name: &str) -> Uuid {
    insert_downloaded_calls(client, org, name, 1, Utc::now()).await;
    client
        .query_one(
            "SELECT id FROM core.calls WHERE org_id = $1 AND external_id = $2",
            &[&org, &format!("{name}-0")],
        )
        .await
        .unwrap()
        .get(0)
}
