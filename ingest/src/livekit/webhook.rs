//! `POST /livekit/webhook`: LiveKit's signed events in, `egress_ended` recorded.
//!
//! Nothing is written before the request is proven LiveKit's: the body is read up to the limit,
//! the token's API key names the org's credential, its signature, validity and body hash are
//! checked, and only then is the JSON parsed and the egress recorded. Every refusal answers a
//! small JSON `{"error": ...}` saying what was wrong and is logged without the token. Events the
//! lane does not act on are answered 200 so LiveKit does not retry them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use callscript_core::credentials;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::egress::WebhookEvent;
use super::token::{self, TokenError};
use super::{LiveKitError, LiveKitIngest, CREDENTIAL_KIND};

/// Where LiveKit posts its webhooks (the URL configured in the LiveKit project).
pub const WEBHOOK_PATH: &str = "/livekit/webhook";

/// The webhook endpoint, [`WEBHOOK_PATH`], served by `lane`.
pub fn router(lane: Arc<LiveKitIngest>) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .with_state(lane)
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A request refused before anything was written: logged at warn, answered with its status.
fn refuse(status: StatusCode, error: String) -> Response {
    tracing::warn!(status = status.as_u16(), %error, "livekit webhook refused");
    reply(status, json!({ "error": error }))
}

async fn receive(State(lane): State<Arc<LiveKitIngest>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(&parts.headers, body, lane.max_body_bytes).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let org_id = match authenticate(&lane, &parts.headers, &body).await {
        Ok(org_id) => org_id,
        Err(response) => return response,
    };
    let event: WebhookEvent = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body is not a LiveKit WebhookEvent: {e}"),
            )
        }
    };
    if event.event != "egress_ended" {
        tracing::debug!(event = %event.event, %org_id, "livekit webhook ignored");
        let reason = format!("{:?} is not egress_ended", event.event);
        return reply(
            StatusCode::OK,
            json!({"status": "ignored", "reason": reason}),
        );
    }
    let Some(egress) = event.egress_info else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "an egress_ended event without egressInfo".into(),
        );
    };
    if !egress.is_complete() {
        tracing::info!(
            egress_id = %egress.egress_id, status = %egress.status, error = %egress.error, %org_id,
            "livekit egress ended without a complete recording; not recorded"
        );
        let reason = format!("egress {} is {}", egress.egress_id, egress.status);
        return reply(
            StatusCode::OK,
            json!({"status": "ignored", "reason": reason}),
        );
    }
    match lane.record(org_id, &egress).await {
        Ok(recorded) => {
            tracing::info!(
                event_id = %event.id, egress_id = %egress.egress_id, call_id = %recorded.call_id,
                %org_id, inserted = recorded.inserted, state = %recorded.state,
                "livekit egress recorded"
            );
            reply(
                StatusCode::OK,
                json!({
                    "status": "recorded",
                    "call_id": recorded.call_id,
                    "inserted": recorded.inserted,
                    "state": recorded.state.as_str(),
                }),
            )
        }
        Err(e @ LiveKitError::NoFile { .. }) => {
            tracing::info!(%org_id, "{e}; not recorded");
            reply(
                StatusCode::OK,
                json!({"status": "ignored", "reason": e.to_string()}),
            )
        }
        Err(e) => {
            // LiveKit retries a failed delivery, and reconcile finds the egress later.
            tracing::error!(%org_id, "livekit webhook: {e}");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            )
        }
    }
}

/// The body, at most `limit` bytes (413 past it, by its Content-Length or as it streams in).
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<Vec<u8>, Response> {
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The org whose LiveKit credential signed `body`: the token's `iss` names the API key, one of
/// the credentials stored under it must verify the signature, and the token must carry the
/// body's hash.
async fn authenticate(
    lane: &LiveKitIngest,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<uuid::Uuid, Response> {
    let unauthorized = |error: String| refuse(StatusCode::UNAUTHORIZED, error);
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized("no Authorization header".into()));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not text".into()))?
        .trim();
    // LiveKit sends the bare token; a proxy or client library may add the scheme.
    let jwt = value.strip_prefix("Bearer ").unwrap_or(value).trim();
    let api_key = token::unverified_claims(jwt)
        .map_err(|e| unauthorized(format!("Authorization: {e}")))?
        .iss;
    if api_key.is_empty() {
        return Err(unauthorized("the token names no API key (iss)".into()));
    }
    let stored = match lane.pool.get().await {
        Ok(client) => {
            credentials::find_by_public_id(&**client, &lane.key, CREDENTIAL_KIND, &api_key).await
        }
        Err(e) => Err(credentials::CredentialError::Db(e.into())),
    }
    .map_err(|e| {
        tracing::error!("livekit webhook: loading credentials for API key {api_key}: {e}");
        reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("loading the credentials of API key {api_key} failed")}),
        )
    })?;
    // A row that does not open (sealed with a rotated key, altered) must not lock out the
    // others under the same key; it is logged, and only answered 500 when no row opens.
    let mut candidates = Vec::new();
    let mut unopened = 0;
    for credential in stored {
        match credential {
            Ok(credential) => candidates.push(credential),
            Err(e) => {
                unopened += 1;
                tracing::error!("livekit webhook: API key {api_key}: {e}");
            }
        }
    }
    if candidates.is_empty() && unopened > 0 {
        return Err(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": format!("the credential of API key {api_key} does not open")}),
        ));
    }
    if candidates.is_empty() {
        return Err(unauthorized(format!("unknown API key {api_key:?}")));
    }
    let now = chrono::Utc::now().timestamp();
    // A wrong signature is the least telling failure: report any other a secret gave.
    let mut failure = TokenError::Signature;
    for credential in &candidates {
        match token::verify(jwt, credential.secret.expose(), now) {
            Ok(claims) if claims.signs_body(body) => return Ok(credential.org_id),
            Ok(claims) if claims.sha256.is_none() => {
                return Err(unauthorized("the token has no sha256 claim".into()))
            }
            Ok(_) => {
                return Err(unauthorized(
                    "the body's SHA-256 does not match the token's sha256 claim".into(),
                ))
            }
            Err(TokenError::Signature) => {}
            Err(e) => failure = e,
        }
    }
    Err(unauthorized(format!("API key {api_key}: {failure}")))
}
