//! The calls table as a LIFO work queue.
//!
//! Each [`Lane`] claims calls in its ready state, holds them under a lease while it works, and
//! moves them on. The rules, all enforced here and in `sql/0003_calls.sql`–`0004`:
//!
//! - **Order**: priority first, then the newest call first (LIFO: live traffic beats backfills),
//!   and round-robin across organizations so one org's backlog delays another org's new call by
//!   at most one batch. Aging (in `core.age_waiting_calls`) lifts long-waiting calls' priority.
//! - **Claim**: one statement, `FOR UPDATE SKIP LOCKED`, so any number of claimers never take the
//!   same call twice.
//! - **Leases and fencing**: a claim gives a random lease token. Heartbeats extend it; every
//!   later write (complete, fail, release, heartbeat) matches on it. The rescuer clears tokens
//!   of expired leases, so a worker that wakes up after being rescued writes nothing.
//! - **Failure**: back to the ready state with exponential backoff, or to `failed` (dead letter)
//!   once `max_attempts` are spent; `requeue_failed` brings dead letters back.
//!
//! All functions take any [`GenericClient`], so a lane can write its results and move the call
//! in one transaction: call [`complete`] first in that transaction, it takes the row lock and
//! checks the fence, and roll back on [`QueueError::LeaseLost`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, GenericClient, Row};
use uuid::Uuid;

use crate::db::{connect_one, DatabaseUrl, DbError, Pool};
use crate::model::{CallState, Lane, Source};

mod idle;

pub use idle::{left_behind, IdleWatch, LeftBehind, Until, DEFAULT_IDLE_WAIT};

/// The channel `core.notify_queue()` notifies when a ready state gets work.
pub const NOTIFY_CHANNEL: &str = "callscript_queue";
/// The payload on [`NOTIFY_CHANNEL`] when an outbox row was written (0013's trigger).
pub const OUTBOX_WAKEUP: &str = "notifications";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The lease was rescued (expired) or already finished: this worker no longer owns the call
    /// and must discard its work.
    #[error(
        "lease on call {call_id} is no longer held (expired and rescued, or already finished)"
    )]
    LeaseLost { call_id: Uuid },
    #[error("invalid call: {0}")]
    InvalidCall(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for QueueError {
    fn from(e: tokio_postgres::Error) -> Self {
        QueueError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for QueueError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        QueueError::Db(e.into())
    }
}

/// A call to put on the queue. `(org_id, source, external_id)` identifies it: enqueueing the
/// same call again changes nothing.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub org_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub source: Source,
    pub external_id: String,
    /// `pending` (audio still to fetch), `downloaded` (audio already in storage) or `skipped`.
    pub state: CallState,
    pub priority: i16,
    pub max_attempts: i32,
    pub object_key: Option<String>,
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i32>,
    pub channels: Option<i16>,
    pub sample_rate: Option<i32>,
    pub caller_number: Option<String>,
    pub callee_number: Option<String>,
    pub call_started_at: DateTime<Utc>,
    pub metadata: serde_json::Value,
}

impl NewCall {
    /// A pending call with default priority and attempts; set the other fields as known.
    pub fn new(
        org_id: Uuid,
        source: Source,
        external_id: impl Into<String>,
        call_started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            org_id,
            campaign_id: None,
            source,
            external_id: external_id.into(),
            state: CallState::Pending,
            priority: 0,
            max_attempts: 5,
            object_key: None,
            sha256: None,
            content_type: None,
            size_bytes: None,
            duration_ms: None,
            channels: None,
            sample_rate: None,
            caller_number: None,
            callee_number: None,
            call_started_at,
            metadata: serde_json::json!({}),
        }
    }

    fn validate(&self) -> Result<(), QueueError> {
        let invalid = |what: String| Err(QueueError::InvalidCall(what));
        if self.external_id.trim().is_empty() {
            return invalid("external_id is empty".into());
        }
        match self.state {
            CallState::Pending | CallState::Skipped => {}
            CallState::Downloaded if self.object_key.is_some() => {}
            CallState::Downloaded => {
                return invalid(format!(
                    "{} {} is enqueued as downloaded without an object key",
                    self.source, self.external_id
                ))
            }
            other => {
                return invalid(format!(
                    "calls enter the queue as pending, downloaded or skipped, not {other}"
                ))
            }
        }
        if self.max_attempts < 1 {
            return invalid(format!("max_attempts is {}", self.max_attempts));
        }
        Ok(())
    }
}

