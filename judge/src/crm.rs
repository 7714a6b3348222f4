//! The judge's sales output: one judged call → its lead, the call as a communication, the
//! follow-ups it asks for and the conversions it shows, in the `crm` tables.
//!
//! Everything is written inside the judge's transaction and keyed by the call, so judging a
//! call again (a new rulebook, a redo) updates what it wrote before instead of adding to it:
//! the communication is unique per call, follow-ups per (call, type), conversions per (call,
//! type). What people did is kept: a follow-up already done or cancelled is not reopened.
//!
//! A lead is the customer: one per phone number within an organization; a call without a number
//! (an upload) gets a lead of its own. The lead's score, temperature and signals are those of its
//! latest call, so an old call judged again does not overwrite a newer impression. A
//! do-not-call request is final: the lead is marked, its pending follow-ups are cancelled and no
//! new ones are planned for it.

use callscript_core::db::DbError;
use callscript_core::model::Source;
use callscript_core::queue::Call;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::followup::next_business_day_at;
use crate::lead::{CallFacts, Disposition, LeadAssessment, Temperature};

/// A hot lead not asking for a time is called back while the interest lasts.
const HOT_FOLLOW_UP_AFTER: Duration = Duration::hours(1);
/// A warm lead is called the next business day at this local hour.
const WARM_FOLLOW_UP_HOUR: u32 = 10;
/// A customer who asked to be called back outranks a lead of the same score who did not.
const CALLBACK_PRIORITY_BONUS: i32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum OrgTimezoneError {
    #[error("no organization {0}")]
    UnknownOrg(Uuid),
    #[error(
        "the organization's time zone {0:?} is not an IANA name (e.g. America/New_York); fix it \
         with `callscript org set SLUG --timezone …`"
    )]
    NotIana(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The organization's IANA time zone, which follow-ups and daily reports are read in.
pub async fn org_timezone(
    client: &impl GenericClient,
    org_id: Uuid,
) -> Result<Tz, OrgTimezoneError> {
    let name: String = client
        .query_opt(
            "SELECT timezone FROM core.organizations WHERE id = $1",
            &[&org_id],
        )
        .await
        .map_err(DbError::from)?
        .ok_or(OrgTimezoneError::UnknownOrg(org_id))?
        .get(0);
    name.parse().map_err(|_| OrgTimezoneError::NotIana(name))
}

/// What [`record_call`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmOutcome {
    pub lead_id: Uuid,
    /// The lead did not exist before this call.
    pub new_lead: bool,
    /// Follow-ups planned for this call (inserted or updated).
    pub actions: usize,
    /// Pending follow-ups cancelled by a do-not-call request.
    pub cancelled: usize,
    pub conversions: usize,
    /// The lead was not hot before this call and is now: sales are told (the outbox).
    pub turned_hot: bool,
    /// When the first follow-up planned for this call is due.
    pub follow_up_due: Option<DateTime<Utc>>,
}

/// A follow-up the call asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    /// "callback" when the customer asked for one, "follow-up" otherwise.
    pub action_type: &'static str,
    pub due_at: DateTime<Utc>,
    /// 0-100: the interest score, raised when the customer asked.
    pub priority: i16,
    /// "high" (asked, or hot), "medium" (warm).
    pub urgency: &'static str,
    pub note: String,
    pub source_text: Option<String>,
}

/// The follow-ups an assessment calls for: the customer's own callback request, else one for a
/// hot lead within the hour and one for a warm lead on the next business day; none for a cold
/// lead, a sale already made or a do-not-call request.
pub fn plan_actions(
    assessment: &LeadAssessment,
    call_ended_at: DateTime<Utc>,
    timezone: Tz,
) -> Vec<PlannedAction> {
    if assessment.do_not_call.is_some() || assessment.disposition == Disposition::Sale {
        return Vec::new();
    }
    let score = i32::from(assessment.score);
    if let Some(callback) = &assessment.follow_up {
        let when = if callback.explicit_time {
            "at the time they asked"
        } else {
            "no time given: next business morning"
        };
        return vec![PlannedAction {
            action_type: "callback",
            due_at: callback.due.with_timezone(&Utc),
            priority: (score + CALLBACK_PRIORITY_BONUS).clamp(0, 100) as i16,
            urgency: "high",
            note: format!("the customer asked to be called back ({when})"),
            source_text: Some(callback.source_text.clone()),
        }];
    }
    let (due_at, urgency, note) = match assessment.temperature {
        Temperature::Hot => (
            call_ended_at + HOT_FOLLOW_UP_AFTER,
            "high",
            "hot lead: call back within the hour",
        ),
        Temperature::Warm => (
            next_business_day_at(call_ended_at.with_timezone(&timezone), WARM_FOLLOW_UP_HOUR)
                .with_timezone(&Utc),
            "medium",
            "warm lead: call back the next business day",
        ),
        Temperature::Cold => return Vec::new(),
    };
    vec![PlannedAction {
        action_type: "follow-up",
        due_at,
        priority: score as i16,
        urgency,
        note: note.to_owned(),
        source_text: None,
    }]
}

