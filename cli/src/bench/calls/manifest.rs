//! The phone-call suite's `manifest.json` (written by `scripts/phone-suite`): each call's two
//! mixes, its reference speaker turns and what the judge must find. Read and checked before
//! anything is queued, so a broken suite fails in a second, not after the lanes ran.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use callscript_worker::diarize::{parse_rttm, Turn};
use chrono::{DateTime, FixedOffset, NaiveDateTime};
use serde::{Deserialize, Serialize};

/// How `expect.callback.local` is written: a local time in the suite's time zone.
pub const LOCAL_MINUTE: &str = "%Y-%m-%d %H:%M";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub seed: u64,
    pub generator: String,
    /// IANA zone the calls happened in: the scratch organization's, so callbacks are dated in it.
    pub timezone: String,
    pub calls: Vec<SuiteCall>,
}

/// Tuned on, or held out (never looked at while tuning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Tune,
    Holdout,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Tune, Split::Holdout];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Tune => "tune",
            Split::Holdout => "holdout",
        }
    }
}

/// A recording of a call: both parties on their own channel, or mixed into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    Stereo,
    Mono,
}

impl Mix {
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Stereo => "stereo",
            Mix::Mono => "mono",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SuiteCall {
    pub id: String,
    pub split: Split,
    pub scenario: String,
    pub started_at: DateTime<FixedOffset>,
    /// Seconds, both mixes.
    pub duration: f64,
    /// File names relative to the manifest's folder.
    pub stereo: String,
    pub mono: String,
    /// Seconds by which the mono file's audio comes later than the truth when decoded without
    /// trimming the encoder's padding (an MP3 mix; 0 for WAV).
    #[serde(default)]
    pub mono_delay: f64,
    pub agent_channel: usize,
    pub rttm: String,
    pub turns: Vec<ScriptTurn>,
    pub events: Vec<Event>,
    pub expect: Expect,
    /// The RTTM's turns (read by [`read_manifest`]).
    #[serde(skip)]
    pub reference: Vec<Turn>,
}

impl SuiteCall {
    pub fn file(&self, mix: Mix) -> &str {
        match mix {
            Mix::Stereo => &self.stereo,
            Mix::Mono => &self.mono,
        }
    }

    /// How much later than the truth the worker hears `mix`: it decodes MP3 without gapless
    /// trimming, so an MP3 mix's padding comes first.
    pub fn delay(&self, mix: Mix) -> f64 {
        match mix {
            Mix::Stereo => 0.0,
            Mix::Mono => self.mono_delay,
        }
    }
}

/// One line of the call's script: who said what, when.
#[derive(Debug, Clone, Deserialize)]
pub struct ScriptTurn {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub start: f64,
    pub end: f64,
}

/// What a call holds besides its parties' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    HoldMusic,
    Ivr,
    Ringback,
    Dtmf,
    Silence,
    LineNoise,
}

