//! The transcription lane: `downloaded` calls in, transcripts out, as `callscript worker` runs
//! it on a GPU pod (or a CPU box).
//!
//! Three loops share the worker's leases:
//!
//! - the **fetcher** claims a batch (LIFO, round-robin across orgs; see `core::queue`), fetches
//!   and decodes its audio, and hands it over through a one-slot channel. It claims the next
//!   batch only once the slot is free, i.e. while the model works on the previous one: audio is
//!   prefetched, and at most two batches are leased at a time.
//! - the **transcriber** decodes a batch's calls together (chunks of all calls share the
//!   model's batches) on a blocking thread, then stores each call's result in its own
//!   transaction fenced by its lease: the transcript, its segments, its usage and the move to
//!   `transcribed` commit together or not at all.
//! - the **heartbeat** extends every held lease; a lease found rescued is dropped.
//!
//! A call that cannot be fetched or decoded fails alone (`core::queue::fail`: backoff, or the
//! dead letter when retrying cannot help); if a batch fails in the model, its calls are run one
//! by one so only the bad one fails. On shutdown the fetcher stops claiming, the batch in the
//! model gets `grace` to finish and be stored, and every lease still held is released: a clean
//! stop leaves no call leased. A killed worker's leases expire and the rescuer takes them back;
//! its late writes, if it ever makes any, are refused by the fence.

mod leases;
mod prepare;
mod results;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callscript_core::db::{DatabaseUrl, Pool};
use callscript_core::metrics::{Counter, Gauge, Registry};
use callscript_core::model::{CallState, Lane};
use callscript_core::queue::{
    self, ClaimRequest, Claimed, Failed, IdleWatch, QueueError, QueueListener, Retry, Until,
};
use callscript_core::storage::ObjectStore;
use callscript_core::usage::UsageRecord;
use callscript_core::workers;
use candle_core::Device;
use tokio::sync::{mpsc, watch};

use crate::audio::AudioLimits;
use crate::device;
use crate::transcribe::{Recording, Transcriber};
use crate::transcript::Transcript;
use leases::HeldLeases;
use prepare::{CallFailure, ReadyCall};
use results::CallFacts;

/// How the lane runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneConfig {
    /// Who holds the leases (pod, host, process), shown in the queue and in rescue messages.
    pub worker_id: String,
    /// Calls claimed at once.
    pub batch_calls: i64,
    /// Only this organization's calls (`None`: every organization's, round-robin).
    pub org_id: Option<uuid::Uuid>,
    /// How long a lease lasts without a heartbeat.
    pub lease_for: Duration,
    pub heartbeat_every: Duration,
    /// The longest wait for work when no notification comes.
    pub poll_interval: Duration,
    /// How long a batch in the model may still run after a stop is asked for.
    pub grace: Duration,
    /// The model's name as stored with transcripts and usage.
    pub model_name: String,
    /// USD per hour of this worker, for `core.usage.cost_usd`.
    pub cost_per_hour: f64,
    pub limits: AudioLimits,
    /// Wait for more calls until stopped, or exit once idle (draining a queue, a cron or
    /// serverless run, benchmarks): see `core::queue::IdleWatch`.
    pub until: Until,
    /// Refresh queue-depth and device-memory gauges this often (`None`: never).
    pub gauges_every: Option<Duration>,
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            worker_id: "worker".into(),
            batch_calls: 16,
            org_id: None,
            lease_for: Duration::from_secs(60),
            heartbeat_every: Duration::from_secs(10),
            poll_interval: Duration::from_secs(5),
            grace: Duration::from_secs(30),
            model_name: "whisper".into(),
            cost_per_hour: 0.0,
            limits: AudioLimits::default(),
            until: Until::Stopped,
            gauges_every: None,
        }
    }
}

