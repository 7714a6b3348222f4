//! Row-level security: the review API's role sees exactly one org, in every tenant table.

use callscript_testkit::{create_org, TestDatabase};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// One row in every tenant table for `org`.
async fn seed_every_table(client: &impl GenericClient, org: Uuid, tag: &str) {
    let sql = format!(
        "WITH
         member AS (INSERT INTO core.organization_members (org_id, email, role)
                    VALUES ('{org}', '{tag}@example.com', 'reviewer') RETURNING id),
         credential AS (INSERT INTO core.organization_credentials
                          (org_id, kind, public_id, key_id, nonce, ciphertext)
                        VALUES ('{org}', 'ringba', 'RA{tag}', 'k1', '\\x00', '\\x00') RETURNING id),
         campaign AS (INSERT INTO core.campaigns (org_id, source, external_id, name)
                      VALUES ('{org}', 'ringba', 'CA{tag}', 'Medicare {tag}') RETURNING id),
         call AS (INSERT INTO core.calls (org_id, campaign_id, source, external_id, state,
                                          call_started_at, flagged)
                  SELECT '{org}', id, 'ringba', 'call-{tag}', 'judged', now(), true FROM campaign
                  RETURNING id),
         link AS (INSERT INTO core.call_recording_links (call_id, org_id, url)
                  SELECT id, '{org}', 'https://media.example/r?k={tag}' FROM call RETURNING 1),
         transcript AS (INSERT INTO core.transcripts (call_id, org_id, model, text)
                        SELECT id, '{org}', 'tiny.en', 'hello {tag}' FROM call RETURNING call_id),
         segment AS (INSERT INTO core.transcript_segments
                       (call_id, segment_index, org_id, start_ms, end_ms, text)
                     SELECT call_id, 0, '{org}', 0, 1000, 'hello {tag}' FROM transcript RETURNING 1),
         pii AS (INSERT INTO core.pii_findings
                   (call_id, org_id, kind, first_segment, first_word, last_segment, end_word,
                    start_ms, end_ms, last_four, detected_by)
                 SELECT id, '{org}', 'card', 0, 0, 0, 3, 0, 1000, '1111', 'judge' FROM call
                 RETURNING 1),
         flag AS (INSERT INTO core.qa_flags (call_id, org_id, rule_id, rulebook_version, category,
                                             severity, evidence_text)
                  SELECT id, '{org}', 'dnc', 'default@1', 'compliance', 'high', 'stop calling'
                  FROM call RETURNING 1),
         usage AS (INSERT INTO core.usage (org_id, call_id, lane, audio_seconds)
                   SELECT '{org}', id, 'transcribe', 12 FROM call RETURNING 1),
         cursor AS (INSERT INTO core.ingest_cursors (org_id, source, watermark)
                    VALUES ('{org}', 'ringba', now()) RETURNING 1),
         notification AS (INSERT INTO core.notifications (org_id, event_kind, dedup_key, channel, payload)
                          VALUES ('{org}', 'flag', 'flag-{tag}', 'slack', '{{}}') RETURNING 1),
         channel AS (INSERT INTO core.notification_channels (org_id, name, kind)
                     VALUES ('{org}', 'slack', 'slack') RETURNING 1),
         lead AS (INSERT INTO crm.leads (org_id, lead_source, phone_number, interest_score, temperature)
                  VALUES ('{org}', 'ringba', '+1555000{tag}', 80, 'hot') RETURNING id),
         communication AS (INSERT INTO crm.lead_communications (org_id, lead_id, call_id, occurred_at)
                           SELECT '{org}', lead.id, call.id, now() FROM lead, call RETURNING 1),
         script AS (INSERT INTO crm.agent_scripts (org_id, name, body)
                    VALUES ('{org}', 'greeting', 'Hi, this call is recorded.') RETURNING 1),
         action AS (INSERT INTO crm.scheduled_actions (org_id, lead_id, action_type, due_at)
                    SELECT '{org}', id, 'call_back', now() + interval '1 day' FROM lead RETURNING 1),
         conversion AS (INSERT INTO crm.conversion_events (org_id, lead_id, event_type, value, occurred_at)
                        SELECT '{org}', id, 'sale', 120, now() FROM lead RETURNING 1),
         rulebook AS (INSERT INTO core.rulebooks (org_id, name, version, body, sha256)
                      VALUES ('{org}', 'sales', '{tag}', '[rulebook]', 'x') RETURNING 1),
         report AS (INSERT INTO crm.daily_reports (org_id, day, timezone, body, text)
                    VALUES ('{org}', current_date, 'UTC', '{{}}', 'calls: 1') RETURNING 1),
         alert_settings AS (INSERT INTO core.queue_alert_settings (org_id, backlog_minutes)
                            VALUES ('{org}', 30) RETURNING 1),
         alert AS (INSERT INTO core.queue_alerts (org_id, condition, detail)
                   VALUES ('{org}', 'backlog', 'waited 31 min') RETURNING 1),
         worker AS (INSERT INTO core.workers (worker, lane, org_id)
                    VALUES ('gpu-{tag}', 'transcribe', '{org}') RETURNING 1)
         SELECT 1"
    );
    client
        .batch_execute(&sql)
        .await
        .expect("seed every tenant table");
}

