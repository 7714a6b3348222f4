//! One notification to one channel: the message each kind of channel gets, and the POST.
//!
//! **Slack** gets a Block Kit message (a header naming the rule and severity, or the hot lead's
//! number; fields; the evidence quoted; a link to the call page) and a plain `text` fallback for
//! phone notifications.
//!
//! **Webhooks** get `application/json`:
//! `{"delivery": KEY, "org_id": …, "created_at": RFC 3339, "link": URL or null, "event": {"kind":
//! "flag" | "hot_lead", …}}` with three headers:
//!
//! - `X-Callscript-Timestamp`: Unix seconds when this attempt was signed;
//! - `X-Callscript-Signature`: `v1=` and the lowercase hex HMAC-SHA256, keyed with the channel's
//!   signing secret, of the timestamp, a `.`, and the body bytes exactly as received;
//! - `X-Callscript-Delivery`: the notification's dedup key, the same on every attempt.
//!
//! A receiver verifies a request like this ([`verify_signature`] is the same check in Rust):
//!
//! 1. Read the raw body before any JSON parsing (re-serialized JSON does not verify).
//! 2. Reject a timestamp more than 5 minutes from its clock (a replayed request).
//! 3. Compute `hex(HMAC-SHA256(secret, timestamp + "." + body))` and compare it with the
//!    signature after `v1=` in constant time (Python: `hmac.compare_digest`); reject otherwise.
//!    From a shell: `printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET"`.
//! 4. Answer 2xx quickly, and drop a delivery id already seen: delivery is at least once, so a
//!    message whose success answer was lost comes again with the same id.
//!
//! Any other answer than 2xx, or none within the timeout, is retried with backoff (honouring a
//! `Retry-After` in seconds). Error texts never hold a URL: a Slack URL is a secret.

use std::time::Duration;

use callscript_ingest::http::{body_excerpt, describe_error};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::channels::Target;
use crate::render::{self, cut};
use crate::Event;

pub const TIMESTAMP_HEADER: &str = "X-Callscript-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Callscript-Signature";
pub const DELIVERY_HEADER: &str = "X-Callscript-Delivery";

/// How far a signed timestamp may be from the receiver's clock.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Slack cuts a header block at 150 characters and rejects longer ones.
const SLACK_HEADER_CHARS: usize = 150;
/// Longer quotes and digests are cut in Slack messages (a section holds at most 3000).
const SLACK_TEXT_CHARS: usize = 2000;

type HmacSha256 = Hmac<Sha256>;

/// A notification as it is delivered.
#[derive(Debug, Clone)]
pub struct Notification<'a> {
    pub org_id: Uuid,
    /// Also the delivery id a receiver drops repeats by.
    pub dedup_key: &'a str,
    pub created_at: DateTime<Utc>,
    pub event: &'a Event,
    /// The call page, when the public URL is configured.
    pub link: Option<String>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again: `retry_after` is the receiver's own `Retry-After`, when it gave one.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// POSTs the notification to the channel once.
pub async fn send(
    http: &reqwest::Client,
    target: &Target,
    notification: &Notification<'_>,
) -> Outcome {
    let request = match target {
        Target::Webhook {
            url,
            signing_secret,
        } => {
            let body = webhook_body(notification);
            let timestamp = Utc::now().timestamp();
            http.post(url)
                .header(TIMESTAMP_HEADER, timestamp)
                .header(
                    SIGNATURE_HEADER,
                    sign(signing_secret.expose(), timestamp, &body),
                )
                .body(body)
        }
        Target::Slack { webhook_url } => http
            .post(webhook_url.expose())
            .body(serde_json::to_vec(&slack_message(notification)).expect("JSON values serialize")),
    };
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, notification.dedup_key)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        // Without the URL: a Slack webhook URL is the credential itself.
        Err(e) => {
            return Outcome::Retry {
                error: describe_error(&e.without_url()),
                retry_after: None,
            }
        }
    };
    let status = response.status();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok()?.trim().parse().ok())
        .map(Duration::from_secs);
    let text = response.text().await.unwrap_or_default();
    let excerpt = body_excerpt(&text);
    Outcome::Retry {
        error: if excerpt.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {excerpt}")
        },
        retry_after,
    }
}

/// The webhook body (see the module docs).
pub fn webhook_body(notification: &Notification<'_>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "delivery": notification.dedup_key,
        "org_id": notification.org_id,
        "created_at": notification.created_at,
        "link": notification.link,
        "event": notification.event,
    }))
    .expect("JSON values serialize")
}

/// `v1=` and the hex HMAC-SHA256 of `timestamp.body` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = signing_mac(secret, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex::encode(digest))
}

