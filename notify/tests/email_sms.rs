//! Email and SMS channels against the real Postgres, a loopback SMTP sink (STARTTLS with a CA
//! made for the test, AUTH) and a loopback Twilio: what one alert sends, retries that neither
//! lose nor repeat a message, and errors that never show a secret.

mod common;

use std::time::Duration;

use callscript_core::credentials::Secret;
use callscript_core::model::Severity;
use callscript_notify::channels::{
    self, ChannelSettings, EmailSettings, Routing, SmsSettings, SmtpSettings, SmtpTls, Target,
};
use callscript_notify::{enqueue_event, Event};
use callscript_testkit::smtp::{SinkTls, SmtpSink};
use callscript_testkit::vendors::twilio::FakeTwilio;
use callscript_testkit::{create_org, TestDatabase};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use common::{flag, key, lane, rows, settle, PUBLIC_URL};

const SMTP_USER: &str = "alerts";
const SMTP_PASSWORD: &str = "smtp-password-7c1e";
const MAIL_TO: [&str; 2] = ["qa@acme.test", "lead@acme.test"];
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
const AUTH_TOKEN: &str = "twilio-auth-token-3f9a";
const SMS_FROM: &str = "+14155550199";
const SMS_TO: [&str; 2] = ["+14155550100", "+14155550101"];

/// An email channel's settings for `sink`: trusting its CA, logging in when `login`.
fn email_settings(sink: &SmtpSink, tls: SmtpTls, login: bool) -> EmailSettings {
    EmailSettings {
        smtp: SmtpSettings {
            host: sink.host().into(),
            port: sink.port(),
            tls,
            username: login.then(|| SMTP_USER.into()),
            root_ca_pem: Some(sink.root_ca_pem().into()),
        },
        from: "Callscript <alerts@acme.test>".into(),
        to: MAIL_TO.map(String::from).to_vec(),
    }
}

fn sms_settings(twilio: &FakeTwilio) -> SmsSettings {
    SmsSettings {
        api_base_url: twilio.base_url(),
        account_sid: ACCOUNT_SID.into(),
        from: SMS_FROM.into(),
        to: SMS_TO.map(String::from).to_vec(),
    }
}

async fn add(client: &impl GenericClient, org: Uuid, name: &str, target: Target) {
    channels::save(client, &key(), org, name, &Routing::default(), &target)
        .await
        .unwrap();
}

async fn add_email(
    client: &impl GenericClient,
    org: Uuid,
    name: &str,
    settings: EmailSettings,
    password: Option<&str>,
) {
    let password = password.map(Secret::new);
    add(client, org, name, Target::Email { settings, password }).await;
}

async fn add_sms(
    client: &impl GenericClient,
    org: Uuid,
    name: &str,
    settings: SmsSettings,
    token: &str,
) {
    let auth_token = Secret::new(token);
    add(
        client,
        org,
        name,
        Target::Sms {
            settings,
            auth_token,
        },
    )
    .await;
}

fn flag_link(call: Uuid, event: &Event) -> String {
    let Event::Flag { flag_id, .. } = event else {
        unreachable!()
    };
    format!("{PUBLIC_URL}/calls/{call}#flag-{}", flag_id.unwrap())
}

