//! `callscript notify` (the delivery lane) and `callscript org notify …` (channels and routing).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use callscript_core::credentials::{CredentialKey, Secret};
use callscript_core::db::{DatabaseUrl, Pool};
use callscript_core::model::Severity;
use callscript_core::orgs;
use callscript_notify::alerts::{self, AlertSettings};
use callscript_notify::channels::{
    self, ChannelInfo, ChannelSettings, EmailSettings, Routing, SmsSettings, SmtpSettings, SmtpTls,
    Target, TWILIO_API_URL,
};
use callscript_notify::policy::{self, QuietHours, RateLimit};
use callscript_notify::{EventKind, NotifyConfig, NotifyLane, NotifyReport};
use clap::{Args, Subcommand};

use crate::commands::{migrated_pool, read_secret, stop_on_signal, Settings};

#[derive(Args)]
pub struct NotifyArgs {
    /// Exit when no message is due.
    #[arg(long)]
    until_idle: bool,
    /// Messages claimed at once.
    #[arg(long, default_value_t = 32)]
    batch_size: i64,
    /// Where the review UI is served, for links to call pages in messages.
    #[arg(long, env = "CALLSCRIPT_PUBLIC_URL")]
    public_url: Option<String>,
}

/// `judge --notify` and `serve --notify`: the delivery lane in the same process, so alerts
/// leave within a second of their cause without running `callscript notify` beside it.
#[derive(Args)]
pub struct AlongsideArgs {
    /// Also deliver the outbox's alerts from this process (as `callscript notify` does).
    #[arg(long, env = "CALLSCRIPT_NOTIFY")]
    notify: bool,
    /// With --notify: where the review UI is served, for links in messages.
    #[arg(long = "public-url", env = "CALLSCRIPT_PUBLIC_URL")]
    notify_public_url: Option<String>,
}

impl AlongsideArgs {
    /// The delivery lane when --notify was given.
    pub fn lane(&self, database_url: &DatabaseUrl, pool: &Pool) -> Result<Option<NotifyLane>> {
        if !self.notify {
            return Ok(None);
        }
        let key = CredentialKey::from_env().context("--notify opens channel secrets")?;
        Ok(Some(delivery_lane(
            database_url,
            pool.clone(),
            key,
            NotifyConfig::default().batch_size,
            self.notify_public_url.clone(),
        )))
    }
}

fn delivery_lane(
    database_url: &DatabaseUrl,
    pool: Pool,
    key: CredentialKey,
    batch_size: i64,
    public_url: Option<String>,
) -> NotifyLane {
    NotifyLane::new(
        pool,
        key,
        NotifyConfig {
            batch_size: batch_size.max(1),
            public_url,
            ..NotifyConfig::default()
        },
    )
    .listening(database_url.clone())
}

/// Prints what a delivery lane did.
pub fn print_report(report: &NotifyReport) {
    println!(
        "notify: {} delivered, {} to retry, {} failed, {} lost to an expired lease, {} held \
         (quiet hours, rate limit), {} folded into digests; queue health: {} alerts, {} resolved",
        report.delivered,
        report.retrying,
        report.failed,
        report.lost,
        report.held,
        report.folded,
        report.queue_alerts,
        report.queue_resolved
    );
}

/// Routing options shared by `add` and `route`.
#[derive(Args)]
pub struct RoutingArgs {
    /// Event kinds sent to the channel (comma-separated: flag, hot_lead, queue); all when omitted.
    #[arg(long, value_delimiter = ',')]
    events: Vec<EventKind>,
    /// Flags below this severity are not sent (hot leads always are).
    #[arg(long, default_value = "high")]
    min_severity: Severity,
    /// Keep the channel but send nothing to it.
    #[arg(long)]
    disabled: bool,
}

impl RoutingArgs {
    fn routing(&self) -> Routing {
        Routing {
            event_kinds: if self.events.is_empty() {
                EventKind::ROUTABLE.to_vec()
            } else {
                self.events.clone()
            },
            min_severity: self.min_severity,
            enabled: !self.disabled,
        }
    }
}

