//! When messages go out (quiet hours and rate limits, with their digests), queue health alerts,
//! and the lane's wake-up, against the real Postgres and a loopback webhook receiver.

mod common;

use std::time::Duration;

use callscript_core::model::{Lane, Severity};
use callscript_notify::alerts::{self, AlertSettings};
use callscript_notify::policy::{self, Policy, QuietHours, RateLimit};
use callscript_notify::{enqueue_event, EventKind, NotifyConfig, NotifyLane, NotifyReport};
use callscript_testkit::vendors::LoopbackServer;
use callscript_testkit::{create_org, insert_downloaded_calls, TestDatabase};
use chrono::{DateTime, Timelike, Utc};
use serde_json::Value;
use tokio::sync::watch;
use uuid::Uuid;

use common::{add_webhook, fast_config, flag, key, lane, routing, Inbox};

/// A database with the organization `acme` whose webhook channel `name` gets every event of
/// `kind`, and the receiver behind it (kept running while it is held).
async fn acme_with_webhook(
    name: &str,
    kind: EventKind,
) -> (TestDatabase, Uuid, Inbox, LoopbackServer) {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let receiver = inbox.start().await;
    let url = receiver.url(&format!("/{name}"));
    add_webhook(&**client, org, name, url, &routing(&[kind], Severity::Info)).await;
    (db, org, inbox, receiver)
}

