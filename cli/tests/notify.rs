//! `callscript org notify …` and `callscript notify` as a user runs them: a signed webhook
//! channel, a queued alert delivered to a loopback receiver, the signature checked; email and
//! SMS channels added and listed without their secrets.

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use callscript_core::model::{Category, Severity};
use callscript_notify::deliver::verify_signature;
use callscript_notify::{enqueue_event, Event};
use callscript_testkit::smtp::{SinkTls, SmtpSink};
use callscript_testkit::vendors::LoopbackServer;
use callscript_testkit::{create_org, TestDatabase};
use chrono::Utc;
use uuid::Uuid;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn callscript(db: &TestDatabase, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut command = common::callscript();
    command
        .env("DATABASE_URL", &db.url.url)
        .env("CALLSCRIPT_CREDENTIALS_KEY", KEY)
        .env("CALLSCRIPT_PUBLIC_URL", "https://review.example")
        .args(args);
    let output = common::output_with_stdin(&mut command, stdin);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

fn received_count(received: &Received) -> usize {
    received.lock().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_channel_receives_a_signed_alert() {
    let db = TestDatabase::new(2).await;
    let org = create_org(&**db.client().await, "acme").await;
    let received: Received = Arc::default();
    let sink = received.clone();
    let receiver = LoopbackServer::start(Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((headers, body));
                "ok"
            }
        }),
    ))
    .await;

    let url = receiver.url("/hook");
    let (ok, secret, stderr) = callscript(
        &db,
        &[
            "org",
            "notify",
            "add",
            "acme",
            "compliance",
            "--webhook",
            &url,
            "--generate-secret",
            "--events",
            "flag",
            "--min-severity",
            "critical",
        ],
        "",
    );
    assert!(ok, "{stderr}");
    let secret = secret.lines().last().unwrap().trim().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (ok, listed, _) = callscript(&db, &["org", "notify", "list", "acme"], "");
    assert!(ok);
    assert!(
        listed.contains("compliance") && listed.contains("critical"),
        "{listed}"
    );
    let (ok, _, stderr) = callscript(
        &db,
        &["org", "notify", "add", "acme", "BAD NAME", "--slack"],
        "https://hooks.slack.com/services/T/B/X",
    );
    assert!(!ok);
    assert!(stderr.contains("channel name"), "{stderr}");

    // A critical flag is queued (as the judge does, in its transaction); a high one is not
    // routed to this channel.
    let client = db.client().await;
    let flag = |severity| Event::Flag {
        call_id: Uuid::new_v4(),
        flag_id: None,
        rule_id: "payment-card-spoken".into(),
        category: Category::Compliance,
        severity,
        evidence: "my card is [card ending 1111]".into(),
        start_ms: Some(4_000),
        speaker: Some("customer".into()),
    };
    assert_eq!(
        enqueue_event(&**client, org, &flag(Severity::Critical))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        enqueue_event(&**client, org, &flag(Severity::High))
            .await
            .unwrap(),
        0
    );

    let (ok, stdout, stderr) = callscript(&db, &["notify", "--until-idle"], "");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("1 delivered"), "{stdout}");
    let first = received.lock().unwrap().clone();
    assert_eq!(first.len(), 1);
    let (headers, body) = &first[0];
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let timestamp = header("x-callscript-timestamp");
    let signature = header("x-callscript-signature");
    assert!(verify_signature(
        &secret,
        &timestamp,
        &signature,
        body,
        Utc::now()
    ));
    assert!(!verify_signature(
        &secret,
        &timestamp,
        &signature,
        b"{}",
        Utc::now()
    ));
    let text = String::from_utf8_lossy(body);
    assert!(
        text.contains("payment-card-spoken") && text.contains("https://review.example/calls/"),
        "{text}"
    );

    // Nothing is sent twice.
    let (ok, stdout, _) = callscript(&db, &["notify", "--until-idle"], "");
    assert!(ok && stdout.contains("0 delivered"), "{stdout}");

    // `serve --notify` delivers beside the API, within seconds of the alert being queued.
    let listen = common::free_loopback_addr();
    let objects = tempfile::tempdir().unwrap();
    let mut server = common::callscript()
        .env("DATABASE_URL", &db.url.url)
        .env("CALLSCRIPT_CREDENTIALS_KEY", KEY)
        .env("CALLSCRIPT_STORAGE", objects.path())
        .args(["serve", "--notify", "--listen", &listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut second = flag(Severity::Critical);
    if let Event::Flag { rule_id, .. } = &mut second {
        *rule_id = "ssn-spoken".into();
    }
    assert_eq!(enqueue_event(&**client, org, &second).await.unwrap(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while received_count(&received) < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    common::terminate(&server);
    assert!(server.wait().unwrap().success(), "serve exits 0 on SIGTERM");
    assert_eq!(
        received_count(&received),
        2,
        "serve --notify delivered the second alert"
    );

    // A removed channel is gone from the list.
    let (ok, _, _) = callscript(&db, &["org", "notify", "remove", "acme", "compliance"], "");
    assert!(ok);
    let (_, listed, _) = callscript(&db, &["org", "notify", "list", "acme"], "");
    assert!(!listed.contains("compliance"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_sms_channels_are_added_and_listed_without_their_secrets() {
    let db = TestDatabase::new(2).await;
    create_org(&**db.client().await, "acme").await;
    // A private mail server's CA, as its administrator would hand it out.
    let sink = SmtpSink::start(SinkTls::StartTls, None).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, sink.root_ca_pem()).unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let (smtp_password, auth_token) = ("smtp-secret-91", "twilio-token-c3");
    let sid = "AC0123456789abcdef0123456789abcdef";

    let email = [
        "org",
        "notify",
        "add",
        "acme",
        "qa-mail",
        "--email",
        "--smtp-host",
        "relay.acme.test",
        "--smtp-user",
        "alerts",
        "--from",
        "Alerts <alerts@acme.test>",
        "--to",
        "qa@acme.test,lead@acme.test",
        "--smtp-ca-file",
        ca_file,
    ];
    let (ok, stdout, stderr) = callscript(&db, &email, smtp_password);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("email channel qa-mail of acme saved"),
        "{stdout}"
    );
    let sms = [
        "org",
        "notify",
        "add",
        "acme",
        "qa-sms",
        "--sms",
        "--twilio-account-sid",
        sid,
        "--from",
        "+14155550199",
        "--to",
        "+14155550100,+14155550101",
        "--events",
        "flag",
        "--min-severity",
        "critical",
    ];
    let (ok, stdout, stderr) = callscript(&db, &sms, auth_token);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("sms channel qa-sms of acme saved"),
        "{stdout}"
    );

    let (ok, listed, stderr) = callscript(&db, &["org", "notify", "list", "acme"], "");
    assert!(ok, "{stderr}");
    for expected in [
        "smtp alerts@relay.acme.test:587 (starttls, own root CA) from Alerts <alerts@acme.test> \
         to qa@acme.test,lead@acme.test",
        &format!("twilio {sid} from +14155550199 to +14155550100,+14155550101"),
    ] {
        assert!(listed.contains(expected), "{expected} not in {listed}");
    }
    assert!(
        !listed.contains(smtp_password) && !listed.contains(auth_token),
        "{listed}"
    );

    // Bad input is refused, naming what is wrong, and nothing is stored.
    let mut bad_number = sms;
    bad_number[11] = "+1 415 555 0100";
    let (ok, _, stderr) = callscript(&db, &bad_number, auth_token);
    assert!(!ok);
    assert!(
        stderr.contains("SMS recipient \"+1 415 555 0100\" is not an E.164 number"),
        "{stderr}"
    );
    let in_clear = [
        "org",
        "notify",
        "add",
        "acme",
        "open-mail",
        "--email",
        "--smtp-host",
        "relay.acme.test",
        "--smtp-tls",
        "none",
        "--from",
        "alerts@acme.test",
        "--to",
        "qa@acme.test",
    ];
    let (ok, _, stderr) = callscript(&db, &in_clear, "");
    assert!(!ok);
    assert!(stderr.contains("unencrypted"), "{stderr}");
    let (ok, _, stderr) = callscript(
        &db,
        &[
            "org",
            "notify",
            "add",
            "acme",
            "x",
            "--email",
            "--to",
            "qa@acme.test",
        ],
        "",
    );
    assert!(!ok);
    assert!(
        stderr.contains("--smtp-host") && stderr.contains("--from"),
        "{stderr}"
    );
    let (_, listed, _) = callscript(&db, &["org", "notify", "list", "acme"], "");
    assert_eq!(listed.lines().count(), 2, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_rate_limits_and_queue_thresholds_are_set_and_shown() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    create_org(&**client, "acme").await;
    client
        .execute(
            "UPDATE core.organizations SET timezone = 'America/New_York'",
            &[],
        )
        .await
        .unwrap();
    let add = [
        "org",
        "notify",
        "add",
        "acme",
        "qa",
        "--webhook",
        "http://127.0.0.1:9/hook",
        "--generate-secret",
    ];
    let (ok, _, stderr) = callscript(&db, &add, "");
    assert!(ok, "{stderr}");

    let policy = |extra: &[&str]| {
        let mut args = vec!["org", "notify", "policy", "acme", "qa"];
        args.extend_from_slice(extra);
        callscript(&db, &args, "")
    };
    let (ok, stdout, stderr) = policy(&[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("quiet hours none, rate limit none"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = policy(&["--quiet", "22:00-07:00", "--rate-limit", "20/hour"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "quiet hours 22:00-07:00 (critical and above still sent) America/New_York, rate \
             limit 20/hour"
        ),
        "{stdout}"
    );
    let (ok, stdout, stderr) = policy(&["--quiet-bypass", "none"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("22:00-07:00 (nothing sent)"), "{stdout}");
    let (ok, listed, stderr) = callscript(&db, &["org", "notify", "list", "acme"], "");
    assert!(ok, "{stderr}");
    assert!(
        listed.contains("quiet 22:00-07:00 (nothing sent) at most 20/hour"),
        "{listed}"
    );

    // Bad values are refused, naming what is wrong; the stored policy stays.
    let (ok, _, stderr) = policy(&["--rate-limit", "20/week"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read the rate limit \"20/week\""),
        "{stderr}"
    );
    let (ok, _, stderr) = policy(&["--quiet", "22:00-22:00"]);
    assert!(!ok);
    assert!(stderr.contains("different times"), "{stderr}");
    let (ok, stdout, _) = policy(&[]);
    assert!(ok && stdout.contains("rate limit 20/hour"), "{stdout}");
    let (ok, stdout, stderr) = policy(&["--quiet", "none", "--rate-limit", "none"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("quiet hours none, rate limit none"),
        "{stdout}"
    );
    let (ok, _, stderr) = policy(&["--quiet-bypass", "high"]);
    assert!(!ok);
    assert!(stderr.contains("no quiet hours to bypass"), "{stderr}");

    let (ok, stdout, stderr) = callscript(&db, &["org", "alerts", "show", "acme"], "");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("backlog from 15 min"), "{stdout}");
    let set = [
        "org",
        "alerts",
        "set",
        "acme",
        "--backlog-minutes",
        "30",
        "--failure-rate-percent",
        "12.5",
    ];
    let (ok, stdout, stderr) = callscript(&db, &set, "");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("backlog from 30 min; failures above 12.5% of at least 5 calls in 15 min"),
        "{stdout}"
    );
    let (ok, _, stderr) = callscript(
        &db,
        &[
            "org",
            "alerts",
            "set",
            "acme",
            "--worker-silence-minutes",
            "0",
        ],
        "",
    );
    assert!(!ok);
    assert!(
        stderr.contains("the worker silence minutes must be positive"),
        "{stderr}"
    );
    let (ok, stdout, _) = callscript(&db, &["org", "alerts", "show", "acme"], "");
    assert!(ok && stdout.contains("backlog from 30 min"), "{stdout}");
    let (ok, stdout, _) = callscript(&db, &["org", "alerts", "set", "acme", "--disable"], "");
    assert!(
        ok && stdout.contains("queue health of acme: not checked"),
        "{stdout}"
    );
}
