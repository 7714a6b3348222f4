//! A loopback Ringba: the call-log report (`POST /v2/{account}/calllogs`, windowed by
//! `reportStart`/`reportEnd`, paged by `size`/`offset`, newest first), call details
//! (`POST /v2/{account}/calllogs/detail`) and public recording links
//! (`GET /recording-public?v=v1&k=KEY`). Tests add calls, change them between polls, and make
//! the next requests answer 429 or 5xx.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{json_fixture, LoopbackServer};

/// One call-log request as the server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub at: std::time::Instant,
    pub body: Value,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct Calls {
    account: String,
    token: String,
    /// Records by inbound call id, in insertion order.
    records: Vec<Value>,
    recordings: HashMap<String, Bytes>,
    throttle_next: usize,
    fail_next: usize,
    report_requests: Vec<SeenRequest>,
    detail_requests: Vec<SeenRequest>,
    recording_requests: usize,
}

/// The fake server; stops when dropped.
pub struct FakeRingba {
    calls: Arc<Mutex<Calls>>,
    server: LoopbackServer,
}

impl FakeRingba {
    pub async fn start(account: &str, token: &str) -> Self {
        let calls = Arc::new(Mutex::new(Calls {
            account: account.into(),
            token: token.into(),
            ..Calls::default()
        }));
        let router = Router::new()
            .route("/v2/{account}/calllogs", post(report))
            .route("/v2/{account}/calllogs/detail", post(detail))
            .route("/recording-public", get(recording))
            .with_state(calls.clone());
        Self {
            calls,
            server: LoopbackServer::start(router).await,
        }
    }

    /// The API base URL, as stored in a credential's endpoint.
    pub fn api_url(&self) -> String {
        self.server.url("/v2")
    }

    /// A public recording link for `key` (served once [`Self::add_recording`] gave it bytes).
    pub fn recording_url(&self, key: &str) -> String {
        self.server.url(&format!("/recording-public?v=v1&k={key}"))
    }

    pub fn add_recording(&self, key: &str, audio: impl Into<Bytes>) {
        self.lock().recordings.insert(key.into(), audio.into());
    }

    /// Adds a finished call with a recording link for `recording_key` (empty: a call whose
    /// recording is not published yet), built from the documented record.
    pub fn add_call(&self, id: &str, at: DateTime<Utc>, recording_key: &str) {
        let url = if recording_key.is_empty() {
            String::new()
        } else {
            self.recording_url(recording_key)
        };
        let mut record = template();
        record["inboundCallId"] = json!(id);
        record["callDt"] = json!(at.timestamp_millis());
        record["callCompletedDt"] = json!(at.timestamp_millis() + 12_000);
        record["recordingUrl"] = json!(url);
        record["hasRecording"] = json!(true);
        self.lock().records.push(record);
    }

    /// Changes fields of a call (`isLive`, `recordingUrl`, `conversionAmount`, ...).
    pub fn update_call(&self, id: &str, fields: Value) {
        let mut calls = self.lock();
        let record = calls
            .records
            .iter_mut()
            .find(|r| r["inboundCallId"] == id)
            .unwrap_or_else(|| panic!("no Ringba call {id}"));
        for (name, value) in fields.as_object().expect("an object of fields") {
            record[name] = value.clone();
        }
    }

    /// The next `n` API requests answer 429 with the documented rate-limit body.
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next = n;
    }

    /// The next `n` API requests answer 503.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    pub fn report_requests(&self) -> Vec<SeenRequest> {
        self.lock().report_requests.clone()
    }

    pub fn detail_requests(&self) -> Vec<SeenRequest> {
        self.lock().detail_requests.clone()
    }

    pub fn recording_requests(&self) -> usize {
        self.lock().recording_requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Calls> {
        self.calls.lock().expect("fake Ringba state")
    }
}

fn template() -> Value {
    json_fixture("ringba/calllog-response.json")["report"]["records"][0].clone()
}