/// Whether [`enqueue`] created the call or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub call_id: Uuid,
    pub inserted: bool,
}

/// Puts a call on the queue, or finds it there already (nothing about it changes then).
pub async fn enqueue(client: &impl GenericClient, call: &NewCall) -> Result<Enqueued, QueueError> {
    call.validate()?;
    let inserted = client
        .query_opt(
            "INSERT INTO core.calls (org_id, campaign_id, source, external_id, state, priority,
                 max_attempts, object_key, sha256, content_type, size_bytes, duration_ms,
                 channels, sample_rate, caller_number, callee_number, call_started_at, metadata)
             VALUES ($1, $2, $3::text::core.call_source, $4, $5::text::core.call_state, $6, $7,
                 $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
             ON CONFLICT (org_id, source, external_id) DO NOTHING
             RETURNING id",
            &[
                &call.org_id,
                &call.campaign_id,
                &call.source.as_str(),
                &call.external_id,
                &call.state.as_str(),
                &call.priority,
                &call.max_attempts,
                &call.object_key,
                &call.sha256,
                &call.content_type,
                &call.size_bytes,
                &call.duration_ms,
                &call.channels,
                &call.sample_rate,
                &call.caller_number,
                &call.callee_number,
                &call.call_started_at,
                &call.metadata,
            ],
        )
        .await?;
    if let Some(row) = inserted {
        return Ok(Enqueued {
            call_id: row.get(0),
            inserted: true,
        });
    }
    let existing = client
        .query_one(
            "SELECT id FROM core.calls
             WHERE org_id = $1 AND source = $2::text::core.call_source AND external_id = $3",
            &[&call.org_id, &call.source.as_str(), &call.external_id],
        )
        .await?;
    Ok(Enqueued {
        call_id: existing.get(0),
        inserted: false,
    })
}

/// A call as the queue knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: Uuid,
    pub org_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub source: Source,
    pub external_id: String,
    pub state: CallState,
    pub priority: i16,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: DateTime<Utc>,
    pub lease_owner: Option<String>,
    pub rescue_count: i32,
    pub last_error: Option<String>,
    pub object_key: Option<String>,
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i32>,
    pub channels: Option<i16>,
    pub sample_rate: Option<i32>,
    pub caller_number: Option<String>,
    pub callee_number: Option<String>,
    pub call_started_at: DateTime<Utc>,
    pub metadata: serde_json::Value,
}

const CALL_COLUMNS: &str = "c.id, c.org_id, c.campaign_id, c.source::text AS source, c.external_id,
    c.state::text AS state, c.priority, c.attempts, c.max_attempts, c.run_after, c.lease_owner,
    c.rescue_count, c.last_error, c.object_key, c.sha256, c.content_type, c.size_bytes,
    c.duration_ms, c.channels, c.sample_rate, c.caller_number, c.callee_number,
    c.call_started_at, c.metadata";

impl Call {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let label = |column: &str| -> String { row.get(column) };
        Ok(Self {
            id: row.get("id"),
            org_id: row.get("org_id"),
            campaign_id: row.get("campaign_id"),
            source: label("source").parse()?,
            external_id: row.get("external_id"),
            state: label("state").parse()?,
            priority: row.get("priority"),
            attempts: row.get("attempts"),
            max_attempts: row.get("max_attempts"),
            run_after: row.get("run_after"),
            lease_owner: row.get("lease_owner"),
            rescue_count: row.get("rescue_count"),
            last_error: row.get("last_error"),
            object_key: row.get("object_key"),
            sha256: row.get("sha256"),
            content_type: row.get("content_type"),
            size_bytes: row.get("size_bytes"),
            duration_ms: row.get("duration_ms"),
            channels: row.get("channels"),
            sample_rate: row.get("sample_rate"),
            caller_number: row.get("caller_number"),
            callee_number: row.get("callee_number"),
            call_started_at: row.get("call_started_at"),
            metadata: row.get("metadata"),
        })
    }
}

