//! `callscript judge` (the judge lane), `callscript rules …` (check, store, list and apply
//! rulebooks) and `callscript report daily`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use callscript_core::orgs;
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_judge::report;
use callscript_judge::rulebook_store::{self, Added, Scope};
use callscript_judge::Rulebook;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::commands::{default_worker_id, migrated_pool, org_id, pool, stop_on_signal, Settings};
use crate::notify::print_report;

#[derive(Args)]
pub struct JudgeArgs {
    /// Only this organization's calls.
    #[arg(long)]
    org: Option<String>,
    /// Judge every call by this rulebook (TOML) instead of the stored ones (each call's
    /// campaign's, else its organization's, else the compiled-in default).
    #[arg(long, env = "CALLSCRIPT_RULEBOOK")]
    rulebook: Option<PathBuf>,
    /// Exit when no transcribed call is waiting.
    #[arg(long)]
    until_idle: bool,
    /// Send every judged call (of --org) back to be judged again first: after a rulebook
    /// change. Machine flags are replaced; flags reviewers touched are kept.
    #[arg(long)]
    again: bool,
    /// Calls claimed at once.
    #[arg(long, default_value_t = 32)]
    batch_calls: i64,
    /// Lease owner name (default HOST-PID).
    #[arg(long, env = "CALLSCRIPT_WORKER_ID")]
    worker_id: Option<String>,
    #[command(flatten)]
    alongside: crate::notify::AlongsideArgs,
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate a rulebook: every problem with its line and column; exit 1 if any.
    Check { file: PathBuf },
    /// Print the compiled-in default rulebook (a starting point for your own).
    Default,
    /// Store a rulebook for an organization under its [rulebook] name and version (checked
    /// first; a stored version never changes, the same file again is a no-op).
    Add {
        file: PathBuf,
        #[arg(long)]
        org: String,
    },
    /// List an organization's stored rulebooks and where each is applied.
    List {
        #[arg(long)]
        org: String,
    },
    /// Judge an organization's calls (or one campaign's) by a stored rulebook from now on:
    /// "name" follows its latest version, "name@version" stays on one; "default" goes back to
    /// the compiled-in one (for a campaign: to the organization's).
    Use {
        reference: String,
        #[arg(long)]
        org: String,
        /// A campaign, by its source's id or its name.
        #[arg(long)]
        campaign: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// An organization's day: calls, leads by temperature, flags by rule, top objections and
    /// questions, and the follow-ups to work first. Printed and stored in crm.daily_reports.
    Daily {
        #[arg(long)]
        org: String,
        /// The local day (YYYY-MM-DD) in the organization's time zone; today when omitted.
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn read_rulebook(path: &PathBuf) -> Result<Rulebook> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the rulebook {}", path.display()))?;
    Rulebook::parse(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))
}

pub async fn rules(settings: &Settings, command: RulesCommand) -> Result<()> {
    match command {
        RulesCommand::Check { file } => {
            let rulebook = read_rulebook(&file)?;
            println!(
                "{}: rulebook {} with {} rules is valid",
                file.display(),
                rulebook.reference(),
                rulebook.rules.len()
            );
        }
        RulesCommand::Default => print!("{}", callscript_judge::DEFAULT_RULEBOOK),
        RulesCommand::Add { file, org } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading the rulebook {}", file.display()))?;
            let pool = pool(settings).await?;
            let client = pool.get().await?;
            let org = orgs::by_slug(&**client, &org).await?;
            match rulebook_store::add(&**client, org.id, &text)
                .await
                .with_context(|| format!("storing {}", file.display()))?
            {
                Added::Stored { reference } => println!("stored {reference} for {}", org.slug),
                Added::Unchanged { reference } => {
                    println!("unchanged {reference} for {} (already stored)", org.slug)
                }
            }
        }
        RulesCommand::List { org } => {
            let pool = pool(settings).await?;
            let client = pool.get().await?;
            let org = orgs::by_slug(&**client, &org).await?;
            let stored = rulebook_store::list(&**client, org.id).await?;
            if stored.is_empty() {
                println!(
                    "{}: no stored rulebooks; calls are judged by the compiled-in default",
                    org.slug
                );
            }
            for rulebook in stored {
                println!(
                    "{:<32} {:>3} rules  {}  sha256 {}  {}",
                    format!("{}@{}", rulebook.name, rulebook.version),
                    rulebook.rules,
                    rulebook.created_at.format("%Y-%m-%d %H:%M UTC"),
                    &rulebook.sha256[..12],
                    if rulebook.applied_to.is_empty() {
                        String::new()
                    } else {
                        format!("applied to {}", rulebook.applied_to.join(", "))
                    }
                );
            }
        }
        RulesCommand::Use {
            reference,
            org,
            campaign,
        } => {
            let pool = pool(settings).await?;
            let client = pool.get().await?;
            let org = orgs::by_slug(&**client, &org).await?;
            let scope = match &campaign {
                Some(campaign) => Scope::Campaign(campaign),
                None => Scope::Organization,
            };
            let stored = (reference != "default").then_some(reference.as_str());
            rulebook_store::apply(&**client, org.id, scope, stored).await?;
            let target = match &campaign {
                Some(campaign) => format!("campaign {campaign:?} of {}", org.slug),
                None => org.slug.clone(),
            };
            println!("{target}: calls judged from now on by rulebook {reference}");
        }
    }
    Ok(())
}

