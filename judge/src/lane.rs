//! The judge lane: claims `transcribed` calls, evaluates the rulebook over each transcript,
//! redacts payment-card numbers in the stored transcript, writes the flags and moves the call to
//! `judged`, all in one transaction that starts with the fenced `complete`: a judge whose lease
//! was rescued writes nothing.
//!
//! Findings are computed on the transcript as transcribed (the card rule must see the digits),
//! then the stored text is redacted; evidence never holds more than a card's last four digits.
//!
//! Each call is judged by its campaign's stored rulebook, else its organization's, else the
//! compiled-in one ([`crate::rulebook_store::for_call`]), unless the lane was given one rulebook
//! for every call. The same transaction assesses the call as a lead ([`crate::lead`]) and writes
//! the CRM rows ([`crate::crm`]) with follow-ups in the organization's time zone.

use std::time::Duration;

use callscript_core::db::{DatabaseUrl, DbError, Pool};
use callscript_core::model::Lane;
use callscript_core::queue::{self, ClaimRequest, Claimed, Failed, QueueError, Retry};
use callscript_core::transcripts;
use tokio::sync::watch;
use uuid::Uuid;

use crate::crm::{call_facts, org_timezone, record_call, OrgTimezoneError};
use crate::flags::replace_machine_flags;
use crate::lead::{assess, Temperature};
use crate::rulebook_store::{self, RulebookStoreError};
use crate::{redact_payment_cards, Rulebook};
use callscript_notify::{enqueue_compliance_flags, enqueue_event, Event};

#[derive(Debug, Clone)]
pub struct JudgeConfig {
    /// Who holds the leases (shown in the queue).
    pub worker: String,
    pub batch_size: i64,
    pub lease_for: Duration,
    /// Only this organization's calls.
    pub org_id: Option<Uuid>,
    /// How often an idle lane looks for work when notifications are missed.
    pub poll_interval: Duration,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            worker: format!("judge-{}", std::process::id()),
            batch_size: 32,
            lease_for: Duration::from_secs(60),
            org_id: None,
            poll_interval: Duration::from_secs(5),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JudgeReport {
    pub judged: usize,
    /// Calls with at least one flag written now.
    pub flagged: usize,
    pub flags: usize,
    /// Card numbers redacted in stored transcripts.
    pub redacted: usize,
    pub failed: usize,
    /// Leases rescued while judging: nothing was written.
    pub lost: usize,
    /// Leads first seen now, and calls that left their lead hot.
    pub new_leads: usize,
    pub hot: usize,
    /// Follow-ups planned, and pending ones cancelled by do-not-call requests.
    pub actions: usize,
    pub cancelled: usize,
    pub conversions: usize,
    /// Messages queued in the outbox (critical flags, hot leads) for `callscript notify`.
    pub notifications: usize,
}

impl JudgeReport {
    fn add(&mut self, other: &JudgeReport) {
        self.judged += other.judged;
        self.flagged += other.flagged;
        self.flags += other.flags;
        self.redacted += other.redacted;
        self.failed += other.failed;
        self.lost += other.lost;
        self.new_leads += other.new_leads;
        self.hot += other.hot;
        self.actions += other.actions;
        self.cancelled += other.cancelled;
        self.conversions += other.conversions;
        self.notifications += other.notifications;
    }
}

pub struct JudgeLane {
    pub pool: Pool,
    pub database_url: DatabaseUrl,
    /// One rulebook for every call instead of the stored ones (`judge --rulebook FILE`).
    pub rulebook: Option<Rulebook>,
    pub config: JudgeConfig,
}

impl JudgeLane {
    /// Runs until `stop` turns true (after the batch in hand), or with `until_idle`, until no
    /// call is ready.
    pub async fn run(
        &self,
        until_idle: bool,
        stop: watch::Receiver<bool>,
    ) -> Result<JudgeReport, QueueError> {
        let mut report = JudgeReport::default();
        queue::run_batches(
            &self.database_url,
            Lane::Judge,
            self.config.poll_interval,
            until_idle,
            stop,
            || self.run_batch(),
            |batch| report.add(&batch),
        )
        .await?;
        Ok(report)
    }

