//! **SMS** is one text per recipient through Twilio's Messages API (or one of its shape):
//! `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`, form fields `To`, `From` and
//! `Body`, HTTP basic auth with the account SID and the auth token; Twilio answers 201 with the
//! message resource. The body is the [`render::Message`]'s one-sentence summary and its link.
//!
//! The recipients are sent to at once, so one attempt takes one request's time however many
//! there are. When some fail the whole attempt is retried, to every recipient, each request
//! with the same `I-Twilio-Idempotency-Token` as before (the delivery id and the recipient), so
//! that the API can answer a repeat with the message it already sent instead of sending it
//! again. Twilio documents that header on the webhooks it sends; that its Messages API drops a
//! repeat carrying it is what the loopback fake does, not something Twilio documents, so with
//! Twilio itself a recipient that got the text may get it again (at least once, as everywhere).

use callscript_core::credentials::Secret;
use futures_util::future::join_all;

use super::{http_outcome, Notification, Outcome};
use crate::channels::SmsSettings;
use crate::render::{self, cut, Message};

/// The header with which a repeated request names the message it repeats.
pub const IDEMPOTENCY_HEADER: &str = "I-Twilio-Idempotency-Token";

/// The longest text sent: at most three GSM-7 segments (153 characters each when joined), which
/// a phone shows as one message, so what one alert costs stays bounded.
const SMS_CHARS: usize = 320;

/// Sends the notification's text to every recipient once.
pub(super) async fn send(
    http: &reqwest::Client,
    settings: &SmsSettings,
    auth_token: &Secret,
    notification: &Notification<'_>,
) -> Outcome {
    let body = sms_body(&render::message(
        notification.event,
        notification.link.clone(),
    ));
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        settings.api_base_url.trim_end_matches('/'),
        settings.account_sid
    );
    let sends = settings.to.iter().map(|to| {
        let request = http
            .post(&url)
            .basic_auth(&settings.account_sid, Some(auth_token.expose()))
            .header(
                IDEMPOTENCY_HEADER,
                idempotency_token(notification.dedup_key, to),
            )
            .form(&[
                ("To", to.as_str()),
                ("From", settings.from.as_str()),
                ("Body", body.as_str()),
            ]);
        http_outcome(request.send())
    });
    let outcomes = join_all(sends).await;
    let mut failures = Vec::new();
    let mut retry_after = None;
    for (to, outcome) in settings.to.iter().zip(outcomes) {
        if let Outcome::Retry {
            error,
            retry_after: wait,
        } = outcome
        {
            failures.push(format!("{to}: {error}"));
            retry_after = retry_after.max(wait);
        }
    }
    if failures.is_empty() {
        return Outcome::Delivered;
    }
    Outcome::Retry {
        error: format!(
            "SMS to {} of {} recipients failed; {}",
            failures.len(),
            settings.to.len(),
            failures.join("; ")
        ),
        retry_after,
    }
}

/// The text: the summary, then the link (or the call it is about) on a line of its own. The
/// summary is what gets cut to fit [`SMS_CHARS`], so the link stays whole and works.
fn sms_body(message: &Message) -> String {
    let Some(link) = message.link.as_ref().or(message.reference.as_ref()) else {
        return cut(&message.summary, SMS_CHARS);
    };
    // Room for the summary, the line break and the link; a link too long to leave any is
    // dropped rather than sent broken.
    match SMS_CHARS.checked_sub(link.chars().count() + 1) {
        Some(room) if room > 0 => format!("{}\n{link}", cut(&message.summary, room)),
        _ => cut(&message.summary, SMS_CHARS),
    }
}

/// The same for every attempt to one recipient, different between recipients.
fn idempotency_token(dedup_key: &str, recipient: &str) -> String {
    format!("{dedup_key}/{recipient}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(summary: &str, link: Option<&str>) -> Message {
        Message {
            title: "title".into(),
            summary: summary.into(),
            fields: Vec::new(),
            quote: None,
            lines: Vec::new(),
            link: link.map(Into::into),
            reference: None,
        }
    }

    #[test]
    fn the_summary_is_cut_so_the_link_stays_whole() {
        let link = "https://qa.example.com/calls/0#flag-1";
        assert_eq!(
            sms_body(&message("Critical flag at 0:42: 4242", Some(link))),
            format!("Critical flag at 0:42: 4242\n{link}")
        );

        let long = "word ".repeat(100);
        let body = sms_body(&message(&long, Some(link)));
        assert_eq!(body.chars().count(), SMS_CHARS);
        assert!(body.ends_with(&format!("…\n{link}")), "{body}");

        let body = sms_body(&message(&"é".repeat(400), None));
        assert_eq!(body.chars().count(), SMS_CHARS);
        assert!(body.ends_with('…'));

        let huge_link = format!("https://qa.example.com/{}", "x".repeat(SMS_CHARS));
        assert_eq!(sms_body(&message("short", Some(&huge_link))), "short");

        let mut unlinked = message("Hot lead +15550100", None);
        unlinked.reference = Some("call 42".into());
        assert_eq!(sms_body(&unlinked), "Hot lead +15550100\ncall 42");
    }

    #[test]
    fn each_recipient_has_its_own_token_for_every_attempt() {
        let key = "flag:c:card-number:42000";
        assert_eq!(
            idempotency_token(key, "+14155550100"),
            idempotency_token(key, "+14155550100")
        );
        assert_ne!(
            idempotency_token(key, "+14155550100"),
            idempotency_token(key, "+14155550101")
        );
    }
}