/// The receiver's check of a webhook request: the signature header matches the timestamp
/// header and the raw body under `secret`, and the timestamp is within
/// [`SIGNATURE_TOLERANCE`] of `now`.
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> bool {
    let Ok(seconds) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now.timestamp().abs_diff(seconds) > SIGNATURE_TOLERANCE.as_secs() {
        return false;
    }
    let Some(Ok(expected)) = signature.trim().strip_prefix("v1=").map(hex::decode) else {
        return false;
    };
    // verify_slice compares in constant time.
    signing_mac(secret, timestamp.trim(), body)
        .verify_slice(&expected)
        .is_ok()
}

fn signing_mac(secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key size");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The Slack Block Kit message for a notification: the [`render::Message`] as a header,
/// fields, the quote, a digest's lines and a context line with the link.
pub fn slack_message(notification: &Notification<'_>) -> Value {
    let message = render::message(notification.event, notification.link.clone());
    let fields: Vec<Value> = message
        .fields
        .iter()
        .map(|(name, value)| {
            // Rule ids read best as code.
            let value = if *name == "Rule" {
                format!("`{}`", mrkdwn(value))
            } else {
                mrkdwn(value)
            };
            json!({"type": "mrkdwn", "text": format!("*{name}*\n{value}")})
        })
        .collect();
    let header = json!({
        "type": "plain_text", "text": cut(&message.title, SLACK_HEADER_CHARS), "emoji": true
    });
    let mut blocks = vec![json!({"type": "header", "text": header})];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    if let Some(quote) = &message.quote {
        let quote = quoted(&cut(quote, SLACK_TEXT_CHARS));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": quote}}));
    }
    if !message.lines.is_empty() {
        let lines: Vec<String> = message
            .lines
            .iter()
            .map(|line| format!("• {}", mrkdwn(line)))
            .collect();
        let text = cut(&lines.join("\n"), SLACK_TEXT_CHARS);
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    let context = match (&message.link, &message.reference) {
        (Some(link), _) if notification.event.call_id().is_some() => {
            format!("<{link}|Open the call>")
        }
        (Some(link), _) => format!("<{link}|Open the review UI>"),
        (None, Some(reference)) => format!("`{reference}`"),
        (None, None) => String::new(),
    };
    if !context.is_empty() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    }
    // Slack reads the fallback (notifications, screen readers) as mrkdwn too.
    json!({"text": mrkdwn(&message.summary), "blocks": blocks})
}

/// Text made inert in Slack mrkdwn: `<`, `>` and `&` would otherwise start links and mentions.
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text as a Slack block quote, every line of it.
fn quoted(text: &str) -> String {
    mrkdwn(text)
        .lines()
        .map(|line| format!("> {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use callscript_core::model::{Category, Severity};

    use super::*;

    fn flag() -> Event {
        Event::Flag {
            call_id: Uuid::nil(),
            flag_id: Some(Uuid::max()),
            rule_id: "card-number".into(),
            category: Category::Compliance,
            severity: Severity::Critical,
            evidence: "it's 4242 <@here> & done".into(),
            start_ms: Some(3_723_000),
            speaker: Some("customer".into()),
        }
    }

    #[test]
    fn slack_gets_readable_inert_blocks() {
        let event = flag();
        let notification = Notification {
            org_id: Uuid::nil(),
            dedup_key: "k",
            created_at: Utc::now(),
            event: &event,
            link: render::link(Some("https://qa.example.com/"), &event),
        };
        let message = slack_message(&notification);
        let text = message.to_string();
        assert_eq!(
            message["blocks"][0]["text"]["text"],
            "🚨 Critical compliance flag: card-number"
        );
        assert!(text.contains("1:02:03"), "{text}");
        assert!(
            text.contains("> it's 4242 &lt;@here&gt; &amp; done"),
            "{text}"
        );
        assert!(text.contains(&format!(
            "<https://qa.example.com/calls/{}#flag-{}|Open the call>",
            Uuid::nil(),
            Uuid::max()
        )));
    }

    #[test]
    fn signatures_bind_secret_timestamp_and_body() {
        let now = Utc::now();
        let ts = now.timestamp();
        let body = br#"{"a":1}"#;
        let signature = sign("s3cret", ts, body);
        assert!(signature.starts_with("v1=") && signature.len() == 3 + 64);
        let ts_text = ts.to_string();
        assert!(verify_signature("s3cret", &ts_text, &signature, body, now));
        assert!(!verify_signature(
            "s3cret",
            &ts_text,
            &signature,
            br#"{"a":2}"#,
            now
        ));
        assert!(!verify_signature("other", &ts_text, &signature, body, now));
        assert!(!verify_signature(
            "s3cret",
            &(ts + 1).to_string(),
            &signature,
            body,
            now
        ));
        let later = now + chrono::Duration::minutes(6);
        assert!(!verify_signature(
            "s3cret", &ts_text, &signature, body, later
        ));
        assert!(!verify_signature("s3cret", &ts_text, "v1=zz", body, now));
    }
}
