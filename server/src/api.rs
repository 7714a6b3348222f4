//! The JSON API (`/api/v1`). Every route needs a member token; reviews and uploads need a
//! reviewer or an admin. Lists come a page at a time (`limit`, `offset`; the response says the
//! `total` and the `next_offset`).
//!
//! | route | |
//! |---|---|
//! | `GET /api/v1/me` | the member the token belongs to |
//! | `GET /api/v1/health` | the org's queue: calls by state, throughput, oldest waiting, open flags |
//! | `GET /api/v1/flags?campaign&rule&severity&status&from&to&limit&offset` | flags, newest call first |
//! | `POST /api/v1/flags/{id}/review` `{"decision": "confirm"\|"dismiss", "note"}` | a decision |
//! | `GET /api/v1/calls/{id}` | the call, its speaker-labelled transcript, its flags, `audio_url` |
//! | `GET /api/v1/calls/{id}/audio` | the recording, streamed (byte ranges for seeking: [`crate::range`]) |
//! | `POST /api/v1/calls?filename&campaign&started_at` (body: the recording) | upload and queue ([`crate::upload`]) |
//!
//! Every answer under `/api/v1` is JSON, errors too (`{"error": "…"}`): bad parameters are a 400
//! naming the parameter, unknown routes 404, other methods 405, and an unexpected failure a 500
//! whose detail is logged, never sent.

use std::str::FromStr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callscript_core::dates;
use callscript_core::model::UnknownLabel;
use callscript_review::calls::{self, CallView};
use callscript_review::flags::{
    self, Decision, FlagFilter, FlagRow, Page, PageRequest, MAX_PAGE_SIZE,
};
use callscript_review::health::{queue_health, QueueHealth};
use callscript_review::members::Member;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::extract::{ApiJson, ApiQuery};
use crate::range::{ranged, Ranged};
use crate::{in_org, ApiError, AppState};

/// How long a presigned recording link stays valid.
const AUDIO_LINK_TTL: Duration = Duration::from_secs(15 * 60);

pub fn router() -> Router<AppState> {
    let api = Router::new()
        .route("/me", get(me))
        .route("/health", get(health))
        .route("/flags", get(list_flags))
        .route("/flags/{id}/review", post(review_flag))
        .route("/calls", post(crate::upload::upload))
        .route("/calls/{id}", get(show_call))
        .route("/calls/{id}/audio", get(audio))
        // After the routes: it applies to the routes added before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route);
    Router::new().nest("/api/v1", api)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}

async fn me(Authenticated(member): Authenticated) -> Json<Member> {
    Json(member)
}

async fn health(
    State(state): State<AppState>,
    Authenticated(member): Authenticated,
) -> Result<Json<QueueHealth>, ApiError> {
    let org = member.org_id;
    let health = in_org(&state.pool, org, |tx| {
        Box::pin(async move { Ok(queue_health(tx, Some(org)).await?) })
    })
    .await?;
    Ok(Json(health))
}

/// `GET /api/v1/flags` query parameters, as given (the UI's form shows them back as typed).
#[derive(Debug, Default, Deserialize)]
pub struct FlagQuery {
    pub campaign: Option<String>,
    pub rule: Option<String>,
    /// This severity or worse.
    pub severity: Option<String>,
    pub status: Option<String>,
    /// A date (whole day, UTC) or an RFC 3339 time.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
    pub offset: Option<String>,
}

impl FlagQuery {
    /// The filter and page this query asks for within `org_id`; empty parameters (as an HTML
    /// form sends them) filter nothing. A bad parameter is a 400 that names it.
    pub fn filter(&self, org_id: Uuid) -> Result<(FlagFilter, PageRequest), ApiError> {
        let text = |value: &str| Ok(value.to_owned());
        let filter = FlagFilter {
            org_id: Some(org_id),
            campaign: parameter("campaign", &self.campaign, text)?,
            rule_id: parameter("rule", &self.rule, text)?,
            min_severity: parameter("severity", &self.severity, label)?,
            status: parameter("status", &self.status, label)?,
            from: parameter("from", &self.from, dates::parse_from)?,
            to: parameter("to", &self.to, dates::parse_to)?,
            call_id: None,
        };
        let defaults = PageRequest::default();
        let page = PageRequest {
            limit: parameter("limit", &self.limit, |v| whole_number(v, 1, MAX_PAGE_SIZE))?
                .unwrap_or(defaults.limit),
            offset: parameter("offset", &self.offset, |v| whole_number(v, 0, i64::MAX))?
                .unwrap_or(defaults.offset),
        };
        Ok((filter, page))
    }
}

/// A query parameter read by `parse`; `None` when absent or blank. Its errors, and a NUL
/// character (which no stored text holds and Postgres refuses), are a 400 naming `name`.
pub fn parameter<T>(
    name: &str,
    value: &Option<String>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ApiError> {
    let Some(value) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "{name}: must not contain a NUL character"
        )));
    }
    parse(value)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))
}

/// One of a stored enum's labels (a severity, a review status).
fn label<T: FromStr<Err = UnknownLabel>>(text: &str) -> Result<T, String> {
    text.parse().map_err(|e: UnknownLabel| e.to_string())
}

fn whole_number(text: &str, min: i64, max: i64) -> Result<i64, String> {
    text.parse()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{text:?} is not a whole number from {min} to {max}"))
}

