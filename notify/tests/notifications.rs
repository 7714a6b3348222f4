//! The outbox and the delivery lane against the real Postgres and loopback receivers: routing,
//! dedup, transactions, retries, outages, dead letters, leases and signatures.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use callscript_core::credentials::Secret;
use callscript_core::model::Severity;
use callscript_notify::channels::{self, Routing, Target};
use callscript_notify::deliver::{self, Notification, Outcome};
use callscript_notify::outbox::{self, Settled};
use callscript_notify::{enqueue_compliance_flags, enqueue_event, Event, EventKind};
use callscript_testkit::{create_org, TestDatabase};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use common::{
    add_slack, add_webhook, flag, key, lane, one_call, open_rows, routing, rows, settle, Inbox,
    PUBLIC_URL, SIGNING_SECRET,
};

#[tokio::test]
async fn a_critical_flag_reaches_each_routed_channel_once() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let (slack, hook, sales) = (Inbox::default(), Inbox::default(), Inbox::default());
    let (slack_server, hook_server, sales_server) =
        (slack.start().await, hook.start().await, sales.start().await);
    let all = routing(EventKind::ROUTABLE, Severity::High);
    add_slack(
        &**client,
        org,
        "qa-slack",
        slack_server.url("/services/T1/B1/x"),
        &all,
    )
    .await;
    add_webhook(&**client, org, "qa-hook", hook_server.url("/hook"), &all).await;
    let hot_only = routing(&[EventKind::HotLead], Severity::Info);
    add_slack(
        &**client,
        org,
        "sales",
        sales_server.url("/services/T2/B2/y"),
        &hot_only,
    )
    .await;
    let disabled = Routing {
        enabled: false,
        ..all.clone()
    };
    add_webhook(&**client, org, "off", hook_server.url("/off"), &disabled).await;

    let call = Uuid::new_v4();
    let event = flag(call, Severity::Critical);
    assert_eq!(enqueue_event(&**client, org, &event).await.unwrap(), 2);
    // The same event again (a re-judged call) queues nothing.
    assert_eq!(enqueue_event(&**client, org, &event).await.unwrap(), 0);

    let (_keep, stop) = tokio::sync::watch::channel(false);
    let report = lane(&db).run(true, stop).await.unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    assert!(sales.seen().is_empty());
    let (slack_seen, hook_seen) = (slack.seen(), hook.seen());
    assert_eq!(slack_seen.len(), 1);
    assert_eq!(
        hook_seen.len(),
        1,
        "one message, and none for the disabled channel"
    );
    assert!(hook_seen[0].headers.get("x-callscript-signature").is_some());

    let Event::Flag { flag_id, .. } = &event else {
        unreachable!()
    };
    let message = slack_seen[0].json();
    let text = message.to_string();
    assert_eq!(
        message["blocks"][0]["text"]["text"],
        "🚨 Critical compliance flag: card-number"
    );
    for expected in [
        "*Rule*\\n`card-number`",
        "*Severity*\\nCritical",
        "*At*\\n0:42",
        "*Speaker*\\ncustomer",
        "> sure it's 4242",
        &format!(
            "<{PUBLIC_URL}/calls/{call}#flag-{}|Open the call>",
            flag_id.unwrap()
        ),
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    assert!(message["text"].as_str().unwrap().contains("card-number"));

    // Delivered once: the repeat is still refused, and the lane finds nothing more to send.
    assert_eq!(enqueue_event(&**client, org, &event).await.unwrap(), 0);
    assert_eq!(lane(&db).run_batch().await.unwrap(), None);
    assert_eq!((slack.seen().len(), hook.seen().len()), (1, 1));
    let states: Vec<_> = rows(&db)
        .await
        .into_iter()
        .map(|r| (r.0, r.1, r.2))
        .collect();
    assert_eq!(
        states,
        [
            ("qa-hook".into(), "delivered".into(), 1),
            ("qa-slack".into(), "delivered".into(), 1)
        ]
    );
}

