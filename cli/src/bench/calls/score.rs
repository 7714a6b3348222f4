//! What the pipeline stored for a call, scored against the suite's truth, and the scores of many
//! calls summed into the figures `bench calls` prints.
//!
//! Per call: the flags raised against `expect.flags`, the lead's temperature and the callback's
//! local minute against `expect`, the diarization error of the stored segments' speakers and
//! times against the RTTM at collars 0 and 0.25 s with overlap scored
//! ([`diarization_error`], labels mapped), the number of speakers, the roles, the word error rate
//! of the whole call's text against its script, and the words said inside non-speech events.
//! Segments carry no word times, so a segment's words are taken as spread evenly over it when
//! counting those inside an event.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::AddAssign;

use callscript_worker::diarize::{diarization_error, DiarizationErrors, Turn};
use callscript_worker::wer::{normalize, word_errors, WordErrors};
use serde::Serialize;

use super::intervals::Intervals;
use super::manifest::{Mix, Split, SuiteCall};

/// pyannote's usual forgiveness around reference boundaries (total width, seconds).
pub const COLLAR: f64 = 0.25;

/// The speaker label of segments the worker left without one (not diarized).
const UNLABELLED: &str = "unlabelled";

/// One stored segment, as `core.transcript_segments` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSegment {
    pub start: f64,
    pub end: f64,
    pub speaker: Option<String>,
    /// `agent` or `customer`.
    pub role: Option<String>,
    pub text: String,
}

/// What the lanes stored for one mix of one call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredCall {
    /// The queue state it ended in (`judged` when all went well).
    pub state: String,
    pub audio_seconds: f64,
    /// The transcript as the worker stored it (before the judge redacts numbers in it).
    pub text: String,
    pub segments: Vec<StoredSegment>,
    /// Rule ids of its QA flags.
    pub flags: BTreeSet<String>,
    /// Its lead's temperature.
    pub temperature: Option<String>,
    /// The callback the customer asked for, `YYYY-MM-DD HH:MM` in the organization's zone.
    pub callback: Option<String>,
}

/// One mix of one call, scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallScore {
    pub id: String,
    pub split: Split,
    pub mix: Mix,
    pub scenario: String,
    pub state: String,
    pub audio_seconds: f64,
    pub expected_flags: BTreeSet<String>,
    pub flags: BTreeSet<String>,
    pub expected_temperature: &'static str,
    pub temperature: Option<String>,
    pub expected_callback: Option<String>,
    pub callback: Option<String>,
    pub der: DiarizationErrors,
    pub der_collar: DiarizationErrors,
    pub reference_speakers: usize,
    pub speakers: usize,
    /// Reference speech the transcript has someone speaking in, and of it the part whose
    /// speaker's role is the reference speaker's.
    pub role_scored_seconds: f64,
    pub role_right_seconds: f64,
    /// Every reference speaker's speech mostly under the right role.
    pub roles_right: bool,
    pub words: WordErrors,
    pub words_in_non_speech: usize,
    pub text: String,
}

/// The role a reference speaker has: a supervisor the agent hands over to speaks for the
/// company, on the agent's line.
fn reference_role(speaker: &str) -> Option<&'static str> {
    match speaker {
        "agent" | "supervisor" => Some("agent"),
        "customer" => Some("customer"),
        _ => None,
    }
}

fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.collect::<BTreeSet<_>>().len()
}