impl EventKind {
    /// Nobody speaks in it: a word transcribed inside is made up. (An IVR prompt is a voice;
    /// line noise lies under speech.)
    pub fn is_non_speech(self) -> bool {
        matches!(
            self,
            EventKind::HoldMusic | EventKind::Ringback | EventKind::Dtmf | EventKind::Silence
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Expect {
    /// Rule ids of the rulebook, each once.
    pub flags: Vec<String>,
    pub temperature: Temperature,
    pub callback: Option<Callback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Temperature {
    Hot,
    Warm,
    Cold,
}

impl Temperature {
    pub fn as_str(self) -> &'static str {
        match self {
            Temperature::Hot => "hot",
            Temperature::Warm => "warm",
            Temperature::Cold => "cold",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Callback {
    /// `YYYY-MM-DD HH:MM` in the suite's time zone.
    pub local: String,
}

/// The parsed manifest, its calls' RTTM references read from beside it, and every call checked:
/// ids unique, files present, times and callbacks well formed.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("manifest.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if manifest.calls.is_empty() {
        bail!("{}: no calls", path.display());
    }
    let mut ids = HashSet::new();
    for call in &mut manifest.calls {
        let context = || format!("{}: call {}", path.display(), call.id);
        if !ids.insert(call.id.clone()) {
            bail!("{}: call id {} appears twice", path.display(), call.id);
        }
        check_call(dir, call).with_context(context)?;
        let rttm = dir.join(&call.rttm);
        let text = std::fs::read_to_string(&rttm)
            .with_context(|| format!("reading {}", rttm.display()))
            .with_context(context)?;
        call.reference = parse_rttm(&text)
            .with_context(|| rttm.display().to_string())
            .with_context(context)?;
    }
    Ok(manifest)
}

fn check_call(dir: &Path, call: &SuiteCall) -> Result<()> {
    for file in [&call.stereo, &call.mono, &call.rttm] {
        let path: PathBuf = dir.join(file);
        if !path.is_file() {
            bail!("{} is missing", path.display());
        }
    }
    if !(call.duration.is_finite() && call.duration > 0.0) {
        bail!("duration {} is not a length", call.duration);
    }
    let spans = call
        .turns
        .iter()
        .map(|t| (t.start, t.end))
        .chain(call.events.iter().map(|e| (e.start, e.end)));
    for (start, end) in spans {
        if !(start.is_finite() && end.is_finite() && 0.0 <= start && start <= end) {
            bail!("the span {start}–{end} s is not a time range");
        }
    }
    let mut flags = HashSet::new();
    for flag in &call.expect.flags {
        if !flags.insert(flag) {
            bail!("expect.flags names {flag} twice");
        }
    }
    if let Some(callback) = &call.expect.callback {
        NaiveDateTime::parse_from_str(&callback.local, LOCAL_MINUTE).with_context(|| {
            format!(
                "expect.callback.local {:?} is not YYYY-MM-DD HH:MM",
                callback.local
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{
      "suite": "phone-calls", "seed": 21, "generator": "test 1",
      "timezone": "America/New_York",
      "calls": [{
        "id": "c001", "split": "holdout", "scenario": "hot-lead-card",
        "started_at": "2026-11-02T15:04:00-05:00", "duration": 20.5,
        "stereo": "c001.stereo.wav", "mono": "c001.mono.mp3", "mono_delay": 0.138, "agent_channel": 0,
        "rttm": "c001.rttm",
        "speakers": {"agent": {"voice": "festival:kal_diphone", "sex": "m", "accent": "us", "real": false}},
        "turns": [{"speaker": "agent", "channel": 0, "start": 0.8, "end": 4.35, "text": "Thank you for calling."}],
        "events": [{"kind": "hold_music", "start": 10.0, "end": 15.0}, {"kind": "ivr", "start": 0.0, "end": 0.5}],
        "expect": {"flags": ["do-not-call-request"], "temperature": "hot",
                   "callback": {"local": "2026-11-03 10:00"}}
      }]
    }"#;

    fn suite(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), manifest).unwrap();
        for file in ["c001.stereo.wav", "c001.mono.mp3"] {
            std::fs::write(dir.path().join(file), b"audio").unwrap();
        }
        std::fs::write(
            dir.path().join("c001.rttm"),
            "SPEAKER c001 1 0.800 3.550 <NA> <NA> agent <NA> <NA>\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn reads_the_format_and_the_reference_turns() {
        let dir = suite(MANIFEST);
        let manifest = read_manifest(dir.path()).unwrap();
        assert_eq!(manifest.timezone, "America/New_York");
        let call = &manifest.calls[0];
        assert_eq!(call.split, Split::Holdout);
        assert_eq!(call.file(Mix::Mono), "c001.mono.mp3");
        assert_eq!(
            (call.delay(Mix::Mono), call.delay(Mix::Stereo)),
            (0.138, 0.0)
        );
        assert_eq!(call.started_at.to_rfc3339(), "2026-11-02T15:04:00-05:00");
        assert_eq!(call.expect.temperature, Temperature::Hot);
        assert_eq!(
            call.expect.callback.as_ref().unwrap().local,
            "2026-11-03 10:00"
        );
        assert_eq!(call.events[0].kind, EventKind::HoldMusic);
        assert!(call.events[0].kind.is_non_speech());
        assert!(!call.events[1].kind.is_non_speech());
        assert_eq!(call.reference, [Turn::new(0.8, 4.35, "agent")]);
    }

    #[test]
    fn refuses_what_breaks_the_contract() {
        let broken = [
            (
                MANIFEST.replace("\"hold_music\"", "\"elevator\""),
                "unknown variant",
            ),
            (
                MANIFEST.replace("2026-11-03 10:00", "tomorrow at ten"),
                "is not YYYY-MM-DD HH:MM",
            ),
            (
                MANIFEST.replace("[\"do-not-call-request\"]", "[\"a\", \"a\"]"),
                "names a twice",
            ),
            (
                MANIFEST.replace("c001.mono.mp3", "c001.mono.wav"),
                "c001.mono.wav is missing",
            ),
            (
                MANIFEST.replace("\"end\": 15.0", "\"end\": 5.0"),
                "not a time range",
            ),
        ];
        for (text, why) in broken {
            let dir = suite(&text);
            let e = format!("{:#}", read_manifest(dir.path()).unwrap_err());
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