type Shared = State<Arc<Mutex<Calls>>>;

/// Auth, account, throttling and failure injection shared by the API endpoints; `Err` is the
/// response to send instead.
fn admit(calls: &mut Calls, account: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let expected = format!("Token {}", calls.token);
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes());
    if !authorized {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"isSuccessful": false, "message": "Authorization has been denied for this request."})),
            )
                .into_response(),
        ));
    }
    if account != calls.account {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"isSuccessful": false, "message": "no access to this account"})),
            )
                .into_response(),
        ));
    }
    if calls.throttle_next > 0 {
        calls.throttle_next -= 1;
        return Err(Box::new(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                Json(json_fixture("ringba/rate-limited.json")),
            )
                .into_response(),
        ));
    }
    if calls.fail_next > 0 {
        calls.fail_next -= 1;
        return Err(Box::new(
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response(),
        ));
    }
    Ok(())
}

fn parse_time(body: &Value, field: &str) -> Result<i64, Box<Response>> {
    body[field]
        .as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| {
            Box::new(
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"isSuccessful": false, "message": format!("{field} is required")})),
                )
                    .into_response(),
            )
        })
}

async fn report(
    State(calls): Shared,
    Path(account): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut calls = calls.lock().expect("fake Ringba state");
    let outcome = answer_report(&mut calls, &account, &headers, &body);
    logged(&mut calls.report_requests, body, outcome)
}

/// Notes the request with the status it gets, and answers it.
fn logged(
    log: &mut Vec<SeenRequest>,
    body: Value,
    outcome: Result<Value, Box<Response>>,
) -> Response {
    let response = outcome.map_or_else(|e| *e, |json| Json(json).into_response());
    log.push(SeenRequest {
        at: std::time::Instant::now(),
        body,
        status: response.status().as_u16(),
    });
    response
}

fn answer_report(
    calls: &mut Calls,
    account: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Value, Box<Response>> {
    admit(calls, account, headers)?;
    let start = parse_time(body, "reportStart")?;
    let end = parse_time(body, "reportEnd")?;
    let size = body["size"].as_u64().unwrap_or(1000).min(1000) as usize;
    let offset = body["offset"].as_u64().unwrap_or(0) as usize;
    let mut matching: Vec<&Value> = calls
        .records
        .iter()
        .filter(|r| {
            let at = r["callDt"].as_i64().unwrap_or_default();
            start <= at && at <= end
        })
        .collect();
    matching.sort_by_key(|r| std::cmp::Reverse(r["callDt"].as_i64()));
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(size)
        .map(|r| (*r).clone())
        .collect();
    Ok(json!({
        "isSuccessful": true,
        "transactionId": format!("TR{}", uuid::Uuid::new_v4()),
        "report": {"partialResult": false, "totalCount": matching.len(), "records": page},
    }))
}

async fn detail(
    State(calls): Shared,
    Path(account): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut calls = calls.lock().expect("fake Ringba state");
    let outcome = admit(&mut calls, &account, &headers).map(|()| {
        let ids: Vec<&str> = body["InboundCallIds"]
            .as_array()
            .map(|ids| ids.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let records: Vec<Value> = calls
            .records
            .iter()
            .filter(|r| ids.iter().any(|id| r["inboundCallId"] == *id))
            .cloned()
            .collect();
        json!({
            "isSuccessful": true,
            "transactionId": format!("TR{}", uuid::Uuid::new_v4()),
            "report": {"records": records},
        })
    });
    logged(&mut calls.detail_requests, body, outcome)
}

async fn recording(State(calls): Shared, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut calls = calls.lock().expect("fake Ringba state");
    calls.recording_requests += 1;
    match query.get("k").and_then(|key| calls.recordings.get(key)) {
        Some(audio) => ([(header::CONTENT_TYPE, "audio/mpeg")], audio.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "recording not found").into_response(),
    }
}
