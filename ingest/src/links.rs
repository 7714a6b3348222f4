//! Recording links: where the vault fetches a `pending` call's recording from.
//!
//! A vendor's link is signed (Ringba's `k=…`, an S3 presigned URL's `X-Amz-Signature=…`):
//! whoever holds it can fetch the recording. So the link is not part of the call: it is kept in
//! `core.call_recording_links`, which only the pipeline reads (the review API's role has no
//! grant on it), and forgotten once the vault is done with the call. What members, errors and
//! logs see is [`shown`], the link without its query.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;

use bytes::BytesMut;
use callscript_core::model::CallState;
use callscript_core::queue::{self, Enqueued, NewCall, QueueError};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A signed recording link. It prints (`Debug`, and as a statement parameter in
/// tokio-postgres's debug log) as [`shown`]; only [`RecordingLink::url`] gives the link itself.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct RecordingLink(String);

impl RecordingLink {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The whole link, query included: for the download, nothing else.
    pub fn url(&self) -> &str {
        &self.0
    }

    /// The link as it may be shown: see [`shown`].
    pub fn shown(&self) -> String {
        shown(&self.0)
    }
}

impl fmt::Debug for RecordingLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecordingLink").field(&self.shown()).finish()
    }
}

impl ToSql for RecordingLink {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>>
    where
        Self: Sized,
    {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool
    where
        Self: Sized,
    {
        <String as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// `url` without its query, which holds the access key of signed links: `…/path?…` (the mark
/// says a query was cut), or `url` itself when it has none.
pub fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// Queues `call` ([`queue::enqueue`]) and, when it is new and `pending`, keeps `link` for the
/// vault. Run it in the caller's transaction, so a call is never queued without its link.
pub async fn enqueue(
    client: &impl GenericClient,
    call: &NewCall,
    link: Option<&RecordingLink>,
) -> Result<Enqueued, QueueError> {
    let enqueued = queue::enqueue(client, call).await?;
    let for_the_vault = enqueued.inserted && call.state == CallState::Pending;
    if let (true, Some(link)) = (for_the_vault, link) {
        client
            .execute(
                "INSERT INTO core.call_recording_links (call_id, org_id, url)
                 VALUES ($1, $2, $3)",
                &[&enqueued.call_id, &call.org_id, link],
            )
            .await?;
    }
    Ok(enqueued)
}

/// The links of `call_ids` that have one.
pub async fn load(
    client: &impl GenericClient,
    call_ids: &[Uuid],
) -> Result<HashMap<Uuid, RecordingLink>, QueueError> {
    let rows = client
        .query(
            "SELECT call_id, url FROM core.call_recording_links WHERE call_id = ANY($1)",
            &[&call_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), RecordingLink(row.get(1))))
        .collect())
}

/// Drops the call's link: the vault has no more use for it.
pub async fn forget(client: &impl GenericClient, call_id: Uuid) -> Result<(), QueueError> {
    client
        .execute(
            "DELETE FROM core.call_recording_links WHERE call_id = $1",
            &[&call_id],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_shows_without_its_query() {
        let link = RecordingLink::new("https://media.ringba.com/recording-public?v=v1&k=SECRET");
        assert_eq!(link.shown(), "https://media.ringba.com/recording-public?…");
        assert_eq!(
            format!("{:?}", Some(&link)),
            "Some(RecordingLink(\"https://media.ringba.com/recording-public?…\"))"
        );
        assert_eq!(
            shown("https://cdn.example/a.mp3"),
            "https://cdn.example/a.mp3"
        );
    }
}
