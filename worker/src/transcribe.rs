//! Recordings → transcripts: voice activity detection, chunks, batched decoding, segments.
//!
//! Each channel of each recording is cut into speech regions by Silero VAD ([`crate::silero`],
//! when the transcriber has it) or else by [`crate::vad`]'s detector (less the other
//! party's bleed into its microphone, [`crate::crosstalk`]), merged into
//! chunks of at most 30 s (WhisperX's scheme: no window ever straddles silence that Whisper
//! would fill with invented text, and chunks are independent, so chunks of many calls share a
//! batch). Without VAD a channel is one chunk covering it all, decoded in sequential windows
//! as faster-whisper does.
//!
//! Every chunk is a job with a read position (`seek`). Each round takes up to `batch_size` jobs,
//! cuts a 30 s log-mel window at each one's position, decodes them together and advances each
//! job by what its window consumed (to its last closing timestamp, or the whole window). A
//! window that is silence by the no-speech rule gives no segment, and a silent channel
//! ([`crate::audio::is_silent`]) no job: a recording without speech transcribes to no segments.
//! Jobs are taken in order, so a recording's chunks finish together and its memory can go;
//! log-mel features are computed when a job is first scheduled.

use crate::audio;
use crate::crosstalk;
use crate::decode::{DecodeError, Decoder, Window};
use crate::diarize::{self, DiarizeError, DiarizeOptions, SpeakerEmbedder};
use crate::mel::{LogMel, MelExtractor, HOP_LENGTH, SAMPLE_RATE, WINDOW_FRAMES};
use crate::roles::{assign_roles, RoleOptions};
use crate::segmentation::Segmentation;
use crate::silero::{SileroError, SileroVad};
use crate::transcript::{ChannelTranscript, Segment, Transcript};
use crate::vad::{self, SpeechRegion, VadOptions};

/// Frames per second of log-mel features.
const FRAMES_PER_SECOND: f64 = (SAMPLE_RATE / HOP_LENGTH) as f64;

/// Less content than this (10 ms frames) left in a chunk is not worth another window.
const MIN_WINDOW_FRAMES: usize = 10;

/// How recordings are transcribed, on top of the decoder's own options.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// Voice activity detection; `None` decodes every channel whole, in 30 s windows.
    pub vad: Option<VadOptions>,
    /// Windows per encoder/decoder batch.
    pub batch_size: usize,
    /// Text the model takes as what was said before the first window of each chunk (names,
    /// spellings, style).
    pub initial_prompt: Option<String>,
    /// Feed a window's text to the next window of the same chunk as context.
    pub condition_on_previous_text: bool,
}

impl Default for TranscribeOptions {
    fn default() -> TranscribeOptions {
        TranscribeOptions {
            vad: Some(VadOptions::default()),
            batch_size: 8,
            initial_prompt: None,
            condition_on_previous_text: true,
        }
    }
}

/// One recording: 16 kHz samples per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// Its file path or name, carried into the transcript.
    pub name: String,
    pub channels: Vec<Vec<f32>>,
}

impl Recording {
    /// Its length in seconds.
    pub fn duration(&self) -> f64 {
        self.channels.first().map_or(0, Vec::len) as f64 / SAMPLE_RATE as f64
    }
}

/// Progress of a [`Transcriber::transcribe`] call, reported after every batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Seconds of audio (over all channels) decoded so far.
    pub done_seconds: f64,
    /// Seconds of audio to decode in all.
    pub total_seconds: f64,
    /// Recordings all of whose chunks are decoded.
    pub recordings_done: usize,
}

/// A stretch of one channel decoded window by window.
struct Job {
    recording: usize,
    channel: usize,
    /// First sample of the chunk in its channel.
    offset: usize,
    /// Samples in the chunk.
    len: usize,
    mel: Option<LogMel>,
    /// Frames of the chunk consumed so far.
    seek: usize,
    previous: Vec<u32>,
    segments: Vec<Segment>,
    language: Option<String>,
}