impl CallScore {
    pub fn new(call: &SuiteCall, mix: Mix, stored: &StoredCall) -> CallScore {
        // On the truth's clock.
        let delay = call.delay(mix);
        let segments: Vec<StoredSegment> = stored
            .segments
            .iter()
            .map(|s| StoredSegment {
                start: s.start - delay,
                end: s.end - delay,
                ..s.clone()
            })
            .collect();
        let hypothesis: Vec<Turn> = segments
            .iter()
            .map(|s| Turn::new(s.start, s.end, s.speaker.as_deref().unwrap_or(UNLABELLED)))
            .collect();
        let (role_scored_seconds, role_right_seconds, roles_right) =
            role_scores(&call.reference, &segments);
        let mut script: Vec<_> = call.turns.iter().collect();
        script.sort_by(|a, b| a.start.total_cmp(&b.start));
        let reference_text = script
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let non_speech = Intervals::union(
            call.events
                .iter()
                .filter(|e| e.kind.is_non_speech())
                .map(|e| (e.start, e.end)),
        );
        CallScore {
            id: call.id.clone(),
            split: call.split,
            mix,
            scenario: call.scenario.clone(),
            state: stored.state.clone(),
            audio_seconds: stored.audio_seconds,
            expected_flags: call.expect.flags.iter().cloned().collect(),
            flags: stored.flags.clone(),
            expected_temperature: call.expect.temperature.as_str(),
            temperature: stored.temperature.clone(),
            expected_callback: call.expect.callback.as_ref().map(|c| c.local.clone()),
            callback: stored.callback.clone(),
            der: diarization_error(&call.reference, &hypothesis, 0.0, false),
            der_collar: diarization_error(&call.reference, &hypothesis, COLLAR, false),
            reference_speakers: distinct(call.reference.iter().map(|t| t.speaker.as_str())),
            speakers: distinct(segments.iter().filter_map(|s| s.speaker.as_deref())),
            role_scored_seconds,
            role_right_seconds,
            roles_right,
            words: word_errors(&reference_text, &stored.text),
            words_in_non_speech: words_inside(&segments, &non_speech),
            text: stored.text.clone(),
        }
    }

    pub fn judged(&self) -> bool {
        self.state == "judged"
    }

    pub fn temperature_right(&self) -> bool {
        self.temperature.as_deref() == Some(self.expected_temperature)
    }

    pub fn callback_right(&self) -> bool {
        self.callback == self.expected_callback
    }

    /// What went wrong, one phrase each, for `--verbose`.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.judged() {
            out.push(format!("ended {}, not judged", self.state));
        }
        for flag in self.expected_flags.difference(&self.flags) {
            out.push(format!("missed {flag}"));
        }
        for flag in self.flags.difference(&self.expected_flags) {
            out.push(format!("false {flag}"));
        }
        if !self.temperature_right() {
            out.push(format!(
                "temperature {} (expected {})",
                self.temperature.as_deref().unwrap_or("none"),
                self.expected_temperature
            ));
        }
        if !self.callback_right() {
            out.push(format!(
                "callback {} (expected {})",
                self.callback.as_deref().unwrap_or("none"),
                self.expected_callback.as_deref().unwrap_or("none")
            ));
        }
        if self.speakers != self.reference_speakers {
            out.push(format!(
                "{} speakers (expected {})",
                self.speakers, self.reference_speakers
            ));
        }
        if !self.roles_right {
            out.push(format!(
                "roles right on {:.0} % of speech",
                percent(self.role_right_seconds, self.role_scored_seconds).unwrap_or(0.0)
            ));
        }
        if self.words_in_non_speech > 0 {
            out.push(format!("{} words in non-speech", self.words_in_non_speech));
        }
        out
    }
}

/// Seconds of reference speech under some segment, of them those under a segment of the right
/// role, and whether each reference speaker's scored speech is mostly under the right role.
fn role_scores(reference: &[Turn], segments: &[StoredSegment]) -> (f64, f64, bool) {
    let spoken = Intervals::union(segments.iter().map(|s| (s.start, s.end)));
    let with_role = |role: &str| {
        Intervals::union(
            segments
                .iter()
                .filter(|s| s.role.as_deref() == Some(role))
                .map(|s| (s.start, s.end)),
        )
    };
    let speakers: BTreeSet<&str> = reference.iter().map(|t| t.speaker.as_str()).collect();
    let (mut scored, mut right, mut all_right) = (0.0, 0.0, true);
    for speaker in speakers {
        let Some(role) = reference_role(speaker) else {
            continue;
        };
        let speech = Intervals::union(
            reference
                .iter()
                .filter(|t| t.speaker == speaker)
                .map(|t| (t.start, t.end)),
        );
        let speaker_scored = speech.overlap_seconds(&spoken);
        let speaker_right = speech.overlap_seconds(&with_role(role));
        all_right &= speaker_right * 2.0 > speaker_scored;
        scored += speaker_scored;
        right += speaker_right;
    }
    (scored, right, all_right)
}

