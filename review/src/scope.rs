//! One organization's view of the database for the length of a transaction.
//!
//! The review API's connections log in as a role that may act as `callscript_api`; every
//! request runs in a transaction that first takes that role and names its organization
//! (`app.org_id`). Row-level security on every tenant table (`core.enable_tenant_isolation`)
//! then shows and lets change only that organization's rows: a query that forgot its org
//! filter still cannot read another tenant. Both settings are `LOCAL`, so they end with the
//! transaction and a pooled connection goes back clean.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::ReviewError;

/// Confines the current transaction to `org_id`. Call it first in the transaction.
pub async fn enter(transaction: &impl GenericClient, org_id: Uuid) -> Result<(), ReviewError> {
    transaction
        .batch_execute("SET LOCAL ROLE callscript_api")
        .await?;
    transaction
        .execute(
            "SELECT set_config('app.org_id', $1, true)",
            &[&org_id.to_string()],
        )
        .await?;
    Ok(())
}
