//! `callscript worker`: the transcription lane of one GPU (or CPU) until SIGTERM/SIGINT.
//!
//! Start-up checks everything that would make the worker useless before it claims a call: the
//! settings, the database and its schema (migrations are a deploy step, never the worker's),
//! the object store, the model and the speaker encoder. Queue maintenance (the rescuer) runs
//! here too when pg_cron does not run it in the database.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use callscript_core::maintenance::{self, MaintenanceConfig};
use callscript_core::metrics::{self, Registry};
use callscript_core::model::Lane;
use callscript_core::orgs;
use callscript_worker::batching::windows_per_batch;
use callscript_worker::device::{self, Device};
use callscript_worker::lane::{LaneConfig, TranscribeLane};
use callscript_worker::transcribe::{TranscribeOptions, Transcriber};
use clap::Args;
use tokio::net::TcpListener;

use crate::commands::{
    default_worker_id, migrated_pool, open_reachable_storage, stop_on_signal, Settings,
};
use crate::idle::IdleArgs;
use crate::transcribe::{open_decoder, set_threads, LimitArgs, ModelArgs, SpeakerArgs};

/// The most windows one forward pass takes: on the CPU more do not go faster (the cores are
/// busy from 8 on), on a GPU they do until memory runs out.
const MAX_WINDOWS_CPU: usize = 8;
const MAX_WINDOWS_GPU: usize = 128;

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Do not label speakers and roles (stereo: a channel each; mono: speaker embeddings).
    #[arg(long)]
    no_diarize: bool,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Lease owner name shown in the queue (default: host name and process id).
    #[arg(long, env = "CALLSCRIPT_WORKER_ID")]
    worker_id: Option<String>,
    /// The model's name stored with transcripts and usage (default: the --model folder's name,
    /// or the hub id).
    #[arg(long, env = "CALLSCRIPT_MODEL_NAME")]
    model_name: Option<String>,
    /// Serve only this organization's calls (a tenant's dedicated workers); default: every
    /// organization's, round-robin.
    #[arg(long, env = "CALLSCRIPT_ORG")]
    org: Option<String>,
    /// Calls claimed at once.
    #[arg(long, env = "CALLSCRIPT_BATCH_CALLS", default_value_t = 16)]
    batch_calls: i64,
    /// Windows per forward pass (default: what the device's free memory holds, at most 8 on
    /// the CPU and 128 on a GPU).
    #[arg(long, env = "CALLSCRIPT_BATCH_SIZE")]
    batch_size: Option<usize>,
    /// Seconds a lease lasts without a heartbeat.
    #[arg(long, env = "CALLSCRIPT_LEASE_SECONDS", default_value_t = 60.0)]
    lease_seconds: f64,
    /// Seconds between heartbeats (at most half the lease).
    #[arg(long, env = "CALLSCRIPT_HEARTBEAT_SECONDS", default_value_t = 10.0)]
    heartbeat_seconds: f64,
    /// Longest wait for new calls between polls (notifications wake the worker sooner).
    #[arg(long, default_value_t = 5.0)]
    poll_seconds: f64,
    /// After SIGTERM/SIGINT, how long the batch in the model may run before it is released.
    #[arg(long, env = "CALLSCRIPT_GRACE_SECONDS", default_value_t = 30.0)]
    grace_seconds: f64,
    /// USD per hour of this worker (the pod's price), for the cost in `core.usage`.
    #[arg(long, env = "CALLSCRIPT_COST_PER_HOUR", default_value_t = 0.0)]
    cost_per_hour: f64,
    /// Serve Prometheus metrics on this address (`0.0.0.0:9464`).
    #[arg(long, env = "CALLSCRIPT_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    idle: IdleArgs,
    /// Seconds between rescuer passes run by this worker when pg_cron does not run them.
    #[arg(long, default_value_t = 30)]
    maintenance_seconds: u64,
    #[command(flatten)]
    limits: LimitArgs,
}

pub(crate) fn seconds(name: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{name}: {value} is not a duration"))
}