/// Which kind of channel `add` makes: exactly one.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct KindArgs {
    /// A Slack incoming webhook; its URL is read from standard input.
    #[arg(long)]
    slack: bool,
    /// A generic webhook, posted JSON signed with HMAC-SHA256; the signing secret is read from
    /// standard input, or made with --generate-secret.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Email over SMTP (--smtp-host, --from, --to); with --smtp-user, the password is read from
    /// standard input.
    #[arg(long)]
    email: bool,
    /// Text messages through Twilio (--twilio-account-sid, --from, --to); the auth token is read
    /// from standard input.
    #[arg(long)]
    sms: bool,
}

/// Where `add` sends, and how. A kind's own options conflict with the other kinds rather than
/// `requires` theirs: clap counts a flag's `false` default as present.
#[derive(Args)]
pub struct TargetArgs {
    #[command(flatten)]
    kind: KindArgs,
    /// With --webhook: make a signing secret and print it once.
    #[arg(long, requires = "webhook")]
    generate_secret: bool,
    /// The sender: an email address (`Alerts <alerts@example.com>` too) with --email, an E.164
    /// number with --sms.
    #[arg(
        long,
        value_name = "ADDRESS",
        required_if_eq_any([("email", "true"), ("sms", "true")]),
        conflicts_with_all = ["slack", "webhook"]
    )]
    from: Option<String>,
    /// The recipients, comma-separated: email addresses with --email, E.164 numbers with --sms.
    #[arg(
        long,
        value_name = "ADDRESS",
        value_delimiter = ',',
        required_if_eq_any([("email", "true"), ("sms", "true")]),
        conflicts_with_all = ["slack", "webhook"]
    )]
    to: Vec<String>,
    /// The mail server.
    #[arg(
        long,
        value_name = "HOST",
        conflicts_with_all = ["slack", "webhook", "sms"],
        required_if_eq("email", "true")
    )]
    smtp_host: Option<String>,
    /// The mail server's port [default: 587 with starttls, 465 with tls, 25 with none].
    #[arg(long, value_name = "PORT", conflicts_with_all = ["slack", "webhook", "sms"])]
    smtp_port: Option<u16>,
    /// starttls (the default: required before the login or any mail is sent), tls (from the
    /// first byte), or none (only to a loopback server).
    #[arg(long, value_name = "MODE", conflicts_with_all = ["slack", "webhook", "sms"])]
    smtp_tls: Option<SmtpTls>,
    /// The login name; the password is read from standard input.
    #[arg(long, value_name = "USER", conflicts_with_all = ["slack", "webhook", "sms"])]
    smtp_user: Option<String>,
    /// PEM certificates of a private mail server's CA, trusted beside the public roots.
    #[arg(long, value_name = "PEM_FILE", conflicts_with_all = ["slack", "webhook", "sms"])]
    smtp_ca_file: Option<PathBuf>,
    /// The Twilio account SID (AC and 32 hex digits).
    #[arg(
        long,
        value_name = "SID",
        conflicts_with_all = ["slack", "webhook", "email"],
        required_if_eq("sms", "true")
    )]
    twilio_account_sid: Option<String>,
    /// Another API of Twilio's shape [default: https://api.twilio.com].
    #[arg(long, value_name = "URL", conflicts_with_all = ["slack", "webhook", "email"])]
    twilio_base_url: Option<String>,
}

