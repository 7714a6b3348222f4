//! `callscript judge` (the judge lane), `callscript rules …` (check, store, list and apply
//! rulebooks) and `callscript report daily`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use callscript_core::credentials::Secret;
use callscript_core::model::Lane;
use callscript_core::orgs;
use callscript_core::queue::Until;
use callscript_judge::brain::{Brain, BrainConfig, Prices};
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_judge::report;
use callscript_judge::rulebook_store::{self, Added, Scope};
use callscript_judge::Rulebook;
use chrono::{NaiveDate, Utc};
use clap::{Args, Subcommand};

use crate::commands::{default_worker_id, migrated_pool, org_id, pool, stop_on_signal, Settings};
use crate::idle::IdleArgs;
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
    #[command(flatten)]
    idle: IdleArgs,
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
    brain: BrainArgs,
    #[command(flatten)]
    alongside: crate::notify::AlongsideArgs,
}

/// The optional LLM brain: an OpenAI-compatible endpoint asked for each call's summary,
/// objections and next best action. Without a base URL and model, nothing is sent anywhere.
#[derive(Args)]
struct BrainArgs {
    /// The endpoint's API root, e.g. http://127.0.0.1:8080/v1 (llama.cpp's llama-server, vLLM,
    /// OpenAI); requests go to its /chat/completions.
    #[arg(long = "llm-base-url", env = "CALLSCRIPT_LLM_BASE_URL")]
    base_url: Option<String>,
    /// The model named in each request (llama-server answers with the model it loaded).
    #[arg(long = "llm-model", env = "CALLSCRIPT_LLM_MODEL")]
    model: Option<String>,
    /// Sent as `Authorization: Bearer …`; never printed. Prefer the variable: a flag shows in
    /// the process list.
    #[arg(
        long = "llm-api-key",
        env = "CALLSCRIPT_LLM_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// How long one request may take; a later answer leaves the call with the rule summary.
    #[arg(long = "llm-timeout-secs", env = "CALLSCRIPT_LLM_TIMEOUT_SECS",
          default_value_t = BrainConfig::DEFAULT_TIMEOUT.as_secs())]
    timeout_secs: u64,
    /// USD per million prompt tokens, for core.usage (0 for a local server).
    #[arg(
        long = "llm-input-usd-per-mtok",
        env = "CALLSCRIPT_LLM_INPUT_USD_PER_MTOK",
        default_value_t = 0.0
    )]
    input_usd_per_mtok: f64,
    /// USD per million completion tokens, for core.usage (0 for a local server).
    #[arg(
        long = "llm-output-usd-per-mtok",
        env = "CALLSCRIPT_LLM_OUTPUT_USD_PER_MTOK",
        default_value_t = 0.0
    )]
    output_usd_per_mtok: f64,
    /// The transcript sent is cut to this many characters (the start of the call is kept).
    #[arg(long = "llm-max-transcript-chars", env = "CALLSCRIPT_LLM_MAX_TRANSCRIPT_CHARS",
          default_value_t = BrainConfig::DEFAULT_MAX_TRANSCRIPT_CHARS)]
    max_transcript_chars: usize,
}

impl BrainArgs {
    /// The brain, when an endpoint and a model are given; one without the other is refused.
    fn brain(&self) -> Result<Option<Brain>> {
        let (base_url, model) = match (&self.base_url, &self.model) {
            (None, None) => return Ok(None),
            (Some(base_url), Some(model)) => (base_url, model),
            (Some(_), None) => bail!(
                "CALLSCRIPT_LLM_BASE_URL (--llm-base-url) is set but CALLSCRIPT_LLM_MODEL \
                 (--llm-model) is not: name the model the endpoint serves"
            ),
            (None, Some(_)) => bail!(
                "CALLSCRIPT_LLM_MODEL (--llm-model) is set but CALLSCRIPT_LLM_BASE_URL \
                 (--llm-base-url) is not: give the endpoint's API root, e.g. \
                 http://127.0.0.1:8080/v1"
            ),
        };
        let config = BrainConfig {
            api_key: self.api_key.clone().map(Secret::new),
            timeout: Duration::from_secs(self.timeout_secs),
            prices: Prices {
                input_usd_per_mtok: self.input_usd_per_mtok,
                output_usd_per_mtok: self.output_usd_per_mtok,
            },
            max_transcript_chars: self.max_transcript_chars,
            ..BrainConfig::new(base_url, model)
        };
        Ok(Some(
            Brain::new(config).context("the CALLSCRIPT_LLM_* settings")?,
        ))
    }
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
    let until = args.idle.until()?;
    let rulebook = args.rulebook.as_ref().map(read_rulebook).transpose()?;
    let brain = args.brain.brain()?;
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
    if let Some(brain) = &brain {
        eprintln!(
            "judge: summaries by the LLM {} at {} (the rule summary when it does not answer)",
            brain.model(),
            brain.endpoint()
        );
    }
    let lane = JudgeLane {
        pool,
        database_url: url,
        rulebook,
        brain,
        config: JudgeConfig {
            worker: args.worker_id.unwrap_or_else(default_worker_id),
            batch_size: args.batch_calls.max(1),
            org_id,
            ..JudgeConfig::default()
        },
    };
    let stop = stop_on_signal();
    let mut delivery = args.alongside.lane(&lane.database_url, &lane.pool)?;
    // Without --until-idle the delivery lane runs beside the judge until the signal; with it,
    // after the judge, until the alerts it queued are out (or wait for a retry).
    let beside = if until != Until::Stopped {
        None
    } else {
        delivery.take().map(|delivery| {
            let stop = stop.clone();
            tokio::spawn(async move { delivery.run(false, stop).await })
        })
    };
    let report = lane.run(until, stop.clone()).await?;
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
    if lane.brain.is_some() {
        println!(
            "brain: {} calls summarized by the LLM, {} left with the rule summary",
            report.brain_answers, report.brain_fallbacks
        );
    }
    if let Some(left) = args
        .idle
        .left_behind(&lane.pool, Lane::Judge, org_id)
        .await?
    {
        println!("judge left: {left}");
    }
    if let Some(delivery) = delivery {
        print_report(&delivery.run(true, stop).await?);
    }
    if let Some(beside) = beside {
        print_report(&beside.await??);
    }
    Ok(())
}
