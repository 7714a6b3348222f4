//! The vault lane: fetches `pending` calls' recordings from their source URL into our object
//! store, then moves them to `downloaded`.
//!
//! A download is streamed with a size limit and a time limit, checked to be audio (by its
//! bytes, then by reading its container's header) and stored at a stable key
//! (`orgs/{org}/{source}/{yyyy}/{mm}/{dd}/{call id at the source}.{ext}`), so a retry after a
//! crash overwrites the same object instead of leaving a second one. The call's object key,
//! SHA-256, content type, size, length and channels are written in the transaction that moves
//! it on, and its link ([`crate::links`]) is forgotten there: only a `pending` call keeps one.
//!
//! Failures: transport errors, timeouts and other HTTP errors are retried with the queue's
//! backoff. A 404 or 410 is retried too (a source may publish a link before its file), and on
//! the last attempt the call ends `skipped` with the reason. Bytes that are not usable audio, or
//! a file over the size limit, go to the dead letter at once: the same bytes fail the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use callscript_core::db::{DatabaseUrl, Pool};
use callscript_core::model::Lane;
use callscript_core::queue::{
    self, ClaimRequest, Claimed, Failed, LaneLoop, QueueError, Retry, StoredObject, Until,
};
use callscript_core::storage::ObjectStore;
use futures_util::StreamExt;
use tokio::sync::watch;
use uuid::Uuid;

use crate::http::describe_error;
use crate::links::{self, RecordingLink};
use crate::probe::probe;
use crate::upload::AudioContainer;

#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Who holds the leases (shown in the queue).
    pub worker: String,
    /// Calls claimed at once; all of them download concurrently.
    pub batch_size: i64,
    /// The largest recording accepted.
    pub max_bytes: u64,
    /// How long one download may take in all.
    pub timeout: Duration,
    /// Only this organization's calls.
    pub org_id: Option<Uuid>,
    /// How often an idle lane looks for work when notifications are missed.
    pub poll_interval: Duration,
}