/// Reads one call.
pub async fn get_call(
    client: &impl GenericClient,
    call_id: Uuid,
) -> Result<Option<Call>, QueueError> {
    let row = client
        .query_opt(
            &format!("SELECT {CALL_COLUMNS} FROM core.calls c WHERE c.id = $1"),
            &[&call_id],
        )
        .await?;
    Ok(row.map(|r| Call::from_row(&r)).transpose()?)
}

/// Proof that this worker holds a call. Every write about the call presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub call_id: Uuid,
    pub lane: Lane,
    pub token: Uuid,
    /// 1 for the first try in this lane.
    pub attempt: i32,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Claimed {
    pub lease: Lease,
    pub call: Call,
}

/// What a claimer asks for.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub lane: Lane,
    /// Who holds the lease (host, pod, process): shown in the queue and in rescue errors.
    pub worker: &'a str,
    pub batch_size: i64,
    /// How long the lease lasts without a heartbeat.
    pub lease_for: Duration,
    /// Only this organization's calls (a tenant's dedicated workers, a benchmark); `None`: all,
    /// round-robin.
    pub org_id: Option<Uuid>,
}

/// The ranked candidates of a lane, in claim order: per org the best `$1` ready calls
/// (priority, then newest), ranked so each org's first comes before any org's second; only the
/// org `$org` when that parameter is not null.
///
/// The ready state is written into the statement, not bound: only a literal lets the planner
/// prove the lane's partial index applies (a bound text cast to the enum is not constant at
/// plan time, and the claim then scans the whole table).
fn ranked_candidates_sql(lane: Lane, lock: bool, org: &str) -> String {
    let lock = if lock { "FOR UPDATE SKIP LOCKED" } else { "" };
    let ready = lane.ready_state().as_str();
    format!(
        "SELECT c.id,
                row_number() OVER (ORDER BY c.org_rank, c.priority DESC, c.call_started_at DESC)
                  AS claim_order
         FROM (
           SELECT c.id, c.priority, c.call_started_at,
                  row_number() OVER (PARTITION BY c.org_id
                                     ORDER BY c.priority DESC, c.call_started_at DESC) AS org_rank
           FROM core.organizations o
           CROSS JOIN LATERAL (
             SELECT id, org_id, priority, call_started_at
             FROM core.calls
             WHERE org_id = o.id AND state = '{ready}' AND run_after <= now()
             ORDER BY priority DESC, call_started_at DESC
             LIMIT $1
             {lock}
           ) c
           WHERE {org}::uuid IS NULL OR o.id = {org}
         ) c
         ORDER BY claim_order
         LIMIT $1"
    )
}

/// Claims up to `batch_size` calls for a lane, in one statement.
pub async fn claim(
    client: &impl GenericClient,
    request: &ClaimRequest<'_>,
) -> Result<Vec<Claimed>, QueueError> {
    let lane = request.lane;
    let sql = format!(
        "WITH chosen AS ({candidates})
         UPDATE core.calls c SET
           state = '{leased}',
           attempts = c.attempts + 1,
           lease_owner = $2,
           lease_token = gen_random_uuid(),
           heartbeat_at = now(),
           lease_expires_at = now() + make_interval(secs => $3::float8)
         FROM chosen
         WHERE c.id = chosen.id
         RETURNING chosen.claim_order, c.lease_token, c.lease_expires_at, {CALL_COLUMNS}",
        candidates = ranked_candidates_sql(lane, true, "$4"),
        leased = lane.leased_state().as_str(),
    );
    let rows = client
        .query(
            &sql,
            &[
                &request.batch_size,
                &request.worker,
                &request.lease_for.as_secs_f64(),
                &request.org_id,
            ],
        )
        .await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let call = Call::from_row(row)?;
            Ok((
                row.get::<_, i64>("claim_order"),
                Claimed {
                    lease: Lease {
                        call_id: call.id,
                        lane,
                        token: row.get("lease_token"),
                        attempt: call.attempts,
                        expires_at: row.get("lease_expires_at"),
                    },
                    call,
                },
            ))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    claimed.sort_by_key(|(order, _)| *order);
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

/// The calls a lane would claim next, in order, without claiming them.
pub async fn peek(
    client: &impl GenericClient,
    lane: Lane,
    limit: i64,
) -> Result<Vec<Call>, QueueError> {
    let sql = format!(
        "WITH next AS ({candidates})
         SELECT {CALL_COLUMNS} FROM next JOIN core.calls c ON c.id = next.id
         ORDER BY next.claim_order",
        candidates = ranked_candidates_sql(lane, false, "$2")
    );
    let rows = client.query(&sql, &[&limit, &None::<Uuid>]).await?;
    Ok(rows.iter().map(Call::from_row).collect::<Result<_, _>>()?)
}

/// Leases whose heartbeat found them gone: their work must be dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReport {
    pub renewed: usize,
    pub lost: Vec<Uuid>,
}

