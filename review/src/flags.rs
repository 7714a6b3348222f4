//! QA flags as reviewers find and decide them.

use callscript_core::flags::refresh_flagged;
pub use callscript_core::model::{Category, ReviewStatus, Severity};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::export::{self, Column};
use crate::ReviewError;

/// The most flags one page holds.
pub const MAX_PAGE_SIZE: i64 = 500;

/// Which flags to list; every field narrows, `None` does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagFilter {
    pub org_id: Option<Uuid>,
    /// A campaign by its source's id or its name.
    pub campaign: Option<String>,
    pub rule_id: Option<String>,
    /// This severity or worse.
    pub min_severity: Option<Severity>,
    pub status: Option<ReviewStatus>,
    /// Calls that started at or after `from` and before `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub call_id: Option<Uuid>,
}

/// Which page: newest calls first, `limit` flags after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Flags matching the filter across all pages.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

impl<T> Page<T> {
    /// The offset of the next page, `None` on the last.
    pub fn next_offset(&self) -> Option<i64> {
        let next = self.offset + self.items.len() as i64;
        (next < self.total).then_some(next)
    }
}

/// One flag with what a reviewer needs to place it. Its JSON (API, CLI) and CSV are both
/// [`FLAG_COLUMNS`].
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRow {
    pub id: Uuid,
    pub call_id: Uuid,
    pub org_slug: String,
    pub campaign: Option<String>,
    pub call_started_at: DateTime<Utc>,
    pub caller_number: Option<String>,
    pub rule_id: String,
    pub rulebook_version: String,
    pub category: Category,
    pub severity: Severity,
    pub evidence: String,
    pub start_ms: Option<i32>,
    pub end_ms: Option<i32>,
    pub speaker: Option<String>,
    pub role: Option<String>,
    pub review_status: ReviewStatus,
    pub reviewer: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The exported fields of a flag, in order: the JSON keys and the CSV header alike.
pub const FLAG_COLUMNS: &[Column<FlagRow>] = &[
    Column {
        name: "id",
        value: |f| json!(f.id),
    },
    Column {
        name: "call_id",
        value: |f| json!(f.call_id),
    },
    Column {
        name: "org_slug",
        value: |f| json!(f.org_slug),
    },
    Column {
        name: "campaign",
        value: |f| json!(f.campaign),
    },
    Column {
        name: "call_started_at",
        value: |f| export::time(f.call_started_at),
    },
    Column {
        name: "caller_number",
        value: |f| json!(f.caller_number),
    },
    Column {
        name: "rule_id",
        value: |f| json!(f.rule_id),
    },
    Column {
        name: "rulebook_version",
        value: |f| json!(f.rulebook_version),
    },
    Column {
        name: "category",
        value: |f| json!(f.category.as_str()),
    },
    Column {
        name: "severity",
        value: |f| json!(f.severity.as_str()),
    },
    Column {
        name: "evidence",
        value: |f| json!(f.evidence),
    },
    Column {
        name: "start_ms",
        value: |f| json!(f.start_ms),
    },
    Column {
        name: "end_ms",
        value: |f| json!(f.end_ms),
    },
    Column {
        name: "speaker",
        value: |f| json!(f.speaker),
    },
    Column {
        name: "role",
        value: |f| json!(f.role),
    },
    Column {
        name: "review_status",
        value: |f| json!(f.review_status.as_str()),
    },
    Column {
        name: "reviewer",
        value: |f| json!(f.reviewer),
    },
    Column {
        name: "reviewed_at",
        value: |f| export::optional_time(f.reviewed_at),
    },
    Column {
        name: "note",
        value: |f| json!(f.note),
    },
    Column {
        name: "created_at",
        value: |f| export::time(f.created_at),
    },
];

impl Serialize for FlagRow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        export::serialize(FLAG_COLUMNS, self, serializer)
    }
}

/// Flags as RFC 4180 CSV, a header of [`FLAG_COLUMNS`] and one record per flag.
pub fn csv(flags: &[FlagRow]) -> String {
    export::csv(FLAG_COLUMNS, flags)
}

const FLAG_SELECT: &str = "SELECT f.id, f.call_id, o.slug, cp.name AS campaign, c.call_started_at,
        c.caller_number, f.rule_id, f.rulebook_version, f.category::text AS category,
        f.severity::text AS severity, f.evidence_text, f.start_ms, f.end_ms, f.speaker,
        f.role::text AS role, f.review_status::text AS review_status, m.email AS reviewer,
        f.reviewed_at, f.note, f.created_at
     FROM core.qa_flags f
     JOIN core.calls c ON c.id = f.call_id
     JOIN core.organizations o ON o.id = f.org_id
     LEFT JOIN core.campaigns cp ON cp.id = c.campaign_id
     LEFT JOIN core.organization_members m ON m.id = f.reviewer_id";