#[tokio::test]
async fn channels_get_flags_from_their_minimum_severity_and_hot_leads_always() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let other = create_org(&**client, "other").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    let all = EventKind::ROUTABLE;
    add_webhook(
        &**client,
        org,
        "critical",
        server.url("/c"),
        &routing(all, Severity::Critical),
    )
    .await;
    add_webhook(
        &**client,
        org,
        "high",
        server.url("/h"),
        &routing(all, Severity::High),
    )
    .await;
    add_webhook(
        &**client,
        org,
        "flags",
        server.url("/f"),
        &routing(&[EventKind::Flag], Severity::Info),
    )
    .await;
    add_webhook(
        &**client,
        other,
        "critical",
        server.url("/o"),
        &routing(all, Severity::Info),
    )
    .await;

    let call = Uuid::new_v4();
    assert_eq!(
        enqueue_event(&**client, org, &flag(call, Severity::High))
            .await
            .unwrap(),
        2
    );
    let mut low = flag(call, Severity::Low);
    if let Event::Flag { rule_id, .. } = &mut low {
        *rule_id = "dead-air".into();
    }
    assert_eq!(enqueue_event(&**client, org, &low).await.unwrap(), 1);
    let lead = Event::HotLead {
        lead_id: Uuid::new_v4(),
        call_id: call,
        phone: "+15550100".into(),
        score: 91,
        follow_up_due: Some(DateTime::parse_from_rfc3339("2026-12-07T10:00:00-05:00").unwrap()),
        summary: "Asked about the price & the <plan>.".into(),
    };
    assert_eq!(enqueue_event(&**client, org, &lead).await.unwrap(), 2);

    let mut routed: Vec<(String, String, String)> = client
        .query(
            "SELECT channel, event_kind, dedup_key FROM core.notifications",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    routed.sort();
    let (high, low, lead_key) = (
        flag(call, Severity::High).dedup_key(),
        low.dedup_key(),
        lead.dedup_key(),
    );
    let mut expected: Vec<(String, String, String)> = [
        ("critical", "hot_lead", &lead_key),
        ("flags", "flag", &low),
        ("flags", "flag", &high),
        ("high", "flag", &high),
        ("high", "hot_lead", &lead_key),
    ]
    .iter()
    .map(|(channel, kind, key)| (channel.to_string(), kind.to_string(), key.to_string()))
    .collect();
    expected.sort();
    assert_eq!(
        routed, expected,
        "no low flag where high is the minimum, nothing to the other org"
    );
    settle(&lane(&db), &db, Duration::from_secs(10)).await;
    let lead_body = inbox
        .seen()
        .into_iter()
        .map(|seen| seen.json())
        .find(|body| body["event"]["kind"] == "hot_lead")
        .unwrap();
    assert_eq!(lead_body["link"], format!("{PUBLIC_URL}/calls/{call}"));
    assert_eq!(lead_body["event"]["score"], 91);
    assert_eq!(
        lead_body["event"]["follow_up_due"],
        "2026-12-07T10:00:00-05:00"
    );
}