/// Extends the given leases by `lease_for` from now; updates their `expires_at` in place.
pub async fn heartbeat(
    client: &impl GenericClient,
    leases: &mut [Lease],
    lease_for: Duration,
) -> Result<HeartbeatReport, QueueError> {
    let ids: Vec<Uuid> = leases.iter().map(|l| l.call_id).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token).collect();
    let rows = client
        .query(
            "UPDATE core.calls c SET
               heartbeat_at = now(),
               lease_expires_at = now() + make_interval(secs => $3::float8)
             FROM unnest($1::uuid[], $2::uuid[]) AS l(id, token)
             WHERE c.id = l.id AND c.lease_token = l.token
             RETURNING c.id, c.lease_expires_at",
            &[&ids, &tokens, &lease_for.as_secs_f64()],
        )
        .await?;
    let mut report = HeartbeatReport::default();
    for lease in leases.iter_mut() {
        match rows.iter().find(|r| r.get::<_, Uuid>(0) == lease.call_id) {
            Some(row) => {
                lease.expires_at = row.get(1);
                report.renewed += 1;
            }
            None => report.lost.push(lease.call_id),
        }
    }
    Ok(report)
}

/// Clears the lease columns; part of every write that ends a lease.
const END_LEASE: &str =
    "lease_owner = NULL, lease_token = NULL, heartbeat_at = NULL, lease_expires_at = NULL";

/// Runs a fenced update: it changes the call only while `lease` is still held.
async fn fenced(
    client: &impl GenericClient,
    lease: &Lease,
    set: &str,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    returning: &str,
) -> Result<Row, QueueError> {
    let sql = format!(
        "UPDATE core.calls c SET {set}, {END_LEASE}
         WHERE c.id = $1 AND c.lease_token = $2
         RETURNING {returning}"
    );
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        vec![&lease.call_id, &lease.token];
    params.extend_from_slice(extra);
    client
        .query_opt(&sql, &params)
        .await?
        .ok_or(QueueError::LeaseLost {
            call_id: lease.call_id,
        })
}

/// Moves the call to the lane's done state (the next lane's ready state).
pub async fn complete(client: &impl GenericClient, lease: &Lease) -> Result<(), QueueError> {
    fenced(
        client,
        lease,
        "state = $3::text::core.call_state, attempts = 0, run_after = now(), queued_at = now(),
         aged_at = NULL, last_error = NULL",
        &[&lease.lane.done_state().as_str()],
        "c.id",
    )
    .await
    .map(drop)
}

/// Ends the call as `skipped` (nothing to process, e.g. its recording is gone for good).
pub async fn skip(
    client: &impl GenericClient,
    lease: &Lease,
    reason: &str,
) -> Result<(), QueueError> {
    fenced(
        client,
        lease,
        "state = 'skipped', last_error = $3",
        &[&reason],
        "c.id",
    )
    .await
    .map(drop)
}

/// Whether a failure may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Back to the queue with backoff while attempts remain.
    WithBackoff,
    /// Straight to the dead letter: retrying cannot help (e.g. the audio is not audio).
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    WillRetry { run_after: DateTime<Utc> },
    DeadLettered,
}

