//! Where recordings live: S3 (or any S3-protocol store) in production, a local directory on a
//! laptop. Both sit behind [`ObjectStore`]; lanes hold an `Arc<dyn ObjectStore>`.
//!
//! Every object carries the SHA-256 of its content, computed on `put` and stored with the
//! object (S3 user metadata; a sidecar file locally), so the vault can store idempotently and
//! the worker can verify what it reads.

mod local;
mod s3;
mod spool;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};

pub use local::LocalDirStore;
pub use s3::{S3Settings, S3Store};
pub use spool::{Spool, SpoolError};

/// An object's bytes as they arrive from the store.
pub type ObjectStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// What is known about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Hex SHA-256 of the content, when the object was stored by us.
    pub sha256: Option<String>,
    pub content_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {key:?} not found in {store}")]
    NotFound { store: String, key: String },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("invalid storage setting {setting}: {reason}")]
    Config {
        setting: &'static str,
        reason: String,
    },
    #[error("{operation} {key:?} in {store} failed: {reason}")]
    Backend {
        operation: &'static str,
        store: String,
        key: String,
        reason: String,
    },
}

#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// Makes the store ready for writes: the directory or the bucket exists afterwards.
    async fn prepare(&self) -> Result<(), StorageError>;
    /// Stores `body` under `key` (replacing what was there) and returns its info with SHA-256.
    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError>;
    /// Stores a spooled file under `key`, streamed from disk, with the spool's SHA-256.
    async fn put_spooled(
        &self,
        key: &str,
        spool: &Spool,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError>;
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;
    /// The object's bytes, or those of `range` (inclusive offsets within the object), streamed
    /// rather than held in memory.
    async fn get_stream(
        &self,
        key: &str,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ObjectStream, StorageError>;
    /// `None` when there is no such object.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError>;
    /// A URL that fetches the object without further credentials until `expires_in` passes.
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<String, StorageError>;
    /// Where this store keeps its objects, for messages (never includes secrets).
    fn describe(&self) -> String;
}

/// Hex SHA-256, the content hash used for objects and calls.
pub fn sha256_hex(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Keys are relative paths of safe characters: they map onto S3 keys and local paths alike.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let invalid = |reason| {
        Err(StorageError::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() || key.len() > 1024 {
        return invalid("must be 1 to 1024 characters");
    }
    if key.starts_with('/') || key.ends_with('/') {
        return invalid("must not start or end with '/'");
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return invalid("must not contain empty, '.' or '..' segments");
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '='))
    {
        return invalid("may only contain ASCII letters, digits and / - _ . =");
    }
    Ok(())
}

/// Opens the store named by a storage URL: `s3://bucket[/prefix]` (settings for the endpoint
/// and credentials in `s3`), `file:///abs/dir`, or a plain directory path.
pub fn open(url: &str, s3: S3Settings) -> Result<Arc<dyn ObjectStore>, StorageError> {
    const SETTING: &str = "CALLSCRIPT_STORAGE";
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::Config {
                setting: SETTING,
                reason: format!("{url:?} names no bucket (expected s3://bucket[/prefix])"),
            });
        }
        return Ok(Arc::new(S3Store::new(bucket, prefix, s3)?));
    }
    let dir = url.strip_prefix("file://").unwrap_or(url);
    if dir.is_empty() || url.contains("://") && !url.starts_with("file://") {
        return Err(StorageError::Config {
            setting: SETTING,
            reason: format!("{url:?} is neither s3://bucket[/prefix] nor a directory"),
        });
    }
    Ok(Arc::new(LocalDirStore::new(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("orgs/0f/upload/abc.flac").is_ok());
        for bad in [
            "", "/abs", "a//b", "a/../b", "a/./b", "sp ace", "trail/", "ü",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn storage_urls_are_checked() {
        assert!(open("s3://", S3Settings::default()).is_err());
        assert!(open("gs://bucket", S3Settings::default()).is_err());
        assert_eq!(
            open("file:///tmp/objects", S3Settings::default())
                .unwrap()
                .describe(),
            "directory /tmp/objects"
        );
    }
}
