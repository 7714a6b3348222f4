//! `callscript ingest ringba|livekit`, `callscript backfill ringba` and `callscript vault`:
//! settings in, library lanes run, reports printed.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use callscript_core::credentials::CredentialKey;
pub(crate) use callscript_core::dates::{parse_from, parse_to};
use callscript_core::model::Lane;
use callscript_ingest::livekit::{router, LiveKitIngest, WEBHOOK_PATH};
use callscript_ingest::ringba::{AccountOutcome, PollConfig, RingbaLane};
use callscript_ingest::vault::{VaultConfig, VaultLane};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::net::TcpListener;

use crate::commands::{
    default_worker_id, migrated_pool, open_reachable_storage, org_id, stop_on_signal, Settings,
};
use crate::idle::IdleArgs;

#[derive(Subcommand)]
pub enum IngestCommand {
    /// Poll every organization's Ringba accounts (credentials of kind `ringba`) for new calls,
    /// every --interval seconds until SIGTERM/SIGINT.
    Ringba(RingbaArgs),
    /// Serve LiveKit's egress webhook (POST /livekit/webhook; the org is found by the API key
    /// that signed it) and reconcile with each org's ListEgress every --reconcile-seconds.
    Livekit(LivekitArgs),
}

#[derive(Args)]
pub struct LivekitArgs {
    /// Address the webhook endpoint listens on.
    #[arg(
        long,
        default_value = "0.0.0.0:8088",
        env = "CALLSCRIPT_LIVEKIT_LISTEN"
    )]
    listen: SocketAddr,
    /// Seconds between ListEgress reconciliations (0: webhooks only). Keep it well under a day:
    /// LiveKit forgets ended egresses about 24 h after they end.
    #[arg(long, default_value_t = 300)]
    reconcile_seconds: u64,
    /// Reconcile only this organization (webhooks are accepted for every org).
    #[arg(long)]
    org: Option<String>,
    /// The largest webhook body accepted, in KiB.
    #[arg(long, default_value_t = 1024)]
    max_body_kib: usize,
}

#[derive(Args)]
pub struct RingbaArgs {
    /// Only this organization's accounts.
    #[arg(long)]
    org: Option<String>,
    /// Seconds between polls.
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// Poll once and exit (for cron).
    #[arg(long)]
    once: bool,
    /// Minutes re-read before the watermark on each poll (Ringba's log settles late).
    #[arg(long, default_value_t = 15)]
    overlap_minutes: u64,
    /// How far back an account's first poll reads, in hours; older calls need a backfill.
    #[arg(long, default_value_t = 1)]
    first_lookback_hours: u64,
}

#[derive(Subcommand)]
pub enum BackfillCommand {
    /// Re-pull Ringba's call log for a date range (idempotent: known calls are not queued
    /// again, their Ringba fields are refreshed).
    Ringba(BackfillArgs),
}

#[derive(Args)]
pub struct BackfillArgs {
    /// Start: a date (its 00:00 UTC) or an RFC 3339 time.
    #[arg(long, value_parser = parse_from)]
    from: DateTime<Utc>,
    /// End: a date (through its end, UTC) or an RFC 3339 time; now when omitted.
    #[arg(long, value_parser = parse_to)]
    to: Option<DateTime<Utc>>,
    /// Only this organization's accounts.
    #[arg(long)]
    org: Option<String>,
    /// Hours of calls asked for per report request.
    #[arg(long, default_value_t = 6)]
    window_hours: u64,
}

#[derive(Args)]
pub struct VaultArgs {
    /// Only this organization's calls.
    #[arg(long)]
    org: Option<String>,
    #[command(flatten)]
    idle: IdleArgs,
    /// Recordings downloaded at once.
    #[arg(long, default_value_t = 16)]
    concurrency: i64,
    /// The largest recording accepted, in MiB.
    #[arg(long, default_value_t = 512)]
    max_mib: u64,
    /// Seconds one download may take.
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
    /// Lease owner name (default HOST-PID).
    #[arg(long, env = "CALLSCRIPT_WORKER_ID")]
    worker_id: Option<String>,
}

pub async fn ingest(settings: &Settings, command: IngestCommand) -> Result<()> {
    match command {
        IngestCommand::Ringba(args) => ingest_ringba(settings, args).await,
        IngestCommand::Livekit(args) => ingest_livekit(settings, args).await,
    }
}

