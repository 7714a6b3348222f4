//! `callscript worker` and `callscript doctor` as an operator runs them: start-up refusals that
//! claim nothing, metrics while running, and a clean exit on SIGTERM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callscript_core::model::{CallState, Lane, Source};
use callscript_core::queue::{self, ClaimRequest, NewCall};
use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_testkit::{create_org, insert_downloaded_calls, wav_bytes, TestDatabase};
use chrono::Utc;
use common::{model, repo};

mod common;

fn callscript(db: &TestDatabase, storage: &str) -> Command {
    let mut command = common::callscript();
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

/// Stores `body` under `key` in `store` and queues a downloaded call for it.
async fn downloaded(
    client: &impl tokio_postgres::GenericClient,
    store: &LocalDirStore,
    org: uuid::Uuid,
    name: &str,
    body: Vec<u8>,
) -> uuid::Uuid {
    let key = format!("calls/{name}.wav");
    let info = store
        .put(&key, Bytes::from(body), "audio/wav")
        .await
        .unwrap();
    let mut call = NewCall::new(org, Source::Upload, name, Utc::now());
    call.state = CallState::Downloaded;
    call.object_key = Some(key);
    call.sha256 = info.sha256;
    queue::enqueue(client, &call).await.unwrap().call_id
}

async fn state(db: &TestDatabase, id: uuid::Uuid) -> CallState {
    queue::get_call(&**db.client().await, id)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// A lease taken in `lane` by a worker that dies at once: it runs out in 2 s.
async fn leased_by_a_dead_worker(db: &TestDatabase, lane: Lane) {
    let claimed = queue::claim(
        &**db.client().await,
        &ClaimRequest {
            lane,
            worker: "dead",
            batch_size: 1,
            lease_for: Duration::from_secs(2),
            org_id: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_until_idle_runs_finish_what_is_finishable_silent_calls_included() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    client
        .batch_execute("UPDATE core.queue_settings SET backoff_base = '1 second'")
        .await
        .unwrap();
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let store = LocalDirStore::new(objects.path());
    store.prepare().await.unwrap();
    let speech = std::fs::read(common::fixture("goforward.wav")).unwrap();
    // Left by a crash: a call the rescuer put in backoff, and one still leased by the dead
    // worker.
    let rescued = downloaded(&**client, &store, org, "rescued", speech.clone()).await;
    client
        .execute(
            "UPDATE core.calls SET attempts = 1, run_after = now() + interval '2 s',
               last_error = 'lease held by crashed expired' WHERE id = $1",
            &[&rescued],
        )
        .await
        .unwrap();
    let orphaned = downloaded(&**client, &store, org, "orphaned", speech).await;
    leased_by_a_dead_worker(&db, Lane::Transcribe).await;
    // 45 s in which nobody speaks, and bytes that are no recording at all.
    let silent = downloaded(
        &**client,
        &store,
        org,
        "silent",
        wav_bytes(8_000, 1, &vec![0; 8_000 * 45]),
    )
    .await;
    let garbage = downloaded(&**client, &store, org, "garbage", vec![7; 4_000]).await;

    let output = callscript(&db, &storage)
        .args(["worker", "--model", &model(), "--no-diarize"])
        .args(["--until-idle", "--idle-wait-seconds", "60"])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("worker stopped: 3 calls transcribed"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "worker left: 1 call dead-lettered (`callscript queue requeue` brings it back)"
        ),
        "{stderr}"
    );
    for id in [rescued, orphaned, silent] {
        assert_eq!(state(&db, id).await, CallState::Transcribed);
    }
    assert_eq!(state(&db, garbage).await, CallState::Failed);

    // A judge died holding a call; another judge run finishes it with the rest, the silent
    // call judged like any other.
    leased_by_a_dead_worker(&db, Lane::Judge).await;
    let output = callscript(&db, &storage)
        .args(["judge", "--until-idle", "--idle-wait-seconds", "60"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("judge: 3 calls judged"), "{stdout}");
    assert!(stdout.contains("judge left: nothing"), "{stdout}");
    for id in [rescued, orphaned, silent] {
        assert_eq!(state(&db, id).await, CallState::Judged);
    }
    let silent_flags: Vec<String> = client
        .query(
            "SELECT rule_id FROM core.qa_flags WHERE call_id = $1 ORDER BY rule_id",
            &[&silent],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        silent_flags,
        ["dead-air", "recording-disclosure-missing"],
        "45 s without a word is dead air, and nobody disclosed the recording"
    );
    let dead_air: (i32, i32, String) = client
        .query_one(
            "SELECT start_ms, end_ms, evidence_text FROM core.qa_flags
              WHERE call_id = $1 AND rule_id = 'dead-air'",
            &[&silent],
        )
        .await
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .unwrap();
    assert_eq!(dead_air, (0, 45_000, "no speech for 45 s".to_owned()));
}

#[test]
fn idle_wait_needs_until_idle_and_a_duration() {
    let run = |args: &[&str]| {
        let output = common::callscript()
            .args(args)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let (_, stderr) = text(&output);
        (output.status.code(), stderr)
    };
    for lane in ["worker", "judge", "vault"] {
        let (code, stderr) = run(&[lane, "--idle-wait-seconds", "5"]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("--until-idle"), "{lane}: {stderr}");
        let (code, stderr) = run(&[lane, "--help"]);
        assert_eq!(code, Some(0), "{stderr}");
    }
    let (code, stderr) = run(&["judge", "--until-idle", "--idle-wait-seconds=-1"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--idle-wait-seconds: -1"), "{stderr}");
}
