//! One notification to one channel, once: [`send`] hands it to the channel kind's module, which
//! formats the channel-neutral [`render::Message`](crate::render::Message) its own way.
//!
//! - [`webhook`]: JSON signed with HMAC-SHA256, and the receiver's verification recipe.
//! - [`slack`]: Block Kit, with a plain-text fallback.
//! - [`email`]: a text and HTML mail over SMTP (STARTTLS required by default).
//! - [`sms`]: a short text per recipient through Twilio's Messages API.
//!
//! Every attempt of one notification carries the same delivery id, its dedup key
//! ([`DELIVERY_HEADER`] on webhooks, Slack posts and mail; the idempotency token of each SMS),
//! so a receiver can drop repeats. Whatever fails is retried by the lane with backoff, honouring
//! a `Retry-After` in seconds. Error texts never hold a secret: no URL (a Slack URL is one), no
//! token or password.

pub mod email;
pub mod slack;
pub mod sms;
pub mod webhook;

use std::time::Duration;

use callscript_ingest::http::{body_excerpt, describe_error};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::channels::Target;
use crate::Event;

pub use slack::slack_message;
pub use webhook::{
    sign, verify_signature, webhook_body, SIGNATURE_HEADER, SIGNATURE_TOLERANCE, TIMESTAMP_HEADER,
};

/// The header naming the delivery (the notification's dedup key), the same on every attempt.
pub const DELIVERY_HEADER: &str = "X-Callscript-Delivery";

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

/// Sends the notification to the channel once. `http` carries the lane's request timeout;
/// SMTP has its own ([`email::SMTP_TIMEOUT`]).
pub async fn send(
    http: &reqwest::Client,
    target: &Target,
    notification: &Notification<'_>,
) -> Outcome {
    match target {
        Target::Webhook {
            url,
            signing_secret,
        } => http_outcome(webhook::request(http, url, signing_secret, notification).send()).await,
        Target::Slack { webhook_url } => {
            http_outcome(slack::request(http, webhook_url, notification).send()).await
        }
        Target::Email { settings, password } => {
            email::send(settings, password.as_ref(), notification).await
        }
        Target::Sms {
            settings,
            auth_token,
        } => sms::send(http, settings, auth_token, notification).await,
    }
}

/// The outcome of an HTTP request: any 2xx answer delivered it; any other, or none, is retried
/// (with the receiver's `Retry-After` in seconds, when it gave one). The error holds the status
/// and the start of the answer, or the causes of a failed request, never the URL.
async fn http_outcome(
    request: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> Outcome {
    let response = match request.await {
        Ok(response) => response,
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

/// What a message's link is called where it is shown as a button or a line of its own.
fn link_label(event: &Event) -> &'static str {
    if event.call_id().is_some() {
        "Open the call"
    } else {
        "Open the review UI"
    }
}