/// Words of `segments` inside `spans`, each segment's words spread evenly over its time.
fn words_inside(segments: &[StoredSegment], spans: &Intervals) -> usize {
    segments
        .iter()
        .map(|segment| {
            let words = normalize(&segment.text).len();
            let step = (segment.end - segment.start).max(0.0) / words.max(1) as f64;
            (0..words)
                .filter(|&i| spans.contains(segment.start + (i as f64 + 0.5) * step))
                .count()
        })
        .sum()
}

fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| part / whole * 100.0)
}

/// How one rule did over some calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RuleCounts {
    /// Calls that should raise it, that raised it, and that raised it rightly.
    pub expected: usize,
    pub raised: usize,
    pub correct: usize,
}

impl RuleCounts {
    pub fn precision(&self) -> Option<f64> {
        (self.raised > 0).then(|| self.correct as f64 / self.raised as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.correct as f64 / self.expected as f64)
    }
}

impl AddAssign for RuleCounts {
    fn add_assign(&mut self, other: RuleCounts) {
        self.expected += other.expected;
        self.raised += other.raised;
        self.correct += other.correct;
    }
}

/// The scores of a set of calls (one mix, one split) added up.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub calls: usize,
    pub judged: usize,
    pub audio_seconds: f64,
    /// Every rule of the rulebook, and any other rule raised or expected.
    pub rules: BTreeMap<String, RuleCounts>,
    pub flags: RuleCounts,
    pub temperature_right: usize,
    pub hot_calls: usize,
    pub hot_calls_hot: usize,
    pub callback_right: usize,
    pub callbacks_expected: usize,
    pub callbacks_expected_right: usize,
    /// Callbacks scheduled where none was asked for.
    pub callbacks_unasked: usize,
    pub der: DiarizationErrors,
    pub der_collar: DiarizationErrors,
    pub speaker_count_right: usize,
    pub role_scored_seconds: f64,
    pub role_right_seconds: f64,
    pub roles_right: usize,
    pub words: WordErrors,
    pub words_in_non_speech: usize,
}

