//! Migrations against the real Postgres: up from empty, idempotent, and refusing drift.

use callscript_core::db::connect_one;
use callscript_core::migrate::{ensure_current, migrate, pending, MigrateError, MIGRATIONS};
use callscript_testkit::TestDatabase;

/// Every table DESIGN.md names, in its schema.
const DESIGN_TABLES: &[&str] = &[
    "core.organizations",
    "core.organization_members",
    "core.organization_credentials",
    "core.campaigns",
    "core.calls",
    "core.transcripts",
    "core.transcript_segments",
    "core.qa_flags",
    "core.usage",
    "core.ingest_cursors",
    "core.notifications",
    "crm.leads",
    "crm.lead_communications",
    "crm.agent_scripts",
    "crm.scheduled_actions",
    "crm.conversion_events",
];

#[tokio::test]
async fn up_from_empty_creates_every_table_and_records_each_migration() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    for table in DESIGN_TABLES {
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0), "{table} is missing");
    }
    let recorded: Vec<String> = client
        .query(
            "SELECT name FROM core.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
    assert_eq!(recorded, expected);

    // The claim's partial index exists for the transcription lane.
    let row = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_calls_queue_downloaded'",
            &[],
        )
        .await
        .unwrap();
    let def: String = row.get(0);
    assert!(
        def.contains("WHERE (state = 'downloaded'::core.call_state)"),
        "{def}"
    );
}

#[tokio::test]
async fn running_again_changes_nothing() {
    let db = TestDatabase::new(1).await;
    let (mut client, connection) = connect_one(&db.url).await.unwrap();
    tokio::spawn(connection);
    let report = migrate(&mut client).await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(report.already_applied, MIGRATIONS.len());
}

#[tokio::test]
async fn updated_at_follows_updates() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let id = callscript_testkit::create_org(&**client, "acme").await;
    client
        .execute(
            "UPDATE core.organizations SET updated_at = now() - interval '1 day' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE core.organizations SET name = 'Acme Inc' WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT updated_at > now() - interval '1 minute' FROM core.organizations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the trigger did not touch updated_at"
    );
}

#[tokio::test]
async fn refuses_a_database_whose_migration_differs_from_the_file() {
    let db = TestDatabase::new(1).await;
    let (mut client, connection) = connect_one(&db.url).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE core.schema_migrations SET checksum = repeat('0', 64) WHERE version = 3",
            &[],
        )
        .await
        .unwrap();
    match migrate(&mut client).await {
        Err(MigrateError::ChecksumMismatch { name, .. }) => assert_eq!(name, "0003_calls.sql"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn refuses_a_database_migrated_by_a_newer_build() {
    let db = TestDatabase::new(1).await;
    let (mut client, connection) = connect_one(&db.url).await.unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO core.schema_migrations (version, name, checksum)
             VALUES (9999, '9999_future.sql', repeat('0', 64))",
            &[],
        )
        .await
        .unwrap();
    let err = migrate(&mut client).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::UnknownApplied { version: 9999, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn pending_lists_what_is_not_applied_without_changing_anything() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    assert!(pending(&**client).await.unwrap().is_empty());
    ensure_current(&**client).await.unwrap();
    client
        .batch_execute("DELETE FROM core.schema_migrations WHERE version >= 6")
        .await
        .unwrap();
    let behind = pending(&**client).await.unwrap();
    assert_eq!(
        behind,
        MIGRATIONS[5..].iter().map(|m| m.name).collect::<Vec<_>>()
    );
    // Checking again changes nothing: pending never migrates.
    assert_eq!(pending(&**client).await.unwrap(), behind);
    let err = ensure_current(&**client).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Behind { pending } if *pending == behind),
        "{err}"
    );
    assert!(
        err.to_string().contains("0006_review_and_operations.sql"),
        "{err}"
    );
    client
        .batch_execute("DROP SCHEMA core CASCADE; DROP SCHEMA crm CASCADE")
        .await
        .unwrap();
    assert_eq!(pending(&**client).await.unwrap().len(), MIGRATIONS.len());
}
