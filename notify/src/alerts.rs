//! Queue health alerts: each organization's queue checked against its thresholds
//! (`core.queue_alert_settings`, defaults without a row), one alert when a condition starts and
//! one "resolved" when it ends, never one per check.
//!
//! An episode of a condition is a `core.queue_alerts` row, open while the condition holds; a
//! partial unique index allows one open row per org and condition, so two checkers running at
//! once (several `notify` lanes) open it once. Its start and its end are outbox events written
//! in the same transaction as the row that opens or closes the episode.

use callscript_core::db::{DbError, Pool};
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{enqueue_event, Event, QueueCondition};

/// An organization's thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSettings {
    pub enabled: bool,
    /// The oldest call waiting for transcription waited longer than this.
    pub backlog_minutes: i32,
    /// More than this share (0-100) of the calls that ended in the window failed…
    pub failure_rate_percent: f64,
    pub failure_window_minutes: i32,
    /// …in a window with at least this many calls.
    pub failure_min_calls: i32,
    /// Calls waited this long and no transcription worker reported in for as long.
    pub worker_silence_minutes: i32,
    /// At least this many calls were dead-lettered within the window.
    pub dead_letter_threshold: i32,
    pub dead_letter_window_minutes: i32,
}

impl Default for AlertSettings {
    /// The migration's column defaults.
    fn default() -> Self {
        Self {
            enabled: true,
            backlog_minutes: 15,
            failure_rate_percent: 20.0,
            failure_window_minutes: 15,
            failure_min_calls: 5,
            worker_silence_minutes: 5,
            dead_letter_threshold: 10,
            dead_letter_window_minutes: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertSettingsError {
    #[error("{0} must be positive")]
    NotPositive(&'static str),
    #[error("the failure rate must be above 0 and at most 100 percent, got {0}")]
    BadRate(f64),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for AlertSettingsError {
    fn from(e: tokio_postgres::Error) -> Self {
        AlertSettingsError::Db(e.into())
    }
}

impl AlertSettings {
    /// Thresholds that cannot work, named (the table's checks, with readable errors).
    pub fn validate(&self) -> Result<(), AlertSettingsError> {
        for (name, value) in [
            ("the backlog minutes", self.backlog_minutes),
            ("the failure window", self.failure_window_minutes),
            ("the failure minimum of calls", self.failure_min_calls),
            ("the worker silence minutes", self.worker_silence_minutes),
            ("the dead-letter threshold", self.dead_letter_threshold),
            ("the dead-letter window", self.dead_letter_window_minutes),
        ] {
            if value <= 0 {
                return Err(AlertSettingsError::NotPositive(name));
            }
        }
        if !(self.failure_rate_percent > 0.0 && self.failure_rate_percent <= 100.0) {
            return Err(AlertSettingsError::BadRate(self.failure_rate_percent));
        }
        Ok(())
    }
}

/// The organization's thresholds (the defaults when it set none).
pub async fn settings(client: &impl GenericClient, org_id: Uuid) -> Result<AlertSettings, DbError> {
    let row = client
        .query_opt(
            "SELECT enabled, backlog_minutes, failure_rate_percent::float8, failure_window_minutes,
                    failure_min_calls, worker_silence_minutes, dead_letter_threshold,
                    dead_letter_window_minutes
             FROM core.queue_alert_settings WHERE org_id = $1",
            &[&org_id],
        )
        .await?;
    Ok(
        row.map_or_else(AlertSettings::default, |row| AlertSettings {
            enabled: row.get(0),
            backlog_minutes: row.get(1),
            failure_rate_percent: row.get(2),
            failure_window_minutes: row.get(3),
            failure_min_calls: row.get(4),
            worker_silence_minutes: row.get(5),
            dead_letter_threshold: row.get(6),
            dead_letter_window_minutes: row.get(7),
        }),
    )
}

/// Stores the organization's thresholds.
pub async fn save_settings(
    client: &impl GenericClient,
    org_id: Uuid,
    settings: &AlertSettings,
) -> Result<(), AlertSettingsError> {
    settings.validate()?;
    client
        .execute(
            "INSERT INTO core.queue_alert_settings
               (org_id, enabled, backlog_minutes, failure_rate_percent, failure_window_minutes,
                failure_min_calls, worker_silence_minutes, dead_letter_threshold,
                dead_letter_window_minutes)
             VALUES ($1, $2, $3, $4::float8::numeric, $5, $6, $7, $8, $9)
             ON CONFLICT (org_id) DO UPDATE SET
               enabled = excluded.enabled, backlog_minutes = excluded.backlog_minutes,
               failure_rate_percent = excluded.failure_rate_percent,
               failure_window_minutes = excluded.failure_window_minutes,
               failure_min_calls = excluded.failure_min_calls,
               worker_silence_minutes = excluded.worker_silence_minutes,
               dead_letter_threshold = excluded.dead_letter_threshold,
               dead_letter_window_minutes = excluded.dead_letter_window_minutes",
            &[
                &org_id,
                &settings.enabled,
                &settings.backlog_minutes,
                &settings.failure_rate_percent,
                &settings.failure_window_minutes,
                &settings.failure_min_calls,
                &settings.worker_silence_minutes,
                &settings.dead_letter_threshold,
                &settings.dead_letter_window_minutes,
            ],
        )
        .await?;
    Ok(())
}

/// What the queue looks like now, for one organization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueReading {
    /// Minutes the oldest call due for transcription has waited; `None`: none waits.
    pub oldest_wait_minutes: Option<f64>,
    /// Calls waiting for or in transcription.
    pub waiting: i64,
    /// Of the calls that ended a lane attempt in the failure window: failed (dead-lettered or
    /// backing off) and all.
    pub failed_in_window: i64,
    pub ended_in_window: i64,
    /// Minutes since a transcription worker serving the org last reported in; `None`: never.
    pub worker_silent_minutes: Option<f64>,
    pub dead_lettered_in_window: i64,
}

/// Reads the organization's queue (one statement).
pub async fn read_queue(
    client: &impl GenericClient,
    org_id: Uuid,
    settings: &AlertSettings,
) -> Result<QueueReading, DbError> {
    let row = client
        .query_one(
            "SELECT
               (SELECT extract(epoch FROM now() - min(queued_at))::float8 / 60
                FROM core.calls
                WHERE org_id = $1 AND state = 'downloaded' AND run_after <= now()),
               (SELECT count(*) FROM core.calls
                WHERE org_id = $1 AND state IN ('downloaded', 'transcribing')),
               (SELECT count(*) FILTER (WHERE state = 'failed' OR last_error IS NOT NULL)
                FROM core.calls
                WHERE org_id = $1 AND updated_at >= now() - make_interval(mins => $2)
                  AND (state IN ('failed', 'transcribed', 'judging', 'judged')
                       OR (last_error IS NOT NULL AND run_after > now()))),
               (SELECT count(*)
                FROM core.calls
                WHERE org_id = $1 AND updated_at >= now() - make_interval(mins => $2)
                  AND (state IN ('failed', 'transcribed', 'judging', 'judged')
                       OR (last_error IS NOT NULL AND run_after > now()))),
               (SELECT extract(epoch FROM now() - max(last_seen_at))::float8 / 60
                FROM core.workers
                WHERE lane = 'transcribe' AND (org_id IS NULL OR org_id = $1)),
               (SELECT count(*) FROM core.calls
                WHERE org_id = $1 AND state = 'failed'
                  AND updated_at >= now() - make_interval(mins => $3))",
            &[
                &org_id,
                &settings.failure_window_minutes,
                &settings.dead_letter_window_minutes,
            ],
        )
        .await?;
    Ok(QueueReading {
        oldest_wait_minutes: row.get(0),
        waiting: row.get(1),
        failed_in_window: row.get(2),
        ended_in_window: row.get(3),
        worker_silent_minutes: row.get(4),
        dead_lettered_in_window: row.get(5),
    })
}

/// One condition as read now: whether it holds, and the reading in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub condition: QueueCondition,
    pub holds: bool,
    pub detail: String,
}

/// Each condition judged from a reading (pure, so the thresholds are tested without a queue).
pub fn judge(reading: &QueueReading, settings: &AlertSettings) -> Vec<Verdict> {
    let oldest = reading.oldest_wait_minutes.unwrap_or(0.0);
    let backlog = Verdict {
        condition: QueueCondition::Backlog,
        holds: oldest > f64::from(settings.backlog_minutes),
        detail: match reading.oldest_wait_minutes {
            Some(minutes) => format!(
                "the oldest call waiting for transcription has waited {} min (alert from {} min)",
                minutes.floor(),
                settings.backlog_minutes
            ),
            None => "no call waits for transcription".into(),
        },
    };
    let (failed, ended) = (reading.failed_in_window, reading.ended_in_window);
    let rate = if ended > 0 {
        100.0 * failed as f64 / ended as f64
    } else {
        0.0
    };
    let failure_rate = Verdict {
        condition: QueueCondition::FailureRate,
        holds: ended >= i64::from(settings.failure_min_calls)
            && rate > settings.failure_rate_percent,
        detail: format!(
            "{failed} of {ended} calls ({rate:.0}%) failed in the last {} min (alert above {}% of \
             at least {} calls)",
            settings.failure_window_minutes,
            settings.failure_rate_percent,
            settings.failure_min_calls
        ),
    };
    let silence = f64::from(settings.worker_silence_minutes);
    let silent = reading.worker_silent_minutes.is_none_or(|m| m > silence);
    let no_worker = Verdict {
        condition: QueueCondition::NoWorker,
        holds: reading.waiting > 0 && oldest > silence && silent,
        detail: format!(
            "{} calls wait; {} (alert from {} min)",
            reading.waiting,
            reading.worker_silent_minutes.map_or_else(
                || "no transcription worker has reported in".into(),
                |m| format!(
                    "a transcription worker last reported in {} min ago",
                    m.floor()
                )
            ),
            settings.worker_silence_minutes
        ),
    };
    let dead_letters = Verdict {
        condition: QueueCondition::DeadLetters,
        holds: reading.dead_lettered_in_window >= i64::from(settings.dead_letter_threshold),
        detail: format!(
            "{} calls reached the dead letter in the last {} min (alert from {})",
            reading.dead_lettered_in_window,
            settings.dead_letter_window_minutes,
            settings.dead_letter_threshold
        ),
    };
    vec![backlog, failure_rate, no_worker, dead_letters]
}

/// What one check changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    pub started: usize,
    pub resolved: usize,
    /// Outbox rows written for them (one per routed channel).
    pub queued: usize,
}

impl CheckReport {
    fn add(&mut self, other: &CheckReport) {
        self.started += other.started;
        self.resolved += other.resolved;
        self.queued += other.queued;
    }
}

/// Checks one organization's queue: opens the episode of each condition that started and closes
/// each that ended, queueing their alerts, in one transaction (`client` should be one).
pub async fn check_org(client: &impl GenericClient, org_id: Uuid) -> Result<CheckReport, DbError> {
    let settings = settings(client, org_id).await?;
    let mut report = CheckReport::default();
    if !settings.enabled {
        return Ok(report);
    }
    let reading = read_queue(client, org_id, &settings).await?;
    for verdict in judge(&reading, &settings) {
        let condition = verdict.condition.as_str();
        let event = if verdict.holds {
            client
                .query_opt(
                    "INSERT INTO core.queue_alerts (org_id, condition, detail)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (org_id, condition) WHERE resolved_at IS NULL DO NOTHING
                     RETURNING id, started_at",
                    &[&org_id, &condition, &verdict.detail],
                )
                .await?
                .map(|row| {
                    report.started += 1;
                    queue_event(&verdict, row.get(0), row.get(1), None)
                })
        } else {
            client
                .query_opt(
                    "UPDATE core.queue_alerts SET resolved_at = now(), resolved_detail = $3
                     WHERE org_id = $1 AND condition = $2 AND resolved_at IS NULL
                     RETURNING id, started_at, resolved_at",
                    &[&org_id, &condition, &verdict.detail],
                )
                .await?
                .map(|row| {
                    report.resolved += 1;
                    queue_event(&verdict, row.get(0), row.get(1), Some(row.get(2)))
                })
        };
        if let Some(event) = event {
            report.queued += enqueue_event(client, org_id, &event).await?;
        }
    }
    Ok(report)
}

fn queue_event(
    verdict: &Verdict,
    alert_id: Uuid,
    started_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
) -> Event {
    Event::Queue {
        alert_id,
        condition: verdict.condition,
        started_at,
        resolved_at,
        detail: verdict.detail.clone(),
    }
}

/// One episode of a queue condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub id: Uuid,
    pub condition: QueueCondition,
    pub started_at: DateTime<Utc>,
    pub detail: String,
    /// When it ended, and what was measured then; `None` while it holds.
    pub resolved: Option<(DateTime<Utc>, String)>,
}

/// The organization's latest episodes, open ones first, then the newest.
pub async fn episodes(
    client: &impl GenericClient,
    org_id: Uuid,
    limit: i64,
) -> Result<Vec<Episode>, DbError> {
    client
        .query(
            "SELECT id, condition, started_at, detail, resolved_at, resolved_detail
             FROM core.queue_alerts WHERE org_id = $1
             ORDER BY resolved_at IS NOT NULL, started_at DESC LIMIT $2",
            &[&org_id, &limit],
        )
        .await?
        .iter()
        .map(|row| {
            let condition: String = row.get(1);
            let resolved_at: Option<DateTime<Utc>> = row.get(4);
            Ok(Episode {
                id: row.get(0),
                condition: condition.parse()?,
                started_at: row.get(2),
                detail: row.get(3),
                resolved: resolved_at.map(|at| (at, row.get(5))),
            })
        })
        .collect()
}

/// Checks every organization, each in its own transaction (one org's failure is logged and the
/// others are still checked).
pub async fn check_all(pool: &Pool) -> Result<CheckReport, DbError> {
    let mut client = pool.get().await?;
    let orgs: Vec<Uuid> = client
        .query("SELECT id FROM core.organizations ORDER BY id", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut report = CheckReport::default();
    for org_id in orgs {
        let checked = async {
            let transaction = client.transaction().await?;
            let checked = check_org(&*transaction, org_id).await?;
            transaction.commit().await?;
            Ok::<_, DbError>(checked)
        };
        match checked.await {
            Ok(checked) => report.add(&checked),
            Err(e) => tracing::warn!(org = %org_id, error = %e, "queue health check failed"),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> QueueReading {
        QueueReading {
            oldest_wait_minutes: None,
            waiting: 0,
            failed_in_window: 0,
            ended_in_window: 0,
            worker_silent_minutes: Some(0.2),
            dead_lettered_in_window: 0,
        }
    }

    fn holding(reading: &QueueReading) -> Vec<QueueCondition> {
        judge(reading, &AlertSettings::default())
            .into_iter()
            .filter(|v| v.holds)
            .map(|v| v.condition)
            .collect()
    }

    #[test]
    fn each_condition_holds_past_its_threshold_only() {
        assert!(holding(&reading()).is_empty());
        let waited = |minutes| QueueReading {
            oldest_wait_minutes: Some(minutes),
            waiting: 3,
            ..reading()
        };
        assert!(holding(&waited(15.0)).is_empty());
        assert_eq!(holding(&waited(15.5)), [QueueCondition::Backlog]);

        // 2 of 4 is 50 %, but four calls are too few to call it a rate; 2 of 5 is 40 %.
        let failing = |failed, ended| QueueReading {
            failed_in_window: failed,
            ended_in_window: ended,
            ..reading()
        };
        assert!(holding(&failing(2, 4)).is_empty());
        assert!(holding(&failing(1, 5)).is_empty());
        assert_eq!(holding(&failing(2, 5)), [QueueCondition::FailureRate]);

        // Calls that waited 6 min with no worker for 6 min; a worker that reported in a minute
        // ago is alive; nothing waiting is nothing to alert.
        let silent = |worker, waiting| QueueReading {
            oldest_wait_minutes: Some(6.0),
            waiting,
            worker_silent_minutes: worker,
            ..reading()
        };
        assert_eq!(holding(&silent(None, 2)), [QueueCondition::NoWorker]);
        assert_eq!(holding(&silent(Some(6.0), 2)), [QueueCondition::NoWorker]);
        assert!(holding(&silent(Some(1.0), 2)).is_empty());
        assert!(holding(&silent(None, 0)).is_empty());

        let dead = |count| QueueReading {
            dead_lettered_in_window: count,
            ..reading()
        };
        assert!(holding(&dead(9)).is_empty());
        assert_eq!(holding(&dead(10)), [QueueCondition::DeadLetters]);
    }

    #[test]
    fn details_say_what_was_measured() {
        let verdicts = judge(
            &QueueReading {
                oldest_wait_minutes: Some(23.4),
                waiting: 12,
                failed_in_window: 7,
                ended_in_window: 20,
                worker_silent_minutes: None,
                dead_lettered_in_window: 14,
            },
            &AlertSettings::default(),
        );
        let details: Vec<&str> = verdicts.iter().map(|v| v.detail.as_str()).collect();
        assert_eq!(
            details,
            [
                "the oldest call waiting for transcription has waited 23 min (alert from 15 min)",
                "7 of 20 calls (35%) failed in the last 15 min (alert above 20% of at least 5 \
                 calls)",
                "12 calls wait; no transcription worker has reported in (alert from 5 min)",
                "14 calls reached the dead letter in the last 60 min (alert from 10)",
            ]
        );
        assert!(AlertSettings::default().validate().is_ok());
        let bad = AlertSettings {
            failure_rate_percent: 0.0,
            ..AlertSettings::default()
        };
        assert!(bad.validate().is_err());
    }
}