impl LaneConfig {
    /// Settings that cannot work, named.
    pub fn validate(&self) -> Result<(), String> {
        if self.worker_id.trim().is_empty() {
            return Err("the worker id is empty".into());
        }
        if !(1..=1000).contains(&self.batch_calls) {
            return Err(format!(
                "calls per batch must be 1 to 1000, got {}",
                self.batch_calls
            ));
        }
        if self.heartbeat_every.is_zero() || self.heartbeat_every * 2 > self.lease_for {
            return Err(format!(
                "the heartbeat ({:?}) must be positive and at most half the lease ({:?}), so a \
                 lease survives one missed beat",
                self.heartbeat_every, self.lease_for
            ));
        }
        if self.poll_interval.is_zero() {
            return Err("the poll interval must be positive".into());
        }
        if !(self.cost_per_hour.is_finite() && self.cost_per_hour >= 0.0) {
            return Err(format!(
                "the cost per hour must be a non-negative number, got {}",
                self.cost_per_hour
            ));
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneReport {
    pub batches: u64,
    pub transcribed: u64,
    /// Failed calls that will be retried after a backoff.
    pub failed: u64,
    /// Failed calls moved to the dead letter (`failed` state).
    pub dead_lettered: u64,
    /// Results dropped because their lease was rescued first.
    pub lease_lost: u64,
    /// Leases given back unprocessed at shutdown.
    pub released: u64,
    /// Results that could not be stored (the rescuer retries them when their lease expires).
    pub store_failed: u64,
    pub audio_seconds: f64,
}

/// How a call left this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Transcribed,
    Failed,
    DeadLettered,
    LeaseLost,
    Released,
    StoreFailed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Transcribed => "transcribed",
            Outcome::Failed => "failed",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::LeaseLost => "lease_lost",
            Outcome::Released => "released",
            Outcome::StoreFailed => "store_failed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("invalid worker setting: {0}")]
    Config(String),
    #[error("the transcription thread crashed: {0}")]
    Crashed(String),
}

/// The lane's Prometheus series.
#[derive(Debug, Clone)]
struct LaneMetrics {
    registry: Registry,
    audio_seconds: Counter,
    inference_seconds: Counter,
    batches: Counter,
    batch_calls: Gauge,
    leases_held: Gauge,
}

impl LaneMetrics {
    fn new(registry: Registry) -> Self {
        Self {
            audio_seconds: registry.counter(
                "callscript_audio_seconds_total",
                "Seconds of audio transcribed (rate: audio seconds per second).",
                &[],
            ),
            inference_seconds: registry.counter(
                "callscript_inference_seconds_total",
                "Wall seconds spent in the model.",
                &[],
            ),
            batches: registry.counter(
                "callscript_batches_total",
                "Batches of calls transcribed.",
                &[],
            ),
            batch_calls: registry.gauge("callscript_batch_calls", "Calls in the last batch.", &[]),
            leases_held: registry.gauge(
                "callscript_leases_held",
                "Calls this worker holds a lease on.",
                &[],
            ),
            registry,
        }
    }

    fn calls(&self, outcome: Outcome) -> Counter {
        self.registry.counter(
            "callscript_calls_total",
            "Calls finished by this worker, by outcome.",
            &[("lane", "transcribe"), ("outcome", outcome.label())],
        )
    }
}

/// Everything the loops share.
struct Shared {
    pool: Pool,
    store: Arc<dyn ObjectStore>,
    config: LaneConfig,
    held: HeldLeases,
    metrics: LaneMetrics,
    on_gpu: bool,
    report: Mutex<LaneReport>,
}

impl Shared {
    /// Counts a call's outcome in the report and the metrics.
    fn count(&self, outcome: Outcome, audio_seconds: f64) {
        self.metrics.calls(outcome).inc();
        let mut report = self.report.lock().expect("report poisoned");
        match outcome {
            Outcome::Transcribed => {
                report.transcribed += 1;
                report.audio_seconds += audio_seconds;
                self.metrics.audio_seconds.add(audio_seconds);
            }
            Outcome::Failed => report.failed += 1,
            Outcome::DeadLettered => report.dead_lettered += 1,
            Outcome::LeaseLost => report.lease_lost += 1,
            Outcome::Released => report.released += 1,
            Outcome::StoreFailed => report.store_failed += 1,
        }
    }
}

/// A batch whose audio is ready.
struct Batch {
    calls: Vec<ReadyCall>,
}

/// The transcription lane of one worker process.
pub struct TranscribeLane {
    pub pool: Pool,
    /// For LISTEN/NOTIFY; the lane polls when it cannot listen.
    pub database_url: DatabaseUrl,
    pub store: Arc<dyn ObjectStore>,
    /// The device the model runs on (usage is GPU or CPU seconds; memory gauges).
    pub device: Device,
    pub config: LaneConfig,
    pub metrics: Registry,
}

impl TranscribeLane {
    /// Runs until `shutdown` completes (then stops cleanly, see the module docs) or, with
    /// [`Until::Idle`], until no call is ready or falls due within the wait.
    pub async fn run(
        self,
        transcriber: Transcriber,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<LaneReport, LaneError> {
        self.config.validate().map_err(LaneError::Config)?;
        let shared = Arc::new(Shared {
            pool: self.pool,
            store: self.store,
            held: HeldLeases::default(),
            metrics: LaneMetrics::new(self.metrics),
            on_gpu: !self.device.is_cpu(),
            config: self.config,
            report: Mutex::default(),
        });
        let (stop_tx, stop) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let stopper = {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                shutdown.await;
                tracing::info!("stop requested: no new claims; finishing the current batch");
                let _ = stop_tx.send(true);
            })
        };
        let heartbeat = tokio::spawn(leases::heartbeat_loop(
            shared.pool.clone(),
            shared.held.clone(),
            leases::HeartbeatConfig {
                worker_id: shared.config.worker_id.clone(),
                org_id: shared.config.org_id,
                every: shared.config.heartbeat_every,
                lease_for: shared.config.lease_for,
            },
            shared.metrics.clone(),
        ));
        let gauges = shared
            .config
            .gauges_every
            .map(|every| tokio::spawn(gauge_loop(shared.clone(), self.device.clone(), every)));
        let listener = QueueListener::connect_or_poll(&self.database_url).await;
        let (batches_tx, mut batches) = mpsc::channel(1);
        let fetcher = tokio::spawn(fetch_loop(
            shared.clone(),
            listener,
            batches_tx,
            stop.clone(),
        ));

        let mut transcriber = Some(transcriber);
        let mut outcome = Ok(());
        while let Some(model) = transcriber.take() {
            let mut stopping = stop.clone();
            let batch = tokio::select! {
                batch = batches.recv() => batch,
                () = stopped(&mut stopping) => None,
            };
            let Some(batch) = batch else { break };
            match transcribe_batch(&shared, model, batch, stop.clone()).await {
                Ok(Some(model)) => transcriber = Some(model),
                // The grace period ran out with the batch still in the model.
                Ok(None) => break,
                Err(e) => outcome = Err(e),
            }
            if *stop.borrow() {
                break;
            }
        }

        // Stop: no more claims; everything still leased goes back to the queue.
        let _ = stop_tx.send(true);
        let _ = fetcher.await;
        drop(batches);
        for lease in shared.held.take_all() {
            match async { queue::release(&**shared.pool.get().await?, &lease).await }.await {
                Ok(()) => shared.count(Outcome::Released, 0.0),
                // Lost meanwhile, or the database is gone: the rescuer takes it back when the
                // lease expires.
                Err(e) => tracing::warn!(call_id = %lease.call_id, error = %e, "cannot release"),
            }
        }
        heartbeat.abort();
        if let Err(e) =
            async { workers::sign_off(&**shared.pool.get().await?, &shared.config.worker_id).await }
                .await
        {
            tracing::warn!(error = %e, "cannot sign off from core.workers");
        }
        stopper.abort();
        if let Some(gauges) = gauges {
            gauges.abort();
        }
        shared.metrics.leases_held.set(0.0);
        let report = shared.report.lock().expect("report poisoned").clone();
        outcome.map(|()| report)
    }
}

/// Completes once a stop is asked for (or the lane is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Claims, fetches and decodes batches until stopped (or, with [`Until::Idle`], until nothing
/// is ready or falls due within the wait), one ahead of the model.
async fn fetch_loop(
    shared: Arc<Shared>,
    mut listener: Option<QueueListener>,
    batches: mpsc::Sender<Batch>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut idle = match config.until {
        Until::Stopped => None,
        Until::Idle { wait } => Some(IdleWatch::new(Lane::Transcribe, config.org_id, wait)),
    };
    loop {
        if *stop.borrow() {
            return;
        }
        // Wait for the slot first: the next batch is claimed only when it can be handed over.
        let permit = tokio::select! {
            permit = batches.reserve() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = stopped(&mut stop) => return,
        };
        let claimed = match claim(&shared).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming failed; trying again");
                drop(permit);
                tokio::select! {
                    () = tokio::time::sleep(config.poll_interval) => continue,
                    () = stopped(&mut stop) => return,
                }
            }
        };
        if claimed.is_empty() {
            drop(permit);
            let pause = match &mut idle {
                None => config.poll_interval,
                Some(idle) => match next_claim_in(&shared, idle).await {
                    Ok(Some(due_in)) => due_in.min(config.poll_interval),
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot tell when calls fall due; polling");
                        config.poll_interval
                    }
                },
            };
            tokio::select! {
                () = queue::wait_for_work(&mut listener, Lane::Transcribe, pause) => continue,
                () = stopped(&mut stop) => return,
            }
        }
        if let Some(idle) = &mut idle {
            idle.busy();
        }
        tracing::debug!(calls = claimed.len(), "claimed a batch");
        let mut ready = Vec::new();
        for prepared in prepare::prepare_all(&shared.store, claimed, config.limits).await {
            match prepared {
                Ok(call) => ready.push(call),
                Err((claimed, failure)) => fail_call(&shared, &claimed, &failure).await,
            }
        }
        if ready.is_empty() {
            continue;
        }
        // Stopped while fetching: the leases are released with the rest at shutdown.
        if *stop.borrow() {
            return;
        }
        permit.send(Batch { calls: ready });
    }
}

