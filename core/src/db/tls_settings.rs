//! The TLS settings of a connection string, read as libpq reads them: `sslmode` (`disable`,
//! `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`. tokio-postgres knows
//! only the first three modes and no `sslrootcert`, so both are taken out of the string before
//! it parses the rest. libpq's `PGSSLMODE` and `PGSSLROOTCERT` are not read: library code
//! never reads the environment (ARCHITECTURE.md), and the URL says it all.

use std::ops::Range;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

const SSLMODE: &str = "sslmode";
const SSLROOTCERT: &str = "sslrootcert";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, the certificate unchecked (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate checked only when `sslrootcert` is given.
    Require,
    /// TLS, the certificate chained to a trusted CA; any host name.
    VerifyCa,
    /// TLS, the certificate chained to a trusted CA and issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 5] = [
        SslMode::Disable,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.label() == value)
    }

    /// What tokio-postgres is told: whether to ask for TLS and whether to insist on it.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// The authorities a checked server certificate must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCertificates {
    /// The public web CAs (Mozilla's list, compiled in): no `sslrootcert`, or
    /// `sslrootcert=system` as libpq 16 spells it.
    Public,
    /// The CA certificates of a PEM file, and no others (libpq's `sslrootcert=<file>`).
    File(PathBuf),
}

/// What is checked of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateCheck {
    Nothing,
    Chain,
    ChainAndHostName,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub roots: RootCertificates,
    /// Whether `sslrootcert` was given at all: libpq's `require` then checks the chain.
    root_cert_given: bool,
}

impl TlsSettings {
    pub fn check(&self) -> CertificateCheck {
        match self.mode {
            SslMode::Disable | SslMode::Prefer => CertificateCheck::Nothing,
            SslMode::Require if self.root_cert_given => CertificateCheck::Chain,
            SslMode::Require => CertificateCheck::Nothing,
            SslMode::VerifyCa => CertificateCheck::Chain,
            SslMode::VerifyFull => CertificateCheck::ChainAndHostName,
        }
    }

    /// The settings as a person would write them, naming what was trusted when a certificate is
    /// checked: `sslmode=verify-full, sslrootcert=/etc/ca.pem`.
    pub fn describe(&self) -> String {
        let mode = format!("{SSLMODE}={}", self.mode.label());
        if self.check() == CertificateCheck::Nothing {
            return mode;
        }
        match &self.roots {
            RootCertificates::File(path) => format!("{mode}, {SSLROOTCERT}={}", path.display()),
            RootCertificates::Public => {
                format!("{mode} (public CAs trusted; a private CA goes in {SSLROOTCERT})")
            }
        }
    }
}

/// Splits the TLS settings out of `connection_string` (a `postgres://` URL or libpq's
/// `key=value` form): the string left for tokio-postgres, and the settings (libpq's defaults
/// for what it lacks). An error names the bad value.
pub fn split(connection_string: &str) -> Result<(String, TlsSettings), String> {
    let params = if is_url(connection_string) {
        url_params(connection_string)
    } else {
        key_value_params(connection_string)
    };
    let mut rest = connection_string.to_owned();
    let (mut mode, mut root_cert) = (None, None);
    // Back to front, so the ranges still to be cut stay where they were.
    for param in params.iter().rev() {
        match param.key.as_str() {
            SSLMODE => mode = mode.or(Some(param.value.clone())),
            SSLROOTCERT => root_cert = root_cert.or(Some(param.value.clone())),
            _ => continue,
        }
        rest.replace_range(param.span.clone(), "");
    }
    if is_url(&rest) {
        rest = tidy_query(rest);
    }

    let mode = match mode {
        None => SslMode::Prefer,
        Some(mode) => SslMode::parse(&mode).ok_or_else(|| {
            let labels = SslMode::ALL.map(SslMode::label).join(", ");
            format!("{SSLMODE} must be one of {labels}, not {mode:?}")
        })?,
    };
    let roots = match root_cert.as_deref() {
        None | Some("system") => RootCertificates::Public,
        Some(path) => RootCertificates::File(PathBuf::from(path)),
    };
    let settings = TlsSettings {
        mode,
        roots,
        root_cert_given: root_cert.is_some(),
    };
    Ok((rest, settings))
}

/// One parameter of a connection string, decoded, with the bytes it takes up.
struct Param {
    key: String,
    value: String,
    span: Range<usize>,
}

