//! Connecting to Postgres, over TLS as the URL's `sslmode` and `sslrootcert` ask ([`tls`],
//! [`tls_settings`]). Every failure to connect becomes one line that names the setting the URL
//! came from (`DATABASE_URL` by default) with the password hidden, never a panic.

mod tls;
mod tls_settings;

use std::time::Duration;

pub use deadpool_postgres::Pool;
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::Config;

use tls::MakeRustlsConnect;
pub use tls::RustlsStream;
pub use tls_settings::SslMode;
use tls_settings::TlsSettings;

/// A dedicated connection's driver: spawn it, and the client works until it is dropped.
pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, RustlsStream>;

/// A parsed URL: what tokio-postgres connects to, and how it encrypts.
struct Target {
    config: Config,
    tls: TlsSettings,
}

/// Where a database URL came from, and the URL itself.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The setting that supplied it, named in every error (e.g. `DATABASE_URL`).
    pub setting: &'static str,
    pub url: String,
}

impl DatabaseUrl {
    pub fn new(setting: &'static str, url: impl Into<String>) -> Self {
        Self {
            setting,
            url: url.into(),
        }
    }

    /// Reads `DATABASE_URL` from the environment.
    pub fn from_env() -> Result<Self, DbError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Ok(Self::new("DATABASE_URL", url)),
            _ => Err(DbError::Missing {
                setting: "DATABASE_URL",
            }),
        }
    }

    fn parse(&self) -> Result<Target, DbError> {
        let invalid = |reason| DbError::InvalidUrl {
            setting: self.setting,
            reason,
        };
        let (rest, tls) = tls_settings::split(&self.url).map_err(invalid)?;
        let mut config: Config = rest.parse().map_err(|e| invalid(root_cause(&e)))?;
        config.ssl_mode(tls.mode.negotiation());
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("callscript");
        }
        Ok(Target { config, tls })
    }

    /// The TLS connector both kinds of connection use.
    fn connector(&self, target: &Target) -> Result<MakeRustlsConnect, DbError> {
        MakeRustlsConnect::new(&target.tls).map_err(|reason| DbError::Tls {
            setting: self.setting,
            reason,
        })
    }

    /// The URL without its password, fit for logs and errors.
    pub fn redacted(&self) -> String {
        match self.parse() {
            Ok(target) => describe_target(&target.config),
            Err(_) => "<unparseable URL>".to_owned(),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.setting, self.redacted())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{setting} is not set: give the Postgres URL, e.g. postgres://user@127.0.0.1:5432/callscript")]
    Missing { setting: &'static str },
    #[error("{setting} is not a valid Postgres URL: {reason}")]
    InvalidUrl {
        setting: &'static str,
        reason: String,
    },
    #[error("{setting}: {reason}")]
    Tls {
        setting: &'static str,
        reason: String,
    },
    #[error("cannot connect to the database at {setting}={target}: {reason}")]
    Connect {
        setting: &'static str,
        target: String,
        reason: String,
    },
    #[error("database error: {0}")]
    Query(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Query(describe_pg_error(&e))
    }
}

impl From<crate::model::UnknownLabel> for DbError {
    fn from(e: crate::model::UnknownLabel) -> Self {
        DbError::Query(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => DbError::Query(other.to_string()),
        }
    }
}

/// A pool of connections, checked once so a wrong URL fails here and not at first use.
pub async fn connect_pool(url: &DatabaseUrl, max_size: usize) -> Result<Pool, DbError> {
    let target = url.parse()?;
    let manager = Manager::from_config(
        target.config.clone(),
        url.connector(&target)?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_size.max(1))
        .build()
        .map_err(|e| DbError::Query(e.to_string()))?;
    match pool.get().await {
        Ok(_) => Ok(pool),
        Err(deadpool_postgres::PoolError::Backend(e)) => Err(connect_error(url, &target, &e)),
        Err(e) => Err(DbError::Connect {
            setting: url.setting,
            target: describe_target(&target.config),
            reason: e.to_string(),
        }),
    }
}

/// One dedicated connection (for LISTEN, or for work that must keep a session such as an
/// advisory lock). The connection task runs until the client is dropped.
pub async fn connect_one(
    url: &DatabaseUrl,
) -> Result<(tokio_postgres::Client, Connection), DbError> {
    let target = url.parse()?;
    target
        .config
        .connect(url.connector(&target)?)
        .await
        .map_err(|e| connect_error(url, &target, &e))
}

fn connect_error(url: &DatabaseUrl, target: &Target, e: &tokio_postgres::Error) -> DbError {
    DbError::Connect {
        setting: url.setting,
        target: describe_target(&target.config),
        reason: refusal_reason(&target.tls, e),
    }
}

/// Why a connection failed, with what to change when TLS is the reason: the server insisting
/// on TLS under `sslmode=disable`, or a handshake or certificate failing under the settings
/// named.
fn refusal_reason(tls: &TlsSettings, e: &tokio_postgres::Error) -> String {
    let reason = describe_pg_error(e);
    if tls.mode == SslMode::Disable && is_unencrypted_refusal(e) {
        return format!(
            "the server takes TLS connections only (pg_hba.conf hostssl) and {} turns TLS off: \
             use sslmode=require or stronger ({reason})",
            tls.describe()
        );
    }
    // tokio-postgres exposes no error kind; a TLS failure is known by its message.
    if e.as_db_error().is_none() && e.to_string().starts_with("error performing TLS handshake") {
        return format!("TLS failed under {}: {reason}", tls.describe());
    }
    reason
}

/// The server's "no pg_hba.conf entry for … no encryption" ("SSL off" before PostgreSQL 14).
fn is_unencrypted_refusal(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && (db.message().ends_with("no encryption") || db.message().ends_with("SSL off"))
    })
}

