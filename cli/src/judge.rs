//! `callscript judge` (the judge lane) and `callscript rules check|show`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use callscript_core::db::connect_pool;
use callscript_core::migrate;
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_judge::Rulebook;
use clap::{Args, Subcommand};

use crate::commands::{database_url, default_worker_id, org_id, stop_on_signal, Settings};

#[derive(Args)]
pub struct JudgeArgs {
    /// Only this organization's calls.
    #[arg(long)]
    org: Option<String>,
    /// The rulebook (TOML); the compiled-in default when omitted.
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
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate a rulebook: every problem with its line and column; exit 1 if any.
    Check { file: PathBuf },
    /// Print the compiled-in default rulebook (a starting point for your own).
    Default,
}

fn read_rulebook(path: &PathBuf) -> Result<Rulebook> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the rulebook {}", path.display()))?;
    Rulebook::parse(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))
}

pub fn rules(command: RulesCommand) -> Result<()> {
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
    }
    Ok(())
}

pub async fn judge(settings: &Settings, args: JudgeArgs) -> Result<()> {
    let rulebook = match &args.rulebook {
        Some(path) => read_rulebook(path)?,
        None => Rulebook::default_rulebook(),
    };
    let url = database_url(settings)?;
    let pool = connect_pool(&url, 4).await?;
    let client = pool.get().await?;
    migrate::ensure_current(&**client).await?;
    let org_id = org_id(&**client, args.org).await?;
    if args.again {
        let sent =
            callscript_core::queue::redo(&**client, callscript_core::model::Lane::Judge, org_id)
                .await?;
        eprintln!("judge: {sent} judged calls sent back to be judged again");
    }
    drop(client);
    eprintln!("judge: rulebook {}", rulebook.reference());
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
    let report = lane.run(args.until_idle, stop_on_signal()).await?;
    println!(
        "judge: {} calls judged, {} flagged ({} flags), {} card numbers redacted, {} failed, {} \
         lost to the rescuer",
        report.judged, report.flagged, report.flags, report.redacted, report.failed, report.lost
    );
    Ok(())
}