    /// Claims one batch and judges it; `None` when nothing was ready.
    pub async fn run_batch(&self) -> Result<Option<JudgeReport>, QueueError> {
        let claimed = {
            let client = self.pool.get().await?;
            queue::claim(
                &**client,
                &ClaimRequest {
                    lane: Lane::Judge,
                    worker: &self.config.worker,
                    batch_size: self.config.batch_size,
                    lease_for: self.config.lease_for,
                    org_id: self.config.org_id,
                },
            )
            .await?
        };
        if claimed.is_empty() {
            return Ok(None);
        }
        let mut report = JudgeReport::default();
        for claimed in claimed {
            let lease = claimed.lease.clone();
            match self.judge_one(&claimed).await {
                Ok(Some(judged)) => report.add(&judged),
                Ok(None) => report.lost += 1,
                Err(e) => {
                    // The call alone fails; the batch goes on.
                    let error = format!("judging: {e}");
                    tracing::warn!(call = %lease.call_id, "{error}");
                    // Without a transcript there is nothing to judge however often it is tried.
                    let retry = match e {
                        JudgeError::NoTranscript => Retry::Never,
                        _ => Retry::WithBackoff,
                    };
                    let client = self.pool.get().await?;
                    match queue::fail(&**client, &lease, &error, retry).await {
                        Ok(Failed::WillRetry { .. } | Failed::DeadLettered) => report.failed += 1,
                        Err(QueueError::LeaseLost { .. }) => report.lost += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(Some(report))
    }

    /// Judges one call in one transaction; `None` when its lease was lost.
    async fn judge_one(&self, claimed: &Claimed) -> Result<Option<JudgeReport>, JudgeError> {
        let call = &claimed.call;
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let transaction = client.transaction().await.map_err(DbError::from)?;
        match queue::complete(&*transaction, &claimed.lease).await {
            Err(QueueError::LeaseLost { .. }) => return Ok(None),
            other => other?,
        }
        let mut transcript = transcripts::load(&*transaction, call.id)
            .await?
            .ok_or(JudgeError::NoTranscript)?;
        let rulebook = match &self.rulebook {
            Some(rulebook) => rulebook.clone(),
            None => rulebook_store::for_call(&*transaction, call.org_id, call.campaign_id).await?,
        };
        let timezone = org_timezone(&*transaction, call.org_id).await?;
        let findings = rulebook.evaluate(&transcript.segments, call.duration_ms);
        let facts = call_facts(call);
        let assessment = assess(
            &transcript.segments,
            &facts,
            call.call_started_at.with_timezone(&timezone),
        );
        let redacted = redact_payment_cards(&mut transcript.segments);
        if redacted > 0 {
            // The worker stores a transcript's text as its segments' texts joined by spaces.
            transcript.text = transcript
                .segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            transcripts::save(&*transaction, &transcript).await?;
        }
        let counts = replace_machine_flags(
            &*transaction,
            call.id,
            call.org_id,
            &rulebook.reference(),
            &findings,
        )
        .await?;
        let crm = record_call(
            &*transaction,
            call,
            &transcript.text,
            &facts,
            &assessment,
            timezone,
        )
        .await?;
        // Told in the transaction of the facts, so a rolled-back judgement tells nobody.
        let mut notifications =
            enqueue_compliance_flags(&*transaction, call.org_id, call.id).await?;
        if crm.turned_hot {
            let hot = Event::HotLead {
                lead_id: crm.lead_id,
                call_id: call.id,
                phone: call
                    .caller_number
                    .clone()
                    .unwrap_or_else(|| "(no number)".into()),
                score: assessment.score,
                follow_up_due: crm
                    .follow_up_due
                    .map(|due| due.with_timezone(&timezone).fixed_offset()),
                summary: assessment.summary.clone(),
            };
            notifications += enqueue_event(&*transaction, call.org_id, &hot).await?;
        }
        transaction.commit().await.map_err(DbError::from)?;
        Ok(Some(JudgeReport {
            judged: 1,
            flagged: usize::from(counts.written > 0),
            flags: counts.written,
            redacted,
            new_leads: usize::from(crm.new_lead),
            hot: usize::from(assessment.temperature == Temperature::Hot),
            actions: crm.actions,
            cancelled: crm.cancelled,
            conversions: crm.conversions,
            notifications,
            ..JudgeReport::default()
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("the call has no stored transcript")]
    NoTranscript,
    #[error("the rulebook: {0}")]
    Rulebook(#[from] RulebookStoreError),
    #[error(transparent)]
    Timezone(#[from] OrgTimezoneError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Db(#[from] DbError),
}
