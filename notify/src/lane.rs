//! The delivery lane (`callscript notify`): claims due outbox rows, sends each to its channel,
//! and settles it: delivered, retried later with exponential backoff and jitter, or
//! dead-lettered once its attempts are spent.
//!
//! A batch's requests go out together (one slow receiver does not hold the others back), then
//! their outcomes are written. Each claim is leased for longer than a request may take; a lane
//! that dies mid-batch leaves its rows `sending`, and they are claimed again when the lease
//! passes. Idle, the lane waits for a new outbox row's NOTIFY (sent on its writer's commit, so
//! a message leaves within milliseconds of its cause) and polls every second besides, for
//! retries and held messages that fall due and for wake-ups lost while reconnecting.
//!
//! The lane also checks queue health ([`crate::alerts`]) on a timer, every minute by default:
//! any number of lanes may do so, as each condition's episode opens and closes once.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::Duration;

use callscript_core::credentials::{CredentialError, CredentialKey};
use callscript_core::db::{DatabaseUrl, DbError, Pool};
use callscript_core::queue::{self, QueueListener, OUTBOX_WAKEUP};
use chrono::Utc;
use futures_util::future::join_all;
use tokio::sync::watch;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::alerts;
use crate::channels::{self, Channel, ChannelError};
use crate::deliver::{self, Notification, Outcome};
use crate::outbox::{self, Claimed, Settled};
use crate::policy::{self, Candidate, Decision, Policy, PolicyError, RecentSends};
use crate::render;
use crate::{Event, HoldReason};

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub batch_size: i64,
    /// How long a claim is held; raised to `request_timeout` plus a margin if shorter, or a slow
    /// request would outlive its lease and be sent twice.
    pub lease_for: Duration,
    /// How often an idle lane looks for due rows without being woken.
    pub poll_interval: Duration,
    /// How often queue health is checked (the first time when the lane starts); `None`: never,
    /// left to other lanes.
    pub health_check_every: Option<Duration>,
    /// The delay after a first failed attempt; it doubles with each one up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The most one POST may take.
    pub request_timeout: Duration,
    /// Where the review UI is served (`CALLSCRIPT_PUBLIC_URL`), for links to call pages;
    /// `None`: messages name the call instead.
    pub public_url: Option<String>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            lease_for: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            health_check_every: Some(Duration::from_secs(60)),
            backoff_min: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10 * 60),
            request_timeout: Duration::from_secs(10),
            public_url: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyReport {
    pub delivered: usize,
    /// Attempts that failed and will be retried.
    pub retrying: usize,
    /// Dead-lettered: attempts spent, or a channel that is gone or disabled.
    pub failed: usize,
    /// Settled by a later claim after this one's lease ran out: nothing written.
    pub lost: usize,
    /// Held back by quiet hours or the rate limit, to go later.
    pub held: usize,
    /// Folded into a digest (sent as one message).
    pub folded: usize,
    /// Queue health conditions that started, and that ended, in this run's checks.
    pub queue_alerts: usize,
    pub queue_resolved: usize,
}

impl NotifyReport {
    fn add(&mut self, other: &NotifyReport) {
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.lost += other.lost;
        self.held += other.held;
        self.folded += other.folded;
        self.queue_alerts += other.queue_alerts;
        self.queue_resolved += other.queue_resolved;
    }

    fn count(&mut self, settled: Settled) {
        match settled {
            Settled::Delivered => self.delivered += 1,
            Settled::WillRetry { .. } => self.retrying += 1,
            Settled::Failed => self.failed += 1,
            Settled::LeaseLost => self.lost += 1,
            Settled::Held { .. } => self.held += 1,
            Settled::Folded => self.folded += 1,
        }
    }
}

pub struct NotifyLane {
    pool: Pool,
    key: CredentialKey,
    http: reqwest::Client,
    config: NotifyConfig,
    /// Where to LISTEN for new rows; `None`: poll only.
    listen_at: Option<DatabaseUrl>,
}