/// A conversion the call shows.
#[derive(Debug, Clone, PartialEq)]
struct Conversion {
    event_type: &'static str,
    value: Option<f64>,
    metadata: Value,
}

/// What the call's source knows of its outcome: Ringba's call log says whether the buyer
/// counted the call as converted, and for how much.
pub fn call_facts(call: &Call) -> CallFacts {
    let ringba = &call.metadata["ringba"];
    CallFacts {
        duration_ms: call.duration_ms,
        converted: ringba["hasConverted"].as_bool() == Some(true),
        // Ringba reports 0 when the buyer set no conversion value.
        conversion_value: ringba["conversionAmount"].as_f64().filter(|v| *v > 0.0),
    }
}

fn conversions(call: &Call, facts: &CallFacts, assessment: &LeadAssessment) -> Vec<Conversion> {
    let mut out = Vec::new();
    if facts.converted {
        out.push(Conversion {
            event_type: "vendor-conversion",
            value: facts.conversion_value,
            metadata: json!({"source": call.source.as_str()}),
        });
    }
    if let Some(commitment) = &assessment.commitment {
        out.push(Conversion {
            event_type: "verbal-commitment",
            value: None,
            metadata: json!({
                "evidence": commitment.text,
                "start_ms": commitment.start_ms,
            }),
        });
    }
    out
}

/// The words stored with a call's communication.
#[derive(Debug, Clone, PartialEq)]
pub struct CallNotes<'a> {
    /// The stored (redacted) transcript text.
    pub transcript: &'a str,
    /// The LLM brain's summary when it answered, else the rule engine's.
    pub summary: &'a str,
    /// The brain's review with its model ([`crate::brain::CallReview::stored`]); `None` when
    /// the rule engine alone judged the call.
    pub brain: Option<Value>,
}

/// Writes the call's lead, communication, follow-ups and conversions; call it inside the
/// judge's transaction.
pub async fn record_call(
    client: &impl GenericClient,
    call: &Call,
    notes: &CallNotes<'_>,
    facts: &CallFacts,
    assessment: &LeadAssessment,
    timezone: Tz,
) -> Result<CrmOutcome, DbError> {
    let (lead_id, new_lead) = lead_for(client, call).await?;
    let mut cancelled = 0;
    if let Some(request) = &assessment.do_not_call {
        client
            .execute(
                "UPDATE crm.leads SET do_not_call = true, status = 'do_not_call' WHERE id = $1",
                &[&lead_id],
            )
            .await?;
        let note = format!(
            "cancelled: the customer asked not to be called (\"{}\", call {} at {})",
            request.text,
            call.id,
            clock(request.start_ms)
        );
        cancelled = client
            .execute(
                "UPDATE crm.scheduled_actions SET status = 'cancelled', note = $2
                 WHERE lead_id = $1 AND status = 'pending'",
                &[&lead_id, &note],
            )
            .await? as usize;
    }
    let do_not_call: bool = client
        .query_one(
            "SELECT do_not_call FROM crm.leads WHERE id = $1",
            &[&lead_id],
        )
        .await?
        .get(0);
    let call_ended_at =
        call.call_started_at + Duration::milliseconds(i64::from(call.duration_ms.unwrap_or(0)));
    let actions = if do_not_call {
        Vec::new()
    } else {
        plan_actions(assessment, call_ended_at, timezone)
    };
    let conversions = conversions(call, facts, assessment);
    let outcome = outcome(&actions, &conversions, do_not_call, timezone);
    write_communication(client, call, lead_id, notes, assessment, &outcome).await?;
    write_actions(client, call, lead_id, &actions).await?;
    write_conversions(client, call, lead_id, &conversions).await?;
    let hot_before = is_hot(client, lead_id).await?;
    update_lead(client, lead_id).await?;
    let turned_hot = !hot_before && is_hot(client, lead_id).await?;
    Ok(CrmOutcome {
        lead_id,
        new_lead,
        actions: actions.len(),
        cancelled,
        conversions: conversions.len(),
        turned_hot,
        follow_up_due: actions.first().map(|a| a.due_at),
    })
}

