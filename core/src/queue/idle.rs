//! When an until-idle run (a cron job, a serverless request) is done: nothing of its lane is
//! ready, and nothing will be within its wait.
//!
//! Two kinds of call become claimable on their own, so a run that stopped at the first empty
//! claim would leave finishable work behind: calls waiting out a retry backoff, and calls whose
//! lease ran out because its holder died. [`IdleWatch`] waits for both while they are due within
//! the wait counted from the moment the lane went idle, and runs the rescuer itself when a lease
//! has expired (pg_cron or a worker may run it only once a minute, or not at all). A lease renewed
//! since the lane went idle belongs to a live worker that will finish the call: it is not waited
//! for. [`left_behind`] says, at exit, what the run left and why.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::QueueError;
use crate::maintenance;
use crate::model::{CallState, Lane};

/// How long an until-idle run waits by default for calls that are not claimable yet: a stopped
/// worker's 60 s lease, then the first retry backoffs (10 s, 20 s, 40 s, 80 s).
pub const DEFAULT_IDLE_WAIT: Duration = Duration::from_secs(300);

/// The shortest pause before claiming again: a call due now that the claim did not get is
/// locked by another claimer's transaction, which ends within milliseconds.
const MIN_RECHECK: Duration = Duration::from_millis(100);

/// When a lane's loop ends, besides a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// It waits for new calls until stopped.
    Stopped,
    /// It exits once idle: nothing is ready and nothing falls due (a backoff ending, a dead
    /// holder's lease expiring) within `wait` of the lane going idle.
    Idle { wait: Duration },
}

/// One until-idle lane's view of its idle stretches.
#[derive(Debug)]
pub struct IdleWatch {
    lane: Lane,
    org_id: Option<Uuid>,
    wait: Duration,
    /// When the lane found nothing to claim after its last work (the database's clock, which
    /// also stamps heartbeats and backoffs).
    idle_since: Option<DateTime<Utc>>,
}

impl IdleWatch {
    /// Watches `lane` (of one organization, or of all with `None`), waiting up to `wait`.
    pub fn new(lane: Lane, org_id: Option<Uuid>, wait: Duration) -> Self {
        Self {
            lane,
            org_id,
            wait,
            idle_since: None,
        }
    }

    /// The lane claimed work: the next idle stretch may wait the whole `wait` again.
    pub fn busy(&mut self) {
        self.idle_since = None;
    }

    /// After a claim found nothing: how long until a call of the lane may be claimable (claim
    /// again then, or on a notification), or `None` when none will be within the wait: the run
    /// is over. Expired leases are rescued first.
    pub async fn next_claim_in(
        &mut self,
        client: &impl GenericClient,
    ) -> Result<Option<Duration>, QueueError> {
        let mut due = self.next_due(client).await?;
        if due.expiry.is_some_and(|expiry| expiry <= due.now) {
            maintenance::run_once(client).await?;
            due = self.next_due(client).await?;
        }
        let idle_since = *self.idle_since.get_or_insert(due.now);
        let deadline = idle_since + self.wait;
        Ok(due
            .retry
            .into_iter()
            .chain(due.expiry)
            .min()
            .filter(|at| *at <= deadline)
            .map(|at| (at - due.now).to_std().unwrap_or_default().max(MIN_RECHECK)))
    }

    async fn next_due(&self, client: &impl GenericClient) -> Result<Due, QueueError> {
        // States are literals, as in the claim, so each part can use its state's index. A
        // lease counts while its holder has not renewed it since the lane went idle (the
        // first time, `$2` is null and every lease counts).
        let sql = format!(
            "SELECT now(),
               (SELECT min(run_after) FROM core.calls
                WHERE state = '{ready}' AND ($1::uuid IS NULL OR org_id = $1)),
               (SELECT min(lease_expires_at) FROM core.calls
                WHERE state = '{leased}' AND ($1::uuid IS NULL OR org_id = $1)
                  AND (heartbeat_at < $2::timestamptz OR $2 IS NULL
                       OR lease_expires_at <= now()))",
            ready = self.lane.ready_state().as_str(),
            leased = self.lane.leased_state().as_str(),
        );
        let row = client
            .query_one(&sql, &[&self.org_id, &self.idle_since])
            .await?;
        Ok(Due {
            now: row.get(0),
            retry: row.get(1),
            expiry: row.get(2),
        })
    }
}

