//! The outbox, `core.notifications`: one row per event and channel, written in the transaction
//! of the fact that causes the event, delivered by the lane.
//!
//! A row is `pending` until the lane claims it; a claim moves it to `sending`, counts an
//! attempt and sets `next_attempt_at` to the end of the sender's lease, so a sender that crashes
//! or hangs loses its rows to the next claim once the lease passes. The attempt count is the
//! fencing token: only the claim that made attempt N may settle the row as attempt N (a sender
//! whose lease was taken over writes nothing). Settled rows are `delivered`, `pending` again with
//! a later `next_attempt_at` (retry), or `failed` (attempts spent, or a channel that cannot
//! work) with `last_error` kept; `delivered` and `failed` rows are never claimed again.

use std::time::Duration;

use callscript_core::db::DbError;
use callscript_core::model::Category;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{Event, HoldReason};

/// The longest `last_error` stored: a receiver's whole HTML error page is no use there.
const MAX_ERROR_CHARS: usize = 1000;

/// Queues `event` for every enabled channel of the organization that routes its kind (and, for
/// flags, whose minimum severity it reaches); how many rows were inserted. An event already
/// queued for a channel (same dedup key) is not queued again, delivered or not.
///
/// Call it with the transaction that writes the event's cause, e.g. inside the judge's, so a
/// rolled-back judgement queues nothing and a committed one cannot lose its alerts.
pub async fn enqueue_event(
    client: &impl GenericClient,
    org_id: Uuid,
    event: &Event,
) -> Result<usize, DbError> {
    let payload = serde_json::to_value(event).expect("events serialize to JSON");
    let inserted = client
        .execute(
            "INSERT INTO core.notifications (org_id, event_kind, dedup_key, channel, payload)
             SELECT $1, $2, $3, c.name, $4
             FROM core.notification_channels c
             WHERE c.org_id = $1 AND c.enabled AND $2 = ANY (c.event_kinds)
               AND ($5::text IS NULL OR $5::text::core.flag_severity >= c.min_severity)
             ORDER BY c.name
             ON CONFLICT (org_id, channel, dedup_key) DO NOTHING",
            &[
                &org_id,
                &event.kind().as_str(),
                &event.dedup_key(),
                &payload,
                &event.severity().map(|s| s.as_str()),
            ],
        )
        .await?;
    Ok(usize::try_from(inserted).expect("row counts fit usize"))
}

/// Queues a [`Event::Flag`] for each of the call's compliance flags that is not dismissed, read
/// back as stored so each message links to its flag; how many rows were inserted. For the judge,
/// after it wrote the call's flags, in the same transaction. A flag already queued (same call,
/// rule and time) is not queued again, so re-judging a call alerts only what is new; each
/// channel's minimum severity decides which flags reach it.
pub async fn enqueue_compliance_flags(
    client: &impl GenericClient,
    org_id: Uuid,
    call_id: Uuid,
) -> Result<usize, DbError> {
    let rows = client
        .query(
            "SELECT id, rule_id, severity::text, evidence_text, start_ms,
                    coalesce(nullif(role::text, 'unknown'), speaker)
             FROM core.qa_flags
             WHERE call_id = $1 AND org_id = $2 AND category = 'compliance'
               AND review_status <> 'dismissed'
             ORDER BY start_ms NULLS FIRST, rule_id",
            &[&call_id, &org_id],
        )
        .await?;
    let mut queued = 0;
    for row in rows {
        let event = Event::Flag {
            call_id,
            flag_id: Some(row.get(0)),
            rule_id: row.get(1),
            category: Category::Compliance,
            severity: row.get::<_, String>(2).parse()?,
            evidence: row.get(3),
            start_ms: row.get(4),
            speaker: row.get(5),
        };
        queued += enqueue_event(client, org_id, &event).await?;
    }
    Ok(queued)
}

/// A row claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub org_id: Uuid,
    pub event_kind: String,
    pub dedup_key: String,
    /// The channel's name.
    pub channel: String,
    pub payload: serde_json::Value,
    /// This attempt's number, from 1; fences the row (see the module docs).
    pub attempt: i32,
    pub max_attempts: i32,
    pub created_at: DateTime<Utc>,
    /// Why it was held back before (quiet hours, the rate limit), if it was.
    pub held_reason: Option<HoldReason>,
}

/// Claims up to `batch_size` due rows (pending ones whose time came, sending ones whose lease
/// ran out), oldest due first, each leased for `lease_for`. One statement with `SKIP LOCKED`, so
/// concurrent lanes never claim one row twice. A leased-out row that had no attempt left is
/// dead-lettered here instead of being tried beyond its limit.
pub async fn claim(
    client: &impl GenericClient,
    batch_size: i64,
    lease_for: Duration,
) -> Result<Vec<Claimed>, DbError> {
    // The state list is literal, never a parameter, so the planner can use the partial index
    // idx_notifications_due (the queue's lesson: a bound enum made the claim scan the table).
    let rows = client
        .query(
            "WITH due AS (
               SELECT id, attempts >= max_attempts AS spent
               FROM core.notifications
               WHERE state IN ('pending', 'sending') AND next_attempt_at <= now()
               ORDER BY next_attempt_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED
             ), dead AS (
               UPDATE core.notifications n
               SET state = 'failed',
                   last_error = CASE WHEN n.state = 'sending'
                     THEN 'the last attempt''s sender stopped before it reported (lease expired)'
                     ELSE coalesce(n.last_error, 'no attempts left') END
               FROM due WHERE n.id = due.id AND due.spent
             )
             UPDATE core.notifications n
             SET state = 'sending', attempts = n.attempts + 1,
                 next_attempt_at = now() + make_interval(secs => $2)
             FROM due WHERE n.id = due.id AND NOT due.spent
             RETURNING n.id, n.org_id, n.event_kind, n.dedup_key, n.channel, n.payload,
                       n.attempts, n.max_attempts, n.created_at, n.held_reason",
            &[&batch_size, &lease_for.as_secs_f64()],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Claimed {
                id: row.get(0),
                org_id: row.get(1),
                event_kind: row.get(2),
                dedup_key: row.get(3),
                channel: row.get(4),
                payload: row.get(5),
                attempt: row.get(6),
                max_attempts: row.get(7),
                created_at: row.get(8),
                held_reason: row
                    .get::<_, Option<String>>(9)
                    .map(|reason| reason.parse())
                    .transpose()?,
            })
        })
        .collect()
}

