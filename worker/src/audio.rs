//! Recording bytes → 16 kHz `f32` samples, one buffer per channel.
//!
//! Whisper wants 16 kHz mono, and a stereo call recording carries one party per channel, so the
//! channels stay separate: diarization by channel is free and far better than guessing speakers.
//!
//! [`decode`] probes the container with symphonia (WAV PCM/μ-law/A-law, MP3, FLAC, OGG/Vorbis,
//! AAC/M4A) and decodes the first audio track packet by packet. Ogg/Opus, which LiveKit's
//! audio-only egress writes and symphonia cannot decode, goes to libopus instead (`opus.rs`),
//! through an Ogg page reader of its own (`ogg.rs`) so that a damaged page is reported rather
//! than skipped. Every path feeds the same streaming resampler (`resample.rs`: rubato's FFT
//! resampler, band-limited, so a 44.1 kHz file does not alias into the speech band); 16 kHz input
//! is passed through untouched.
//!
//! Samples that only the encoder added are dropped, so that output sample 0 is the recording's
//! first sample and every timestamp derived from it is on time: Opus's pre-skip and end trimming,
//! and AAC's priming and padding as the MP4 edit list or `iTunSMPB` tag states them (`mp4.rs`;
//! symphonia's MP4 reader ignores both). symphonia's MP3 and Vorbis decoders apply the trimming
//! their readers mark.
//!
//! Every way a file can be unusable has its own [`AudioError`] variant, because the caller acts
//! differently on each: an over-limit file is refused for good, a truncated upload may be fetched
//! again. Silence is not among them: a recording without speech is a call all the same, which
//! decodes and transcribes to no segments ([`is_silent`]). Limits are enforced before the
//! expensive work: the byte size before probing, the duration the container states before
//! decoding, and the running duration while decoding.
//! No input makes [`decode`] panic.

mod mp4;
mod ogg;
mod opus;
mod resample;

use std::io::{Cursor, ErrorKind};
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::FORMAT_ID_ISOMP4;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::units::Timestamp;

use resample::ChannelSink;

/// The sample rate Whisper expects, and the rate of every buffer [`decode`] returns.
pub const TARGET_SAMPLE_RATE: u32 = 16_000;

/// Below this peak level (−80 dBFS) a recording holds no speech, only dither or line noise.
pub const SILENCE_PEAK_THRESHOLD: f32 = 1e-4;

/// Whether a channel is silent: no sample reaches [`SILENCE_PEAK_THRESHOLD`], so there is nothing
/// for the model to hear (and nothing it should be asked to invent words for).
pub fn is_silent(samples: &[f32]) -> bool {
    samples
        .iter()
        .all(|sample| sample.abs() < SILENCE_PEAK_THRESHOLD)
}

/// How much shorter than the container's stated length a stream may decode before it counts as
/// truncated: encoders' padding and priming make lossy frame counts differ slightly.
const TRUNCATION_TOLERANCE_SECONDS: f64 = 0.1;

/// A jump in packet timestamps larger than this means the reader skipped data it could not
/// parse (FLAC and MP3 readers resynchronise silently): the recording has a hole, so it is
/// corrupt rather than quietly shorter.
const SKIPPED_DATA_TOLERANCE_SECONDS: f64 = 0.01;

/// Upper bounds a recording must stay within to be decoded at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AudioLimits {
    /// The largest accepted file, in bytes.
    pub max_bytes: u64,
    /// The longest accepted recording, in seconds.
    pub max_duration_seconds: f64,
}

impl Default for AudioLimits {
    /// 500 MiB and 4 hours: well past any real call, well short of exhausting a worker's memory
    /// (4 h of stereo at 16 kHz is about 1.8 GB of `f32`).
    fn default() -> Self {
        Self {
            max_bytes: 500 * 1024 * 1024,
            max_duration_seconds: 4.0 * 3600.0,
        }
    }
}

/// A decoded recording, resampled to [`TARGET_SAMPLE_RATE`].
#[derive(Clone, PartialEq)]
pub struct DecodedAudio {
    /// The sample rate the codec decodes at, before resampling (always 48 kHz for Opus, whatever
    /// rate its encoder was given).
    pub source_sample_rate: u32,
    /// One buffer per channel, all of the same length, at [`TARGET_SAMPLE_RATE`].
    pub channels: Vec<Vec<f32>>,
    /// The length of the recording in seconds.
    pub duration_seconds: f64,
}

