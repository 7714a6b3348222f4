//! An organization's notification channels: the routing in `core.notification_channels`
//! (which event kinds, from which flag severity, enabled or not), the settings of email and SMS
//! channels (its `settings` column, never secret), and the secret sealed like every other org
//! credential (`core.organization_credentials`, kind [`CREDENTIAL_KIND`], label = the channel's
//! name).
//!
//! A Slack incoming-webhook URL is itself the credential (whoever has it can post), so it is the
//! sealed secret; a generic webhook's URL is not secret and is stored as the credential's
//! endpoint, its signing secret sealed. An email channel seals its SMTP password, and has no
//! credential when its mail server takes mail without a login; an SMS channel seals the API's
//! auth token.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use callscript_core::credentials::{self, CredentialError, CredentialKey, CredentialSpec, Secret};
use callscript_core::db::DbError;
use callscript_core::model::{Severity, UnknownLabel};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{deliver, EventKind};

/// The credential kind channel secrets are stored under.
pub const CREDENTIAL_KIND: &str = "notify";

/// How a channel is reached (`core.notification_channel_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// A JSON POST signed with HMAC-SHA256 ([`crate::deliver`] documents the check).
    Webhook,
    /// A Slack incoming webhook, posted Block Kit messages.
    Slack,
    /// Mail submitted over SMTP.
    Email,
    /// Text messages through Twilio's Messages API (or one of its shape).
    Sms,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
            ChannelKind::Sms => "sms",
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
            "email" => Ok(ChannelKind::Email),
            "sms" => Ok(ChannelKind::Sms),
            _ => Err(UnknownLabel {
                kind: "ChannelKind",
                value: s.to_owned(),
                expected: &["webhook", "slack", "email", "sms"],
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

/// How the connection to a mail server is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// A plain connection upgraded with STARTTLS, which must succeed before the login or any
    /// mail is sent: a server that does not offer it gets nothing.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS").
    Tls,
    /// No encryption, so only to a mail server on loopback (a local relay, a test sink).
    None,
}

impl SmtpTls {
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }

    /// The port mail servers take submissions on in this mode.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

impl fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SmtpTls {
    type Err = UnknownLabel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err(UnknownLabel {
                kind: "SmtpTls",
                value: s.to_owned(),
                expected: &["starttls", "tls", "none"],
            }),
        }
    }
}

/// The mail server an email channel submits to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    /// Its host name or IP address, which its certificate must name.
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The login, when the server wants one; the password is the channel's sealed secret.
    pub username: Option<String>,
    /// PEM certificates trusted beside the public roots: the CA of a private mail server (an
    /// internal relay).
    pub root_ca_pem: Option<String>,
}

/// An email channel, its password aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailSettings {
    pub smtp: SmtpSettings,
    /// The sender: `alerts@example.com` or `Callscript <alerts@example.com>`.
    pub from: String,
    /// Every recipient gets the one message (each sees the others in `To`).
    pub to: Vec<String>,
}

/// Twilio's API, where SMS channels send unless told otherwise.
pub const TWILIO_API_URL: &str = "https://api.twilio.com";

/// An SMS channel, its auth token aside: a Twilio account, or an API of the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSettings {
    /// [`TWILIO_API_URL`], or another of the same shape.
    pub api_base_url: String,
    /// `AC` and 32 hex digits.
    pub account_sid: String,
    /// The sending number, E.164 (`+14155550100`).
    pub from: String,
    /// E.164 numbers; each gets its own message.
    pub to: Vec<String>,
}

/// Where a channel's messages go, with its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook {
        url: String,
        signing_secret: Secret,
    },
    Slack {
        webhook_url: Secret,
    },
    /// `password` goes with `settings.smtp.username`: both or neither.
    Email {
        settings: EmailSettings,
        password: Option<Secret>,
    },
    Sms {
        settings: SmsSettings,
        auth_token: Secret,
    },
}

