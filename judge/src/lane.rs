//! The judge lane: claims `transcribed` calls, redacts card and social security numbers in the
//! stored transcript, evaluates the rulebook over it, writes the flags and moves the call to
//! `judged`, all in one transaction that starts with the fenced `complete`: a judge whose lease
//! was rescued writes nothing.
//!
//! Numbers are found on the transcript as transcribed and stored as findings of their own
//! ([`crate::pii`]) in the transaction that stores the redacted text; everything else (rules,
//! lead, brain, CRM copy) reads the redacted text with those findings. Judging the call again
//! reads the stored findings, so its card and social security flags come back the same, and no
//! flag, finding, summary or prompt holds more than a number's last four digits.
//!
//! A call whose speaker roles the worker assigned with low confidence (`role_confidence`) is
//! judged with its roles read as unknown and gets a [`ROLES_UNCERTAIN_FLAG`] flag for review.
//!
//! Each call is judged by its campaign's stored rulebook, else its organization's, else the
//! compiled-in one ([`crate::rulebook_store::for_call`]), unless the lane was given one rulebook
//! for every call. The same transaction assesses the call as a lead ([`crate::lead`]) and writes
//! the CRM rows ([`crate::crm`]) with follow-ups in the organization's time zone.
//!
//! A batch is judged in three steps: every call is read and evaluated (no transaction: the
//! lease keeps others off the call), the LLM brain is asked about all of them at once when one
//! is configured ([`crate::brain`]), then each call is written in its own transaction. No
//! transaction waits on the network, and the batch's leases are renewed while the brain
//! answers, so slow answers cannot cost later calls their leases.

use std::time::Duration;

use callscript_core::db::{DatabaseUrl, DbError, Pool};
use callscript_core::model::Lane;
use callscript_core::queue::{
    self, ClaimRequest, Claimed, Failed, LaneLoop, Lease, QueueError, Retry, Until,
};
use callscript_core::transcripts::{self, TranscriptRecord};
use callscript_core::usage;
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use tokio::sync::watch;
use uuid::Uuid;

use crate::brain::{Brain, BrainOutcome, CallContext};
use crate::crm::{call_facts, org_timezone, record_call, CallNotes, OrgTimezoneError};
use crate::flags::replace_machine_flags;
use crate::lead::{assess, CallFacts, LeadAssessment, Temperature};
use crate::pii::{self, PiiFinding, DETECTED_BY_JUDGE};
use crate::rulebook_store::{self, RulebookStoreError};
use crate::transcript::Transcript;
use crate::{redact, Category, Finding, Redaction, Rulebook, Severity};
use callscript_notify::{enqueue_compliance_flags, enqueue_event, Event};

/// Requests in flight to the brain at once: enough to keep a vLLM server's batch busy, few
/// enough for a llama.cpp server with a handful of slots to queue the rest briefly.
const BRAIN_CONCURRENCY: usize = 8;

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
    /// Card and social security numbers redacted in stored transcripts.
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
    /// Judged calls the LLM brain summarized, and those left with the rule summary because its
    /// answer was late, failed or did not fit the schema.
    pub brain_answers: usize,
    pub brain_fallbacks: usize,
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
        self.brain_answers += other.brain_answers;
        self.brain_fallbacks += other.brain_fallbacks;
    }
}

pub struct JudgeLane {
    pub pool: Pool,
    pub database_url: DatabaseUrl,
    /// One rulebook for every call instead of the stored ones (`judge --rulebook FILE`).
    pub rulebook: Option<Rulebook>,
    /// The LLM asked for each call's summary, objections and next best action; without one the
    /// rule engine's summary is stored.
    pub brain: Option<Brain>,
    pub config: JudgeConfig,
}

/// A call read and evaluated, ready to be written.
struct Judgement {
    /// As it will be stored: card and social security numbers redacted.
    transcript: TranscriptRecord,
    /// The numbers in it, where their labels stand.
    pii: Vec<PiiFinding>,
    /// Numbers redacted now: the transcript and `pii` are to be stored.
    redacted: usize,
    rulebook: String,
    timezone: Tz,
    findings: Vec<Finding>,
    facts: CallFacts,
    assessment: LeadAssessment,
}

impl Judgement {
    fn context(&self) -> CallContext<'_> {
        CallContext {
            segments: &self.transcript.segments,
            findings: &self.findings,
            assessment: &self.assessment,
        }
    }
}

