//! The LiveKit lane against the real Postgres, the loopback S3 server and a fake LiveKit: signed
//! webhooks become one call per egress, refused ones write nothing, and reconcile records the
//! egresses whose webhook never arrived.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use callscript_core::credentials::{self, CredentialKey, CredentialSpec, Secret};
use callscript_core::model::{CallState, Source};
use callscript_core::queue::{self, Call};
use callscript_core::storage::{sha256_hex, ObjectStore};
use callscript_ingest::links;
use callscript_ingest::livekit::token::{self, Claims};
use callscript_ingest::livekit::{router, LiveKitIngest, WEBHOOK_PATH};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::vendors::livekit::{egress_item, FakeLiveKit};
use callscript_testkit::vendors::{json_fixture, LoopbackServer};
use callscript_testkit::{create_org, TestDatabase};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

const API_KEY: &str = "APIq7Zk2LwRt";
const API_SECRET: &str = "wXb3n9VqLr0sTq5yUe8iOp2aSd4fGh6jKl1zXc7vBn";
const BODY_LIMIT: usize = 64 * 1024;
/// The fixture's file: `egressInfo.fileResults[0]`.
const FILENAME: &str = "livekit/support-call-4471/2024-11-25T160000.ogg";
const LOCATION: &str =
    "https://recordings.s3.us-east-1.amazonaws.com/livekit/support-call-4471/2024-11-25T160000.ogg";

struct Lane {
    db: TestDatabase,
    _s3: TestS3Server,
    store: Arc<dyn ObjectStore>,
    key: CredentialKey,
    lane: Arc<LiveKitIngest>,
    server: LoopbackServer,
    livekit: FakeLiveKit,
    http: reqwest::Client,
    org: Uuid,
}

impl Lane {
    /// An org with a LiveKit credential for the fake project, and the webhook endpoint served.
    async fn start() -> Self {
        let db = TestDatabase::new(4).await;
        let s3 = TestS3Server::start().await;
        let store = s3.store().await;
        let key = CredentialKey::from_base64(
            &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        )
        .unwrap();
        let livekit = FakeLiveKit::start(API_KEY, API_SECRET).await;
        let org = create_org(&**db.client().await, "acme").await;
        let http = callscript_ingest::http::client(Duration::from_secs(10));
        let lane = Arc::new(
            LiveKitIngest::new(db.pool.clone(), key.clone(), store.clone(), http.clone())
                .with_max_body_bytes(BODY_LIMIT),
        );
        let server = LoopbackServer::start(router(lane.clone())).await;
        let this = Self {
            db,
            _s3: s3,
            store,
            key,
            lane,
            server,
            livekit,
            http,
            org,
        };
        let url = this.livekit.url();
        this.store_credential(org, API_KEY, API_SECRET, Some(&url))
            .await;
        this
    }

    async fn store_credential(
        &self,
        org: Uuid,
        api_key: &str,
        secret: &str,
        endpoint: Option<&str>,
    ) {
        let spec = CredentialSpec {
            kind: "livekit",
            label: "default",
            public_id: Some(api_key),
            endpoint,
        };
        credentials::store(
            &**self.db.client().await,
            &self.key,
            org,
            &spec,
            &Secret::new(secret),
        )
        .await
        .unwrap();
    }

    /// Posts a webhook body with this `Authorization` value; the status and the JSON answer.
    async fn post(&self, body: &[u8], authorization: Option<&str>) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.server.url(WEBHOOK_PATH))
            .header("content-type", "application/webhook+json")
            .body(body.to_vec());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
        (status, json)
    }

    /// Posts `event` signed as LiveKit signs it.
    async fn deliver(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string().into_bytes();
        self.post(&body, Some(&signed(&body, API_SECRET))).await
    }

    async fn call_count(&self) -> i64 {
        self.db
            .client()
            .await
            .query_one("SELECT count(*) FROM core.calls", &[])
            .await
            .unwrap()
            .get(0)
    }

    /// The link kept for the vault to fetch the call's recording from.
    async fn link(&self, call_id: Uuid) -> Option<String> {
        let client = self.db.client().await;
        links::load(&**client, &[call_id])
            .await
            .unwrap()
            .remove(&call_id)
            .map(|link| link.url().to_owned())
    }

    async fn call(&self, egress_id: &str) -> Option<Call> {
        let client = self.db.client().await;
        let row = client
            .query_opt(
                "SELECT id FROM core.calls WHERE source = 'livekit' AND external_id = $1",
                &[&egress_id],
            )
            .await
            .unwrap()?;
        queue::get_call(&**client, row.get(0)).await.unwrap()
    }
}