async fn claim(shared: &Shared) -> Result<Vec<Claimed>, QueueError> {
    let client = shared.pool.get().await?;
    let claimed = queue::claim(
        &**client,
        &ClaimRequest {
            lane: Lane::Transcribe,
            worker: &shared.config.worker_id,
            batch_size: shared.config.batch_calls,
            lease_for: shared.config.lease_for,
            org_id: shared.config.org_id,
        },
    )
    .await?;
    for call in &claimed {
        shared.held.insert(call.lease.clone());
    }
    Ok(claimed)
}

async fn next_claim_in(
    shared: &Shared,
    idle: &mut IdleWatch,
) -> Result<Option<Duration>, QueueError> {
    idle.next_claim_in(&**shared.pool.get().await?).await
}

/// Records a call's failure under its lease and lets the lease go.
async fn fail_call(shared: &Shared, claimed: &Claimed, failure: &CallFailure) {
    let call_id = claimed.call.id;
    let result = async {
        let client = shared.pool.get().await?;
        queue::fail(&**client, &claimed.lease, &failure.message, failure.retry).await
    }
    .await;
    shared.held.remove(call_id);
    match result {
        Ok(Failed::WillRetry { run_after }) => {
            tracing::warn!(%call_id, error = %failure.message, %run_after, "call failed; will retry");
            shared.count(Outcome::Failed, 0.0);
        }
        Ok(Failed::DeadLettered) => {
            tracing::warn!(%call_id, error = %failure.message, "call failed; dead-lettered");
            shared.count(Outcome::DeadLettered, 0.0);
        }
        Err(QueueError::LeaseLost { .. }) => shared.count(Outcome::LeaseLost, 0.0),
        Err(e) => {
            tracing::warn!(%call_id, error = %e, "cannot record the failure; the rescuer will retry the call")
        }
    }
}