impl Job {
    fn frames(&self) -> usize {
        self.mel
            .as_ref()
            .map_or(self.len / HOP_LENGTH, LogMel::content_frames)
    }

    fn done(&self) -> bool {
        self.mel.is_some() && self.seek + MIN_WINDOW_FRAMES > self.frames()
    }
}

/// Errors transcribing a batch of recordings.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("diarizing: {0}")]
    Diarize(#[from] DiarizeError),
    #[error("voice activity detection: {0}")]
    Vad(#[from] SileroError),
}

/// Who said what: each channel of a multi-channel recording is one speaker (one party per
/// channel); a mono recording's speakers come from speaker segmentation and embeddings of its
/// speech ([`diarize::diarize_channel`]).
pub struct Diarizer {
    pub segmentation: Segmentation,
    pub embedder: Box<dyn SpeakerEmbedder>,
    pub options: DiarizeOptions,
    /// How the agent is told from the customer.
    pub roles: RoleOptions,
}

impl Diarizer {
    /// Who spoke when in one channel's `samples`, within its speech `regions`.
    pub fn turns(
        &self,
        samples: &[f32],
        regions: &[SpeechRegion],
    ) -> Result<Vec<diarize::Turn>, DiarizeError> {
        diarize::diarize_channel(
            &self.segmentation,
            self.embedder.as_ref(),
            samples,
            regions,
            &self.options,
        )
    }
}

/// Transcribes recordings with one decoder.
pub struct Transcriber {
    decoder: Decoder,
    mel: MelExtractor,
    options: TranscribeOptions,
    prompt: Vec<u32>,
    diarizer: Option<Diarizer>,
    silero: Option<std::sync::Arc<SileroVad>>,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("decoder", &self.decoder)
            .field("options", &self.options)
            .field("diarize", &self.diarizer.is_some())
            .field("silero", &self.silero.is_some())
            .finish_non_exhaustive()
    }
}

impl Transcriber {
    pub fn new(decoder: Decoder, options: TranscribeOptions) -> Result<Transcriber, DecodeError> {
        let prompt = match &options.initial_prompt {
            Some(text) if !text.trim().is_empty() => {
                decoder.tokenizer().encode(&format!(" {}", text.trim()))?
            }
            _ => Vec::new(),
        };
        Ok(Transcriber {
            mel: MelExtractor::new(decoder.model().dims.n_mels),
            decoder,
            options,
            prompt,
            diarizer: None,
            silero: None,
        })
    }

    /// Label every segment with its speaker.
    pub fn with_diarizer(mut self, diarizer: Diarizer) -> Transcriber {
        self.diarizer = Some(diarizer);
        self
    }

