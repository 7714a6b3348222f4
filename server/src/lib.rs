//! `callscript serve`: the review HTTP API and the review web UI, one axum router.
//!
//! - [`auth`]: who is asking: a member's API token (`Authorization: Bearer cs_…`, or the UI's
//!   session cookie holding it), looked up by its SHA-256.
//! - [`api`]: the JSON API under `/api/v1`: flags (filters, pages), reviews, calls with their
//!   transcript and audio, uploads, queue health.
//! - [`ui`]: the server-rendered pages (no JavaScript build): login, queue health, flags with
//!   filters, a call with its audio player and transcript, confirm/dismiss.
//!
//! Every request's database work runs in [`in_org`]: one transaction confined to the member's
//! organization by `SET LOCAL ROLE callscript_api` and `app.org_id`, so Postgres row-level
//! security keeps tenants apart; another org's call or flag is simply not found (404).

pub mod api;
pub mod auth;
pub mod extract;
pub mod range;
pub mod ui;
mod upload;

use std::sync::Arc;

use axum::http::header::CONTENT_RANGE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use callscript_core::db::{DbError, Pool};
use callscript_core::storage::ObjectStore;
use callscript_review::ReviewError;
use futures_util::future::BoxFuture;
use tokio_postgres::Transaction;
use uuid::Uuid;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub store: Arc<dyn ObjectStore>,
    /// Largest recording the upload endpoint accepts.
    pub max_upload_bytes: u64,
}

/// The API and the UI on one router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::router())
        .merge(ui::router())
        .with_state(state)
}

/// What a request can fail with; each maps to one status and a message that names the problem
/// (never a secret, never another tenant's data, never a database's or a store's own text).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    /// A request axum could not read (a JSON body that is not JSON, a wrong content type): its
    /// status and axum's message, which names what was wrong without echoing stored data.
    #[error("{1}")]
    Unreadable(StatusCode, String),
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
    /// A byte range outside a recording of `total` bytes.
    #[error("the requested range is not satisfiable: the recording has {total} bytes")]
    RangeNotSatisfiable { total: u64 },
    /// The detail is logged, never sent: it may hold a database's or a store's text.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unreadable(status, _) => *status,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs the detail of an internal error (the client gets only "internal error").
    pub fn log(&self) {
        if let ApiError::Internal(detail) = self {
            tracing::error!("{detail}");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = axum::Json(serde_json::json!({ "error": self.to_string() }));
        let mut response = (self.status(), body).into_response();
        if let ApiError::RangeNotSatisfiable { total } = self {
            let unsatisfied = HeaderValue::from_str(&format!("bytes */{total}"))
                .expect("digits make a header value");
            response.headers_mut().insert(CONTENT_RANGE, unsatisfied);
        }
        response
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::UnknownFlag(_) | ReviewError::UnknownCall(_) => {
                ApiError::NotFound(e.to_string())
            }
            ReviewError::UnknownMember { .. }
            | ReviewError::InvalidEmail(_)
            | ReviewError::Label(_) => ApiError::BadRequest(e.to_string()),
            ReviewError::Queue(_) | ReviewError::Db(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApiError::Internal(DbError::from(e).to_string())
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError::Internal(DbError::from(e).to_string())
    }
}

/// Runs `work` in one transaction confined to `org_id` ([`callscript_review::scope::enter`])
/// and commits it when `work` succeeds.
pub async fn in_org<T, F>(pool: &Pool, org_id: Uuid, work: F) -> Result<T, ApiError>
where
    F: for<'t> FnOnce(&'t Transaction<'t>) -> BoxFuture<'t, Result<T, ApiError>>,
{
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    callscript_review::scope::enter(&*transaction, org_id).await?;
    let value = work(&transaction).await?;
    transaction.commit().await?;
    Ok(value)
}
