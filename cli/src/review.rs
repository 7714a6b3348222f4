//! `callscript flags list|review`, `callscript calls show` and `callscript org members …`:
//! what a reviewer does from a terminal, over the `callscript-review` library.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use callscript_core::dates::{parse_from, parse_to};
use callscript_core::model::UnknownLabel;
use callscript_core::orgs;
use callscript_review::calls::{self, clock, CallView};
use callscript_review::flags::{
    self, Decision, FlagFilter, FlagRow, Page, PageRequest, ReviewStatus, Severity, MAX_PAGE_SIZE,
};
use callscript_review::members::{self, Role};
use chrono::{DateTime, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::commands::{org_id, pool, Settings};

#[derive(Subcommand)]
pub enum FlagsCommand {
    /// List flags, newest calls first, narrowed by any of the filters.
    List(ListArgs),
    /// Confirm or dismiss a flag (a call stays `flagged` while any flag is not dismissed).
    Review(ReviewArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Only this organization's flags.
    #[arg(long)]
    org: Option<String>,
    /// Only this campaign's, by its source's id or its name.
    #[arg(long)]
    campaign: Option<String>,
    /// Only this rule's.
    #[arg(long = "rule")]
    rule_id: Option<String>,
    /// This severity or worse.
    #[arg(long, value_parser = labels(Severity::ALL, Severity::as_str))]
    severity: Option<Severity>,
    /// Only flags in this review status.
    #[arg(long, value_parser = labels(ReviewStatus::ALL, ReviewStatus::as_str))]
    status: Option<ReviewStatus>,
    /// Calls started from: a date (its 00:00 UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_from)]
    from: Option<DateTime<Utc>>,
    /// Calls started before: a date (through its end, UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_to)]
    to: Option<DateTime<Utc>>,
    /// Flags per page.
    #[arg(
        long,
        default_value_t = 50,
        value_parser = clap::value_parser!(i64).range(1..=MAX_PAGE_SIZE)
    )]
    limit: i64,
    /// Flags skipped before the page.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    offset: i64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    /// Aligned columns, evidence shortened, and a line saying where the next page starts.
    Table,
    /// The page as JSON: items, total, limit, offset.
    Json,
    /// RFC 4180 CSV, a header row and one row per flag with the whole evidence; the same
    /// fields, names and values as the JSON items.
    Csv,
}

#[derive(Args)]
#[command(group(ArgGroup::new("decision").required(true).args(["confirm", "dismiss"])))]
pub struct ReviewArgs {
    /// The flag's id (the last column of `flags list`).
    flag_id: Uuid,
    /// The flag is right.
    #[arg(long)]
    confirm: bool,
    /// The flag is wrong (the judge keeps it dismissed when the call is judged again).
    #[arg(long)]
    dismiss: bool,
    /// Why; an earlier note is kept when none is given.
    #[arg(long)]
    note: Option<String>,
    /// The reviewing member's email (a member of the flag's organization).
    #[arg(long = "as", value_name = "EMAIL", requires = "org")]
    reviewer: Option<String>,
    /// The organization the flag must belong to.
    #[arg(long)]
    org: Option<String>,
}

