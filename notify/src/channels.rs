//! An organization's notification channels: the routing in `core.notification_channels`
//! (which event kinds, from which flag severity, enabled or not) and the secret sealed like every
//! other org credential (`core.organization_credentials`, kind [`CREDENTIAL_KIND`], label = the
//! channel's name).
//!
//! A Slack incoming-webhook URL is itself the credential (whoever has it can post), so it is the
//! sealed secret; a generic webhook's URL is not secret and is stored as the credential's
//! endpoint, its signing secret sealed.

use std::fmt;
use std::str::FromStr;

use callscript_core::credentials::{self, CredentialError, CredentialKey, CredentialSpec, Secret};
use callscript_core::db::DbError;
use callscript_core::model::{Severity, UnknownLabel};
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::EventKind;

/// The credential kind channel secrets are stored under.
pub const CREDENTIAL_KIND: &str = "notify";

/// How a channel is reached (`core.notification_channel_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A JSON POST signed with HMAC-SHA256 ([`crate::deliver`] documents the check).
    Webhook,
    /// A Slack incoming webhook, posted Block Kit messages.
    Slack,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = UnknownLabel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "webhook" => Ok(ChannelKind::Webhook),
            "slack" => Ok(ChannelKind::Slack),
            _ => Err(UnknownLabel {
                kind: "ChannelKind",
                value: s.to_owned(),
                expected: &["webhook", "slack"],
            }),
        }
    }
}

/// Which events a channel gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub event_kinds: Vec<EventKind>,
    /// Flags below it are not sent here; events without a severity (hot leads) always are.
    pub min_severity: Severity,
    pub enabled: bool,
}

impl Default for Routing {
    /// Every event, flags from `high` up: what a compliance team wants to hear about at once.
    fn default() -> Self {
        Self {
            event_kinds: EventKind::ROUTABLE.to_vec(),
            min_severity: Severity::High,
            enabled: true,
        }
    }
}

/// Where a channel's messages go, with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook { url: String, signing_secret: Secret },
    Slack { webhook_url: Secret },
}

impl Target {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Target::Webhook { .. } => ChannelKind::Webhook,
            Target::Slack { .. } => ChannelKind::Slack,
        }
    }
}

/// A channel as listed: no secret, and no Slack URL (it is the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: ChannelKind,
    pub routing: Routing,
    /// A webhook's URL.
    pub url: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A channel ready to send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub org_id: Uuid,
    pub name: String,
    pub routing: Routing,
    pub target: Target,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(
        "channel name {0:?}: use lowercase letters, digits, - and _, starting with a letter or \
         digit, at most 63"
    )]
    BadName(String),
    #[error("a channel's URL must start with http:// or https://")]
    BadUrl,
    #[error("organization {org_id} has no notification channel {name:?}")]
    Unknown { org_id: Uuid, name: String },
    #[error(
        "channel {name:?} is a {kind} channel but its stored credential has no URL: add it again"
    )]
    NoUrl { name: String, kind: ChannelKind },
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for ChannelError {
    fn from(e: tokio_postgres::Error) -> Self {
        ChannelError::Db(e.into())
    }
}

/// What `core.notification_channels.name` accepts (checked here first for a readable error).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A fresh webhook signing secret (256 random bits), for when the user gives none.
pub fn new_signing_secret() -> Secret {
    Secret::new(format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>())))
}

/// Adds the channel, or replaces its kind, routing and secret. Run it in a transaction: the
/// routing row and the sealed secret belong together.
pub async fn save(
    client: &impl GenericClient,
    key: &CredentialKey,
    org_id: Uuid,
    name: &str,
    routing: &Routing,
    target: &Target,
) -> Result<(), ChannelError> {
    if !valid_name(name) {
        return Err(ChannelError::BadName(name.into()));
    }
    let (endpoint, secret) = match target {
        Target::Webhook {
            url,
            signing_secret,
        } => (Some(url.as_str()), signing_secret),
        Target::Slack { webhook_url } => (None, webhook_url),
    };
    let url = endpoint.unwrap_or(secret.expose());
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ChannelError::BadUrl);
    }
    client
        .execute(
            "INSERT INTO core.notification_channels
               (org_id, name, kind, event_kinds, min_severity, enabled)
             VALUES ($1, $2, $3::text::core.notification_channel_kind, $4,
                     $5::text::core.flag_severity, $6)
             ON CONFLICT (org_id, name) DO UPDATE SET
               kind = excluded.kind, event_kinds = excluded.event_kinds,
               min_severity = excluded.min_severity, enabled = excluded.enabled",
            &[
                &org_id,
                &name,
                &target.kind().as_str(),
                &kind_labels(&routing.event_kinds),
                &routing.min_severity.as_str(),
                &routing.enabled,
            ],
        )
        .await?;
    credentials::store(
        client,
        key,
        org_id,
        &CredentialSpec {
            kind: CREDENTIAL_KIND,
            label: name,
            public_id: None,
            endpoint,
        },
        secret,
    )
    .await?;
    Ok(())
}