/// Waits until `inbox` has seen `count` messages, within `limit`.
async fn wait_for_messages(inbox: &Inbox, count: usize, limit: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = inbox.seen();
        if seen.len() >= count {
            return seen.iter().map(|seen| seen.json()).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} messages after {limit:?}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs batches until none is due now; held rows stay pending for later.
async fn run_until_idle(lane: &NotifyLane) -> NotifyReport {
    let (_keep, stop) = watch::channel(false);
    lane.run(true, stop).await.unwrap()
}

/// (state, held_reason, next_attempt_at, digest_id) of each row of `event_kind`, oldest first.
async fn states(
    db: &TestDatabase,
    event_kind: &str,
) -> Vec<(String, Option<String>, DateTime<Utc>, Option<Uuid>)> {
    db.client()
        .await
        .query(
            "SELECT state::text, held_reason, next_attempt_at, digest_id FROM core.notifications
             WHERE event_kind = $1 ORDER BY created_at, dedup_key",
            &[&event_kind],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

#[tokio::test]
async fn a_queue_condition_is_one_alert_and_one_resolution() {
    let (db, org, inbox, _receiver) = acme_with_webhook("ops", EventKind::Queue).await;
    let client = db.client().await;
    // A one-minute backlog alert; the worker condition cannot hold within the test.
    let settings = AlertSettings {
        backlog_minutes: 1,
        worker_silence_minutes: 600,
        ..AlertSettings::default()
    };
    alerts::save_settings(&**client, org, &settings)
        .await
        .unwrap();
    insert_downloaded_calls(&**client, org, "waiting", 3, Utc::now()).await;

    // The lane checks every 20 ms: dozens of checks while each state lasts.
    let lane = NotifyLane::new(
        db.pool.clone(),
        key(),
        NotifyConfig {
            health_check_every: Some(Duration::from_millis(20)),
            ..fast_config()
        },
    )
    .listening(db.url.clone());
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { lane.run(false, stop).await });
    let settle = Duration::from_millis(400);
    tokio::time::sleep(settle).await;
    assert!(
        inbox.seen().is_empty(),
        "calls that just arrived are no backlog"
    );

    let backdate = "UPDATE core.calls SET queued_at = now() - interval '3 minutes'";
    client.execute(backdate, &[]).await.unwrap();
    let started = wait_for_messages(&inbox, 1, Duration::from_secs(10)).await;
    tokio::time::sleep(settle).await;
    assert_eq!(
        inbox.seen().len(),
        1,
        "one alert however many checks see it"
    );
    let event = &started[0]["event"];
    assert_eq!(event["kind"], "queue");
    assert_eq!(event["condition"], "backlog");
    assert_eq!(event["resolved_at"], Value::Null);
    let detail = event["detail"].as_str().unwrap();
    assert!(
        detail.contains("has waited 3 min (alert from 1 min)"),
        "{detail}"
    );

    // The backlog clears (the waiting calls are fresh again): the condition ends, once.
    client
        .execute("UPDATE core.calls SET queued_at = now()", &[])
        .await
        .unwrap();
    let messages = wait_for_messages(&inbox, 2, Duration::from_secs(10)).await;
    tokio::time::sleep(settle).await;
    assert_eq!(
        inbox.seen().len(),
        2,
        "one resolution however many checks see it"
    );
    let resolved = &messages[1]["event"];
    assert_eq!(resolved["alert_id"], event["alert_id"]);
    assert!(resolved["resolved_at"].is_string());
    let detail = resolved["detail"].as_str().unwrap();
    assert!(detail.contains("has waited 0 min"), "{detail}");

    // It comes back: a new episode with its own alert.
    client.execute(backdate, &[]).await.unwrap();
    let messages = wait_for_messages(&inbox, 3, Duration::from_secs(10)).await;
    assert_ne!(messages[2]["event"]["alert_id"], event["alert_id"]);
    assert_eq!(messages[2]["event"]["resolved_at"], Value::Null);

    stop_tx.send(true).unwrap();
    let report = running.await.unwrap().unwrap();
    assert_eq!((report.queue_alerts, report.queue_resolved), (2, 1));
    assert_eq!(report.delivered, 3);
    let episodes = alerts::episodes(&**client, org, 10).await.unwrap();
    assert_eq!(episodes.len(), 2);
    assert!(episodes[0].resolved.is_none(), "the open episode first");
    assert!(episodes[1].resolved.is_some());
}

#[tokio::test]
async fn a_disabled_organization_gets_no_queue_alerts() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    insert_downloaded_calls(&**client, org, "waiting", 2, Utc::now()).await;
    client
        .execute(
            "UPDATE core.calls SET queued_at = now() - interval '2 hours'",
            &[],
        )
        .await
        .unwrap();
    let disabled = AlertSettings {
        enabled: false,
        ..AlertSettings::default()
    };
    alerts::save_settings(&**client, org, &disabled)
        .await
        .unwrap();
    let checked = alerts::check_all(&db.pool).await.unwrap();
    assert_eq!(checked, alerts::CheckReport::default());

    // Enabled, the two-hour backlog and the missing worker are two alerts, once.
    alerts::save_settings(&**client, org, &AlertSettings::default())
        .await
        .unwrap();
    assert_eq!(alerts::check_all(&db.pool).await.unwrap().started, 2);
    assert_eq!(alerts::check_all(&db.pool).await.unwrap().started, 0);
    // A worker reporting in ends one of them.
    callscript_core::workers::report_in(&**client, "gpu-1", Lane::Transcribe, None)
        .await
        .unwrap();
    let checked = alerts::check_all(&db.pool).await.unwrap();
    assert_eq!((checked.started, checked.resolved), (0, 1));
}

/// Quiet hours around now, in the organization's zone (UTC).
fn quiet_now(bypass: Option<Severity>) -> QuietHours {
    let now = Utc::now().time();
    let hour = |offset: i64| {
        (now + chrono::Duration::hours(offset))
            .with_second(0)
            .and_then(|time| time.with_nanosecond(0))
            .unwrap()
    };
    QuietHours {
        start: hour(-1),
        end: hour(1),
        bypass,
    }
}

#[tokio::test]
async fn quiet_hours_hold_all_but_critical_and_send_the_rest_as_one_digest() {
    let (db, org, inbox, _receiver) = acme_with_webhook("qa", EventKind::Flag).await;
    let client = db.client().await;
    let quiet = quiet_now(Some(Severity::Critical));
    let night = Policy {
        quiet: Some(quiet),
        rate_limit: None,
    };
    assert!(policy::save(&**client, org, "qa", &night).await.unwrap());

    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    for _ in 0..3 {
        enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::High))
            .await
            .unwrap();
    }
    let lane = lane(&db);
    let report = run_until_idle(&lane).await;
    assert_eq!((report.delivered, report.held), (1, 3), "{report:?}");
    let seen = inbox.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json()["event"]["severity"], "critical");
    let held = states(&db, "flag").await;
    let ends_at = quiet
        .end_after(Utc::now(), chrono_tz::UTC)
        .expect("now is quiet");
    for (state, reason, due, _) in held.iter().filter(|row| row.0 == "pending") {
        assert_eq!(
            (state.as_str(), reason.as_deref()),
            ("pending", Some("quiet_hours"))
        );
        assert_eq!(*due, ends_at, "held until quiet hours end");
    }
    assert_eq!(held.iter().filter(|row| row.0 == "pending").count(), 3);

    // Morning: the quiet hours are over (moved past now here) and the held messages are due.
    let later = Policy {
        quiet: Some(QuietHours {
            start: quiet.end,
            end: (quiet.end + chrono::Duration::hours(1)),
            ..quiet
        }),
        rate_limit: None,
    };
    assert!(policy::save(&**client, org, "qa", &later).await.unwrap());
    client
        .execute(
            "UPDATE core.notifications SET next_attempt_at = now() WHERE state = 'pending'",
            &[],
        )
        .await
        .unwrap();
    let report = run_until_idle(&lane).await;
    assert_eq!((report.folded, report.delivered), (3, 1), "{report:?}");
    let seen = inbox.seen();
    assert_eq!(seen.len(), 2, "the three held flags are one message");
    let digest = seen[1].json();
    assert_eq!(digest["event"]["kind"], "digest");
    assert_eq!(digest["event"]["reason"], "quiet_hours");
    assert_eq!(digest["event"]["events"].as_array().unwrap().len(), 3);
    assert_eq!(digest["delivery"], seen[1].header("x-callscript-delivery"));

    let folded = states(&db, "flag").await;
    let digest_rows = states(&db, "digest").await;
    assert_eq!(digest_rows.len(), 1);
    assert_eq!(digest_rows[0].0, "delivered");
    let carried: Vec<_> = folded.iter().filter(|row| row.0 == "digested").collect();
    assert_eq!(carried.len(), 3);
    let digest_id: Uuid = client
        .query_one(
            "SELECT id FROM core.notifications WHERE event_kind = 'digest'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(carried.iter().all(|row| row.3 == Some(digest_id)));
}