#[derive(Subcommand)]
pub enum CallsCommand {
    /// A call's facts, its speaker-labelled transcript with flagged lines marked, and its flags.
    Show {
        call_id: Uuid,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    /// Facts, then one line per segment (`[m:ss–m:ss] SPEAKER_00 (agent): text`), flags marked.
    Text,
    /// The call view as JSON: facts, segments with their flag ids, flags.
    Json,
}

#[derive(Subcommand)]
pub enum MembersCommand {
    /// Add a member to an organization, or change the role of one who is already there.
    Add {
        /// Organization slug.
        org: String,
        email: String,
        /// Admins also manage members; reviewers confirm and dismiss flags; viewers read.
        #[arg(long, default_value = "viewer", value_parser = labels(Role::ALL, Role::as_str))]
        role: Role,
        /// The name shown for the member.
        #[arg(long)]
        name: Option<String>,
    },
    /// List an organization's members.
    List {
        /// Organization slug.
        org: String,
    },
    /// Issue a member a new API token, printed once; it replaces the member's previous one.
    Token {
        /// Organization slug.
        org: String,
        email: String,
    },
}

/// A parser of one of a stored enum's labels: `--help` and the usage error list them.
fn labels<T>(all: &'static [T], label: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = UnknownLabel> + Copy + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|value| label(*value))).try_map(|text| text.parse())
}

pub async fn flags(settings: &Settings, command: FlagsCommand) -> Result<()> {
    let pool = pool(settings).await?;
    match command {
        FlagsCommand::List(args) => {
            let client = pool.get().await?;
            let filter = FlagFilter {
                org_id: org_id(&**client, args.org).await?,
                campaign: args.campaign,
                rule_id: args.rule_id,
                min_severity: args.severity,
                status: args.status,
                from: args.from,
                to: args.to,
                call_id: None,
            };
            if let (Some(from), Some(to)) = (filter.from, filter.to) {
                if to <= from {
                    bail!("--to {to} is not after --from {from}");
                }
            }
            let page = PageRequest {
                limit: args.limit,
                offset: args.offset,
            };
            let page = flags::list(&**client, &filter, page).await?;
            match args.format {
                ListFormat::Table => print!("{}", flag_table(&page)),
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&page)?),
                ListFormat::Csv => print!("{}", flags::csv(&page.items)),
            }
        }
        FlagsCommand::Review(args) => {
            let decision = if args.confirm {
                Decision::Confirm
            } else {
                Decision::Dismiss
            };
            let mut client = pool.get().await?;
            // The decision and the call's `flagged` change together or not at all.
            let transaction = client.transaction().await?;
            let flag = flags::get(&*transaction, args.flag_id).await?;
            if let Some(slug) = &args.org {
                if *slug != flag.org_slug {
                    bail!(
                        "flag {} belongs to organization {}, not {slug}",
                        flag.id,
                        flag.org_slug
                    );
                }
            }
            let reviewer = match &args.reviewer {
                Some(email) => {
                    let org = orgs::by_slug(&*transaction, &flag.org_slug).await?;
                    let member = members::by_email(&*transaction, org.id, email)
                        .await
                        .with_context(|| format!("--as {email} (organization {})", org.slug))?;
                    Some(member.id)
                }
                None => None,
            };
            let flag = flags::review(
                &*transaction,
                flag.id,
                decision,
                reviewer,
                args.note.as_deref(),
            )
            .await?;
            transaction.commit().await?;
            let by = flag
                .reviewer
                .as_deref()
                .map(|email| format!(" by {email}"))
                .unwrap_or_default();
            println!(
                "flag {} ({} of {}): {}{by}",
                flag.id, flag.rule_id, flag.org_slug, flag.review_status
            );
        }
    }
    Ok(())
}

pub async fn calls(settings: &Settings, command: CallsCommand) -> Result<()> {
    let CallsCommand::Show { call_id, format } = command;
    let pool = pool(settings).await?;
    let client = pool.get().await?;
    let view = calls::show(&**client, call_id).await?;
    match format {
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        ShowFormat::Text => {
            // The view names its organization by id; the slug is what users type.
            let org = orgs::list(&**client)
                .await?
                .into_iter()
                .find(|org| org.id == view.org_id)
                .map_or_else(|| view.org_id.to_string(), |org| org.slug);
            print!("{}", call_text(&view, &org));
        }
    }
    Ok(())
}

pub async fn members(client: &impl GenericClient, command: MembersCommand) -> Result<()> {
    match command {
        MembersCommand::Add {
            org,
            email,
            role,
            name,
        } => {
            let org = orgs::by_slug(client, &org).await?;
            let member = members::add(client, org.id, &email, name.as_deref(), role).await?;
            println!(
                "{} is a {} of {} ({})",
                member.email, member.role, org.slug, member.id
            );
        }
        MembersCommand::List { org } => {
            let org = orgs::by_slug(client, &org).await?;
            let members = members::list(client, org.id).await?;
            if members.is_empty() {
                println!("{} has no members", org.slug);
            }
            for member in members {
                let line = format!(
                    "{:<32} {:<9} {} {}",
                    member.email,
                    member.role,
                    member.id,
                    member.display_name.as_deref().unwrap_or("")
                );
                println!("{}", line.trim_end());
            }
        }
        MembersCommand::Token { org, email } => {
            let org = orgs::by_slug(client, &org).await?;
            let member = members::by_email(client, org.id, &email).await?;
            let token = members::issue_token(client, member.id).await?;
            // Only the token on stdout, so `$(callscript org members token …)` captures it.
            println!("{token}");
            eprintln!(
                "API token of {} in {}: shown this once (only its SHA-256 is stored); \
                 it replaces the member's previous token",
                member.email, org.slug
            );
        }
    }
    Ok(())
}

const EVIDENCE_CHARS: usize = 60;

