//! The queue at a glance, for the review UI's first page.

use callscript_core::model::CallState;
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ReviewError;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueHealth {
    /// Every state, in pipeline order, with its count (0 included).
    pub by_state: Vec<(CallState, i64)>,
    /// Calls waiting out a retry backoff.
    pub retrying: i64,
    /// Calls judged in the last hour, and the audio they held.
    pub judged_last_hour: i64,
    pub audio_hours_last_hour: f64,
    /// How long the oldest call waiting for a worker has waited, in seconds.
    pub oldest_downloaded_seconds: Option<i64>,
    pub open_flags: i64,
}

/// The health of `org_id`'s calls, or of every org's.
pub async fn queue_health(
    client: &impl GenericClient,
    org_id: Option<Uuid>,
) -> Result<QueueHealth, ReviewError> {
    let counts = client
        .query(
            "SELECT state::text, count(*) FROM core.calls
             WHERE $1::uuid IS NULL OR org_id = $1 GROUP BY state",
            &[&org_id],
        )
        .await?;
    let mut by_state: Vec<(CallState, i64)> = CallState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in counts {
        let state: CallState = row.get::<_, &str>(0).parse()?;
        if let Some(entry) = by_state.iter_mut().find(|(s, _)| *s == state) {
            entry.1 = row.get(1);
        }
    }
    let row = client
        .query_one(
            "SELECT
               (SELECT count(*) FROM core.calls
                WHERE ($1::uuid IS NULL OR org_id = $1) AND last_error IS NOT NULL
                  AND run_after > now()
                  AND state IN ('pending', 'downloaded', 'transcribed')),
               (SELECT count(*) FROM core.calls
                WHERE ($1::uuid IS NULL OR org_id = $1) AND state = 'judged'
                  AND updated_at > now() - interval '1 hour'),
               (SELECT COALESCE(sum(duration_ms), 0)::float8 / 3600000.0 FROM core.calls
                WHERE ($1::uuid IS NULL OR org_id = $1) AND state = 'judged'
                  AND updated_at > now() - interval '1 hour'),
               (SELECT extract(epoch FROM now() - min(updated_at))::bigint FROM core.calls
                WHERE ($1::uuid IS NULL OR org_id = $1) AND state = 'downloaded'),
               (SELECT count(*) FROM core.qa_flags
                WHERE ($1::uuid IS NULL OR org_id = $1) AND review_status = 'open')",
            &[&org_id],
        )
        .await?;
    Ok(QueueHealth {
        by_state,
        retrying: row.get(0),
        judged_last_hour: row.get(1),
        audio_hours_last_hour: row.get(2),
        oldest_downloaded_seconds: row.get(3),
        open_flags: row.get(4),
    })
}