/// The model's name as stored with transcripts: a folder's last component, or the hub id.
pub(crate) fn model_name(spec: &str) -> String {
    let path = std::path::Path::new(spec);
    if path.exists() {
        if let Some(name) = path.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    spec.to_owned()
}

/// The transcriber the worker lane runs: the model on its device with as many windows per pass
/// as the device's free memory holds (at most [`MAX_WINDOWS_CPU`] on the CPU and
/// [`MAX_WINDOWS_GPU`] on a GPU) unless `batch_size` says, diarizing with `speakers` when given.
/// `callscript bench calls` opens the same one, so it measures what the worker does. Returns the
/// windows per pass too.
pub(crate) fn open_lane_transcriber(
    model: &ModelArgs,
    batch_size: Option<usize>,
    speakers: Option<&SpeakerArgs>,
) -> Result<(Transcriber, Device, usize)> {
    let (decoder, device) = tokio::task::block_in_place(|| {
        open_decoder(&model.model, &model.device, model.decode_options(true))
    })?;
    let batch_size = match batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(size) => size,
        None => {
            let cap = if device.is_cpu() {
                MAX_WINDOWS_CPU
            } else {
                MAX_WINDOWS_GPU
            };
            match device::memory(&device) {
                Some(memory) => windows_per_batch(
                    &decoder.model().dims,
                    decoder.model().dtype(),
                    model.beam_size,
                    memory.free,
                    cap,
                ),
                None => MAX_WINDOWS_CPU,
            }
        }
    };
    let options = TranscribeOptions {
        batch_size,
        initial_prompt: model.initial_prompt.clone(),
        ..TranscribeOptions::default()
    };
    let mut transcriber = Transcriber::new(decoder, options)?.with_silero(model.open_vad()?);
    if let Some(speakers) = speakers {
        transcriber = transcriber.with_diarizer(speakers.open_diarizer()?);
    }
    Ok((transcriber, device, batch_size))
}

pub async fn run(settings: &Settings, args: WorkerArgs) -> Result<()> {
    // First, so a SIGTERM during the checks and the model load is a clean stop (exit 0, nothing
    // claimed), not a killed process.
    let stop = stop_on_signal();
    let mut config = LaneConfig {
        worker_id: args.worker_id.clone().unwrap_or_else(default_worker_id),
        batch_calls: args.batch_calls,
        org_id: None,
        lease_for: seconds("--lease-seconds", args.lease_seconds)?,
        heartbeat_every: seconds("--heartbeat-seconds", args.heartbeat_seconds)?,
        poll_interval: seconds("--poll-seconds", args.poll_seconds)?,
        grace: seconds("--grace-seconds", args.grace_seconds)?,
        model_name: args
            .model_name
            .clone()
            .unwrap_or_else(|| model_name(&args.model.model)),
        cost_per_hour: args.cost_per_hour,
        limits: args.limits.limits(),
        until: args.idle.until()?,
        gauges_every: args.metrics_addr.map(|_| Duration::from_secs(15)),
    };
    config.validate().map_err(anyhow::Error::msg)?;
    let maintenance_config = MaintenanceConfig {
        interval: Duration::from_secs(args.maintenance_seconds),
    };
    maintenance_config
        .validate()
        .map_err(|problem| anyhow::anyhow!("--maintenance-seconds: {problem}"))?;
    set_threads(args.model.threads)?;

    let (url, pool) = migrated_pool(settings, 4).await?;
    let client = pool.get().await?;
    if let Some(slug) = &args.org {
        config.org_id = Some(orgs::by_slug(&**client, slug).await?.id);
    }
    let run_maintenance = !maintenance::scheduled_by_pg_cron(&**client).await?;
    drop(client);
    let store = open_reachable_storage(settings).await?;

    // The model last: the slowest check, and the one that needs the settings above to matter.
    let speakers = (!args.no_diarize).then_some(&args.speakers);
    let (transcriber, device, batch_size) =
        open_lane_transcriber(&args.model, args.batch_size, speakers)?;

    let registry = Registry::new();
    registry
        .gauge(
            "callscript_batch_windows",
            "Windows per forward pass this worker uses.",
            &[],
        )
        .set(batch_size as f64);
    let wait_stop = move || {
        let mut stop = stop.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    };
    if let Some(addr) = args.metrics_addr {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("--metrics-addr {addr}"))?;
        tokio::spawn(metrics::serve(listener, registry.clone(), wait_stop()));
    }
    let maintenance = run_maintenance.then(|| {
        tokio::spawn(maintenance::run_until(
            pool.clone(),
            maintenance_config,
            wait_stop(),
        ))
    });
    eprintln!(
        "worker {}: model {} on {}, {} calls per claim, {} windows per pass{}",
        config.worker_id,
        config.model_name,
        device::describe(&device),
        config.batch_calls,
        batch_size,
        if run_maintenance {
            "; running the rescuer (no pg_cron schedule)"
        } else {
            ""
        }
    );
    let org_id = config.org_id;
    let lane = TranscribeLane {
        pool: pool.clone(),
        database_url: url,
        store,
        device,
        config,
        metrics: registry,
    };
    let report = lane.run(transcriber, wait_stop()).await?;
    if let Some(maintenance) = maintenance {
        maintenance.abort();
    }
    eprintln!(
        "worker stopped: {} calls transcribed ({:.1} s of audio) in {} batches; {} failed, {} \
         dead-lettered, {} released, {} lost to the rescuer",
        report.transcribed,
        report.audio_seconds,
        report.batches,
        report.failed,
        report.dead_lettered,
        report.released,
        report.lease_lost
    );
    if let Some(left) = args
        .idle
        .left_behind(&pool, Lane::Transcribe, org_id)
        .await?
    {
        eprintln!("worker left: {left}");
    }
    Ok(())
}
