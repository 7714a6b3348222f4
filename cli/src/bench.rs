//! `callscript bench asr`: accuracy and speed of our engine on an evaluation set, and with
//! `--compare` of faster-whisper on the same files, model folder, beam and threads, in the same
//! run.
//!
//! The evaluation set is a TSV (`file<TAB>reference`, more columns ignored, paths relative to the
//! TSV's folder, a header row starting with `file` skipped); an entry whose reference repeats an
//! earlier one's is left out, as the anchor figures of `../shared/eval/README.md` leave out the
//! MP3 copy of JFK. Recordings are scored as mono (channels averaged), as faster-whisper reads
//! them: the set's stereo file holds one speech on both channels, which transcribing each
//! channel on its own would count twice.
//!
//! Our engine is timed two ways, each over wall-clock time that includes reading and decoding
//! the audio files (faster-whisper's own timing includes its audio decoding): `sequential`, one
//! `transcribe` call per file as faster-whisper's runner does it, and `batched`, all files in
//! one call so that windows of many files share batches. Both sides are scored with
//! [`callscript_worker::wer`], so the word error rates differ only by the texts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use callscript_worker::audio::AudioLimits;
use callscript_worker::decode::DecodeOptions;
use callscript_worker::diarize::{diarization_error, parse_rttm, Clustering, DiarizeOptions, Turn};
use callscript_worker::transcribe::{Diarizer, Recording, TranscribeOptions};
use callscript_worker::vad::speech_regions;
use callscript_worker::vad::VadOptions;
use callscript_worker::wer::{normalize, word_errors, WordErrors};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::commands::Settings;
use crate::transcribe::{
    open_transcriber, read_recording, set_threads, SpeakerArgs, DEFAULT_MODEL,
};

mod calls;
mod worker;

/// The evaluation set of the development checkout (`/work/shared/eval`).
const DEFAULT_TSV: &str = "../shared/eval/asr.tsv";

/// The faster-whisper runner, relative to the repository root.
const FW_RUNNER: &str = "scripts/lib/faster_whisper_asr.py";

/// faster-whisper's compute types measured with `--compare`; the first is the reference the
/// ratios are taken against.
const FW_COMPUTE_TYPES: [&str; 2] = ["float32", "int8"];

/// What CTranslate2 reads to use Intel MKL on a CPU that is not Intel's.
const CT2_USE_MKL: &str = "CT2_USE_MKL";

const SAMPLE_RATE: f64 = callscript_worker::audio::TARGET_SAMPLE_RATE as f64;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Word error rate and real-time factor on an evaluation set (optionally next to
    /// faster-whisper's).
    Asr(AsrArgs),
    /// Diarization error rate (missed, false alarm, confusion) and speed of mono diarization on
    /// RTTM-annotated recordings, and on a stereo call (channel = speaker).
    Diarization(DiarizationArgs),
    /// Throughput of the worker lane, queue to stored transcripts, on the evaluation set
    /// replicated to --calls calls (in a scratch organization of DATABASE_URL).
    Worker(worker::WorkerBenchArgs),
    /// The phone-call suite (scripts/phone-suite) through enqueue, the worker lane and the judge
    /// lane: flags, lead temperature, callbacks, DER, speakers, roles, WER and speed, stereo and
    /// mono, tuned and held-out calls apart (in a scratch organization of DATABASE_URL).
    Calls(calls::CallsBenchArgs),
}

#[derive(Args)]
pub struct DiarizationArgs {
    /// A folder of `NAME.wav` recordings with `NAME.rttm` references.
    #[arg(long, default_value = "../shared/eval/diarization")]
    dir: PathBuf,
    /// A stereo recording with one speaker per channel; its reference is each channel's speech.
    #[arg(
        long,
        default_value = "../shared/eval/stereo/faster_whisper_stereo_diarization.wav"
    )]
    stereo: PathBuf,
    /// An RTTM reference for --stereo, instead of each channel's speech.
    #[arg(long)]
    stereo_rttm: Option<PathBuf>,
    /// Total width (seconds) not scored around each reference boundary (pyannote's collar).
    #[arg(long, default_value_t = 0.25)]
    collar: f64,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Seconds between segmentation chunks (default: the pipeline's).
    #[arg(long)]
    step_seconds: Option<f64>,
    /// Cluster with NME-SC instead of agglomerative clustering.
    #[arg(long)]
    spectral: bool,
    /// Agglomerative clustering's thresholds (cosine distance), as `THRESHOLD,SPLIT,JOIN`
    /// (default: the pipeline's).
    #[arg(long, value_name = "T,SPLIT,JOIN")]
    thresholds: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long, env = "CALLSCRIPT_THREADS")]
    threads: Option<usize>,
    /// Write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print each file's hypothesis turns.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Args)]
pub struct AsrArgs {
    /// The evaluation set: FILE<TAB>REFERENCE per line, paths relative to its folder.
    #[arg(long, default_value = DEFAULT_TSV)]
    tsv: PathBuf,
    /// A CTranslate2 model folder (`--compare` gives faster-whisper the same one), a Hugging Face
    /// folder or a hub id in the local cache.
    #[arg(long, env = "CALLSCRIPT_MODEL", default_value = DEFAULT_MODEL)]
    model: String,
    /// cpu, cuda or cuda:N (faster-whisper always runs on the CPU).
    #[arg(long, env = "CALLSCRIPT_DEVICE", default_value = "cpu")]
    device: String,
    /// Language code for multilingual models (both engines).
    #[arg(long, default_value = "en")]
    language: String,
    /// Beam width, both engines (1 decodes greedily).
    #[arg(long, default_value_t = 1)]
    beam_size: usize,
    /// Windows decoded together by our engine.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// CPU threads, both engines (default: all cores).
    #[arg(long, env = "CALLSCRIPT_THREADS")]
    threads: Option<usize>,
    /// Decode our side without voice activity detection (faster-whisper's runner never uses it).
    #[arg(long)]
    no_vad: bool,
    /// Also run faster-whisper (float32 and int8) on the same files, after ours.
    #[arg(long)]
    compare: bool,
    /// The Python with faster-whisper installed (`scripts/bench asr --compare` creates it).
    #[arg(long, default_value = ".local/fw-venv/bin/python")]
    python: PathBuf,
    /// An environment variable for the faster-whisper runs (repeatable); overrides the automatic
    /// CT2_USE_MKL=1 of float32 on AMD CPUs.
    #[arg(long = "fw-env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    fw_env: Vec<(String, String)>,
    /// Write every figure, per file too, as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print the files whose normalized texts differ (ours against faster-whisper float32's,
    /// or against the reference without --compare).
    #[arg(long, short)]
    verbose: bool,
}

