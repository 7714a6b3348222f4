//! The Ringba lane: poll each account's call log from its watermark, look again at calls that
//! were live or had no recording link yet, and re-pull date ranges on demand (backfills).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use callscript_core::credentials::{self, Credential, CredentialKey};
use callscript_core::cursors;
use callscript_core::db::Pool;
use callscript_core::model::{CallState, Source};
use callscript_core::orgs;
use callscript_core::queue;
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::links;

use super::client::RingbaClient;
use super::record::{CallLogRecord, Readiness};
use super::RingbaError;

/// The credential kind holding a Ringba API token (public id: the account id).
pub const CREDENTIAL_KIND: &str = "ringba";

/// Ringba accepts at most this many ids per call-details request.
const DETAILS_PER_REQUEST: usize = 100;

#[derive(Debug, Clone)]
pub struct PollConfig {
    /// Each poll re-reads this much before the watermark: Ringba's log is eventually
    /// consistent, and re-reading is harmless (queueing is idempotent).
    pub overlap: Duration,
    /// How far back an account's first poll reads (a backfill fetches anything older).
    pub first_lookback: Duration,
    /// The longest time window one report request asks for.
    pub window: Duration,
    pub page_size: u32,
    /// A call still live, or still without its recording link, this long after it was first
    /// seen is kept as `skipped` with the reason, and no longer looked at.
    pub recheck_give_up: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(15 * 60),
            first_lookback: Duration::from_secs(60 * 60),
            window: Duration::from_secs(6 * 60 * 60),
            page_size: super::client::MAX_PAGE_SIZE,
            recheck_give_up: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// What one poll or backfill of one account did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub windows: usize,
    pub pages: usize,
    pub records: usize,
    /// New calls queued for the vault.
    pub queued: usize,
    /// New calls without a recording, kept as `skipped`.
    pub without_recording: usize,
    /// Calls already known whose Ringba fields changed (revenue, conversion, ...).
    pub refreshed: usize,
    /// Calls already known, unchanged.
    pub unchanged: usize,
    /// Calls live or without their recording link yet, to be looked at again.
    pub awaiting: usize,
    /// Calls looked at again that are now queued (or known).
    pub resolved: usize,
    /// Calls looked at again for too long, kept as `skipped`.
    pub given_up: usize,
    /// Records that could not be used, each with the reason.
    pub invalid: Vec<String>,
}

/// Where a backfill is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackfillProgress {
    pub windows_done: usize,
    pub windows_total: usize,
    pub records: usize,
}

/// One account's outcome in a pass over all accounts.
#[derive(Debug)]
pub struct AccountOutcome {
    pub org_id: Uuid,
    /// The credential's label, or the account id when known.
    pub account: String,
    pub result: Result<IngestReport, RingbaError>,
}

/// The lane over every org's Ringba accounts (or one org's). Clients live as long as the lane,
/// so each account's rate-limit bucket spans polls.
pub struct RingbaLane {
    pool: Pool,
    key: CredentialKey,
    http: reqwest::Client,
    config: PollConfig,
    org_id: Option<Uuid>,
    accounts: HashMap<(Uuid, String), (Credential, RingbaClient)>,
}

impl RingbaLane {
    pub fn new(
        pool: Pool,
        key: CredentialKey,
        http: reqwest::Client,
        config: PollConfig,
        org_id: Option<Uuid>,
    ) -> Self {
        Self {
            pool,
            key,
            http,
            config,
            org_id,
            accounts: HashMap::new(),
        }
    }

    /// Polls every account once: new calls since its watermark, then its recheck set.
    pub async fn poll_all(&mut self) -> Result<Vec<AccountOutcome>, RingbaError> {
        let (accounts, mut outcomes) = self.refresh_accounts().await?;
        for (org_id, label) in accounts {
            let (_, client) = &self.accounts[&(org_id, label.clone())];
            let result = poll(&self.pool, client, org_id, &self.config, Utc::now()).await;
            outcomes.push(AccountOutcome {
                org_id,
                account: client.account_id().to_owned(),
                result,
            });
        }
        Ok(outcomes)
    }

