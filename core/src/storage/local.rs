//! A directory as an object store: `<root>/<key>` holds the content and `<root>/<key>.meta`
//! (JSON) its SHA-256 and content type. Writes go to a temporary file renamed into place, so a
//! reader never sees half an object.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{sha256_hex, validate_key, ObjectInfo, ObjectStore, StorageError};

pub struct LocalDirStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Sidecar {
    sha256: String,
    content_type: String,
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn backend(
        &self,
        operation: &'static str,
        key: &str,
        e: impl std::fmt::Display,
    ) -> StorageError {
        StorageError::Backend {
            operation,
            store: self.describe(),
            key: key.to_owned(),
            reason: e.to_string(),
        }
    }
}

fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

async fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

#[async_trait]
impl ObjectStore for LocalDirStore {
    async fn prepare(&self) -> Result<(), StorageError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| self.backend("create directory", "", e))
    }

    async fn put(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let path = self.path(key)?;
        let sha256 = sha256_hex(&body);
        let sidecar = serde_json::to_vec(&Sidecar {
            sha256: sha256.clone(),
            content_type: content_type.to_owned(),
        })
        .expect("sidecar serializes");
        let write = async {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            write_atomically(&path, &body).await?;
            write_atomically(&sidecar_path(&path), &sidecar).await
        };
        write.await.map_err(|e| self.backend("put", key, e))?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: body.len() as u64,
            sha256: Some(sha256),
            content_type: Some(content_type.to_owned()),
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(body) => Ok(Bytes::from(body)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound {
                store: self.describe(),
                key: key.to_owned(),
            }),
            Err(e) => Err(self.backend("get", key, e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        let path = self.path(key)?;
        let size = match tokio::fs::metadata(&path).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.backend("head", key, e)),
        };
        let sidecar = tokio::fs::read(sidecar_path(&path))
            .await
            .ok()
            .and_then(|raw| serde_json::from_slice::<Sidecar>(&raw).ok());
        Ok(Some(ObjectInfo {
            key: key.to_owned(),
            size,
            sha256: sidecar.as_ref().map(|s| s.sha256.clone()),
            content_type: sidecar.map(|s| s.content_type),
        }))
    }

    /// A local file needs no signature: the URL is the file's own, valid while it exists.
    async fn presign_get(&self, key: &str, _expires_in: Duration) -> Result<String, StorageError> {
        let path = self.path(key)?;
        let absolute = std::path::absolute(&path).map_err(|e| self.backend("presign", key, e))?;
        Ok(format!("file://{}", absolute.display()))
    }

    fn describe(&self) -> String {
        format!("directory {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_with_hash_and_missing_objects() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path());
        let info = store
            .put(
                "org/a/call.wav",
                Bytes::from_static(b"RIFF...."),
                "audio/wav",
            )
            .await
            .unwrap();
        assert_eq!(
            info.sha256.as_deref(),
            Some(sha256_hex(b"RIFF....").as_str())
        );
        assert_eq!(
            store.get("org/a/call.wav").await.unwrap(),
            Bytes::from_static(b"RIFF....")
        );
        assert_eq!(store.head("org/a/call.wav").await.unwrap(), Some(info));
        assert_eq!(store.head("org/a/other.wav").await.unwrap(), None);
        assert!(matches!(
            store.get("org/a/other.wav").await,
            Err(StorageError::NotFound { .. })
        ));
        let url = store
            .presign_get("org/a/call.wav", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            url.starts_with("file:///") && url.ends_with("org/a/call.wav"),
            "{url}"
        );
    }
}
