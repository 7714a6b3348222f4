//! A call's QA flags as stored: the machine's findings replace the machine's earlier ones in
//! one statement group inside the judge's transaction, and what reviewers touched stays.
//!
//! A flag counts as reviewed once it is confirmed or dismissed, has a reviewer or a note;
//! re-judging (a new rulebook version) deletes only unreviewed flags, and does not add a finding
//! again where a reviewed flag of the same rule at the same time already stands.

use callscript_core::db::DbError;
use callscript_core::flags::refresh_flagged;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::Finding;

/// How many flags a call has after [`replace_machine_flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagCounts {
    /// Machine flags written now.
    pub written: usize,
    /// Reviewed flags kept from earlier judgements.
    pub kept: usize,
}

/// Replaces the call's unreviewed flags by `findings` and sets `core.calls.flagged` (any flag
/// not dismissed). Call it inside the transaction that completes the call's judge lease.
pub async fn replace_machine_flags(
    client: &impl GenericClient,
    call_id: Uuid,
    org_id: Uuid,
    rulebook: &str,
    findings: &[Finding],
) -> Result<FlagCounts, DbError> {
    client
        .execute(
            "DELETE FROM core.qa_flags
             WHERE call_id = $1 AND review_status = 'open' AND reviewer_id IS NULL
               AND note IS NULL",
            &[&call_id],
        )
        .await?;
    let kept: Vec<(String, Option<i32>)> = client
        .query(
            "SELECT rule_id, start_ms FROM core.qa_flags WHERE call_id = $1",
            &[&call_id],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let new: Vec<&Finding> = findings
        .iter()
        .filter(|f| {
            !kept
                .iter()
                .any(|(rule, start)| *rule == f.rule_id && *start == f.start_ms)
        })
        .collect();
    if !new.is_empty() {
        let rules: Vec<&str> = new.iter().map(|f| f.rule_id.as_str()).collect();
        let categories: Vec<&str> = new.iter().map(|f| f.category.as_str()).collect();
        let severities: Vec<&str> = new.iter().map(|f| f.severity.as_str()).collect();
        let evidence: Vec<&str> = new.iter().map(|f| f.evidence.as_str()).collect();
        let starts: Vec<Option<i32>> = new.iter().map(|f| f.start_ms).collect();
        let ends: Vec<Option<i32>> = new.iter().map(|f| f.end_ms).collect();
        let speakers: Vec<Option<&str>> = new.iter().map(|f| f.speaker.as_deref()).collect();
        let roles: Vec<Option<&str>> = new.iter().map(|f| f.role.map(|r| r.as_str())).collect();
        client
            .execute(
                "INSERT INTO core.qa_flags
                   (call_id, org_id, rule_id, rulebook_version, category, severity,
                    evidence_text, start_ms, end_ms, speaker, role)
                 SELECT $1, $2, f.rule_id, $3, f.category::core.flag_category,
                        f.severity::core.flag_severity, f.evidence, f.start_ms, f.end_ms,
                        f.speaker, f.role::core.speaker_role
                 FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::int[],
                             $9::int[], $10::text[], $11::text[])
                      AS f(rule_id, category, severity, evidence, start_ms, end_ms, speaker,
                           role)",
                &[
                    &call_id,
                    &org_id,
                    &rulebook,
                    &rules,
                    &categories,
                    &severities,
                    &evidence,
                    &starts,
                    &ends,
                    &speakers,
                    &roles,
                ],
            )
            .await?;
    }
    refresh_flagged(client, call_id).await?;
    Ok(FlagCounts {
        written: new.len(),
        kept: kept.len(),
    })
}
