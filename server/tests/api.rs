//! The review API against the real Postgres: tokens, roles, and row-level security keeping one
//! organization's reviewers out of another's calls and flags.

mod common;

use std::sync::Arc;

use callscript_core::model::CallState;
use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_review::members::{self, Role};
use callscript_server::{router, AppState};
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

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState {
        pool: db.pool.clone(),
        store: store.clone(),
        max_upload_bytes: 1 << 20,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let api = Api {
        base,
        http: reqwest::Client::new(),
    };

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
