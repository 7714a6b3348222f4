//! The judge lane's sales output against the real Postgres: leads scored from what customers
//! said, follow-ups dated in the organization's time zone, do-not-call requests honoured,
//! conversions recorded, re-judging idempotent, and the managers' daily report.

mod common;

use callscript_core::model::{Lane, Source, SpeakerRole};
use callscript_core::queue::{self, NewCall};
use callscript_core::transcripts::SegmentRecord;
use callscript_judge::report;
use callscript_testkit::{downloaded_call, TestDatabase};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{interested_opening, lane, segment, transcribed, DISCLOSURE};
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use SpeakerRole::{Agent, Customer};

async fn new_york_org(client: &impl GenericClient) -> Uuid {
    callscript_core::orgs::ensure(client, "acme", "Acme", "America/New_York")
        .await
        .unwrap()
        .0
        .id
}

/// 2026-11-05 at `hour`:`minute` in New York (EST, UTC-5).
fn new_york(hour: u32, minute: u32) -> DateTime<Utc> {
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 11, 5, hour, minute, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// A call from `phone` at `started_at` with `segments`, as Ringba would have queued it.
async fn call_from(
    client: &impl GenericClient,
    org: Uuid,
    id: &str,
    phone: &str,
    started_at: DateTime<Utc>,
    ringba: serde_json::Value,
    segments: Vec<SegmentRecord>,
) -> Uuid {
    let mut call: NewCall = downloaded_call(org, id, started_at);
    call.source = Source::Ringba;
    call.caller_number = Some(phone.to_owned());
    call.metadata = json!({ "ringba": ringba });
    transcribed(client, call, segments).await
}

fn buyer() -> Vec<SegmentRecord> {
    let mut segments = interested_opening();
    segments.extend([segment(
        15.0,
        20.0,
        Customer,
        "That sounds good. Sign me up, what's the next step?",
    )]);
    segments
}

fn callback_tomorrow() -> Vec<SegmentRecord> {
    vec![
        segment(0.0, 4.0, Agent, DISCLOSURE),
        segment(
            5.0,
            10.0,
            Customer,
            "It's a bit too expensive for us right now. How long does the installation take?",
        ),
        segment(11.0, 13.0, Agent, "I understand. When can I reach you?"),
        segment(
            14.0,
            18.0,
            Customer,
            "Call me back tomorrow at ten, I'm interested in the details.",
        ),
    ]
}

fn not_interested() -> Vec<SegmentRecord> {
    vec![
        segment(0.0, 4.0, Agent, DISCLOSURE),
        segment(
            5.0,
            8.0,
            Customer,
            "No thanks, I'm not interested, we already have a provider.",
        ),
    ]
}

fn stop_calling() -> Vec<SegmentRecord> {
    vec![
        segment(0.0, 4.0, Agent, DISCLOSURE),
        segment(
            5.0,
            8.0,
            Customer,
            "Stop calling me and take me off your list.",
        ),
    ]
}

#[derive(Debug, PartialEq)]
struct Lead {
    phone: Option<String>,
    score: Option<i16>,
    temperature: Option<String>,
    status: String,
    do_not_call: bool,
}

async fn leads(client: &impl GenericClient) -> Vec<Lead> {
    client
        .query(
            "SELECT phone_number, interest_score, temperature::text, status::text, do_not_call
             FROM crm.leads ORDER BY phone_number",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| Lead {
            phone: row.get(0),
            score: row.get(1),
            temperature: row.get(2),
            status: row.get(3),
            do_not_call: row.get(4),
        })
        .collect()
}

/// (phone, type, status, due at in UTC, source words) of every follow-up.
async fn actions(
    client: &impl GenericClient,
) -> Vec<(String, String, String, DateTime<Utc>, Option<String>)> {
    client
        .query(
            "SELECT l.phone_number, a.action_type, a.status::text, a.due_at, a.source_text
             FROM crm.scheduled_actions a JOIN crm.leads l ON l.id = a.lead_id
             ORDER BY l.phone_number, a.due_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4)))
        .collect()
}

