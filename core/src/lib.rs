//! The spine every callscript lane stands on.
//!
//! - [`db`]: connecting to Postgres with errors that name the setting at fault.
//! - [`migrate`]: the numbered migrations in `sql/`, applied in order and checksummed.
//! - [`queue`]: the calls table as a LIFO queue with leases, fencing, backoff and dead letter.
//! - [`maintenance`]: the rescuer and aging loop for when pg_cron is not there to run them.
//! - [`storage`]: where recordings live (S3 or a local directory), behind one small trait.
//! - [`model`]: the domain types shared by all lanes.
//! - [`credentials`]: per-organization secrets, sealed with a key from the environment.
//! - [`orgs`]: organizations (tenants) and their campaigns.
//! - [`transcripts`]: transcripts and their segments as stored, saved and loaded per call.
//! - [`flags`]: what a call's QA flags make of it (`flagged`).
//! - [`html`]: text made inert in HTML pages and mails.
//! - [`dates`]: time bounds as people write them (a date or an RFC 3339 time).
//! - [`cursors`]: where ingest polling resumes (watermark) and the calls it must look at again.
//! - [`usage`]: what each lane spent per call (audio and device seconds, cost).
//! - [`workers`]: lane processes reporting in, for queue health.
//! - [`metrics`]: Prometheus counters and gauges, served on `/metrics`.
//!
//! Nothing here knows about audio, Whisper, Ringba or rules: those live in their lanes.

pub mod credentials;
pub mod cursors;
pub mod dates;
pub mod db;
pub mod flags;
pub mod html;
pub mod maintenance;
pub mod metrics;
pub mod migrate;
pub mod model;
pub mod orgs;
pub mod queue;
pub mod storage;
pub mod transcripts;
pub mod usage;
pub mod workers;