fn describe_target(config: &Config) -> String {
    let user = config.get_user().unwrap_or("<os user>");
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("<default>");
    format!("postgres://{user}@{host}:{port}/{db}")
}

/// A Postgres error as one readable line: the server's message with its detail and hint, or
/// the innermost I/O cause ("Connection refused") for client-side failures.
pub fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut line = db.message().to_owned();
        if let Some(detail) = db.detail() {
            line.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            line.push_str(&format!("; hint: {hint}"));
        }
        if let Some(where_) = db.where_() {
            line.push_str(&format!("; at {where_}"));
        }
        return line;
    }
    root_cause(e)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if text.is_empty() {
        e.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        let url = DatabaseUrl::new(
            "DATABASE_URL",
            "postgres://alice:s3cret@db.example:6543/calls",
        );
        assert_eq!(url.redacted(), "postgres://alice@db.example:6543/calls");
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[tokio::test]
    async fn unreachable_database_names_the_setting() {
        // Port 1 on loopback: nothing listens there.
        let url = DatabaseUrl::new("DATABASE_URL", "postgres://someone:pw@127.0.0.1:1/none");
        let err = connect_pool(&url, 1).await.unwrap_err().to_string();
        assert!(
            err.starts_with("cannot connect to the database at DATABASE_URL=postgres://someone@127.0.0.1:1/none:"),
            "{err}"
        );
        assert!(!err.contains("pw"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn invalid_url_names_the_setting() {
        let url = DatabaseUrl::new("DATABASE_URL", "postgres://host:notaport/db");
        let err = url.parse().err().unwrap().to_string();
        assert!(
            err.starts_with("DATABASE_URL is not a valid Postgres URL"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_sslmode_names_the_setting() {
        let url = DatabaseUrl::new("DATABASE_URL", "postgres://u@h/db?sslmode=verify");
        let err = url.parse().err().unwrap().to_string();
        assert!(
            err.starts_with("DATABASE_URL is not a valid Postgres URL: sslmode must be one of"),
            "{err}"
        );
    }

    #[test]
    fn redacts_urls_with_settings_only_libpq_knows() {
        let url = DatabaseUrl::new(
            "DATABASE_URL",
            "postgres://alice:s3cret@db.example/calls?sslmode=verify-full&sslrootcert=/ca.pem",
        );
        assert_eq!(url.redacted(), "postgres://alice@db.example:5432/calls");
    }
}