    /// Re-pulls `[from, to]` for every account; the watermark is left alone.
    pub async fn backfill_all(
        &mut self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        progress: &mut dyn FnMut(&str, &BackfillProgress),
    ) -> Result<Vec<AccountOutcome>, RingbaError> {
        let (accounts, mut outcomes) = self.refresh_accounts().await?;
        for (org_id, label) in accounts {
            let (_, client) = &self.accounts[&(org_id, label.clone())];
            let account = client.account_id().to_owned();
            let result = backfill(
                &self.pool,
                client,
                org_id,
                (from, to),
                &self.config,
                &mut |p| progress(&account, p),
            )
            .await;
            outcomes.push(AccountOutcome {
                org_id,
                account,
                result,
            });
        }
        Ok(outcomes)
    }

    /// Loads the credentials (new or changed ones get a new client); returns the usable
    /// accounts and an outcome for each credential that cannot be used.
    async fn refresh_accounts(
        &mut self,
    ) -> Result<(Vec<(Uuid, String)>, Vec<AccountOutcome>), RingbaError> {
        let client = self.pool.get().await?;
        let stored =
            credentials::load_kind(&**client, &self.key, CREDENTIAL_KIND, self.org_id).await?;
        drop(client);
        let mut usable = Vec::new();
        let mut broken = Vec::new();
        let mut seen = Vec::new();
        for credential in stored {
            let credential = match credential {
                Ok(credential) => credential,
                Err(e) => {
                    broken.push(AccountOutcome {
                        org_id: e.org_id().unwrap_or_default(),
                        account: "?".into(),
                        result: Err(e.into()),
                    });
                    continue;
                }
            };
            let id = (credential.org_id, credential.label.clone());
            seen.push(id.clone());
            let unchanged = self
                .accounts
                .get(&id)
                .is_some_and(|(known, _)| *known == credential);
            if !unchanged {
                match RingbaClient::from_credential(self.http.clone(), &credential) {
                    Ok(client) => {
                        self.accounts.insert(id.clone(), (credential, client));
                    }
                    Err(e) => {
                        self.accounts.remove(&id);
                        broken.push(AccountOutcome {
                            org_id: credential.org_id,
                            account: credential.label.clone(),
                            result: Err(e),
                        });
                        continue;
                    }
                }
            }
            usable.push(id);
        }
        self.accounts.retain(|id, _| seen.contains(id));
        Ok((usable, broken))
    }
}

/// One poll of one account: `[watermark − overlap, now]` (or the first lookback), then the
/// recheck set; the watermark moves to `now` only when both succeeded.
pub async fn poll(
    pool: &Pool,
    client: &RingbaClient,
    org_id: Uuid,
    config: &PollConfig,
    now: DateTime<Utc>,
) -> Result<IngestReport, RingbaError> {
    let account = client.account_id();
    let cursor = {
        let db = pool.get().await?;
        cursors::load(&**db, org_id, Source::Ringba, account).await?
    };
    let from = match &cursor {
        Some(cursor) => cursor.watermark - config.overlap,
        None => now - config.first_lookback,
    };
    let mut report = IngestReport::default();
    ingest_range(
        pool,
        client,
        org_id,
        (from, now),
        config,
        &mut report,
        &mut |_| {},
    )
    .await?;
    recheck(pool, client, org_id, config, now, &mut report).await?;
    let db = pool.get().await?;
    cursors::advance(&**db, org_id, Source::Ringba, account, now).await?;
    Ok(report)
}

/// Re-pulls `[from, to]` for one account. Calls found live or without a link join the
/// account's recheck set, which the next poll resolves.
pub async fn backfill(
    pool: &Pool,
    client: &RingbaClient,
    org_id: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    config: &PollConfig,
    progress: &mut dyn FnMut(&BackfillProgress),
) -> Result<IngestReport, RingbaError> {
    let mut report = IngestReport::default();
    ingest_range(
        pool,
        client,
        org_id,
        (from, to),
        config,
        &mut report,
        progress,
    )
    .await?;
    Ok(report)
}

