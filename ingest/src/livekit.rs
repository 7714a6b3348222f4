//! The LiveKit lane: finished egress recordings become calls.
//!
//! LiveKit tells us about a finished recording with an `egress_ended` webhook, signed with the
//! org's API secret ([`router`], checked in [`token`]). Webhooks alone lose calls: LiveKit's
//! notifier queues at most 100 events and drops the rest when it falls behind, and a webhook
//! that meets our endpoint down is gone after its retries. So [`LiveKitIngest::reconcile`] asks
//! each org's LiveKit project for its egresses (ListEgress) on a timer and records every
//! complete one the webhook missed. Both paths go through [`record_egress`], keyed by the
//! egress id, so an egress is one call however often it is reported.
//!
//! An egress whose file LiveKit uploaded into our own bucket (its S3 output is our store, and
//! the file's `filename` is the object's key) is queued `downloaded`: the audio is already where
//! the worker reads it, and the object's size, hash and content type come from the store. Any
//! other file is queued `pending` with its `location`, and the vault lane fetches it.

mod egress;
mod reconcile;
pub mod token;
mod webhook;

use std::sync::Arc;

use callscript_core::credentials::{CredentialError, CredentialKey};
use callscript_core::db::DbError;
use callscript_core::queue::QueueError;
use callscript_core::storage::{ObjectStore, StorageError};

pub use egress::{
    record_egress, EgressInfo, FileInfo, Recorded, RoomComposite, WebhookEvent, DUAL_CHANNEL_AGENT,
    EGRESS_COMPLETE,
};
pub use reconcile::ReconcileReport;
pub use webhook::{router, WEBHOOK_PATH};

/// The credential kind holding an org's LiveKit API key (`public_id`), secret and project URL
/// (`endpoint`).
pub const CREDENTIAL_KIND: &str = "livekit";

/// The largest webhook body accepted by default; egress events are a few kilobytes.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    #[error("egress {egress_id} is {status}, not {EGRESS_COMPLETE}: there is no recording yet")]
    NotComplete { egress_id: String, status: String },
    #[error("egress {egress_id} has no file result (a stream, segment or image egress)")]
    NoFile { egress_id: String },
    #[error("egress {egress_id} has no start time")]
    NoStartTime { egress_id: String },
    #[error(
        "egress {egress_id}: file {filename:?} is not in our store and the egress gives no \
         location to fetch it from"
    )]
    NoLocation { egress_id: String, filename: String },
    #[error("egress {egress_id}: looking for its file in the store failed: {source}")]
    Store {
        egress_id: String,
        source: StorageError,
    },
    #[error("egress {egress_id}: queueing the call failed: {source}")]
    Queue {
        egress_id: String,
        source: QueueError,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "organization {org_id}: livekit/{label} credential has no {missing} (store the API key \
         as its public id and the project URL, https://PROJECT.livekit.cloud, as its endpoint)"
    )]
    IncompleteCredential {
        org_id: uuid::Uuid,
        label: String,
        missing: &'static str,
    },
    #[error("POST {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("POST {url}: HTTP {status}: {body}")]
    HttpStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("POST {url}: unreadable ListEgress response: {reason}")]
    BadResponse { url: String, reason: String },
}

impl From<deadpool_postgres::PoolError> for LiveKitError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        LiveKitError::Db(e.into())
    }
}

/// The LiveKit lane: the webhook endpoint's state and the reconciler.
pub struct LiveKitIngest {
    pool: deadpool_postgres::Pool,
    key: CredentialKey,
    store: Arc<dyn ObjectStore>,
    http: reqwest::Client,
    max_body_bytes: usize,
}

impl LiveKitIngest {
    /// `key` opens the orgs' `livekit` credentials; `store` is where LiveKit may have uploaded
    /// recordings; `http` calls the LiveKit API (see [`crate::http::client`]).
    pub fn new(
        pool: deadpool_postgres::Pool,
        key: CredentialKey,
        store: Arc<dyn ObjectStore>,
        http: reqwest::Client,
    ) -> Self {
        Self {
            pool,
            key,
            store,
            http,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The largest webhook body accepted; larger ones are answered 413 unread.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// [`record_egress`] in a transaction of its own, as the webhook and reconcile report one.
    async fn record(
        &self,
        org_id: uuid::Uuid,
        egress: &EgressInfo,
    ) -> Result<Recorded, LiveKitError> {
        let db_error = |e: tokio_postgres::Error| LiveKitError::Db(e.into());
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let recorded = record_egress(&*transaction, self.store.as_ref(), org_id, egress).await?;
        transaction.commit().await.map_err(db_error)?;
        Ok(recorded)
    }
}
