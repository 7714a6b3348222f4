//! Subcommands. Each one is a few lines of glue around a library call.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use callscript_core::credentials::{self, CredentialKey, CredentialSpec, Secret};
use callscript_core::db::{connect_one, connect_pool, DatabaseUrl, Pool};
use callscript_core::maintenance::{self, MaintenanceConfig};
use callscript_core::model::{Lane, Source};
use callscript_core::queue::{self, RequeueFilter};
use callscript_core::storage::{self, ObjectStore, S3Settings};
use callscript_core::{migrate, orgs};
use callscript_ingest::upload::{enqueue_file, UploadOptions};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "callscript",
    version,
    about = "Batch transcription and QA for call-center recordings"
)]
pub struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
pub struct Settings {
    /// Postgres URL.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where recordings are stored: s3://bucket[/prefix] (with CALLSCRIPT_S3_ENDPOINT,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) or a directory.
    #[arg(long, env = "CALLSCRIPT_STORAGE", global = true)]
    storage: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (idempotent) and schedule queue maintenance with pg_cron
    /// where available.
    Migrate {
        /// Only check: list pending migrations and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Manage organizations (tenants).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Store recording files and queue them for transcription (the upload lane).
    Enqueue(EnqueueArgs),
    /// Bring calls in from a source: `ringba` (poll the call log), `livekit` (egress webhooks).
    #[command(subcommand)]
    Ingest(crate::ingest::IngestCommand),
    /// Re-pull a source for a date range (cron-friendly, idempotent).
    #[command(subcommand)]
    Backfill(crate::ingest::BackfillCommand),
    /// Run the vault lane: download pending calls' recordings into the object store.
    Vault(crate::ingest::VaultArgs),
    /// Run the judge lane: evaluate the rulebook over transcribed calls, store flags with
    /// evidence, redact card numbers, move calls to `judged`.
    Judge(crate::judge::JudgeArgs),
    /// Rulebooks: check a file, print the default one, store, list and apply an organization's.
    #[command(subcommand)]
    Rules(crate::judge::RulesCommand),
    /// Managers' reports: `report daily --org ORG`.
    #[command(subcommand)]
    Report(crate::judge::ReportCommand),
    /// Run the delivery lane: send the outbox's alerts (critical flags, hot leads) to each
    /// organization's channels, with retries; until SIGTERM/SIGINT or, with --until-idle, idle.
    Notify(crate::notify::NotifyArgs),
    /// The review API (`/api/v1`) and web UI (`/`): member tokens, one organization per
    /// request under Postgres row-level security.
    Serve(crate::serve::ServeArgs),
    /// QA flags: `flags list` (filters; a table, JSON or CSV), `flags review ID` (confirm,
    /// dismiss).
    #[command(subcommand)]
    Flags(crate::review::FlagsCommand),
    /// Calls as reviewers see them: `calls show ID` (facts, transcript, flags).
    #[command(subcommand)]
    Calls(crate::review::CallsCommand),
    /// Look at and operate the call queue.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Run the transcription lane: claim downloaded calls, transcribe and diarize them, store
    /// the transcripts; until SIGTERM/SIGINT (clean stop: no call left leased).
    Worker(crate::worker::WorkerArgs),
    /// Check the configuration: database and schema, object store, model, device.
    Doctor(crate::doctor::DoctorArgs),
    /// Transcribe recording files locally (no database): text, JSON, SRT or WebVTT.
    Transcribe(crate::transcribe::TranscribeArgs),
    /// Measure transcription accuracy and speed (against faster-whisper with --compare).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Subcommand)]
enum OrgCommand {
    /// Create an organization (no change if the slug exists).
    Create {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone used for follow-ups and reports.
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// Change an organization's name or time zone.
    Set {
        slug: String,
        #[arg(long)]
        name: Option<String>,
        /// IANA time zone used for follow-ups and reports.
        #[arg(long)]
        timezone: Option<String>,
    },
    /// List organizations.
    List,
    /// An organization's API credentials (Ringba token, LiveKit key and secret), encrypted
    /// with CALLSCRIPT_CREDENTIALS_KEY.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// An organization's members (admin, reviewer, viewer) and their API tokens.
    #[command(subcommand)]
    Members(crate::review::MembersCommand),
    /// Where alerts go: Slack, signed-webhook, email and SMS channels, which events each gets,
    /// and when (quiet hours, a rate limit).
    #[command(subcommand)]
    Notify(crate::notify::ChannelCommand),
    /// Queue health alerts: thresholds and the latest conditions.
    #[command(subcommand)]
    Alerts(crate::notify::AlertsCommand),
}

#[derive(Subcommand)]
enum CredentialsCommand {
    /// Store a credential; its secret is read from standard input (never from the command
    /// line, where shells and process lists keep it).
    Set {
        /// Organization slug.
        org: String,
        /// What it is for: ringba, livekit, ...
        kind: String,
        /// Several of one kind (e.g. Ringba accounts) are told apart by label.
        #[arg(long, default_value = "default")]
        label: String,
        /// The non-secret part: a Ringba account id, a LiveKit API key.
        #[arg(long)]
        public_id: Option<String>,
        /// The API's base URL when not the vendor's default (LiveKit: the project URL, e.g.
        /// https://my-project.livekit.cloud; Ringba: https://api.ringba.com/v2).
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// List an organization's credentials (never their secrets).
    List { org: String },
    /// Delete a credential.
    Delete {
        org: String,
        kind: String,
        #[arg(long, default_value = "default")]
        label: String,
    },
}

#[derive(Args)]
struct EnqueueArgs {
    /// Recording files (WAV, FLAC, MP3, OGG, M4A, AAC, WebM).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Organization slug.
    #[arg(long)]
    org: String,
    /// Campaign name (created for uploads if new).
    #[arg(long)]
    campaign: Option<String>,
    /// Higher is served first.
    #[arg(long, default_value_t = 0)]
    priority: i16,
    /// When the calls happened (RFC 3339); defaults to each file's modification time.
    #[arg(long)]
    started_at: Option<DateTime<Utc>>,
    /// Largest file accepted, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_mib: u64,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Counts by organization and state, and the calls each lane takes next.
    Show {
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
        /// How many upcoming calls to list per lane.
        #[arg(long, default_value_t = 10)]
        next: i64,
    },
    /// Bring dead-lettered (failed) calls back to the queue.
    Requeue {
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
        /// Only these calls (repeatable); all failed calls when omitted.
        #[arg(long = "call")]
        calls: Vec<Uuid>,
    },
    /// Rescue expired leases and age waiting calls once, or every --interval with --watch.
    Maintain {
        #[arg(long)]
        watch: bool,
        /// Seconds between passes with --watch.
        #[arg(long, default_value_t = 30)]
        interval: u64,
    },
}

pub async fn run(cli: Cli) -> Result<()> {
    let settings = cli.settings;
    match cli.command {
        Command::Migrate { check } => migrate_database(&settings, check).await,
        Command::Worker(args) => crate::worker::run(&settings, args).await,
        Command::Doctor(args) => crate::doctor::run(&settings, args).await,
        Command::Org(command) => org(&settings, command).await,
        Command::Enqueue(args) => enqueue(&settings, args).await,
        Command::Queue(command) => queue_command(&settings, command).await,
        Command::Ingest(command) => crate::ingest::ingest(&settings, command).await,
        Command::Backfill(command) => crate::ingest::backfill(&settings, command).await,
        Command::Vault(args) => crate::ingest::vault(&settings, args).await,
        Command::Judge(args) => crate::judge::judge(&settings, args).await,
        Command::Rules(command) => crate::judge::rules(&settings, command).await,
        Command::Report(command) => crate::judge::report(&settings, command).await,
        Command::Serve(args) => crate::serve::serve(&settings, args).await,
        Command::Notify(args) => crate::notify::notify(&settings, args).await,
        Command::Flags(command) => crate::review::flags(&settings, command).await,
        Command::Calls(command) => crate::review::calls(&settings, command).await,
        Command::Transcribe(args) => crate::transcribe::run(args),
        Command::Bench(command) => crate::bench::run(&settings, command).await,
    }
}

pub fn database_url(settings: &Settings) -> Result<DatabaseUrl> {
    match &settings.database_url {
        Some(url) if !url.trim().is_empty() => Ok(DatabaseUrl::new("DATABASE_URL", url.clone())),
        _ => Ok(DatabaseUrl::from_env()?),
    }
}

/// A pool of `size` connections to the settings' database, whose schema is checked to be
/// current (a binary newer than the database says to run `callscript migrate`).
pub async fn migrated_pool(settings: &Settings, size: usize) -> Result<(DatabaseUrl, Pool)> {
    let url = database_url(settings)?;
    let pool = connect_pool(&url, size).await?;
    migrate::ensure_current(&**pool.get().await?).await?;
    Ok((url, pool))
}

pub async fn pool(settings: &Settings) -> Result<Pool> {
    Ok(migrated_pool(settings, 4).await?.1)
}

pub async fn org_id(client: &impl GenericClient, slug: Option<String>) -> Result<Option<Uuid>> {
    Ok(match slug {
        Some(slug) => Some(orgs::by_slug(client, &slug).await?.id),
        None => None,
    })
}

pub fn open_storage(settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    let url = match &settings.storage {
        Some(url) if !url.trim().is_empty() => url.clone(),
        _ => default_storage_dir()?,
    };
    Ok(storage::open(&url, S3Settings::from_env())?)
}

/// The object store of the settings, checked to answer (a read of a key that need not exist:
/// bucket, endpoint and credentials are tried, nothing is written).
pub async fn open_reachable_storage(settings: &Settings) -> Result<Arc<dyn ObjectStore>> {
    let store = open_storage(settings)?;
    store
        .head("callscript-probe")
        .await
        .with_context(|| format!("checking the object store {}", store.describe()))?;
    Ok(store)
}

/// `$XDG_DATA_HOME/callscript/objects`, else `~/.local/share/callscript/objects`.
fn default_storage_dir() -> Result<String> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .context("CALLSCRIPT_STORAGE is not set and there is no HOME to keep objects in")?;
    Ok(base.join("callscript/objects").display().to_string())
}

async fn migrate_database(settings: &Settings, check: bool) -> Result<()> {
    let (mut client, connection) = connect_one(&database_url(settings)?).await?;
    tokio::spawn(connection);
    if check {
        let pending = migrate::pending(&client).await?;
        if pending.is_empty() {
            println!(
                "the database schema is current ({} migrations)",
                migrate::MIGRATIONS.len()
            );
            return Ok(());
        }
        for name in &pending {
            println!("pending  {name}");
        }
        bail!(
            "{} migrations pending: run `callscript migrate`",
            pending.len()
        );
    }
    let report = migrate::migrate(&mut client).await?;
    for name in &report.applied {
        println!("applied  {name}");
    }
    println!(
        "migrations: {} applied now, {} already applied",
        report.applied.len(),
        report.already_applied
    );
    match report.maintenance_schedule.as_str() {
        "scheduled" => println!("queue maintenance: scheduled with pg_cron every minute"),
        why => println!("queue maintenance: run by the service ({why})"),
    }
    Ok(())
}

async fn org(settings: &Settings, command: OrgCommand) -> Result<()> {
    let pool = pool(settings).await?;
    let client = pool.get().await?;
    match command {
        OrgCommand::Create {
            slug,
            name,
            timezone,
        } => {
            let name = name.unwrap_or_else(|| slug.clone());
            let (org, created) = orgs::ensure(&**client, &slug, &name, &timezone).await?;
            let verb = if created { "created" } else { "exists " };
            println!("{verb} {} {} ({})", org.slug, org.id, org.name);
        }
        OrgCommand::Set {
            slug,
            name,
            timezone,
        } => {
            let org = orgs::update(&**client, &slug, name.as_deref(), timezone.as_deref()).await?;
            println!(
                "updated {} {} {} ({})",
                org.slug, org.id, org.timezone, org.name
            );
        }
        OrgCommand::Credentials(command) => credentials_command(&**client, command).await?,
        OrgCommand::Members(command) => crate::review::members(&**client, command).await?,
        OrgCommand::Notify(command) => crate::notify::channels_command(&pool, command).await?,
        OrgCommand::Alerts(command) => crate::notify::alerts_command(&pool, command).await?,
        OrgCommand::List => {
            for org in orgs::list(&**client).await? {
                println!(
                    "{:<24} {} {} ({})",
                    org.slug, org.id, org.timezone, org.name
                );
            }
        }
    }
    Ok(())
}

/// A secret from standard input (never from the command line, where shells and process lists
/// keep it), without its final newline; `example` shows how to pipe one in.
pub fn read_secret(example: &str) -> Result<String> {
    let mut secret = String::new();
    std::io::stdin()
        .read_to_string(&mut secret)
        .context("reading the secret from standard input")?;
    let secret = secret.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        bail!("no secret on standard input ({example})");
    }
    Ok(secret.to_owned())
}

async fn credentials_command(
    client: &impl GenericClient,
    command: CredentialsCommand,
) -> Result<()> {
    match command {
        CredentialsCommand::Set {
            org,
            kind,
            label,
            public_id,
            endpoint,
        } => {
            let key = CredentialKey::from_env()?;
            let org = orgs::by_slug(client, &org).await?;
            let secret =
                read_secret("e.g. `printenv RINGBA_TOKEN | callscript org credentials set ...`")?;
            let secret = secret.as_str();
            let spec = CredentialSpec {
                kind: &kind,
                label: &label,
                public_id: public_id.as_deref(),
                endpoint: endpoint.as_deref(),
            };
            credentials::store(client, &key, org.id, &spec, &Secret::new(secret)).await?;
            println!("stored {kind}/{label} for {} (key {})", org.slug, key.id());
        }
        CredentialsCommand::List { org } => {
            let org = orgs::by_slug(client, &org).await?;
            for c in credentials::list(client, org.id).await? {
                println!(
                    "{:<12} {:<16} {:<24} {:<32} key {} updated {}",
                    c.kind,
                    c.label,
                    c.public_id.as_deref().unwrap_or("-"),
                    c.endpoint.as_deref().unwrap_or("(default endpoint)"),
                    c.key_id,
                    c.updated_at.format("%Y-%m-%d %H:%M:%S")
                );
            }
        }
        CredentialsCommand::Delete { org, kind, label } => {
            let org = orgs::by_slug(client, &org).await?;
            if !credentials::delete(client, org.id, &kind, &label).await? {
                bail!("{} has no {kind}/{label} credential", org.slug);
            }
            println!("deleted {kind}/{label} of {}", org.slug);
        }
    }
    Ok(())
}

async fn enqueue(settings: &Settings, args: EnqueueArgs) -> Result<()> {
    let pool = pool(settings).await?;
    let store = open_storage(settings)?;
    store.prepare().await?;
    let client = pool.get().await?;
    let org = orgs::by_slug(&**client, &args.org).await?;
    let campaign_id = match &args.campaign {
        Some(name) => {
            Some(orgs::ensure_campaign(&**client, org.id, Source::Upload, name, name).await?)
        }
        None => None,
    };
    let options = UploadOptions {
        org_id: org.id,
        campaign_id,
        priority: args.priority,
        started_at: args.started_at,
        max_bytes: args.max_mib.saturating_mul(1 << 20),
    };
    let (mut queued, mut known, mut failed) = (0, 0, 0);
    // One bad file is reported and skipped; the others are still queued.
    for path in &args.files {
        match enqueue_file(&**client, store.as_ref(), path, &options).await {
            Ok(upload) => {
                let verb = if upload.newly_queued {
                    queued += 1;
                    "queued "
                } else {
                    known += 1;
                    "already"
                };
                println!(
                    "{verb} {} {} ({} bytes)",
                    upload.call_id,
                    path.display(),
                    upload.size
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    println!(
        "{queued} queued, {known} already queued, {failed} failed, into {}",
        store.describe()
    );
    if failed > 0 {
        bail!("{failed} of {} files could not be queued", args.files.len());
    }
    Ok(())
}

async fn queue_command(settings: &Settings, command: QueueCommand) -> Result<()> {
    let pool = pool(settings).await?;
    let client = pool.get().await?;
    match command {
        QueueCommand::Show { org, next } => {
            let org_id = org_id(&**client, org).await?;
            let counts = queue::counts(&**client, org_id).await?;
            if counts.is_empty() {
                println!("the queue is empty");
            }
            println!(
                "{:<24} {:<14} {:>8} {:>9}",
                "org", "state", "calls", "retrying"
            );
            for count in &counts {
                println!(
                    "{:<24} {:<14} {:>8} {:>9}",
                    count.org_slug, count.state, count.calls, count.retrying
                );
            }
            for lane in Lane::ALL {
                let upcoming = queue::peek(&**client, *lane, next).await?;
                if upcoming.is_empty() {
                    continue;
                }
                println!("\nnext for the {lane} lane ({} state):", lane.ready_state());
                for call in upcoming {
                    let name = call
                        .metadata
                        .get("filename")
                        .and_then(|v| v.as_str())
                        .unwrap_or(&call.external_id);
                    println!(
                        "  {} p{:<3} {} {} {}",
                        call.id,
                        call.priority,
                        call.call_started_at.format("%Y-%m-%d %H:%M:%S"),
                        call.source,
                        name
                    );
                }
            }
        }
        QueueCommand::Requeue { org, calls } => {
            let filter = RequeueFilter {
                org_id: org_id(&**client, org).await?,
                call_ids: calls,
            };
            let requeued = queue::requeue_failed(&**client, &filter).await?;
            println!("{requeued} failed calls re-queued");
        }
        QueueCommand::Maintain { watch, interval } => {
            let config = MaintenanceConfig {
                interval: Duration::from_secs(interval),
            };
            if let Err(problem) = config.validate() {
                bail!("--interval: {problem}");
            }
            if watch {
                drop(client);
                maintenance::run_until(pool, config, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await;
            } else {
                let report = maintenance::run_once(&**client).await?;
                println!(
                    "rescued {} expired leases, dead-lettered {}, aged {} waiting calls",
                    report.rescued, report.dead_lettered, report.aged
                );
            }
        }
    }
    Ok(())
}

/// `HOST-PID`: who holds a lane's leases, as shown in the queue.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "callscript".into());
    format!("{host}-{}", std::process::id())
}

/// A stop flag that turns true on SIGTERM (RunPod, Kubernetes, systemd) or SIGINT (Ctrl-C).
pub fn stop_on_signal() -> tokio::sync::watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Registered here, not in the task: from the moment this returns, SIGTERM or Ctrl-C asks for
    // a clean stop instead of killing the process (a pod preempted while the model loads).
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    tokio::spawn(async move {
        let recv = |signal: Option<tokio::signal::unix::Signal>| async move {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = recv(interrupt) => {}
            () = recv(terminate) => {}
        }
        let _ = stop_tx.send(true);
    });
    stop
}
