//! A loopback Twilio Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with
//! the form fields `To`, `From` and `Body` and HTTP basic auth (account SID, auth token),
//! answered 201 with the message resource (`twilio/message.json` as the template) or Twilio's
//! error body (`twilio/error.json`). It records the messages it took, answers a request whose
//! `I-Twilio-Idempotency-Token` it has taken before with that first message and sends nothing,
//! and can answer the next requests 429 (with `Retry-After`) or 5xx.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{json_fixture, LoopbackServer};

/// The idempotency header the fake honours.
pub const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";

/// One message the fake took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The message SID it answered with.
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    pub idempotency_token: Option<String>,
}

#[derive(Default)]
struct Account {
    sid: String,
    auth_token: String,
    /// Statuses to answer the next requests with before taking any.
    failures: VecDeque<u16>,
    messages: Vec<SentSms>,
    /// The resource first answered for each idempotency token.
    by_token: HashMap<String, Value>,
    requests: usize,
    repeats: usize,
}

/// The fake server; stops when dropped.
pub struct FakeTwilio {
    account: Arc<Mutex<Account>>,
    server: LoopbackServer,
}

impl FakeTwilio {
    pub async fn start(account_sid: &str, auth_token: &str) -> Self {
        let account = Arc::new(Mutex::new(Account {
            sid: account_sid.into(),
            auth_token: auth_token.into(),
            ..Account::default()
        }));
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Messages.json",
                post(create_message),
            )
            .with_state(account.clone());
        Self {
            account,
            server: LoopbackServer::start(router).await,
        }
    }

    /// The API base URL, in place of `https://api.twilio.com`.
    pub fn base_url(&self) -> String {
        self.server.url("")
    }

    /// The next requests (authorized ones, one status each) answer these statuses: 429 with
    /// `Retry-After: 1`, or a 5xx, each with Twilio's error body.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.lock().failures.extend(statuses);
    }

    /// The messages taken, in order (repeats answered from their idempotency token are not).
    pub fn messages(&self) -> Vec<SentSms> {
        self.lock().messages.clone()
    }

    /// Every request, answered however.
    pub fn requests(&self) -> usize {
        self.lock().requests
    }

    /// Requests answered with the message their idempotency token had already sent.
    pub fn repeats(&self) -> usize {
        self.lock().repeats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        self.account.lock().expect("fake Twilio state")
    }
}

async fn create_message(
    State(account): State<Arc<Mutex<Account>>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut account = account.lock().expect("fake Twilio state");
    account.requests += 1;
    let credentials = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", account.sid, account.auth_token));
    let authorized = headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == format!("Basic {credentials}").as_bytes());
    if !authorized || sid != account.sid {
        return error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if let Some(status) = account.failures.pop_front() {
        let status = StatusCode::from_u16(status).expect("a status code");
        if status == StatusCode::TOO_MANY_REQUESTS {
            let mut response = error(status, 20429, "Too Many Requests");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, "1".parse().expect("a header value"));
            return response;
        }
        return error(status, 20500, "Internal Server Error");
    }
    let token = headers
        .get(IDEMPOTENCY_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    if let Some(first) = token
        .as_ref()
        .and_then(|t| account.by_token.get(t))
        .cloned()
    {
        account.repeats += 1;
        return (StatusCode::CREATED, Json(first)).into_response();
    }
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    let (Some(to), Some(from), Some(body)) = (field("To"), field("From"), field("Body")) else {
        return error(
            StatusCode::BAD_REQUEST,
            21604,
            "A 'To' phone number, a 'From' phone number and a 'Body' are required.",
        );
    };
    let message_sid = format!("SM{}", uuid::Uuid::new_v4().simple());
    let uri = format!("/2010-04-01/Accounts/{sid}/Messages/{message_sid}");
    let now = chrono::Utc::now().to_rfc2822();
    let mut resource = json_fixture("twilio/message.json");
    for (name, value) in [
        ("account_sid", sid.as_str()),
        ("sid", &message_sid),
        ("to", &to),
        ("from", &from),
        ("body", &body),
        ("date_created", &now),
        ("date_updated", &now),
        ("uri", &format!("{uri}.json")),
    ] {
        resource[name] = json!(value);
    }
    resource["subresource_uris"]["media"] = json!(format!("{uri}/Media.json"));
    account.messages.push(SentSms {
        sid: message_sid,
        to,
        from,
        body,
        idempotency_token: token.clone(),
    });
    if let Some(token) = token {
        account.by_token.insert(token, resource.clone());
    }
    (StatusCode::CREATED, Json(resource)).into_response()
}

/// Twilio's error body: its code, message and documentation link, and the HTTP status.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let mut body = json_fixture("twilio/error.json");
    body["code"] = json!(code);
    body["message"] = json!(message);
    body["more_info"] = json!(format!("https://www.twilio.com/docs/errors/{code}"));
    body["status"] = json!(status.as_u16());
    (status, Json(body)).into_response()
}
