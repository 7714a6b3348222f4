//! The review API against the real Postgres: tokens, roles, and row-level security keeping one
//! organization's reviewers out of another's calls and flags.

mod common;

use std::sync::Arc;

use callscript_core::model::CallState;
use callscript_core::storage::{sha256_hex, LocalDirStore, ObjectStore};
use callscript_review::members::{self, Role};
use callscript_server::{router, AppState};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::{create_org, wav_bytes, TestDatabase};
use common::judged_call;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, token: &str, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/api/v1/calls?{query}", self.base))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The router on a loopback port over `db` and `store`, accepting uploads of `max_upload_bytes`.
async fn serve(db: &TestDatabase, store: Arc<dyn ObjectStore>, max_upload_bytes: u64) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState {
        pool: db.pool.clone(),
        store,
        max_upload_bytes,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Api {
        base,
        http: reqwest::Client::new(),
    }
}

async fn token(client: &impl GenericClient, org: Uuid, email: &str, role: Role) -> String {
    let member = members::add(client, org, email, None, role).await.unwrap();
    members::issue_token(client, member.id).await.unwrap()
}

async fn review_status(client: &impl GenericClient, flag: Uuid) -> (String, Option<String>) {
    let row = client
        .query_one(
            "SELECT f.review_status::text, m.email FROM core.qa_flags f
             LEFT JOIN core.organization_members m ON m.id = f.reviewer_id WHERE f.id = $1",
            &[&flag],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_and_review_only_their_own_organization() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let objects = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(objects.path()));
    let org_a = create_org(&**client, "org-a").await;
    let org_b = create_org(&**client, "org-b").await;
    let (call_a, flags_a) = judged_call(&**client, store.as_ref(), org_a, "call-a").await;
    let (call_b, flags_b) = judged_call(&**client, store.as_ref(), org_b, "call-b").await;
    let reviewer_a = token(&**client, org_a, "rev@a.example", Role::Reviewer).await;
    let viewer_a = token(&**client, org_a, "view@a.example", Role::Viewer).await;
    let reviewer_b = token(&**client, org_b, "rev@b.example", Role::Reviewer).await;

    let api = serve(&db, store.clone(), 1 << 20).await;

    // No token, a wrong one, a malformed one: 401 and nothing else.
    let (status, body) = api.get("", "/api/v1/flags").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing or unknown API token");
    assert_eq!(
        api.get("cs_not-a-token", "/api/v1/flags").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, me) = api.get(&reviewer_a, "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["email"].as_str(), me["role"].as_str()),
        (Some("rev@a.example"), Some("reviewer"))
    );

    // Each org's flags, a page at a time, filtered.
    let (status, page) = api.get(&reviewer_a, "/api/v1/flags").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 2);
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [flags_a[0].to_string(), flags_a[1].to_string()]);
    let (_, page) = api.get(&reviewer_a, "/api/v1/flags?limit=1").await;
    assert_eq!(
        (
            page["items"].as_array().unwrap().len(),
            &page["next_offset"]
        ),
        (1, &json!(1))
    );
    let (_, page) = api
        .get(
            &reviewer_a,
            "/api/v1/flags?severity=critical&status=open&from=2026-11-05&to=2026-11-05",
        )
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["rule_id"], "do-not-call-request");
    let (_, page) = api.get(&reviewer_a, "/api/v1/flags?from=2026-11-06").await;
    assert_eq!(page["total"], 0);
    let (status, body) = api.get(&reviewer_a, "/api/v1/flags?severity=dire").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("dire"), "{body}");

    // Org B's call and flag do not exist for org A's reviewer: 404, and nothing changes.
    let (status, _) = api
        .get(&reviewer_a, &format!("/api/v1/calls/{call_b}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .get(&reviewer_a, &format!("/api/v1/calls/{call_b}/audio"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            &reviewer_a,
            &format!("/api/v1/flags/{}/review", flags_b[0]),
            json!({"decision": "dismiss"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        review_status(&**client, flags_b[0]).await,
        ("open".into(), None)
    );
    let (_, page_b) = api.get(&reviewer_b, "/api/v1/flags").await;
    assert_eq!(page_b["total"], 2);
    assert_eq!(page_b["items"][0]["call_id"], call_b.to_string());

    // A viewer reads but may not review or upload.
    assert_eq!(api.get(&viewer_a, "/api/v1/flags").await.0, StatusCode::OK);
    let (status, body) = api
        .post(
            &viewer_a,
            &format!("/api/v1/flags/{}/review", flags_a[0]),
            json!({"decision": "confirm"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("viewer"), "{body}");
    assert_eq!(review_status(&**client, flags_a[0]).await.0, "open");

    // The reviewer decides; the decision, the reviewer and the note are stored.
    let (status, flag) = api
        .post(
            &reviewer_a,
            &format!("/api/v1/flags/{}/review", flags_a[0]),
            json!({"decision": "confirm", "note": "heard it at 0:01"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{flag}");
    assert_eq!(
        (flag["review_status"].as_str(), flag["note"].as_str()),
        (Some("confirmed"), Some("heard it at 0:01"))
    );
    assert_eq!(
        review_status(&**client, flags_a[0]).await,
        ("confirmed".into(), Some("rev@a.example".into()))
    );
    let (status, _) = api
        .post(
            &reviewer_a,
            &format!("/api/v1/flags/{}/review", flags_a[1]),
            json!({"decision": "shrug"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Dismissing both flags unflags the call.
    for flag in &flags_a {
        api.post(
            &reviewer_a,
            &format!("/api/v1/flags/{flag}/review"),
            json!({"decision": "dismiss"}),
        )
        .await;
    }
    let flagged: Option<bool> = client
        .query_one("SELECT flagged FROM core.calls WHERE id = $1", &[&call_a])
        .await
        .unwrap()
        .get(0);
    assert_eq!(flagged, Some(false));

    // The call with its speaker-labelled transcript, flags and audio.
    let (status, call) = api
        .get(&reviewer_a, &format!("/api/v1/calls/{call_a}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call["segments"][1]["role"], "customer");
    assert_eq!(
        call["segments"][1]["flag_ids"],
        json!([flags_a[1].to_string()])
    );
    assert_eq!(call["flags"].as_array().unwrap().len(), 2);
    assert_eq!(call["audio_url"], format!("/api/v1/calls/{call_a}/audio"));
    let audio = api
        .http
        .get(format!("{}/api/v1/calls/{call_a}/audio", api.base))
        .bearer_auth(&reviewer_a)
        .header("Range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(audio.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    assert_eq!(audio.bytes().await.unwrap().as_ref(), b"RIFF");

    // Queue health of the org only.
    let (_, health) = api.get(&reviewer_a, "/api/v1/health").await;
    let judged = health["by_state"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == CallState::Judged.as_str())
        .unwrap()[1]
        .clone();
    assert_eq!(judged, 1);

    // Uploads: a reviewer's recording is stored and queued once; a viewer's is refused.
    let wav = wav_bytes(16_000, 1, &vec![100i16; 8_000]);
    let (status, uploaded) = api
        .upload(&reviewer_a, "filename=web.wav&campaign=web", wav.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["newly_queued"], true);
    let (status, again) = api
        .upload(&reviewer_a, "filename=web.wav&campaign=web", wav.clone())
        .await;
    assert_eq!(
        (status, &again["call_id"]),
        (StatusCode::OK, &uploaded["call_id"])
    );
    assert_eq!(
        api.upload(&viewer_a, "filename=web.wav", wav).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = api
        .upload(
            &reviewer_a,
            "filename=page.html",
            b"<html>nope</html>".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("not a recognised audio file"),
        "{body}"
    );
    let row = client
        .query_one(
            "SELECT c.org_id, c.state::text, cp.name FROM core.calls c
             JOIN core.campaigns cp ON cp.id = c.campaign_id WHERE c.id = $1",
            &[&uploaded["call_id"]
                .as_str()
                .unwrap()
                .parse::<Uuid>()
                .unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Uuid>(0),
            row.get::<_, &str>(1),
            row.get::<_, &str>(2)
        ),
        (org_a, "downloaded", "web")
    );
}

/// A response's status, `Content-Type` and body as JSON (`Null` when it is not JSON).
async fn answer(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.text().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

/// A WAV of `seconds` of a 16 kHz tone: content no other test uploads.
fn tone(seconds: usize, pitch: f32) -> Vec<u8> {
    let samples: Vec<i16> = (0..seconds * 16_000)
        .map(|i| ((i as f32 * pitch / 16_000.0 * std::f32::consts::TAU).sin() * 8_000.0) as i16)
        .collect();
    wav_bytes(16_000, 1, &samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_two_mebibytes_stream_to_s3_up_to_the_limit() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let s3 = TestS3Server::start().await;
    let store = s3.store().await;
    let org = create_org(&**client, "org-a").await;
    let reviewer = token(&**client, org, "rev@a.example", Role::Reviewer).await;
    let limit = 4 << 20;
    let api = serve(&db, store.clone(), limit).await;

    // 97 seconds of 16 kHz audio: 3.1 MB, over axum's 2 MiB default body limit.
    let wav = tone(97, 440.0);
    assert!(wav.len() > 3_000_000 && (wav.len() as u64) < limit);
    let (status, uploaded) = api
        .upload(&reviewer, "filename=long.wav", wav.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    assert_eq!(uploaded["size"], wav.len());
    assert_eq!(uploaded["sha256"], sha256_hex(&wav));
    let key = uploaded["object_key"].as_str().unwrap();
    assert_eq!(store.get(key).await.unwrap().as_ref(), wav.as_slice());
    assert_eq!(
        store.head(key).await.unwrap().unwrap().sha256.as_deref(),
        Some(sha256_hex(&wav).as_str())
    );

    // Streamed back from S3, whole and in part.
    let call = uploaded["call_id"].as_str().unwrap();
    let audio = |range: Option<&str>| {
        let mut request = api
            .http
            .get(format!("{}/api/v1/calls/{call}/audio", api.base))
            .bearer_auth(&reviewer);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        request.send()
    };
    let whole = audio(None).await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-length"], wav.len().to_string());
    assert_eq!(whole.bytes().await.unwrap().as_ref(), wav.as_slice());
    let part = audio(Some("bytes=3000000-")).await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 3000000-{}/{}", wav.len() - 1, wav.len())
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &wav[3_000_000..]);

    // Over the limit: refused as JSON, by its declared length or, streamed without one, by
    // the bytes that arrived; nothing is stored or queued.
    let over = tone(140, 220.0);
    assert!(over.len() as u64 > limit);
    let declared = api
        .http
        .post(format!("{}/api/v1/calls?filename=over.wav", api.base))
        .bearer_auth(&reviewer)
        .body(over.clone())
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = answer(declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(content_type, "application/json");
    assert!(
        body["error"].as_str().unwrap().contains(&limit.to_string()),
        "{body}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(256 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = api
        .http
        .post(format!("{}/api/v1/calls?filename=over.wav", api.base))
        .bearer_auth(&reviewer)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let (status, _, body) = answer(streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let over_key = format!("orgs/{org}/upload/{}.wav", sha256_hex(&over));
    assert_eq!(store.head(&over_key).await.unwrap(), None);
    let calls: i64 = client
        .query_one("SELECT count(*) FROM core.calls", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_ranges_follow_rfc_9110() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let objects = tempfile::tempdir().unwrap();
    let s3 = TestS3Server::start().await;
    let stores: [Arc<dyn ObjectStore>; 2] = [
        Arc::new(LocalDirStore::new(objects.path())),
        s3.store().await,
    ];
    for (n, store) in stores.into_iter().enumerate() {
        let org = create_org(&**client, &format!("org-{n}")).await;
        let (call, _) = judged_call(&**client, store.as_ref(), org, "call").await;
        let reviewer = token(&**client, org, &format!("rev@{n}.example"), Role::Reviewer).await;
        let api = serve(&db, store.clone(), 1 << 20).await;
        let key = format!("orgs/{org}/upload/call.wav");
        let recording = store.get(&key).await.unwrap();
        let total = recording.len();
        let get = |range: &str| {
            let mut request = api
                .http
                .get(format!("{}/api/v1/calls/{call}/audio", api.base))
                .bearer_auth(&reviewer);
            if !range.is_empty() {
                request = request.header("Range", range);
            }
            request.send()
        };

        // One satisfiable range: 206, the end clamped to the recording.
        for (range, first, last) in [
            ("bytes=0-3", 0, 3),
            ("bytes=0-99999999999", 0, total - 1),
            ("bytes=-10", total - 10, total - 1),
            ("bytes=100-", 100, total - 1),
        ] {
            let response = get(range).await.unwrap();
            assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            let headers = response.headers().clone();
            assert_eq!(
                headers["content-range"],
                format!("bytes {first}-{last}/{total}"),
                "{range}"
            );
            assert_eq!(headers["content-length"], (last - first + 1).to_string());
            assert_eq!(headers["accept-ranges"], "bytes");
            assert_eq!(
                response.bytes().await.unwrap(),
                recording.slice(first..=last),
                "{range}"
            );
        }
        // Nothing of the recording in range, or an invalid range: 416 with the length.
        for range in ["bytes=99999999-", "bytes=5-2", "bytes=-0"] {
            let response = get(range).await.unwrap();
            let content_range = response.headers().get("content-range").cloned();
            let (status, content_type, body) = answer(response).await;
            assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(
                content_range.unwrap(),
                format!("bytes */{total}").as_str(),
                "{range}"
            );
            assert_eq!(content_type, "application/json");
            assert!(body["error"].as_str().unwrap().contains("range"), "{body}");
        }
        // No range, one not parsable, another unit, several ranges: the whole recording.
        for range in ["", "bytes=abc", "items=0-3", "bytes=0-3,10-20"] {
            let response = get(range).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{range:?}");
            assert_eq!(response.headers()["content-length"], total.to_string());
            assert_eq!(response.headers()["accept-ranges"], "bytes");
            assert_eq!(response.bytes().await.unwrap(), recording, "{range:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_400_naming_it_and_database_text_never_leaves() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let objects = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(objects.path()));
    let org = create_org(&**client, "org-a").await;
    let (_, flags) = judged_call(&**client, store.as_ref(), org, "call-a").await;
    let reviewer = token(&**client, org, "rev@a.example", Role::Reviewer).await;
    let api = serve(&db, store, 1 << 20).await;
    let send = |method: reqwest::Method, path: &str| {
        api.http
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(&reviewer)
    };

    for (query, parameter) in [
        ("campaign=%00", "campaign"),
        ("rule=%00x", "rule"),
        ("to=-262143-01-01", "to"),
        ("from=2026-13-01", "from"),
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("severity=dire", "severity"),
        ("campaign=a&campaign=b", "campaign"),
    ] {
        let response = send(reqwest::Method::GET, &format!("/api/v1/flags?{query}"))
            .send()
            .await
            .unwrap();
        let (status, content_type, body) = answer(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(content_type, "application/json", "{query}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(parameter), "{query}: {error}");
    }
    // The UI's flag list shows the same message on its page, not the database's.
    let page = send(reqwest::Method::GET, "/flags?campaign=%00")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("campaign: must not contain a NUL character"),
        "{html}"
    );

    // Routes and bodies axum cannot read answer JSON too.
    for (method, path, status) in [
        (
            reqwest::Method::GET,
            "/api/v1/nothing-here",
            StatusCode::NOT_FOUND,
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/flags",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            reqwest::Method::GET,
            "/api/v1/calls/not-a-uuid",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, content_type, body) = answer(send(method, path).send().await.unwrap()).await;
        assert_eq!(
            (got, content_type.as_str()),
            (status, "application/json"),
            "{path}"
        );
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    let review = format!("/api/v1/flags/{}/review", flags[0]);
    let (status, content_type, body) = answer(
        send(reqwest::Method::POST, &review)
            .header("content-type", "application/json")
            .body("{\"decision\": ")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert_eq!(content_type, "application/json");
    assert!(body["error"].is_string(), "{body}");

    // An unexpected database failure is a JSON 500 that says nothing of the database.
    client
        .batch_execute("ALTER TABLE core.qa_flags RENAME TO qa_flags_moved")
        .await
        .unwrap();
    let (status, content_type, body) = answer(
        send(reqwest::Method::GET, "/api/v1/flags")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, json!({"error": "internal error"}));
}
