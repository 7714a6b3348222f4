//! **Webhooks** get `application/json`:
//! `{"delivery": KEY, "org_id": …, "created_at": RFC 3339, "link": URL or null, "event": {"kind":
//! "flag" | "hot_lead" | …, …}}` with three headers:
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
//! `Retry-After` in seconds).

use std::time::Duration;

use callscript_core::credentials::Secret;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{Notification, DELIVERY_HEADER};

pub const TIMESTAMP_HEADER: &str = "X-Callscript-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Callscript-Signature";

/// How far a signed timestamp may be from the receiver's clock.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// The signed POST of the notification to `url`.
pub(super) fn request(
    http: &reqwest::Client,
    url: &str,
    signing_secret: &Secret,
    notification: &Notification<'_>,
) -> reqwest::RequestBuilder {
    let body = webhook_body(notification);
    let timestamp = Utc::now().timestamp();
    http.post(url)
        .header(TIMESTAMP_HEADER, timestamp)
        .header(
            SIGNATURE_HEADER,
            sign(signing_secret.expose(), timestamp, &body),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, notification.dedup_key)
        .body(body)
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

#[cfg(test)]
mod tests {
    use super::*;

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