/// Every CRM row's id and what identifies it: equal before and after a re-run means nothing
/// was added, removed or re-keyed.
async fn crm_rows(client: &impl GenericClient) -> Vec<String> {
    client
        .query(
            "SELECT 'lead ' || id || ' ' || coalesce(interest_score::text, '-') || ' ' || status
             FROM crm.leads
             UNION ALL SELECT 'communication ' || id || ' ' || call_id || ' ' || disposition
             FROM crm.lead_communications
             UNION ALL SELECT 'action ' || id || ' ' || action_type || ' ' || due_at || ' '
                              || status FROM crm.scheduled_actions
             UNION ALL SELECT 'conversion ' || id || ' ' || event_type || ' '
                              || coalesce(value::text, '-') FROM crm.conversion_events
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn leads_follow_ups_and_conversions_from_judged_calls() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = new_york_org(&**client).await;
    let converted = json!({"hasConverted": true, "conversionAmount": 120.5, "payoutAmount": 30});
    call_from(
        &**client,
        org,
        "buyer",
        "+15550001",
        new_york(11, 0),
        converted,
        buyer(),
    )
    .await;
    call_from(
        &**client,
        org,
        "callback",
        "+15550002",
        new_york(15, 0),
        json!({"hasConverted": false}),
        callback_tomorrow(),
    )
    .await;
    call_from(
        &**client,
        org,
        "cold",
        "+15550003",
        new_york(16, 30),
        json!({}),
        not_interested(),
    )
    .await;

    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(
        (
            report.judged,
            report.new_leads,
            report.actions,
            report.conversions
        ),
        (3, 3, 1, 2),
        "{report:?}"
    );
    let stored = leads(&**client).await;
    assert_eq!(
        stored
            .iter()
            .map(|l| (
                l.phone.as_deref().unwrap(),
                l.temperature.as_deref().unwrap(),
                l.status.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("+15550001", "hot", "converted"),
            ("+15550002", "warm", "contacted"),
            ("+15550003", "cold", "contacted"),
        ]
    );
    assert!(stored[0].score.unwrap() >= 90, "{stored:?}");
    assert!((40..70).contains(&stored[1].score.unwrap()), "{stored:?}");
    assert!(stored[2].score.unwrap() < 40, "{stored:?}");

    // The lead's stored signals add up to its score: it can be explained.
    let row = client
        .query_one(
            "SELECT interest_score, score_signals FROM crm.leads WHERE phone_number = '+15550002'",
            &[],
        )
        .await
        .unwrap();
    let score: i16 = row.get(0);
    let signals: serde_json::Value = row.get(1);
    let sum: i64 = signals
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, i64::from(score), "{signals}");

    // "Call me back tomorrow at ten", said on Thursday 5 November at 15:00 in New York, is
    // Friday 10:00 EST, 15:00 UTC.
    assert_eq!(
        actions(&**client).await,
        [(
            "+15550002".to_owned(),
            "callback".to_owned(),
            "pending".to_owned(),
            Utc.with_ymd_and_hms(2026, 11, 6, 15, 0, 0).unwrap(),
            Some("Call me back tomorrow at ten".to_owned())
        )]
    );

    // The communication holds the call: transcript, summary, disposition, objections.
    let row = client
        .query_one(
            "SELECT m.disposition, m.duration_seconds, m.recording_key, m.objections, m.summary,
                    m.transcript, m.occurred_at
             FROM crm.lead_communications m JOIN core.calls c ON c.id = m.call_id
             WHERE c.external_id = 'callback'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "callback-requested");
    assert_eq!(row.get::<_, Option<i32>>(1), Some(19));
    assert_eq!(row.get::<_, Option<&str>>(2), Some("test/callback.wav"));
    let objections: serde_json::Value = row.get(3);
    let labels: Vec<&str> = objections
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["price"]);
    assert!(!row.get::<_, &str>(4).is_empty());
    assert!(row.get::<_, &str>(5).contains("Call me back tomorrow"));
    assert_eq!(row.get::<_, DateTime<Utc>>(6), new_york(15, 0));

    let conversions: Vec<(String, Option<String>)> = client
        .query(
            "SELECT event_type, value::text FROM crm.conversion_events ORDER BY event_type",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        conversions,
        [
            ("vendor-conversion".to_owned(), Some("120.50".to_owned())),
            ("verbal-commitment".to_owned(), None),
        ]
    );

    // Judging every call again changes nothing.
    let before = crm_rows(&**client).await;
    assert_eq!(
        queue::redo(&**client, Lane::Judge, Some(org))
            .await
            .unwrap(),
        3
    );
    let again = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!((again.judged, again.new_leads), (3, 0));
    assert_eq!(crm_rows(&**client).await, before);

    // The managers' report of that New York day.
    let day = NaiveDate::from_ymd_opt(2026, 11, 5).unwrap();
    let daily = report::daily(&**client, org, day, new_york(18, 0))
        .await
        .unwrap();
    assert_eq!(
        (daily.calls.total, daily.calls.judged, daily.calls.flagged),
        (3, 3, 0)
    );
    assert_eq!(
        (
            daily.leads.new,
            daily.leads.hot,
            daily.leads.warm,
            daily.leads.cold
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(daily.conversions, 2);
    assert!((daily.conversion_value - 120.5).abs() < 1e-9);
    let objections: Vec<(&str, i64)> = daily
        .top_objections
        .iter()
        .map(|o| (o.label.as_str(), o.count))
        .collect();
    assert_eq!(
        objections,
        [("need", 1), ("not-interested", 1), ("price", 1)]
    );
    assert_eq!(daily.actions.len(), 1);
    assert_eq!(daily.actions[0].action_type, "callback");
    assert!(!daily.actions[0].overdue);
    let text = daily.to_text();
    assert!(
        text.contains("calls: 3 (3 judged, 0 flagged, 0 failed)"),
        "{text}"
    );
    assert!(text.contains("Fri 06 Nov 10:00"), "{text}");
    daily.store(&**client).await.unwrap();
    daily.store(&**client).await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM crm.daily_reports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    // The next day has none of it.
    let next = report::daily(&**client, org, day.succ_opt().unwrap(), new_york(18, 0))
        .await
        .unwrap();
    assert_eq!((next.calls.total, next.leads.new), (0, 0));
}

#[tokio::test]
async fn a_do_not_call_request_cancels_follow_ups_and_marks_the_lead() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = new_york_org(&**client).await;
    let phone = "+15550009";
    let first = call_from(
        &**client,
        org,
        "first",
        phone,
        new_york(9, 0),
        json!({}),
        callback_tomorrow(),
    )
    .await;
    lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(actions(&**client).await[0].2, "pending");

    // The same customer calls again that afternoon and asks not to be called.
    call_from(
        &**client,
        org,
        "second",
        phone,
        new_york(14, 0),
        json!({}),
        stop_calling(),
    )
    .await;
    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(
        (report.new_leads, report.cancelled, report.actions),
        (0, 1, 0)
    );
    let stored = leads(&**client).await;
    assert_eq!(
        stored,
        [Lead {
            phone: Some(phone.to_owned()),
            score: Some(0),
            temperature: Some("cold".to_owned()),
            status: "do_not_call".to_owned(),
            do_not_call: true,
        }]
    );
    let cancelled = actions(&**client).await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].2, "cancelled");
    let note: String = client
        .query_one("SELECT note FROM crm.scheduled_actions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(note.contains("asked not to be called"), "{note}");
    assert!(note.contains("\"Stop calling\""), "{note}");

    // Judging the first call again does not bring its callback back.
    client
        .execute(
            "UPDATE core.calls SET state = 'transcribed' WHERE id = $1",
            &[&first],
        )
        .await
        .unwrap();
    lane(&db).run_batch().await.unwrap().unwrap();
    let after = actions(&**client).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].2, "cancelled");
    assert_eq!(leads(&**client).await[0].status, "do_not_call");

    let daily = report::daily(
        &**client,
        org,
        NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(),
        new_york(18, 0),
    )
    .await
    .unwrap();
    assert_eq!(daily.leads.do_not_call, 1);
    assert!(daily.actions.is_empty());
}