impl AsrArgs {
    /// `--threads`, else every core.
    fn thread_count(&self) -> usize {
        match self.threads {
            Some(threads) => threads.max(1),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            language: Some(self.language.clone()),
            beam_size: self.beam_size,
            ..DecodeOptions::default()
        }
    }

    fn transcribe_options(&self) -> TranscribeOptions {
        TranscribeOptions {
            vad: (!self.no_vad).then(VadOptions::default),
            batch_size: self.batch_size,
            ..TranscribeOptions::default()
        }
    }
}

pub async fn run(settings: &Settings, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Asr(args) => tokio::task::block_in_place(|| asr(args)),
        BenchCommand::Diarization(args) => tokio::task::block_in_place(|| diarization(args)),
        BenchCommand::Worker(args) => worker::run(settings, args).await,
        BenchCommand::Calls(args) => calls::run(settings, args).await,
    }
}

fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
            Ok((key.to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// One entry of the evaluation set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Utterance {
    /// The file as the TSV names it.
    pub name: String,
    /// Its path (relative ones joined to the TSV's folder).
    pub path: PathBuf,
    pub reference: String,
    /// 1-based line number in the TSV.
    pub line: usize,
}

/// An entry left out because an earlier one has the same reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub line: usize,
    pub duplicate_of: String,
    pub duplicate_line: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvalSet {
    pub utterances: Vec<Utterance>,
    pub skipped: Vec<Skipped>,
}

/// Parses an evaluation TSV whose relative paths are relative to `base`. Blank lines are
/// ignored, as is a first row whose first column is `file`; a reference that repeats an earlier
/// one (once normalized) skips its entry.
pub fn parse_tsv(text: &str, base: &Path) -> Result<EvalSet> {
    let mut set = EvalSet::default();
    let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
    let mut first = true;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let mut columns = line.split('\t');
        let file = columns.next().unwrap_or_default().trim();
        let is_header = first && file == "file";
        first = false;
        if is_header {
            continue;
        }
        let reference = columns.next().unwrap_or_default().trim();
        if file.is_empty() || reference.is_empty() {
            bail!(
                "line {number}: expected FILE<TAB>REFERENCE, got {:?}",
                truncate(line, 60)
            );
        }
        let words = normalize(reference);
        if words.is_empty() {
            bail!("line {number}: the reference of {file} has no words");
        }
        if let Some(&earlier) = seen.get(&words) {
            let first: &Utterance = &set.utterances[earlier];
            set.skipped.push(Skipped {
                name: file.to_owned(),
                line: number,
                duplicate_of: first.name.clone(),
                duplicate_line: first.line,
            });
            continue;
        }
        seen.insert(words, set.utterances.len());
        set.utterances.push(Utterance {
            name: file.to_owned(),
            path: base.join(file),
            reference: reference.to_owned(),
            line: number,
        });
    }
    if set.utterances.is_empty() {
        bail!("no entries");
    }
    Ok(set)
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn read_eval_set(tsv: &Path) -> Result<EvalSet> {
    let text = match std::fs::read_to_string(tsv) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: no such file; the evaluation set lives in ../shared/eval (asr.tsv and asr/), \
             which only the development checkout and CI have; pass --tsv",
            tsv.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", tsv.display())),
    };
    let base = tsv.parent().unwrap_or(Path::new(""));
    parse_tsv(&text, base).with_context(|| tsv.display().to_string())
}

/// The channels averaged into one.
fn downmix(mut channels: Vec<Vec<f32>>) -> Vec<f32> {
    if channels.len() <= 1 {
        return channels.pop().unwrap_or_default();
    }
    let scale = 1.0 / channels.len() as f32;
    let frames = channels.iter().map(Vec::len).min().unwrap_or(0);
    (0..frames)
        .map(|i| channels.iter().map(|c| c[i]).sum::<f32>() * scale)
        .collect()
}

fn read_mono(path: &Path) -> Result<Recording> {
    let recording = read_recording(path, &AudioLimits::default())?;
    Ok(Recording {
        name: recording.name,
        channels: vec![downmix(recording.channels)],
    })
}

/// One file's result in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileResult {
    pub file: String,
    pub text: String,
    /// Wall time of this file alone (runs that time files one by one).
    pub seconds: Option<f64>,
    pub audio_seconds: f64,
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    pub reference_words: usize,
}

impl FileResult {
    fn new(
        utterance: &Utterance,
        text: String,
        seconds: Option<f64>,
        audio_seconds: f64,
    ) -> FileResult {
        let errors = word_errors(&utterance.reference, &text);
        FileResult {
            file: utterance.name.clone(),
            text,
            seconds,
            audio_seconds,
            substitutions: errors.substitutions,
            deletions: errors.deletions,
            insertions: errors.insertions,
            reference_words: errors.reference_words,
        }
    }

    fn errors(&self) -> WordErrors {
        WordErrors {
            substitutions: self.substitutions,
            deletions: self.deletions,
            insertions: self.insertions,
            reference_words: self.reference_words,
        }
    }
}

/// One engine in one mode over the whole set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineRun {
    /// `callscript 0.1.0`, `faster-whisper 1.2.1 / ctranslate2 4.8.5`.
    pub engine: String,
    /// `sequential` or `batched` for ours, the compute type for faster-whisper.
    pub mode: String,
    pub beam_size: usize,
    pub wall_seconds: f64,
    pub files: Vec<FileResult>,
}

