//! An event as a channel-neutral message: a title, labelled fields, an optional quote, the lines
//! of a digest and a link. Slack, email and SMS each format the same [`Message`], so what a
//! notification says is decided once.

use callscript_core::model::Severity;
use chrono::{DateTime, Utc};

use crate::{Event, HoldReason};

/// The most events a digest lists one by one; the rest are counted.
pub const DIGEST_LINES: usize = 20;

/// What a notification says, before any channel's formatting. All text is plain: each channel
/// escapes it for its own markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One line naming what happened, with a leading emoji ("🚨 Critical compliance flag:
    /// card-number").
    pub title: String,
    /// The whole message in one short sentence, for SMS and notification previews.
    pub summary: String,
    pub fields: Vec<(&'static str, String)>,
    /// Words quoted from the call (a flag's evidence) or a summary.
    pub quote: Option<String>,
    /// A digest's events, one line each.
    pub lines: Vec<String>,
    /// The call page (at the flag), or the review UI's health page for queue alerts.
    pub link: Option<String>,
    /// Names the call when there is no link to it.
    pub reference: Option<String>,
}

/// The page an event links to under `public_url`: the call page (at the flag), or the health
/// page for queue alerts and digests.
pub fn link(public_url: Option<&str>, event: &Event) -> Option<String> {
    let base = public_url?.trim_end_matches('/');
    Some(match event {
        Event::Flag {
            call_id,
            flag_id: Some(flag),
            ..
        } => format!("{base}/calls/{call_id}#flag-{flag}"),
        Event::Flag { call_id, .. } | Event::HotLead { call_id, .. } => {
            format!("{base}/calls/{call_id}")
        }
        Event::Queue { .. } | Event::Digest { .. } => format!("{base}/"),
    })
}

/// The message for `event`, linking to `link`.
pub fn message(event: &Event, link: Option<String>) -> Message {
    let reference = match (&link, event.call_id()) {
        (None, Some(call)) => Some(format!("call {call}")),
        _ => None,
    };
    let mut message = Message {
        title: String::new(),
        summary: String::new(),
        fields: Vec::new(),
        quote: None,
        lines: Vec::new(),
        link,
        reference,
    };
    match event {
        Event::Flag {
            rule_id,
            category,
            severity,
            evidence,
            start_ms,
            speaker,
            ..
        } => {
            let icon = if *severity == Severity::Critical {
                "🚨"
            } else {
                "⚠️"
            };
            let severity = capitalized(severity.as_str());
            let at = start_ms.map_or_else(|| "the whole call".to_owned(), clock);
            message.title = format!("{icon} {severity} {category} flag: {rule_id}");
            message.summary = format!("{severity} {category} flag {rule_id} at {at}: {evidence}");
            message.fields = vec![
                ("Rule", rule_id.clone()),
                ("Severity", severity),
                ("At", at),
                (
                    "Speaker",
                    speaker.clone().unwrap_or_else(|| "not known".into()),
                ),
            ];
            message.quote = Some(evidence.clone());
        }
        Event::HotLead {
            phone,
            score,
            follow_up_due,
            summary,
            ..
        } => {
            let follow_up = follow_up_due.map_or_else(
                || "none planned".to_owned(),
                |due| due.format("%a %-d %b %Y, %H:%M (UTC%:z)").to_string(),
            );
            message.title = format!("🔥 Hot lead: {phone}");
            message.summary = format!("Hot lead {phone} ({score}/100), follow up: {follow_up}");
            message.fields = vec![
                ("Phone", phone.clone()),
                ("Score", format!("{score}/100")),
                ("Follow up", follow_up),
            ];
            message.quote = (!summary.is_empty()).then(|| summary.clone());
        }
        Event::Queue {
            condition,
            started_at,
            resolved_at,
            detail,
            ..
        } => {
            let since = utc_minute(*started_at);
            match resolved_at {
                None => {
                    message.title = format!("🛑 {}", condition.title());
                    message.summary = format!("{}: {detail}", condition.title());
                    message.fields = vec![("Since", since)];
                }
                Some(resolved_at) => {
                    let minutes = (*resolved_at - *started_at).num_minutes();
                    message.title = format!("✅ Resolved: {}", condition.title());
                    message.summary = format!(
                        "Resolved after {minutes} min: {}: {detail}",
                        condition.title()
                    );
                    message.fields = vec![("Since", since), ("Resolved", utc_minute(*resolved_at))];
                }
            }
            message.quote = Some(detail.clone());
        }
        Event::Digest { reason, events } => {
            let why = match reason {
                HoldReason::QuietHours => "held during quiet hours",
                HoldReason::RateLimit => "held by the rate limit",
            };
            let count = events.len();
            let noun = if count == 1 { "alert" } else { "alerts" };
            message.title = format!("🗂 {count} {noun} {why}");
            message.summary = format!("{count} {noun} {why}");
            message.lines = events
                .iter()
                .take(DIGEST_LINES)
                .map(|event| {
                    let summary = self::message(event, None).summary;
                    match event.call_id() {
                        Some(call) => format!("{summary} (call {call})"),
                        None => summary,
                    }
                })
                .collect();
            if count > DIGEST_LINES {
                message
                    .lines
                    .push(format!("… and {} more", count - DIGEST_LINES));
            }
        }
    }
    message
}

