//! `callscript transcribe` as a user runs it: formats, output files, stereo, and one bad file
//! among good ones.

use common::{fixture, model, repo};

mod common;

fn transcribe(args: &[&str]) -> (i32, String, String) {
    let output = common::callscript()
        .arg("transcribe")
        .args(["--model", &model()])
        .args(args)
        .env_remove("CALLSCRIPT_MODEL")
        .env_remove("CALLSCRIPT_DEVICE")
        .output()
        .expect("run callscript");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn one_file_as_text_srt_vtt_and_json() {
    let goforward = fixture("goforward.wav");
    let (code, stdout, stderr) = transcribe(&[&goforward]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "Go forward 10 meters.\n");

    let (code, srt, _) = transcribe(&["--format", "srt", &goforward]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = srt.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(
        lines[1].starts_with("00:00:00,") && lines[1].contains(" --> 00:00:0"),
        "{srt}"
    );
    assert_eq!(lines[2], "Go forward 10 meters.");

    let (code, vtt, _) = transcribe(&["--format", "vtt", &goforward]);
    assert_eq!(code, 0);
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00."), "{vtt}");

    let (code, json, _) = transcribe(&["--format", "json", &goforward]);
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let segment = &value["channels"][0]["segments"][0];
    assert_eq!(segment["text"], " Go forward 10 meters.");
    assert!(segment["avg_logprob"].as_f64().unwrap() < 0.0);
    assert!(segment["no_speech_prob"].as_f64().unwrap() < 0.5);
    assert!(segment["end"].as_f64().unwrap() > segment["start"].as_f64().unwrap());
}

#[test]
fn stereo_is_per_channel_and_a_bad_file_does_not_stop_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.wav");
    std::fs::write(&corrupt, b"RIFF\x10\x00\x00\x00WAVEnot really audio").unwrap();
    let out = dir.path().join("out");
    let (code, stdout, stderr) = transcribe(&[
        "--format",
        "srt",
        "--output-dir",
        out.to_str().unwrap(),
        &fixture("faster_whisper_stereo_diarization.wav"),
        corrupt.to_str().unwrap(),
        &fixture("goforward.wav"),
    ]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("corrupt.wav"), "{stderr}");
    assert!(stderr.contains("1 of 3 files failed"), "{stderr}");

    let stereo =
        std::fs::read_to_string(out.join("faster_whisper_stereo_diarization.wav.srt")).unwrap();
    assert!(
        stereo.contains("[ch 0] He began a confused complaint"),
        "{stereo}"
    );
    assert!(
        stereo.contains("[ch 1] The horizon seems extremely distant."),
        "{stereo}"
    );
    let mono = std::fs::read_to_string(out.join("goforward.wav.srt")).unwrap();
    assert!(mono.contains("Go forward 10 meters."), "{mono}");
    assert!(!out.join("corrupt.wav.srt").exists());
}

#[test]
fn a_missing_model_or_device_is_named() {
    let output = common::callscript()
        .args([
            "transcribe",
            "--model",
            "/nonexistent/model",
            &fixture("goforward.wav"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");

    let (code, _, stderr) = transcribe(&["--device", "tpu", &fixture("goforward.wav")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("unknown device \"tpu\""), "{stderr}");
}

#[test]
fn diarized_stereo_labels_each_party_and_writes_rttm() {
    let speaker_model = repo("models/resemblyzer/pretrained.pt");
    let stereo = fixture("faster_whisper_stereo_diarization.wav");
    let args = [
        "--diarize",
        "--speaker-model",
        speaker_model.to_str().unwrap(),
    ];
    let (code, text, stderr) = transcribe(&[&args[..], &[stereo.as_str()]].concat());
    assert_eq!(code, 0, "{stderr}");
    // Roles: nobody says an agent phrase, so the first to speak is taken for the agent…
    assert!(
        text.contains("[SPEAKER_00 agent] He began a confused complaint"),
        "{text}"
    );
    assert!(
        text.contains("[SPEAKER_01 customer] The horizon seems extremely distant."),
        "{text}"
    );
    // …unless the channel map says otherwise: channels count from 0, as in the JSON.
    let mapped = [&args[..], &["--agent-channel", "1", stereo.as_str()]].concat();
    let (code, text, _) = transcribe(&mapped);
    assert_eq!(code, 0);
    assert!(text.contains("[SPEAKER_01 agent] The horizon"), "{text}");
    let (code, json, _) = transcribe(&[&mapped[..], &["--format", "json"]].concat());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let agent = json["roles"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, role)| *role == "agent")
        .map(|(speaker, _)| speaker.as_str())
        .unwrap();
    let agent_channel = json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["segments"][0]["speaker"] == agent)
        .map(|c| c["channel"].clone());
    assert_eq!(agent_channel, Some(serde_json::json!(1)), "{json}");
    let (code, help, _) = transcribe(&["--help"]);
    assert_eq!(code, 0);
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("the agent's channel, counted from 0") && !help.contains("1 or 2"),
        "{help}"
    );

    let (code, rttm, _) = transcribe(&[&args[..], &["--format", "rttm", stereo.as_str()]].concat());
    assert_eq!(code, 0);
    let lines: Vec<&str> = rttm.lines().collect();
    assert_eq!(lines.len(), 2, "{rttm}");
    assert!(
        lines[0].starts_with("SPEAKER faster_whisper_stereo_diarization 1 "),
        "{rttm}"
    );
    assert!(
        lines[0].contains(" SPEAKER_00 ") && lines[1].contains(" SPEAKER_01 "),
        "{rttm}"
    );
}