/// When the lane's next calls fall due.
struct Due {
    now: DateTime<Utc>,
    /// The earliest `run_after` of a ready call (past when one is ready now).
    retry: Option<DateTime<Utc>>,
    /// The earliest expiry of a lease not renewed since the lane went idle.
    expiry: Option<DateTime<Utc>>,
}

/// What a lane's run left in its lane, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeftBehind {
    /// Ready now: the run was stopped before it claimed them.
    pub ready: i64,
    /// Waiting out a retry backoff past the wait…
    pub in_backoff: i64,
    /// …the first of them until then.
    pub next_retry: Option<DateTime<Utc>>,
    /// Leased by other workers, which finish them, or whose leases the rescuer takes back…
    pub leased: i64,
    /// …the last of those leases running until then unless renewed.
    pub leased_until: Option<DateTime<Utc>>,
    /// Failed for good in this lane (`callscript queue requeue` brings them back).
    pub dead_lettered: i64,
}

/// What is left in `lane` (of one organization, or of all with `None`).
pub async fn left_behind(
    client: &impl GenericClient,
    lane: Lane,
    org_id: Option<Uuid>,
) -> Result<LeftBehind, QueueError> {
    let sql = format!(
        "SELECT count(*) FILTER (WHERE state = '{ready}' AND run_after <= now()),
                count(*) FILTER (WHERE state = '{ready}' AND run_after > now()),
                min(run_after) FILTER (WHERE state = '{ready}' AND run_after > now()),
                count(*) FILTER (WHERE state = '{leased}'),
                max(lease_expires_at) FILTER (WHERE state = '{leased}'),
                count(*) FILTER (WHERE state = '{failed}' AND failed_state = '{ready}')
         FROM core.calls
         WHERE state IN ('{ready}', '{leased}', '{failed}') AND ($1::uuid IS NULL OR org_id = $1)",
        ready = lane.ready_state().as_str(),
        leased = lane.leased_state().as_str(),
        failed = CallState::Failed.as_str(),
    );
    let row = client.query_one(&sql, &[&org_id]).await?;
    Ok(LeftBehind {
        ready: row.get(0),
        in_backoff: row.get(1),
        next_retry: row.get(2),
        leased: row.get(3),
        leased_until: row.get(4),
        dead_lettered: row.get(5),
    })
}

/// One clause per reason, e.g. "2 calls in backoff (the first until 2025-01-01T10:00:00Z); 1
/// dead-lettered (`callscript queue requeue` brings it back)", or "nothing".
impl fmt::Display for LeftBehind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |at: Option<DateTime<Utc>>| {
            at.map_or_else(String::new, |at| {
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            })
        };
        let mut clauses = Vec::new();
        if self.ready > 0 {
            clauses.push(format!(
                "{} ready (stopped before they were claimed)",
                calls(self.ready)
            ));
        }
        if self.in_backoff > 0 {
            clauses.push(format!(
                "{} in backoff past the wait (the first until {})",
                calls(self.in_backoff),
                time(self.next_retry)
            ));
        }
        if self.leased > 0 {
            clauses.push(format!(
                "{} leased by other workers (until {} at the latest unless renewed)",
                calls(self.leased),
                time(self.leased_until)
            ));
        }
        if self.dead_lettered > 0 {
            let them = if self.dead_lettered == 1 {
                "it"
            } else {
                "them"
            };
            clauses.push(format!(
                "{} dead-lettered (`callscript queue requeue` brings {them} back)",
                calls(self.dead_lettered)
            ));
        }
        if clauses.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&clauses.join("; "))
        }
    }
}

fn calls(n: i64) -> String {
    if n == 1 {
        "1 call".to_owned()
    } else {
        format!("{n} calls")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::LeftBehind;

    #[test]
    fn what_was_left_is_said_per_reason() {
        assert_eq!(LeftBehind::default().to_string(), "nothing");
        let at = |s| Some(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, s).unwrap());
        let left = LeftBehind {
            ready: 0,
            in_backoff: 2,
            next_retry: at(5),
            leased: 1,
            leased_until: at(6),
            dead_lettered: 1,
        };
        assert_eq!(
            left.to_string(),
            "2 calls in backoff past the wait (the first until 2025-01-02T03:04:05Z); 1 call \
             leased by other workers (until 2025-01-02T03:04:06Z at the latest unless renewed); \
             1 call dead-lettered (`callscript queue requeue` brings it back)"
        );
    }
}
