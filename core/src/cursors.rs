//! Where polling resumes: `core.ingest_cursors`, one row per org, source and cursor key (a
//! Ringba account). The watermark is the end of the last window fully read; `state` holds what
//! must be looked at again (calls still live, recordings not published yet), keyed by the
//! source's call id with the time it was first seen.
//!
//! The pending set is changed by single statements that merge or remove keys, so a live poller
//! and a backfill of the same account never overwrite each other's entries.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;
use crate::model::Source;

/// A cursor's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    pub watermark: DateTime<Utc>,
    /// Call ids to look at again, with when each was first seen.
    pub recheck: Vec<(String, DateTime<Utc>)>,
}

/// The cursor, if this org/source/key has polled before.
pub async fn load(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    key: &str,
) -> Result<Option<Cursor>, DbError> {
    let row = client
        .query_opt(
            "SELECT watermark, state->'recheck' FROM core.ingest_cursors
             WHERE org_id = $1 AND source = $2::text::core.call_source AND cursor_key = $3",
            &[&org_id, &source.as_str(), &key],
        )
        .await?;
    Ok(row.map(|row| {
        let recheck: Option<serde_json::Value> = row.get(1);
        let mut recheck: Vec<(String, DateTime<Utc>)> = recheck
            .as_ref()
            .and_then(|v| v.as_object())
            .map(|entries| {
                entries
                    .iter()
                    .filter_map(|(id, seen)| {
                        let seen = DateTime::parse_from_rfc3339(seen.as_str()?).ok()?;
                        Some((id.clone(), seen.with_timezone(&Utc)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        recheck.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Cursor {
            watermark: row.get(0),
            recheck,
        }
    }))
}

/// Moves the watermark forward to `watermark` (never back), creating the cursor if needed.
pub async fn advance(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    key: &str,
    watermark: DateTime<Utc>,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO core.ingest_cursors (org_id, source, cursor_key, watermark)
             VALUES ($1, $2::text::core.call_source, $3, $4)
             ON CONFLICT (org_id, source, cursor_key) DO UPDATE SET
               watermark = greatest(core.ingest_cursors.watermark, excluded.watermark),
               updated_at = now()",
            &[&org_id, &source.as_str(), &key, &watermark],
        )
        .await?;
    Ok(())
}

/// Adds call ids to look at again; an id already there keeps its first-seen time. Creates the
/// cursor (watermark `watermark_if_new`) when there is none.
pub async fn add_recheck(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    key: &str,
    ids: &[(String, DateTime<Utc>)],
    watermark_if_new: DateTime<Utc>,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let entries: serde_json::Map<String, serde_json::Value> = ids
        .iter()
        .map(|(id, seen)| (id.clone(), serde_json::json!(seen.to_rfc3339())))
        .collect();
    let entries = serde_json::Value::Object(entries);
    client
        .execute(
            "INSERT INTO core.ingest_cursors (org_id, source, cursor_key, watermark, state)
             VALUES ($1, $2::text::core.call_source, $3, $5, jsonb_build_object('recheck', $4::jsonb))
             ON CONFLICT (org_id, source, cursor_key) DO UPDATE SET
               state = jsonb_set(core.ingest_cursors.state, '{recheck}',
                 $4::jsonb || coalesce(core.ingest_cursors.state->'recheck', '{}')),
               updated_at = now()",
            &[&org_id, &source.as_str(), &key, &entries, &watermark_if_new],
        )
        .await?;
    Ok(())
}

/// Removes call ids from the recheck set (they were recorded, or given up on).
pub async fn remove_recheck(
    client: &impl GenericClient,
    org_id: Uuid,
    source: Source,
    key: &str,
    ids: &[String],
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE core.ingest_cursors SET
               state = jsonb_set(state, '{recheck}', coalesce(state->'recheck', '{}') - $4::text[]),
               updated_at = now()
             WHERE org_id = $1 AND source = $2::text::core.call_source AND cursor_key = $3",
            &[&org_id, &source.as_str(), &key, &ids],
        )
        .await?;
    Ok(())
}
