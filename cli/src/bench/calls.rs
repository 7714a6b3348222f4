//! `callscript bench calls`: the phone-call suite (`scripts/phone-suite`) through the real lanes,
//! scored against its truth, stereo and mono apart, tuned and held-out calls apart.
//!
//! Each selected mix runs on its own ([`lanes::run_mix`]): its recordings queued in a scratch
//! organization of the database `DATABASE_URL` names (created in the suite's time zone, judging
//! by the default rulebook or `--rulebook`, stored and applied to it as `rules add` and
//! `rules use` do; deleted at the end with everything it holds), the worker lane until idle
//! with the transcriber `callscript worker` opens (diarizing; the stereo agent channel from the
//! manifest), then the judge lane until idle. What they stored is read back and scored
//! ([`score`]) and printed ([`report`]).

mod intervals;
mod lanes;
mod manifest;
mod report;
mod score;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_core::{migrate, orgs};
use callscript_judge::rulebook_store::{self, Scope};
use callscript_judge::{Rulebook, DEFAULT_RULEBOOK};
use clap::{Args, ValueEnum};
use uuid::Uuid;

use crate::commands::{database_url, Settings};
use crate::transcribe::{set_threads, ModelArgs, SpeakerArgs};
use crate::worker::{model_name, open_lane_transcriber};
use lanes::{run_mix, Scratch, WorkerSetup};
use manifest::{read_manifest, Manifest, Mix, SuiteCall};
use report::{MixReport, Report};
use score::CallScore;

/// Where `scripts/phone-suite` writes the suite by default.
const DEFAULT_SUITE: &str = ".local/phone-suite";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MixChoice {
    Stereo,
    Mono,
    Both,
}

impl MixChoice {
    fn mixes(self) -> &'static [Mix] {
        match self {
            MixChoice::Stereo => &[Mix::Stereo],
            MixChoice::Mono => &[Mix::Mono],
            MixChoice::Both => &[Mix::Stereo, Mix::Mono],
        }
    }
}

#[derive(Args)]
pub struct CallsBenchArgs {
    /// The suite's folder: manifest.json with the recordings and RTTM files beside it.
    #[arg(long, default_value = DEFAULT_SUITE)]
    suite: PathBuf,
    /// Which recordings of each call run (each mix is a call of its own).
    #[arg(long, value_enum, default_value_t = MixChoice::Both)]
    mix: MixChoice,
    /// Only these calls (manifest ids).
    #[arg(long, num_args = 1.., value_name = "ID")]
    only: Vec<String>,
    /// Judge by this rulebook (TOML) instead of the compiled-in default.
    #[arg(long)]
    rulebook: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    // Stereo calls' agent channel: the manifest's unless --agent-channel is given.
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Calls the worker claims at once.
    #[arg(long, default_value_t = 16)]
    batch_calls: i64,
    /// Windows per forward pass (default: as `callscript worker` chooses).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Write every figure, and every call's scores, as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// List each call's misses: flags missed or false, temperature and callback got against
    /// expected, speakers, roles, words in non-speech.
    #[arg(long, short)]
    verbose: bool,
}

/// The manifest's calls that `--only` names (all without it), in manifest order.
fn select<'a>(manifest: &'a Manifest, only: &[String]) -> Result<Vec<&'a SuiteCall>> {
    if let Some(unknown) = only
        .iter()
        .find(|id| !manifest.calls.iter().any(|c| &c.id == *id))
    {
        bail!("--only {unknown}: no such call in the manifest");
    }
    Ok(manifest
        .calls
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.id))
        .collect())
}

/// The one agent channel of `calls`: the worker lane's role rules hold one.
fn agent_channel(calls: &[&SuiteCall]) -> Result<usize> {
    let channels: std::collections::BTreeSet<usize> =
        calls.iter().map(|c| c.agent_channel).collect();
    match channels.iter().collect::<Vec<_>>()[..] {
        [&channel] => Ok(channel),
        _ => bail!(
            "the calls put the agent on channels {channels:?}: run each channel's calls apart \
             with --only"
        ),
    }
}

