//! `core.workers`: lane processes reporting in, busy or idle, so queue health can tell "calls
//! wait and nobody is working" from "nobody needs to work" (a lease heartbeat only shows a
//! worker that holds calls).

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;
use crate::model::Lane;

/// Records that `worker` of `lane` (serving one organization, or every one with `None`) is
/// alive now.
pub async fn report_in(
    client: &impl GenericClient,
    worker: &str,
    lane: Lane,
    org_id: Option<Uuid>,
) -> Result<(), DbError> {
    client
        .execute(
            "INSERT INTO core.workers (worker, lane, org_id, host)
             VALUES ($1, $2, $3, inet_client_addr()::text)
             ON CONFLICT (worker) DO UPDATE SET
               lane = excluded.lane, org_id = excluded.org_id, host = excluded.host,
               last_seen_at = now()",
            &[&worker, &lane.as_str(), &org_id],
        )
        .await?;
    Ok(())
}

/// Removes `worker` on a clean stop: a stopped worker is not a silent one.
pub async fn sign_off(client: &impl GenericClient, worker: &str) -> Result<(), DbError> {
    client
        .execute("DELETE FROM core.workers WHERE worker = $1", &[&worker])
        .await?;
    Ok(())
}