/// Records a failure: retry later with backoff, or dead-letter past `max_attempts`.
pub async fn fail(
    client: &impl GenericClient,
    lease: &Lease,
    error: &str,
    retry: Retry,
) -> Result<Failed, QueueError> {
    let give_up = retry == Retry::Never;
    let row = fenced(
        client,
        lease,
        "state = CASE WHEN $4 OR c.attempts >= c.max_attempts THEN 'failed'::core.call_state
                      ELSE core.lane_ready_state(c.state) END,
         failed_state = CASE WHEN $4 OR c.attempts >= c.max_attempts
                             THEN core.lane_ready_state(c.state) END,
         run_after = CASE WHEN $4 OR c.attempts >= c.max_attempts THEN c.run_after
                          ELSE now() + core.retry_backoff(c.attempts) END,
         queued_at = now(), aged_at = NULL, last_error = $3",
        &[&error, &give_up],
        "c.state::text, c.run_after",
    )
    .await?;
    Ok(if row.get::<_, &str>(0) == CallState::Failed.as_str() {
        Failed::DeadLettered
    } else {
        Failed::WillRetry {
            run_after: row.get(1),
        }
    })
}

/// Gives the call back untouched (clean shutdown): ready again now, the attempt not counted.
pub async fn release(client: &impl GenericClient, lease: &Lease) -> Result<(), QueueError> {
    fenced(
        client,
        lease,
        "state = core.lane_ready_state(c.state), attempts = greatest(c.attempts - 1, 0),
         run_after = now(), queued_at = now()",
        &[],
        "c.id",
    )
    .await
    .map(drop)
}

/// Stores what decoding a call's recording told (its length, channels and the codec's sample
/// rate, kept when ingest already knew it); part of the lane's result transaction.
pub async fn record_audio_facts(
    client: &impl GenericClient,
    call_id: Uuid,
    duration_ms: i32,
    channels: i16,
    sample_rate: i32,
) -> Result<(), QueueError> {
    client
        .execute(
            "UPDATE core.calls SET
               duration_ms = $2, channels = $3, sample_rate = coalesce(sample_rate, $4)
             WHERE id = $1",
            &[&call_id, &duration_ms, &channels, &sample_rate],
        )
        .await?;
    Ok(())
}

/// Where the vault stored a call's recording; part of the vault's result transaction.
pub async fn record_stored_object(
    client: &impl GenericClient,
    call_id: Uuid,
    object: &StoredObject<'_>,
) -> Result<(), QueueError> {
    client
        .execute(
            "UPDATE core.calls SET
               object_key = $2, sha256 = $3, content_type = $4, size_bytes = $5
             WHERE id = $1",
            &[
                &call_id,
                &object.key,
                &object.sha256,
                &object.content_type,
                &object.size_bytes,
            ],
        )
        .await?;
    Ok(())
}

/// A recording as stored by the vault.
#[derive(Debug, Clone, Copy)]
pub struct StoredObject<'a> {
    pub key: &'a str,
    pub sha256: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
}

/// Merges `metadata` (top-level keys replaced) into a known call's metadata, whatever its
/// state: what a source learns about a call later (a Ringba conversion, revenue) without
/// touching its place in the queue. Whether anything changed; false for an unknown call.
pub async fn refresh_metadata(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    external_id: &str,
    metadata: &serde_json::Value,
) -> Result<bool, QueueError> {
    Ok(client
        .execute(
            "UPDATE core.calls SET metadata = metadata || $4, updated_at = now()
             WHERE org_id = $1 AND source = $2::text::core.call_source AND external_id = $3
               AND NOT metadata @> $4",
            &[&org_id, &source.as_str(), &external_id, metadata],
        )
        .await?
        > 0)
}

/// Which dead letters to bring back.
#[derive(Debug, Clone, Default)]
pub struct RequeueFilter {
    pub org_id: Option<Uuid>,
    /// Empty: every failed call (of the org, when given).
    pub call_ids: Vec<Uuid>,
}