impl Default for VaultConfig {
    fn default() -> Self {
        Self {
            worker: format!("vault-{}", std::process::id()),
            batch_size: 16,
            max_bytes: 512 * 1024 * 1024,
            timeout: Duration::from_secs(300),
            org_id: None,
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaultReport {
    pub stored: usize,
    pub bytes: u64,
    /// Ended `skipped` (no link, or gone for good).
    pub skipped: usize,
    pub retrying: usize,
    pub dead_lettered: usize,
    /// Leases rescued while downloading: the result was dropped.
    pub lost: usize,
}

impl VaultReport {
    fn add(&mut self, other: &VaultReport) {
        self.stored += other.stored;
        self.bytes += other.bytes;
        self.skipped += other.skipped;
        self.retrying += other.retrying;
        self.dead_lettered += other.dead_lettered;
        self.lost += other.lost;
    }
}

pub struct VaultLane {
    pub pool: Pool,
    pub database_url: DatabaseUrl,
    pub store: Arc<dyn ObjectStore>,
    pub http: reqwest::Client,
    pub config: VaultConfig,
}

/// How one call ended in this lane.
enum Outcome {
    Stored { bytes: u64 },
    Skipped,
    Failed(Failed),
    Lost,
}

/// Why a download failed.
#[derive(Debug)]
enum DownloadError {
    /// 404 or 410: the source says the file is not there.
    Gone(u16),
    TooLarge {
        limit: u64,
    },
    /// Anything worth retrying: other HTTP statuses, transport errors, timeouts.
    Transient(String),
}

impl VaultLane {
    /// Runs until `stop` turns true (finishing the batch in hand), or with [`Until::Idle`], until
    /// no call is ready or falls due within the wait (see `core::queue::IdleWatch`).
    pub async fn run(
        &self,
        until: Until,
        stop: watch::Receiver<bool>,
    ) -> Result<VaultReport, QueueError> {
        let mut report = VaultReport::default();
        queue::run_batches(
            LaneLoop {
                database_url: &self.database_url,
                pool: &self.pool,
                lane: Lane::Vault,
                org_id: self.config.org_id,
                poll_interval: self.config.poll_interval,
                until,
            },
            stop,
            || self.run_batch(),
            |batch| report.add(&batch),
        )
        .await?;
        Ok(report)
    }

    /// Claims one batch and vaults it; `None` when nothing was ready.
    pub async fn run_batch(&self) -> Result<Option<VaultReport>, QueueError> {
        let claimed = {
            let client = self.pool.get().await?;
            queue::claim(
                &**client,
                &ClaimRequest {
                    lane: Lane::Vault,
                    worker: &self.config.worker,
                    batch_size: self.config.batch_size,
                    // A download ends within its timeout; the lease outlasts it with room to
                    // store the object, so no heartbeat is needed.
                    lease_for: self.config.timeout * 2 + Duration::from_secs(60),
                    org_id: self.config.org_id,
                },
            )
            .await?
        };
        if claimed.is_empty() {
            return Ok(None);
        }
        let mut links = {
            let ids: Vec<Uuid> = claimed.iter().map(|c| c.call.id).collect();
            links::load(&**self.pool.get().await?, &ids).await?
        };
        let outcomes: Vec<Result<Outcome, QueueError>> = futures_util::stream::iter(claimed)
            .map(|claimed| {
                let link = links.remove(&claimed.call.id);
                self.vault_one(claimed, link)
            })
            .buffer_unordered(self.config.batch_size.max(1) as usize)
            .collect()
            .await;
        let mut report = VaultReport::default();
        for outcome in outcomes {
            match outcome? {
                Outcome::Stored { bytes } => {
                    report.stored += 1;
                    report.bytes += bytes;
                }
                Outcome::Skipped => report.skipped += 1,
                Outcome::Failed(Failed::WillRetry { .. }) => report.retrying += 1,
                Outcome::Failed(Failed::DeadLettered) => report.dead_lettered += 1,
                Outcome::Lost => report.lost += 1,
            }
        }
        Ok(Some(report))
    }

    async fn vault_one(
        &self,
        claimed: Claimed,
        link: Option<RecordingLink>,
    ) -> Result<Outcome, QueueError> {
        let Claimed { lease, call } = claimed;
        let Some(link) = link else {
            return self.skip(&lease, "the call has no recording URL").await;
        };
        // Errors are stored and logged: they name the link without its signing query.
        let shown = link.shown();
        let body = match download(&self.http, link.url(), self.config.max_bytes).await {
            Ok(body) => body,
            Err(DownloadError::Gone(status)) if lease.attempt >= call.max_attempts => {
                let reason = format!(
                    "the recording is gone: HTTP {status} from {shown} on each of {} attempts",
                    lease.attempt
                );
                return self.skip(&lease, &reason).await;
            }
            Err(DownloadError::Gone(status)) => {
                let error =
                    format!("HTTP {status} from {shown} (retrying: it may not be published yet)");
                return self.fail(&lease, &error, Retry::WithBackoff).await;
            }
            Err(DownloadError::TooLarge { limit }) => {
                let error = format!(
                    "the recording at {shown} is over the {limit}-byte limit; raise --max-bytes \
                     and requeue it"
                );
                return self.fail(&lease, &error, Retry::Never).await;
            }
            Err(DownloadError::Transient(reason)) => {
                let error = format!("downloading {shown}: {reason}");
                return self.fail(&lease, &error, Retry::WithBackoff).await;
            }
        };
        let Some(container) = AudioContainer::sniff(&body) else {
            let error = format!(
                "{shown} did not return audio: {} bytes starting {:?}",
                body.len(),
                String::from_utf8_lossy(&body[..body.len().min(40)])
            );
            return self.fail(&lease, &error, Retry::Never).await;
        };
        let facts = match probe(&body, Some(container.extension())) {
            Ok(facts) => facts,
            Err(reason) => {
                let error = format!("the recording from {shown} is not usable audio: {reason}");
                return self.fail(&lease, &error, Retry::Never).await;
            }
        };
        let key = object_key(
            call.org_id,
            call.source.as_str(),
            call.call_started_at,
            &call.external_id,
            container.extension(),
        );
        let size = body.len() as u64;
        let stored = match self.store.put(&key, body, container.content_type()).await {
            Ok(stored) => stored,
            Err(e) => {
                return self
                    .fail(
                        &lease,
                        &format!("storing the recording: {e}"),
                        Retry::WithBackoff,
                    )
                    .await
            }
        };
        let sha256 = stored
            .sha256
            .expect("the store reports the SHA-256 of what it stored");
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        match queue::complete(&*transaction, &lease).await {
            Err(QueueError::LeaseLost { .. }) => return Ok(Outcome::Lost),
            other => other?,
        }
        queue::record_stored_object(
            &*transaction,
            call.id,
            &StoredObject {
                key: &key,
                sha256: &sha256,
                content_type: container.content_type(),
                size_bytes: size as i64,
            },
        )
        .await?;
        links::forget(&*transaction, call.id).await?;
        if let (Some(duration_ms), Some(channels), Some(rate)) =
            (facts.duration_ms, facts.channels, facts.sample_rate)
        {
            queue::record_audio_facts(&*transaction, call.id, duration_ms, channels, rate).await?;
        }
        transaction.commit().await?;
        Ok(Outcome::Stored { bytes: size })
    }

    /// Ends the call `skipped`; its link, if any, goes with the lane's interest in it.
    async fn skip(&self, lease: &queue::Lease, reason: &str) -> Result<Outcome, QueueError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        match queue::skip(&*transaction, lease, reason).await {
            Ok(()) => {}
            Err(QueueError::LeaseLost { .. }) => return Ok(Outcome::Lost),
            Err(e) => return Err(e),
        }
        links::forget(&*transaction, lease.call_id).await?;
        transaction.commit().await?;
        Ok(Outcome::Skipped)
    }

    async fn fail(
        &self,
        lease: &queue::Lease,
        error: &str,
        retry: Retry,
    ) -> Result<Outcome, QueueError> {
        tracing::warn!(call = %lease.call_id, attempt = lease.attempt, "{error}");
        let client = self.pool.get().await?;
        match queue::fail(&**client, lease, error, retry).await {
            Ok(failed) => Ok(Outcome::Failed(failed)),
            Err(QueueError::LeaseLost { .. }) => Ok(Outcome::Lost),
            Err(e) => Err(e),
        }
    }
}

/// Streams `url` into memory, stopping as soon as it passes `max_bytes`.
async fn download(
    http: &reqwest::Client,
    url: &str,
    max_bytes: u64,
) -> Result<Bytes, DownloadError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| DownloadError::Transient(describe_error(&e.without_url())))?;
    let status = response.status();
    if matches!(status.as_u16(), 404 | 410) {
        return Err(DownloadError::Gone(status.as_u16()));
    }
    if !status.is_success() {
        return Err(DownloadError::Transient(format!("HTTP {status}")));
    }
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(DownloadError::TooLarge { limit: max_bytes });
    }
    let mut body = BytesMut::with_capacity(
        response
            .content_length()
            .unwrap_or(0)
            .min(max_bytes)
            .min(64 * 1024 * 1024) as usize,
    );
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| DownloadError::Transient(describe_error(&e.without_url())))?;
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(DownloadError::TooLarge { limit: max_bytes });
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(DownloadError::Transient("the response was empty".into()));
    }
    Ok(body.freeze())
}