#[tokio::test]
async fn a_critical_flag_is_one_email_and_one_text_per_recipient() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let sink = SmtpSink::start(SinkTls::StartTls, Some((SMTP_USER, SMTP_PASSWORD))).await;
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let mail_settings = email_settings(&sink, SmtpTls::StartTls, true);
    add_email(
        &**client,
        org,
        "qa-mail",
        mail_settings.clone(),
        Some(SMTP_PASSWORD),
    )
    .await;
    add_sms(&**client, org, "qa-sms", sms_settings(&twilio), AUTH_TOKEN).await;

    let call = Uuid::new_v4();
    let event = flag(call, Severity::Critical);
    assert_eq!(enqueue_event(&**client, org, &event).await.unwrap(), 2);
    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.retrying), (2, 0), "{report:?}");
    let link = flag_link(call, &event);

    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "one mail to all recipients");
    let mail = &mails[0];
    assert!(mail.over_tls, "STARTTLS before the login and the mail");
    assert_eq!(mail.login.as_deref(), Some(SMTP_USER));
    assert_eq!(mail.from, "alerts@acme.test");
    assert_eq!(mail.recipients, MAIL_TO);
    assert_eq!(mail.subject(), "🚨 Critical compliance flag: card-number");
    let text = mail.text();
    for expected in [
        "Rule: card-number",
        "Severity: Critical",
        "At: 0:42",
        "Speaker: customer",
        "> sure it's 4242",
        &format!("Open the call: {link}"),
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
    let html = mail.html();
    assert!(html.contains("sure it&#39;s 4242"), "{html}");
    assert!(
        html.contains(&format!("<a href=\"{link}\">Open the call</a>")),
        "{html}"
    );
    assert_eq!(
        mail.header("X-Callscript-Delivery"),
        Some(event.dedup_key())
    );
    let message_id = mail.header("Message-ID").unwrap();
    assert!(message_id.ends_with("@acme.test>"), "{message_id}");

    let texts = twilio.messages();
    let mut recipients: Vec<&str> = texts.iter().map(|sms| sms.to.as_str()).collect();
    recipients.sort();
    assert_eq!(recipients, SMS_TO, "one text per recipient");
    for sms in &texts {
        assert_eq!(sms.from, SMS_FROM);
        assert_eq!(
            sms.body,
            format!("Critical compliance flag card-number at 0:42: sure it's 4242\n{link}")
        );
        let token = sms.idempotency_token.as_deref().unwrap();
        assert!(token.starts_with(&event.dedup_key()), "{token}");
    }
    assert_ne!(texts[0].idempotency_token, texts[1].idempotency_token);

    // Listed with their settings; the password and the token are sealed, nowhere in the clear.
    let listed = channels::list(&**client, org).await.unwrap();
    assert_eq!(
        listed[0].settings,
        Some(ChannelSettings::Email(mail_settings))
    );
    assert_eq!(
        listed[1].settings,
        Some(ChannelSettings::Sms(sms_settings(&twilio)))
    );
    let stored: Vec<String> = client
        .query(
            "SELECT settings::text FROM core.notification_channels
             UNION ALL
             SELECT encode(ciphertext, 'escape') FROM core.organization_credentials",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored.len(), 4);
    for text in stored.iter().chain([&format!("{listed:?}")]) {
        assert!(
            !text.contains(SMTP_PASSWORD) && !text.contains(AUTH_TOKEN),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_mail_deferred_twice_is_sent_once() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let sink = SmtpSink::start(SinkTls::StartTls, Some((SMTP_USER, SMTP_PASSWORD))).await;
    let settings = email_settings(&sink, SmtpTls::StartTls, true);
    add_email(&**client, org, "qa-mail", settings, Some(SMTP_PASSWORD)).await;
    sink.defer_next(2);
    let event = flag(Uuid::new_v4(), Severity::Critical);
    enqueue_event(&**client, org, &event).await.unwrap();

    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.retrying), (1, 2), "{report:?}");
    assert_eq!(sink.messages().len(), 1);
    let (_, state, attempts, last_error) = rows(&db).await.remove(0);
    assert_eq!((state.as_str(), attempts), ("delivered", 3));
    let last_error = last_error.unwrap();
    assert!(
        last_error.contains("451") && !last_error.contains("permanent"),
        "{last_error}"
    );
}

#[tokio::test]
async fn a_twilio_failure_resends_only_to_the_recipient_that_missed_it() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    add_sms(&**client, org, "qa-sms", sms_settings(&twilio), AUTH_TOKEN).await;
    // Both recipients are sent to at once: whichever comes first is refused.
    twilio.fail_next(&[500]);
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();

    let report = settle(&lane(&db), &db, Duration::from_secs(10)).await;
    assert_eq!((report.delivered, report.retrying), (1, 1), "{report:?}");
    let mut recipients: Vec<String> = twilio.messages().into_iter().map(|sms| sms.to).collect();
    recipients.sort();
    assert_eq!(recipients, SMS_TO, "each recipient got exactly one text");
    assert_eq!(
        (twilio.requests(), twilio.repeats()),
        (4, 1),
        "the retry went to both; the one already sent was answered from its token"
    );
    let last_error = rows(&db).await.remove(0).3.unwrap();
    assert!(
        last_error.contains("1 of 2") && last_error.contains("500"),
        "{last_error}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_retried_and_never_shown() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let sink = SmtpSink::start(SinkTls::StartTls, Some((SMTP_USER, SMTP_PASSWORD))).await;
    let twilio = FakeTwilio::start(ACCOUNT_SID, AUTH_TOKEN).await;
    let wrong_password = "not-the-password-5e2";
    let wrong_token = "wrong-token-8d4b";
    let settings = email_settings(&sink, SmtpTls::StartTls, true);
    add_email(&**client, org, "qa-mail", settings, Some(wrong_password)).await;
    add_sms(&**client, org, "qa-sms", sms_settings(&twilio), wrong_token).await;
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();

    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!((report.delivered, report.retrying), (0, 2), "{report:?}");
    assert!(sink.messages().is_empty() && twilio.messages().is_empty());
    let rows = rows(&db).await;
    let errors: Vec<&str> = rows.iter().map(|r| r.3.as_deref().unwrap()).collect();
    assert!(
        errors[0].contains("535") && errors[0].contains("permanent"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].contains("401") && errors[1].contains("Authenticate"),
        "{}",
        errors[1]
    );
    for (row, error) in rows.iter().zip(&errors) {
        assert_eq!(row.1, "pending", "{error}");
        for secret in [
            wrong_password,
            wrong_token,
            SMTP_PASSWORD,
            AUTH_TOKEN,
            "Basic ",
        ] {
            assert!(!error.contains(secret), "{error}");
        }
    }
}

#[tokio::test]
async fn each_tls_mode_sends_only_as_safely_as_it_says() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let plain = SmtpSink::start(SinkTls::None, None).await;
    let smtps = SmtpSink::start(SinkTls::Tls, None).await;
    // STARTTLS is required: a server that does not offer it gets nothing.
    let no_starttls = email_settings(&plain, SmtpTls::StartTls, false);
    add_email(&**client, org, "a-no-starttls", no_starttls, None).await;
    // Without the channel's root CA the sink's certificate is not trusted.
    let mut untrusted = email_settings(&smtps, SmtpTls::Tls, false);
    untrusted.smtp.root_ca_pem = None;
    add_email(&**client, org, "b-untrusted", untrusted, None).await;
    add_email(
        &**client,
        org,
        "c-smtps",
        email_settings(&smtps, SmtpTls::Tls, false),
        None,
    )
    .await;
    // No TLS at all is for a loopback server only (channels.rs refuses it elsewhere).
    let loopback = email_settings(&plain, SmtpTls::None, false);
    add_email(&**client, org, "d-loopback", loopback, None).await;
    enqueue_event(&**client, org, &flag(Uuid::new_v4(), Severity::Critical))
        .await
        .unwrap();

    let report = lane(&db).run_batch().await.unwrap().unwrap();
    assert_eq!((report.delivered, report.retrying), (2, 2), "{report:?}");
    let rows = rows(&db).await;
    let error = |i: usize| rows[i].3.clone().unwrap_or_default();
    assert!(error(0).contains("STARTTLS"), "{}", error(0));
    assert!(error(1).contains("certificate"), "{}", error(1));
    assert_eq!(
        (rows[2].1.as_str(), rows[3].1.as_str()),
        ("delivered", "delivered")
    );
    let (over_tls, in_clear) = (smtps.messages(), plain.messages());
    assert_eq!((over_tls.len(), in_clear.len()), (1, 1));
    assert!(over_tls[0].over_tls && !in_clear[0].over_tls);
    assert_eq!(over_tls[0].login, None);
}