impl DecodedAudio {
    /// The number of samples in each channel.
    pub fn frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }
}

/// A summary, not the samples: a test failure or log line must not print millions of floats.
impl std::fmt::Debug for DecodedAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedAudio")
            .field("source_sample_rate", &self.source_sample_rate)
            .field("channels", &self.channels.len())
            .field("frames", &self.frames())
            .field("duration_seconds", &self.duration_seconds)
            .finish()
    }
}

/// Why a recording could not be decoded into usable audio.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("audio file is empty (0 bytes)")]
    Empty,
    #[error("audio file is {bytes} bytes, over the limit of {limit_bytes} bytes")]
    TooLarge { bytes: u64, limit_bytes: u64 },
    #[error("audio is at least {seconds:.1} s long, over the limit of {limit_seconds:.0} s")]
    TooLong { seconds: f64, limit_seconds: f64 },
    #[error("not a supported audio file: {reason}")]
    NotAudio { reason: String },
    #[error("unsupported audio codec: {reason}")]
    UnsupportedCodec { reason: String },
    #[error("corrupt audio{}: {reason}", describe_position(*.position_seconds))]
    Corrupt {
        /// Where in the recording decoding failed, when known.
        position_seconds: Option<f64>,
        reason: String,
    },
    #[error(
        "truncated audio: the stream ends after {decoded_seconds:.2} s{}",
        describe_expected(*.expected_seconds)
    )]
    Truncated {
        decoded_seconds: f64,
        /// The length the container states, when it states one.
        expected_seconds: Option<f64>,
    },
    #[error("audio track contains no samples")]
    NoSamples,
}

fn describe_position(position_seconds: Option<f64>) -> String {
    position_seconds.map_or_else(String::new, |seconds| format!(" at {seconds:.2} s"))
}

fn describe_expected(expected_seconds: Option<f64>) -> String {
    expected_seconds.map_or_else(String::new, |seconds| {
        format!(" of the {seconds:.2} s its header states")
    })
}

/// Decodes a whole recording into 16 kHz channels.
///
/// `hint` is the file extension (`"mp3"`, `".wav"`), if any; the content decides the format, the
/// hint only breaks ties. Fails with the [`AudioError`] that says what is wrong with the file.
pub fn decode(
    bytes: &[u8],
    hint: Option<&str>,
    limits: &AudioLimits,
) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let byte_len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if byte_len > limits.max_bytes {
        return Err(AudioError::TooLarge {
            bytes: byte_len,
            limit_bytes: limits.max_bytes,
        });
    }
    // symphonia and the readers here parse untrusted bytes; a bug in one of them must cost this
    // one file, not the worker process. Nothing is shared with the closure, so unwinding cannot
    // leave broken state behind. (libopus is C, so this net cannot catch it; it is fuzzed
    // upstream, and only packets that passed the Ogg checksum reach it.)
    panic::catch_unwind(AssertUnwindSafe(|| decode_unchecked(bytes, hint, limits))).unwrap_or_else(
        |payload| {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(AudioError::Corrupt {
                position_seconds: None,
                reason: format!("the decoder failed on malformed data ({message})"),
            })
        },
    )
}

fn decode_unchecked(
    bytes: &[u8],
    hint: Option<&str>,
    limits: &AudioLimits,
) -> Result<DecodedAudio, AudioError> {
    // Decided by content, like symphonia's probe: an Ogg file is Opus whatever its name.
    if let Some(serial) = opus::find_stream(bytes) {
        return opus::decode(bytes, serial, limits);
    }
    decode_with_symphonia(bytes, hint, limits)
}