async fn is_hot(client: &impl GenericClient, lead_id: Uuid) -> Result<bool, DbError> {
    Ok(client
        .query_one(
            "SELECT temperature IS NOT DISTINCT FROM 'hot' FROM crm.leads WHERE id = $1",
            &[&lead_id],
        )
        .await?
        .get(0))
}

/// What came of the call, for the communication's `outcome`: the conversion, else the
/// follow-up it led to.
fn outcome(
    actions: &[PlannedAction],
    conversions: &[Conversion],
    do_not_call: bool,
    timezone: Tz,
) -> String {
    if do_not_call {
        return "do not call".to_owned();
    }
    if let Some(conversion) = conversions.first() {
        return conversion.event_type.replace('-', " ");
    }
    match actions.first() {
        Some(action) => format!(
            "{} due {}",
            action.action_type,
            action
                .due_at
                .with_timezone(&timezone)
                .format("%a %Y-%m-%d %H:%M %Z")
        ),
        None => "no follow-up".to_owned(),
    }
}

/// "m:ss" into the call.
pub(crate) fn clock(ms: i32) -> String {
    let seconds = ms.max(0) / 1000;
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// The call's lead: the one it was recorded under before, else the customer's by phone number,
/// else a new one.
async fn lead_for(client: &impl GenericClient, call: &Call) -> Result<(Uuid, bool), DbError> {
    if let Some(row) = client
        .query_opt(
            "SELECT lead_id FROM crm.lead_communications WHERE call_id = $1",
            &[&call.id],
        )
        .await?
    {
        return Ok((row.get(0), false));
    }
    // `xmax = 0` tells an inserted row from one the conflict clause updated.
    let row = client
        .query_one(
            "INSERT INTO crm.leads (org_id, campaign_id, lead_source, phone_number)
             VALUES ($1, $2, $3::text::core.call_source, $4)
             ON CONFLICT (org_id, phone_number)
             DO UPDATE SET campaign_id = COALESCE(crm.leads.campaign_id, EXCLUDED.campaign_id)
             RETURNING id, (xmax = 0) AS inserted",
            &[
                &call.org_id,
                &call.campaign_id,
                &call.source.as_str(),
                &customer_number(call),
            ],
        )
        .await?;
    Ok((row.get("id"), row.get("inserted")))
}

/// The customer's number: who called in. Every source we ingest is inbound (Ringba routes
/// callers to buyers; LiveKit rooms record callers).
fn customer_number(call: &Call) -> Option<&str> {
    call.caller_number
        .as_deref()
        .filter(|n| !n.trim().is_empty())
}

async fn write_communication(
    client: &impl GenericClient,
    call: &Call,
    lead_id: Uuid,
    notes: &CallNotes<'_>,
    assessment: &LeadAssessment,
    outcome: &str,
) -> Result<(), DbError> {
    let livekit = |key: &str| -> Option<String> {
        (call.source == Source::Livekit)
            .then(|| call.metadata[key].as_str().map(str::to_owned))
            .flatten()
            .filter(|v| !v.is_empty())
    };
    let duration_seconds = call.duration_ms.map(|ms| (ms + 500) / 1000);
    let signals = serde_json::to_value(&assessment.signals).expect("signals serialize");
    let objections = serde_json::to_value(&assessment.objections).expect("mentions serialize");
    let questions = serde_json::to_value(&assessment.questions).expect("mentions serialize");
    client
        .execute(
            "INSERT INTO crm.lead_communications
               (org_id, lead_id, call_id, channel, direction, duration_seconds, recording_key,
                transcript, summary, disposition, sentiment, outcome, livekit_room_name,
                livekit_room_id, livekit_egress_id, occurred_at, interest_score, temperature,
                score_signals, objections, questions, brain)
             VALUES ($1, $2, $3, 'call', 'inbound', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                     $14, $15, $16::text::crm.lead_temperature, $17, $18, $19, $20)
             ON CONFLICT (call_id) DO UPDATE SET
               duration_seconds = EXCLUDED.duration_seconds,
               recording_key = EXCLUDED.recording_key, transcript = EXCLUDED.transcript,
               summary = EXCLUDED.summary, disposition = EXCLUDED.disposition,
               sentiment = EXCLUDED.sentiment, outcome = EXCLUDED.outcome,
               livekit_room_name = EXCLUDED.livekit_room_name,
               livekit_room_id = EXCLUDED.livekit_room_id,
               livekit_egress_id = EXCLUDED.livekit_egress_id,
               occurred_at = EXCLUDED.occurred_at, interest_score = EXCLUDED.interest_score,
               temperature = EXCLUDED.temperature, score_signals = EXCLUDED.score_signals,
               objections = EXCLUDED.objections, questions = EXCLUDED.questions,
               brain = EXCLUDED.brain",
            &[
                &call.org_id,
                &lead_id,
                &call.id,
                &duration_seconds,
                &call.object_key,
                &notes.transcript,
                &notes.summary,
                &assessment.disposition.as_str(),
                &assessment.sentiment.as_str(),
                &outcome,
                &livekit("room_name"),
                &livekit("room_id"),
                &livekit("egress_id"),
                &call.call_started_at,
                &i16::from(assessment.score),
                &assessment.temperature.as_str(),
                &signals,
                &objections,
                &questions,
                &notes.brain,
            ],
        )
        .await?;
    Ok(())
}

async fn write_actions(
    client: &impl GenericClient,
    call: &Call,
    lead_id: Uuid,
    actions: &[PlannedAction],
) -> Result<(), DbError> {
    let types: Vec<&str> = actions.iter().map(|a| a.action_type).collect();
    // What an earlier judgement planned and this one does not is withdrawn, unless done.
    client
        .execute(
            "DELETE FROM crm.scheduled_actions
             WHERE call_id = $1 AND status = 'pending' AND NOT (action_type = ANY($2))",
            &[&call.id, &types],
        )
        .await?;
    for action in actions {
        client
            .execute(
                "INSERT INTO crm.scheduled_actions
                   (org_id, lead_id, call_id, action_type, due_at, priority, urgency, note,
                    source_text)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (call_id, action_type) WHERE call_id IS NOT NULL DO UPDATE SET
                   due_at = EXCLUDED.due_at, priority = EXCLUDED.priority,
                   urgency = EXCLUDED.urgency, note = EXCLUDED.note,
                   source_text = EXCLUDED.source_text
                 WHERE crm.scheduled_actions.status = 'pending'",
                &[
                    &call.org_id,
                    &lead_id,
                    &call.id,
                    &action.action_type,
                    &action.due_at,
                    &action.priority,
                    &action.urgency,
                    &action.note,
                    &action.source_text,
                ],
            )
            .await?;
    }
    Ok(())
}

async fn write_conversions(
    client: &impl GenericClient,
    call: &Call,
    lead_id: Uuid,
    conversions: &[Conversion],
) -> Result<(), DbError> {
    let types: Vec<&str> = conversions.iter().map(|c| c.event_type).collect();
    client
        .execute(
            "DELETE FROM crm.conversion_events
             WHERE call_id = $1 AND NOT (event_type = ANY($2))",
            &[&call.id, &types],
        )
        .await?;
    for conversion in conversions {
        client
            .execute(
                "INSERT INTO crm.conversion_events
                   (org_id, lead_id, call_id, event_type, value, occurred_at, metadata)
                 VALUES ($1, $2, $3, $4, $5::float8::numeric, $6, $7)
                 ON CONFLICT (call_id, event_type) WHERE call_id IS NOT NULL DO UPDATE SET
                   value = EXCLUDED.value, occurred_at = EXCLUDED.occurred_at,
                   metadata = EXCLUDED.metadata",
                &[
                    &call.org_id,
                    &lead_id,
                    &call.id,
                    &conversion.event_type,
                    &conversion.value,
                    &call.call_started_at,
                    &conversion.metadata,
                ],
            )
            .await?;
    }
    Ok(())
}

/// The lead's score from its latest call, and its status from everything known: do-not-call
/// and converted are final, otherwise a hot lead is qualified and any other contacted.
async fn update_lead(client: &impl GenericClient, lead_id: Uuid) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE crm.leads l SET
               interest_score = latest.interest_score,
               temperature = latest.temperature,
               interest_level = CASE latest.temperature
                 WHEN 'hot' THEN 'high' WHEN 'warm' THEN 'medium' ELSE 'low' END,
               score_signals = latest.score_signals,
               last_contact_at = latest.occurred_at,
               status = CASE
                 WHEN l.do_not_call THEN 'do_not_call'::crm.lead_status
                 WHEN l.status IN ('converted', 'lost') THEN l.status
                 WHEN EXISTS (SELECT 1 FROM crm.conversion_events WHERE lead_id = l.id)
                   THEN 'converted'
                 WHEN latest.temperature = 'hot' THEN 'qualified'
                 ELSE 'contacted' END
             FROM (SELECT interest_score, temperature, score_signals, occurred_at
                   FROM crm.lead_communications WHERE lead_id = $1
                   ORDER BY occurred_at DESC, created_at DESC LIMIT 1) latest
             WHERE l.id = $1",
            &[&lead_id],
        )
        .await?;
    Ok(())
}