/// A webhook token for `body` as LiveKit makes it: issued now by the API key, signed with
/// `secret`.
fn signed(body: &[u8], secret: &str) -> String {
    token::sign(
        &Claims::webhook(API_KEY, body, Utc::now().timestamp()),
        secret,
    )
}

/// The fixture's `egress_ended` event for `egress_id`, its file uploaded as `filename`.
fn egress_ended(egress_id: &str, filename: &str) -> Value {
    let mut event = json_fixture("livekit/egress-ended.json");
    event["egressInfo"]["egressId"] = json!(egress_id);
    event["egressInfo"]["fileResults"][0]["filename"] = json!(filename);
    event
}

#[tokio::test]
async fn a_signed_egress_ended_webhook_queues_one_downloaded_call() {
    let lane = Lane::start().await;
    let audio = b"OggS\0\x02 pretend this is a dual-channel opus recording".to_vec();
    lane.store
        .put(FILENAME, audio.clone().into(), "audio/ogg")
        .await
        .unwrap();
    let event = json_fixture("livekit/egress-ended.json");

    let (status, answer) = lane.deliver(&event).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "recorded");
    assert_eq!(answer["inserted"], true);
    assert_eq!(answer["state"], "downloaded");

    let call = lane.call("EG_hSz9XqA8YtN2").await.expect("a call");
    assert_eq!(call.id.to_string(), answer["call_id"].as_str().unwrap());
    assert_eq!((call.org_id, call.source), (lane.org, Source::Livekit));
    assert_eq!(call.state, CallState::Downloaded);
    assert_eq!(call.object_key.as_deref(), Some(FILENAME));
    assert_eq!(lane.link(call.id).await, None);
    assert_eq!(call.duration_ms, Some(12_500));
    assert_eq!(call.size_bytes, Some(audio.len() as i64));
    assert_eq!(call.sha256, Some(sha256_hex(&audio)));
    assert_eq!(call.content_type.as_deref(), Some("audio/ogg"));
    // The file's start, not the egress's (which includes the recorder starting up).
    assert_eq!(
        call.call_started_at,
        DateTime::from_timestamp_nanos(1_732_550_400_210_000_000)
    );
    assert_eq!(
        call.metadata,
        json!({
            "egress_id": "EG_hSz9XqA8YtN2",
            "room_name": "support-call-4471",
            "room_id": "RM_Jb2kWcLq7PzR",
            "filename": FILENAME,
            "location": LOCATION,
            "started_at_ns": 1_732_550_400_210_000_000_i64,
            "ended_at_ns": 1_732_550_412_710_000_000_i64,
            "duration_ns": 12_500_000_000_i64,
            "size": 201_344,
            "audio_mixing": "DUAL_CHANNEL_AGENT",
            "status": "EGRESS_COMPLETE",
            "channel_map": {"0": "agent", "1": "customer"},
        })
    );

    // LiveKit retries and repeats: the same egress stays one call.
    let (status, again) = lane.deliver(&event).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (&again["call_id"], &again["inserted"]),
        (&answer["call_id"], &json!(false))
    );
    // A token sent with a Bearer scheme (a proxy's habit) is accepted too.
    let body = event.to_string().into_bytes();
    let bearer = format!("Bearer {}", signed(&body, API_SECRET));
    let (status, third) = lane.post(&body, Some(&bearer)).await;
    assert_eq!(
        (status, &third["inserted"]),
        (200, &json!(false)),
        "{third}"
    );
    assert_eq!(lane.call_count().await, 1);
}

/// A refused webhook: what it is, its body and `Authorization`, the status and error expected.
type Refusal<'a> = (&'a str, &'a [u8], Option<String>, u16, &'a str);