/// Returns failed calls to the ready state they failed from, with fresh attempts.
pub async fn requeue_failed(
    client: &impl GenericClient,
    filter: &RequeueFilter,
) -> Result<u64, QueueError> {
    Ok(client
        .execute(
            "UPDATE core.calls c SET
               state = c.failed_state, failed_state = NULL, attempts = 0,
               run_after = now(), queued_at = now(), aged_at = NULL
             WHERE c.state = 'failed'
               AND ($1::uuid IS NULL OR c.org_id = $1)
               AND (cardinality($2::uuid[]) = 0 OR c.id = ANY($2))",
            &[&filter.org_id, &filter.call_ids],
        )
        .await?)
}

/// Sends the calls `lane` finished (its done state) back to its ready state, to be done again:
/// re-judging with a new rulebook. Only calls no later lane has claimed are sent back.
pub async fn redo(
    client: &impl GenericClient,
    lane: Lane,
    org_id: Option<Uuid>,
) -> Result<u64, QueueError> {
    Ok(client
        .execute(
            &format!(
                "UPDATE core.calls SET state = '{ready}', attempts = 0, run_after = now(),
                   queued_at = now(), aged_at = NULL, last_error = NULL
                 WHERE state = '{done}' AND ($1::uuid IS NULL OR org_id = $1)",
                ready = lane.ready_state().as_str(),
                done = lane.done_state().as_str(),
            ),
            &[&org_id],
        )
        .await?)
}

/// How many calls an org has in a state; `retrying` counts those waiting out a backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub org_slug: String,
    pub state: CallState,
    pub calls: i64,
    pub retrying: i64,
}

pub async fn counts(
    client: &impl GenericClient,
    org_id: Option<Uuid>,
) -> Result<Vec<StateCount>, QueueError> {
    let rows = client
        .query(
            "SELECT o.slug, c.state::text, count(*),
                    count(*) FILTER (WHERE c.run_after > now() AND c.last_error IS NOT NULL)
             FROM core.calls c JOIN core.organizations o ON o.id = c.org_id
             WHERE $1::uuid IS NULL OR c.org_id = $1
             GROUP BY o.slug, c.state ORDER BY o.slug, c.state",
            &[&org_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let state: CallState = row.get::<_, &str>(1).parse().map_err(DbError::from)?;
            Ok(StateCount {
                org_slug: row.get(0),
                state,
                calls: row.get(2),
                // Only a ready state waits out a backoff; elsewhere the same columns mean history.
                retrying: if state.is_ready() { row.get(3) } else { 0 },
            })
        })
        .collect()
}

/// How many calls are in each of `states`, over all organizations (0 for a state with none).
/// The states are written into the statement, as the claim's are, so each count can use the
/// state's index.
pub async fn depth(
    client: &impl GenericClient,
    states: &[CallState],
) -> Result<Vec<(CallState, i64)>, QueueError> {
    let labels: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
    let rows = client
        .query(
            &format!(
                "SELECT state::text, count(*) FROM core.calls WHERE state IN ('{}')
                 GROUP BY state",
                labels.join("', '")
            ),
            &[],
        )
        .await?;
    Ok(states
        .iter()
        .map(|state| {
            let calls = rows
                .iter()
                .find(|r| r.get::<_, &str>(0) == state.as_str())
                .map_or(0, |r| r.get(1));
            (*state, calls)
        })
        .collect())
}

/// Wakes an idle lane when its ready state gets work (LISTEN/NOTIFY), with a polling fallback
/// for notifications lost while reconnecting.
pub struct QueueListener {
    // Kept alive: dropping the client ends the connection and the LISTEN.
    _client: tokio_postgres::Client,
    notifications: mpsc::UnboundedReceiver<String>,
}

/// Why [`QueueListener::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    Notified,
    PollInterval,
}

