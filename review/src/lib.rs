//! What reviewers work with: QA flags and the calls they are about.
//!
//! - [`members`]: an organization's people (admin, reviewer, viewer) and their API tokens,
//!   stored as SHA-256 only; a token is shown once, when issued.
//! - [`scope`]: a transaction confined to one organization: `SET LOCAL ROLE callscript_api` and
//!   `app.org_id`, so Postgres row-level security, not the query text, keeps tenants apart.
//! - [`flags`]: flags found by filters (org, campaign, rule, severity, review status, dates),
//!   a page at a time, and a reviewer's decision on one.
//! - [`calls`]: one call as a reviewer sees it: facts, speaker-labelled transcript, flags.
//! - [`export`]: one column list per exported row, written as JSON and as CSV alike, times
//!   RFC 3339 UTC with `Z`.
//! - [`health`]: the queue at a glance: calls by state, throughput, the oldest waiting.
//!
//! The same queries serve the CLI (the pipeline role, every org, an org filter) and the HTTP
//! API (inside [`scope::enter`]). Nothing here reads the environment or prints.

pub mod calls;
pub mod export;
pub mod flags;
pub mod health;
pub mod members;
pub mod scope;

use callscript_core::db::DbError;
use callscript_core::model::UnknownLabel;

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no flag {0}")]
    UnknownFlag(uuid::Uuid),
    #[error("no call {0}")]
    UnknownCall(uuid::Uuid),
    #[error("no member {email:?} in this organization")]
    UnknownMember { email: String },
    #[error("invalid email {0:?}")]
    InvalidEmail(String),
    #[error(transparent)]
    Label(#[from] UnknownLabel),
    #[error(transparent)]
    Queue(#[from] callscript_core::queue::QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for ReviewError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReviewError::Db(e.into())
    }
}