/// Changes a channel's routing, its secret untouched; whether there was such a channel.
pub async fn set_routing(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &str,
    routing: &Routing,
) -> Result<bool, ChannelError> {
    Ok(client
        .execute(
            "UPDATE core.notification_channels
             SET event_kinds = $3, min_severity = $4::text::core.flag_severity, enabled = $5
             WHERE org_id = $1 AND name = $2",
            &[
                &org_id,
                &name,
                &kind_labels(&routing.event_kinds),
                &routing.min_severity.as_str(),
                &routing.enabled,
            ],
        )
        .await?
        == 1)
}

/// Removes a channel and its secret; whether there was one. Its undelivered rows are
/// dead-lettered when the lane reaches them (nothing to send them to).
pub async fn remove(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &str,
) -> Result<bool, ChannelError> {
    let removed = client
        .execute(
            "DELETE FROM core.notification_channels WHERE org_id = $1 AND name = $2",
            &[&org_id, &name],
        )
        .await?;
    credentials::delete(client, org_id, CREDENTIAL_KIND, name).await?;
    Ok(removed == 1)
}

/// The organization's channels by name, secrets left out.
pub async fn list(
    client: &impl GenericClient,
    org_id: Uuid,
) -> Result<Vec<ChannelInfo>, ChannelError> {
    let rows = client
        .query(
            "SELECT c.name, c.kind::text, c.event_kinds, c.min_severity::text, c.enabled,
                    cr.endpoint, c.updated_at
             FROM core.notification_channels c
             LEFT JOIN core.organization_credentials cr
               ON cr.org_id = c.org_id AND cr.kind = $2 AND cr.label = c.name
             WHERE c.org_id = $1 ORDER BY c.name",
            &[&org_id, &CREDENTIAL_KIND],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let kind: ChannelKind = row.get::<_, String>(1).parse().map_err(DbError::from)?;
            Ok(ChannelInfo {
                name: row.get(0),
                kind,
                routing: routing_from(row.get(2), row.get(3), row.get(4))?,
                url: match kind {
                    ChannelKind::Webhook => row.get(5),
                    ChannelKind::Slack => None,
                },
                updated_at: row.get(6),
            })
        })
        .collect()
}

/// One channel with its secret opened, for sending.
pub async fn load(
    client: &impl GenericClient,
    key: &CredentialKey,
    org_id: Uuid,
    name: &str,
) -> Result<Channel, ChannelError> {
    let row = client
        .query_opt(
            "SELECT kind::text, event_kinds, min_severity::text, enabled
             FROM core.notification_channels WHERE org_id = $1 AND name = $2",
            &[&org_id, &name],
        )
        .await?
        .ok_or_else(|| ChannelError::Unknown {
            org_id,
            name: name.into(),
        })?;
    let kind: ChannelKind = row.get::<_, String>(0).parse().map_err(DbError::from)?;
    let routing = routing_from(row.get(1), row.get(2), row.get(3))?;
    let credential = credentials::load(client, key, org_id, CREDENTIAL_KIND, name).await?;
    let target = match kind {
        ChannelKind::Webhook => Target::Webhook {
            url: credential.endpoint.ok_or_else(|| ChannelError::NoUrl {
                name: name.into(),
                kind,
            })?,
            signing_secret: credential.secret,
        },
        ChannelKind::Slack => Target::Slack {
            webhook_url: credential.secret,
        },
    };
    Ok(Channel {
        org_id,
        name: name.into(),
        routing,
        target,
    })
}

fn kind_labels(kinds: &[EventKind]) -> Vec<&'static str> {
    kinds.iter().map(|kind| kind.as_str()).collect()
}

fn routing_from(
    event_kinds: Vec<String>,
    min_severity: String,
    enabled: bool,
) -> Result<Routing, ChannelError> {
    Ok(Routing {
        // Kinds this build does not know (written by a newer one) route nothing here.
        event_kinds: event_kinds.iter().filter_map(|k| k.parse().ok()).collect(),
        min_severity: min_severity.parse().map_err(DbError::from)?,
        enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_the_table_accepts() {
        for good in ["ops", "sales-slack", "qa_2", "9am"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Ops", "-x", "a b", "é", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
        let secret = new_signing_secret();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.expose().len(), 6 + 64);
    }
}