pub async fn report(settings: &Settings, command: ReportCommand) -> Result<()> {
    let ReportCommand::Daily { org, date, json } = command;
    let pool = pool(settings).await?;
    let client = pool.get().await?;
    let org = orgs::by_slug(&**client, &org).await?;
    let timezone = callscript_judge::crm::org_timezone(&**client, org.id).await?;
    let now = Utc::now();
    let day = date.unwrap_or_else(|| now.with_timezone(&timezone).date_naive());
    let report = report::daily(&**client, org.id, day, now).await?;
    report.store(&**client).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

pub async fn judge(settings: &Settings, args: JudgeArgs) -> Result<()> {
    let rulebook = args.rulebook.as_ref().map(read_rulebook).transpose()?;
    let (url, pool) = migrated_pool(settings, 4).await?;
    let client = pool.get().await?;
    let org_id = org_id(&**client, args.org).await?;
    if args.again {
        let sent =
            callscript_core::queue::redo(&**client, callscript_core::model::Lane::Judge, org_id)
                .await?;
        eprintln!("judge: {sent} judged calls sent back to be judged again");
    }
    drop(client);
    match &rulebook {
        Some(rulebook) => eprintln!("judge: rulebook {} for every call", rulebook.reference()),
        None => eprintln!("judge: each call by its campaign's or organization's rulebook"),
    }
    let lane = JudgeLane {
        pool,
        database_url: url,
        rulebook,
        config: JudgeConfig {
            worker: args.worker_id.unwrap_or_else(default_worker_id),
            batch_size: args.batch_calls.max(1),
            org_id,
            ..JudgeConfig::default()
        },
    };
    let stop = stop_on_signal();
    let mut delivery = args.alongside.lane(&lane.pool)?;
    // Without --until-idle the delivery lane runs beside the judge until the signal; with it,
    // after the judge, until the alerts it queued are out (or wait for a retry).
    let beside = if args.until_idle {
        None
    } else {
        delivery.take().map(|delivery| {
            let stop = stop.clone();
            tokio::spawn(async move { delivery.run(false, stop).await })
        })
    };
    let report = lane.run(args.until_idle, stop.clone()).await?;
    println!(
        "judge: {} calls judged, {} flagged ({} flags), {} card numbers redacted, {} failed, {} \
         lost to the rescuer",
        report.judged, report.flagged, report.flags, report.redacted, report.failed, report.lost
    );
    println!(
        "crm: {} new leads, {} hot calls, {} follow-ups planned, {} cancelled by do-not-call \
         requests, {} conversions; {} alerts queued",
        report.new_leads,
        report.hot,
        report.actions,
        report.cancelled,
        report.conversions,
        report.notifications
    );
    if let Some(delivery) = delivery {
        print_report(&delivery.run(true, stop).await?);
    }
    if let Some(beside) = beside {
        print_report(&beside.await??);
    }
    Ok(())
}
