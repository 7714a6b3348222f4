//! `callscript bench worker`: end-to-end throughput of the transcription lane, queue to stored
//! transcripts, on the evaluation set replicated to `--calls` calls.
//!
//! The calls go into a scratch organization of the database `DATABASE_URL` names, their audio
//! into a temporary local object store; the lane claims only that organization's calls. The lane runs
//! in this process exactly as `callscript worker --until-idle` runs it: claims, fetches and
//! decodes, batched transcription across calls, fenced writes. The wall time runs from the first
//! claim to the last stored transcript (the model is loaded before). The stored texts are
//! scored against the references, so the figure is of work that was right. The scratch
//! organization and everything it holds are deleted at the end.
//!
//! With `--compare`, faster-whisper transcribes the same replicated file list (float32 and
//! int8, one file after another, as its runner does) in the same run: the anchor of the ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use callscript_core::metrics::Registry;
use callscript_core::model::{CallState, Source};
use callscript_core::queue::{self, NewCall, Until};
use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_core::{migrate, orgs, transcripts};
use callscript_worker::lane::{LaneConfig, TranscribeLane};
use callscript_worker::transcribe::Transcriber;
use clap::Args;
use uuid::Uuid;

use super::{
    fw_setup, read_eval_set, render_table, rows, run_faster_whisper, AsrArgs, EngineRun,
    FileResult, FW_COMPUTE_TYPES,
};
use crate::commands::{database_url, Settings};
use crate::transcribe::{open_decoder, set_threads};

#[derive(Args)]
pub struct WorkerBenchArgs {
    #[command(flatten)]
    asr: AsrArgs,
    /// Calls to queue (the evaluation files repeated in order).
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Calls claimed at once.
    #[arg(long, default_value_t = 16)]
    batch_calls: i64,
}

pub async fn run(settings: &Settings, args: WorkerBenchArgs) -> Result<()> {
    let asr = &args.asr;
    if args.calls == 0 {
        bail!("--calls must be at least 1");
    }
    let threads = asr.thread_count();
    set_threads(Some(threads))?;
    let set = read_eval_set(&asr.tsv)?;
    let fw = asr.compare.then(|| fw_setup(asr)).transpose()?;
    // The replicated list: call i is utterance i mod n.
    let utterances: Vec<_> = (0..args.calls)
        .map(|i| set.utterances[i % set.utterances.len()].clone())
        .collect();

    let url = database_url(settings)?;
    let pool = callscript_core::db::connect_pool(&url, 4).await?;
    let client = pool.get().await?;
    migrate::ensure_current(&**client).await?;
    let slug = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let (org, _) = orgs::ensure(&**client, &slug, "throughput benchmark", "UTC").await?;
    let objects = tempfile::tempdir().context("a temporary object store")?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(objects.path()));
    store.prepare().await?;
    let outcome = async {
        let mut keys = Vec::new();
        for (i, utterance) in set.utterances.iter().enumerate() {
            let body = std::fs::read(&utterance.path)
                .with_context(|| format!("reading {}", utterance.path.display()))?;
            let extension = utterance
                .path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("bin");
            let key = format!("bench/{i}.{extension}");
            let info = store
                .put(&key, Bytes::from(body), "application/octet-stream")
                .await?;
            keys.push((key, info.sha256));
        }
        let now = chrono::Utc::now();
        let mut call_ids = Vec::with_capacity(args.calls);
        for i in 0..args.calls {
            let (key, sha256) = &keys[i % keys.len()];
            let mut call = NewCall::new(
                org.id,
                Source::Upload,
                format!("bench-{i}"),
                now - chrono::Duration::seconds(i as i64),
            );
            call.state = CallState::Downloaded;
            call.object_key = Some(key.clone());
            call.sha256 = sha256.clone();
            call_ids.push(queue::enqueue(&**client, &call).await?.call_id);
        }

        let model = asr.model.clone();
        let device_spec = asr.device.clone();
        let (decoder, device) = tokio::task::block_in_place(|| {
            open_decoder(&model, &device_spec, asr.decode_options())
        })?;
        let transcriber = Transcriber::new(decoder, asr.transcribe_options())?;
        let lane = TranscribeLane {
            pool: pool.clone(),
            database_url: url.clone(),
            store: store.clone(),
            device,
            config: LaneConfig {
                worker_id: slug.clone(),
                batch_calls: args.batch_calls,
                org_id: Some(org.id),
                model_name: model.clone(),
                // The throughput of what is queued: nothing falls due later.
                until: Until::Idle {
                    wait: Duration::ZERO,
                },
                ..LaneConfig::default()
            },
            metrics: Registry::new(),
        };
        eprintln!(
            "transcribing {} calls ({} files) through the queue...",
            args.calls,
            set.utterances.len()
        );
        let started = Instant::now();
        let report = lane.run(transcriber, std::future::pending()).await?;
        let wall_seconds = started.elapsed().as_secs_f64();
        if report.transcribed != args.calls as u64 {
            bail!(
                "only {} of {} calls were transcribed: {report:?}",
                report.transcribed,
                args.calls
            );
        }
        let mut files = Vec::with_capacity(args.calls);
        for (call_id, utterance) in call_ids.iter().zip(&utterances) {
            let stored = transcripts::load(&**client, *call_id)
                .await?
                .with_context(|| format!("call {call_id} has no transcript"))?;
            let call = queue::get_call(&**client, *call_id)
                .await?
                .with_context(|| format!("call {call_id} is gone"))?;
            let audio_seconds = f64::from(call.duration_ms.unwrap_or(0)) / 1000.0;
            files.push(FileResult::new(utterance, stored.text, None, audio_seconds));
        }
        Ok::<_, anyhow::Error>(EngineRun {
            engine: format!("callscript {}", env!("CARGO_PKG_VERSION")),
            mode: "worker lane".into(),
            beam_size: asr.beam_size,
            wall_seconds,
            files,
        })
    }
    .await;
    // The scratch organization goes whatever happened: its calls, transcripts and usage with it.
    client
        .execute("DELETE FROM core.organizations WHERE id = $1", &[&org.id])
        .await?;
    let ours = outcome?;

    let mut runs = vec![ours];
    if let Some(setup) = &fw {
        for compute_type in FW_COMPUTE_TYPES {
            eprintln!(
                "faster-whisper {compute_type} on the same {} files...",
                args.calls
            );
            let run = tokio::task::block_in_place(|| {
                run_faster_whisper(setup, asr, threads, compute_type, &utterances)
            })?;
            runs.push(run);
        }
    }
    let reference = runs.get(1);
    let table = rows(&runs, reference);
    println!(
        "{} calls ({} evaluation files repeated), model {}, device {}, {} threads, {} calls per \
         claim, {} windows per pass",
        args.calls,
        set.utterances.len(),
        asr.model,
        asr.device,
        threads,
        args.batch_calls,
        asr.batch_size
    );
    println!(
        "RTF: audio seconds / wall seconds (ours: first claim to last stored transcript; \
         faster-whisper: each file's transcription, one after another)"
    );
    print!("{}", render_table(&table));
    if let Some(path) = &asr.json {
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "calls": args.calls,
            "batch_calls": args.batch_calls,
            "threads": threads,
            "rows": table,
            "runs": runs,
        }))
        .context("serializing the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
