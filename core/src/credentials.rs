//! Per-organization secrets (a Ringba API token, a LiveKit API key's secret), encrypted at rest
//! in `core.organization_credentials`.
//!
//! Secrets are sealed with ChaCha20-Poly1305 under a 32-byte key from the environment
//! (`CALLSCRIPT_CREDENTIALS_KEY`, base64), a random nonce per write, and the row's identity
//! (org, kind, label) as associated data: a ciphertext copied onto another org's row does not
//! open. The key id stored with each row (a hash prefix of the key, never the key) says which
//! key a row needs, so a wrong or rotated key is named instead of failing obscurely.
//! [`Secret`] never shows its value in `Debug` or `Display`: it cannot reach a log by accident.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use sha2::{Digest, Sha256};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::db::DbError;

/// The environment variable holding the key.
pub const KEY_VARIABLE: &str = "CALLSCRIPT_CREDENTIALS_KEY";

/// A secret value; shown as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "{KEY_VARIABLE} is not set: generate a key with `head -c 32 /dev/urandom | base64` and \
         keep it with the deployment's secrets"
    )]
    NoKey,
    #[error("{KEY_VARIABLE} must be 32 bytes in base64 (44 characters): {0}")]
    BadKey(String),
    #[error(
        "{kind}/{label} of organization {org_id} was sealed with key {stored}, but \
         {KEY_VARIABLE} is key {current}"
    )]
    WrongKey {
        org_id: Uuid,
        kind: String,
        label: String,
        stored: String,
        current: String,
    },
    #[error("{kind}/{label} of organization {org_id} does not open: the row was altered or moved")]
    Tampered {
        org_id: Uuid,
        kind: String,
        label: String,
    },
    #[error("organization {org_id} has no {kind}/{label} credential")]
    Missing {
        org_id: Uuid,
        kind: String,
        label: String,
    },
    #[error(
        "credential kind {0:?}: use lowercase letters, digits and _ (ringba, livekit), at most 32"
    )]
    BadKind(String),
    #[error("credential endpoint {0:?} is not an http:// or https:// URL")]
    BadEndpoint(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CredentialError {
    /// The organization whose credential this is about, when it is about one.
    pub fn org_id(&self) -> Option<Uuid> {
        match self {
            Self::WrongKey { org_id, .. }
            | Self::Tampered { org_id, .. }
            | Self::Missing { org_id, .. } => Some(*org_id),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for CredentialError {
    fn from(e: tokio_postgres::Error) -> Self {
        CredentialError::Db(e.into())
    }
}

/// The sealing key and its public id.
#[derive(Clone)]
pub struct CredentialKey {
    cipher: ChaCha20Poly1305,
    id: String,
}

impl std::fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CredentialKey {
    /// The key in `CALLSCRIPT_CREDENTIALS_KEY`.
    pub fn from_env() -> Result<Self, CredentialError> {
        match std::env::var(KEY_VARIABLE) {
            Ok(value) if !value.trim().is_empty() => Self::from_base64(&value),
            _ => Err(CredentialError::NoKey),
        }
    }

    pub fn from_base64(text: &str) -> Result<Self, CredentialError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| CredentialError::BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(CredentialError::BadKey(format!(
                "it is {} bytes",
                bytes.len()
            )));
        }
        Ok(Self {
            cipher: ChaCha20Poly1305::new_from_slice(&bytes).expect("a 32-byte key"),
            id: hex::encode(&Sha256::digest(&bytes)[..6]),
        })
    }

    /// A hash prefix of the key that names it without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What identifies a credential, bound into its ciphertext.
fn associated_data(org_id: Uuid, kind: &str, label: &str) -> Vec<u8> {
    format!("callscript-credential\0{org_id}\0{kind}\0{label}").into_bytes()
}

/// A stored credential without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub kind: String,
    pub label: String,
    /// The non-secret half (a Ringba account id, a LiveKit API key).
    pub public_id: Option<String>,
    /// The API's base URL when not the vendor's default.
    pub endpoint: Option<String>,
    pub key_id: String,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What a credential is, apart from its secret.
#[derive(Debug, Clone, Copy)]
pub struct CredentialSpec<'a> {
    /// What it is for: `ringba`, `livekit`, ...
    pub kind: &'a str,
    /// Several of one kind (e.g. Ringba accounts) are told apart by label.
    pub label: &'a str,
    pub public_id: Option<&'a str>,
    pub endpoint: Option<&'a str>,
}

/// An opened credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub org_id: Uuid,
    pub kind: String,
    pub label: String,
    pub public_id: Option<String>,
    pub endpoint: Option<String>,
    pub secret: Secret,
}

/// Stores (or replaces) `secret` as the org's `spec.kind`/`spec.label` credential.
pub async fn store(
    client: &impl GenericClient,
    key: &CredentialKey,
    org_id: Uuid,
    spec: &CredentialSpec<'_>,
    secret: &Secret,
) -> Result<(), CredentialError> {
    let CredentialSpec {
        kind,
        label,
        public_id,
        endpoint,
    } = *spec;
    let mut chars = kind.chars();
    let valid = kind.len() <= 32
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(CredentialError::BadKind(kind.into()));
    }
    if let Some(endpoint) = endpoint {
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(CredentialError::BadEndpoint(endpoint.into()));
        }
    }
    let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = associated_data(org_id, kind, label);
    let ciphertext = key
        .cipher
        .encrypt(
            &nonce,
            Payload {
                msg: secret.expose().as_bytes(),
                aad: &aad,
            },
        )
        .expect("sealing cannot fail for in-memory sizes");
    client
        .execute(
            "INSERT INTO core.organization_credentials
               (org_id, kind, label, public_id, endpoint, key_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (org_id, kind, label) DO UPDATE SET
               public_id = excluded.public_id, endpoint = excluded.endpoint,
               key_id = excluded.key_id, nonce = excluded.nonce,
               ciphertext = excluded.ciphertext, updated_at = now()",
            &[
                &org_id,
                &kind,
                &label,
                &public_id,
                &endpoint,
                &key.id,
                &nonce.as_slice(),
                &ciphertext,
            ],
        )
        .await?;
    Ok(())
}