impl EngineRun {
    fn is_ours(&self) -> bool {
        self.engine.starts_with("callscript")
    }

    pub fn audio_seconds(&self) -> f64 {
        self.files.iter().map(|f| f.audio_seconds).sum()
    }

    /// Audio seconds per wall second.
    pub fn real_time_factor(&self) -> f64 {
        self.audio_seconds() / self.wall_seconds.max(1e-9)
    }

    /// Corpus errors: every file's summed.
    pub fn errors(&self) -> WordErrors {
        self.files.iter().map(FileResult::errors).sum()
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub engine: String,
    pub mode: String,
    pub beam_size: usize,
    pub files: usize,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    pub real_time_factor: f64,
    pub wer_percent: f64,
    /// Our real-time factor over faster-whisper float32's.
    pub rtf_vs_reference: Option<f64>,
    /// Our WER minus faster-whisper float32's, in percentage points.
    pub wer_points_vs_reference: Option<f64>,
}

/// The table's rows; ours get the comparison with `reference` (faster-whisper float32) when
/// there is one.
pub fn rows(runs: &[EngineRun], reference: Option<&EngineRun>) -> Vec<Row> {
    runs.iter()
        .map(|run| {
            let rtf = run.real_time_factor();
            let wer_percent = run.errors().wer() * 100.0;
            let against = reference.filter(|_| run.is_ours());
            Row {
                engine: run.engine.clone(),
                mode: run.mode.clone(),
                beam_size: run.beam_size,
                files: run.files.len(),
                audio_seconds: run.audio_seconds(),
                wall_seconds: run.wall_seconds,
                real_time_factor: rtf,
                wer_percent,
                rtf_vs_reference: against.map(|r| rtf / r.real_time_factor()),
                wer_points_vs_reference: against.map(|r| wer_percent - r.errors().wer() * 100.0),
            }
        })
        .collect()
}

pub fn render_table(rows: &[Row]) -> String {
    let engine_width = rows
        .iter()
        .map(|r| r.engine.chars().count())
        .chain(["engine".len()])
        .max()
        .unwrap_or(6);
    let comparing = rows.iter().any(|r| r.rtf_vs_reference.is_some());
    let mut out = String::new();
    let _ = write!(
        out,
        "{:<engine_width$}  {:<10} {:>4} {:>5} {:>8} {:>7} {:>7} {:>6}",
        "engine", "mode", "beam", "files", "audio s", "wall s", "RTF", "WER %"
    );
    if comparing {
        let _ = write!(out, "  {:>13} {:>13}", "RTF / fw f32", "WER - fw f32");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(
            out,
            "{:<engine_width$}  {:<10} {:>4} {:>5} {:>8.1} {:>7.2} {:>6.1}x {:>6.1}",
            row.engine,
            row.mode,
            row.beam_size,
            row.files,
            row.audio_seconds,
            row.wall_seconds,
            row.real_time_factor,
            row.wer_percent,
        );
        if let (Some(ratio), Some(points)) = (row.rtf_vs_reference, row.wer_points_vs_reference) {
            let _ = write!(out, "  {:>12.2}x {:>+9.1} pts", ratio, points);
        }
        out.push('\n');
    }
    out
}

/// faster-whisper's runner output (`scripts/lib/faster_whisper_asr.py`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FwOutput {
    pub engine: String,
    pub compute_type: String,
    pub beam_size: usize,
    pub threads: usize,
    pub files: Vec<FwFile>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FwFile {
    pub file: String,
    pub text: String,
    pub seconds: f64,
    pub audio_seconds: f64,
}

/// Parses the runner's JSON and checks that it covers `files`, in order.
pub fn parse_fw_output(json: &str, files: &[String]) -> Result<FwOutput> {
    let output: FwOutput =
        serde_json::from_str(json).context("faster-whisper's output is not the expected JSON")?;
    if output.files.len() != files.len() {
        bail!(
            "faster-whisper returned {} files for {} given",
            output.files.len(),
            files.len()
        );
    }
    if let Some((got, want)) = output
        .files
        .iter()
        .zip(files)
        .find(|(got, want)| got.file != **want)
    {
        bail!(
            "faster-whisper returned {} where {want} was expected",
            got.file
        );
    }
    Ok(output)
}

fn fw_run(output: FwOutput, utterances: &[Utterance]) -> EngineRun {
    let wall_seconds = output.files.iter().map(|f| f.seconds).sum();
    let files = output
        .files
        .into_iter()
        .zip(utterances)
        .map(|(file, utterance)| {
            FileResult::new(utterance, file.text, Some(file.seconds), file.audio_seconds)
        })
        .collect();
    EngineRun {
        engine: output.engine,
        mode: output.compute_type,
        beam_size: output.beam_size,
        wall_seconds,
        files,
    }
}

/// The `vendor_id` of the first processor in `/proc/cpuinfo`'s text.
pub fn cpu_vendor(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "vendor_id").then(|| value.trim())
    })
}

