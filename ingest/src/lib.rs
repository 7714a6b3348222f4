//! Ingest lanes: how calls get onto the queue.
//!
//! - [`upload`]: recordings from anywhere else (`callscript enqueue FILE...`): stored in the
//!   object store and queued as `downloaded`.
//! - [`ringba`]: Ringba's call log, polled from a watermark and backfilled on demand.
//! - [`livekit`]: LiveKit egress recordings: signed webhooks, and ListEgress for dropped ones.
//! - [`vault`]: downloads `pending` calls' recordings into the object store ([`probe`] reads
//!   their headers first) from their signed links, which [`links`] keeps out of members' sight.
//! - [`http`]: the HTTP client setup every lane shares.

pub mod http;
pub mod links;
pub mod livekit;
pub mod probe;
pub mod ringba;
pub mod upload;
pub mod vault;