/// Tables in core and crm that carry an org, with the column that names it.
async fn tenant_tables(client: &impl GenericClient) -> Vec<(String, String, bool)> {
    client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname),
                    CASE WHEN c.relname = 'organizations' THEN 'id' ELSE 'org_id' END,
                    c.relrowsecurity AND c.relforcerowsecurity
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname IN ('core', 'crm') AND c.relkind = 'r'
               AND (c.relname = 'organizations'
                    OR EXISTS (SELECT 1 FROM pg_attribute a
                               WHERE a.attrelid = c.oid AND a.attname = 'org_id'))
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn the_api_role_reads_no_row_of_another_org_from_any_tenant_table() {
    let db = TestDatabase::new(1).await;
    let mut client = db.client().await;
    let org_a = create_org(&**client, "org-a").await;
    let org_b = create_org(&**client, "org-b").await;
    seed_every_table(&**client, org_a, "1").await;
    seed_every_table(&**client, org_b, "2").await;

    let tables = tenant_tables(&**client).await;
    assert_eq!(tables.len(), 24, "{tables:?}");
    for (table, _, forced) in &tables {
        assert!(forced, "{table} does not force row-level security");
    }
    let bypass: bool = client
        .query_one(
            "SELECT rolbypassrls FROM pg_roles WHERE rolname = 'callscript_api'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!bypass);

    for (table, org_column, _) in &tables {
        let tx = client.transaction().await.unwrap();
        tx.batch_execute("SET LOCAL ROLE callscript_api")
            .await
            .unwrap();
        tx.execute(
            "SELECT set_config('app.org_id', $1, true)",
            &[&org_a.to_string()],
        )
        .await
        .unwrap();
        let counts = tx
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE {org_column} = $1),
                            count(*) FILTER (WHERE {org_column} = $2)
                     FROM {table}"
                ),
                &[&org_a, &org_b],
            )
            .await;
        match counts {
            Ok(row) => {
                let (own, other): (i64, i64) = (row.get(0), row.get(1));
                assert_eq!(other, 0, "{table}: org A's session read org B's rows");
                assert_eq!(own, 1, "{table}: org A's session cannot read its own row");
            }
            Err(e) => {
                // Only secrets (credentials, signed recording links) are closed to the API
                // role altogether.
                assert!(
                    ["core.organization_credentials", "core.call_recording_links"]
                        .contains(&table.as_str()),
                    "{table}: {}",
                    callscript_core::db::describe_pg_error(&e)
                );
                let e = callscript_core::db::describe_pg_error(&e);
                assert!(e.contains("permission denied"), "{e}");
            }
        }
        tx.rollback().await.unwrap();
    }
}

/// How many calls the transaction sees after switching to `role`.
async fn calls_seen_as(tx: &deadpool_postgres::Transaction<'_>, role: &str) -> i64 {
    tx.batch_execute(&format!("SET LOCAL ROLE {role}"))
        .await
        .unwrap();
    tx.query_one("SELECT count(*) FROM core.calls", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_api_role_cannot_write_into_another_org_and_sees_nothing_without_an_org() {
    let db = TestDatabase::new(1).await;
    let mut client = db.client().await;
    let org_a = create_org(&**client, "org-a").await;
    let org_b = create_org(&**client, "org-b").await;
    seed_every_table(&**client, org_b, "2").await;

    let tx = client.transaction().await.unwrap();
    assert_eq!(
        calls_seen_as(&tx, "callscript_api").await,
        0,
        "no app.org_id must mean no rows"
    );
    tx.execute(
        "SELECT set_config('app.org_id', $1, true)",
        &[&org_a.to_string()],
    )
    .await
    .unwrap();
    let changed = tx
        .execute("UPDATE core.qa_flags SET review_status = 'dismissed'", &[])
        .await
        .unwrap();
    assert_eq!(changed, 0, "org A dismissed org B's flags");
    let err = tx
        .execute(
            "INSERT INTO core.campaigns (org_id, source, external_id, name)
             VALUES ($1, 'upload', 'x', 'planted')",
            &[&org_b],
        )
        .await
        .unwrap_err();
    let err = callscript_core::db::describe_pg_error(&err);
    assert!(err.contains("row-level security"), "{err}");
    tx.rollback().await.unwrap();

    // The pipeline role crosses orgs by design.
    let tx = client.transaction().await.unwrap();
    assert_eq!(calls_seen_as(&tx, "callscript_pipeline").await, 1);
    tx.rollback().await.unwrap();
}