/// Evidence on one line of at most [`EVIDENCE_CHARS`] characters.
fn shorten(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= EVIDENCE_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(EVIDENCE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// "SPEAKER_00 (agent)", or whichever of the two is known.
fn who(speaker: Option<&str>, role: Option<&str>) -> String {
    match (speaker, role) {
        (Some(speaker), Some(role)) => format!("{speaker} ({role})"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => "-".to_owned(),
    }
}

fn flag_table(page: &Page<FlagRow>) -> String {
    let header = [
        "when", "org", "campaign", "rule", "severity", "status", "at", "speaker", "evidence",
        "flag",
    ];
    let rows: Vec<[String; 10]> = page
        .items
        .iter()
        .map(|flag| {
            [
                flag.call_started_at.format("%Y-%m-%d %H:%M").to_string(),
                flag.org_slug.clone(),
                flag.campaign.clone().unwrap_or_else(|| "-".into()),
                flag.rule_id.clone(),
                flag.severity.to_string(),
                flag.review_status.to_string(),
                flag.start_ms.map_or_else(|| "-".into(), clock),
                who(flag.speaker.as_deref(), flag.role.as_deref()),
                shorten(&flag.evidence),
                flag.id.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(String::from);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} of {} flags", page.items.len(), page.total));
    if let Some(next) = page.next_offset() {
        out.push_str(&format!(" (next: --offset {next})"));
    }
    out.push('\n');
    out
}

/// `    ⚑ rule (severity, status by reviewer): evidence  [flag id]`, and its note below.
fn flag_line(flag: &FlagRow) -> String {
    let by = flag
        .reviewer
        .as_deref()
        .map(|email| format!(" by {email}"))
        .unwrap_or_default();
    let mut line = format!(
        "    ⚑ {} ({}, {}{by}): {}  [{}]\n",
        flag.rule_id,
        flag.severity,
        flag.review_status,
        flag.evidence
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        flag.id
    );
    if let Some(note) = &flag.note {
        line.push_str(&format!("      note: {note}\n"));
    }
    line
}

fn call_text(view: &CallView, org: &str) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let mut out = format!("call      {}\n", view.id);
    out.push_str(&format!("org       {org}\n"));
    out.push_str(&format!(
        "source    {} (external id {})\n",
        view.source, view.external_id
    ));
    out.push_str(&format!("state     {}\n", view.state));
    if let Some(error) = &view.last_error {
        out.push_str(&format!("error     {error}\n"));
    }
    out.push_str(&format!("campaign  {}\n", or_dash(&view.campaign)));
    out.push_str(&format!(
        "started   {}\n",
        view.call_started_at.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    out.push_str(&format!(
        "duration  {}\n",
        view.duration_ms.map_or_else(|| "-".into(), clock)
    ));
    out.push_str(&format!(
        "parties   {} → {}\n",
        or_dash(&view.caller_number),
        or_dash(&view.callee_number)
    ));
    out.push_str(&format!("object    {}\n", or_dash(&view.object_key)));
    let flagged = match view.flagged {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not judged",
    };
    out.push_str(&format!("flagged   {flagged}\n"));
    out.push('\n');
    match &view.transcript_model {
        Some(model) => out.push_str(&format!("Transcript ({model}):\n")),
        None => out.push_str("No transcript yet.\n"),
    }
    for segment in &view.segments {
        let mark = if segment.flag_ids.is_empty() {
            ' '
        } else {
            '!'
        };
        out.push_str(&format!(
            "{mark} [{}–{}] {}: {}\n",
            clock(segment.start_ms),
            clock(segment.end_ms),
            who(segment.speaker.as_deref(), segment.role.as_deref()),
            segment.text.trim()
        ));
        for id in &segment.flag_ids {
            if let Some(flag) = view.flags.iter().find(|flag| flag.id == *id) {
                out.push_str(&flag_line(flag));
            }
        }
    }
    // Whole-call findings (a disclosure never said) and evidence outside every segment.
    let unplaced: Vec<&FlagRow> = view
        .flags
        .iter()
        .filter(|flag| !view.segments.iter().any(|s| s.flag_ids.contains(&flag.id)))
        .collect();
    if !unplaced.is_empty() {
        out.push_str("\nFlags:\n");
        for flag in unplaced {
            out.push_str(&flag_line(flag));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_one_short_line() {
        assert_eq!(shorten("card\n  number"), "card number");
        let long = "x".repeat(80);
        let cut = shorten(&long);
        assert_eq!(cut.chars().count(), EVIDENCE_CHARS);
        assert!(cut.ends_with('…'));
    }
}