impl Target {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Target::Webhook { .. } => ChannelKind::Webhook,
            Target::Slack { .. } => ChannelKind::Slack,
            Target::Email { .. } => ChannelKind::Email,
            Target::Sms { .. } => ChannelKind::Sms,
        }
    }

    /// Checks what a user gave before anything is stored, naming what is wrong.
    fn validate(&self) -> Result<(), ChannelError> {
        match self {
            Target::Webhook { url, .. } => http_url(url),
            Target::Slack { webhook_url } => http_url(webhook_url.expose()),
            Target::Email { settings, password } => validate_email(settings, password.as_ref()),
            Target::Sms { settings, .. } => validate_sms(settings),
        }
    }

    /// The sealed secret and the credential's endpoint; `None` for an email channel without a
    /// login.
    fn credential(&self) -> Option<(&Secret, Option<&str>)> {
        match self {
            Target::Webhook {
                url,
                signing_secret,
            } => Some((signing_secret, Some(url))),
            Target::Slack { webhook_url } => Some((webhook_url, None)),
            Target::Email { password, .. } => password.as_ref().map(|password| (password, None)),
            Target::Sms { auth_token, .. } => Some((auth_token, None)),
        }
    }

    /// What goes into the `settings` column.
    fn settings(&self) -> serde_json::Value {
        let settings = match self {
            Target::Webhook { .. } | Target::Slack { .. } => return serde_json::json!({}),
            Target::Email { settings, .. } => serde_json::to_value(settings),
            Target::Sms { settings, .. } => serde_json::to_value(settings),
        };
        settings.expect("settings serialize to JSON")
    }
}

/// What an email or SMS channel is set to, its secret aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelSettings {
    Email(EmailSettings),
    Sms(SmsSettings),
}

/// A channel as listed: no secret, and no Slack URL (it is the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub name: String,
    pub kind: ChannelKind,
    pub routing: Routing,
    /// A webhook's URL.
    pub url: Option<String>,
    /// An email or SMS channel's settings.
    pub settings: Option<ChannelSettings>,
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
    #[error("email {role} {value:?} is not an email address: {reason}")]
    BadEmailAddress {
        role: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "SMS {role} {value:?} is not an E.164 number: a + and the country code, then the \
         number, 15 digits at most in all, no spaces (+14155550100)"
    )]
    BadPhoneNumber { role: &'static str, value: String },
    #[error("an {kind} channel needs at least one recipient")]
    NoRecipients { kind: ChannelKind },
    #[error("SMTP host {0:?}: give a host name or IP address alone (no scheme, port or path)")]
    BadSmtpHost(String),
    #[error("SMTP port 0: give the mail server's port (587 for STARTTLS, 465 for TLS)")]
    BadSmtpPort,
    #[error("an SMTP login needs both a username and a password")]
    PartialSmtpLogin,
    #[error("the SMTP root CA does not load: {0}")]
    BadRootCa(String),
    #[error(
        "{what} would cross the network unencrypted: allowed only to a loopback host \
         (localhost, 127.0.0.1, ::1), not {host:?}"
    )]
    Unencrypted { what: &'static str, host: String },
    #[error("SMS API URL {url:?}: {reason}")]
    BadApiUrl { url: String, reason: &'static str },
    #[error(
        "Twilio account SID {0:?}: expected AC and 32 hex digits, as the Twilio console shows it"
    )]
    BadAccountSid(String),
    #[error("channel {name:?}'s stored settings do not read ({reason}): add it again")]
    BadSettings { name: String, reason: String },
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

/// `url` is an http:// or https:// URL.
fn http_url(url: &str) -> Result<(), ChannelError> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(ChannelError::BadUrl)
    }
}