impl JudgeLane {
    /// Runs until `stop` turns true (after the batch in hand), or with [`Until::Idle`], until no
    /// call is ready or falls due within the wait (see `core::queue::IdleWatch`).
    pub async fn run(
        &self,
        until: Until,
        stop: watch::Receiver<bool>,
    ) -> Result<JudgeReport, QueueError> {
        let mut report = JudgeReport::default();
        queue::run_batches(
            LaneLoop {
                database_url: &self.database_url,
                pool: &self.pool,
                lane: Lane::Judge,
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
        let mut evaluated = Vec::with_capacity(claimed.len());
        for claimed in claimed {
            match self.evaluate(&claimed).await {
                Ok(judgement) => evaluated.push((claimed, judgement)),
                Err(e) => self.fail(&claimed.lease, e, &mut report).await?,
            }
        }
        let outcomes: Vec<Option<BrainOutcome>> = match &self.brain {
            Some(brain) => self
                .ask(brain, &evaluated)
                .await
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; evaluated.len()],
        };
        for ((claimed, judgement), outcome) in evaluated.into_iter().zip(outcomes) {
            match self.write(&claimed, judgement, outcome.as_ref()).await {
                Ok(Some(judged)) => report.add(&judged),
                Ok(None) => report.lost += 1,
                Err(e) => self.fail(&claimed.lease, e, &mut report).await?,
            }
        }
        Ok(Some(report))
    }

    /// Fails one call (the batch goes on), or counts it lost when its lease is gone.
    async fn fail(
        &self,
        lease: &Lease,
        e: JudgeError,
        report: &mut JudgeReport,
    ) -> Result<(), QueueError> {
        let error = format!("judging: {e}");
        tracing::warn!(call = %lease.call_id, "{error}");
        // Without a transcript there is nothing to judge however often it is tried.
        let retry = match e {
            JudgeError::NoTranscript => Retry::Never,
            _ => Retry::WithBackoff,
        };
        let client = self.pool.get().await?;
        match queue::fail(&**client, lease, &error, retry).await {
            Ok(Failed::WillRetry { .. } | Failed::DeadLettered) => report.failed += 1,
            Err(QueueError::LeaseLost { .. }) => report.lost += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Reads the call's transcript, its stored number findings and its rulebook; redacts the
    /// numbers not yet redacted, then evaluates the rules and the lead on the redacted text.
    /// Writes nothing.
    async fn evaluate(&self, claimed: &Claimed) -> Result<Judgement, JudgeError> {
        let call = &claimed.call;
        let client = self.pool.get().await.map_err(DbError::from)?;
        let mut transcript = transcripts::load(&**client, call.id)
            .await?
            .ok_or(JudgeError::NoTranscript)?;
        let stored = pii::load(&**client, call.id).await?;
        let rulebook = match &self.rulebook {
            Some(rulebook) => rulebook.clone(),
            None => rulebook_store::for_call(&**client, call.org_id, call.campaign_id).await?,
        };
        let timezone = org_timezone(&**client, call.org_id).await?;
        let Redaction {
            findings: pii,
            redacted,
        } = redact(&mut transcript.segments, &stored, DETECTED_BY_JUDGE);
        if redacted > 0 {
            // The worker stores a transcript's text as its segments' texts joined by spaces.
            transcript.text = transcript
                .segments
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
        }
        let role_confidence: Option<f32> = client
            .query_opt(
                "SELECT role_confidence FROM core.transcripts WHERE call_id = $1",
                &[&call.id],
            )
            .await
            .map_err(DbError::from)?
            .and_then(|row| row.get(0));
        let read =
            Transcript::read(&transcript.segments, &pii).with_role_confidence(role_confidence);
        let mut findings = rulebook.evaluate_transcript(&read, call.duration_ms);
        if read.roles_uncertain {
            findings.push(roles_uncertain(
                role_confidence.unwrap_or(0.0),
                call.duration_ms,
            ));
        }
        let facts = call_facts(call);
        let assessment = assess(
            &transcript.segments,
            &facts,
            call.call_started_at.with_timezone(&timezone),
        );
        Ok(Judgement {
            transcript,
            pii,
            redacted,
            rulebook: rulebook.reference(),
            timezone,
            findings,
            facts,
            assessment,
        })
    }

    /// Asks the brain about every evaluated call, [`BRAIN_CONCURRENCY`] at a time, renewing
    /// the batch's leases meanwhile; the outcomes are in the calls' order.
    async fn ask(&self, brain: &Brain, evaluated: &[(Claimed, Judgement)]) -> Vec<BrainOutcome> {
        let answers = stream::iter(evaluated)
            .map(|(_, judgement)| brain.review(judgement.context()))
            .buffered(BRAIN_CONCURRENCY)
            .collect::<Vec<_>>();
        tokio::pin!(answers);
        let mut leases: Vec<Lease> = evaluated.iter().map(|(c, _)| c.lease.clone()).collect();
        // Three renewals per lease: one missed renewal (a busy database) loses nothing.
        let every = self.config.lease_for / 3;
        let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcomes = loop {
            tokio::select! {
                outcomes = &mut answers => break outcomes,
                _ = renewals.tick() => self.renew(&mut leases).await,
            }
        };
        for ((claimed, _), outcome) in evaluated.iter().zip(&outcomes) {
            if let BrainOutcome::Fallback { reason, .. } = outcome {
                tracing::warn!(
                    call = %claimed.call.id,
                    "the LLM brain's answer is not used, the rule summary stands: {reason}"
                );
            }
        }
        outcomes
    }

    /// Extends `leases` for another `lease_for`. A lease found lost is left to the write, which
    /// its fence refuses; a failed renewal is retried at the next tick.
    async fn renew(&self, leases: &mut [Lease]) {
        let renewed = async {
            let client = self.pool.get().await?;
            queue::heartbeat(&**client, leases, self.config.lease_for).await
        };
        match renewed.await {
            Ok(report) => {
                for call_id in report.lost {
                    tracing::warn!(%call_id, "lease lost while the LLM brain answered");
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing the batch's leases failed"),
        }
    }

    /// Writes one judged call in one transaction; `None` when its lease was lost.
    async fn write(
        &self,
        claimed: &Claimed,
        judgement: Judgement,
        brain_outcome: Option<&BrainOutcome>,
    ) -> Result<Option<JudgeReport>, JudgeError> {
        let call = &claimed.call;
        let Judgement {
            transcript,
            pii,
            redacted,
            rulebook,
            timezone,
            findings,
            facts,
            assessment,
        } = judgement;
        let review = brain_outcome.and_then(BrainOutcome::review);
        let notes = CallNotes {
            transcript: &transcript.text,
            summary: review.map_or(&assessment.summary, |review| &review.summary),
            brain: self
                .brain
                .as_ref()
                .zip(review)
                .map(|(brain, review)| review.stored(brain.model())),
        };
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let transaction = client.transaction().await.map_err(DbError::from)?;
        match queue::complete(&*transaction, &claimed.lease).await {
            Err(QueueError::LeaseLost { .. }) => return Ok(None),
            other => other?,
        }
        if redacted > 0 {
            transcripts::save(&*transaction, &transcript).await?;
            pii::replace(&*transaction, call.id, call.org_id, &pii).await?;
        }
        let counts =
            replace_machine_flags(&*transaction, call.id, call.org_id, &rulebook, &findings)
                .await?;
        let crm = record_call(&*transaction, call, &notes, &facts, &assessment, timezone).await?;
        // The tokens were spent whether or not the answer is used.
        if let (Some(brain), Some(tokens)) =
            (&self.brain, brain_outcome.and_then(BrainOutcome::usage))
        {
            usage::record(
                &*transaction,
                &brain.usage_record(call.org_id, call.id, tokens),
            )
            .await?;
        }
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
                summary: notes.summary.to_owned(),
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
            brain_answers: usize::from(review.is_some()),
            brain_fallbacks: usize::from(brain_outcome.is_some() && review.is_none()),
            ..JudgeReport::default()
        }))
    }
}

/// The review mark of a call whose speakers' roles are a guess: a flag beside the rulebook's.
pub const ROLES_UNCERTAIN_FLAG: &str = "speaker-roles-uncertain";

/// The finding that marks a call for review because its roles were assigned with `confidence`
/// (under [`crate::transcript::ROLES_CERTAIN_FROM`]).
fn roles_uncertain(confidence: f32, duration_ms: Option<i32>) -> Finding {
    Finding {
        rule_id: ROLES_UNCERTAIN_FLAG.to_owned(),
        category: Category::Quality,
        severity: Severity::Low,
        evidence: format!(
            "speaker roles assigned with confidence {confidence:.2}: who said what needs review; \
             rules about one party read every party"
        ),
        start_ms: Some(0),
        end_ms: duration_ms,
        speaker: None,
        role: None,
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
