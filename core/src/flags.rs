//! What QA flags say about their call.

use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;

/// Sets `core.calls.flagged` from the call's flags: flagged while any flag is not dismissed.
/// Whoever changes a call's flags (the judge, a reviewer) calls it in the same transaction.
pub async fn refresh_flagged(client: &impl GenericClient, call_id: Uuid) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE core.calls SET flagged = EXISTS (
               SELECT 1 FROM core.qa_flags WHERE call_id = $1 AND review_status <> 'dismissed')
             WHERE id = $1",
            &[&call_id],
        )
        .await?;
    Ok(())
}