fn is_url(connection_string: &str) -> bool {
    connection_string.starts_with("postgres://") || connection_string.starts_with("postgresql://")
}

/// The `key=value` pairs after `?`, each span with its `&` separator.
fn url_params(url: &str) -> Vec<Param> {
    let Some(query_start) = url.find('?').map(|i| i + 1) else {
        return Vec::new();
    };
    let mut params = Vec::new();
    let mut start = query_start;
    for pair in url[query_start..].split('&') {
        let end = start + pair.len();
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        params.push(Param {
            key: percent_decode_str(key).decode_utf8_lossy().into_owned(),
            value: percent_decode_str(value).decode_utf8_lossy().into_owned(),
            // The separator after it, so the pairs left stay joined by single `&`s.
            span: start..(end + 1).min(url.len()),
        });
        start = end + 1;
    }
    params
}

/// A URL whose parameters were cut: no dangling `&` or empty `?` left behind.
fn tidy_query(url: String) -> String {
    let trimmed = url.trim_end_matches('&');
    trimmed.strip_suffix('?').unwrap_or(trimmed).to_owned()
}

/// The parameters of libpq's `key = value` form, values quoted (`'…'`) or not, with
/// backslash escapes, as tokio-postgres reads them. A malformed string yields what was read
/// before the fault: tokio-postgres then reports the fault itself.
fn key_value_params(s: &str) -> Vec<Param> {
    let mut params = Vec::new();
    let mut chars = s.char_indices().peekable();
    let skip_whitespace = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_whitespace(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            return params;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_whitespace(&mut chars);
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return params;
        }
        skip_whitespace(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if (quoted && c == '\'') || (!quoted && c.is_whitespace()) {
                break;
            }
            chars.next();
            if c == '\\' {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            } else {
                value.push(c);
            }
        }
        if quoted && chars.next_if(|(_, c)| *c == '\'').is_none() {
            return params;
        }
        let end = chars.peek().map_or(s.len(), |&(i, _)| i);
        params.push(Param {
            key,
            value,
            span: start..end,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_settings_are_taken_out_and_the_rest_kept() {
        let (rest, settings) = split(
            "postgres://u:pw@db.example:5432/calls?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem"
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:pw@db.example:5432/calls?application_name=x"
        );
        assert_eq!(settings.mode, SslMode::VerifyFull);
        assert_eq!(settings.roots, RootCertificates::File("/etc/ca.pem".into()));
        assert_eq!(settings.check(), CertificateCheck::ChainAndHostName);
    }

    #[test]
    fn a_url_with_only_tls_settings_loses_its_query() {
        let (rest, settings) =
            split("postgres://u@h/db?sslrootcert=system&sslmode=verify-ca").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(settings.roots, RootCertificates::Public);
        assert_eq!(settings.check(), CertificateCheck::Chain);
    }

    #[test]
    fn key_value_settings_are_taken_out_quoted_or_not() {
        let (rest, settings) =
            split(r"host=h sslmode = require  sslrootcert='/my certs/it\'s.pem' dbname=calls")
                .unwrap();
        assert_eq!(
            rest.split_whitespace().collect::<Vec<_>>(),
            ["host=h", "dbname=calls"]
        );
        assert_eq!(settings.mode, SslMode::Require);
        assert_eq!(
            settings.roots,
            RootCertificates::File("/my certs/it's.pem".into())
        );
        // libpq: `require` with a root certificate checks the chain.
        assert_eq!(settings.check(), CertificateCheck::Chain);
    }

    #[test]
    fn without_settings_libpq_prefers_tls_unchecked() {
        let (rest, settings) = split("postgres://u@h/db").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(settings.mode, SslMode::Prefer);
        assert_eq!(settings.check(), CertificateCheck::Nothing);
        assert_eq!(settings.describe(), "sslmode=prefer");
    }

    #[test]
    fn an_unknown_mode_lists_the_known_ones() {
        let err = split("postgres://u@h/db?sslmode=verify").unwrap_err();
        assert_eq!(
            err,
            r#"sslmode must be one of disable, prefer, require, verify-ca, verify-full, not "verify""#
        );
    }

    #[test]
    fn verifying_without_a_root_certificate_says_how_to_give_one() {
        let (_, settings) = split("postgres://u@h/db?sslmode=verify-full").unwrap();
        assert_eq!(settings.roots, RootCertificates::Public);
        assert_eq!(
            settings.describe(),
            "sslmode=verify-full (public CAs trusted; a private CA goes in sslrootcert)"
        );
    }
}
