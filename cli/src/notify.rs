//! `callscript notify` (the delivery lane) and `callscript org notify …` (channels and routing).

use anyhow::{bail, Context, Result};
use callscript_core::credentials::{CredentialKey, Secret};
use callscript_core::db::Pool;
use callscript_core::model::Severity;
use callscript_core::orgs;
use callscript_notify::channels::{self, Routing, Target};
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
    pub fn lane(&self, pool: &Pool) -> Result<Option<NotifyLane>> {
        if !self.notify {
            return Ok(None);
        }
        let key = CredentialKey::from_env().context("--notify opens channel secrets")?;
        Ok(Some(delivery_lane(
            pool.clone(),
            key,
            NotifyConfig::default().batch_size,
            self.notify_public_url.clone(),
        )))
    }
}

fn delivery_lane(
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
}

/// Prints what a delivery lane did.
pub fn print_report(report: &NotifyReport) {
    println!(
        "notify: {} delivered, {} to retry, {} failed, {} lost to an expired lease",
        report.delivered, report.retrying, report.failed, report.lost
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

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Add a channel (or replace one of that name): `--slack` reads the Slack incoming-webhook
    /// URL from standard input; `--webhook URL` reads the signing secret from standard input,
    /// or makes one with `--generate-secret` and prints it once.
    Add {
        org: String,
        name: String,
        #[arg(long, conflicts_with = "webhook", required_unless_present = "webhook")]
        slack: bool,
        #[arg(long)]
        webhook: Option<String>,
        #[arg(long, requires = "webhook")]
        generate_secret: bool,
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
}

pub async fn notify(settings: &Settings, args: NotifyArgs) -> Result<()> {
    let key = CredentialKey::from_env()?;
    let (_, pool) = migrated_pool(settings, 4).await?;
    let lane = delivery_lane(pool, key, args.batch_size, args.public_url);
    print_report(&lane.run(args.until_idle, stop_on_signal()).await?);
    Ok(())
}

pub async fn channels_command(pool: &Pool, command: ChannelCommand) -> Result<()> {
    let mut client = pool.get().await?;
    match command {
        ChannelCommand::Add {
            org,
            name,
            slack,
            webhook,
            generate_secret,
            routing,
        } => {
            let key = CredentialKey::from_env()?;
            let org = orgs::by_slug(&**client, &org).await?;
            let (target, shown) = match (slack, webhook) {
                (true, _) => (
                    Target::Slack {
                        webhook_url: Secret::new(read_secret(
                            "e.g. `printenv SLACK_WEBHOOK_URL | callscript org notify add ...`",
                        )?),
                    },
                    None,
                ),
                (false, Some(url)) => {
                    let secret = if generate_secret {
                        channels::new_signing_secret()
                    } else {
                        Secret::new(read_secret("or pass --generate-secret")?)
                    };
                    let shown = generate_secret.then(|| secret.expose().to_owned());
                    (
                        Target::Webhook {
                            url,
                            signing_secret: secret,
                        },
                        shown,
                    )
                }
                (false, None) => bail!("give --slack or --webhook URL"),
            };
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
                println!(
                    "{:<20} {:<8} {:<8} events {:<16} flags from {:<8} {}",
                    channel.name,
                    channel.kind,
                    if channel.routing.enabled {
                        "enabled"
                    } else {
                        "disabled"
                    },
                    events.join(","),
                    channel.routing.min_severity,
                    channel.url.as_deref().unwrap_or("")
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
    }
    Ok(())
}