/// Where a claimed row ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Pending again, due at this time.
    WillRetry {
        at: DateTime<Utc>,
    },
    /// Dead-lettered, `last_error` kept.
    Failed,
    /// Back to pending until `until`, the attempt not counted (quiet hours, the rate limit).
    Held {
        until: DateTime<Utc>,
    },
    /// Carried by a digest row.
    Folded,
    /// Another claim took the row over after this one's lease ran out: nothing was written.
    LeaseLost,
}

/// The row was delivered.
pub async fn complete(client: &impl GenericClient, claimed: &Claimed) -> Result<Settled, DbError> {
    let updated = client
        .execute(
            "UPDATE core.notifications SET state = 'delivered', delivered_at = now()
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claimed.id, &claimed.attempt],
        )
        .await?;
    Ok(if updated == 1 {
        Settled::Delivered
    } else {
        Settled::LeaseLost
    })
}

/// The attempt failed: pending again after `delay`, or dead-lettered when it was the last one.
pub async fn retry(
    client: &impl GenericClient,
    claimed: &Claimed,
    error: &str,
    delay: Duration,
) -> Result<Settled, DbError> {
    let row = client
        .query_opt(
            "UPDATE core.notifications
             SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END
                           ::core.notification_state,
                 last_error = $3,
                 next_attempt_at = now() + CASE WHEN attempts >= max_attempts THEN interval '0'
                                                ELSE make_interval(secs => $4) END
             WHERE id = $1 AND state = 'sending' AND attempts = $2
             RETURNING state = 'failed', next_attempt_at",
            &[
                &claimed.id,
                &claimed.attempt,
                &stored_error(error),
                &delay.as_secs_f64(),
            ],
        )
        .await?;
    Ok(match row {
        None => Settled::LeaseLost,
        Some(row) if row.get::<_, bool>(0) => Settled::Failed,
        Some(row) => Settled::WillRetry { at: row.get(1) },
    })
}

/// The row can never be delivered (its channel is gone or disabled, its payload unreadable):
/// dead-lettered now, whatever attempts are left.
pub async fn fail(
    client: &impl GenericClient,
    claimed: &Claimed,
    error: &str,
) -> Result<Settled, DbError> {
    let updated = client
        .execute(
            "UPDATE core.notifications SET state = 'failed', last_error = $3
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claimed.id, &claimed.attempt, &stored_error(error)],
        )
        .await?;
    Ok(if updated == 1 {
        Settled::Failed
    } else {
        Settled::LeaseLost
    })
}

fn stored_error(error: &str) -> String {
    match error.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &error[..cut]),
        None => error.to_owned(),
    }
}

/// Holds the row back until `until` for `reason`: pending again, its attempt given back (it was
/// not tried).
pub async fn hold(
    client: &impl GenericClient,
    claimed: &Claimed,
    until: DateTime<Utc>,
    reason: HoldReason,
) -> Result<Settled, DbError> {
    let updated = client
        .execute(
            "UPDATE core.notifications
             SET state = 'pending', attempts = attempts - 1, next_attempt_at = $3,
                 held_reason = $4
             WHERE id = $1 AND state = 'sending' AND attempts = $2",
            &[&claimed.id, &claimed.attempt, &until, &reason.as_str()],
        )
        .await?;
    Ok(if updated == 1 {
        Settled::Held { until }
    } else {
        Settled::LeaseLost
    })
}

/// Folds claimed rows of one channel into one new digest row carrying `digest` (their events),
/// due now; the rows become `digested` and name it. All or nothing: when any row's claim was
/// taken over, nothing is written (`LeaseLost`). Run it in a transaction.
pub async fn fold(
    client: &impl GenericClient,
    rows: &[&Claimed],
    digest: &Event,
) -> Result<Settled, DbError> {
    let Some(first) = rows.first() else {
        return Ok(Settled::Folded);
    };
    let payload = serde_json::to_value(digest).expect("events serialize to JSON");
    let digest_id: Uuid = client
        .query_one(
            "INSERT INTO core.notifications (org_id, event_kind, dedup_key, channel, payload)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, channel, dedup_key) DO UPDATE SET payload = excluded.payload
             RETURNING id",
            &[
                &first.org_id,
                &digest.kind().as_str(),
                &digest.dedup_key(),
                &first.channel,
                &payload,
            ],
        )
        .await?
        .get(0);
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let attempts: Vec<i32> = rows.iter().map(|row| row.attempt).collect();
    let folded = client
        .execute(
            "UPDATE core.notifications n
             SET state = 'digested', digest_id = $3, attempts = n.attempts - 1
             FROM unnest($1::uuid[], $2::int[]) AS m(id, attempt)
             WHERE n.id = m.id AND n.state = 'sending' AND n.attempts = m.attempt",
            &[&ids, &attempts, &digest_id],
        )
        .await?;
    Ok(if folded as usize == rows.len() {
        Settled::Folded
    } else {
        Settled::LeaseLost
    })
}
