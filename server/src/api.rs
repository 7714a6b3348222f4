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
//! | `GET /api/v1/calls/{id}/audio` | the recording (byte ranges, for seeking) |
//! | `POST /api/v1/calls?filename&campaign&started_at` (body: the recording) | upload and queue |

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use callscript_core::dates;
use callscript_core::model::Source;
use callscript_core::orgs;
use callscript_ingest::upload::{enqueue_bytes, UploadError, UploadOptions};
use callscript_review::calls::{self, CallView};
use callscript_review::flags::{self, Decision, FlagFilter, FlagRow, Page, PageRequest};
use callscript_review::health::{queue_health, QueueHealth};
use callscript_review::members::Member;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::{in_org, ApiError, AppState};

/// How long a presigned recording link stays valid.
const AUDIO_LINK_TTL: Duration = Duration::from_secs(15 * 60);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/health", get(health))
        .route("/api/v1/flags", get(list_flags))
        .route("/api/v1/flags/{id}/review", post(review_flag))
        .route("/api/v1/calls", post(upload))
        .route("/api/v1/calls/{id}", get(show_call))
        .route("/api/v1/calls/{id}/audio", get(audio))
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

/// `GET /api/v1/flags` query parameters.
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
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl FlagQuery {
    /// The filter and page this query asks for within `org_id`; empty parameters (as an HTML
    /// form sends them) filter nothing.
    pub fn filter(&self, org_id: Uuid) -> Result<(FlagFilter, PageRequest), ApiError> {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let bad = |e: String| ApiError::BadRequest(e);
        let filter = FlagFilter {
            org_id: Some(org_id),
            campaign: given(&self.campaign),
            rule_id: given(&self.rule),
            min_severity: given(&self.severity)
                .map(|s| s.parse())
                .transpose()
                .map_err(|e: callscript_core::model::UnknownLabel| bad(e.to_string()))?,
            status: given(&self.status)
                .map(|s| s.parse())
                .transpose()
                .map_err(|e: callscript_core::model::UnknownLabel| bad(e.to_string()))?,
            from: given(&self.from)
                .map(|t| dates::parse_from(&t))
                .transpose()
                .map_err(bad)?,
            to: given(&self.to)
                .map(|t| dates::parse_to(&t))
                .transpose()
                .map_err(bad)?,
            call_id: None,
        };
        let defaults = PageRequest::default();
        let page = PageRequest {
            limit: self.limit.unwrap_or(defaults.limit),
            offset: self.offset.unwrap_or(defaults.offset),
        };
        Ok((filter, page))
    }
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
    Query(query): Query<FlagQuery>,
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

async fn review_flag(
    State(state): State<AppState>,
    session: Authenticated,
    Path(flag_id): Path<Uuid>,
    Json(body): Json<ReviewBody>,
) -> Result<Json<FlagRow>, ApiError> {
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
    Path(call_id): Path<Uuid>,
) -> Result<Json<CallResponse>, ApiError> {
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

/// The call's recording, whole or the byte range asked for (players seek with ranges).
pub async fn audio_response(
    state: &AppState,
    member: &Member,
    call_id: Uuid,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let call = load_call(state, member, call_id).await?;
    let key = call
        .object_key
        .ok_or_else(|| ApiError::NotFound(format!("call {call_id} has no stored recording")))?;
    let body = state
        .store
        .get(&key)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let content_type = call
        .content_type
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let total = body.len();
    let range = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| byte_range(v, total));
    let mut response = match range {
        Some((start, end)) => {
            let mut response =
                (StatusCode::PARTIAL_CONTENT, body.slice(start..=end)).into_response();
            response.headers_mut().insert(
                CONTENT_RANGE,
                header(&format!("bytes {start}-{end}/{total}"))?,
            );
            response
        }
        None => (StatusCode::OK, body).into_response(),
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, header(&content_type)?);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.remove(CONTENT_LENGTH);
    Ok(response)
}

fn header(value: &str) -> Result<HeaderValue, ApiError> {
    HeaderValue::from_str(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The first range of a `Range: bytes=…` header as inclusive offsets within `total` bytes;
/// `None` when absent, malformed or unsatisfiable (then the whole body is sent).
fn byte_range(header: &str, total: usize) -> Option<(usize, usize)> {
    let spec = header.strip_prefix("bytes=")?.split(',').next()?.trim();
    let (start, end) = spec.split_once('-')?;
    let last = total.checked_sub(1)?;
    let (start, end) = match (start.parse::<usize>().ok(), end.parse::<usize>().ok()) {
        (Some(start), Some(end)) => (start, end.min(last)),
        (Some(start), None) => (start, last),
        // "-N": the last N bytes.
        (None, Some(suffix)) => (total.saturating_sub(suffix), last),
        (None, None) => return None,
    };
    (start <= end).then_some((start, end))
}

async fn audio(
    State(state): State<AppState>,
    Authenticated(member): Authenticated,
    Path(call_id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    audio_response(&state, &member, call_id, &headers).await
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    filename: Option<String>,
    /// A campaign name (created for the organization's uploads when new).
    campaign: Option<String>,
    /// When the call happened (RFC 3339 or a date); the upload's time when omitted.
    started_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct UploadResponse {
    call_id: Uuid,
    object_key: String,
    sha256: String,
    size: u64,
    /// False when the organization already had this recording queued.
    newly_queued: bool,
}

async fn upload(
    State(state): State<AppState>,
    session: Authenticated,
    Query(query): Query<UploadQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let member = session.reviewer()?.clone();
    let started_at = query
        .started_at
        .as_deref()
        .map(dates::parse_from)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let store = state.store.clone();
    let max_bytes = state.max_upload_bytes;
    let uploaded = in_org(&state.pool, member.org_id, |tx| {
        Box::pin(async move {
            let campaign_id = match &query.campaign {
                Some(name) => Some(
                    orgs::ensure_campaign(tx, member.org_id, Source::Upload, name, name)
                        .await
                        .map_err(|e| ApiError::Internal(e.to_string()))?,
                ),
                None => None,
            };
            let options = UploadOptions {
                org_id: member.org_id,
                campaign_id,
                priority: 0,
                started_at,
                max_bytes,
            };
            let shown = query.filename.clone().unwrap_or_else(|| "upload".into());
            enqueue_bytes(
                tx,
                store.as_ref(),
                &shown,
                query.filename.as_deref(),
                body,
                None,
                &options,
            )
            .await
            .map_err(|e| match e {
                UploadError::TooLarge { .. } => ApiError::TooLarge(e.to_string()),
                UploadError::Empty { .. } | UploadError::NotAudio { .. } => {
                    ApiError::BadRequest(e.to_string())
                }
                other => ApiError::Internal(other.to_string()),
            })
        })
    })
    .await?;
    let status = if uploaded.newly_queued {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = UploadResponse {
        call_id: uploaded.call_id,
        object_key: uploaded.object_key,
        sha256: uploaded.sha256,
        size: uploaded.size,
        newly_queued: uploaded.newly_queued,
    };
    Ok((status, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 99)));
        assert_eq!(byte_range("bytes=500-", 1000), Some((500, 999)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some((900, 999)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=0-1", 0), None);
    }
}
