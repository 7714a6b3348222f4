//! The ingest commands as a user runs them: `org credentials set`, `backfill ringba` (twice),
//! `vault --until-idle`, and `ingest livekit` receiving a signed webhook, against loopback
//! vendors and the real Postgres.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use callscript_ingest::livekit::token::{sign, Claims};
use callscript_testkit::vendors::fixture;
use callscript_testkit::vendors::ringba::FakeRingba;
use callscript_testkit::{create_org, TestDatabase};

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const ACCOUNT: &str = "RA5c1d0e7f3a2b4c6d8e9f0a1b2c3d4e5f";
const TOKEN: &str = "ringba-token-cli";

fn callscript(db: &TestDatabase, storage: &str) -> Command {
    let mut command = common::callscript();
    command
        .env("DATABASE_URL", &db.url.url)
        .env("CALLSCRIPT_STORAGE", storage)
        .env("CALLSCRIPT_CREDENTIALS_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(command: &mut Command, stdin: &str) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = common::output_with_stdin(command, stdin);
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_run_twice_queues_each_call_once_and_the_vault_stores_them() {
    let db = TestDatabase::new(2).await;
    let org = create_org(&**db.client().await, "acme").await;
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let ringba = FakeRingba::start(ACCOUNT, TOKEN).await;
    let wav = std::fs::read(common::fixture("goforward.wav")).unwrap();
    let day: chrono::DateTime<chrono::Utc> = "2026-11-01T00:00:00Z".parse().unwrap();
    for i in 0..3 {
        ringba.add_call(
            &format!("v2cli{i}"),
            day + chrono::Duration::hours(4 * i + 1),
            &format!("rec{i}"),
        );
        ringba.add_recording(&format!("rec{i}"), wav.clone());
    }
    let api = ringba.api_url();
    let set = [
        "org",
        "credentials",
        "set",
        "acme",
        "ringba",
        "--public-id",
        ACCOUNT,
        "--endpoint",
        &api,
    ];
    let (ok, _, stderr) = run(callscript(&db, &storage).args(set), &format!("{TOKEN}\n"));
    assert!(ok, "{stderr}");

    let backfill = [
        "backfill",
        "ringba",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-01",
    ];
    // Asked for by name, tokio-postgres logs every statement's parameters: the links' signing
    // query (`k=rec…`) must not be among them.
    let (ok, stdout, stderr) = run(
        callscript(&db, &storage)
            .args(backfill)
            .env("CALLSCRIPT_LOG", "debug,tokio_postgres=debug"),
        "",
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("3 records in 4 pages; 3 queued"),
        "{stdout}"
    );
    assert!(stderr.contains("with parameters"), "{stderr}");
    assert!(!stderr.contains("k=rec"), "{stderr}");
    let (ok, stdout, stderr) = run(callscript(&db, &storage).args(backfill), "");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0 queued"), "{stdout}");
    assert!(stdout.contains("3 unchanged"), "{stdout}");

    let (ok, stdout, stderr) = run(
        callscript(&db, &storage)
            .args(["vault", "--until-idle"])
            .env("CALLSCRIPT_LOG", "debug"),
        "",
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("vault: 3 recordings stored"), "{stdout}");
    assert!(!stderr.contains("k=rec"), "{stderr}");
    // A plain debug log leaves the statements' parameters out.
    assert!(stderr.contains("DEBUG"), "{stderr}");
    assert!(!stderr.contains("with parameters"), "{stderr}");
    let downloaded: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM core.calls
             WHERE org_id = $1 AND state = 'downloaded' AND sha256 IS NOT NULL",
            &[&org],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(downloaded, 3);

    // Wrong input is named.
    let backwards = [
        "backfill",
        "ringba",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-01",
    ];
    let (ok, _, stderr) = run(callscript(&db, &storage).args(backwards), "");
    assert!(!ok);
    assert!(stderr.contains("is not after --from"), "{stderr}");
    let (ok, _, stderr) = run(
        callscript(&db, &storage)
            .args(["backfill", "ringba", "--from", "last week"])
            .env_remove("CALLSCRIPT_CREDENTIALS_KEY"),
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("\"last week\" is not a date"), "{stderr}");
    let (ok, _, stderr) = run(
        callscript(&db, &storage)
            .args(backfill)
            .env_remove("CALLSCRIPT_CREDENTIALS_KEY"),
        "",
    );
    assert!(!ok);
    assert!(stderr.contains("CALLSCRIPT_CREDENTIALS_KEY"), "{stderr}");
}

/// `POST /livekit/webhook` with `authorization`; the status line.
fn post_webhook(addr: &str, body: &str, authorization: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "POST /livekit/webhook HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/webhook+json\r\nAuthorization: {authorization}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.lines().next().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_livekit_endpoint_takes_signed_webhooks_and_stops_on_sigterm() {
    let db = TestDatabase::new(2).await;
    let org = create_org(&**db.client().await, "acme").await;
    let objects = tempfile::tempdir().unwrap();
    let storage = objects.path().display().to_string();
    let set = [
        "org",
        "credentials",
        "set",
        "acme",
        "livekit",
        "--public-id",
        "APIcli",
        "--endpoint",
        "https://acme.livekit.cloud",
    ];
    let (ok, _, stderr) = run(callscript(&db, &storage).args(set), "livekit-secret\n");
    assert!(ok, "{stderr}");

    let addr = common::free_loopback_addr();
    let server = callscript(&db, &storage)
        .args([
            "ingest",
            "livekit",
            "--listen",
            &addr,
            "--reconcile-seconds",
            "0",
        ])
        .spawn()
        .unwrap();
    let body = fixture("livekit/egress-ended.json");
    let now = chrono::Utc::now().timestamp();
    let signed = sign(
        &Claims::webhook("APIcli", body.as_bytes(), now),
        "livekit-secret",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match post_webhook(&addr, &body, &signed) {
            Some(status) => break status,
            None if Instant::now() > deadline => panic!("nothing listens on {addr}"),
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(status.contains("200"), "{status}");
    let forged = sign(&Claims::webhook("APIcli", body.as_bytes(), now), "guessed");
    let status = post_webhook(&addr, &body, &forged).unwrap();
    assert!(status.contains("401"), "{status}");

    common::terminate(&server);
    let output = server.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), min(c.state::text), min(l.url)
             FROM core.calls c LEFT JOIN core.call_recording_links l ON l.call_id = c.id
             WHERE c.org_id = $1 AND c.source = 'livekit'",
            &[&org],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        1,
        "one call, from the signed webhook only"
    );
    // The file is not in our store, so the vault will fetch it from its location.
    assert_eq!(row.get::<_, String>(1), "pending");
    assert!(row.get::<_, String>(2).starts_with("https://recordings.s3"));
}