fn validate_email(settings: &EmailSettings, password: Option<&Secret>) -> Result<(), ChannelError> {
    let smtp = &settings.smtp;
    let host = smtp.host.as_str();
    let bare_host = !host.is_empty()
        && !host.contains(|c: char| c.is_whitespace() || c == '/')
        && (!host.contains(':') || host.parse::<IpAddr>().is_ok());
    if !bare_host {
        return Err(ChannelError::BadSmtpHost(host.into()));
    }
    if smtp.port == 0 {
        return Err(ChannelError::BadSmtpPort);
    }
    if smtp.tls == SmtpTls::None && !is_loopback(host) {
        return Err(ChannelError::Unencrypted {
            what: "SMTP without TLS",
            host: host.into(),
        });
    }
    match (smtp.username.as_deref(), password) {
        (Some(username), Some(_)) if !username.is_empty() => {}
        (None, None) => {}
        _ => return Err(ChannelError::PartialSmtpLogin),
    }
    if smtp.root_ca_pem.is_some() {
        deliver::email::tls_parameters(smtp).map_err(ChannelError::BadRootCa)?;
    }
    email_address(&settings.from, "sender")?;
    if settings.to.is_empty() {
        return Err(ChannelError::NoRecipients {
            kind: ChannelKind::Email,
        });
    }
    settings
        .to
        .iter()
        .try_for_each(|to| email_address(to, "recipient").map(drop))
}

/// `value` as a mailbox (`a@example.com`, or `Name <a@example.com>`).
pub(crate) fn email_address(value: &str, role: &'static str) -> Result<Mailbox, ChannelError> {
    value.parse().map_err(
        |e: lettre::address::AddressError| ChannelError::BadEmailAddress {
            role,
            value: value.into(),
            reason: e.to_string(),
        },
    )
}

fn validate_sms(settings: &SmsSettings) -> Result<(), ChannelError> {
    let bad_url = |url: String, reason| ChannelError::BadApiUrl { url, reason };
    let mut url = reqwest::Url::parse(&settings.api_base_url).map_err(|_| {
        bad_url(
            settings.api_base_url.clone(),
            "not a URL (https://api.twilio.com)",
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        // The account SID and token go as basic auth, never in the URL, which is listed and
        // would leak them; the error shows it without them too.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        return Err(bad_url(
            url.to_string(),
            "must not hold a login (the auth token is read separately)",
        ));
    }
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => {
            return Err(ChannelError::Unencrypted {
                what: "the SMS API's auth token over http://",
                host: host.into(),
            })
        }
        _ => {
            return Err(bad_url(
                settings.api_base_url.clone(),
                "must start with https://",
            ))
        }
    }
    let sid = &settings.account_sid;
    let sid_ok =
        sid.len() == 34 && sid.starts_with("AC") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !sid_ok {
        return Err(ChannelError::BadAccountSid(sid.clone()));
    }
    phone_number(&settings.from, "sender")?;
    if settings.to.is_empty() {
        return Err(ChannelError::NoRecipients {
            kind: ChannelKind::Sms,
        });
    }
    settings
        .to
        .iter()
        .try_for_each(|to| phone_number(to, "recipient"))
}

/// `number` is E.164: `+`, then up to 15 digits, the first not 0.
fn phone_number(number: &str, role: &'static str) -> Result<(), ChannelError> {
    let valid = number.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(ChannelError::BadPhoneNumber {
            role,
            value: number.into(),
        })
    }
}

