//! The queue's maintenance pass, run by the service when pg_cron does not run it.
//!
//! The pass itself is SQL (`core.run_maintenance()` in `sql/0004_queue_maintenance.sql`): the
//! rescuer returns expired leases to their ready state with backoff, or dead-letters them when
//! their attempts are spent, in batches; then aging lifts long-waiting calls. pg_cron runs it
//! every minute where the extension is available (`callscript migrate` schedules it); this loop
//! runs the same function on a timer otherwise, and stands down while pg_cron has it.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use crate::db::DbError;

/// How often the service runs maintenance. Leases are typically 60 s with a 10 s heartbeat, so
/// an expired lease waits at most one interval past its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    pub interval: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
        }
    }
}

impl MaintenanceConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) || self.interval > Duration::from_secs(3600) {
            return Err(format!(
                "maintenance interval must be between 1 s and 1 h, got {:?}",
                self.interval
            ));
        }
        Ok(())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Expired leases returned to the queue.
    pub rescued: i32,
    /// Expired leases whose attempts were spent: now `failed`.
    pub dead_lettered: i32,
    /// Waiting calls lifted one priority step.
    pub aged: i32,
}

pub async fn run_once(client: &impl GenericClient) -> Result<MaintenanceReport, DbError> {
    let row = client
        .query_one(
            "SELECT rescued, dead_lettered, aged FROM core.run_maintenance()",
            &[],
        )
        .await?;
    Ok(MaintenanceReport {
        rescued: row.get(0),
        dead_lettered: row.get(1),
        aged: row.get(2),
    })
}

/// Whether pg_cron runs the maintenance in this database.
pub async fn scheduled_by_pg_cron(client: &impl GenericClient) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT to_regclass('cron.job') IS NOT NULL", &[])
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM cron.job
                            WHERE jobname = 'callscript-maintenance' AND active
                              AND database = current_database())",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Runs maintenance every `config.interval` until `shutdown` completes. Errors are logged and
/// retried at the next tick: a database blip must not stop a worker.
pub async fn run_until(pool: Pool, config: MaintenanceConfig, shutdown: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let pass = async {
            let client = pool.get().await.map_err(DbError::from)?;
            if scheduled_by_pg_cron(&**client).await? {
                return Ok(None);
            }
            run_once(&**client).await.map(Some)
        };
        match pass.await {
            Ok(Some(report)) if report != MaintenanceReport::default() => {
                tracing::info!(?report, "queue maintenance")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "queue maintenance failed"),
        }
    }
}
