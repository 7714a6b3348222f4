//! One mix of the suite through the real lanes, in a scratch organization: each recording
//! queued as `callscript enqueue` queues it (with the call's start time), the worker lane until
//! idle, then the judge lane until idle, each run in this process exactly as its command runs
//! it; then what they stored is read back.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use callscript_core::db::{DatabaseUrl, Pool};
use callscript_core::metrics::Registry;
use callscript_core::queue::Until;
use callscript_core::storage::ObjectStore;
use callscript_core::transcripts;
use callscript_ingest::upload::{enqueue_file, UploadOptions};
use callscript_judge::lane::{JudgeConfig, JudgeLane};
use callscript_worker::device::Device;
use callscript_worker::lane::{LaneConfig, TranscribeLane};
use callscript_worker::transcribe::Transcriber;
use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::manifest::{Mix, SuiteCall};
use super::score::{StoredCall, StoredSegment};

/// Where the suite runs: a scratch organization and a temporary object store.
pub struct Scratch {
    pub pool: Pool,
    pub database_url: DatabaseUrl,
    pub org_id: Uuid,
    /// Lease owner of both lanes.
    pub worker_id: String,
    pub store: Arc<dyn ObjectStore>,
}

/// How the worker lane runs.
pub struct WorkerSetup {
    pub transcriber: Transcriber,
    pub device: Device,
    pub model_name: String,
    pub batch_calls: i64,
}

/// Wall seconds of each stage of one mix: the pipeline from the first enqueue to the judge
/// going idle (the model is loaded before).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timing {
    pub audio_seconds: f64,
    pub enqueue_seconds: f64,
    pub worker_seconds: f64,
    /// Of the worker's: in the model (transcribing, and diarizing after it).
    pub model_seconds: f64,
    pub judge_seconds: f64,
}

impl Timing {
    pub fn wall_seconds(&self) -> f64 {
        self.enqueue_seconds + self.worker_seconds + self.judge_seconds
    }

    /// Audio seconds per wall second of the whole pipeline.
    pub fn speed(&self) -> f64 {
        self.audio_seconds / self.wall_seconds().max(1e-9)
    }
}

/// What each call of one mix left stored (in the order of the calls), and how long it took.
pub struct MixRun {
    pub stored: Vec<StoredCall>,
    pub timing: Timing,
}

/// The lanes wait for nothing that falls due later: the suite is all queued at once.
const UNTIL_IDLE: Until = Until::Idle {
    wait: Duration::ZERO,
};