impl TargetArgs {
    /// The channel's target, its secret read from standard input or made; the secret to show
    /// once when it was made here.
    fn target(self) -> Result<(Target, Option<String>)> {
        let kind = self.kind;
        if kind.slack {
            let webhook_url = Secret::new(read_secret(
                "e.g. `printenv SLACK_WEBHOOK_URL | callscript org notify add ...`",
            )?);
            return Ok((Target::Slack { webhook_url }, None));
        }
        if let Some(url) = kind.webhook {
            let signing_secret = if self.generate_secret {
                channels::new_signing_secret()
            } else {
                Secret::new(read_secret("or pass --generate-secret")?)
            };
            let shown = self
                .generate_secret
                .then(|| signing_secret.expose().to_owned());
            return Ok((
                Target::Webhook {
                    url,
                    signing_secret,
                },
                shown,
            ));
        }
        // clap requires --from with --email and --sms, and their own flags with each.
        let from = self.from.context("give --from")?;
        if kind.email {
            let tls = self.smtp_tls.unwrap_or_default();
            let root_ca_pem = self
                .smtp_ca_file
                .map(|path| {
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading --smtp-ca-file {}", path.display()))
                })
                .transpose()?;
            let password = match &self.smtp_user {
                Some(_) => Some(Secret::new(read_secret(
                    "the SMTP password, e.g. `printenv SMTP_PASSWORD | callscript org notify add \
                     ... --smtp-user USER`",
                )?)),
                None => None,
            };
            let settings = EmailSettings {
                smtp: SmtpSettings {
                    host: self.smtp_host.context("give --smtp-host")?,
                    port: self.smtp_port.unwrap_or(tls.default_port()),
                    tls,
                    username: self.smtp_user,
                    root_ca_pem,
                },
                from,
                to: self.to,
            };
            return Ok((Target::Email { settings, password }, None));
        }
        if kind.sms {
            let auth_token = Secret::new(read_secret(
                "the Twilio auth token, e.g. `printenv TWILIO_AUTH_TOKEN | callscript org notify \
                 add ... --sms`",
            )?);
            let settings = SmsSettings {
                api_base_url: self
                    .twilio_base_url
                    .unwrap_or_else(|| TWILIO_API_URL.to_owned()),
                account_sid: self
                    .twilio_account_sid
                    .context("give --twilio-account-sid")?,
                from,
                to: self.to,
            };
            return Ok((
                Target::Sms {
                    settings,
                    auth_token,
                },
                None,
            ));
        }
        bail!("give --slack, --webhook URL, --email or --sms")
    }
}

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Add a channel (or replace one of that name): a Slack incoming webhook, a signed webhook,
    /// email over SMTP or SMS through Twilio. Its secret (the Slack URL, the signing secret, the
    /// SMTP password, the Twilio auth token) is read from standard input and sealed.
    Add {
        org: String,
        name: String,
        // Boxed: the other commands are a few strings.
        #[command(flatten)]
        target: Box<TargetArgs>,
        #[command(flatten)]
        routing: RoutingArgs,
    },
    /// List an organization's channels and their routing (never their secrets).
    List { org: String },
    /// Change which events a channel gets.
    Route {
        org: String,
        name: String,
        #[command(flatten)]
        routing: RoutingArgs,
    },
    /// Remove a channel and its secret; its undelivered messages fail.
    Remove { org: String, name: String },
    /// When a channel's messages go out: quiet hours in the organization's time zone and a rate
    /// limit. Held messages go as one digest when quiet hours end; past the limit, the rest go
    /// as one digest. Without options, shows the policy.
    Policy {
        org: String,
        name: String,
        /// Local quiet hours, e.g. 22:00-07:00, or `none`.
        #[arg(long, value_name = "HH:MM-HH:MM|none")]
        quiet: Option<String>,
        /// During quiet hours, flags at or above this severity still go at once [default:
        /// critical]; `none`: nothing does.
        #[arg(long, value_name = "SEVERITY|none")]
        quiet_bypass: Option<String>,
        /// At most N messages per minute, hour or day (e.g. 20/hour), or `none`.
        #[arg(long, value_name = "N/UNIT|none")]
        rate_limit: Option<String>,
    },
}

/// `org alerts`: queue health thresholds and episodes.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// The thresholds, and the latest conditions (open ones first).
    Show {
        org: String,
        /// How many episodes to list.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Change thresholds; those not given are kept. The delivery lane checks them every minute.
    Set(AlertSetArgs),
}

#[derive(Args)]
pub struct AlertSetArgs {
    org: String,
    /// Stop checking this organization's queue.
    #[arg(long, conflicts_with = "enable")]
    disable: bool,
    /// Check it again.
    #[arg(long)]
    enable: bool,
    /// Alert when the oldest call waiting for transcription waited this long.
    #[arg(long, value_name = "MINUTES")]
    backlog_minutes: Option<i32>,
    /// Alert when more than this share of the calls that ended in the window failed...
    #[arg(long, value_name = "PERCENT")]
    failure_rate_percent: Option<f64>,
    #[arg(long, value_name = "MINUTES")]
    failure_window_minutes: Option<i32>,
    /// ...and the window has at least this many calls.
    #[arg(long, value_name = "CALLS")]
    failure_min_calls: Option<i32>,
    /// Alert when calls wait and no transcription worker reported in for this long.
    #[arg(long, value_name = "MINUTES")]
    worker_silence_minutes: Option<i32>,
    /// Alert when this many calls reached the dead letter within the window.
    #[arg(long, value_name = "CALLS")]
    dead_letter_threshold: Option<i32>,
    #[arg(long, value_name = "MINUTES")]
    dead_letter_window_minutes: Option<i32>,
}