async fn ingest_livekit(settings: &Settings, args: LivekitArgs) -> Result<()> {
    let key = CredentialKey::from_env()?;
    let (_, pool) = migrated_pool(settings, 8).await?;
    let client = pool.get().await?;
    let org_id = org_id(&**client, args.org).await?;
    drop(client);
    let store = open_reachable_storage(settings).await?;
    let http = callscript_ingest::http::client(callscript_ingest::http::DEFAULT_TIMEOUT);
    let lane = Arc::new(
        LiveKitIngest::new(pool, key, store, http)
            .with_max_body_bytes(args.max_body_kib.saturating_mul(1024)),
    );
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    eprintln!(
        "livekit: webhook on http://{}{WEBHOOK_PATH}{}",
        listener.local_addr()?,
        if args.reconcile_seconds > 0 {
            format!("; reconciling every {} s", args.reconcile_seconds)
        } else {
            String::new()
        }
    );
    let stop = stop_on_signal();
    let reconciler = (args.reconcile_seconds > 0).then(|| {
        let lane = lane.clone();
        let mut stop = stop.clone();
        let every = Duration::from_secs(args.reconcile_seconds);
        tokio::spawn(async move {
            loop {
                let report = lane.reconcile(org_id).await;
                println!("livekit reconcile: {report}");
                for error in &report.errors {
                    eprintln!("error: livekit reconcile: {error}");
                }
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        })
    });
    let mut stopped = stop.clone();
    axum::serve(listener, router(lane))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving the LiveKit webhook")?;
    if let Some(reconciler) = reconciler {
        reconciler.abort();
    }
    Ok(())
}

async fn ringba_lane(
    settings: &Settings,
    org: Option<String>,
    config: PollConfig,
) -> Result<RingbaLane> {
    let key = CredentialKey::from_env()?;
    let (_, pool) = migrated_pool(settings, 4).await?;
    let client = pool.get().await?;
    let org_id = org_id(&**client, org).await?;
    drop(client);
    let http = callscript_ingest::http::client(callscript_ingest::http::DEFAULT_TIMEOUT);
    Ok(RingbaLane::new(pool, key, http, config, org_id))
}

async fn ingest_ringba(settings: &Settings, args: RingbaArgs) -> Result<()> {
    let config = PollConfig {
        overlap: Duration::from_secs(args.overlap_minutes * 60),
        first_lookback: Duration::from_secs(args.first_lookback_hours * 3600),
        ..PollConfig::default()
    };
    let mut lane = ringba_lane(settings, args.org, config).await?;
    let mut stop = stop_on_signal();
    loop {
        let outcomes = lane.poll_all().await?;
        if outcomes.is_empty() {
            eprintln!(
                "no Ringba credentials: add one with `callscript org credentials set ORG ringba \
                 --public-id ACCOUNT_ID`"
            );
        }
        let failed = print_outcomes(&outcomes);
        if args.once {
            if failed > 0 {
                bail!("{failed} of {} Ringba accounts failed", outcomes.len());
            }
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = stop.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

pub async fn backfill(settings: &Settings, command: BackfillCommand) -> Result<()> {
    let BackfillCommand::Ringba(args) = command;
    let to = args.to.unwrap_or_else(Utc::now);
    if to <= args.from {
        bail!("--to {to} is not after --from {}", args.from);
    }
    let config = PollConfig {
        window: Duration::from_secs(args.window_hours.max(1) * 3600),
        ..PollConfig::default()
    };
    let mut lane = ringba_lane(settings, args.org, config).await?;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} {bar:30} {pos}/{len} windows, {msg}, {elapsed} elapsed, eta {eta}",
        )
        .expect("a valid template"),
    );
    let outcomes = lane
        .backfill_all(args.from, to, &mut |account, progress| {
            bar.set_prefix(account.to_owned());
            bar.set_length(progress.windows_total as u64);
            bar.set_position(progress.windows_done as u64);
            bar.set_message(format!("{} calls", progress.records));
        })
        .await?;
    bar.finish_and_clear();
    if outcomes.is_empty() {
        bail!(
            "no Ringba credentials to backfill: add one with `callscript org credentials set ORG \
             ringba --public-id ACCOUNT_ID`"
        );
    }
    let failed = print_outcomes(&outcomes);
    if failed > 0 {
        bail!("{failed} of {} Ringba accounts failed", outcomes.len());
    }
    Ok(())
}

/// One line per account; how many failed.
fn print_outcomes(outcomes: &[AccountOutcome]) -> usize {
    let mut failed = 0;
    for outcome in outcomes {
        match &outcome.result {
            Ok(r) => {
                println!(
                    "ringba {} (org {}): {} records in {} pages; {} queued, {} without recording, \
                     {} refreshed, {} unchanged, {} awaiting, {} resolved, {} given up",
                    outcome.account,
                    outcome.org_id,
                    r.records,
                    r.pages,
                    r.queued,
                    r.without_recording,
                    r.refreshed,
                    r.unchanged,
                    r.awaiting,
                    r.resolved,
                    r.given_up
                );
                for invalid in &r.invalid {
                    eprintln!("warning: {invalid}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!(
                    "error: ringba {} (org {}): {e}",
                    outcome.account, outcome.org_id
                );
            }
        }
    }
    failed
}

pub async fn vault(settings: &Settings, args: VaultArgs) -> Result<()> {
    let until = args.idle.until()?;
    if args.concurrency < 1 {
        bail!("--concurrency must be at least 1");
    }
    let (url, pool) = migrated_pool(settings, 4).await?;
    let client = pool.get().await?;
    let org_id = org_id(&**client, args.org).await?;
    drop(client);
    let store = open_reachable_storage(settings).await?;
    store.prepare().await?;
    let timeout = Duration::from_secs(args.timeout_seconds.max(1));
    let lane = VaultLane {
        pool: pool.clone(),
        database_url: url,
        store,
        http: callscript_ingest::http::client(timeout),
        config: VaultConfig {
            worker: args.worker_id.unwrap_or_else(default_worker_id),
            batch_size: args.concurrency,
            max_bytes: args.max_mib.saturating_mul(1024 * 1024),
            timeout,
            org_id,
            ..VaultConfig::default()
        },
    };
    let report = lane.run(until, stop_on_signal()).await?;
    println!(
        "vault: {} recordings stored ({:.1} MiB), {} skipped, {} to retry, {} dead-lettered, {} \
         lost to the rescuer",
        report.stored,
        report.bytes as f64 / (1024.0 * 1024.0),
        report.skipped,
        report.retrying,
        report.dead_lettered,
        report.lost
    );
    if let Some(left) = args.idle.left_behind(&pool, Lane::Vault, org_id).await? {
        println!("vault left: {left}");
    }
    Ok(())
}