impl Summary {
    pub fn of<'a>(rule_ids: &[String], scores: impl IntoIterator<Item = &'a CallScore>) -> Self {
        let mut summary = Summary {
            rules: rule_ids
                .iter()
                .map(|id| (id.clone(), RuleCounts::default()))
                .collect(),
            ..Summary::default()
        };
        for score in scores {
            summary.add(score);
        }
        summary
    }

    fn add(&mut self, s: &CallScore) {
        self.calls += 1;
        self.judged += usize::from(s.judged());
        self.audio_seconds += s.audio_seconds;
        for rule in s.expected_flags.union(&s.flags) {
            let counts = RuleCounts {
                expected: usize::from(s.expected_flags.contains(rule)),
                raised: usize::from(s.flags.contains(rule)),
                correct: usize::from(s.expected_flags.contains(rule) && s.flags.contains(rule)),
            };
            *self.rules.entry(rule.clone()).or_default() += counts;
            self.flags += counts;
        }
        self.temperature_right += usize::from(s.temperature_right());
        if s.expected_temperature == "hot" {
            self.hot_calls += 1;
            self.hot_calls_hot += usize::from(s.temperature_right());
        }
        self.callback_right += usize::from(s.callback_right());
        if s.expected_callback.is_some() {
            self.callbacks_expected += 1;
            self.callbacks_expected_right += usize::from(s.callback_right());
        } else if s.callback.is_some() {
            self.callbacks_unasked += 1;
        }
        self.der += s.der;
        self.der_collar += s.der_collar;
        self.speaker_count_right += usize::from(s.speakers == s.reference_speakers);
        self.role_scored_seconds += s.role_scored_seconds;
        self.role_right_seconds += s.role_right_seconds;
        self.roles_right += usize::from(s.roles_right);
        self.words += s.words;
        self.words_in_non_speech += s.words_in_non_speech;
    }

    /// Share of reference speech (under some segment) given the right role, in percent.
    pub fn role_time_percent(&self) -> Option<f64> {
        percent(self.role_right_seconds, self.role_scored_seconds)
    }

    /// The headline figures as plain numbers (rates 0–1, `None` where undefined), for `--json`
    /// and the closing note.
    pub fn figures(&self) -> serde_json::Value {
        let share = |part: usize| (self.calls > 0).then(|| part as f64 / self.calls as f64);
        serde_json::json!({
            "calls": self.calls,
            "judged": self.judged,
            "flags_precision": self.flags.precision(),
            "flags_recall": self.flags.recall(),
            "temperature_accuracy": share(self.temperature_right),
            "every_hot_call_hot": self.hot_calls_hot == self.hot_calls,
            "callback_accuracy": share(self.callback_right),
            "der_collar_0": self.der.der(),
            "der_collar_0_25": self.der_collar.der(),
            "speaker_count_accuracy": share(self.speaker_count_right),
            "role_time_accuracy": self.role_time_percent().map(|p| p / 100.0),
            "role_call_accuracy": share(self.roles_right),
            "wer": self.words.wer(),
            "words_in_non_speech": self.words_in_non_speech,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::calls::manifest::{
        Callback, Event, EventKind, Expect, ScriptTurn, Temperature,
    };

    fn call() -> SuiteCall {
        let turn = |start: f64, end: f64, text: &str| ScriptTurn {
            start,
            end,
            text: text.into(),
        };
        SuiteCall {
            id: "c001".into(),
            split: Split::Tune,
            scenario: "callback".into(),
            started_at: "2026-11-02T15:04:00-05:00".parse().unwrap(),
            duration: 20.0,
            stereo: "c001.stereo.wav".into(),
            mono: "c001.mono.mp3".into(),
            mono_delay: 0.5,
            agent_channel: 0,
            rttm: "c001.rttm".into(),
            turns: vec![
                turn(4.0, 8.0, "call me back tomorrow at ten"),
                turn(0.0, 4.0, "thank you for calling acme"),
            ],
            events: vec![
                Event {
                    kind: EventKind::Silence,
                    start: 8.0,
                    end: 12.0,
                },
                Event {
                    kind: EventKind::LineNoise,
                    start: 0.0,
                    end: 20.0,
                },
            ],
            expect: Expect {
                flags: vec!["recording-disclosure-missing".into()],
                temperature: Temperature::Warm,
                callback: Some(Callback {
                    local: "2026-11-03 10:00".into(),
                }),
            },
            reference: vec![
                Turn::new(0.0, 4.0, "agent"),
                Turn::new(4.0, 8.0, "customer"),
            ],
        }
    }

    fn segment(start: f64, end: f64, speaker: &str, role: &str, text: &str) -> StoredSegment {
        StoredSegment {
            start,
            end,
            speaker: Some(speaker.into()),
            role: Some(role.into()),
            text: text.into(),
        }
    }

    fn stored(segments: Vec<StoredSegment>) -> StoredCall {
        StoredCall {
            state: "judged".into(),
            audio_seconds: 20.0,
            text: "Thank you for calling Acme. Call me back tomorrow at ten.".into(),
            segments,
            flags: ["recording-disclosure-missing".to_owned()].into(),
            temperature: Some("warm".into()),
            callback: Some("2026-11-03 10:00".into()),
        }
    }

    #[test]
    fn a_call_done_right_scores_perfectly() {
        let right = stored(vec![
            segment(
                0.0,
                4.0,
                "SPEAKER_00",
                "agent",
                "Thank you for calling Acme.",
            ),
            segment(
                4.0,
                8.0,
                "SPEAKER_01",
                "customer",
                "Call me back tomorrow at ten.",
            ),
        ]);
        let score = CallScore::new(&call(), Mix::Stereo, &right);
        assert!(score.misses().is_empty(), "{:?}", score.misses());
        assert_eq!(score.der.der(), 0.0);
        assert_eq!((score.speakers, score.reference_speakers), (2, 2));
        assert_eq!(
            (score.role_scored_seconds, score.role_right_seconds),
            (8.0, 8.0)
        );
        assert_eq!(score.words.wer(), 0.0);
        assert_eq!(score.words.reference_words, 11);

        // The MP3 mix is heard half a second late: its times are put back on the truth's clock.
        let late = StoredCall {
            segments: right
                .segments
                .iter()
                .map(|s| StoredSegment {
                    start: s.start + 0.5,
                    end: s.end + 0.5,
                    ..s.clone()
                })
                .collect(),
            ..right.clone()
        };
        assert_eq!(CallScore::new(&call(), Mix::Mono, &late).der.der(), 0.0);
        assert!(CallScore::new(&call(), Mix::Stereo, &late).der.der() > 0.1);
    }

    #[test]
    fn one_speaker_for_both_and_words_in_silence() {
        // The mono collapse: everything one speaker, the agent; a made-up phrase in the silence.
        let mut collapsed = stored(vec![
            segment(
                0.0,
                4.0,
                "SPEAKER_00",
                "agent",
                "Thank you for calling Acme.",
            ),
            segment(
                4.0,
                8.0,
                "SPEAKER_00",
                "agent",
                "Call me back tomorrow at ten.",
            ),
            segment(8.5, 9.5, "SPEAKER_00", "agent", "Thank you."),
        ]);
        collapsed.flags = ["do-not-call-request".to_owned()].into();
        collapsed.temperature = Some("cold".into());
        collapsed.callback = None;
        let score = CallScore::new(&call(), Mix::Stereo, &collapsed);
        assert_eq!(score.speakers, 1);
        // 4 s confused, 1 s of false alarm, over 8 s of speech.
        assert!((score.der.der() - 0.625).abs() < 1e-9, "{:?}", score.der);
        assert_eq!(
            (score.role_scored_seconds, score.role_right_seconds),
            (8.0, 4.0)
        );
        assert!(!score.roles_right);
        assert_eq!(score.words_in_non_speech, 2);
        assert_eq!(
            score.misses(),
            [
                "missed recording-disclosure-missing",
                "false do-not-call-request",
                "temperature cold (expected warm)",
                "callback none (expected 2026-11-03 10:00)",
                "1 speakers (expected 2)",
                "roles right on 50 % of speech",
                "2 words in non-speech",
            ]
        );

        let rules = vec!["recording-disclosure-missing".to_owned(), "dead-air".into()];
        let right = CallScore::new(
            &call(),
            Mix::Stereo,
            &stored(vec![segment(0.0, 8.0, "A", "agent", "x")]),
        );
        let summary = Summary::of(&rules, [&score, &right]);
        assert_eq!(summary.calls, 2);
        assert_eq!(summary.rules["dead-air"], RuleCounts::default());
        let disclosure = summary.rules["recording-disclosure-missing"];
        assert_eq!((disclosure.expected, disclosure.raised), (2, 1));
        assert_eq!(disclosure.recall(), Some(0.5));
        assert_eq!(disclosure.precision(), Some(1.0));
        assert_eq!(summary.rules["do-not-call-request"].precision(), Some(0.0));
        assert_eq!(summary.rules["do-not-call-request"].recall(), None);
        assert_eq!((summary.flags.correct, summary.flags.raised), (1, 2));
        assert_eq!(summary.temperature_right, 1);
        assert_eq!((summary.callbacks_expected, summary.callback_right), (2, 1));
        assert_eq!(summary.words_in_non_speech, 2);
        let figures = summary.figures();
        assert_eq!(figures["flags_precision"], 0.5);
        assert_eq!(figures["temperature_accuracy"], 0.5);
        assert_eq!(figures["every_hot_call_hot"], true);
    }

    #[test]
    fn a_supervisor_speaks_for_the_agent() {
        assert_eq!(reference_role("supervisor"), Some("agent"));
        assert_eq!(reference_role("customer"), Some("customer"));
        assert_eq!(reference_role("ivr"), None);
    }
}