#[tokio::test]
async fn a_hot_lead_reads_well_in_slack() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let slack = Inbox::default();
    let server = slack.start().await;
    let hot = routing(&[EventKind::HotLead], Severity::Critical);
    add_slack(&**client, org, "sales", server.url("/services/T/B/z"), &hot).await;
    let call = Uuid::new_v4();
    let lead = Event::HotLead {
        lead_id: Uuid::new_v4(),
        call_id: call,
        phone: "+15550100".into(),
        score: 91,
        follow_up_due: Some(DateTime::parse_from_rfc3339("2026-12-07T10:00:00-05:00").unwrap()),
        summary: "Asked about the price & the <plan>.".into(),
    };
    assert_eq!(enqueue_event(&**client, org, &lead).await.unwrap(), 1);
    settle(&lane(&db), &db, Duration::from_secs(10)).await;
    let text = slack.seen()[0].json().to_string();
    for expected in [
        "🔥 Hot lead: +15550100",
        "*Score*\\n91/100",
        "*Follow up*\\nMon 7 Dec 2026, 10:00 (UTC-05:00)",
        "Asked about the price &amp; the &lt;plan&gt;.",
        &format!("<{PUBLIC_URL}/calls/{call}|Open the call>"),
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

#[tokio::test]
async fn a_rolled_back_judgement_sends_nothing() {
    let db = TestDatabase::new(2).await;
    let mut client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    add_webhook(
        &**client,
        org,
        "qa",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;
    let call = one_call(&**client, org, "call").await;

    // What the judge's transaction does: the call's flags, then their alerts; the first time it
    // fails afterwards and rolls back.
    for commit in [false, true] {
        let transaction = client.transaction().await.unwrap();
        transaction
            .execute(
                "INSERT INTO core.qa_flags (call_id, org_id, rule_id, rulebook_version, category,
                                            severity, evidence_text, start_ms, speaker, role,
                                            review_status)
                 VALUES ($1, $2, 'card-number', 'default@1', 'compliance', 'critical', '4242',
                         42500, 'SPEAKER_1', 'customer', 'open'),
                        ($1, $2, 'long-hold', 'default@1', 'quality', 'critical', 'hold', 0,
                         NULL, NULL, 'open'),
                        ($1, $2, 'forbidden', 'default@1', 'compliance', 'critical', 'free',
                         1000, NULL, NULL, 'dismissed')",
                &[&call, &org],
            )
            .await
            .unwrap();
        let queued = enqueue_compliance_flags(&*transaction, org, call)
            .await
            .unwrap();
        assert_eq!(queued, 1, "compliance flags only, dismissed ones left out");
        if commit {
            transaction.commit().await.unwrap();
        } else {
            transaction.rollback().await.unwrap();
            assert!(rows(&db).await.is_empty());
            assert_eq!(lane(&db).run_batch().await.unwrap(), None);
            assert!(inbox.seen().is_empty());
        }
    }
    // The same judgement committed is sent once, linking to its flag.
    assert_eq!(
        settle(&lane(&db), &db, Duration::from_secs(10))
            .await
            .delivered,
        1
    );
    let flag_id: Uuid = client
        .query_one(
            "SELECT id FROM core.qa_flags WHERE rule_id = 'card-number'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let body = inbox.seen()[0].json();
    assert_eq!(
        body["link"],
        format!("{PUBLIC_URL}/calls/{call}#flag-{flag_id}")
    );
    assert_eq!(body["event"]["speaker"], "customer");
    assert_eq!(body["event"]["evidence"], "4242");
    // Judged again: nothing new to tell.
    assert_eq!(
        enqueue_compliance_flags(&**client, org, call)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn two_failures_then_success_is_one_delivery() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    add_webhook(
        &**client,
        org,
        "qa",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;
    inbox.answer(&[500, 500]);
    let event = flag(Uuid::new_v4(), Severity::Critical);
    enqueue_event(&**client, org, &event).await.unwrap();

    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.retrying), (1, 2), "{report:?}");
    let seen = inbox.seen();
    assert_eq!(seen.len(), 3);
    // Every attempt is the same delivery, so a receiver that got one twice can tell.
    for attempt in &seen {
        assert_eq!(attempt.header("x-callscript-delivery"), event.dedup_key());
    }
    let (_, state, attempts, last_error) = rows(&db).await.remove(0);
    assert_eq!((state.as_str(), attempts), ("delivered", 3));
    assert!(last_error.unwrap().contains("500"));
    assert_eq!(lane(&db).run_batch().await.unwrap(), None);
    assert_eq!(inbox.seen().len(), 3);
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_everything_after() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    // A port with nothing behind it yet.
    let addr: SocketAddr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let slack_url = format!("http://{addr}/services/T1/B1/SLACKTOKEN");
    add_slack(&**client, org, "qa-slack", slack_url, &Routing::default()).await;
    add_webhook(
        &**client,
        org,
        "qa-hook",
        format!("http://{addr}/hook"),
        &Routing::default(),
    )
    .await;
    let calls: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for call in &calls {
        assert_eq!(
            enqueue_event(&**client, org, &flag(*call, Severity::High))
                .await
                .unwrap(),
            2
        );
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let lane = lane(&db);
    let running = async { lane.run(false, stopped).await.unwrap() };
    let outage_then_recovery = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = rows(&db).await;
        assert_eq!(during.len(), 6);
        for (channel, state, attempts, last_error) in &during {
            assert!(
                state == "pending" || state == "sending",
                "{channel}: {state}"
            );
            assert!(*attempts >= 1, "{channel}: {attempts}");
            if let Some(error) = last_error {
                // Refused connections, and never the Slack URL (it is the credential).
                assert!(
                    !error.contains("SLACKTOKEN") && !error.contains("127.0.0.1"),
                    "{error}"
                );
            }
        }
        let inbox = Inbox::default();
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let router = inbox.router();
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while open_rows(&db).await > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{:?}",
                rows(&db).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        server.abort();
        inbox
    };
    let (report, inbox) = tokio::join!(running, outage_then_recovery);
    assert_eq!(report.delivered, 6, "{report:?}");
    assert!(report.retrying >= 6, "{report:?}");
    let mut keys: Vec<String> = inbox
        .seen()
        .iter()
        .map(|seen| {
            format!(
                "{} {}",
                seen.header("x-callscript-delivery"),
                seen.headers.get("x-callscript-signature").is_some()
            )
        })
        .collect();
    keys.sort();
    let mut expected: Vec<String> = calls
        .iter()
        .flat_map(|call| {
            let key = flag(*call, Severity::High).dedup_key();
            [format!("{key} false"), format!("{key} true")]
        })
        .collect();
    expected.sort();
    assert_eq!(keys, expected, "each message once, none lost");
}

#[tokio::test]
async fn past_its_attempts_a_notification_is_dead_lettered() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    add_webhook(
        &**client,
        org,
        "qa",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;
    inbox.always(500);
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    client
        .execute("UPDATE core.notifications SET max_attempts = 3", &[])
        .await
        .unwrap();

    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!(
        (report.retrying, report.failed, report.delivered),
        (2, 1, 0)
    );
    assert_eq!(inbox.seen().len(), 3);
    let (_, state, attempts, last_error) = rows(&db).await.remove(0);
    assert_eq!((state.as_str(), attempts), ("failed", 3));
    assert_eq!(
        last_error.as_deref(),
        Some("HTTP 500 Internal Server Error")
    );
    // Dead letters are never claimed again.
    assert_eq!(lane(&db).run_batch().await.unwrap(), None);
}

#[tokio::test]
async fn a_crashed_senders_rows_are_sent_again_as_the_same_delivery() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    add_webhook(
        &**client,
        org,
        "qa",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;
    let event = flag(Uuid::new_v4(), Severity::Critical);
    enqueue_event(&**client, org, &event).await.unwrap();

    // A sender claims the row, posts it, and dies before recording the delivery; its lease
    // (zero here) runs out.
    let stale = outbox::claim(&**client, 10, Duration::ZERO).await.unwrap();
    assert_eq!(stale.len(), 1);
    assert_eq!(rows(&db).await[0].1, "sending");
    let channel = channels::load(&**client, &key(), org, "qa").await.unwrap();
    let notification = Notification {
        org_id: org,
        dedup_key: &stale[0].dedup_key,
        created_at: stale[0].created_at,
        event: &event,
        link: None,
    };
    let http = reqwest::Client::new();
    assert_eq!(
        deliver::send(&http, &channel.target, &notification).await,
        Outcome::Delivered
    );

    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!(report.delivered, 1);
    let seen = inbox.seen();
    assert_eq!(
        seen.len(),
        2,
        "at least once: sent again after the lease ran out"
    );
    assert_eq!(
        seen[0].header("x-callscript-delivery"),
        seen[1].header("x-callscript-delivery")
    );
    assert_eq!(seen[1].header("x-callscript-delivery"), event.dedup_key());
    // The crashed sender, were it to come back, can no longer settle the row.
    assert_eq!(
        outbox::complete(&**client, &stale[0]).await.unwrap(),
        Settled::LeaseLost
    );
    assert_eq!(
        outbox::retry(&**client, &stale[0], "late", Duration::ZERO)
            .await
            .unwrap(),
        Settled::LeaseLost
    );
    let (_, state, attempts, _) = rows(&db).await.remove(0);
    assert_eq!((state.as_str(), attempts), ("delivered", 2));

    // A sender that dies on the last attempt leaves a dead letter, not an endless retry.
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE core.notifications SET max_attempts = 1 WHERE state = 'pending'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        outbox::claim(&**client, 10, Duration::ZERO)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(lane(&db).run_batch().await.unwrap(), None);
    let last = rows(&db).await.remove(1);
    assert_eq!(last.1, "failed");
    assert!(last.3.unwrap().contains("lease expired"));
    assert_eq!(inbox.seen().len(), 2);
}

#[tokio::test]
async fn webhook_signatures_verify_and_tampered_bodies_do_not() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    add_webhook(
        &**client,
        org,
        "qa",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;
    let call = Uuid::new_v4();
    let event = flag(call, Severity::Critical);
    enqueue_event(&**client, org, &event).await.unwrap();
    settle(&lane(&db), &db, Duration::from_secs(10)).await;

    let seen = inbox.seen().remove(0);
    assert_eq!(seen.header("content-type"), "application/json");
    let timestamp = seen.header("x-callscript-timestamp").to_owned();
    let signature = seen.header("x-callscript-signature").to_owned();
    let now = Utc::now();
    assert!(deliver::verify_signature(
        SIGNING_SECRET,
        &timestamp,
        &signature,
        &seen.body,
        now
    ));

    // The documented recipe, done by hand: hex(HMAC-SHA256(secret, timestamp "." body)).
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&seen.body);
    assert_eq!(
        signature,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );

    let mut tampered = seen.body.to_vec();
    let at = tampered.iter().position(|b| *b == b'4').unwrap();
    tampered[at] = b'5';
    assert!(!deliver::verify_signature(
        SIGNING_SECRET,
        &timestamp,
        &signature,
        &tampered,
        now
    ));
    assert!(!deliver::verify_signature(
        "whsec_other",
        &timestamp,
        &signature,
        &seen.body,
        now
    ));

    let body = seen.json();
    assert_eq!(body["delivery"], event.dedup_key());
    assert_eq!(body["org_id"], org.to_string());
    assert_eq!(body["event"]["kind"], "flag");
    assert_eq!(body["event"]["severity"], "critical");
    assert_eq!(body["event"]["start_ms"], 42_500);
    let Event::Flag { flag_id, .. } = &event else {
        unreachable!()
    };
    assert_eq!(
        body["link"],
        format!("{PUBLIC_URL}/calls/{call}#flag-{}", flag_id.unwrap())
    );
}

#[tokio::test]
async fn channels_keep_their_secrets_sealed_and_stop_when_removed_or_disabled() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let inbox = Inbox::default();
    let server = inbox.start().await;
    let slack_url = server.url("/services/T1/B1/SLACKTOKEN");
    add_slack(
        &**client,
        org,
        "qa-slack",
        slack_url.clone(),
        &Routing::default(),
    )
    .await;
    add_webhook(
        &**client,
        org,
        "qa-hook",
        server.url("/hook"),
        &Routing::default(),
    )
    .await;

    let listed = channels::list(&**client, org).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name, "qa-hook");
    assert_eq!(listed[0].url.as_deref(), Some(server.url("/hook").as_str()));
    assert_eq!(
        (listed[1].name.as_str(), listed[1].url.as_deref()),
        ("qa-slack", None)
    );
    assert_eq!(listed[1].routing, Routing::default());
    let sealed: Vec<Vec<u8>> = client
        .query(
            "SELECT ciphertext FROM core.organization_credentials WHERE kind = 'notify'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sealed.len(), 2);
    for ciphertext in &sealed {
        assert!(!String::from_utf8_lossy(ciphertext).contains("SLACKTOKEN"));
        assert!(!String::from_utf8_lossy(ciphertext).contains(SIGNING_SECRET));
    }
    assert!(matches!(
        channels::save(
            &**client,
            &key(),
            org,
            "Bad Name",
            &Routing::default(),
            &Target::Slack {
                webhook_url: Secret::new(slack_url.clone())
            }
        )
        .await,
        Err(channels::ChannelError::BadName(_))
    ));

    // Rows already queued for a channel that is then disabled or removed are dead-lettered.
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();
    let off = Routing {
        enabled: false,
        ..Routing::default()
    };
    assert!(channels::set_routing(&**client, org, "qa-hook", &off)
        .await
        .unwrap());
    assert!(channels::remove(&**client, org, "qa-slack").await.unwrap());
    assert!(!channels::remove(&**client, org, "qa-slack").await.unwrap());
    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!(report.failed, 2);
    assert!(inbox.seen().is_empty());
    let errors: Vec<String> = rows(&db).await.into_iter().map(|r| r.3.unwrap()).collect();
    assert!(errors[0].contains("disabled"), "{errors:?}");
    assert!(errors[1].contains("no notification channel"), "{errors:?}");
    // A disabled channel gets no new rows either.
    assert_eq!(
        enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
            .await
            .unwrap(),
        0
    );
}