#[tokio::test]
async fn past_the_rate_limit_the_rest_is_one_digest_and_then_waits() {
    let (db, org, inbox, _receiver) = acme_with_webhook("qa", EventKind::Flag).await;
    let client = db.client().await;
    let limited = Policy {
        quiet: None,
        rate_limit: Some("2/hour".parse::<RateLimit>().unwrap()),
    };
    assert!(policy::save(&**client, org, "qa", &limited).await.unwrap());

    // A storm of five in one batch: the critical one alone, the other four as one digest.
    for _ in 0..4 {
        enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::High))
            .await
            .unwrap();
    }
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    let lane = lane(&db);
    let report = run_until_idle(&lane).await;
    assert_eq!((report.delivered, report.folded), (2, 4), "{report:?}");
    let seen = inbox.seen();
    assert_eq!(seen.len(), 2, "two messages: the limit");
    assert_eq!(seen[0].json()["event"]["severity"], "critical");
    let digest = seen[1].json();
    assert_eq!(digest["event"]["reason"], "rate_limit");
    assert_eq!(digest["event"]["events"].as_array().unwrap().len(), 4);

    // The window is full: the next one waits until the first delivery leaves it.
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    let report = run_until_idle(&lane).await;
    assert_eq!((report.delivered, report.held), (0, 1), "{report:?}");
    assert_eq!(inbox.seen().len(), 2);
    let first_delivery: DateTime<Utc> = client
        .query_one(
            "SELECT min(delivered_at) FROM core.notifications WHERE delivered_at IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let waiting: Vec<_> = states(&db, "flag")
        .await
        .into_iter()
        .filter(|row| row.0 == "pending")
        .collect();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].1.as_deref(), Some("rate_limit"));
    assert_eq!(waiting[0].2, first_delivery + chrono::Duration::hours(1));
}

#[tokio::test]
async fn a_new_row_wakes_the_idle_lane_long_before_its_poll() {
    let (db, org, inbox, _receiver) = acme_with_webhook("qa", EventKind::Flag).await;
    // Polling once a minute: only the NOTIFY of the outbox insert can deliver within the test.
    let lane = NotifyLane::new(
        db.pool.clone(),
        key(),
        NotifyConfig {
            poll_interval: Duration::from_secs(60),
            ..fast_config()
        },
    )
    .listening(db.url.clone());
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { lane.run(false, stop).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    for round in 1..=3 {
        let mut client = db.client().await;
        let transaction = client.transaction().await.unwrap();
        enqueue_event(&*transaction, org, &flag(Uuid::new_v4(), Severity::High))
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        wait_for_messages(&inbox, round, Duration::from_secs(20)).await;
    }
    stop_tx.send(true).unwrap();
    assert_eq!(running.await.unwrap().unwrap().delivered, 3);
}