#[tokio::test]
async fn refused_webhooks_are_answered_and_write_nothing() {
    let lane = Lane::start().await;
    lane.store
        .put(FILENAME, b"OggS audio".to_vec().into(), "audio/ogg")
        .await
        .unwrap();
    let body = json_fixture("livekit/egress-ended.json")
        .to_string()
        .into_bytes();
    let now = Utc::now().timestamp();

    let tampered = {
        let mut event = json_fixture("livekit/egress-ended.json");
        event["egressInfo"]["fileResults"][0]["location"] = json!("https://attacker.example/x.ogg");
        event.to_string().into_bytes()
    };
    let expired = token::sign(&Claims::webhook(API_KEY, &body, now - 900), API_SECRET);
    let unknown_key = token::sign(&Claims::webhook("APIunknown", &body, now), API_SECRET);
    let without_hash = token::sign(
        &Claims {
            sha256: None,
            ..Claims::webhook(API_KEY, &body, now)
        },
        API_SECRET,
    );
    let oversized = {
        let mut event = json_fixture("livekit/egress-ended.json");
        event["id"] = json!("x".repeat(BODY_LIMIT));
        event.to_string().into_bytes()
    };
    let broken = br#"{"event": "egress_ended", "egressInfo": {"egressId": "#.to_vec();
    let no_egress_id = br#"{"event": "egress_ended", "egressInfo": {"roomName": "r"}}"#.to_vec();

    let cases: Vec<Refusal> = vec![
        ("no header", &body, None, 401, "no Authorization header"),
        (
            "not a JWT",
            &body,
            Some("Basic dXNlcjpwYXNz".into()),
            401,
            "not a JWT",
        ),
        (
            "forged with another secret",
            &body,
            Some(signed(&body, "not-the-secret")),
            401,
            "signature does not match",
        ),
        (
            "signature for another body",
            &tampered,
            Some(signed(&body, API_SECRET)),
            401,
            "SHA-256 does not match",
        ),
        ("expired", &body, Some(expired), 401, "expired"),
        (
            "unknown API key",
            &body,
            Some(unknown_key),
            401,
            "unknown API key \"APIunknown\"",
        ),
        (
            "no sha256 claim",
            &body,
            Some(without_hash),
            401,
            "no sha256 claim",
        ),
        (
            "oversized",
            &oversized,
            Some(signed(&oversized, API_SECRET)),
            413,
            "over the limit of 65536 bytes",
        ),
        (
            "broken JSON, validly signed",
            &broken,
            Some(signed(&broken, API_SECRET)),
            400,
            "not a LiveKit WebhookEvent",
        ),
        (
            "no egress id, validly signed",
            &no_egress_id,
            Some(signed(&no_egress_id, API_SECRET)),
            400,
            "egressId",
        ),
    ];
    for (case, body, authorization, expected, message) in cases {
        let (status, answer) = lane.post(body, authorization.as_deref()).await;
        assert_eq!(status, expected, "{case}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{case}: {error:?}");
        assert!(!error.contains(API_SECRET), "{case}: {error:?}");
    }
    // Without a Content-Length the limit holds as the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        oversized.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    let response = lane
        .http
        .post(lane.server.url(WEBHOOK_PATH))
        .header("authorization", signed(&oversized, API_SECRET))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(lane.call_count().await, 0);
}

#[tokio::test]
async fn files_elsewhere_are_pending_and_unfinished_egresses_are_not_calls() {
    let lane = Lane::start().await;

    // Not in our store: the vault fetches it from its location.
    let (status, answer) = lane.deliver(&egress_ended("EG_elsewhere", FILENAME)).await;
    assert_eq!(
        (status, &answer["state"]),
        (200, &json!("pending")),
        "{answer}"
    );
    let call = lane.call("EG_elsewhere").await.unwrap();
    assert_eq!(call.state, CallState::Pending);
    assert_eq!(lane.link(call.id).await.as_deref(), Some(LOCATION));
    assert_eq!(call.object_key, None);
    assert_eq!(call.duration_ms, Some(12_500));

    // A filename that could never be one of our keys is not looked up, only fetched.
    let (status, answer) = lane
        .deliver(&egress_ended("EG_odd_name", "../recordings/a b.ogg"))
        .await;
    assert_eq!(
        (status, &answer["state"]),
        (200, &json!("pending")),
        "{answer}"
    );

    let mut failed = egress_ended("EG_failed", FILENAME);
    failed["egressInfo"]["status"] = json!("EGRESS_FAILED");
    failed["egressInfo"]["error"] = json!("pipeline failed");
    let mut streaming = egress_ended("EG_stream", FILENAME);
    streaming["egressInfo"]
        .as_object_mut()
        .unwrap()
        .remove("fileResults");
    let mut other_event = egress_ended("EG_started", FILENAME);
    other_event["event"] = json!("egress_started");
    for event in [failed, streaming, other_event] {
        let (status, answer) = lane.deliver(&event).await;
        assert_eq!(
            (status, &answer["status"]),
            (200, &json!("ignored")),
            "{answer}"
        );
    }
    assert_eq!(lane.call_count().await, 2);
}

