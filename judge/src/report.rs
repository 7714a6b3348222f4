//! Managers' daily summary (`callscript report daily`): one organization's local day of calls,
//! leads, flags, objections and questions, and the follow-ups to work first.
//!
//! The day is the organization's calendar day in its time zone: a call at 23:30 in New York
//! belongs to that day, not to the next UTC one. Calls count by when they took place; leads by
//! the calls with them that day (new when it was their first); follow-ups by when they are due
//! (everything pending until the end of the next day, overdue ones included). The report is
//! stored in `crm.daily_reports` (one per org and day, rewritten when run again) as JSON and as
//! text.

use std::fmt::Write;

use callscript_core::db::DbError;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::crm::{org_timezone, OrgTimezoneError};
use crate::followup::local;

/// How many objections, questions and follow-ups a report lists.
const TOP_MENTIONS: i64 = 5;
const TOP_ACTIONS: i64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyReport {
    pub org_id: Uuid,
    pub org_slug: String,
    pub day: NaiveDate,
    pub timezone: String,
    pub calls: CallCounts,
    pub leads: LeadCounts,
    pub flags_by_rule: Vec<RuleCount>,
    pub top_objections: Vec<LabelCount>,
    pub top_questions: Vec<LabelCount>,
    pub conversions: i64,
    pub conversion_value: f64,
    /// Pending follow-ups due by the end of the next day, most important first.
    pub actions: Vec<ActionItem>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// Calls that took place that day, any state.
    pub total: i64,
    pub judged: i64,
    /// Judged calls with a flag nobody dismissed.
    pub flagged: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeadCounts {
    /// First contacted that day (a backfilled day counts its leads as new then).
    pub new: i64,
    /// Contacted that day, by their temperature now.
    pub hot: i64,
    pub warm: i64,
    pub cold: i64,
    /// Asked that day not to be called.
    pub do_not_call: i64,
}

/// One rule's flags on the day's calls. The judge raises one flag per finding (hits of a rule
/// in one moment are one), so `flags` counts findings and `calls` the calls that had any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleCount {
    pub rule_id: String,
    pub severity: String,
    pub flags: i64,
    pub calls: i64,
    /// Flags not yet confirmed or dismissed by a reviewer.
    pub open: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelCount {
    pub label: String,
    pub count: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionItem {
    pub priority: i16,
    pub urgency: Option<String>,
    /// "overdue" when due before the report was made.
    pub overdue: bool,
    pub due_at: DateTime<Utc>,
    pub action_type: String,
    pub phone_number: Option<String>,
    pub temperature: Option<String>,
    pub note: Option<String>,
    pub source_text: Option<String>,
    pub call_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Timezone(#[from] OrgTimezoneError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for ReportError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReportError::Db(e.into())
    }
}

fn plural(count: i64, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 {
        one
    } else {
        many
    }
}

/// The UTC instants of local midnight at the start of `day` and of the next day.
fn day_bounds(day: NaiveDate, timezone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    // Where a zone skips midnight (DST at 00:00), the day starts when the clocks resume.
    let midnight = |date: NaiveDate| local(timezone, date, NaiveTime::MIN).with_timezone(&Utc);
    (midnight(day), midnight(day + Duration::days(1)))
}

/// Computes the report of `org_id` for its local `day`; `now` decides which follow-ups are
/// overdue.
pub async fn daily(
    client: &impl GenericClient,
    org_id: Uuid,
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Result<DailyReport, ReportError> {
    let timezone = org_timezone(client, org_id).await?;
    let org_slug: String = client
        .query_one(
            "SELECT slug FROM core.organizations WHERE id = $1",
            &[&org_id],
        )
        .await?
        .get(0);
    let (from, to) = day_bounds(day, timezone);
    let (_, actions_until) = day_bounds(day + Duration::days(1), timezone);

    let row = client
        .query_one(
            "SELECT count(*),
                    count(*) FILTER (WHERE state = 'judged'),
                    count(*) FILTER (WHERE state = 'judged' AND flagged),
                    count(*) FILTER (WHERE state = 'failed')
             FROM core.calls
             WHERE org_id = $1 AND call_started_at >= $2 AND call_started_at < $3",
            &[&org_id, &from, &to],
        )
        .await?;
    let calls = CallCounts {
        total: row.get(0),
        judged: row.get(1),
        flagged: row.get(2),
        failed: row.get(3),
    };

    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE first_contact >= $2),
                    count(*) FILTER (WHERE temperature = 'hot'),
                    count(*) FILTER (WHERE temperature = 'warm'),
                    count(*) FILTER (WHERE temperature = 'cold'),
                    count(*) FILTER (WHERE asked_not_to_call)
             FROM (SELECT l.temperature,
                          (SELECT min(m.occurred_at) FROM crm.lead_communications m
                           WHERE m.lead_id = l.id) AS first_contact,
                          bool_or(m.disposition = 'do-not-call') AS asked_not_to_call
                   FROM crm.leads l JOIN crm.lead_communications m ON m.lead_id = l.id
                   WHERE l.org_id = $1 AND m.occurred_at >= $2 AND m.occurred_at < $3
                   GROUP BY l.id) contacted",
            &[&org_id, &from, &to],
        )
        .await?;
    let leads = LeadCounts {
        new: row.get(0),
        hot: row.get(1),
        warm: row.get(2),
        cold: row.get(3),
        do_not_call: row.get(4),
    };

    let flags_by_rule = client
        .query(
            "SELECT f.rule_id, max(f.severity)::text, count(*), count(DISTINCT f.call_id),
                    count(*) FILTER (WHERE f.review_status = 'open')
             FROM core.qa_flags f JOIN core.calls c ON c.id = f.call_id
             WHERE f.org_id = $1 AND c.call_started_at >= $2 AND c.call_started_at < $3
             GROUP BY f.rule_id
             ORDER BY max(f.severity) DESC, count(*) DESC, f.rule_id",
            &[&org_id, &from, &to],
        )
        .await?
        .iter()
        .map(|row| RuleCount {
            rule_id: row.get(0),
            severity: row.get(1),
            flags: row.get(2),
            calls: row.get(3),
            open: row.get(4),
        })
        .collect();

    let mentions = |column: &'static str| {
        format!(
            "SELECT mention->>'label' AS label, count(*)
             FROM crm.lead_communications m, jsonb_array_elements(m.{column}) AS mention
             WHERE m.org_id = $1 AND m.occurred_at >= $2 AND m.occurred_at < $3
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $4"
        )
    };
    let label_counts = |rows: Vec<tokio_postgres::Row>| -> Vec<LabelCount> {
        rows.iter()
            .map(|row| LabelCount {
                label: row.get(0),
                count: row.get(1),
            })
            .collect()
    };
    let top_objections = label_counts(
        client
            .query(
                &mentions("objections"),
                &[&org_id, &from, &to, &TOP_MENTIONS],
            )
            .await?,
    );
    let top_questions = label_counts(
        client
            .query(
                &mentions("questions"),
                &[&org_id, &from, &to, &TOP_MENTIONS],
            )
            .await?,
    );

    let row = client
        .query_one(
            "SELECT count(*), COALESCE(sum(value), 0)::float8 FROM crm.conversion_events
             WHERE org_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
            &[&org_id, &from, &to],
        )
        .await?;
    let (conversions, conversion_value) = (row.get(0), row.get(1));

    let actions = client
        .query(
            "SELECT a.priority, a.urgency, a.due_at, a.action_type, l.phone_number,
                    l.temperature::text, a.note, a.source_text, a.call_id
             FROM crm.scheduled_actions a JOIN crm.leads l ON l.id = a.lead_id
             WHERE a.org_id = $1 AND a.status = 'pending' AND a.due_at < $2
               AND NOT l.do_not_call
             ORDER BY a.priority DESC, a.due_at, a.id
             LIMIT $3",
            &[&org_id, &actions_until, &TOP_ACTIONS],
        )
        .await?
        .iter()
        .map(|row| {
            let due_at: DateTime<Utc> = row.get(2);
            ActionItem {
                priority: row.get(0),
                urgency: row.get(1),
                overdue: due_at < now,
                due_at,
                action_type: row.get(3),
                phone_number: row.get(4),
                temperature: row.get(5),
                note: row.get(6),
                source_text: row.get(7),
                call_id: row.get(8),
            }
        })
        .collect();

    Ok(DailyReport {
        org_id,
        org_slug,
        day,
        timezone: timezone.name().to_owned(),
        calls,
        leads,
        flags_by_rule,
        top_objections,
        top_questions,
        conversions,
        conversion_value,
        actions,
    })
}

