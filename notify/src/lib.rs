//! Notifications: alerts about calls (a compliance flag, a lead that turned hot) and about the
//! queue (a backlog, failures, no worker), sent to each organization's channels.
//!
//! - [`outbox`]: events become `core.notifications` rows, one per routed channel, inside the
//!   transaction of the fact that causes them (a rolled-back fact leaves no row); the delivery
//!   lane claims, settles and dead-letters them.
//! - [`channels`]: an organization's channels (`core.notification_channels`: which events and
//!   severities go where) and their sealed secrets.
//! - [`render`]: an event as a channel-neutral [`render::Message`] (title, fields, quote,
//!   link), which every channel formats its own way.
//! - [`deliver`]: one notification to one channel over HTTP: the Slack blocks, the webhook
//!   body and its HMAC-SHA256 signature (with the receiver's verification recipe).
//! - [`lane`]: `callscript notify`, the loop that claims due rows and delivers them with
//!   retries, backoff and a lease.
//!
//! Delivery is at least once: a sender that crashes after the receiver took a message but before
//! it was marked delivered sends it again when its lease runs out. Every send of one
//! notification carries the same delivery id (its dedup key), so a receiver drops repeats; the
//! outbox itself never holds one event twice for a channel.

pub mod alerts;
pub mod channels;
pub mod deliver;
pub mod lane;
pub mod outbox;
pub mod policy;
pub mod render;

use std::fmt;
use std::str::FromStr;

use callscript_core::model::{Category, Severity, UnknownLabel};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

pub use lane::{NotifyConfig, NotifyLane, NotifyReport};
pub use outbox::{enqueue_compliance_flags, enqueue_event};

/// What happened, as routed (`core.notification_channels.event_kinds`) and stored
/// (`core.notifications.event_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Flag,
    HotLead,
    /// A queue health condition started or ended.
    Queue,
    /// Messages held back (quiet hours, a rate limit) sent as one. Never routed: a digest is
    /// made for the channel that held its messages.
    Digest,
}

impl EventKind {
    /// The kinds a channel can be routed.
    pub const ROUTABLE: &'static [EventKind] =
        &[EventKind::Flag, EventKind::HotLead, EventKind::Queue];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Flag => "flag",
            EventKind::HotLead => "hot_lead",
            EventKind::Queue => "queue",
            EventKind::Digest => "digest",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = UnknownLabel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ROUTABLE
            .iter()
            .copied()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownLabel {
                kind: "EventKind",
                value: s.to_owned(),
                expected: &["flag", "hot_lead", "queue"],
            })
    }
}

/// An event worth telling people about, stored as the row's `payload` (JSON with a `kind` tag)
/// and rendered when it is delivered, so a message always uses the current public URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A QA flag the judge raised (the judge sends compliance flags only).
    Flag {
        call_id: Uuid,
        /// The stored flag, for the link to it on the call page (`#flag-<id>`); `None` links to
        /// the call.
        flag_id: Option<Uuid>,
        rule_id: String,
        #[serde(with = "label")]
        category: Category,
        #[serde(with = "label")]
        severity: Severity,
        /// The words as stored (card numbers already cut to their last four digits).
        evidence: String,
        /// Where in the call it was said; `None` for findings about the whole call.
        start_ms: Option<i32>,
        /// Who said it: the role when known (agent, customer), else the speaker label.
        speaker: Option<String>,
    },
    /// A lead that turned hot on this call.
    HotLead {
        lead_id: Uuid,
        call_id: Uuid,
        phone: String,
        /// Interest, 0-100.
        score: u8,
        /// The follow-up the call planned, in the organization's time zone (its offset kept, so
        /// the message shows the local time).
        follow_up_due: Option<DateTime<FixedOffset>>,
        summary: String,
    },
    /// A queue health condition of the organization started, or ended (`resolved_at`).
    Queue {
        /// The condition's episode: its start and its end share it.
        alert_id: Uuid,
        condition: QueueCondition,
        started_at: DateTime<Utc>,
        resolved_at: Option<DateTime<Utc>>,
        /// What was measured, in words ("the oldest waiting call has waited 23 min; alert from
        /// 15 min").
        detail: String,
    },
    /// Events a channel held back, sent together.
    Digest {
        reason: HoldReason,
        events: Vec<Event>,
    },
}

/// A queue health condition ([`crate::alerts`] checks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueCondition {
    /// The oldest call waiting for transcription waited too long.
    Backlog,
    /// Too many calls failed in the window.
    FailureRate,
    /// Calls wait and no transcription worker has reported in.
    NoWorker,
    /// Too many calls reached the dead letter in the window.
    DeadLetters,
}

impl QueueCondition {
    pub const ALL: &'static [QueueCondition] = &[
        QueueCondition::Backlog,
        QueueCondition::FailureRate,
        QueueCondition::NoWorker,
        QueueCondition::DeadLetters,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueCondition::Backlog => "backlog",
            QueueCondition::FailureRate => "failure_rate",
            QueueCondition::NoWorker => "no_worker",
            QueueCondition::DeadLetters => "dead_letters",
        }
    }

    /// How people call it.
    pub fn title(self) -> &'static str {
        match self {
            QueueCondition::Backlog => "Transcription backlog",
            QueueCondition::FailureRate => "Calls failing",
            QueueCondition::NoWorker => "No transcription worker",
            QueueCondition::DeadLetters => "Calls dead-lettered",
        }
    }
}