impl AlertSetArgs {
    fn apply(&self, settings: &mut AlertSettings) {
        if self.disable {
            settings.enabled = false;
        }
        if self.enable {
            settings.enabled = true;
        }
        let fields = [
            (&mut settings.backlog_minutes, self.backlog_minutes),
            (
                &mut settings.failure_window_minutes,
                self.failure_window_minutes,
            ),
            (&mut settings.failure_min_calls, self.failure_min_calls),
            (
                &mut settings.worker_silence_minutes,
                self.worker_silence_minutes,
            ),
            (
                &mut settings.dead_letter_threshold,
                self.dead_letter_threshold,
            ),
            (
                &mut settings.dead_letter_window_minutes,
                self.dead_letter_window_minutes,
            ),
        ];
        for (field, given) in fields {
            if let Some(value) = given {
                *field = value;
            }
        }
        if let Some(percent) = self.failure_rate_percent {
            settings.failure_rate_percent = percent;
        }
    }
}

pub async fn notify(settings: &Settings, args: NotifyArgs) -> Result<()> {
    let key = CredentialKey::from_env()?;
    let (url, pool) = migrated_pool(settings, 4).await?;
    let lane = delivery_lane(&url, pool, key, args.batch_size, args.public_url);
    print_report(&lane.run(args.until_idle, stop_on_signal()).await?);
    Ok(())
}

pub async fn channels_command(pool: &Pool, command: ChannelCommand) -> Result<()> {
    let mut client = pool.get().await?;
    match command {
        ChannelCommand::Add {
            org,
            name,
            target,
            routing,
        } => {
            let key = CredentialKey::from_env()?;
            let org = orgs::by_slug(&**client, &org).await?;
            let (target, shown) = target.target()?;
            let transaction = client.transaction().await?;
            channels::save(
                &*transaction,
                &key,
                org.id,
                &name,
                &routing.routing(),
                &target,
            )
            .await
            .with_context(|| format!("channel {name}"))?;
            transaction.commit().await?;
            println!("{} channel {name} of {} saved", target.kind(), org.slug);
            if let Some(secret) = shown {
                eprintln!(
                    "the signing secret, shown once (verify X-Callscript-Signature with it):"
                );
                println!("{secret}");
            }
        }
        ChannelCommand::List { org } => {
            let org = orgs::by_slug(&**client, &org).await?;
            for channel in channels::list(&**client, org.id).await? {
                let events: Vec<&str> = channel
                    .routing
                    .event_kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                let (policy, _) = policy::load(&**client, org.id, &channel.name).await?;
                let mut when = String::new();
                if let Some(quiet) = policy.quiet {
                    when.push_str(&format!(" quiet {quiet}"));
                }
                if let Some(limit) = policy.rate_limit {
                    when.push_str(&format!(" at most {limit}"));
                }
                println!(
                    "{:<20} {:<8} {:<8} events {:<16} flags from {:<8} {}{when}",
                    channel.name,
                    channel.kind,
                    if channel.routing.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    events.join(","),
                    channel.routing.min_severity,
                    destination(&channel)
                );
            }
        }
        ChannelCommand::Route { org, name, routing } => {
            let org = orgs::by_slug(&**client, &org).await?;
            channels::set_routing(&**client, org.id, &name, &routing.routing()).await?;
            println!("channel {name} of {} rerouted", org.slug);
        }
        ChannelCommand::Remove { org, name } => {
            let org = orgs::by_slug(&**client, &org).await?;
            channels::remove(&**client, org.id, &name).await?;
            println!("channel {name} of {} removed", org.slug);
        }
        ChannelCommand::Policy {
            org,
            name,
            quiet,
            quiet_bypass,
            rate_limit,
        } => {
            let org = orgs::by_slug(&**client, &org).await?;
            let (mut policy, timezone) = policy::load(&**client, org.id, &name).await?;
            let changing = quiet.is_some() || quiet_bypass.is_some() || rate_limit.is_some();
            if let Some(quiet) = quiet {
                policy.quiet = match quiet.as_str() {
                    "none" => None,
                    span => {
                        let (start, end) = policy::parse_quiet_span(span)?;
                        let bypass = policy.quiet.map_or(Some(Severity::Critical), |q| q.bypass);
                        Some(QuietHours { start, end, bypass })
                    }
                };
            }
            if let Some(bypass) = quiet_bypass {
                let Some(quiet) = policy.quiet.as_mut() else {
                    bail!("channel {name} has no quiet hours to bypass: give --quiet too");
                };
                quiet.bypass = match bypass.as_str() {
                    "none" => None,
                    severity => Some(
                        severity
                            .parse()
                            .with_context(|| format!("--quiet-bypass {severity}"))?,
                    ),
                };
            }
            if let Some(limit) = rate_limit {
                policy.rate_limit = match limit.as_str() {
                    "none" => None,
                    limit => Some(limit.parse::<RateLimit>()?),
                };
            }
            if changing {
                policy::save(&**client, org.id, &name, &policy).await?;
            }
            let quiet = policy
                .quiet
                .map_or_else(|| "none".to_owned(), |quiet| format!("{quiet} {timezone}"));
            let limit = policy
                .rate_limit
                .map_or_else(|| "none".to_owned(), |limit| limit.to_string());
            println!(
                "channel {name} of {}: quiet hours {quiet}, rate limit {limit}",
                org.slug
            );
        }
    }
    Ok(())
}