fn decode_with_symphonia(
    bytes: &[u8],
    hint: Option<&str>,
    limits: &AudioLimits,
) -> Result<DecodedAudio, AudioError> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut probe_hint = Hint::new();
    if let Some(extension) = hint {
        probe_hint.with_extension(extension.trim_start_matches('.'));
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &probe_hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|error| match error {
            // A recognised header that stops short is a cut-off file, not a foreign one.
            SymphoniaError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
                AudioError::Truncated {
                    decoded_seconds: 0.0,
                    expected_seconds: None,
                }
            }
            other => AudioError::NotAudio {
                reason: other.to_string(),
            },
        })?;

    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NotAudio {
            reason: "the file has no audio track".to_owned(),
        })?;
    let track_id = track.id;
    let codec_params = track
        .codec_params
        .as_ref()
        .and_then(|params| params.audio())
        .ok_or_else(|| AudioError::NotAudio {
            reason: "the audio track does not say how it is encoded".to_owned(),
        })?
        .clone();
    let stated_frames = track.num_frames;
    let track_time_base = track.time_base;
    let mut expected_next_pts: Option<i64> = None;
    let media_trim = if format.format_info().format == FORMAT_ID_ISOMP4 {
        mp4::encoder_trim(bytes, track_id)
    } else {
        None
    };
    // An MP4 track's stated length includes the priming and padding that are trimmed.
    let stated_seconds = media_trim.and_then(|trim| trim.seconds()).or_else(|| {
        match (stated_frames, codec_params.sample_rate) {
            (Some(frames), Some(rate)) if rate > 0 => Some(frames as f64 / f64::from(rate)),
            _ => track
                .time_base
                .zip(track.duration)
                .and_then(|(time_base, duration)| time_base.calc_duration(duration))
                .map(|time| time.as_nanos() as f64 / 1e9),
        }
    });
    if let Some(seconds) = stated_seconds {
        if seconds > limits.max_duration_seconds {
            return Err(AudioError::TooLong {
                seconds,
                limit_seconds: limits.max_duration_seconds,
            });
        }
    }

    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&codec_params, &AudioDecoderOptions::default())
        .map_err(|error| AudioError::UnsupportedCodec {
            reason: format!("{error} (codec {})", codec_params.codec),
        })?;

    let mut sink: Option<ChannelSink> = None;
    let mut window = FrameWindow::default();
    let mut planes: Vec<Vec<f32>> = Vec::new();
    let mut decoded_frames: u64 = 0;
    // Before the first buffer only the container's rate is known; the decoder's is authoritative.
    let mut sample_rate = codec_params.sample_rate.filter(|rate| *rate > 0);

    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(io)) if io.kind() == ErrorKind::UnexpectedEof => {
                return Err(AudioError::Truncated {
                    decoded_seconds: seconds_decoded(decoded_frames, sample_rate),
                    expected_seconds: stated_seconds,
                });
            }
            Err(SymphoniaError::ResetRequired) => {
                return Err(AudioError::Corrupt {
                    position_seconds: position_seconds(decoded_frames, sample_rate),
                    reason: "the stream changes its track layout mid-way (chained stream)"
                        .to_owned(),
                });
            }
            Err(error) => {
                return Err(AudioError::Corrupt {
                    position_seconds: position_seconds(decoded_frames, sample_rate),
                    reason: error.to_string(),
                });
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        if let (Some(time_base), Some(expected_pts)) = (track_time_base, expected_next_pts) {
            let gap = packet.pts.get().saturating_sub(expected_pts);
            let gap_seconds = time_base
                .calc_time(Timestamp::new(gap))
                .map_or(f64::INFINITY, |time| time.as_nanos() as f64 / 1e9);
            if gap_seconds > SKIPPED_DATA_TOLERANCE_SECONDS {
                return Err(AudioError::Corrupt {
                    position_seconds: position_seconds(decoded_frames, sample_rate),
                    reason: format!("{gap_seconds:.3} s of unreadable data were skipped"),
                });
            }
        }
        expected_next_pts = Some(
            packet
                .pts
                .get()
                .saturating_add(i64::try_from(packet.dur.get()).unwrap_or(i64::MAX)),
        );
        let buffer = decoder
            .decode(&packet)
            .map_err(|error| AudioError::Corrupt {
                position_seconds: position_seconds(decoded_frames, sample_rate),
                reason: error.to_string(),
            })?;
        if buffer.frames() == 0 {
            continue;
        }
        let buffer_rate = buffer.spec().rate();
        let buffer_channels = buffer.num_planes();
        buffer.copy_to_vecs_planar::<f32>(&mut planes);

        let sink = match &mut sink {
            Some(sink) => {
                if sink.source_rate != buffer_rate || sink.channels() != buffer_channels {
                    return Err(AudioError::Corrupt {
                        position_seconds: position_seconds(decoded_frames, sample_rate),
                        reason: format!(
                            "the stream switches from {} Hz × {} channels to {buffer_rate} Hz × \
                             {buffer_channels} channels",
                            sink.source_rate,
                            sink.channels()
                        ),
                    });
                }
                sink
            }
            None => {
                sample_rate = Some(buffer_rate);
                if let Some(trim) = media_trim {
                    let (start, end) = trim.frames_at(buffer_rate);
                    window = FrameWindow::new(start, end);
                }
                let expected_frames = stated_frames.map(|frames| {
                    frames.min((limits.max_duration_seconds * f64::from(buffer_rate)) as u64)
                });
                sink.insert(ChannelSink::new(
                    buffer_rate,
                    buffer_channels,
                    expected_frames,
                )?)
            }
        };
        let kept = window.take(buffer.frames());
        if kept.len() < buffer.frames() {
            for plane in &mut planes {
                plane.truncate(kept.end);
                plane.drain(..kept.start);
            }
        }
        sink.push(&planes)?;
        decoded_frames += kept.len() as u64;

        // Also catches files whose header understates (or omits) their length.
        let seconds = seconds_decoded(decoded_frames, sample_rate);
        if seconds > limits.max_duration_seconds {
            return Err(AudioError::TooLong {
                seconds,
                limit_seconds: limits.max_duration_seconds,
            });
        }
    }

    let decoded_seconds = seconds_decoded(decoded_frames, sample_rate);
    if let Some(expected_seconds) = stated_seconds {
        if decoded_seconds + TRUNCATION_TOLERANCE_SECONDS < expected_seconds {
            return Err(AudioError::Truncated {
                decoded_seconds,
                expected_seconds: Some(expected_seconds),
            });
        }
    }
    finish(sink, decoded_seconds)
}