impl fmt::Display for QueueCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for QueueCondition {
    type Err = UnknownLabel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QueueCondition::ALL
            .iter()
            .copied()
            .find(|condition| condition.as_str() == s)
            .ok_or_else(|| UnknownLabel {
                kind: "QueueCondition",
                value: s.to_owned(),
                expected: &["backlog", "failure_rate", "no_worker", "dead_letters"],
            })
    }
}

/// Why a channel held messages back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    QuietHours,
    RateLimit,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::QuietHours => "quiet_hours",
            HoldReason::RateLimit => "rate_limit",
        }
    }
}

impl FromStr for HoldReason {
    type Err = UnknownLabel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quiet_hours" => Ok(HoldReason::QuietHours),
            "rate_limit" => Ok(HoldReason::RateLimit),
            _ => Err(UnknownLabel {
                kind: "HoldReason",
                value: s.to_owned(),
                expected: &["quiet_hours", "rate_limit"],
            }),
        }
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Flag { .. } => EventKind::Flag,
            Event::HotLead { .. } => EventKind::HotLead,
            Event::Queue { .. } => EventKind::Queue,
            Event::Digest { .. } => EventKind::Digest,
        }
    }

    /// The severity routing compares with a channel's minimum; `None`: routed whatever the
    /// minimum.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Event::Flag { severity, .. } => Some(*severity),
            Event::HotLead { .. } | Event::Queue { .. } => None,
            Event::Digest { events, .. } => events.iter().filter_map(Event::severity).max(),
        }
    }

    /// The call the event is about, if one.
    pub fn call_id(&self) -> Option<Uuid> {
        match self {
            Event::Flag { call_id, .. } | Event::HotLead { call_id, .. } => Some(*call_id),
            Event::Queue { .. } | Event::Digest { .. } => None,
        }
    }

    /// What makes two events the same one, so it is queued once per channel however often its
    /// cause is written again. A flag is its call, rule and time, not its row id: re-judging a
    /// call replaces flag rows but must not alert again. A hot lead is the lead and the call
    /// that made it hot. A queue condition is its episode and whether it started or ended. A
    /// digest is the events it holds. Sent as the `X-Callscript-Delivery` header, hence
    /// header-safe.
    pub fn dedup_key(&self) -> String {
        match self {
            Event::Flag {
                call_id,
                rule_id,
                start_ms,
                ..
            } => {
                let at = start_ms.map_or_else(|| "call".to_owned(), |ms| ms.to_string());
                format!("flag:{call_id}:{}:{at}", header_safe(rule_id))
            }
            Event::HotLead {
                lead_id, call_id, ..
            } => format!("hot_lead:{lead_id}:{call_id}"),
            Event::Queue {
                alert_id,
                resolved_at,
                ..
            } => {
                let phase = if resolved_at.is_some() {
                    "resolved"
                } else {
                    "started"
                };
                format!("queue:{alert_id}:{phase}")
            }
            Event::Digest { events, .. } => {
                let mut hash = Sha256::new();
                for event in events {
                    hash.update(event.dedup_key());
                    hash.update(b"\n");
                }
                format!("digest:{}", &hex::encode(hash.finalize())[..32])
            }
        }
    }
}

/// A critical flag said by the customer, for the unit tests of each module.
#[cfg(test)]
pub(crate) fn test_flag(rule_id: &str, evidence: &str, start_ms: Option<i32>) -> Event {
    Event::Flag {
        call_id: Uuid::nil(),
        flag_id: Some(Uuid::max()),
        rule_id: rule_id.into(),
        category: Category::Compliance,
        severity: Severity::Critical,
        evidence: evidence.into(),
        start_ms,
        speaker: Some("customer".into()),
    }
}

/// `text` with everything but ASCII letters, digits, `.`, `_` and `-` percent-encoded: rule ids
/// are free text, header values are not.
fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"._-".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Serde for core's labelled enums, which serialize as their label but have no `Deserialize`.
mod label {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_the_same_event_whatever_its_row() {
        let nil = Uuid::nil();
        assert_eq!(
            test_flag("card-number", "it's 4242", Some(42_000)).dedup_key(),
            format!("flag:{nil}:card-number:42000")
        );
        assert_eq!(
            test_flag("card-number", "it's 4242", Some(42_000)).dedup_key(),
            test_flag("card-number", "it's 4242", Some(42_000)).dedup_key()
        );
        assert_eq!(
            test_flag("no disclosure/ä", "", None).dedup_key(),
            format!("flag:{nil}:no%20disclosure%2F%C3%A4:call")
        );
    }

    #[test]
    fn events_survive_the_payload_column() {
        let event = test_flag("card-number", "my card is ending 4242", Some(1));
        let payload = serde_json::to_value(&event).unwrap();
        assert_eq!(payload["kind"], "flag");
        assert_eq!(payload["severity"], "critical");
        assert_eq!(serde_json::from_value::<Event>(payload).unwrap(), event);
        let due = DateTime::parse_from_rfc3339("2026-12-07T10:00:00-05:00").unwrap();
        let lead = Event::HotLead {
            lead_id: Uuid::new_v4(),
            call_id: Uuid::new_v4(),
            phone: "+15550100".into(),
            score: 91,
            follow_up_due: Some(due),
            summary: "Asked about price.".into(),
        };
        let payload = serde_json::to_value(&lead).unwrap();
        assert_eq!(payload["follow_up_due"], "2026-12-07T10:00:00-05:00");
        assert_eq!(serde_json::from_value::<Event>(payload).unwrap(), lead);
        assert_eq!("hot_lead".parse::<EventKind>().unwrap(), EventKind::HotLead);
        assert!("hot".parse::<EventKind>().is_err());
    }
}