/// What became of one claimed row's attempt.
#[derive(Clone)]
enum Step {
    Delivered,
    Retry {
        error: String,
        /// The receiver's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Nothing this row could ever be sent with: dead-letter it now.
    Fail(String),
}

impl NotifyLane {
    pub fn new(pool: Pool, key: CredentialKey, mut config: NotifyConfig) -> Self {
        config.lease_for = config
            .lease_for
            .max(config.request_timeout + Duration::from_secs(5));
        Self {
            pool,
            key,
            http: callscript_ingest::http::client(config.request_timeout),
            config,
            listen_at: None,
        }
    }

    /// Wakes the idle lane on a new outbox row (LISTEN on a connection of its own) instead of
    /// only at the next poll.
    pub fn listening(mut self, database_url: DatabaseUrl) -> Self {
        self.listen_at = Some(database_url);
        self
    }

    /// Runs until `stop` turns true (after the batch in hand), or with `until_idle`, until no
    /// row is due now (retries due later are left for the next run). Queue health is checked
    /// first and then every `health_check_every`.
    pub async fn run(
        &self,
        until_idle: bool,
        mut stop: watch::Receiver<bool>,
    ) -> Result<NotifyReport, DbError> {
        let mut listener = match &self.listen_at {
            Some(url) => QueueListener::connect_or_poll(url).await,
            None => None,
        };
        let mut report = NotifyReport::default();
        let mut next_check = tokio::time::Instant::now();
        while !*stop.borrow() {
            if let Some(every) = self.config.health_check_every {
                if tokio::time::Instant::now() >= next_check {
                    self.check_health(&mut report).await;
                    next_check = tokio::time::Instant::now() + every;
                }
            }
            if let Some(batch) = self.run_batch().await? {
                report.add(&batch);
                continue;
            }
            if until_idle {
                break;
            }
            let health_due = async {
                match self.config.health_check_every {
                    Some(_) => tokio::time::sleep_until(next_check).await,
                    None => std::future::pending().await,
                }
            };
            let rows_due =
                queue::wait_for_payload(&mut listener, OUTBOX_WAKEUP, self.config.poll_interval);
            tokio::select! {
                () = rows_due => {}
                () = health_due => {}
                // A dropped sender disables this branch instead of waking the loop forever.
                Ok(()) = stop.changed() => {}
            }
        }
        Ok(report)
    }

    /// One queue health check of every organization; a failed check is logged and tried again
    /// at the next tick, as delivery must go on.
    async fn check_health(&self, report: &mut NotifyReport) {
        match alerts::check_all(&self.pool).await {
            Ok(checked) => {
                if checked.started + checked.resolved > 0 {
                    tracing::info!(
                        started = checked.started,
                        resolved = checked.resolved,
                        queued = checked.queued,
                        "queue health changed"
                    );
                }
                report.queue_alerts += checked.started;
                report.queue_resolved += checked.resolved;
            }
            Err(e) => tracing::warn!(error = %e, "queue health check failed"),
        }
    }

