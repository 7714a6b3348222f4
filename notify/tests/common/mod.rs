//! What the notify tests share: the sealing key, a lane that retries within milliseconds, and
//! the outbox as the tests look at it.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::time::Duration;

use callscript_core::credentials::CredentialKey;
use callscript_core::model::{Category, Severity};
use callscript_notify::channels::Routing;
use callscript_notify::{Event, EventKind, NotifyConfig, NotifyLane, NotifyReport};
use callscript_testkit::TestDatabase;
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
