//! Signed recording links reach the vault and nothing else. Ringba's `recordingUrl` (its `k=…`)
//! and LiveKit's presigned `location` (its `X-Amz-Signature=…`) come in through the loopback
//! vendors; afterwards no row the review API's role can read, and no line of the debug log (as
//! the binary writes it, `log` records of tokio-postgres and reqwest included), holds a signing
//! query, while the vault still downloads both recordings and then forgets their links.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use callscript_core::credentials::{self, CredentialKey, CredentialSpec, Secret};
use callscript_ingest::livekit::LiveKitIngest;
use callscript_ingest::ringba::{backfill, PollConfig, RingbaClient};
use callscript_ingest::vault::{VaultConfig, VaultLane};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::vendors::livekit::{egress_item, FakeLiveKit};
use callscript_testkit::vendors::ringba::FakeRingba;
use callscript_testkit::{create_org, TestDatabase};
use chrono::{Duration as Span, Utc};
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

const RINGBA_ACCOUNT: &str = "RA7d1e5b3c9a2f4e6d8c0b1a2f3e4d5c6b";
const RINGBA_TOKEN: &str = "ringba-token-links";
const LIVEKIT_KEY: &str = "APIlinks";
const LIVEKIT_SECRET: &str = "livekit-secret-links";
/// The access keys in the links' queries: none may show anywhere but in the vault's request.
const RINGBA_K: &str = "ringbaSignedK3y";
const LIVEKIT_K: &str = "livekitSignedK3y";
const AMZ_SIGNATURE: &str = "X-Amz-Signature=5ea1ed5160a7";
const SECRETS: [&str; 3] = [RINGBA_K, LIVEKIT_K, AMZ_SIGNATURE];

/// The debug log, written where the test can read it, by the subscriber the binary uses.
fn capture_debug_log() -> Arc<Mutex<Vec<u8>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || LogWriter(sink.clone()))
        .init();
    log
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} holds {secret:?}:\n{text}");
    }
}

/// Every row of `org` the review API's role can read, table by table, as text.
async fn rows_the_api_role_reads(
    client: &mut deadpool_postgres::Object,
    org: Uuid,
) -> Vec<(String, String)> {
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('core', 'crm') AND c.relkind = 'r'
               AND has_table_privilege('callscript_api', c.oid, 'SELECT')
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL ROLE callscript_api")
        .await
        .unwrap();
    tx.execute(
        "SELECT set_config('app.org_id', $1, true)",
        &[&org.to_string()],
    )
    .await
    .unwrap();
    let mut rows = Vec::new();
    for table in tables {
        let text: String = tx
            .query_one(
                &format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("reading {table} as callscript_api: {e}"))
            .get(0);
        rows.push((table, text));
    }
    tx.rollback().await.unwrap();
    rows
}

async fn links_kept(client: &impl GenericClient) -> i64 {
    client
        .query_one("SELECT count(*) FROM core.call_recording_links", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn signed_links_reach_the_vault_and_no_member_or_log() {
    let log = capture_debug_log();
    let db = TestDatabase::new(4).await;
    let mut db_client = db.client().await;
    let org = create_org(&**db_client, "acme").await;
    let s3 = TestS3Server::start().await;
    let store = s3.store().await;
    let http = callscript_ingest::http::client(Duration::from_secs(10));
    let wav = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/audio/goforward.wav"
    ))
    .unwrap();

    // Ringba: a finished call with its signed link, backfilled; then its revenue changes and
    // the backfill refreshes the kept record.
    let ringba = FakeRingba::start(RINGBA_ACCOUNT, RINGBA_TOKEN).await;
    let started = Utc::now() - Span::hours(1);
    ringba.add_call("v2signed", started, RINGBA_K);
    ringba.add_recording(RINGBA_K, wav.clone());
    ringba.add_recording(LIVEKIT_K, wav.clone());
    let ringba_client = RingbaClient::new(
        http.clone(),
        Some(&ringba.api_url()),
        RINGBA_ACCOUNT,
        Secret::new(RINGBA_TOKEN),
    );
    let range = (started - Span::minutes(5), Utc::now());
    let config = PollConfig::default();
    let first = backfill(&db.pool, &ringba_client, org, range, &config, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(first.queued, 1, "{first:?}");
    ringba.update_call("v2signed", json!({"conversionAmount": 35.0}));
    let again = backfill(&db.pool, &ringba_client, org, range, &config, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(again.refreshed, 1, "{again:?}");

    // LiveKit: an egress whose webhook never came, its file elsewhere behind a presigned link
    // (served by the loopback Ringba's recording endpoint), found by reconcile.
    let livekit = FakeLiveKit::start(LIVEKIT_KEY, LIVEKIT_SECRET).await;
    let key =
        CredentialKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([9u8; 32]))
            .unwrap();
    let endpoint = livekit.url();
    let spec = CredentialSpec {
        kind: "livekit",
        label: "default",
        public_id: Some(LIVEKIT_KEY),
        endpoint: Some(&endpoint),
    };
    credentials::store(&**db_client, &key, org, &spec, &Secret::new(LIVEKIT_SECRET))
        .await
        .unwrap();
    let presigned = format!(
        "{}&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800&{AMZ_SIGNATURE}",
        ringba.recording_url(LIVEKIT_K)
    );
    livekit.add_egress(egress_item(
        "EG_presigned",
        "EGRESS_COMPLETE",
        "livekit/support-call-9/2024-11-25T170000.wav",
        &presigned,
    ));
    let livekit_lane = LiveKitIngest::new(db.pool.clone(), key, store.clone(), http.clone());
    let reconciled = livekit_lane.reconcile(Some(org)).await;
    assert_eq!(reconciled.newly_recorded, 1, "{reconciled:?}");

    // Members see both calls, and no signing query in anything they can read.
    let readable = rows_the_api_role_reads(&mut db_client, org).await;
    let calls = &readable
        .iter()
        .find(|(table, _)| table == "core.calls")
        .expect("the API role reads core.calls")
        .1;
    assert!(
        calls.contains("v2signed") && calls.contains("EG_presigned"),
        "{calls}"
    );
    // What they keep of the links: where they pointed.
    assert!(calls.contains("/recording-public?…"), "{calls}");
    for (table, rows) in &readable {
        assert_no_secret(table, rows);
    }
    assert_eq!(links_kept(&**db_client).await, 2);

    // The vault fetches both with the whole links, then forgets them.
    let vault = VaultLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        store,
        http,
        config: VaultConfig::default(),
    };
    let report = vault.run_batch().await.unwrap().unwrap();
    assert_eq!((report.stored, report.retrying), (2, 0), "{report:?}");
    assert_eq!(ringba.recording_requests(), 2);
    assert_eq!(links_kept(&**db_client).await, 0);

    let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    // The capture works: tokio-postgres's debug lines print every statement's parameters.
    assert!(log.contains("executing statement"), "{log}");
    assert_no_secret("the debug log", &log);
}