/// `orgs/{org}/{source}/{yyyy}/{mm}/{dd}/{id}.{ext}`; characters a key may not hold become
/// `_`, and an id that needed that gets a hash suffix so two ids never share a key.
pub fn object_key(
    org_id: Uuid,
    source: &str,
    started_at: chrono::DateTime<chrono::Utc>,
    external_id: &str,
    extension: &str,
) -> String {
    let safe: String = external_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=') {
                c
            } else {
                '_'
            }
        })
        .take(160)
        .collect();
    let name = if safe == external_id {
        safe
    } else {
        let hash = callscript_core::storage::sha256_hex(external_id.as_bytes());
        format!("{safe}-{}", &hash[..12])
    };
    format!(
        "orgs/{org_id}/{source}/{}/{name}.{extension}",
        started_at.format("%Y/%m/%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_valid_and_distinct() {
        let org = Uuid::nil();
        let at = chrono::DateTime::from_timestamp(1612219718, 0).unwrap();
        let key = object_key(org, "ringba", at, "v21GxftEiw9_xeb", "mp3");
        assert_eq!(
            key,
            "orgs/00000000-0000-0000-0000-000000000000/ringba/2021/02/01/v21GxftEiw9_xeb.mp3"
        );
        assert_eq!(key, object_key(org, "ringba", at, "v21GxftEiw9_xeb", "mp3"));
        let odd = object_key(org, "livekit", at, "EG/a b", "ogg");
        let other = object_key(org, "livekit", at, "EG_a_b", "ogg");
        assert_ne!(odd, other);
        callscript_core::storage::validate_key(&odd).unwrap();
    }
}