/// `[from, to]` in windows of at most `config.window`, oldest first, each paged.
async fn ingest_range(
    pool: &Pool,
    client: &RingbaClient,
    org_id: Uuid,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    config: &PollConfig,
    report: &mut IngestReport,
    progress: &mut dyn FnMut(&BackfillProgress),
) -> Result<(), RingbaError> {
    let windows = windows(from, to, config.window);
    // Windows share their boundary instant and pages may repeat a record (see below): each
    // call is handled once per run.
    let mut seen = HashSet::new();
    for (done, (start, end)) in windows.iter().enumerate() {
        let mut offset = 0u64;
        loop {
            let page = client
                .call_log_page(*start, *end, offset, config.page_size)
                .await?;
            report.pages += 1;
            offset += page.records.len() as u64;
            let fresh: Vec<&serde_json::Value> = page
                .records
                .iter()
                .filter(|r| seen.insert(r["inboundCallId"].to_string()))
                .collect();
            store_page(pool, client.account_id(), org_id, &fresh, from, report).await?;
            // Pages are newest first, so calls arriving meanwhile push records down: a record
            // may be seen twice (harmless), never skipped.
            if page.records.is_empty() || offset >= page.total_count {
                break;
            }
        }
        report.windows += 1;
        progress(&BackfillProgress {
            windows_done: done + 1,
            windows_total: windows.len(),
            records: report.records,
        });
    }
    Ok(())
}

/// `[from, to]` cut into consecutive windows of at most `length` (none when empty).
fn windows(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    length: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let length = chrono::Duration::from_std(length)
        .unwrap_or(chrono::Duration::MAX)
        .max(chrono::Duration::seconds(1));
    let mut windows = Vec::new();
    let mut start = from;
    while start < to {
        let end = (start + length).min(to);
        windows.push((start, end));
        start = end;
    }
    windows
}

