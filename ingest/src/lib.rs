//! Ingest lanes: how calls get onto the queue.
//!
//! - [`upload`]: recordings from anywhere else (`callscript enqueue FILE...`): stored in the
//!   object store and queued as `downloaded`.
//! - [`http`]: the HTTP client setup every lane shares.

pub mod http;
pub mod upload;