/// The environment of a faster-whisper run with `compute_type`, and why, so that each compute
/// type runs at its best. On AMD CPUs CTranslate2 leaves Intel MKL off unless `CT2_USE_MKL=1`:
/// float32 then falls back to a much slower GEMM, so it gets `CT2_USE_MKL=1`; int8 is the
/// other way round (MKL's int8 GEMM ran about 8x slower than CTranslate2's default on this
/// machine class), so it keeps the default. A `CT2_USE_MKL` already in the environment is left
/// alone; the `--fw-env` overrides come last.
pub fn fw_environment(
    vendor: Option<&str>,
    compute_type: &str,
    inherited_mkl: Option<&str>,
    overrides: &[(String, String)],
) -> (Vec<(String, String)>, String) {
    let mut env: Vec<(String, String)> = Vec::new();
    let vendor_text = vendor.unwrap_or("unknown");
    let mut why = match (vendor, inherited_mkl) {
        (_, Some(value)) => format!("{CT2_USE_MKL}={value} (inherited)"),
        (Some("AuthenticAMD"), None) if compute_type == "float32" => {
            env.push((CT2_USE_MKL.to_owned(), "1".to_owned()));
            format!(
                "{CT2_USE_MKL}=1 (CPU vendor {vendor_text}: without it CTranslate2 leaves MKL \
                 off and float32 takes a much slower path)"
            )
        }
        (Some("AuthenticAMD"), None) => format!(
            "{CT2_USE_MKL} unset (CPU vendor {vendor_text}: MKL's {compute_type} path is the \
             slower one on AMD)"
        ),
        (_, None) => format!("{CT2_USE_MKL} unset (CPU vendor {vendor_text})"),
    };
    for (key, value) in overrides {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
        let _ = write!(why, "; {key}={value} (--fw-env)");
    }
    (env, why)
}

fn runner_script() -> Result<PathBuf> {
    let here = PathBuf::from(FW_RUNNER);
    if here.is_file() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(FW_RUNNER);
    if built.is_file() {
        return Ok(built);
    }
    bail!("{FW_RUNNER} not found: run this from the repository root")
}

fn python_missing(python: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: no such Python; run scripts/bench asr --compare, which creates the faster-whisper \
         environment (.local/fw-venv), or pass --python",
        python.display()
    )
}

struct FwSetup {
    python: PathBuf,
    script: PathBuf,
    env: Vec<FwEnv>,
}

/// The environment of the runs of one compute type, and why.
struct FwEnv {
    compute_type: &'static str,
    vars: Vec<(String, String)>,
    why: String,
}

impl FwSetup {
    fn env(&self, compute_type: &str) -> (&[(String, String)], &str) {
        self.env
            .iter()
            .find(|e| e.compute_type == compute_type)
            .map_or((&[], ""), |e| (e.vars.as_slice(), e.why.as_str()))
    }
}

fn fw_setup(args: &AsrArgs) -> Result<FwSetup> {
    let is_path = args.python.components().count() > 1;
    if is_path && !args.python.is_file() {
        return Err(python_missing(&args.python));
    }
    if !Path::new(&args.model).join("model.bin").is_file() {
        bail!(
            "--compare needs a CTranslate2 model folder (with model.bin) for faster-whisper; \
             {} is not one",
            args.model
        );
    }
    let script = runner_script()?;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let inherited = std::env::var(CT2_USE_MKL).ok();
    let env = FW_COMPUTE_TYPES
        .iter()
        .map(|&compute_type| {
            let (vars, why) = fw_environment(
                cpu_vendor(&cpuinfo),
                compute_type,
                inherited.as_deref(),
                &args.fw_env,
            );
            FwEnv {
                compute_type,
                vars,
                why,
            }
        })
        .collect();
    Ok(FwSetup {
        python: args.python.clone(),
        script,
        env,
    })
}

fn run_faster_whisper(
    setup: &FwSetup,
    args: &AsrArgs,
    threads: usize,
    compute_type: &str,
    utterances: &[Utterance],
) -> Result<EngineRun> {
    let files: Vec<String> = utterances
        .iter()
        .map(|u| u.path.display().to_string())
        .collect();
    let output = Command::new(&setup.python)
        .arg(&setup.script)
        .args(["--model", &args.model, "--compute-type", compute_type])
        .args(["--beam-size", &args.beam_size.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--language", &args.language, "--files"])
        .args(&files)
        .envs(setup.env(compute_type).0.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                python_missing(&setup.python)
            } else {
                anyhow::Error::new(e).context(format!("starting {}", setup.python.display()))
            }
        })?;
    if !output.status.success() {
        bail!("faster-whisper ({compute_type}) failed: {}", output.status);
    }
    let json = String::from_utf8_lossy(&output.stdout);
    let parsed = parse_fw_output(&json, &files)?;
    Ok(fw_run(parsed, utterances))
}

/// Every figure of a run, for `--json`.
#[derive(Serialize)]
struct Report<'a> {
    tsv: String,
    model: &'a str,
    device: &'a str,
    language: &'a str,
    beam_size: usize,
    batch_size: usize,
    threads: usize,
    vad: bool,
    cpu_vendor: Option<String>,
    /// Per compute type: why its environment is what it is.
    faster_whisper_environment: HashMap<&'a str, &'a str>,
    skipped: &'a [Skipped],
    rows: &'a [Row],
    runs: &'a [EngineRun],
}

