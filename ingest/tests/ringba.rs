//! The Ringba lane against a loopback Ringba (documented payload shapes) and the real Postgres,
//! then the vault against a real S3 server: pagination, idempotent backfills, 429 and 5xx
//! retries, live calls and unpublished recording links looked at again, refreshes.

use std::time::Duration;

use callscript_core::credentials::{self, CredentialKey, CredentialSpec, Secret};
use callscript_core::cursors;
use callscript_core::model::Source;
use callscript_core::queue::Until;
use callscript_core::storage::sha256_hex;
use callscript_ingest::ringba::{
    backfill, poll, PollConfig, RetryPolicy, RingbaClient, RingbaError, RingbaLane,
};
use callscript_ingest::vault::{VaultConfig, VaultLane};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::vendors::ringba::FakeRingba;
use callscript_testkit::{create_org, TestDatabase};
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

const ACCOUNT: &str = "RA0f3c9b5e1d2a4c6b8e7f9a1b2c3d4e5f";
const TOKEN: &str = "ringba-api-token-test";

fn client(ringba: &FakeRingba, token: &str) -> RingbaClient {
    RingbaClient::new(
        callscript_ingest::http::client(Duration::from_secs(10)),
        Some(&ringba.api_url()),
        ACCOUNT,
        Secret::new(token),
    )
    .with_retry(RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_secs(2),
    })
}

fn config() -> PollConfig {
    PollConfig {
        page_size: 10,
        window: Duration::from_secs(24 * 3600),
        ..PollConfig::default()
    }
}