    /// Find speech with Silero VAD where VAD is on ([`crate::silero::speech`]).
    pub fn with_silero(mut self, silero: std::sync::Arc<SileroVad>) -> Transcriber {
        self.silero = Some(silero);
        self
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Transcribe `recordings` in batches across all of them; one transcript each, in order.
    pub fn transcribe(
        &mut self,
        recordings: &[Recording],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<Transcript>, TranscribeError> {
        let speech: Vec<Vec<Option<Vec<SpeechRegion>>>> = recordings
            .iter()
            .map(|r| self.speech(r))
            .collect::<Result<_, _>>()?;
        let mut jobs = self.jobs(recordings, &speech);
        let total_seconds: f64 =
            jobs.iter().map(|j| j.len as f64).sum::<f64>() / SAMPLE_RATE as f64;
        let mut done_seconds = 0.0;
        let batch_size = self.options.batch_size.max(1);
        let mut next = 0;
        loop {
            while next < jobs.len() && jobs[next].done() {
                next += 1;
            }
            let batch: Vec<usize> = (next..jobs.len())
                .filter(|&j| !jobs[j].done())
                .take(batch_size)
                .collect();
            if batch.is_empty() {
                break;
            }
            let windows: Vec<Window> = batch
                .iter()
                .map(|&j| {
                    let job = &mut jobs[j];
                    if job.mel.is_none() {
                        let samples = &recordings[job.recording].channels[job.channel]
                            [job.offset..job.offset + job.len];
                        job.mel = Some(self.mel.compute(samples));
                    }
                    Window {
                        mel: job.mel.as_ref().expect("computed above").window(job.seek),
                        previous: job.previous.clone(),
                    }
                })
                .collect();
            let results = self.decoder.decode(&windows)?;
            for (&j, result) in batch.iter().zip(results) {
                let before = jobs[j].seek;
                self.advance(&mut jobs[j], result);
                done_seconds +=
                    (jobs[j].seek.min(jobs[j].frames()) - before) as f64 / FRAMES_PER_SECOND;
            }
            let recordings_done = (0..recordings.len())
                .filter(|&r| jobs.iter().filter(|j| j.recording == r).all(Job::done))
                .count();
            progress(Progress {
                done_seconds: done_seconds.min(total_seconds),
                total_seconds,
                recordings_done,
            });
        }
        let mut transcripts = self.assemble(recordings, jobs);
        if let Some(diarizer) = &self.diarizer {
            for ((transcript, recording), speech) in
                transcripts.iter_mut().zip(recordings).zip(&speech)
            {
                self.label_speakers(diarizer, transcript, recording, speech)?;
                (transcript.roles, transcript.role_confidence) =
                    assign_roles(transcript, &diarizer.roles);
            }
        }
        Ok(transcripts)
    }

    /// Each channel's speech regions, less the other party's bleed, when VAD is on (`None`
    /// when it is off).
    fn speech(&self, recording: &Recording) -> Result<Vec<Option<Vec<SpeechRegion>>>, SileroError> {
        let channels = &recording.channels;
        (0..channels.len())
            .map(|c| {
                let Some(options) = self.options.vad.as_ref() else {
                    return Ok(None);
                };
                let regions = match &self.silero {
                    Some(silero) => crate::silero::speech(silero, &channels[c])?,
                    None => vad::speech_regions(&channels[c], options),
                };
                Ok(Some(crosstalk::own_speech(channels, c, &regions)))
            })
            .collect()
    }

    /// The chunks of every channel of every recording, from their speech regions
    /// ([`Transcriber::speech`]).
    fn jobs(
        &self,
        recordings: &[Recording],
        speech: &[Vec<Option<Vec<SpeechRegion>>>],
    ) -> Vec<Job> {
        let mut jobs = Vec::new();
        for ((r, recording), speech) in recordings.iter().enumerate().zip(speech) {
            for ((c, samples), regions) in recording.channels.iter().enumerate().zip(speech) {
                // A silent channel has nothing to hear: without VAD, the model would be asked
                // about every window of it anyway.
                if crosstalk::duplicate_of(&recording.channels, c).is_some()
                    || audio::is_silent(samples)
                {
                    continue;
                }
                let spans: Vec<(usize, usize)> = match regions {
                    Some(regions) => vad::chunks(samples, regions, vad::CHUNK_SAMPLES)
                        .into_iter()
                        .map(|chunk| (chunk.start, chunk.end))
                        .collect(),
                    None => vec![(0, samples.len())],
                };
                for (start, end) in spans {
                    jobs.push(Job {
                        recording: r,
                        channel: c,
                        offset: start,
                        len: end - start,
                        mel: None,
                        seek: 0,
                        previous: self.prompt.clone(),
                        segments: Vec::new(),
                        language: None,
                    });
                }
            }
        }
        jobs
    }

    /// Take a window's result into its job: segments (unless silence) and the next position.
    fn advance(&self, job: &mut Job, result: crate::decode::Decoded) {
        let frames = job.frames();
        let content = (frames - job.seek).min(WINDOW_FRAMES);
        let content_seconds = content as f64 / FRAMES_PER_SECOND;
        let window_start =
            (job.offset as f64 / SAMPLE_RATE as f64) + job.seek as f64 / FRAMES_PER_SECOND;
        job.language.get_or_insert_with(|| result.language.clone());
        let options = self.decoder.options();
        if result.is_silence(options) {
            job.seek += content;
            return;
        }
        let (segments, consumed) = if options.timestamps {
            self.decoder.segments(&result.tokens, content_seconds)
        } else {
            (
                vec![crate::decode::TokenSegment {
                    start: 0.0,
                    end: content_seconds,
                    tokens: result.tokens.clone(),
                }],
                content_seconds,
            )
        };
        let tokenizer = self.decoder.tokenizer();
        for segment in segments {
            let Ok(text) = tokenizer.decode(&segment.tokens) else {
                continue;
            };
            let end = segment.end.min(content_seconds);
            if text.trim().is_empty() || segment.start >= end {
                continue;
            }
            job.segments.push(Segment {
                start: window_start + segment.start,
                end: window_start + end,
                text,
                tokens: segment
                    .tokens
                    .iter()
                    .copied()
                    .filter(|&t| t < tokenizer.eot)
                    .collect(),
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
                compression_ratio: result.compression_ratio,
                temperature: result.temperature,
                speaker: None,
            });
        }
        let consumed_frames = (consumed * FRAMES_PER_SECOND).round() as usize;
        // A window that consumed nothing (it closed at 0.00) still moves on: no endless loop.
        job.seek += if consumed_frames == 0 {
            content
        } else {
            consumed_frames.min(content)
        };
        if self.options.condition_on_previous_text && result.temperature < 0.5 {
            job.previous.extend(&result.tokens);
        } else {
            job.previous = self.prompt.clone();
        }
    }

    /// Sets each segment's speaker: its channel's on multi-channel recordings, the diarized
    /// speaker with the most overlap on mono ones.
    fn label_speakers(
        &self,
        diarizer: &Diarizer,
        transcript: &mut Transcript,
        recording: &Recording,
        speech: &[Option<Vec<SpeechRegion>>],
    ) -> Result<(), DiarizeError> {
        if recording.channels.len() > 1 {
            for channel in &mut transcript.channels {
                let speaker = diarize::speaker_name(channel.channel);
                for segment in &mut channel.segments {
                    segment.speaker = Some(speaker.clone());
                }
            }
            return Ok(());
        }
        let Some(samples) = recording.channels.first() else {
            return Ok(());
        };
        // The regions the transcription used; without VAD, the default VAD's.
        let regions = match speech.first() {
            Some(Some(regions)) => regions.clone(),
            _ => vad::speech_regions(samples, &VadOptions::default()),
        };
        let turns = diarizer.turns(samples, &regions)?;
        for segment in transcript.channels.iter_mut().flat_map(|c| &mut c.segments) {
            segment.speaker = diarize::speaker_for((segment.start, segment.end), &turns);
        }
        Ok(())
    }

    /// Jobs' segments gathered per recording and channel, in time order.
    fn assemble(&self, recordings: &[Recording], jobs: Vec<Job>) -> Vec<Transcript> {
        let fallback_language = self
            .decoder
            .options()
            .language
            .clone()
            .unwrap_or_else(|| "en".to_owned());
        let mut transcripts: Vec<Transcript> = recordings
            .iter()
            .map(|recording| Transcript {
                roles: Default::default(),
                role_confidence: None,
                source: recording.name.clone(),
                duration: recording.duration(),
                channels: (0..recording.channels.len())
                    .map(|channel| ChannelTranscript {
                        channel,
                        language: String::new(),
                        segments: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        for job in jobs {
            let channel = &mut transcripts[job.recording].channels[job.channel];
            if channel.language.is_empty() {
                if let Some(language) = job.language {
                    channel.language = language;
                }
            }
            channel.segments.extend(job.segments);
        }
        for channel in transcripts.iter_mut().flat_map(|t| &mut t.channels) {
            channel.segments.sort_by(|a, b| a.start.total_cmp(&b.start));
            if channel.language.is_empty() {
                channel.language = fallback_language.clone();
            }
        }
        transcripts
    }
}
