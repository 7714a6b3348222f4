//! What a transcription produces, and the forms people and tools read it in.
//!
//! Call recordings are usually stereo with one party of the call on each channel, and each
//! channel is transcribed on its own: keeping the channels apart in the result keeps who said
//! what, which a downmix would lose. The renderings then interleave the channels in time order
//! (a conversation reads top to bottom) and label each line, cue or voice with its channel; a
//! mono transcript renders without labels. Channels count from 0 everywhere, as the stored
//! segments, the JSON, a campaign's channel map and `--agent-channel` count them (0 is the first,
//! left, channel), so a label means the same channel wherever it is read.
//!
//! Subtitle times are rounded to whole milliseconds. Rounding is monotonic, so a cue never ends
//! before it starts; beyond that every cue is made at least 1 ms long, because WebVTT requires a
//! cue's end to be after its start and Whisper can emit zero-length segments. Segments whose
//! text is empty once trimmed are left out of the text and subtitle renderings (an empty SRT cue
//! would end at its own blank line); internal whitespace, line breaks included, collapses to
//! single spaces so one segment stays one line.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diarize::{write_rttm, Turn};
use crate::roles::Role;

/// One decoded stretch of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Seconds from the start of the recording.
    pub start: f64,
    /// Seconds from the start of the recording.
    pub end: f64,
    pub text: String,
    /// The text tokens chosen (no special tokens).
    pub tokens: Vec<u32>,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    pub compression_ratio: f64,
    /// The sampling temperature that produced this segment (0 for greedy or beam search).
    pub temperature: f64,
    /// Who spoke it (`SPEAKER_00`…), when the transcript was diarized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
}

/// The transcription of one channel of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelTranscript {
    /// The channel's index in the recording, from 0 (rendered as it is).
    pub channel: usize,
    /// The language code (`en`) the channel was transcribed in.
    pub language: String,
    pub segments: Vec<Segment>,
}

/// The transcription of one recording, each channel on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// The recording's file path or name.
    pub source: String,
    /// The recording's length in seconds.
    pub duration: f64,
    pub channels: Vec<ChannelTranscript>,
    /// Each diarized speaker's role in the call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, Role>,
    /// How sure the roles are, 0–1 (1: from the channel map); under the judge's threshold the
    /// call is marked for review ([`crate::roles`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_confidence: Option<f64>,
}

impl Transcript {
    /// Every segment's text, channels interleaved in start-time order, trimmed and joined by
    /// single spaces (empty segments skipped).
    pub fn text(&self) -> String {
        self.lines()
            .into_iter()
            .map(|line| line.text)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The non-empty segments of all channels in start-time order; segments starting at the same
    /// time keep channel order, then their order within the channel.
    fn lines(&self) -> Vec<Line<'_>> {
        let mut lines: Vec<Line<'_>> = self
            .channels
            .iter()
            .flat_map(|channel| {
                channel.segments.iter().filter_map(move |segment| {
                    let text = collapse_whitespace(&segment.text);
                    (!text.is_empty()).then_some(Line {
                        channel: channel.channel,
                        segment,
                        text,
                    })
                })
            })
            .collect();
        // Stable: ties keep the order built above.
        lines.sort_by(|a, b| by_start(a.segment, b.segment));
        lines
    }

    /// Whether renderings label each line with its channel.
    fn labelled(&self) -> bool {
        self.channels.len() > 1
    }

    /// A line's label: its speaker when diarized, else its channel when there are several.
    fn label(&self, line: &Line<'_>) -> Option<String> {
        match &line.segment.speaker {
            Some(speaker) => Some(match self.roles.get(speaker) {
                Some(Role::Agent) => format!("{speaker} agent"),
                Some(Role::Customer) => format!("{speaker} customer"),
                None => speaker.clone(),
            }),
            None if self.labelled() => Some(format!("ch {}", line.channel)),
            None => None,
        }
    }
}

struct Line<'a> {
    channel: usize,
    segment: &'a Segment,
    text: String,
}