/// What every path ends with: the resampler flushed, and a recording with samples in it.
fn finish(sink: Option<ChannelSink>, duration_seconds: f64) -> Result<DecodedAudio, AudioError> {
    let Some(sink) = sink else {
        return Err(AudioError::NoSamples);
    };
    let source_sample_rate = sink.source_rate;
    let channels = sink.finish()?;
    if channels.first().is_none_or(Vec::is_empty) {
        return Err(AudioError::NoSamples);
    }
    Ok(DecodedAudio {
        source_sample_rate,
        channels,
        duration_seconds,
    })
}

/// How far into the recording `frames` reach, when the rate is known.
fn position_seconds(frames: u64, sample_rate: Option<u32>) -> Option<f64> {
    sample_rate.map(|rate| frames as f64 / f64::from(rate))
}

fn seconds_decoded(frames: u64, sample_rate: Option<u32>) -> f64 {
    position_seconds(frames, sample_rate).unwrap_or(0.0)
}

/// The decoded frames that belong to the recording: encoders add frames before its first sample
/// (priming, pre-skip) and after its last (padding), which the container says how many of.
#[derive(Debug, Default)]
struct FrameWindow {
    /// Decoded frames to drop at the start.
    start: u64,
    /// The end of the recording, counted in decoded frames; `None` for "wherever decoding ends".
    end: Option<u64>,
    /// Decoded frames seen so far.
    position: u64,
}

impl FrameWindow {
    fn new(start: u64, end: Option<u64>) -> Self {
        Self {
            start,
            end,
            position: 0,
        }
    }

    fn start(&self) -> u64 {
        self.start
    }

    fn set_end(&mut self, end: u64) {
        self.end = Some(end);
    }

    /// Which of the next `frames` decoded frames to keep, as a range within them.
    fn take(&mut self, frames: usize) -> Range<usize> {
        let first = self.position;
        let last = first.saturating_add(frames as u64);
        self.position = last;
        let keep_from = self.start.clamp(first, last);
        let keep_to = self.end.map_or(last, |end| end.clamp(keep_from, last));
        (keep_from - first) as usize..(keep_to - first) as usize
    }
}