/// `ms` as the player shows it: `m:ss`, or `h:mm:ss` past an hour.
pub fn clock(ms: i32) -> String {
    let seconds = ms.max(0) / 1000;
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// `text` cut to at most `max_chars` characters, an ellipsis marking the cut.
pub fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

fn utc_minute(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::{test_flag, QueueCondition};

    #[test]
    fn a_flag_says_rule_severity_time_and_words() {
        let event = test_flag("card-number", "it's 4242", Some(3_723_000));
        let message = message(&event, link(Some("https://qa.example.com/"), &event));
        assert_eq!(message.title, "🚨 Critical compliance flag: card-number");
        assert_eq!(
            message.summary,
            "Critical compliance flag card-number at 1:02:03: it's 4242"
        );
        assert_eq!(message.fields[2], ("At", "1:02:03".to_owned()));
        assert_eq!(message.quote.as_deref(), Some("it's 4242"));
        assert_eq!(
            message.link.as_deref(),
            Some(&*format!(
                "https://qa.example.com/calls/{}#flag-{}",
                Uuid::nil(),
                Uuid::max()
            ))
        );
        assert_eq!(message.reference, None);
        let unlinked = super::message(&event, None);
        assert_eq!(unlinked.reference, Some(format!("call {}", Uuid::nil())));
        assert_eq!(clock(42_999), "0:42");
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abcd", 4), "abcd");
    }

    #[test]
    fn queue_alerts_and_digests_read_as_sentences() {
        let started_at = "2026-12-05T09:00:00Z".parse().unwrap();
        let mut alert = Event::Queue {
            alert_id: Uuid::nil(),
            condition: QueueCondition::Backlog,
            started_at,
            resolved_at: None,
            detail: "the oldest waiting call has waited 23 min; alert from 15 min".into(),
        };
        let started = message(&alert, link(Some("https://qa.example.com"), &alert));
        assert_eq!(started.title, "🛑 Transcription backlog");
        assert_eq!(started.link.as_deref(), Some("https://qa.example.com/"));
        if let Event::Queue { resolved_at, .. } = &mut alert {
            *resolved_at = Some("2026-12-05T09:42:00Z".parse().unwrap());
        }
        let resolved = message(&alert, None);
        assert_eq!(resolved.title, "✅ Resolved: Transcription backlog");
        assert!(resolved.summary.starts_with("Resolved after 42 min"));

        let events: Vec<Event> = (0..25)
            .map(|i| test_flag("card-number", "it's 4242", Some(i * 1000)))
            .collect();
        let digest = Event::Digest {
            reason: HoldReason::RateLimit,
            events,
        };
        let message = message(&digest, None);
        assert_eq!(message.title, "🗂 25 alerts held by the rate limit");
        assert_eq!(message.lines.len(), DIGEST_LINES + 1);
        assert_eq!(
            message.lines[1],
            format!(
                "Critical compliance flag card-number at 0:01: it's 4242 (call {})",
                Uuid::nil()
            )
        );
        assert_eq!(message.lines[DIGEST_LINES], "… and 5 more");
    }
}
