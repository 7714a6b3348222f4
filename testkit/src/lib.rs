//! Test support: every test gets its own freshly migrated database on the real Postgres server
//! named by `DATABASE_URL`, and, when it needs one, its own S3-protocol server, vendor fakes
//! ([`vendors`]) and SMTP sink ([`smtp`]) on loopback, or a TLS-only Postgres cluster of its own
//! ([`tls_postgres`]).
//! `scripts/test` provides `DATABASE_URL` (a local cluster it starts, or the one given).

pub mod certs;
pub mod s3;
pub mod smtp;
pub mod tls_postgres;
pub mod vendors;

use callscript_core::db::{connect_one, connect_pool, DatabaseUrl};
use callscript_core::migrate::migrate;
use callscript_core::model::Source;
use callscript_core::queue::NewCall;
use callscript_core::transcripts::{self, SegmentRecord, TranscriptRecord};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A database created for one test and dropped when it goes out of scope.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    pub pool: Pool,
    admin: DatabaseUrl,
    name: String,
}

impl TestDatabase {
    /// Creates and migrates a new database; the pool holds up to `pool_size` connections.
    pub async fn new(pool_size: usize) -> Self {
        let admin = DatabaseUrl::from_env().unwrap_or_else(|e| {
            panic!("{e}. The tests need a Postgres server: run them with scripts/test")
        });
        let name = format!("callscript_test_{}", Uuid::new_v4().simple());
        let (client, connection) = connect_one(&admin).await.unwrap_or_else(|e| panic!("{e}"));
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        drop(client);
        let _ = driver.await;

        let url = DatabaseUrl::new("DATABASE_URL", with_database(&admin.url, &name));
        let (mut client, connection) = connect_one(&url).await.unwrap_or_else(|e| panic!("{e}"));
        let driver = tokio::spawn(connection);
        migrate(&mut client).await.unwrap_or_else(|e| panic!("{e}"));
        drop(client);
        let _ = driver.await;

        let pool = connect_pool(&url, pool_size)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            url,
            pool,
            admin,
            name,
        }
    }

    pub async fn client(&self) -> deadpool_postgres::Object {
        self.pool.get().await.expect("database connection")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.pool.close();
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok((client, connection)) = connect_one(&admin).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// The same server URL with another database name.
fn with_database(url: &str, database: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let scheme_end = base.find("://").unwrap() + 3;
        let authority_end = base[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(base.len());
        let mut out = format!("{}/{database}", &base[..authority_end]);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    } else {
        // key=value form
        format!("{url} dbname={database}")
    }
}

/// Creates an organization and returns its id.
pub async fn create_org(client: &impl GenericClient, slug: &str) -> Uuid {
    let (org, _) = callscript_core::orgs::ensure(client, slug, slug, "UTC")
        .await
        .unwrap_or_else(|e| panic!("create organization {slug}: {e}"));
    org.id
}

/// A downloaded upload call (audio already in storage) that started at `started_at`.
pub fn downloaded_call(org_id: Uuid, external_id: &str, started_at: DateTime<Utc>) -> NewCall {
    let mut call = NewCall::new(org_id, Source::Upload, external_id, started_at);
    call.state = callscript_core::model::CallState::Downloaded;
    call.object_key = Some(format!("test/{external_id}.wav"));
    call
}

/// Stores `segments` as the call's transcript (its text the segments' texts joined, as the
/// worker writes it), replacing any earlier one.
pub async fn save_transcript(
    client: &impl GenericClient,
    call_id: Uuid,
    org_id: Uuid,
    segments: Vec<SegmentRecord>,
) {
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    transcripts::save(
        client,
        &TranscriptRecord {
            call_id,
            org_id,
            model: "whisper-tiny.en".into(),
            language: Some("en".into()),
            word_count: text.split_whitespace().count() as i32,
            text,
            avg_logprob: Some(-0.2),
            segments,
        },
    )
    .await
    .expect("save the transcript");
}

/// Inserts `count` downloaded calls for an org in one statement (fast setup for large queues):
/// external ids `{prefix}-0..`, call `i` started `i` minutes before `newest`.
pub async fn insert_downloaded_calls(
    client: &impl GenericClient,
    org_id: Uuid,
    prefix: &str,
    count: i64,
    newest: DateTime<Utc>,
) {
    client
        .execute(
            "INSERT INTO core.calls (org_id, source, external_id, state, object_key, call_started_at)
             SELECT $1, 'upload', $2 || '-' || i, 'downloaded', 'test/' || $2 || '-' || i,
                    $4::timestamptz - make_interval(mins => i::int)
             FROM generate_series(0, $3::bigint - 1) AS i",
            &[&org_id, &prefix, &count, &newest],
        )
        .await
        .expect("insert calls");
}

/// A 16-bit PCM WAV file of the given interleaved samples.
pub fn wav_bytes(sample_rate: u32, channels: u16, interleaved: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(interleaved.len() * 2).unwrap();
    let block_align = channels * 2;
    let mut bytes = Vec::with_capacity(44 + interleaved.len() * 2);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&sample_rate.to_le_bytes());
    bytes.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    bytes.extend_from_slice(&block_align.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for sample in interleaved {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://u@127.0.0.1:5432/test", "x"),
            "postgres://u@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1:5432", "x"),
            "postgres://127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("host=h dbname=db", "x"),
            "host=h dbname=db dbname=x"
        );
    }
}
