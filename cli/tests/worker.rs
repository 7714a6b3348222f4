//! `callscript worker` and `callscript doctor` as an operator runs them: start-up refusals that
//! claim nothing, metrics while running, and a clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callscript_testkit::{create_org, insert_downloaded_calls, TestDatabase};
use chrono::Utc;
use common::{model, repo};

mod common;

fn callscript(db: &TestDatabase, storage: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callscript"));
    command
        .env("DATABASE_URL", &db.url.url)
        .env("CALLSCRIPT_STORAGE", storage)
        .env(
            "CALLSCRIPT_SPEAKER_MODEL",
            repo("models/resemblyzer/pretrained.pt"),
        )
        .env_remove("CALLSCRIPT_MODEL")
        .env_remove("CALLSCRIPT_DEVICE")
        .env_remove("CALLSCRIPT_METRICS_ADDR");
    command
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn leased(db: &TestDatabase) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM core.calls WHERE state <> 'downloaded' OR attempts > 0",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_model_or_schema_claims_nothing() {
    let db = TestDatabase::new(2).await;
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let org = create_org(&**db.client().await, "acme").await;
    insert_downloaded_calls(&**db.client().await, org, "call", 5, Utc::now()).await;

    let output = callscript(&db, &storage)
        .args(["worker", "--model", "/nonexistent/whisper"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent/whisper"), "{stderr}");
    assert_eq!(leased(&db).await, 0, "nothing is claimed without a model");

    db.client()
        .await
        .batch_execute("DELETE FROM core.schema_migrations WHERE version = 7")
        .await
        .unwrap();
    let output = callscript(&db, &storage)
        .args(["worker", "--model", &model()])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("schema is behind") && stderr.contains("0007_crm.sql"),
        "{stderr}"
    );
    assert_eq!(leased(&db).await, 0);
    let output = callscript(&db, &storage)
        .args(["migrate", "--check"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).0.contains("pending  0007_crm.sql"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_is_broken() {
    let db = TestDatabase::new(2).await;
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let output = callscript(&db, &storage)
        .args(["doctor", "--model", &model()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    for check in ["database", "storage", "device", "model", "speakers"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}: {stdout}"
        );
    }
    assert!(stdout.contains("schema current"), "{stdout}");

    let output = callscript(&db, &storage)
        .args([
            "doctor",
            "--model",
            "/nonexistent/whisper",
            "--device",
            "tpu",
        ])
        .output()
        .unwrap();
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 2, "{stdout}");
    assert!(
        failed[0].contains("device") && failed[0].contains("tpu"),
        "{stdout}"
    );
    assert!(failed[1].contains("model"), "{stdout}");
}

/// `GET path` on `addr`, the body.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_worker_serves_metrics_and_exits_zero_on_sigterm() {
    let db = TestDatabase::new(2).await;
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let addr = common::free_loopback_addr();
    let worker = callscript(&db, &storage)
        .args(["worker", "--model", &model(), "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        match http_get(&addr, "/metrics") {
            Some(body) if body.contains("callscript_queue_calls") => break body,
            _ if Instant::now() > deadline => panic!("no metrics on {addr} within a minute"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(metrics.contains("callscript_batch_windows "), "{metrics}");
    assert!(
        metrics.contains("callscript_queue_calls{state=\"downloaded\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callscript_device_memory_total_bytes"),
        "{metrics}"
    );
    assert_eq!(http_get(&addr, "/healthz").as_deref(), Some("ok\n"));

    common::terminate(&worker);
    let output = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("worker stopped: 0 calls transcribed"),
        "{stderr}"
    );
}
