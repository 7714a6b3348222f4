//! Card and social security numbers found in a call, stored apart from its transcript
//! (`core.pii_findings`).
//!
//! The stored transcript holds each number only as its label ("[card ending 1111]"); a finding
//! says where that label stands and what it was, so judging the call again reads the numbers
//! from here instead of looking for digits the text no longer has. A finding keeps the last
//! four digits and nothing more.

use callscript_core::db::DbError;
use callscript_core::model::SpeakerRole;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::transcript::NumberKind;

/// Which lane found the numbers the judge stores.
pub const DETECTED_BY_JUDGE: &str = "judge";

/// One card or social security number in a call's stored transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiFinding {
    pub kind: NumberKind,
    /// Where its label stands in the stored text: from word `first_word` of segment
    /// `first_segment` up to, not including, word `end_word` of segment `last_segment`
    /// (segments by their stored index, words as [`crate::normalize::words`] reads them).
    pub first_segment: usize,
    pub first_word: usize,
    pub last_segment: usize,
    pub end_word: usize,
    /// From the start of its first segment to the end of its last.
    pub start_ms: i32,
    pub end_ms: i32,
    pub speaker: Option<String>,
    pub role: Option<SpeakerRole>,
    pub last_four: String,
    pub detected_by: String,
}

/// The call's stored findings, in the order of their labels.
pub async fn load(client: &impl GenericClient, call_id: Uuid) -> Result<Vec<PiiFinding>, DbError> {
    let rows = client
        .query(
            "SELECT kind::text, first_segment, first_word, last_segment, end_word, start_ms,
                    end_ms, speaker, role::text, last_four, detected_by
             FROM core.pii_findings WHERE call_id = $1
             ORDER BY first_segment, first_word",
            &[&call_id],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let index = |i: usize| usize::try_from(row.get::<_, i32>(i)).unwrap_or_default();
            Some(PiiFinding {
                kind: NumberKind::parse(row.get(0))?,
                first_segment: index(1),
                first_word: index(2),
                last_segment: index(3),
                end_word: index(4),
                start_ms: row.get(5),
                end_ms: row.get(6),
                speaker: row.get(7),
                role: row.get::<_, Option<&str>>(8).and_then(|r| r.parse().ok()),
                last_four: row.get(9),
                detected_by: row.get(10),
            })
        })
        .collect())
}

/// Replaces the call's findings by `findings`, which point into the transcript as stored now.
/// Call it in the transaction that stores that transcript.
pub async fn replace(
    client: &impl GenericClient,
    call_id: Uuid,
    org_id: Uuid,
    findings: &[PiiFinding],
) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM core.pii_findings WHERE call_id = $1",
            &[&call_id],
        )
        .await?;
    if findings.is_empty() {
        return Ok(());
    }
    let index = |f: fn(&PiiFinding) -> usize| -> Vec<i32> {
        findings
            .iter()
            .map(|finding| i32::try_from(f(finding)).unwrap_or(i32::MAX))
            .collect()
    };
    let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
    let starts: Vec<i32> = findings.iter().map(|f| f.start_ms).collect();
    let ends: Vec<i32> = findings.iter().map(|f| f.end_ms).collect();
    let speakers: Vec<Option<&str>> = findings.iter().map(|f| f.speaker.as_deref()).collect();
    let roles: Vec<Option<&str>> = findings
        .iter()
        .map(|f| f.role.map(SpeakerRole::as_str))
        .collect();
    let last_fours: Vec<&str> = findings.iter().map(|f| f.last_four.as_str()).collect();
    let detected_by: Vec<&str> = findings.iter().map(|f| f.detected_by.as_str()).collect();
    client
        .execute(
            "INSERT INTO core.pii_findings
               (call_id, org_id, kind, first_segment, first_word, last_segment, end_word,
                start_ms, end_ms, speaker, role, last_four, detected_by)
             SELECT $1, $2, f.kind::core.pii_kind, f.first_segment, f.first_word,
                    f.last_segment, f.end_word, f.start_ms, f.end_ms, f.speaker,
                    f.role::core.speaker_role, f.last_four, f.detected_by
             FROM unnest($3::text[], $4::int[], $5::int[], $6::int[], $7::int[], $8::int[],
                         $9::int[], $10::text[], $11::text[], $12::text[], $13::text[])
                  AS f(kind, first_segment, first_word, last_segment, end_word, start_ms,
                       end_ms, speaker, role, last_four, detected_by)",
            &[
                &call_id,
                &org_id,
                &kinds,
                &index(|f| f.first_segment),
                &index(|f| f.first_word),
                &index(|f| f.last_segment),
                &index(|f| f.end_word),
                &starts,
                &ends,
                &speakers,
                &roles,
                &last_fours,
                &detected_by,
            ],
        )
        .await?;
    Ok(())
}