impl QueueListener {
    /// A listener, or `None` when LISTEN is not possible (logged): the lane then polls.
    pub async fn connect_or_poll(url: &DatabaseUrl) -> Option<Self> {
        match Self::connect(url).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for new calls; polling instead");
                None
            }
        }
    }

    pub async fn connect(url: &DatabaseUrl) -> Result<Self, QueueError> {
        let (client, mut connection) = connect_one(url).await?;
        let (tx, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == NOTIFY_CHANNEL => {
                        if tx.send(n.payload().to_owned()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "queue listener connection ended");
                        break;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
            .await?;
        Ok(Self {
            _client: client,
            notifications,
        })
    }

    /// Waits until `lane` gets work or `poll_interval` (with +-20 % jitter, so many idle
    /// workers do not poll in step) passes. If the listening connection drops, this degrades
    /// to polling.
    pub async fn wait(&mut self, lane: Lane, poll_interval: Duration) -> Wakeup {
        self.wait_for(lane.ready_state().as_str(), poll_interval)
            .await
    }

    /// Waits until a notification with `payload` arrives (a ready state, or
    /// [`OUTBOX_WAKEUP`]) or `poll_interval` (jittered the same way) passes.
    pub async fn wait_for(&mut self, payload: &str, poll_interval: Duration) -> Wakeup {
        let jitter = rand::random_range(0.8..1.2);
        let deadline = tokio::time::Instant::now() + poll_interval.mul_f64(jitter);
        loop {
            match tokio::time::timeout_at(deadline, self.notifications.recv()).await {
                Ok(Some(got)) if got == payload => return Wakeup::Notified,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    tokio::time::sleep_until(deadline).await;
                    return Wakeup::PollInterval;
                }
                Err(_) => return Wakeup::PollInterval,
            }
        }
    }
}

/// Where and how long a lane's loop claims.
#[derive(Clone, Copy)]
pub struct LaneLoop<'a> {
    /// For LISTEN/NOTIFY; the loop polls when it cannot listen.
    pub database_url: &'a DatabaseUrl,
    /// For what [`IdleWatch`] asks when a batch finds nothing.
    pub pool: &'a Pool,
    pub lane: Lane,
    /// The organization the lane claims for (`None`: all of them).
    pub org_id: Option<Uuid>,
    /// The longest wait for work when no notification comes.
    pub poll_interval: Duration,
    pub until: Until,
}

/// A lane's loop: runs `batch` (claim and work one batch; `None` when nothing was ready) and
/// hands each result to `on_batch`, until `stop` turns true (after the batch in hand) or, with
/// [`Until::Idle`], until nothing is ready and nothing falls due within the wait
/// ([`IdleWatch`]). Idle, it waits for the lane's ready state to get work (LISTEN, else a
/// jittered poll every `poll_interval`, sooner when a call falls due).
pub async fn run_batches<R, F, Fut>(
    lane_loop: LaneLoop<'_>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut batch: F,
    mut on_batch: impl FnMut(R),
) -> Result<(), QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<R>, QueueError>>,
{
    let LaneLoop {
        database_url,
        pool,
        lane,
        org_id,
        poll_interval,
        until,
    } = lane_loop;
    let mut listener = QueueListener::connect_or_poll(database_url).await;
    let mut idle = match until {
        Until::Stopped => None,
        Until::Idle { wait } => Some(IdleWatch::new(lane, org_id, wait)),
    };
    while !*stop.borrow() {
        if let Some(result) = batch().await? {
            if let Some(idle) = &mut idle {
                idle.busy();
            }
            on_batch(result);
            continue;
        }
        let pause = match &mut idle {
            None => poll_interval,
            Some(idle) => match idle.next_claim_in(&**pool.get().await?).await? {
                Some(due_in) => due_in.min(poll_interval),
                None => break,
            },
        };
        tokio::select! {
            () = wait_for_work(&mut listener, lane, pause) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(())
}

/// Waits until `lane` may have work: a notification when listening, else a jittered poll.
pub async fn wait_for_work(
    listener: &mut Option<QueueListener>,
    lane: Lane,
    poll_interval: Duration,
) {
    wait_for_payload(listener, lane.ready_state().as_str(), poll_interval).await;
}

/// Waits for a notification with `payload` (a ready state, or [`OUTBOX_WAKEUP`]) when
/// listening, else a jittered poll.
pub async fn wait_for_payload(
    listener: &mut Option<QueueListener>,
    payload: &str,
    poll_interval: Duration,
) {
    match listener {
        Some(listener) => {
            listener.wait_for(payload, poll_interval).await;
        }
        None => {
            let jitter = rand::random_range(0.8..1.2);
            tokio::time::sleep(poll_interval.mul_f64(jitter)).await;
        }
    }
}