#[tokio::test]
async fn reconcile_records_the_egresses_whose_webhook_was_dropped() {
    let lane = Lane::start().await;
    let delivered_file = FILENAME;
    let dropped_file = "livekit/support-call-4472/2024-11-25T161000.ogg";
    for file in [delivered_file, dropped_file] {
        lane.store
            .put(file, b"OggS audio".to_vec().into(), "audio/ogg")
            .await
            .unwrap();
    }
    let (status, answer) = lane
        .deliver(&egress_ended("EG_delivered", delivered_file))
        .await;
    assert_eq!(status, 200, "{answer}");
    let delivered = lane.call("EG_delivered").await.unwrap();

    lane.livekit.add_egress(egress_item(
        "EG_delivered",
        "EGRESS_COMPLETE",
        delivered_file,
        LOCATION,
    ));
    lane.livekit.add_egress(egress_item(
        "EG_dropped",
        "EGRESS_COMPLETE",
        dropped_file,
        &format!("https://recordings.s3.us-east-1.amazonaws.com/{dropped_file}"),
    ));
    lane.livekit
        .add_egress(egress_item("EG_active", "EGRESS_ACTIVE", "", ""));

    // Three broken orgs beside: no endpoint, a key the project refuses, a tampered row.
    let client = lane.db.client().await;
    let no_endpoint = create_org(&**client, "no-endpoint").await;
    lane.store_credential(no_endpoint, "APIx", "secret", None)
        .await;
    let refused = create_org(&**client, "refused").await;
    let url = lane.livekit.url();
    lane.store_credential(refused, "APIrevoked", "old-secret", Some(&url))
        .await;
    let tampered = create_org(&**client, "tampered").await;
    client
        .execute(
            "INSERT INTO core.organization_credentials
               (org_id, kind, label, public_id, endpoint, key_id, nonce, ciphertext)
             SELECT $2, kind, label, public_id, endpoint, key_id, nonce, ciphertext
             FROM core.organization_credentials WHERE org_id = $1",
            &[&lane.org, &tampered],
        )
        .await
        .unwrap();

    let report = lane.lane.reconcile(None).await;
    assert_eq!(report.orgs_checked, 3, "{report:?}");
    assert_eq!(report.egresses_seen, 3, "{report:?}");
    assert_eq!(report.newly_recorded, 1, "{report:?}");
    assert_eq!(report.errors.len(), 3, "{report:?}");
    let error_of = |org: Uuid| {
        report
            .errors
            .iter()
            .find(|e| e.contains(&org.to_string()))
            .unwrap_or_else(|| panic!("no error names {org}: {report:?}"))
    };
    assert!(error_of(no_endpoint).contains("no endpoint"));
    let http = error_of(refused);
    assert!(
        http.contains(&format!(
            "POST {url}/twirp/livekit.Egress/ListEgress: HTTP 401"
        )),
        "{http}"
    );
    assert!(error_of(tampered).contains("does not open"));

    // Each complete egress is one call; the webhook's call is unchanged; the active one is not.
    assert_eq!(lane.call("EG_delivered").await.unwrap().id, delivered.id);
    let recovered = lane.call("EG_dropped").await.expect("the dropped egress");
    assert_eq!(
        (recovered.org_id, recovered.state),
        (lane.org, CallState::Downloaded)
    );
    assert_eq!(recovered.object_key.as_deref(), Some(dropped_file));
    assert_eq!(recovered.duration_ms, Some(31_600));
    assert_eq!(recovered.metadata["channel_map"]["0"], "agent");
    assert!(lane.call("EG_active").await.is_none());
    assert_eq!(lane.call_count().await, 2);

    // Two pages for the project (two egresses a page), the second asked for by its token.
    let pages: Vec<Value> = lane
        .livekit
        .requests()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.body)
        .collect();
    assert_eq!(
        pages,
        vec![json!({}), json!({"pageToken": {"token": "offset-2"}})]
    );

    // Only the acme project again: nothing new.
    let again = lane.lane.reconcile(Some(lane.org)).await;
    assert_eq!(
        (
            again.orgs_checked,
            again.egresses_seen,
            again.newly_recorded
        ),
        (1, 3, 0)
    );
    assert!(again.errors.is_empty(), "{again:?}");
    assert_eq!(lane.call_count().await, 2);
}