fn by_start(a: &Segment, b: &Segment) -> Ordering {
    a.start.total_cmp(&b.start)
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How a transcript is written out (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutputFormat {
    /// One line per segment, `[ch N] ` before each when there are several channels.
    #[default]
    Text,
    /// The whole [`Transcript`], pretty-printed.
    Json,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles, channels as voices.
    Vtt,
    /// NIST RTTM: one `SPEAKER` line per segment, for diarization tools and scoring.
    Rttm,
}

impl OutputFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [OutputFormat; 5] = [Self::Text, Self::Json, Self::Srt, Self::Vtt, Self::Rttm];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::Rttm => "rttm",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Text => "txt",
            Self::Json => "json",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
            Self::Rttm => "rttm",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--format` value that names no [`OutputFormat`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output format `{0}` (expected text, json, srt, vtt or rttm)")]
pub struct UnknownOutputFormat(pub String);

impl FromStr for OutputFormat {
    type Err = UnknownOutputFormat;

    /// The format's name, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|format| format.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownOutputFormat(s.to_owned()))
    }
}

/// `transcript` written out in `format`; every format but an empty text ends with a newline.
pub fn render(transcript: &Transcript, format: OutputFormat) -> String {
    match format {
        OutputFormat::Text => render_text(transcript),
        OutputFormat::Json => render_json(transcript),
        OutputFormat::Srt => render_srt(transcript),
        OutputFormat::Vtt => render_vtt(transcript),
        OutputFormat::Rttm => render_rttm(transcript),
    }
}

fn render_text(transcript: &Transcript) -> String {
    let mut out = String::new();
    for line in transcript.lines() {
        if let Some(label) = transcript.label(&line) {
            out.push_str(&format!("[{label}] "));
        }
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}

fn render_json(transcript: &Transcript) -> String {
    // Plain structs of strings, numbers and vectors: serialization cannot fail.
    let mut out =
        serde_json::to_string_pretty(transcript).expect("a Transcript always serializes to JSON");
    out.push('\n');
    out
}

fn render_srt(transcript: &Transcript) -> String {
    let mut out = String::new();
    for (index, line) in transcript.lines().into_iter().enumerate() {
        let (start, end) = cue_millis(line.segment);
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}\n{} --> {}\n",
            index + 1,
            timestamp(start, ','),
            timestamp(end, ',')
        ));
        if let Some(label) = transcript.label(&line) {
            out.push_str(&format!("[{label}] "));
        }
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}

fn render_vtt(transcript: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n");
    for line in transcript.lines() {
        let (start, end) = cue_millis(line.segment);
        out.push_str(&format!(
            "\n{} --> {}\n",
            timestamp(start, '.'),
            timestamp(end, '.')
        ));
        match (&line.segment.speaker, transcript.labelled()) {
            (Some(speaker), _) => out.push_str(&format!("<v {}>", escape_vtt(speaker))),
            (None, true) => out.push_str(&format!("<v Channel {}>", line.channel)),
            (None, false) => {}
        }
        out.push_str(&escape_vtt(&line.text));
        out.push('\n');
    }
    out
}

/// One RTTM turn per segment: its speaker, else its channel (`ch N`); the file id is the
/// source's file stem.
fn render_rttm(transcript: &Transcript) -> String {
    let turns: Vec<Turn> = transcript
        .lines()
        .iter()
        .map(|line| Turn {
            start: line.segment.start,
            end: line.segment.end,
            speaker: line
                .segment
                .speaker
                .clone()
                .unwrap_or_else(|| format!("ch{}", line.channel)),
        })
        .collect();
    let id = std::path::Path::new(&transcript.source)
        .file_stem()
        .map_or_else(
            || transcript.source.clone(),
            |s| s.to_string_lossy().into_owned(),
        );
    write_rttm(&id, &turns)
}

/// A segment's start and end in whole milliseconds, the end at least 1 ms after the start.
fn cue_millis(segment: &Segment) -> (u64, u64) {
    let start = millis(segment.start);
    let end = millis(segment.end).max(start + 1);
    (start, end)
}

/// Seconds rounded to the nearest millisecond (halves away from zero); negative and NaN are 0.
fn millis(seconds: f64) -> u64 {
    // `as` saturates: NaN and negatives become 0, overflow u64::MAX.
    (seconds * 1000.0).round() as u64
}

/// `HH:MM:SS<sep>mmm`; hours take more digits past 99.
fn timestamp(millis: u64, separator: char) -> String {
    let (hours, rest) = (millis / 3_600_000, millis % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{seconds:02}{separator}{millis:03}")
}

/// Cue text as WebVTT needs it: `&`, `<` and `>` as character references (which also keeps
/// `-->` out of a cue's text).
fn escape_vtt(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            speaker: None,
            start,
            end,
            text: text.to_owned(),
            tokens: vec![],
            avg_logprob: -0.25,
            no_speech_prob: 0.01,
            compression_ratio: 1.2,
            temperature: 0.0,
        }
    }

    fn channel(channel: usize, segments: Vec<Segment>) -> ChannelTranscript {
        ChannelTranscript {
            channel,
            language: "en".to_owned(),
            segments,
        }
    }

    fn transcript(channels: Vec<ChannelTranscript>) -> Transcript {
        Transcript {
            source: "call.wav".to_owned(),
            duration: 12.0,
            channels,
            roles: BTreeMap::new(),
            role_confidence: None,
        }
    }

    fn mono() -> Transcript {
        transcript(vec![channel(
            0,
            vec![
                segment(0.0, 2.5, " Hello, thanks for calling."),
                segment(2.5, 5.25, " How can I help <you> & yours?"),
            ],
        )])
    }

    /// Agent on the left channel, caller on the right, interleaved in time.
    fn stereo() -> Transcript {
        transcript(vec![
            channel(
                0,
                vec![
                    segment(0.0, 2.0, " Thanks for calling."),
                    segment(4.5, 6.0, " Sure, one moment."),
                ],
            ),
            channel(
                1,
                vec![
                    segment(2.2, 4.0, " Hi, I need help."),
                    segment(6.5, 8.123_4, " Okay."),
                ],
            ),
        ])
    }

    #[test]
    fn text_mono_is_one_plain_line_per_segment() {
        assert_eq!(
            render(&mono(), OutputFormat::Text),
            "Hello, thanks for calling.\nHow can I help <you> & yours?\n"
        );
    }

    #[test]
    fn text_stereo_interleaves_channels_with_labels() {
        assert_eq!(
            render(&stereo(), OutputFormat::Text),
            "[ch 0] Thanks for calling.\n\
             [ch 1] Hi, I need help.\n\
             [ch 0] Sure, one moment.\n\
             [ch 1] Okay.\n"
        );
    }

    #[test]
    fn srt_mono() {
        assert_eq!(
            render(&mono(), OutputFormat::Srt),
            "1\n\
             00:00:00,000 --> 00:00:02,500\n\
             Hello, thanks for calling.\n\
             \n\
             2\n\
             00:00:02,500 --> 00:00:05,250\n\
             How can I help <you> & yours?\n"
        );
    }

    #[test]
    fn srt_stereo_numbers_cues_across_channels_in_time_order() {
        assert_eq!(
            render(&stereo(), OutputFormat::Srt),
            "1\n\
             00:00:00,000 --> 00:00:02,000\n\
             [ch 0] Thanks for calling.\n\
             \n\
             2\n\
             00:00:02,200 --> 00:00:04,000\n\
             [ch 1] Hi, I need help.\n\
             \n\
             3\n\
             00:00:04,500 --> 00:00:06,000\n\
             [ch 0] Sure, one moment.\n\
             \n\
             4\n\
             00:00:06,500 --> 00:00:08,123\n\
             [ch 1] Okay.\n"
        );
    }

    #[test]
    fn vtt_mono_escapes_markup() {
        assert_eq!(
            render(&mono(), OutputFormat::Vtt),
            "WEBVTT\n\
             \n\
             00:00:00.000 --> 00:00:02.500\n\
             Hello, thanks for calling.\n\
             \n\
             00:00:02.500 --> 00:00:05.250\n\
             How can I help &lt;you&gt; &amp; yours?\n"
        );
    }

    #[test]
    fn vtt_stereo_uses_voice_spans() {
        assert_eq!(
            render(&stereo(), OutputFormat::Vtt),
            "WEBVTT\n\
             \n\
             00:00:00.000 --> 00:00:02.000\n\
             <v Channel 0>Thanks for calling.\n\
             \n\
             00:00:02.200 --> 00:00:04.000\n\
             <v Channel 1>Hi, I need help.\n\
             \n\
             00:00:04.500 --> 00:00:06.000\n\
             <v Channel 0>Sure, one moment.\n\
             \n\
             00:00:06.500 --> 00:00:08.123\n\
             <v Channel 1>Okay.\n"
        );
    }

    #[test]
    fn json_round_trips() {
        let stereo = stereo();
        let json = render(&stereo, OutputFormat::Json);
        assert!(json.ends_with("}\n"));
        assert!(json.contains("\n  \"source\": \"call.wav\",\n"), "{json}");
        let back: Transcript = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stereo);
    }

    #[test]
    fn json_field_names() {
        let value: serde_json::Value =
            serde_json::from_str(&render(&mono(), OutputFormat::Json)).unwrap();
        assert_eq!(value["duration"], 12.0);
        let channel = &value["channels"][0];
        assert_eq!(channel["channel"], 0);
        assert_eq!(channel["language"], "en");
        let keys: Vec<&str> = channel["segments"][0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "start",
            "end",
            "text",
            "tokens",
            "avg_logprob",
            "no_speech_prob",
            "compression_ratio",
            "temperature",
        ];
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn empty_transcript() {
        let empty = transcript(vec![]);
        assert_eq!(empty.text(), "");
        assert_eq!(render(&empty, OutputFormat::Text), "");
        assert_eq!(render(&empty, OutputFormat::Srt), "");
        assert_eq!(render(&empty, OutputFormat::Vtt), "WEBVTT\n");
        let back: Transcript = serde_json::from_str(&render(&empty, OutputFormat::Json)).unwrap();
        assert_eq!(back, empty);

        let silent_channels = transcript(vec![channel(0, vec![]), channel(1, vec![])]);
        assert_eq!(render(&silent_channels, OutputFormat::Text), "");
        assert_eq!(render(&silent_channels, OutputFormat::Vtt), "WEBVTT\n");
    }

    #[test]
    fn blank_segments_are_skipped_and_whitespace_collapses() {
        let t = transcript(vec![channel(
            0,
            vec![
                segment(0.0, 1.0, "   "),
                segment(1.0, 2.0, " two\nlines  here "),
                segment(2.0, 3.0, ""),
            ],
        )]);
        assert_eq!(t.text(), "two lines here");
        assert_eq!(render(&t, OutputFormat::Text), "two lines here\n");
        assert_eq!(
            render(&t, OutputFormat::Srt),
            "1\n00:00:01,000 --> 00:00:02,000\ntwo lines here\n"
        );
    }

    #[test]
    fn text_joins_channels_in_time_order() {
        assert_eq!(
            stereo().text(),
            "Thanks for calling. Hi, I need help. Sure, one moment. Okay."
        );
        assert_eq!(
            mono().text(),
            "Hello, thanks for calling. How can I help <you> & yours?"
        );
    }

    #[test]
    fn equal_starts_keep_channel_order() {
        let t = transcript(vec![
            channel(0, vec![segment(1.0, 2.0, "left")]),
            channel(1, vec![segment(1.0, 1.5, "right")]),
        ]);
        assert_eq!(
            render(&t, OutputFormat::Text),
            "[ch 0] left\n[ch 1] right\n"
        );
    }

    #[test]
    fn one_channel_of_many_is_unlabelled() {
        // Only the right channel transcribed: still a single voice, so no labels.
        let t = transcript(vec![channel(1, vec![segment(0.0, 1.0, "only")])]);
        assert_eq!(render(&t, OutputFormat::Text), "only\n");
        assert_eq!(
            render(&t, OutputFormat::Vtt),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nonly\n"
        );
    }

    #[test]
    fn times_past_an_hour() {
        let t = transcript(vec![channel(
            0,
            vec![
                segment(3_723.004, 3_725.5, "late"),
                segment(360_000.0, 360_001.0, "very late"),
            ],
        )]);
        assert_eq!(
            render(&t, OutputFormat::Srt),
            "1\n01:02:03,004 --> 01:02:05,500\nlate\n\n\
             2\n100:00:00,000 --> 100:00:01,000\nvery late\n"
        );
        assert_eq!(
            render(&t, OutputFormat::Vtt),
            "WEBVTT\n\n01:02:03.004 --> 01:02:05.500\nlate\n\n\
             100:00:00.000 --> 100:00:01.000\nvery late\n"
        );
    }

    #[test]
    fn rounding_boundaries_never_end_a_cue_before_it_starts() {
        let t = transcript(vec![channel(
            0,
            vec![
                // Both ends exactly on a half millisecond (1/16 s, 3/16 s): both round up.
                segment(1.0625, 1.1875, "a"),
                // Zero-length, exactly on a half millisecond.
                segment(2.3125, 2.3125, "b"),
                // End just below start (decoder noise): clamped after the start.
                segment(3.0, 2.9996, "c"),
                // Ends exactly on a minute boundary after rounding up.
                segment(59.9994, 59.9996, "d"),
            ],
        )]);
        assert_eq!(
            render(&t, OutputFormat::Srt),
            "1\n00:00:01,063 --> 00:00:01,188\na\n\n\
             2\n00:00:02,313 --> 00:00:02,314\nb\n\n\
             3\n00:00:03,000 --> 00:00:03,001\nc\n\n\
             4\n00:00:59,999 --> 00:01:00,000\nd\n"
        );
    }

    #[test]
    fn timestamps_never_go_backwards_for_any_ordered_pair() {
        // Every start <= end on a fine grid around millisecond halves.
        for i in 0..2_000u32 {
            let start = f64::from(i) * 0.000_25 + 7.0;
            for step in 0..4u32 {
                let end = start + f64::from(step) * 0.000_25;
                let (s, e) = cue_millis(&segment(start, end, "x"));
                assert!(e > s, "{start} {end} -> {s} {e}");
            }
        }
    }

    #[test]
    fn negative_and_nan_times_clamp_to_zero() {
        let (s, e) = cue_millis(&segment(-0.5, f64::NAN, "x"));
        assert_eq!((s, e), (0, 1));
    }

    #[test]
    fn output_format_names() {
        for format in OutputFormat::ALL {
            assert_eq!(format.to_string().parse::<OutputFormat>(), Ok(format));
        }
        assert_eq!("SRT".parse::<OutputFormat>(), Ok(OutputFormat::Srt));
        assert_eq!(OutputFormat::Text.extension(), "txt");
        let err = "docx".parse::<OutputFormat>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown output format `docx` (expected text, json, srt, vtt or rttm)"
        );
    }

    #[test]
    fn speakers_label_lines_and_rttm_lists_turns() {
        let mut greeting = segment(0.0, 1.5, " Hello, thanks for calling.");
        greeting.speaker = Some("SPEAKER_00".to_owned());
        let mut answer = segment(1.6, 2.0, " Hi.");
        answer.speaker = Some("SPEAKER_01".to_owned());
        let mut transcript = Transcript {
            roles: BTreeMap::new(),
            role_confidence: None,
            source: "calls/c1.wav".to_owned(),
            duration: 2.0,
            channels: vec![ChannelTranscript {
                channel: 0,
                language: "en".to_owned(),
                segments: vec![greeting, answer],
            }],
        };
        assert_eq!(
            render(&transcript, OutputFormat::Text),
            "[SPEAKER_00] Hello, thanks for calling.\n[SPEAKER_01] Hi.\n"
        );
        assert!(render(&transcript, OutputFormat::Vtt).contains("<v SPEAKER_01>Hi.\n"));
        let rttm = render(&transcript, OutputFormat::Rttm);
        assert!(rttm.starts_with("SPEAKER c1 1 0.000 1.500 "), "{rttm}");
        let turns = crate::diarize::parse_rttm(&rttm).unwrap();
        assert_eq!(
            turns,
            [
                Turn::new(0.0, 1.5, "SPEAKER_00"),
                Turn::new(1.6, 2.0, "SPEAKER_01")
            ]
        );
        assert_eq!("RTTM".parse::<OutputFormat>(), Ok(OutputFormat::Rttm));
        transcript
            .roles
            .insert("SPEAKER_00".to_owned(), Role::Agent);
        assert!(render(&transcript, OutputFormat::Text)
            .starts_with("[SPEAKER_00 agent] Hello, thanks for calling.\n[SPEAKER_01] Hi."));
    }
}
