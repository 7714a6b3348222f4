//! **Slack** gets a Block Kit message (a header naming the rule and severity, or the hot lead's
//! number; fields; the evidence quoted; a link to the call page) and a plain `text` fallback for
//! phone notifications, posted to the channel's incoming-webhook URL, which is the secret.

use callscript_core::credentials::Secret;
use serde_json::{json, Value};

use super::{link_label, Notification, DELIVERY_HEADER};
use crate::render::{self, cut};

/// Slack cuts a header block at 150 characters and rejects longer ones.
const SLACK_HEADER_CHARS: usize = 150;
/// Longer quotes and digests are cut in Slack messages (a section holds at most 3000).
const SLACK_TEXT_CHARS: usize = 2000;

/// The POST of the notification's message to the incoming webhook.
pub(super) fn request(
    http: &reqwest::Client,
    webhook_url: &Secret,
    notification: &Notification<'_>,
) -> reqwest::RequestBuilder {
    http.post(webhook_url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, notification.dedup_key)
        .body(serde_json::to_vec(&slack_message(notification)).expect("JSON values serialize"))
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
        (Some(link), _) => format!("<{link}|{}>", link_label(notification.event)),
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
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::test_flag;

    #[test]
    fn slack_gets_readable_inert_blocks() {
        let event = test_flag("card-number", "it's 4242 <@here> & done", Some(3_723_000));
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
}