pub async fn alerts_command(pool: &Pool, command: AlertsCommand) -> Result<()> {
    let client = pool.get().await?;
    match command {
        AlertsCommand::Show { org, limit } => {
            let org = orgs::by_slug(&**client, &org).await?;
            let settings = alerts::settings(&**client, org.id).await?;
            print_alert_settings(&org.slug, &settings);
            for episode in alerts::episodes(&**client, org.id, limit.max(1)).await? {
                let started = episode.started_at.format("%Y-%m-%d %H:%M:%S UTC");
                match &episode.resolved {
                    None => println!(
                        "OPEN     {:<13} since {started}: {}",
                        episode.condition, episode.detail
                    ),
                    Some((at, detail)) => println!(
                        "resolved {:<13} {started} to {}: {} / {detail}",
                        episode.condition,
                        at.format("%H:%M:%S"),
                        episode.detail
                    ),
                }
            }
        }
        AlertsCommand::Set(args) => {
            let org = orgs::by_slug(&**client, &args.org).await?;
            let mut settings = alerts::settings(&**client, org.id).await?;
            args.apply(&mut settings);
            alerts::save_settings(&**client, org.id, &settings).await?;
            print_alert_settings(&org.slug, &settings);
        }
    }
    Ok(())
}

fn print_alert_settings(org: &str, settings: &AlertSettings) {
    if !settings.enabled {
        println!("queue health of {org}: not checked");
        return;
    }
    println!(
        "queue health of {org}: backlog from {} min; failures above {}% of at least {} calls in \
         {} min; no worker for {} min; {} dead letters in {} min",
        settings.backlog_minutes,
        settings.failure_rate_percent,
        settings.failure_min_calls,
        settings.failure_window_minutes,
        settings.worker_silence_minutes,
        settings.dead_letter_threshold,
        settings.dead_letter_window_minutes
    );
}

/// Where a listed channel sends, without its secret: a webhook's URL, an email channel's mail
/// server, login name, sender and recipients, an SMS channel's account, sender and recipients.
fn destination(channel: &ChannelInfo) -> String {
    match &channel.settings {
        Some(ChannelSettings::Email(email)) => {
            let smtp = &email.smtp;
            let login = smtp
                .username
                .as_ref()
                .map_or_else(String::new, |user| format!("{user}@"));
            let own_ca = if smtp.root_ca_pem.is_some() {
                ", own root CA"
            } else {
                ""
            };
            format!(
                "smtp {login}{}:{} ({}{own_ca}) from {} to {}",
                smtp.host,
                smtp.port,
                smtp.tls,
                email.from,
                email.to.join(",")
            )
        }
        Some(ChannelSettings::Sms(sms)) => {
            let api = if sms.api_base_url == TWILIO_API_URL {
                String::new()
            } else {
                format!(" via {}", sms.api_base_url)
            };
            format!(
                "twilio {}{api} from {} to {}",
                sms.account_sid,
                sms.from,
                sms.to.join(",")
            )
        }
        None => channel.url.clone().unwrap_or_default(),
    }
}