/// Runs one batch through the model and stores each call's result. Returns the transcriber, or
/// `None` when the grace period after a stop ran out first (the batch's leases are then
/// released by the caller).
async fn transcribe_batch(
    shared: &Arc<Shared>,
    mut transcriber: Transcriber,
    batch: Batch,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<Transcriber>, LaneError> {
    let (calls, recordings): (Vec<_>, Vec<_>) = batch
        .calls
        .into_iter()
        .map(|ready| ((ready.claimed, ready.source_sample_rate), ready.recording))
        .unzip();
    let durations: Vec<f64> = recordings.iter().map(Recording::duration).collect();
    let channels: Vec<usize> = recordings.iter().map(|r| r.channels.len()).collect();
    shared.metrics.batch_calls.set(calls.len() as f64);
    let started = Instant::now();
    let work = tokio::task::spawn_blocking(move || {
        let results = transcribe_isolating(&mut transcriber, &recordings);
        (transcriber, results)
    });
    let grace = shared.config.grace;
    let (transcriber, results) = tokio::select! {
        joined = work => joined.map_err(|e| LaneError::Crashed(e.to_string()))?,
        () = async { stopped(&mut stop).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(calls = calls.len(), ?grace, "grace period over; releasing the batch");
            return Ok(None);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    shared.metrics.inference_seconds.add(elapsed);
    shared.metrics.batches.inc();
    shared.report.lock().expect("report poisoned").batches += 1;

    // Device time is shared among the batch's calls by their audio (all channels).
    let weights: Vec<f64> = durations
        .iter()
        .zip(&channels)
        .map(|(d, c)| d * *c as f64)
        .collect();
    let total_weight: f64 = weights.iter().sum::<f64>().max(1e-9);
    let config = &shared.config;
    for (i, ((claimed, source_sample_rate), result)) in calls.iter().zip(results).enumerate() {
        let transcript = match result {
            Ok(transcript) => transcript,
            Err(message) => {
                let failure = CallFailure {
                    message: format!("transcribing: {message}"),
                    retry: Retry::WithBackoff,
                };
                fail_call(shared, claimed, &failure).await;
                continue;
            }
        };
        let call = &claimed.call;
        let device_seconds = elapsed * weights[i] / total_weight;
        let usage = UsageRecord {
            org_id: call.org_id,
            call_id: Some(call.id),
            lane: Lane::Transcribe,
            model: Some(config.model_name.clone()),
            audio_seconds: durations[i],
            gpu_seconds: if shared.on_gpu { device_seconds } else { 0.0 },
            cpu_seconds: if shared.on_gpu { 0.0 } else { device_seconds },
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: device_seconds * config.cost_per_hour / 3600.0,
        };
        let record = results::to_record(call.id, call.org_id, &config.model_name, &transcript);
        let facts = CallFacts {
            duration_seconds: durations[i],
            channels: channels[i],
            source_sample_rate: *source_sample_rate,
            role_confidence: transcript.role_confidence,
        };
        let stored = results::store(&shared.pool, &claimed.lease, &record, &facts, &usage).await;
        shared.held.remove(call.id);
        match stored {
            Ok(()) => shared.count(Outcome::Transcribed, durations[i]),
            Err(QueueError::LeaseLost { call_id }) => {
                shared.count(Outcome::LeaseLost, 0.0);
                tracing::warn!(%call_id, "result dropped: the lease was rescued before it was stored");
            }
            Err(e) => {
                // Not stored: the lease runs out and the rescuer gives the call another try.
                tracing::warn!(call_id = %call.id, error = %e, "cannot store the transcript");
                shared.count(Outcome::StoreFailed, 0.0);
            }
        }
    }
    Ok(Some(transcriber))
}

/// Transcribes the batch together; if that fails, each recording alone, so one bad recording
/// fails alone.
fn transcribe_isolating(
    transcriber: &mut Transcriber,
    recordings: &[Recording],
) -> Vec<Result<Transcript, String>> {
    match transcriber.transcribe(recordings, &mut |_| {}) {
        Ok(transcripts) => transcripts.into_iter().map(Ok).collect(),
        Err(batch_error) => {
            tracing::warn!(error = %batch_error, "batch failed; transcribing its calls one by one");
            recordings
                .iter()
                .map(|recording| {
                    transcriber
                        .transcribe(std::slice::from_ref(recording), &mut |_| {})
                        .map_err(|e| e.to_string())
                        .and_then(|mut t| t.pop().ok_or_else(|| "no transcript".to_owned()))
                })
                .collect()
        }
    }
}

/// States whose depth is published: the queue's, not the ever-growing finished ones.
const QUEUE_STATES: &[CallState] = &[
    CallState::Pending,
    CallState::Downloading,
    CallState::Downloaded,
    CallState::Transcribing,
    CallState::Transcribed,
    CallState::Judging,
    CallState::Failed,
];

/// Refreshes the queue-depth and device-memory gauges every `every`.
async fn gauge_loop(shared: Arc<Shared>, device: Device, every: Duration) {
    let registry = &shared.metrics.registry;
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Some(memory) = device::memory(&device) {
            registry
                .gauge(
                    "callscript_device_memory_free_bytes",
                    "Free memory of the model's device (GPU, or host for the CPU).",
                    &[],
                )
                .set(memory.free as f64);
            registry
                .gauge(
                    "callscript_device_memory_total_bytes",
                    "Total memory of the model's device.",
                    &[],
                )
                .set(memory.total as f64);
        }
        match async { queue::depth(&**shared.pool.get().await?, QUEUE_STATES).await }.await {
            Ok(depths) => {
                for (state, calls) in depths {
                    registry
                        .gauge(
                            "callscript_queue_calls",
                            "Calls in each queue state (all organizations).",
                            &[("state", state.as_str())],
                        )
                        .set(calls as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read queue depth"),
        }
    }
}