fn asr(args: AsrArgs) -> Result<()> {
    if args.beam_size == 0 {
        bail!("--beam-size must be at least 1");
    }
    let threads = args.thread_count();
    let set = read_eval_set(&args.tsv)?;
    for skipped in &set.skipped {
        eprintln!(
            "skipped {} (line {}): same reference as {} (line {})",
            skipped.name, skipped.line, skipped.duplicate_of, skipped.duplicate_line
        );
    }
    let fw = if args.compare {
        Some(fw_setup(&args)?)
    } else {
        None
    };
    let utterances = &set.utterances;
    set_threads(Some(threads))?;

    let mut transcriber = open_transcriber(
        &args.model,
        &args.device,
        args.decode_options(),
        args.transcribe_options(),
    )?;
    let engine = format!("callscript {}", env!("CARGO_PKG_VERSION"));

    eprintln!("warming up on {}", utterances[0].name);
    let warm_up = read_mono(&utterances[0].path)?;
    transcriber.transcribe(std::slice::from_ref(&warm_up), &mut |_| {})?;

    eprintln!("callscript, sequential: {} files", utterances.len());
    let started = Instant::now();
    let mut files = Vec::with_capacity(utterances.len());
    for utterance in utterances {
        let file_started = Instant::now();
        let recording = read_mono(&utterance.path)?;
        let transcript = transcriber.transcribe(std::slice::from_ref(&recording), &mut |_| {})?;
        let seconds = file_started.elapsed().as_secs_f64();
        let text = transcript.first().map(|t| t.text()).unwrap_or_default();
        files.push(FileResult::new(
            utterance,
            text,
            Some(seconds),
            recording.duration(),
        ));
    }
    let sequential = EngineRun {
        engine: engine.clone(),
        mode: "sequential".to_owned(),
        beam_size: args.beam_size,
        wall_seconds: started.elapsed().as_secs_f64(),
        files,
    };

    eprintln!(
        "callscript, batched: {} files in one call",
        utterances.len()
    );
    let started = Instant::now();
    let recordings = utterances
        .iter()
        .map(|u| read_mono(&u.path))
        .collect::<Result<Vec<_>>>()?;
    let transcripts = transcriber.transcribe(&recordings, &mut |_| {})?;
    let wall_seconds = started.elapsed().as_secs_f64();
    let batched = EngineRun {
        engine,
        mode: "batched".to_owned(),
        beam_size: args.beam_size,
        wall_seconds,
        files: utterances
            .iter()
            .zip(&recordings)
            .zip(&transcripts)
            .map(|((u, r), t)| FileResult::new(u, t.text(), None, r.duration()))
            .collect(),
    };
    drop((recordings, transcripts, transcriber));

    let mut runs = vec![sequential, batched];
    if let Some(setup) = &fw {
        for compute_type in FW_COMPUTE_TYPES {
            eprintln!(
                "faster-whisper, {compute_type}: {} files; {}",
                utterances.len(),
                setup.env(compute_type).1
            );
            runs.push(run_faster_whisper(
                setup,
                &args,
                threads,
                compute_type,
                utterances,
            )?);
        }
    }
    let reference = runs
        .iter()
        .find(|r| !r.is_ours() && r.mode == FW_COMPUTE_TYPES[0]);
    let table = rows(&runs, reference);

    let vad = if args.no_vad { "off" } else { "on" };
    println!(
        "{} files, {:.1} s of audio ({}); model {}, device {}, language {}, {threads} threads, \
         batch size {}, VAD {vad}{}",
        utterances.len(),
        runs[0].audio_seconds(),
        args.tsv.display(),
        args.model,
        args.device,
        args.language,
        args.batch_size,
        if fw.is_some() {
            " (faster-whisper: off)"
        } else {
            ""
        },
    );
    if let Some(setup) = &fw {
        for compute_type in FW_COMPUTE_TYPES {
            println!(
                "faster-whisper {compute_type}: {}",
                setup.env(compute_type).1
            );
        }
    }
    println!(
        "RTF: audio seconds / wall seconds, reading and decoding the files included; WER: our \
         normalizer on both engines' texts"
    );
    print!("{}", render_table(&table));
    let differing = differing_files(&runs[0], &runs[1]);
    if differing.is_empty() {
        println!(
            "batched and sequential: identical texts for all {} files",
            utterances.len()
        );
    } else {
        println!(
            "note: batched and sequential texts differ for {} of {} files{}",
            differing.len(),
            utterances.len(),
            if args.verbose {
                ":"
            } else {
                " (--verbose shows them)"
            }
        );
        if args.verbose {
            for i in &differing {
                println!("  {}", utterances[*i].name);
                println!("    sequential: {}", normalized(&runs[0].files[*i].text));
                println!("    batched:    {}", normalized(&runs[1].files[*i].text));
            }
        }
    }
    if args.verbose {
        print_differences(utterances, &runs[0], reference);
    }

    if let Some(path) = &args.json {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let report = Report {
            tsv: args.tsv.display().to_string(),
            model: &args.model,
            device: &args.device,
            language: &args.language,
            beam_size: args.beam_size,
            batch_size: args.batch_size,
            threads,
            vad: !args.no_vad,
            cpu_vendor: cpu_vendor(&cpuinfo).map(str::to_owned),
            faster_whisper_environment: fw
                .iter()
                .flat_map(|s| s.env.iter().map(|e| (e.compute_type, e.why.as_str())))
                .collect(),
            skipped: &set.skipped,
            rows: &table,
            runs: &runs,
        };
        let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn normalized(text: &str) -> String {
    normalize(text).join(" ")
}

/// Indices of the files whose normalized texts differ between two runs of the same set.
fn differing_files(a: &EngineRun, b: &EngineRun) -> Vec<usize> {
    a.files
        .iter()
        .zip(&b.files)
        .enumerate()
        .filter(|(_, (x, y))| normalize(&x.text) != normalize(&y.text))
        .map(|(i, _)| i)
        .collect()
}

/// Ours against faster-whisper float32's, file by file, where the texts differ; without
/// faster-whisper, ours where it has errors.
fn print_differences(utterances: &[Utterance], ours: &EngineRun, reference: Option<&EngineRun>) {
    match reference {
        Some(_) => println!(
            "files where callscript (sequential) and faster-whisper float32 differ, normalized:"
        ),
        None => println!("files where callscript (sequential) has errors, normalized:"),
    }
    let mut shown = 0;
    for (i, utterance) in utterances.iter().enumerate() {
        let our = &ours.files[i];
        let theirs = reference.map(|r| &r.files[i]);
        let differs = match theirs {
            Some(theirs) => normalize(&our.text) != normalize(&theirs.text),
            None => our.errors().errors() > 0,
        };
        if !differs {
            continue;
        }
        shown += 1;
        println!("{} (line {})", utterance.name, utterance.line);
        println!("  reference:      {}", normalized(&utterance.reference));
        let e = our.errors();
        println!(
            "  callscript:     {}  [{}/{} errors]",
            normalized(&our.text),
            e.errors(),
            e.reference_words
        );
        if let Some(theirs) = theirs {
            let e = theirs.errors();
            println!(
                "  fw float32:     {}  [{}/{} errors]",
                normalized(&theirs.text),
                e.errors(),
                e.reference_words
            );
        }
    }
    if shown == 0 {
        println!("  (none)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "file\treference\tsource_repo\n\
        asr/jfk.flac\tAnd so my fellow Americans, ask not.\trepo-a\n\
        \n\
        asr/jfk.mp3\tand so my fellow americans ask not\trepo-b\r\n\
        /abs/clip.wav\tGo forward ten meters\n\
        sub/x.wav\tHE HOPED THERE WOULD BE STEW\n";

    #[test]
    fn tsv_header_paths_and_duplicates() {
        let set = parse_tsv(TSV, Path::new("../shared/eval")).unwrap();
        let names: Vec<&str> = set.utterances.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["asr/jfk.flac", "/abs/clip.wav", "sub/x.wav"]);
        assert_eq!(
            set.utterances[0].path,
            Path::new("../shared/eval/asr/jfk.flac")
        );
        assert_eq!(set.utterances[1].path, Path::new("/abs/clip.wav"));
        assert_eq!(
            set.utterances[0].reference,
            "And so my fellow Americans, ask not."
        );
        assert_eq!(set.utterances[0].line, 2);
        assert_eq!(set.utterances[2].line, 6);
        assert_eq!(
            set.skipped,
            [Skipped {
                name: "asr/jfk.mp3".into(),
                line: 4,
                duplicate_of: "asr/jfk.flac".into(),
                duplicate_line: 2,
            }]
        );
    }

    #[test]
    fn tsv_without_header() {
        let set = parse_tsv("a.wav\tone two\nb.wav\tthree\n", Path::new("")).unwrap();
        assert_eq!(set.utterances.len(), 2);
        assert_eq!(set.utterances[0].path, Path::new("a.wav"));
        assert!(set.skipped.is_empty());
        // `file` is a header only on the first row.
        let set = parse_tsv("a.wav\tone\nfile\ttwo\n", Path::new("")).unwrap();
        assert_eq!(set.utterances[1].name, "file");
    }

    #[test]
    fn tsv_malformed_lines_name_their_number() {
        let e = parse_tsv("file\treference\na.wav\tone\nb.wav only\n", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 3:"), "{e}");
        assert!(e.contains("b.wav only"), "{e}");
        let e = parse_tsv("a.wav\t  \n", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 1:"), "{e}");
        let e = parse_tsv("a.wav\tone\n\tword\n", Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_tsv("a.wav\t...\n", Path::new(""))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "line 1: the reference of a.wav has no words");
        assert_eq!(
            parse_tsv("file\treference\n\n", Path::new(""))
                .unwrap_err()
                .to_string(),
            "no entries"
        );
    }

    #[test]
    fn missing_tsv_says_where_the_set_lives() {
        let e = read_eval_set(Path::new("/nonexistent/eval/asr.tsv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("../shared/eval"), "{e}");
        assert!(e.contains("/nonexistent/eval/asr.tsv"), "{e}");
    }

    const FW_JSON: &str = r#"{
 "engine": "faster-whisper 1.2.1 / ctranslate2 4.8.5",
 "compute_type": "float32",
 "beam_size": 1,
 "threads": 2,
 "language": "en",
 "files": [
  {"file": "e/a.wav", "text": "Go forward 10 meters.", "seconds": 0.5, "audio_seconds": 2.5},
  {"file": "e/b.wav", "text": "He hoped there would be stew.", "seconds": 1.5, "audio_seconds": 5.5}
 ]
}"#;

    fn utterances() -> Vec<Utterance> {
        parse_tsv(
            "a.wav\tgo forward ten meters\nb.wav\the hoped there would be stew\n",
            Path::new("e"),
        )
        .unwrap()
        .utterances
    }

    fn names() -> Vec<String> {
        vec!["e/a.wav".to_owned(), "e/b.wav".to_owned()]
    }

    #[test]
    fn runner_output_parses_and_scores() {
        let output = parse_fw_output(FW_JSON, &names()).unwrap();
        assert_eq!(output.engine, "faster-whisper 1.2.1 / ctranslate2 4.8.5");
        assert_eq!(output.compute_type, "float32");
        assert_eq!((output.beam_size, output.threads), (1, 2));
        assert_eq!(output.files[1].text, "He hoped there would be stew.");
        let run = fw_run(output, &utterances());
        assert_eq!(run.mode, "float32");
        assert_eq!(run.wall_seconds, 2.0);
        assert_eq!(run.audio_seconds(), 8.0);
        assert_eq!(run.real_time_factor(), 4.0);
        assert_eq!(run.files[0].file, "a.wav");
        assert_eq!(run.files[0].seconds, Some(0.5));
        // `10` against `ten`: one substitution in 4 + 6 reference words.
        let errors = run.errors();
        assert_eq!((errors.errors(), errors.reference_words), (1, 10));
    }

    #[test]
    fn runner_output_must_match_the_files() {
        let e = parse_fw_output(FW_JSON, &names()[..1])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "faster-whisper returned 2 files for 1 given");
        let e = parse_fw_output(FW_JSON, &["e/a.wav".into(), "e/c.wav".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "faster-whisper returned e/b.wav where e/c.wav was expected"
        );
        assert!(parse_fw_output("not json", &names()).is_err());
        assert!(parse_fw_output(r#"{"engine": "x"}"#, &names()).is_err());
    }

    fn run(engine: &str, mode: &str, wall: f64, texts: [&str; 2]) -> EngineRun {
        let utterances = utterances();
        EngineRun {
            engine: engine.to_owned(),
            mode: mode.to_owned(),
            beam_size: 1,
            wall_seconds: wall,
            files: utterances
                .iter()
                .zip(texts)
                .zip([2.5, 5.5])
                .map(|((u, t), a)| FileResult::new(u, t.to_owned(), None, a))
                .collect(),
        }
    }

    #[test]
    fn rows_compare_ours_with_faster_whisper_float32() {
        let exact = ["go forward ten meters", "he hoped there would be stew"];
        let runs = [
            // 0 errors of 10 words, 8 s of audio in 1 s.
            run("callscript 0.1.0", "sequential", 1.0, exact),
            // 2 errors of 10, 8 s in 0.5 s.
            run(
                "callscript 0.1.0",
                "batched",
                0.5,
                ["go forward 10 meters", "he hoped there would be"],
            ),
            // 1 error of 10, 8 s in 2 s.
            run(
                "faster-whisper 1.2.1 / ctranslate2 4.8.5",
                "float32",
                2.0,
                ["go forward 10 meters", exact[1]],
            ),
        ];
        let table = rows(&runs, Some(&runs[2]));
        assert_eq!(table[0].real_time_factor, 8.0);
        assert_eq!(table[0].wer_percent, 0.0);
        assert_eq!(table[0].rtf_vs_reference, Some(2.0));
        assert_eq!(table[0].wer_points_vs_reference, Some(-10.0));
        assert_eq!(table[1].real_time_factor, 16.0);
        assert!((table[1].wer_percent - 20.0).abs() < 1e-9);
        assert_eq!(table[1].rtf_vs_reference, Some(4.0));
        assert!((table[1].wer_points_vs_reference.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(table[2].real_time_factor, 4.0);
        assert!((table[2].wer_percent - 10.0).abs() < 1e-9);
        assert_eq!(table[2].rtf_vs_reference, None);
        assert_eq!((table[2].files, table[2].audio_seconds), (2, 8.0));

        let text = render_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("RTF / fw f32"), "{text}");
        assert!(lines[1].contains("8.0x"), "{text}");
        assert!(lines[1].contains("2.00x"), "{text}");
        assert!(lines[1].contains("-10.0 pts"), "{text}");
        assert!(lines[2].contains("+10.0 pts"), "{text}");
        assert!(lines[3].starts_with("faster-whisper 1.2.1 / ctranslate2 4.8.5  float32"));
        assert!(!lines[3].contains("pts"), "{text}");

        // Without faster-whisper: no comparison columns.
        let alone = render_table(&rows(&runs[..2], None));
        assert!(!alone.contains("fw f32"), "{alone}");
        assert!(!alone.contains("pts"), "{alone}");
    }

    #[test]
    fn differing_texts_are_found_after_normalization() {
        let a = run("callscript", "sequential", 1.0, ["Go forward.", "x y"]);
        let b = run("callscript", "batched", 1.0, ["go, forward", "x z"]);
        assert_eq!(differing_files(&a, &b), [1]);
    }

    #[test]
    fn cpu_vendor_and_faster_whisper_environment() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n";
        assert_eq!(cpu_vendor(cpuinfo), Some("AuthenticAMD"));
        assert_eq!(cpu_vendor("processor : 0\n"), None);

        let (env, why) = fw_environment(Some("AuthenticAMD"), "float32", None, &[]);
        assert_eq!(env, [("CT2_USE_MKL".to_owned(), "1".to_owned())]);
        assert!(why.starts_with("CT2_USE_MKL=1"), "{why}");
        let (env, why) = fw_environment(Some("AuthenticAMD"), "int8", None, &[]);
        assert!(env.is_empty());
        assert!(why.starts_with("CT2_USE_MKL unset"), "{why}");

        for compute_type in ["float32", "int8"] {
            let (env, why) = fw_environment(Some("GenuineIntel"), compute_type, None, &[]);
            assert!(env.is_empty());
            assert!(why.contains("unset"), "{why}");
            let (env, why) = fw_environment(Some("AuthenticAMD"), compute_type, Some("0"), &[]);
            assert!(env.is_empty());
            assert!(why.contains("inherited"), "{why}");
        }

        let overrides = [
            ("CT2_USE_MKL".to_owned(), "0".to_owned()),
            ("OMP_NUM_THREADS".to_owned(), "2".to_owned()),
        ];
        let (env, why) = fw_environment(Some("AuthenticAMD"), "float32", None, &overrides);
        assert_eq!(env, overrides);
        assert!(why.ends_with("OMP_NUM_THREADS=2 (--fw-env)"), "{why}");
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env_pair("A=1"), Ok(("A".into(), "1".into())));
        assert_eq!(parse_env_pair("A=x=y"), Ok(("A".into(), "x=y".into())));
        assert_eq!(parse_env_pair("A="), Ok(("A".into(), String::new())));
        assert!(parse_env_pair("A").is_err());
        assert!(parse_env_pair("=1").is_err());
    }

    #[test]
    fn downmix_averages_channels() {
        assert_eq!(downmix(vec![vec![0.5, -1.0]]), [0.5, -1.0]);
        assert_eq!(
            downmix(vec![vec![1.0, 0.0, 0.5], vec![0.0, 0.0, 0.5]]),
            [0.5, 0.0, 0.5]
        );
        assert!(downmix(Vec::new()).is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// bench diarization
// ---------------------------------------------------------------------------------------------

/// One line of the diarization table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiarizationRow {
    pub file: String,
    /// `mono` (the embedding pipeline), `channels` (stereo: channel = speaker) or `mixdown`
    /// (the stereo file's channels mixed, through the mono pipeline).
    pub mode: String,
    pub audio_seconds: f64,
    pub wall_seconds: f64,
    pub reference_seconds: f64,
    pub missed_seconds: f64,
    pub false_alarm_seconds: f64,
    pub confusion_seconds: f64,
    pub der_percent: f64,
    pub reference_speakers: usize,
    pub speakers_found: usize,
    #[serde(skip)]
    pub turns: Vec<Turn>,
}

fn speaker_count(turns: &[Turn]) -> usize {
    let mut names: Vec<&str> = turns.iter().map(|t| t.speaker.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

#[allow(clippy::too_many_arguments)]
fn diarization_row(
    file: &str,
    mode: &str,
    audio_seconds: f64,
    wall_seconds: f64,
    reference: &[Turn],
    hypothesis: Vec<Turn>,
    collar: f64,
) -> DiarizationRow {
    let errors = diarization_error(reference, &hypothesis, collar, false);
    DiarizationRow {
        file: file.to_owned(),
        mode: mode.to_owned(),
        audio_seconds,
        wall_seconds,
        reference_seconds: errors.total,
        missed_seconds: errors.missed,
        false_alarm_seconds: errors.false_alarm,
        confusion_seconds: errors.confusion,
        der_percent: errors.der() * 100.0,
        reference_speakers: speaker_count(reference),
        speakers_found: speaker_count(&hypothesis),
        turns: hypothesis,
    }
}

/// Each speech region of `samples` as a turn of `speaker`.
fn vad_turns(samples: &[f32], speaker: &str) -> Vec<Turn> {
    speech_regions(samples, &VadOptions::default())
        .iter()
        .map(|r| {
            Turn::new(
                r.start as f64 / SAMPLE_RATE,
                r.end as f64 / SAMPLE_RATE,
                speaker,
            )
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// VAD and [`Diarizer::turns`] on one mono channel: the turns and the wall time.
fn diarize_mono(diarizer: &Diarizer, samples: &[f32]) -> Result<(Vec<Turn>, f64)> {
    let start = Instant::now();
    let regions = speech_regions(samples, &VadOptions::default());
    let turns = diarizer.turns(samples, &regions)?;
    Ok((turns, start.elapsed().as_secs_f64()))
}

/// The pipeline's options with the benchmark's overrides.
fn diarize_options(args: &DiarizationArgs, base: DiarizeOptions) -> Result<DiarizeOptions> {
    let mut options = base;
    if let Some(step) = args.step_seconds {
        options.step_seconds = step;
    }
    if args.spectral {
        options.clustering = Clustering::Spectral;
    }
    if let Some(text) = &args.thresholds {
        let values: Vec<f64> = text
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--thresholds {text:?}: three numbers"))?;
        let [threshold, split_threshold, join_threshold] = values[..] else {
            bail!("--thresholds {text:?}: three numbers, THRESHOLD,SPLIT,JOIN");
        };
        options.clustering =
            Clustering::Agglomerative(callscript_worker::diarize::agglomerative::CountThresholds {
                threshold,
                split_threshold,
                join_threshold,
            });
    }
    Ok(options)
}

fn diarization(args: DiarizationArgs) -> Result<()> {
    set_threads(args.threads)?;
    let mut diarizer = args.speakers.open_diarizer()?;
    diarizer.options = diarize_options(&args, diarizer.options)?;
    let mut rows = Vec::new();

    let mut entries: Vec<PathBuf> = std::fs::read_dir(&args.dir)
        .with_context(|| {
            format!(
                "{}: reading the folder (the evaluation set lives in ../shared/eval, which only \
                 the development checkout and CI have; pass --dir)",
                args.dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wav") && p.with_extension("rttm").is_file())
        .collect();
    entries.sort();
    if entries.is_empty() {
        bail!("{}: no NAME.wav with a NAME.rttm", args.dir.display());
    }
    for wav in &entries {
        let rttm = wav.with_extension("rttm");
        let text = std::fs::read_to_string(&rttm)
            .with_context(|| format!("reading {}", rttm.display()))?;
        let reference = parse_rttm(&text).with_context(|| rttm.display().to_string())?;
        let recording = read_mono(wav)?;
        let samples = &recording.channels[0];
        let (turns, wall) = diarize_mono(&diarizer, samples)?;
        rows.push(diarization_row(
            &file_name(wav),
            "mono",
            recording.duration(),
            wall,
            &reference,
            turns,
            args.collar,
        ));
    }

    if args.stereo.as_os_str().is_empty() {
        // No stereo file asked for.
    } else {
        let recording = read_recording(&args.stereo, &AudioLimits::default())?;
        let name = file_name(&args.stereo);
        if recording.channels.len() != 2 {
            bail!(
                "{}: {} channels, a stereo file has 2",
                args.stereo.display(),
                recording.channels.len()
            );
        }
        let seconds = recording.duration();
        let start = Instant::now();
        let by_channel: Vec<Turn> = recording
            .channels
            .iter()
            .enumerate()
            .flat_map(|(i, c)| vad_turns(c, &format!("channel{i}")))
            .collect();
        let channel_wall = start.elapsed().as_secs_f64();
        let reference = match &args.stereo_rttm {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                parse_rttm(&text).with_context(|| path.display().to_string())?
            }
            None => by_channel.clone(),
        };
        rows.push(diarization_row(
            &name,
            "channels",
            seconds,
            channel_wall,
            &reference,
            by_channel,
            args.collar,
        ));
        let mixed = downmix(recording.channels);
        let (turns, wall) = diarize_mono(&diarizer, &mixed)?;
        rows.push(diarization_row(
            &name,
            "mixdown",
            seconds,
            wall,
            &reference,
            turns,
            args.collar,
        ));
    }

    print!("{}", render_diarization_table(&rows, args.collar));
    if args.verbose {
        for row in &rows {
            println!("\n# {} ({})", row.file, row.mode);
            for turn in &row.turns {
                println!("{:8.2} {:8.2}  {}", turn.start, turn.end, turn.speaker);
            }
        }
    }
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "collar": args.collar,
            "rows": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

pub fn render_diarization_table(rows: &[DiarizationRow], collar: f64) -> String {
    let width = rows
        .iter()
        .map(|r| r.file.chars().count())
        .chain(["file".len()])
        .max()
        .unwrap_or(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<8} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>8}",
        "file",
        "mode",
        "audio s",
        "RTF",
        "ref s",
        "miss s",
        "FA s",
        "conf s",
        "DER %",
        "spk",
        "ref spk"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<width$}  {:<8} {:>7.1} {:>5.0}x {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.1} {:>6} {:>8}",
            r.file,
            r.mode,
            r.audio_seconds,
            r.audio_seconds / r.wall_seconds.max(1e-9),
            r.reference_seconds,
            r.missed_seconds,
            r.false_alarm_seconds,
            r.confusion_seconds,
            r.der_percent,
            r.speakers_found,
            r.reference_speakers,
        );
    }
    let _ = writeln!(
        out,
        "(collar {collar} s total around each reference boundary; RTF = audio s / wall s)"
    );
    out
}
