//! Ingest lanes: how calls get onto the queue.
//!
//! - [`upload`]: recordings from anywhere else (`callscript enqueue FILE...`): stored in the
//!   object store and queued as `downloaded`.
//!
//! Later lanes here: the Ringba poller and backfills, the LiveKit webhook, the vault.

pub mod upload;