    /// Claims one batch and delivers it; `None` when nothing was due. Each channel's policy
    /// decides first what is sent now, held back or folded into a digest ([`crate::policy`]).
    pub async fn run_batch(&self) -> Result<Option<NotifyReport>, DbError> {
        let mut client = self.pool.get().await?;
        let claimed =
            outbox::claim(&**client, self.config.batch_size, self.config.lease_for).await?;
        if claimed.is_empty() {
            return Ok(None);
        }
        let mut channels: HashMap<(Uuid, &str), Result<Channel, ChannelError>> = HashMap::new();
        for row in &claimed {
            let key = (row.org_id, row.channel.as_str());
            if let Entry::Vacant(entry) = channels.entry(key) {
                let loaded = channels::load(&**client, &self.key, row.org_id, &row.channel).await;
                if let Err(ChannelError::Db(e) | ChannelError::Credential(CredentialError::Db(e))) =
                    loaded
                {
                    // Not the channel's fault: the rows come back when their lease passes.
                    return Err(e);
                }
                entry.insert(loaded);
            }
        }
        let prepared: Vec<Result<(&Channel, Event), Step>> = claimed
            .iter()
            .map(|row| sendable(row, &channels[&(row.org_id, row.channel.as_str())]))
            .collect();
        let decisions = self.plan(&**client, &claimed, &prepared).await?;

        let mut report = NotifyReport::default();
        let mut folds: HashMap<(Uuid, &str), (HoldReason, Vec<usize>)> = HashMap::new();
        for (index, decision) in decisions.iter().enumerate() {
            let row = &claimed[index];
            match *decision {
                Decision::Send => {}
                Decision::Hold { until, reason } => {
                    let settled = outbox::hold(&**client, row, until, reason).await?;
                    log(row, settled, None);
                    report.count(settled);
                }
                Decision::Fold { reason } => {
                    folds
                        .entry((row.org_id, row.channel.as_str()))
                        .or_insert_with(|| (reason, Vec::new()))
                        .1
                        .push(index);
                }
            }
        }
        for (reason, indices) in folds.into_values() {
            let rows: Vec<&Claimed> = indices.iter().map(|&index| &claimed[index]).collect();
            let events = indices
                .iter()
                .filter_map(|&index| prepared[index].as_ref().ok())
                .map(|(_, event)| event.clone())
                .collect();
            let digest = Event::Digest { reason, events };
            let transaction = client.transaction().await?;
            let settled = outbox::fold(&*transaction, &rows, &digest).await?;
            if settled == Settled::Folded {
                transaction.commit().await?;
            }
            for row in rows {
                log(row, settled, None);
                report.count(settled);
            }
        }

        let sending: Vec<usize> = (0..claimed.len())
            .filter(|&index| decisions[index] == Decision::Send)
            .collect();
        let steps = join_all(sending.iter().map(|&index| {
            let row = &claimed[index];
            let prepared = &prepared[index];
            async move {
                let (channel, event) = match prepared {
                    Ok(sendable) => sendable,
                    Err(step) => return step.clone(),
                };
                let notification = Notification {
                    org_id: row.org_id,
                    dedup_key: &row.dedup_key,
                    created_at: row.created_at,
                    event,
                    link: render::link(self.config.public_url.as_deref(), event),
                };
                match deliver::send(&self.http, &channel.target, &notification).await {
                    Outcome::Delivered => Step::Delivered,
                    Outcome::Retry { error, retry_after } => Step::Retry { error, retry_after },
                }
            }
        }))
        .await;

        for (&index, step) in sending.iter().zip(steps) {
            let row = &claimed[index];
            let (settled, error) = match step {
                Step::Delivered => (outbox::complete(&**client, row).await?, None),
                Step::Retry { error, retry_after } => {
                    // A receiver's own Retry-After wins over a shorter backoff, up to the cap.
                    let delay = self
                        .backoff(row.attempt)
                        .max(retry_after.unwrap_or_default().min(self.config.backoff_max));
                    (
                        outbox::retry(&**client, row, &error, delay).await?,
                        Some(error),
                    )
                }
                Step::Fail(error) => (outbox::fail(&**client, row, &error).await?, Some(error)),
            };
            log(row, settled, error.as_deref());
            report.count(settled);
        }
        Ok(Some(report))
    }

    /// Each row's fate under its channel's policy; rows that cannot be sent anyway are left to
    /// `Send`, which settles them by their step.
    async fn plan(
        &self,
        client: &impl GenericClient,
        claimed: &[Claimed],
        prepared: &[Result<(&Channel, Event), Step>],
    ) -> Result<Vec<Decision>, DbError> {
        let mut decisions = vec![Decision::Send; claimed.len()];
        let mut groups: HashMap<(Uuid, &str), Vec<usize>> = HashMap::new();
        for (index, row) in claimed.iter().enumerate() {
            if prepared[index].is_ok() {
                groups
                    .entry((row.org_id, row.channel.as_str()))
                    .or_default()
                    .push(index);
            }
        }
        let now = Utc::now();
        for ((org_id, channel), indices) in groups {
            let (policy, timezone) = match policy::load(client, org_id, channel).await {
                Ok(loaded) => loaded,
                Err(PolicyError::Db(e)) => return Err(e),
                // The channel went away or its org's zone is unreadable: send as routed.
                Err(e) => {
                    tracing::warn!(%org_id, channel, error = %e, "channel policy not applied");
                    continue;
                }
            };
            // Nothing to decide, unless held messages come back to be folded.
            let any_held = indices
                .iter()
                .any(|&index| claimed[index].held_reason.is_some());
            if policy == Policy::default() && !any_held {
                continue;
            }
            let recent = match policy.rate_limit {
                Some(limit) => policy::recent_sends(client, org_id, channel, limit.window).await?,
                None => RecentSends::default(),
            };
            let candidates: Vec<Candidate> = indices
                .iter()
                .map(|&index| Candidate {
                    severity: prepared[index]
                        .as_ref()
                        .ok()
                        .and_then(|(_, event)| event.severity()),
                    held: claimed[index].held_reason,
                })
                .collect();
            for (&index, decision) in
                indices
                    .iter()
                    .zip(policy.plan(timezone, now, &candidates, recent))
            {
                decisions[index] = decision;
            }
        }
        Ok(decisions)
    }

