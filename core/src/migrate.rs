//! The numbered migrations in `sql/`, compiled into the binary.
//!
//! `migrate` takes a session advisory lock (so concurrent starts take turns), checks every
//! applied migration against the file it came from (a changed file is refused: the database
//! would no longer match what the code expects), then applies the rest in order, each in its own
//! transaction together with its row in `core.schema_migrations`.

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, GenericClient};

use crate::db::{describe_pg_error, DbError};

/// One file of `sql/`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file name, `NNNN_what.sql`; its number is the version.
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($($file:literal),+ $(,)?) => {
        &[$(Migration {
            name: $file,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/", $file)),
        }),+]
    };
}

/// Every migration, in order. A test checks this list against the files in `sql/`.
pub const MIGRATIONS: &[Migration] = migrations![
    "0001_foundation.sql",
    "0002_organizations.sql",
    "0003_calls.sql",
    "0004_queue_maintenance.sql",
    "0005_transcripts.sql",
    "0006_review_and_operations.sql",
    "0007_crm.sql",
    "0008_ingest.sql",
    "0009_judge_crm.sql",
    "0010_notifications.sql",
    "0011_judge_brain.sql",
    "0012_notification_email_sms.sql",
    "0013_notification_policy_and_queue_alerts.sql",
    "0014_pii_findings.sql",
    "0015_recording_links.sql",
    "0016_role_confidence.sql",
];

impl Migration {
    pub fn version(&self) -> i32 {
        self.name
            .split('_')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("migration file names start with their number")
    }

    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "migration {name} was applied with checksum {applied} but the file now has {file}; \
         refusing to continue: restore the file or write a new migration"
    )]
    ChecksumMismatch {
        name: String,
        applied: String,
        file: String,
    },
    #[error(
        "the database has migration {version} ({name}) that this build does not know: \
         it was migrated by a newer callscript"
    )]
    UnknownApplied { version: i32, name: String },
    #[error(
        "the database schema is behind this build ({} pending: {}); run `callscript migrate` first",
        .pending.len(),
        .pending.join(", ")
    )]
    Behind { pending: Vec<&'static str> },
    #[error("migration {name} failed: {reason}")]
    Failed { name: &'static str, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Db(e.into())
    }
}

/// What a run of [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    pub applied: Vec<&'static str>,
    pub already_applied: usize,
    /// Whether pg_cron now runs the queue maintenance, or why not.
    pub maintenance_schedule: String,
}

const LOCK_KEY: i64 = 0x6361_6c6c_7363_7270; // "callscrp"

/// Applies the pending migrations. Needs a dedicated connection (it holds a session lock).
pub async fn migrate(client: &mut Client) -> Result<MigrateReport, MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = migrate_locked(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<MigrateReport, MigrateError> {
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS core;
             CREATE TABLE IF NOT EXISTS core.schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now()
             );",
        )
        .await?;

    let applied = verified_applied(&*client).await?;

    let mut report = MigrateReport {
        applied: Vec::new(),
        already_applied: applied.len(),
        maintenance_schedule: String::new(),
    };
    for migration in MIGRATIONS {
        let version = migration.version();
        if applied.contains(&version) {
            continue;
        }
        let failed = |e: tokio_postgres::Error| MigrateError::Failed {
            name: migration.name,
            reason: describe_pg_error(&e),
        };
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await.map_err(failed)?;
        tx.execute(
            "INSERT INTO core.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&version, &migration.name, &migration.checksum()],
        )
        .await?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(migration = migration.name, "applied");
        report.applied.push(migration.name);
    }

    report.maintenance_schedule = match client
        .query_one("SELECT core.schedule_maintenance()", &[])
        .await
    {
        Ok(row) => row.get(0),
        Err(e) => format!("pg_cron could not be used: {}", describe_pg_error(&e)),
    };
    Ok(report)
}

/// The versions applied to the database, each checked against its file: a changed file or a
/// migration this build does not know is an error.
async fn verified_applied(client: &impl GenericClient) -> Result<Vec<i32>, MigrateError> {
    let applied = client
        .query(
            "SELECT version, name, checksum FROM core.schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut versions = Vec::with_capacity(applied.len());
    for row in &applied {
        let version: i32 = row.get(0);
        let name: String = row.get(1);
        let checksum: String = row.get(2);
        let Some(known) = MIGRATIONS.iter().find(|m| m.version() == version) else {
            return Err(MigrateError::UnknownApplied { version, name });
        };
        if known.checksum() != checksum {
            return Err(MigrateError::ChecksumMismatch {
                name: known.name.to_owned(),
                applied: checksum,
                file: known.checksum(),
            });
        }
        versions.push(version);
    }
    Ok(versions)
}

/// The migrations not yet applied, in order; empty when the schema is current. Changes nothing.
/// Processes that need the schema (workers, the judge) check this at start instead of migrating
/// on their own: a deploy step migrates once.
pub async fn pending(client: &impl GenericClient) -> Result<Vec<&'static str>, MigrateError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('core.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    let applied = if exists {
        verified_applied(client).await?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version()))
        .map(|m| m.name)
        .collect())
}

/// Fails with [`MigrateError::Behind`] unless every migration is applied.
pub async fn ensure_current(client: &impl GenericClient) -> Result<(), MigrateError> {
    let pending = pending(client).await?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::Behind { pending })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_registered_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let registered: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, registered);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version(), i as i32 + 1, "{} is out of sequence", m.name);
        }
    }
}