/// The process's peak resident memory (Linux), in bytes.
fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub async fn run(settings: &Settings, args: CallsBenchArgs) -> Result<()> {
    set_threads(args.model.threads)?;
    let manifest = read_manifest(&args.suite).with_context(|| {
        format!(
            "the suite in {} (scripts/bench calls generates it with scripts/phone-suite)",
            args.suite.display()
        )
    })?;
    let calls = select(&manifest, &args.only)?;
    let rulebook_text = match &args.rulebook {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the rulebook {}", path.display()))?,
        None => DEFAULT_RULEBOOK.to_owned(),
    };
    let rulebook = Rulebook::parse(&rulebook_text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rule_ids: Vec<String> = rulebook.rules.iter().map(|r| r.id.clone()).collect();
    let mut speakers = args.speakers;
    speakers.agent_channel = match speakers.agent_channel {
        Some(channel) => Some(channel),
        None => Some(agent_channel(&calls)?),
    };

    let url = database_url(settings)?;
    let pool = callscript_core::db::connect_pool(&url, 4).await?;
    let client = pool.get().await?;
    migrate::ensure_current(&**client).await?;
    let slug = format!("bench-calls-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let (org, _) = orgs::ensure(
        &**client,
        &slug,
        "phone-call suite benchmark",
        &manifest.timezone,
    )
    .await?;
    let outcome = async {
        let reference = rulebook.reference();
        rulebook_store::add(&**client, org.id, &rulebook_text).await?;
        rulebook_store::apply(&**client, org.id, Scope::Organization, Some(&reference)).await?;
        let objects = tempfile::tempdir().context("a temporary object store")?;
        let store: Arc<dyn ObjectStore> = Arc::new(LocalDirStore::new(objects.path()));
        store.prepare().await?;
        let scratch = Scratch {
            pool: pool.clone(),
            database_url: url.clone(),
            org_id: org.id,
            worker_id: slug.clone(),
            store,
        };
        let mut runs = Vec::new();
        for &mix in args.mix.mixes() {
            let (transcriber, device, _) =
                open_lane_transcriber(&args.model, args.batch_size, Some(&speakers))?;
            let worker = WorkerSetup {
                transcriber,
                device,
                model_name: model_name(&args.model.model),
                batch_calls: args.batch_calls,
            };
            runs.push((
                mix,
                run_mix(&scratch, &args.suite, &calls, mix, worker).await?,
            ));
        }
        Ok::<_, anyhow::Error>(runs)
    }
    .await;
    // The scratch organization goes whatever happened: its calls, transcripts, flags and leads
    // with it.
    client
        .execute("DELETE FROM core.organizations WHERE id = $1", &[&org.id])
        .await?;
    let runs = outcome?;

    let mixes: Vec<MixReport> = runs
        .into_iter()
        .map(|(mix, run)| MixReport {
            mix,
            timing: run.timing,
            calls: calls
                .iter()
                .zip(&run.stored)
                .map(|(call, stored)| CallScore::new(call, mix, stored))
                .collect(),
        })
        .collect();
    let report = Report {
        suite: args.suite.display().to_string(),
        seed: manifest.seed,
        generator: manifest.generator.clone(),
        timezone: manifest.timezone.clone(),
        model: args.model.model.clone(),
        device: args.model.device.clone(),
        threads: args
            .model
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        rulebook: rulebook.reference(),
        rule_ids,
        peak_memory_bytes: peak_memory_bytes(),
        mixes,
    };
    print!("{}", report.render());
    if args.verbose {
        print!("{}", report.render_misses());
    }
    if let Some(path) = &args.json {
        let json =
            serde_json::to_string_pretty(&report.to_json()).context("serializing the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