const SELECT_SEALED: &str = "SELECT org_id, kind, label, public_id, endpoint, key_id, nonce,
        ciphertext
   FROM core.organization_credentials";

/// Opens one row of [`SELECT_SEALED`].
fn open_row(key: &CredentialKey, row: &tokio_postgres::Row) -> Result<Credential, CredentialError> {
    let org_id: Uuid = row.get(0);
    let kind: String = row.get(1);
    let label: String = row.get(2);
    let stored: String = row.get(5);
    if stored != key.id {
        return Err(CredentialError::WrongKey {
            org_id,
            kind,
            label,
            stored,
            current: key.id.clone(),
        });
    }
    let nonce: Vec<u8> = row.get(6);
    let ciphertext: Vec<u8> = row.get(7);
    let plain = (nonce.len() == 12)
        .then(|| {
            key.cipher
                .decrypt(
                    chacha20poly1305::Nonce::from_slice(&nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &associated_data(org_id, &kind, &label),
                    },
                )
                .ok()
        })
        .flatten()
        .and_then(|plain| String::from_utf8(plain).ok());
    let Some(secret) = plain else {
        return Err(CredentialError::Tampered {
            org_id,
            kind,
            label,
        });
    };
    Ok(Credential {
        org_id,
        kind,
        label,
        public_id: row.get(3),
        endpoint: row.get(4),
        secret: Secret(secret),
    })
}

/// The org's `kind`/`label` credential, opened.
pub async fn load(
    client: &impl GenericClient,
    key: &CredentialKey,
    org_id: Uuid,
    kind: &str,
    label: &str,
) -> Result<Credential, CredentialError> {
    let row = client
        .query_opt(
            &format!("{SELECT_SEALED} WHERE org_id = $1 AND kind = $2 AND label = $3"),
            &[&org_id, &kind, &label],
        )
        .await?
        .ok_or_else(|| CredentialError::Missing {
            org_id,
            kind: kind.into(),
            label: label.into(),
        })?;
    open_row(key, &row)
}

/// Every credential of `kind` (of one org, or of all), each opened or the reason it does not
/// open: what an ingest lane polls, so one org's broken credential does not stop the others.
pub async fn load_kind(
    client: &impl GenericClient,
    key: &CredentialKey,
    kind: &str,
    org_id: Option<Uuid>,
) -> Result<Vec<Result<Credential, CredentialError>>, CredentialError> {
    Ok(client
        .query(
            &format!(
                "{SELECT_SEALED} WHERE kind = $1 AND ($2::uuid IS NULL OR org_id = $2)
                 ORDER BY org_id, label"
            ),
            &[&kind, &org_id],
        )
        .await?
        .iter()
        .map(|row| open_row(key, row))
        .collect())
}

/// The credentials of `kind` whose public half is `public_id` (a LiveKit webhook names its API
/// key), each opened or the reason it does not open; usually one.
pub async fn find_by_public_id(
    client: &impl GenericClient,
    key: &CredentialKey,
    kind: &str,
    public_id: &str,
) -> Result<Vec<Result<Credential, CredentialError>>, CredentialError> {
    Ok(client
        .query(
            &format!("{SELECT_SEALED} WHERE kind = $1 AND public_id = $2 ORDER BY org_id, label"),
            &[&kind, &public_id],
        )
        .await?
        .iter()
        .map(|row| open_row(key, row))
        .collect())
}

/// The org's credentials, secrets left out.
pub async fn list(
    client: &impl GenericClient,
    org_id: Uuid,
) -> Result<Vec<CredentialInfo>, CredentialError> {
    Ok(client
        .query(
            "SELECT kind, label, public_id, endpoint, key_id, updated_at
             FROM core.organization_credentials WHERE org_id = $1 ORDER BY kind, label",
            &[&org_id],
        )
        .await?
        .iter()
        .map(|row| CredentialInfo {
            kind: row.get(0),
            label: row.get(1),
            public_id: row.get(2),
            endpoint: row.get(3),
            key_id: row.get(4),
            updated_at: row.get(5),
        })
        .collect())
}

/// Deletes a credential; whether there was one.
pub async fn delete(
    client: &impl GenericClient,
    org_id: Uuid,
    kind: &str,
    label: &str,
) -> Result<bool, CredentialError> {
    Ok(client
        .execute(
            "DELETE FROM core.organization_credentials
             WHERE org_id = $1 AND kind = $2 AND label = $3",
            &[&org_id, &kind, &label],
        )
        .await?
        > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_keys_are_checked() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?}"),
            "[redacted] Secret([redacted])"
        );
        assert!(matches!(
            CredentialKey::from_base64("c2hvcnQ="),
            Err(CredentialError::BadKey(_))
        ));
        assert!(matches!(
            CredentialKey::from_base64("not base64!"),
            Err(CredentialError::BadKey(_))
        ));
        let zeros = format!("{}=", "A".repeat(43));
        let key = CredentialKey::from_base64(&zeros).unwrap();
        assert_eq!(key.id().len(), 12);
        assert_eq!(CredentialKey::from_base64(&zeros).unwrap().id(), key.id());
        assert!(!format!("{key:?}").contains(&zeros));
    }
}