/// One page of records in one transaction: finished calls queued (or refreshed), the others
/// added to the recheck set.
async fn store_page(
    pool: &Pool,
    account: &str,
    org_id: Uuid,
    records: &[&serde_json::Value],
    range_start: DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<(), RingbaError> {
    let now = Utc::now();
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let mut campaigns = HashMap::new();
    let mut awaiting = Vec::new();
    let mut resolved = Vec::new();
    for value in records {
        report.records += 1;
        let record = match CallLogRecord::parse(value) {
            Ok(record) => record,
            Err(e) => {
                report.invalid.push(e.to_string());
                continue;
            }
        };
        if record.readiness().must_recheck() {
            awaiting.push((record.inbound_call_id.clone(), now));
            continue;
        }
        store_record(&*tx, org_id, &record, None, &mut campaigns, report).await?;
        resolved.push(record.inbound_call_id);
    }
    report.awaiting += awaiting.len();
    cursors::remove_recheck(&*tx, org_id, Source::Ringba, account, &resolved).await?;
    cursors::add_recheck(
        &*tx,
        org_id,
        Source::Ringba,
        account,
        &awaiting,
        range_start,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a finished call (or refreshes a known one). `give_up` forces `skipped` with that
/// reason (a call looked at again for too long).
async fn store_record(
    tx: &impl GenericClient,
    org_id: Uuid,
    record: &CallLogRecord,
    give_up: Option<&str>,
    campaigns: &mut HashMap<String, Uuid>,
    report: &mut IngestReport,
) -> Result<(), RingbaError> {
    let campaign_id = match &record.campaign {
        Some((external_id, name)) => Some(match campaigns.get(external_id) {
            Some(id) => *id,
            None => {
                let id =
                    orgs::ensure_campaign(tx, org_id, Source::Ringba, external_id, name).await?;
                campaigns.insert(external_id.clone(), id);
                id
            }
        }),
        None => None,
    };
    let mut call = record.new_call(org_id, campaign_id);
    if let Some(reason) = give_up {
        call.state = CallState::Skipped;
        call.metadata["skip_reason"] = reason.into();
    }
    let enqueued = links::enqueue(tx, &call, record.recording_url.as_ref()).await?;
    if enqueued.inserted {
        match call.state {
            CallState::Skipped if give_up.is_some() => report.given_up += 1,
            CallState::Skipped => report.without_recording += 1,
            _ => report.queued += 1,
        }
    } else if queue::refresh_metadata(
        tx,
        org_id,
        Source::Ringba,
        &record.inbound_call_id,
        &record.metadata(),
    )
    .await?
    {
        report.refreshed += 1;
    } else {
        report.unchanged += 1;
    }
    Ok(())
}

/// Looks again at the account's recheck set through call details: calls now finished with a
/// link are queued, calls waiting past `recheck_give_up` are kept as `skipped`.
async fn recheck(
    pool: &Pool,
    client: &RingbaClient,
    org_id: Uuid,
    config: &PollConfig,
    now: DateTime<Utc>,
    report: &mut IngestReport,
) -> Result<(), RingbaError> {
    let account = client.account_id();
    let mut pending = {
        let db = pool.get().await?;
        match cursors::load(&**db, org_id, Source::Ringba, account).await? {
            Some(cursor) => cursor.recheck,
            None => return Ok(()),
        }
    };
    // Calls this poll's windows just saw are as the call log showed them a moment ago: asking
    // again now would spend the call-details budget to learn nothing.
    pending.retain(|(_, first_seen)| *first_seen < now);
    let give_up_before = now - config.recheck_give_up;
    for chunk in pending.chunks(DETAILS_PER_REQUEST) {
        let ids: Vec<String> = chunk.iter().map(|(id, _)| id.clone()).collect();
        let records: HashMap<String, CallLogRecord> = client
            .call_details(&ids)
            .await?
            .iter()
            .filter_map(|value| match CallLogRecord::parse(value) {
                Ok(record) => Some((record.inbound_call_id.clone(), record)),
                Err(e) => {
                    report.invalid.push(e.to_string());
                    None
                }
            })
            .collect();
        let mut db = pool.get().await?;
        let tx = db.transaction().await?;
        let mut campaigns = HashMap::new();
        let mut done = Vec::new();
        for (id, first_seen) in chunk {
            let expired = *first_seen < give_up_before;
            match records.get(id) {
                Some(record) if !record.readiness().must_recheck() => {
                    store_record(&*tx, org_id, record, None, &mut campaigns, report).await?;
                    report.resolved += 1;
                    done.push(id.clone());
                }
                Some(record) if expired => {
                    let reason = match record.readiness() {
                        Readiness::Live => "Ringba still showed the call as live",
                        _ => "Ringba never published the recording link",
                    };
                    let reason = format!(
                        "{reason} within {} h of first seeing it",
                        config.recheck_give_up.as_secs() / 3600
                    );
                    store_record(&*tx, org_id, record, Some(&reason), &mut campaigns, report)
                        .await?;
                    done.push(id.clone());
                }
                None if expired => {
                    report.invalid.push(format!(
                        "Ringba record {id}: no longer returned by call details"
                    ));
                    done.push(id.clone());
                }
                _ => {}
            }
        }
        cursors::remove_recheck(&*tx, org_id, Source::Ringba, account, &done).await?;
        tx.commit().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_range_without_gaps() {
        let from = DateTime::from_timestamp(0, 0).unwrap();
        let to = from + chrono::Duration::hours(13);
        let cut = windows(from, to, Duration::from_secs(6 * 3600));
        assert_eq!(cut.len(), 3);
        assert_eq!(cut[0].0, from);
        assert_eq!(cut[2].1, to);
        assert!(cut.windows(2).all(|w| w[0].1 == w[1].0));
        assert!(windows(to, from, Duration::from_secs(60)).is_empty());
    }
}