fn flag_from_row(row: &tokio_postgres::Row) -> Result<FlagRow, ReviewError> {
    Ok(FlagRow {
        id: row.get("id"),
        call_id: row.get("call_id"),
        org_slug: row.get("slug"),
        campaign: row.get("campaign"),
        call_started_at: row.get("call_started_at"),
        caller_number: row.get("caller_number"),
        rule_id: row.get("rule_id"),
        rulebook_version: row.get("rulebook_version"),
        category: row.get::<_, &str>("category").parse()?,
        severity: row.get::<_, &str>("severity").parse()?,
        evidence: row.get("evidence_text"),
        start_ms: row.get("start_ms"),
        end_ms: row.get("end_ms"),
        speaker: row.get("speaker"),
        role: row.get("role"),
        review_status: row.get::<_, &str>("review_status").parse()?,
        reviewer: row.get("reviewer"),
        reviewed_at: row.get("reviewed_at"),
        note: row.get("note"),
        created_at: row.get("created_at"),
    })
}

/// The flags matching `filter`, newest call first (a call's flags in the order said).
pub async fn list(
    client: &impl GenericClient,
    filter: &FlagFilter,
    page: PageRequest,
) -> Result<Page<FlagRow>, ReviewError> {
    let status = filter.status.map(ReviewStatus::as_str);
    let min_severity = filter.min_severity.map(Severity::as_str);
    let params: [&(dyn ToSql + Sync); 8] = [
        &filter.org_id,
        &filter.campaign,
        &filter.rule_id,
        &min_severity,
        &status,
        &filter.from,
        &filter.to,
        &filter.call_id,
    ];
    let conditions = "WHERE ($1::uuid IS NULL OR f.org_id = $1)
          AND ($2::text IS NULL OR cp.external_id = $2 OR cp.name = $2)
          AND ($3::text IS NULL OR f.rule_id = $3)
          AND ($4::text IS NULL OR f.severity >= $4::text::core.flag_severity)
          AND ($5::text IS NULL OR f.review_status = $5::text::core.review_status)
          AND ($6::timestamptz IS NULL OR c.call_started_at >= $6)
          AND ($7::timestamptz IS NULL OR c.call_started_at < $7)
          AND ($8::uuid IS NULL OR f.call_id = $8)";
    let total: i64 = client
        .query_one(
            &format!(
                "SELECT count(*) FROM core.qa_flags f
                 JOIN core.calls c ON c.id = f.call_id
                 LEFT JOIN core.campaigns cp ON cp.id = c.campaign_id
                 {conditions}"
            ),
            &params,
        )
        .await?
        .get(0);
    let limit = page.limit.clamp(1, MAX_PAGE_SIZE);
    let offset = page.offset.max(0);
    let mut paged: Vec<&(dyn ToSql + Sync)> = params.to_vec();
    paged.push(&limit);
    paged.push(&offset);
    let items = client
        .query(
            &format!(
                "{FLAG_SELECT} {conditions}
                 ORDER BY c.call_started_at DESC, f.call_id, f.start_ms NULLS FIRST, f.id
                 LIMIT $9 OFFSET $10"
            ),
            &paged,
        )
        .await?
        .iter()
        .map(flag_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        total,
        limit,
        offset,
    })
}

/// One flag by id.
pub async fn get(client: &impl GenericClient, flag_id: Uuid) -> Result<FlagRow, ReviewError> {
    let row = client
        .query_opt(&format!("{FLAG_SELECT} WHERE f.id = $1"), &[&flag_id])
        .await?
        .ok_or(ReviewError::UnknownFlag(flag_id))?;
    flag_from_row(&row)
}

/// A reviewer's decision on a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Confirm,
    Dismiss,
}

impl Decision {
    fn status(self) -> ReviewStatus {
        match self {
            Decision::Confirm => ReviewStatus::Confirmed,
            Decision::Dismiss => ReviewStatus::Dismissed,
        }
    }
}

/// Records `decision` on the flag (by `reviewer`, a member, when known) with an optional note
/// (kept when none is given) and updates the call's `flagged`. A re-judged call keeps the flag:
/// the judge replaces only flags nobody reviewed.
pub async fn review(
    client: &impl GenericClient,
    flag_id: Uuid,
    decision: Decision,
    reviewer: Option<Uuid>,
    note: Option<&str>,
) -> Result<FlagRow, ReviewError> {
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    let call_id: Uuid = client
        .query_opt(
            "UPDATE core.qa_flags SET
               review_status = $2::text::core.review_status, reviewer_id = $3,
               reviewed_at = now(), note = COALESCE($4, note)
             WHERE id = $1 RETURNING call_id",
            &[&flag_id, &decision.status().as_str(), &reviewer, &note],
        )
        .await?
        .ok_or(ReviewError::UnknownFlag(flag_id))?
        .get(0);
    refresh_flagged(client, call_id).await?;
    get(client, flag_id).await
}