    fn backoff(&self, attempt: i32) -> Duration {
        backoff(attempt, self.config.backoff_min, self.config.backoff_max)
    }
}

/// The wait after failed attempt `attempt` (from 1): `min` doubled per earlier attempt,
/// jittered by ±20 % so rows that failed together (a receiver's outage) do not come back
/// together, kept within `min..=max`.
fn backoff(attempt: i32, min: Duration, max: Duration) -> Duration {
    let max = max.max(min);
    let doublings = attempt.saturating_sub(1).clamp(0, 30);
    min.saturating_mul(1 << doublings)
        .min(max)
        .mul_f64(rand::random_range(0.8..1.2))
        .clamp(min, max)
}

/// The channel and event of a claimed row, or what to do with a row that cannot be sent now.
fn sendable<'c>(
    row: &Claimed,
    channel: &'c Result<Channel, ChannelError>,
) -> Result<(&'c Channel, Event), Step> {
    let channel = match channel {
        Ok(channel) if channel.routing.enabled => channel,
        Ok(_) => return Err(Step::Fail(format!("channel {:?} is disabled", row.channel))),
        // Sealed with another key: fixed by running with the right one, so worth retrying.
        Err(e @ ChannelError::Credential(CredentialError::WrongKey { .. })) => {
            return Err(Step::Retry {
                error: e.to_string(),
                retry_after: None,
            })
        }
        Err(e) => return Err(Step::Fail(e.to_string())),
    };
    match serde_json::from_value::<Event>(row.payload.clone()) {
        Ok(event) => Ok((channel, event)),
        Err(e) => Err(Step::Fail(format!(
            "the {} payload does not read: {e}",
            row.event_kind
        ))),
    }
}

fn log(row: &Claimed, settled: Settled, error: Option<&str>) {
    let (org, channel, key, attempt) = (row.org_id, &row.channel, &row.dedup_key, row.attempt);
    let error = error.unwrap_or_default();
    match settled {
        Settled::Delivered => tracing::debug!(%org, channel, key, attempt, "delivered"),
        Settled::WillRetry { at } => {
            tracing::warn!(%org, channel, key, attempt, %at, error, "delivery failed; will retry")
        }
        Settled::Failed => {
            tracing::warn!(%org, channel, key, attempt, error, "delivery dead-lettered")
        }
        Settled::LeaseLost => {
            tracing::warn!(%org, channel, key, attempt, "lease lost while delivering")
        }
        Settled::Held { until } => tracing::debug!(%org, channel, key, %until, "held back"),
        Settled::Folded => tracing::debug!(%org, channel, key, "folded into a digest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(600));
        for _ in 0..100 {
            assert!((min..=Duration::from_millis(2400)).contains(&backoff(1, min, max)));
            let third = backoff(3, min, max);
            assert!((Duration::from_millis(6400)..=Duration::from_millis(9600)).contains(&third));
            assert!((Duration::from_secs(480)..=max).contains(&backoff(10, min, max)));
            assert!((Duration::from_secs(480)..=max).contains(&backoff(i32::MAX, min, max)));
        }
    }
}