/// `host` (a name or an IP address, IPv6 with or without brackets) is this machine.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
    target.validate()?;
    client
        .execute(
            "INSERT INTO core.notification_channels
               (org_id, name, kind, event_kinds, min_severity, enabled, settings)
             VALUES ($1, $2, $3::text::core.notification_channel_kind, $4,
                     $5::text::core.flag_severity, $6, $7)
             ON CONFLICT (org_id, name) DO UPDATE SET
               kind = excluded.kind, event_kinds = excluded.event_kinds,
               min_severity = excluded.min_severity, enabled = excluded.enabled,
               settings = excluded.settings",
            &[
                &org_id,
                &name,
                &target.kind().as_str(),
                &kind_labels(&routing.event_kinds),
                &routing.min_severity.as_str(),
                &routing.enabled,
                &target.settings(),
            ],
        )
        .await?;
    match target.credential() {
        Some((secret, endpoint)) => {
            let spec = CredentialSpec {
                kind: CREDENTIAL_KIND,
                label: name,
                public_id: None,
                endpoint,
            };
            credentials::store(client, key, org_id, &spec, secret).await?;
        }
        // A channel replaced by one without a login keeps no password of the old one.
        None => {
            credentials::delete(client, org_id, CREDENTIAL_KIND, name).await?;
        }
    }
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
                    cr.endpoint, c.updated_at, c.settings
             FROM core.notification_channels c
             LEFT JOIN core.organization_credentials cr
               ON cr.org_id = c.org_id AND cr.kind = $2 AND cr.label = c.name
             WHERE c.org_id = $1 ORDER BY c.name",
            &[&org_id, &CREDENTIAL_KIND],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let kind: ChannelKind = row.get::<_, String>(1).parse().map_err(DbError::from)?;
            let settings = row.get(7);
            Ok(ChannelInfo {
                routing: routing_from(row.get(2), row.get(3), row.get(4))?,
                url: match kind {
                    ChannelKind::Webhook => row.get(5),
                    _ => None,
                },
                settings: match kind {
                    ChannelKind::Email => Some(ChannelSettings::Email(stored(&name, settings)?)),
                    ChannelKind::Sms => Some(ChannelSettings::Sms(stored(&name, settings)?)),
                    ChannelKind::Webhook | ChannelKind::Slack => None,
                },
                updated_at: row.get(6),
                name,
                kind,
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
            "SELECT kind::text, event_kinds, min_severity::text, enabled, settings
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
    let settings = row.get(4);
    let credential = || credentials::load(client, key, org_id, CREDENTIAL_KIND, name);
    let target = match kind {
        ChannelKind::Webhook => {
            let credential = credential().await?;
            Target::Webhook {
                url: credential.endpoint.ok_or_else(|| ChannelError::NoUrl {
                    name: name.into(),
                    kind,
                })?,
                signing_secret: credential.secret,
            }
        }
        ChannelKind::Slack => Target::Slack {
            webhook_url: credential().await?.secret,
        },
        ChannelKind::Email => {
            let settings: EmailSettings = stored(name, settings)?;
            let password = match settings.smtp.username {
                Some(_) => Some(credential().await?.secret),
                None => None,
            };
            Target::Email { settings, password }
        }
        ChannelKind::Sms => Target::Sms {
            settings: stored(name, settings)?,
            auth_token: credential().await?.secret,
        },
    };
    Ok(Channel {
        org_id,
        name: name.into(),
        routing,
        target,
    })
}

/// A channel's `settings` column as its kind's settings.
fn stored<T: DeserializeOwned>(name: &str, settings: serde_json::Value) -> Result<T, ChannelError> {
    serde_json::from_value(settings).map_err(|e| ChannelError::BadSettings {
        name: name.into(),
        reason: e.to_string(),
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

    fn email(tls: SmtpTls, host: &str, from: &str, to: &[&str]) -> Target {
        Target::Email {
            settings: EmailSettings {
                smtp: SmtpSettings {
                    host: host.into(),
                    port: tls.default_port(),
                    tls,
                    username: Some("alerts".into()),
                    root_ca_pem: None,
                },
                from: from.into(),
                to: to.iter().map(|to| to.to_string()).collect(),
            },
            password: Some(Secret::new("pw")),
        }
    }

    fn sms(base: &str, sid: &str, from: &str, to: &[&str]) -> Target {
        Target::Sms {
            settings: SmsSettings {
                api_base_url: base.into(),
                account_sid: sid.into(),
                from: from.into(),
                to: to.iter().map(|to| to.to_string()).collect(),
            },
            auth_token: Secret::new("token"),
        }
    }

    fn error(target: Target) -> String {
        target.validate().unwrap_err().to_string()
    }

    #[test]
    fn email_channels_take_addresses_and_encrypt_off_loopback() {
        let starttls = SmtpTls::default();
        let good = email(starttls, "smtp.example.com", "Alerts <a@x.io>", &["b@x.io"]);
        assert!(good.validate().is_ok());
        assert_eq!(
            (starttls, starttls.default_port()),
            (SmtpTls::StartTls, 587)
        );
        assert_eq!("tls".parse::<SmtpTls>().unwrap().default_port(), 465);
        assert!("ssl".parse::<SmtpTls>().is_err());

        let bad = error(email(starttls, "smtp.example.com", "alerts", &["b@x.io"]));
        assert!(
            bad.starts_with("email sender \"alerts\" is not an email address"),
            "{bad}"
        );
        let bad = error(email(
            starttls,
            "smtp.example.com",
            "a@x.io",
            &["b@x.io", "b@"],
        ));
        assert!(bad.starts_with("email recipient \"b@\""), "{bad}");
        let bad = error(email(starttls, "smtp.example.com", "a@x.io", &[]));
        assert_eq!(bad, "an email channel needs at least one recipient");
        let bad = error(email(
            starttls,
            "smtp://smtp.example.com:587",
            "a@x.io",
            &["b@x.io"],
        ));
        assert!(bad.starts_with("SMTP host"), "{bad}");

        let bad = error(email(
            SmtpTls::None,
            "smtp.example.com",
            "a@x.io",
            &["b@x.io"],
        ));
        assert!(
            bad.contains("unencrypted") && bad.contains("smtp.example.com"),
            "{bad}"
        );
        for loopback in ["localhost", "127.0.0.1", "::1"] {
            let local = email(SmtpTls::None, loopback, "a@x.io", &["b@x.io"]);
            assert!(local.validate().is_ok(), "{loopback}");
        }

        let Target::Email { mut settings, .. } = good else {
            unreachable!()
        };
        let no_password = Target::Email {
            settings: settings.clone(),
            password: None,
        };
        assert!(matches!(
            no_password.validate(),
            Err(ChannelError::PartialSmtpLogin)
        ));
        settings.smtp.root_ca_pem = Some("not a certificate".into());
        let bad_ca = Target::Email {
            settings,
            password: Some(Secret::new("pw")),
        };
        assert!(error(bad_ca).starts_with("the SMTP root CA does not load"));
    }

    #[test]
    fn sms_channels_take_e164_numbers_and_a_twilio_account() {
        let sid = format!("AC{}", "0a".repeat(16));
        assert!(
            sms(TWILIO_API_URL, &sid, "+14155550199", &["+442071838750"])
                .validate()
                .is_ok()
        );
        for number in [
            "4155550100",
            "+1 415 555 0100",
            "+0123",
            "+1",
            &format!("+{}", "1".repeat(16)),
        ] {
            let bad = error(sms(TWILIO_API_URL, &sid, "+14155550199", &[number]));
            assert!(
                bad.starts_with(&format!("SMS recipient {number:?} is not an E.164 number")),
                "{bad}"
            );
        }
        let bad = error(sms(TWILIO_API_URL, &sid, "Callscript", &["+14155550100"]));
        assert!(bad.starts_with("SMS sender"), "{bad}");
        let bad = error(sms(TWILIO_API_URL, &sid, "+14155550199", &[]));
        assert_eq!(bad, "an sms channel needs at least one recipient");
        let bad = error(sms(
            TWILIO_API_URL,
            "AC123",
            "+14155550199",
            &["+14155550100"],
        ));
        assert!(bad.starts_with("Twilio account SID \"AC123\""), "{bad}");
        let bad = error(sms(
            "http://api.example.com",
            &sid,
            "+14155550199",
            &["+14155550100"],
        ));
        assert!(bad.contains("unencrypted"), "{bad}");
        let bad = error(sms(
            "https://AC1:tok3n@api.example.com",
            &sid,
            "+14155550199",
            &["+1415"],
        ));
        assert!(
            bad.contains("must not hold a login") && !bad.contains("tok3n"),
            "{bad}"
        );
        assert!(sms(
            "http://127.0.0.1:9",
            &sid,
            "+14155550199",
            &["+14155550100"]
        )
        .validate()
        .is_ok());
    }
}