/// A page of flags and where the next one starts.
#[derive(Debug, Serialize)]
pub struct FlagPage {
    #[serde(flatten)]
    pub page: Page<FlagRow>,
    pub next_offset: Option<i64>,
}

async fn list_flags(
    State(state): State<AppState>,
    Authenticated(member): Authenticated,
    ApiQuery(query): ApiQuery<FlagQuery>,
) -> Result<Json<FlagPage>, ApiError> {
    let (filter, page) = query.filter(member.org_id)?;
    let page = in_org(&state.pool, member.org_id, |tx| {
        Box::pin(async move { Ok(flags::list(tx, &filter, page).await?) })
    })
    .await?;
    Ok(Json(FlagPage {
        next_offset: page.next_offset(),
        page,
    }))
}

#[derive(Debug, Deserialize)]
pub struct ReviewBody {
    pub decision: String,
    pub note: Option<String>,
}

/// "confirm" or "dismiss".
pub fn parse_decision(decision: &str) -> Result<Decision, ApiError> {
    match decision {
        "confirm" => Ok(Decision::Confirm),
        "dismiss" => Ok(Decision::Dismiss),
        other => Err(ApiError::BadRequest(format!(
            "decision {other:?}: expected \"confirm\" or \"dismiss\""
        ))),
    }
}

/// Records a reviewer's decision on a flag of their organization.
pub async fn review(
    state: &AppState,
    session: &Authenticated,
    flag_id: Uuid,
    decision: Decision,
    note: Option<String>,
) -> Result<FlagRow, ApiError> {
    let reviewer = session.reviewer()?.id;
    in_org(&state.pool, session.0.org_id, |tx| {
        Box::pin(async move {
            Ok(flags::review(tx, flag_id, decision, Some(reviewer), note.as_deref()).await?)
        })
    })
    .await
}

/// A flag id from the path; anything else names no flag (404, like another org's).
pub fn flag_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no flag {id}")))
}

/// A call id from the path; anything else names no call (404, like another org's).
pub fn call_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no call {id}")))
}

async fn review_flag(
    State(state): State<AppState>,
    session: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Json<FlagRow>, ApiError> {
    let flag_id = flag_id(&id)?;
    let decision = parse_decision(&body.decision)?;
    Ok(Json(
        review(&state, &session, flag_id, decision, body.note).await?,
    ))
}

/// A call as the API returns it: the reviewer's view and where to fetch its audio.
#[derive(Debug, Serialize)]
pub struct CallResponse {
    #[serde(flatten)]
    pub call: CallView,
    /// A presigned object-store link when the store has one, else this API's audio route.
    pub audio_url: Option<String>,
}

/// The call of `member`'s organization with its transcript and flags.
pub async fn load_call(
    state: &AppState,
    member: &Member,
    call_id: Uuid,
) -> Result<CallView, ApiError> {
    in_org(&state.pool, member.org_id, |tx| {
        Box::pin(async move { Ok(calls::show(tx, call_id).await?) })
    })
    .await
}

async fn show_call(
    State(state): State<AppState>,
    Authenticated(member): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CallResponse>, ApiError> {
    let call_id = call_id(&id)?;
    let call = load_call(&state, &member, call_id).await?;
    let audio_url = match &call.object_key {
        Some(key) => Some(match state.store.presign_get(key, AUDIO_LINK_TTL).await {
            Ok(url) if url.starts_with("http://") || url.starts_with("https://") => url,
            // A local directory store has no link a browser may follow: serve it ourselves.
            _ => format!("/api/v1/calls/{call_id}/audio"),
        }),
        None => None,
    };
    Ok(Json(CallResponse { call, audio_url }))
}

/// The call's recording, whole or the byte range asked for (players seek with ranges),
/// streamed from the store.
pub async fn audio_response(
    state: &AppState,
    member: &Member,
    call_id: Uuid,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let call = load_call(state, member, call_id).await?;
    let missing = || ApiError::NotFound(format!("call {call_id} has no stored recording"));
    let key = call.object_key.ok_or_else(missing)?;
    let total = state
        .store
        .head(&key)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(missing)?
        .size;
    // A header that is not text is no ranges-specifier: ignored, like any unparsable one.
    let range = ranged(headers.get(RANGE).and_then(|v| v.to_str().ok()), total);
    let (status, part) = match range {
        Ranged::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { total }),
        Ranged::Whole => (StatusCode::OK, None),
        Ranged::Part(part) => (StatusCode::PARTIAL_CONTENT, Some(part)),
    };
    let length = part
        .as_ref()
        .map_or(total, |part| part.end() - part.start() + 1);
    let body = if length == 0 {
        Body::empty()
    } else {
        let stream = state
            .store
            .get_stream(&key, part.clone())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Body::from_stream(stream)
    };
    let content_type = call
        .content_type
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, header(&content_type)?);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(part) = part {
        let range = format!("bytes {}-{}/{total}", part.start(), part.end());
        headers.insert(CONTENT_RANGE, header(&range)?);
    }
    Ok(response)
}

fn header(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(|e| ApiError::Internal(e.to_string()))
}

async fn audio(
    State(state): State<AppState>,
    Authenticated(member): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    audio_response(&state, &member, call_id(&id)?, &headers).await
}