/// (external id, state, the link kept for the vault) per call.
async fn calls(client: &impl GenericClient, org: Uuid) -> Vec<(String, String, Option<String>)> {
    client
        .query(
            "SELECT c.external_id, c.state::text, l.url
             FROM core.calls c LEFT JOIN core.call_recording_links l ON l.call_id = c.id
             WHERE c.org_id = $1 ORDER BY c.external_id",
            &[&org],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_backfill_pages_through_windows_and_twice_inserts_each_call_once() {
    let db = TestDatabase::new(4).await;
    let db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let start: DateTime<Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    // 25 calls over three days; one without a recording.
    for i in 0..25 {
        let key = format!("rec{i}");
        ringba.add_call(&format!("v2call{i:02}"), start + Span::hours(3 * i), &key);
    }
    ringba.update_call(
        "v2call07",
        json!({"hasRecording": false, "recordingUrl": ""}),
    );
    let client = client(&ringba, TOKEN);
    let range = (start, start + Span::days(4));

    let mut seen = Vec::new();
    let first = backfill(&db.pool, &client, org, range, &config(), &mut |p| {
        seen.push(*p)
    })
    .await
    .unwrap();
    assert_eq!(first.records, 25);
    assert_eq!(first.queued, 24);
    assert_eq!(first.without_recording, 1);
    assert_eq!(first.windows, 4);
    // Day windows of 8 calls (the last has 1): one page of 10 each, plus none for an empty day.
    assert!(first.pages >= 4, "{first:?}");
    assert_eq!(seen.last().unwrap().windows_done, 4);
    assert_eq!(seen.last().unwrap().windows_total, 4);

    let again = backfill(&db.pool, &client, org, range, &config(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.records, 25);
    assert_eq!((again.queued, again.unchanged), (0, 25));
    let stored = calls(&**db_client, org).await;
    assert_eq!(stored.len(), 25, "each call once");
    let skipped: Vec<_> = stored.iter().filter(|c| c.1 == "skipped").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, "v2call07");
    assert!(stored.iter().filter(|c| c.1 == "pending").all(|c| c
        .2
        .as_deref()
        .is_some_and(|u| u.contains("recording-public"))));

    // The documented fields are kept: numbers and campaign as columns, the rest as metadata.
    let row = db_client
        .query_one(
            "SELECT c.caller_number, c.callee_number, k.external_id, k.name,
                    c.metadata->'ringba'->>'publisherName', c.metadata->'ringba'->'payoutAmount',
                    c.call_started_at
             FROM core.calls c JOIN core.campaigns k ON k.id = c.campaign_id
             WHERE c.external_id = 'v2call03'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "+16613804706");
    assert_eq!(row.get::<_, String>(1), "+18884143472");
    assert_eq!(
        row.get::<_, String>(2),
        "CA74c0b7f1f3824246b73e72a9238b4bfc"
    );
    assert_eq!(row.get::<_, String>(3), "API Test");
    assert_eq!(row.get::<_, String>(4), "You");
    assert_eq!(row.get::<_, serde_json::Value>(5), json!(0));
    assert_eq!(row.get::<_, DateTime<Utc>>(6), start + Span::hours(9));

    // Requests asked for pages of 10, newest first, windows inside the range.
    let requests = ringba.report_requests();
    assert!(requests.iter().all(|r| r.body["size"] == 10));
    assert!(requests
        .iter()
        .all(|r| r.body["orderByColumns"][0]["direction"] == "desc"));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_unauthorized_is_not() {
    let db = TestDatabase::new(4).await;
    let db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let now = Utc::now();
    ringba.add_call("v2recent", now - Span::minutes(5), "recent");

    ringba.throttle_next(2);
    let report = poll(&db.pool, &client(&ringba, TOKEN), org, &config(), now)
        .await
        .unwrap();
    assert_eq!(report.queued, 1);
    let statuses: Vec<u16> = ringba.report_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
    // Ringba's Retry-After (1 s) was honoured between the tries.
    let requests = ringba.report_requests();
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(900));

    ringba.fail_next(2);
    let report = poll(
        &db.pool,
        &client(&ringba, TOKEN),
        org,
        &config(),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(report.unchanged, 1);

    ringba.fail_next(10);
    match poll(
        &db.pool,
        &client(&ringba, TOKEN),
        org,
        &config(),
        Utc::now(),
    )
    .await
    {
        Err(RingbaError::Unavailable { attempts, last, .. }) => {
            assert_eq!(attempts, 4);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }

    let before = ringba.report_requests().len();
    match poll(
        &db.pool,
        &client(&ringba, "wrong"),
        org,
        &config(),
        Utc::now(),
    )
    .await
    {
        Err(e @ RingbaError::Unauthorized { .. }) => {
            assert!(e.to_string().contains(ACCOUNT), "{e}");
            assert!(
                !e.to_string().contains("wrong"),
                "the token is never shown: {e}"
            );
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(
        ringba.report_requests().len(),
        before + 1,
        "no retry on 401"
    );
    assert_eq!(calls(&**db_client, org).await.len(), 1);
}

#[tokio::test]
async fn live_calls_and_unpublished_links_are_looked_at_again_not_lost() {
    let db = TestDatabase::new(4).await;
    let db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let client = client(&ringba, TOKEN);
    let now = Utc::now();
    // Within the first poll's hour, before the next polls' 15-minute overlap.
    ringba.add_call("v2live", now - Span::minutes(50), "live");
    ringba.update_call("v2live", json!({"isLive": true, "recordingUrl": ""}));
    ringba.add_call("v2unpublished", now - Span::minutes(45), "");
    ringba.add_call("v2abandoned", now - Span::minutes(40), "");
    ringba.add_call("v2done", now - Span::minutes(55), "done");

    let first = poll(&db.pool, &client, org, &config(), now).await.unwrap();
    assert_eq!((first.queued, first.awaiting), (1, 3));
    assert_eq!(calls(&**db_client, org).await.len(), 1);
    let cursor = cursors::load(&**db_client, org, Source::Ringba, ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.watermark.timestamp_micros(), now.timestamp_micros());
    assert_eq!(cursor.recheck.len(), 3);

    // The call ends and both links are published; the abandoned one never gets its link.
    ringba.update_call(
        "v2live",
        json!({"isLive": false, "recordingUrl": ringba.recording_url("live")}),
    );
    ringba.update_call(
        "v2unpublished",
        json!({"recordingUrl": ringba.recording_url("unpublished")}),
    );
    // The next poll's window no longer includes these calls: only call details find them.
    let later = now + Span::minutes(5);
    let second = poll(&db.pool, &client, org, &config(), later)
        .await
        .unwrap();
    assert_eq!((second.records, second.resolved), (0, 2), "{second:?}");
    assert!(!ringba.detail_requests().is_empty());
    let stored = calls(&**db_client, org).await;
    let by_id = |id: &str| stored.iter().find(|c| c.0 == id).cloned();
    assert_eq!(by_id("v2live").unwrap().1, "pending");
    assert!(by_id("v2live").unwrap().2.unwrap().ends_with("k=live"));
    assert_eq!(by_id("v2unpublished").unwrap().1, "pending");
    assert!(by_id("v2abandoned").is_none());

    // Past the give-up time it is kept as skipped with the reason, and no longer looked at.
    let give_up = PollConfig {
        recheck_give_up: Duration::ZERO,
        ..config()
    };
    let third = poll(&db.pool, &client, org, &give_up, later + Span::minutes(1))
        .await
        .unwrap();
    assert_eq!(third.given_up, 1);
    let reason: String = db_client
        .query_one(
            "SELECT metadata->>'skip_reason' FROM core.calls
             WHERE external_id = 'v2abandoned' AND state = 'skipped'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        reason.contains("never published the recording link"),
        "{reason}"
    );
    let cursor = cursors::load(&**db_client, org, Source::Ringba, ACCOUNT)
        .await
        .unwrap()
        .unwrap();
    assert!(cursor.recheck.is_empty());
}

#[tokio::test]
async fn later_fields_refresh_a_known_call_without_moving_it() {
    let db = TestDatabase::new(4).await;
    let db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let client = client(&ringba, TOKEN);
    let now = Utc::now();
    ringba.add_call("v2sale", now - Span::minutes(5), "sale");
    poll(&db.pool, &client, org, &config(), now).await.unwrap();
    db_client
        .execute(
            "UPDATE core.calls SET state = 'judged' WHERE external_id = 'v2sale'",
            &[],
        )
        .await
        .unwrap();
    ringba.update_call(
        "v2sale",
        json!({"hasConverted": true, "conversionAmount": 42.5}),
    );
    let report = poll(&db.pool, &client, org, &config(), now + Span::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.refreshed, 1);
    let row = db_client
        .query_one(
            "SELECT state::text, metadata->'ringba'->'conversionAmount' FROM core.calls",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "judged");
    assert_eq!(row.get::<_, serde_json::Value>(1), json!(42.5));
}

/// The path a user runs: a stored credential, `RingbaLane` over all orgs, then the vault.
#[tokio::test]
async fn stored_credentials_drive_the_lane_and_the_vault_stores_the_recordings() {
    let db = TestDatabase::new(4).await;
    let db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let broken = create_org(&**db_client, "broken").await;
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let key = CredentialKey::from_base64(&format!("{}=", "A".repeat(43))).unwrap();
    let api = ringba.api_url();
    let spec = |public_id| CredentialSpec {
        kind: "ringba",
        label: "default",
        public_id,
        endpoint: Some(&api),
    };
    let token = Secret::new(TOKEN);
    credentials::store(&**db_client, &key, org, &spec(Some(ACCOUNT)), &token)
        .await
        .unwrap();
    // An org whose credential lacks the account id is reported, and does not stop the others.
    credentials::store(&**db_client, &key, broken, &spec(None), &token)
        .await
        .unwrap();
    let now = Utc::now();
    let wav = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/audio/goforward.wav"
    ))
    .unwrap();
    ringba.add_call("v2good", now - Span::minutes(3), "good");
    ringba.add_recording("good", wav.clone());
    ringba.add_call("v2html", now - Span::minutes(2), "html");
    ringba.add_recording("html", b"<html><body>Access denied</body></html>".to_vec());
    ringba.add_call("v2gone", now - Span::minutes(1), "never-uploaded");

    let mut lane = RingbaLane::new(
        db.pool.clone(),
        key,
        callscript_ingest::http::client(Duration::from_secs(10)),
        config(),
        None,
    );
    let outcomes = lane.poll_all().await.unwrap();
    assert_eq!(outcomes.len(), 2);
    let good = outcomes.iter().find(|o| o.org_id == org).unwrap();
    assert_eq!(good.result.as_ref().unwrap().queued, 3);
    let bad = outcomes.iter().find(|o| o.org_id == broken).unwrap();
    assert!(matches!(bad.result, Err(RingbaError::NoAccount { .. })));

    // The gone recording has one attempt, so its 404 ends it at once.
    db_client
        .execute(
            "UPDATE core.calls SET max_attempts = 1 WHERE external_id = 'v2gone'",
            &[],
        )
        .await
        .unwrap();
    let s3 = TestS3Server::start().await;
    let store = s3.store().await;
    let vault = VaultLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        store: store.clone(),
        http: callscript_ingest::http::client(Duration::from_secs(10)),
        config: VaultConfig {
            batch_size: 2,
            ..VaultConfig::default()
        },
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let until = Until::Idle {
        wait: Duration::ZERO,
    };
    let report = vault.run(until, stop).await.unwrap();
    assert_eq!(
        (report.stored, report.skipped, report.dead_lettered),
        (1, 1, 1),
        "{report:?}"
    );

    let rows = db_client
        .query(
            "SELECT external_id, state::text, object_key, sha256, content_type, size_bytes,
                    duration_ms, channels, sample_rate, last_error
             FROM core.calls WHERE org_id = $1 ORDER BY external_id",
            &[&org],
        )
        .await
        .unwrap();
    let good = rows
        .iter()
        .find(|r| r.get::<_, &str>(0) == "v2good")
        .unwrap();
    assert_eq!(good.get::<_, &str>(1), "downloaded");
    let object_key: String = good.get(2);
    assert!(
        object_key.starts_with(&format!("orgs/{org}/ringba/")),
        "{object_key}"
    );
    assert!(object_key.ends_with("/v2good.wav"), "{object_key}");
    assert_eq!(good.get::<_, String>(3), sha256_hex(&wav));
    assert_eq!(good.get::<_, &str>(4), "audio/wav");
    assert_eq!(good.get::<_, i64>(5), wav.len() as i64);
    assert_eq!(good.get::<_, i32>(6), 2_786);
    assert_eq!(good.get::<_, i16>(7), 1);
    assert_eq!(good.get::<_, i32>(8), 16_000);
    assert_eq!(store.get(&object_key).await.unwrap().as_ref(), &wav[..]);

    let html = rows
        .iter()
        .find(|r| r.get::<_, &str>(0) == "v2html")
        .unwrap();
    assert_eq!(html.get::<_, &str>(1), "failed");
    let error: String = html.get(9);
    assert!(error.contains("did not return audio"), "{error}");
    assert!(
        !error.contains("k=html"),
        "signed link keys stay out of errors: {error}"
    );

    let gone = rows
        .iter()
        .find(|r| r.get::<_, &str>(0) == "v2gone")
        .unwrap();
    assert_eq!(gone.get::<_, &str>(1), "skipped");
    assert!(gone.get::<_, String>(9).contains("HTTP 404"));
}