#[tokio::test]
async fn critical_flags_and_leads_turning_hot_are_queued_for_alerts_once() {
    use callscript_core::credentials::{CredentialKey, Secret};
    use callscript_notify::channels::{self, Routing, Target};

    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = new_york_org(&**client).await;
    let key = CredentialKey::from_base64(&format!("{}A=", "B".repeat(42))).unwrap();
    // Compliance gets flags from high up; sales only hot leads.
    for (name, routing) in [
        (
            "compliance",
            Routing {
                event_kinds: vec![callscript_notify::EventKind::Flag],
                ..Routing::default()
            },
        ),
        (
            "sales",
            Routing {
                event_kinds: vec![callscript_notify::EventKind::HotLead],
                ..Routing::default()
            },
        ),
    ] {
        channels::save(
            &**client,
            &key,
            org,
            name,
            &routing,
            &Target::Webhook {
                url: format!("http://127.0.0.1:9/{name}"),
                signing_secret: Secret::new("whsec_test"),
            },
        )
        .await
        .unwrap();
    }
    call_from(
        &**client,
        org,
        "buyer",
        "+15550001",
        new_york(11, 0),
        json!({}),
        buyer(),
    )
    .await;
    call_from(
        &**client,
        org,
        "dnc",
        "+15550002",
        new_york(12, 0),
        json!({}),
        stop_calling(),
    )
    .await;
    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(report.notifications, 2, "{report:?}");
    let queued = || async {
        client
            .query(
                "SELECT channel, event_kind, dedup_key FROM core.notifications ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    // The do-not-call request (high) to compliance; the buyer turning hot to sales.
    assert_eq!(
        queued().await,
        [
            ("compliance".to_owned(), "flag".to_owned()),
            ("sales".to_owned(), "hot_lead".to_owned()),
        ]
    );
    // Judged again: the lead was already hot and the flag already told.
    queue::redo(&**client, Lane::Judge, Some(org))
        .await
        .unwrap();
    let again = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!(again.notifications, 0);
    assert_eq!(queued().await.len(), 2);
}