impl DailyReport {
    /// The report as a manager reads it in a terminal or an email.
    pub fn to_text(&self) -> String {
        let timezone: Tz = self.timezone.parse().unwrap_or(Tz::UTC);
        let mut out = String::new();
        let c = &self.calls;
        let l = &self.leads;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{} — {} ({})", self.org_slug, self.day, self.timezone);
        let _ = writeln!(
            out,
            "calls: {} ({} judged, {} flagged, {} failed)",
            c.total, c.judged, c.flagged, c.failed
        );
        let _ = writeln!(
            out,
            "leads: {} new; contacted: {} hot, {} warm, {} cold; {} asked not to be called",
            l.new, l.hot, l.warm, l.cold, l.do_not_call
        );
        let _ = writeln!(
            out,
            "conversions: {} (value {:.2})",
            self.conversions, self.conversion_value
        );
        let _ = writeln!(out, "\nflags by rule (one flag per finding):");
        if self.flags_by_rule.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for rule in &self.flags_by_rule {
            let _ = writeln!(
                out,
                "  {:<36} {:<8} {:>4} {} on {} {} ({} open)",
                rule.rule_id,
                rule.severity,
                rule.flags,
                plural(rule.flags, "flag", "flags"),
                rule.calls,
                plural(rule.calls, "call", "calls"),
                rule.open
            );
        }
        for (title, labels) in [
            ("top objections", &self.top_objections),
            ("top questions", &self.top_questions),
        ] {
            let list: Vec<String> = labels
                .iter()
                .map(|l| format!("{} ({})", l.label, l.count))
                .collect();
            let list = if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(", ")
            };
            let _ = writeln!(out, "{title}: {list}");
        }
        let _ = writeln!(out, "\nfollow-ups (priority, due, lead):");
        if self.actions.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for action in &self.actions {
            let due = action
                .due_at
                .with_timezone(&timezone)
                .format("%a %d %b %H:%M");
            let _ = writeln!(
                out,
                "  {:>3} {:<6} {}{} {:<9} {} [{}] {}",
                action.priority,
                action.urgency.as_deref().unwrap_or("-"),
                due,
                if action.overdue { " OVERDUE" } else { "" },
                action.action_type,
                action.phone_number.as_deref().unwrap_or("(no number)"),
                action.temperature.as_deref().unwrap_or("-"),
                action
                    .source_text
                    .as_deref()
                    .map(|said| format!("\"{said}\""))
                    .or_else(|| action.note.clone())
                    .unwrap_or_default(),
            );
        }
        out
    }

    /// Stores the report as the organization's report of its day, replacing an earlier one.
    pub async fn store(&self, client: &impl GenericClient) -> Result<(), ReportError> {
        let body = serde_json::to_value(self).expect("reports serialize");
        client
            .execute(
                "INSERT INTO crm.daily_reports (org_id, day, timezone, body, text)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (org_id, day) DO UPDATE SET
                   timezone = EXCLUDED.timezone, body = EXCLUDED.body, text = EXCLUDED.text",
                &[
                    &self.org_id,
                    &self.day,
                    &self.timezone,
                    &body,
                    &self.to_text(),
                ],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_the_local_calendar_day() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let (from, to) = day_bounds(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap(), ny);
        assert_eq!(from.to_rfc3339(), "2026-11-05T05:00:00+00:00");
        assert_eq!(to.to_rfc3339(), "2026-11-06T05:00:00+00:00");
        // The day clocks go back is 25 hours long.
        let (from, to) = day_bounds(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), ny);
        assert_eq!(from.to_rfc3339(), "2026-11-01T04:00:00+00:00");
        assert_eq!(to - from, Duration::hours(25));
        // Santiago skips midnight when summer time starts (2026-09-06 00:00 → 01:00).
        let santiago: Tz = "America/Santiago".parse().unwrap();
        let (from, _) = day_bounds(NaiveDate::from_ymd_opt(2026, 9, 6).unwrap(), santiago);
        assert_eq!(from.to_rfc3339(), "2026-09-06T04:00:00+00:00");
    }
}
