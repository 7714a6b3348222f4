//! The Ringba lane: calls from Ringba's call-log API.
//!
//! - [`client`]: the API (call logs, call details) with per-account rate limiting ([`bucket`])
//!   and retries.
//! - [`record`]: a call-log record and what the queue does with it.
//! - [`lane`]: polling from a watermark, the recheck set (live calls and recordings whose link
//!   is not published yet) and backfills.

pub mod bucket;
pub mod client;
pub mod lane;
pub mod record;

use callscript_core::credentials::CredentialError;
use callscript_core::db::DbError;
use callscript_core::orgs::OrgError;
use callscript_core::queue::QueueError;
use uuid::Uuid;

pub use client::{RetryPolicy, RingbaClient};
pub use lane::{
    backfill, poll, AccountOutcome, BackfillProgress, IngestReport, PollConfig, RingbaLane,
};

#[derive(Debug, thiserror::Error)]
pub enum RingbaError {
    #[error(
        "Ringba account {account}: the API token was refused (HTTP 401); store a valid one with \
         `callscript org credentials set ORG ringba --public-id {account}`"
    )]
    Unauthorized { account: String },
    #[error(
        "Ringba account {account}: HTTP 403, the token's role may not read call logs (use an \
         Admin API token): {body}"
    )]
    Forbidden { account: String, body: String },
    #[error("Ringba {url}: HTTP {status}: {body}")]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Ringba {url}: still failing after {attempts} tries: {last}")]
    Unavailable {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("Ringba {url}: unexpected response: {reason}")]
    Malformed { url: String, reason: String },
    #[error(
        "the ringba/{label} credential of organization {org_id} has no account id: set it with \
         `callscript org credentials set ORG ringba --label {label} --public-id ACCOUNT_ID`"
    )]
    NoAccount { org_id: Uuid, label: String },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Org(#[from] OrgError),
}

impl From<tokio_postgres::Error> for RingbaError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for RingbaError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Db(e.into())
    }
}
