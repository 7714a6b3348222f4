//! A loopback LiveKit: the egress API's `POST /twirp/livekit.Egress/ListEgress` in Twirp's JSON,
//! paged with `next_page_token`. Requests must carry a Bearer token signed (HS256) with the
//! project's API secret, issued for its API key, valid now and granting `video.roomRecord`, as
//! LiveKit checks; the token is checked here with code of its own, not the client's. Tests add
//! the egresses it lists.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{json_fixture, LoopbackServer};

/// One ListEgress request as the server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

struct Project {
    api_key: String,
    api_secret: String,
    page_size: usize,
    egresses: Vec<Value>,
    requests: Vec<SeenRequest>,
}

/// The fake server; stops when dropped.
pub struct FakeLiveKit {
    project: Arc<Mutex<Project>>,
    server: LoopbackServer,
}

/// An `EgressInfo` as ListEgress returns it (Twirp's proto field names), from the fixture's
/// template: `status` an `EgressStatus` name, the file uploaded as `filename` and reachable at
/// `location`.
pub fn egress_item(egress_id: &str, status: &str, filename: &str, location: &str) -> Value {
    let mut item = json_fixture("livekit/list-egress-response.json")["items"][0].clone();
    item["egress_id"] = json!(egress_id);
    item["status"] = json!(status);
    item["file_results"][0]["filename"] = json!(filename);
    item["file_results"][0]["location"] = json!(location);
    item
}

impl FakeLiveKit {
    /// A project with this API key and secret, answering two egresses per page.
    pub async fn start(api_key: &str, api_secret: &str) -> Self {
        let project = Arc::new(Mutex::new(Project {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            page_size: 2,
            egresses: Vec::new(),
            requests: Vec::new(),
        }));
        let router = Router::new()
            .route("/twirp/livekit.Egress/ListEgress", post(list_egress))
            .with_state(project.clone());
        Self {
            project,
            server: LoopbackServer::start(router).await,
        }
    }

    /// The project URL, as stored in a credential's endpoint.
    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// Lists `egress` (an `EgressInfo` in Twirp's JSON, e.g. from [`egress_item`]) from now on.
    pub fn add_egress(&self, egress: Value) {
        self.lock().egresses.push(egress);
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Project> {
        self.project.lock().expect("fake LiveKit state")
    }
}

/// A Twirp error answer.
fn twirp_error(status: StatusCode, code: &str, msg: &str) -> Response {
    (status, Json(json!({"code": code, "msg": msg}))).into_response()
}

async fn list_egress(
    State(project): State<Arc<Mutex<Project>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut project = project.lock().expect("fake LiveKit state");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let response = answer(&project, &headers, &body);
    project.requests.push(SeenRequest {
        body,
        status: response.status().as_u16(),
    });
    response
}

fn answer(project: &Project, headers: &HeaderMap, body: &Value) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(claims) = bearer.and_then(|token| verified_claims(token, &project.api_secret)) else {
        return twirp_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "invalid token: signature or format",
        );
    };
    let now = chrono::Utc::now().timestamp();
    let issued_for_us = claims["iss"] == project.api_key.as_str();
    let valid_now = claims["exp"].as_i64().is_some_and(|exp| now <= exp)
        && claims["nbf"].as_i64().is_none_or(|nbf| nbf <= now + 60);
    if !issued_for_us || !valid_now {
        return twirp_error(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "invalid token: issuer or validity",
        );
    }
    if claims["video"]["roomRecord"] != true {
        return twirp_error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "permissions denied",
        );
    }
    if !body.is_object() {
        return twirp_error(
            StatusCode::BAD_REQUEST,
            "malformed",
            "the body is not a ListEgressRequest",
        );
    }
    // Protojson reads both the JSON name and the proto name.
    let token = body
        .get("pageToken")
        .or_else(|| body.get("page_token"))
        .and_then(|page| page["token"].as_str())
        .unwrap_or("");
    let offset = if token.is_empty() {
        0
    } else {
        match token.strip_prefix("offset-").and_then(|n| n.parse().ok()) {
            Some(offset) => offset,
            None => {
                return twirp_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_argument",
                    "bad page token",
                )
            }
        }
    };
    let end = (offset + project.page_size).min(project.egresses.len());
    let items = project.egresses.get(offset..end).unwrap_or_default();
    let next = (end < project.egresses.len()).then(|| json!({"token": format!("offset-{end}")}));
    Json(json!({"items": items, "next_page_token": next})).into_response()
}

/// The claims of an HS256 JWT signed with `secret`, if it is one.
fn verified_claims(token: &str, secret: &str) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let (header, payload) = signing_input.split_once('.')?;
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    if decode(header)?["alg"] != "HS256" {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()
        .and_then(|()| decode(payload))
}