/// Queues `calls`' `mix` recordings from `dir`, runs the worker lane, then the judge lane, and
/// reads back what they stored.
pub async fn run_mix(
    scratch: &Scratch,
    dir: &Path,
    calls: &[&SuiteCall],
    mix: Mix,
    worker: WorkerSetup,
) -> Result<MixRun> {
    let client = scratch.pool.get().await?;
    let started = Instant::now();
    let mut call_ids = Vec::with_capacity(calls.len());
    for call in calls {
        let options = UploadOptions {
            org_id: scratch.org_id,
            campaign_id: None,
            priority: 0,
            started_at: Some(call.started_at.with_timezone(&Utc)),
            max_bytes: u64::MAX,
        };
        let path = dir.join(call.file(mix));
        let upload = enqueue_file(&**client, scratch.store.as_ref(), &path, &options)
            .await
            .with_context(|| format!("queueing {}", path.display()))?;
        call_ids.push(upload.call_id);
    }
    let enqueue_seconds = started.elapsed().as_secs_f64();

    eprintln!("{}: worker lane on {} calls...", mix.as_str(), calls.len());
    let registry = Registry::new();
    let lane = TranscribeLane {
        pool: scratch.pool.clone(),
        database_url: scratch.database_url.clone(),
        store: scratch.store.clone(),
        device: worker.device,
        config: LaneConfig {
            worker_id: scratch.worker_id.clone(),
            batch_calls: worker.batch_calls,
            org_id: Some(scratch.org_id),
            model_name: worker.model_name,
            until: UNTIL_IDLE,
            ..LaneConfig::default()
        },
        metrics: registry.clone(),
    };
    let started = Instant::now();
    let report = lane.run(worker.transcriber, std::future::pending()).await?;
    let worker_seconds = started.elapsed().as_secs_f64();
    if report.transcribed != calls.len() as u64 {
        eprintln!(
            "{}: only {} of {} calls transcribed: {report:?}",
            mix.as_str(),
            report.transcribed,
            calls.len()
        );
    }
    let model_seconds = registry
        .counter(
            "callscript_inference_seconds_total",
            "Wall seconds spent in the model.",
            &[],
        )
        .get();
    // Before the judge redacts card numbers in it: the words as the worker heard them.
    let mut stored = Vec::with_capacity(call_ids.len());
    for call_id in &call_ids {
        stored.push(match transcripts::load(&**client, *call_id).await? {
            Some(transcript) => StoredCall {
                text: transcript.text,
                segments: transcript
                    .segments
                    .into_iter()
                    .map(|s| StoredSegment {
                        start: f64::from(s.start_ms) / 1000.0,
                        end: f64::from(s.end_ms) / 1000.0,
                        speaker: s.speaker,
                        role: s.role.map(|r| r.as_str().to_owned()),
                        text: s.text,
                    })
                    .collect(),
                ..StoredCall::default()
            },
            None => StoredCall::default(),
        });
    }

    eprintln!("{}: judge lane...", mix.as_str());
    let lane = JudgeLane {
        pool: scratch.pool.clone(),
        database_url: scratch.database_url.clone(),
        rulebook: None,
        brain: None,
        config: JudgeConfig {
            worker: scratch.worker_id.clone(),
            org_id: Some(scratch.org_id),
            ..JudgeConfig::default()
        },
    };
    let (_keep_running, stop) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    lane.run(UNTIL_IDLE, stop).await?;
    let judge_seconds = started.elapsed().as_secs_f64();

    read_back(&client, scratch.org_id, &call_ids, &mut stored).await?;
    Ok(MixRun {
        timing: Timing {
            audio_seconds: stored.iter().map(|s| s.audio_seconds).sum(),
            enqueue_seconds,
            worker_seconds,
            model_seconds,
            judge_seconds,
        },
        stored,
    })
}

/// Each call's state, length, flags, lead temperature and callback, into `stored` (in the
/// order of `call_ids`).
async fn read_back(
    client: &tokio_postgres::Client,
    org_id: Uuid,
    call_ids: &[Uuid],
    stored: &mut [StoredCall],
) -> Result<()> {
    let position: HashMap<Uuid, usize> = call_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    let rows = client
        .query(
            "SELECT id, state::text, duration_ms FROM core.calls WHERE org_id = $1",
            &[&org_id],
        )
        .await?;
    for row in rows {
        if let Some(&i) = position.get(&row.get::<_, Uuid>(0)) {
            stored[i].state = row.get(1);
            stored[i].audio_seconds = f64::from(row.get::<_, Option<i32>>(2).unwrap_or(0)) / 1000.0;
        }
    }
    let mut flags: HashMap<Uuid, BTreeSet<String>> = HashMap::new();
    for row in client
        .query(
            "SELECT call_id, rule_id FROM core.qa_flags WHERE org_id = $1",
            &[&org_id],
        )
        .await?
    {
        flags.entry(row.get(0)).or_default().insert(row.get(1));
    }
    for (call_id, rules) in flags {
        if let Some(&i) = position.get(&call_id) {
            stored[i].flags = rules;
        }
    }
    // Each uploaded call is a lead of its own (it has no caller number).
    for row in client
        .query(
            "SELECT c.call_id, l.temperature::text
             FROM crm.lead_communications c JOIN crm.leads l ON l.id = c.lead_id
             WHERE c.org_id = $1",
            &[&org_id],
        )
        .await?
    {
        if let Some(&i) = position.get(&row.get::<_, Uuid>(0)) {
            stored[i].temperature = row.get(1);
        }
    }
    // The callback's minute in the organization's (the suite's) zone, written as the
    // manifest writes it (`manifest::LOCAL_MINUTE`).
    for row in client
        .query(
            "SELECT a.call_id,
                    to_char(a.due_at AT TIME ZONE o.timezone, 'YYYY-MM-DD HH24:MI')
             FROM crm.scheduled_actions a JOIN core.organizations o ON o.id = a.org_id
             WHERE a.org_id = $1 AND a.action_type = 'callback'",
            &[&org_id],
        )
        .await?
    {
        if let Some(&i) = row
            .get::<_, Option<Uuid>>(0)
            .and_then(|id| position.get(&id))
        {
            stored[i].callback = row.get(1);
        }
    }
    Ok(())
}
