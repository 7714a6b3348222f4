//! `POST /api/v1/calls`: a recording uploaded as the request body, up to `--max-upload-mib`.
//!
//! The body is never held in memory: it is spooled to a temporary file while its SHA-256 is
//! computed (the object key and the call's identity are that hash), then streamed from the
//! file to the object store. A body over the limit is refused as soon as its declared length
//! or the bytes received so far pass it, before anything is stored (the rest is drained for
//! a few seconds so the client reads the 413 instead of a reset connection).

use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use callscript_core::dates;
use callscript_core::model::Source;
use callscript_core::orgs;
use callscript_core::storage::{Spool, SpoolError};
use callscript_ingest::upload::{enqueue_spooled, UploadError, UploadOptions};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::parameter;
use crate::auth::Authenticated;
use crate::extract::ApiQuery;
use crate::{in_org, ApiError, AppState};

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
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

/// How long a refused upload's remaining body is read and dropped before the answer.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// Reads and drops what the client still sends, for at most [`DRAIN_FOR`]: a connection
/// closed with unread data is reset, and the reset can destroy the 413 before the client
/// (still sending) reads it. The time bound keeps a huge body from holding the server.
async fn drain(chunks: &mut BodyDataStream) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(_)) = chunks.next().await {}
    })
    .await;
}

fn too_large(limit: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "the recording is over the upload limit of {limit} bytes"
    ))
}

pub async fn upload(
    State(state): State<AppState>,
    session: Authenticated,
    ApiQuery(query): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let member = session.reviewer()?.clone();
    let text = |value: &str| Ok(value.to_owned());
    let filename = parameter("filename", &query.filename, text)?;
    let campaign = parameter("campaign", &query.campaign, text)?;
    let started_at = parameter("started_at", &query.started_at, dates::parse_from)?;
    let limit = state.max_upload_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut chunks = body.into_data_stream();
    if declared.is_some_and(|length| length > limit) {
        drain(&mut chunks).await;
        return Err(too_large(limit));
    }
    let spool = match Spool::write(&mut chunks, limit).await {
        Ok(spool) => spool,
        Err(SpoolError::TooLarge { limit }) => {
            drain(&mut chunks).await;
            return Err(too_large(limit));
        }
        // The client stopped sending: say so (it may still be listening).
        Err(SpoolError::Read(reason)) => {
            return Err(ApiError::BadRequest(format!(
                "the upload did not complete: {reason}"
            )))
        }
        Err(e @ SpoolError::Write { .. }) => return Err(ApiError::Internal(e.to_string())),
    };
    let store = state.store.clone();
    let uploaded = in_org(&state.pool, member.org_id, |tx| {
        Box::pin(async move {
            let campaign_id = match &campaign {
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
                max_bytes: limit,
            };
            let shown = filename.clone().unwrap_or_else(|| "upload".into());
            enqueue_spooled(
                tx,
                store.as_ref(),
                &shown,
                filename.as_deref(),
                &spool,
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
