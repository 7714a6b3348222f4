//! A directory as an object store: `<root>/<key>` holds the content and `<root>/<key>.meta`
//! (JSON) its SHA-256 and content type. Writes go to a temporary file renamed into place, so a
//! reader never sees half an object.

use std::io::SeekFrom;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::{sha256_hex, validate_key, ObjectInfo, ObjectStore, ObjectStream, Spool, StorageError};

/// How much of a file one chunk of a streamed read holds.
const READ_CHUNK: usize = 64 * 1024;

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

    /// Writes the object at `path` with `write` (given a temporary path beside it, renamed into
    /// place after), then its sidecar.
    async fn store<F, Fut>(
        &self,
        key: &str,
        write: F,
        sha256: String,
        content_type: &str,
    ) -> Result<(), StorageError>
    where
        F: FnOnce(PathBuf) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>>,
    {
        let path = self.path(key)?;
        let sidecar = serde_json::to_vec(&Sidecar {
            sha256,
            content_type: content_type.to_owned(),
        })
        .expect("sidecar serializes");
        let stored = async {
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let tmp = temporary_path(&path);
            if let Err(e) = write(tmp.clone()).await {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
            tokio::fs::rename(&tmp, &path).await?;
            write_atomically(&sidecar_path(&path), &sidecar).await
        };
        stored.await.map_err(|e| self.backend("put", key, e))
    }

    fn not_found(&self, key: &str) -> StorageError {
        StorageError::NotFound {
            store: self.describe(),
            key: key.to_owned(),
        }
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

fn temporary_path(path: &Path) -> PathBuf {
    path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()))
}

async fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_path(path);
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

/// `reader` as a stream of chunks of at most [`READ_CHUNK`] bytes, until it ends.
fn chunks<R: AsyncRead + Unpin + Send + 'static>(
    reader: R,
    on_error: impl Fn(std::io::Error) -> StorageError + Send + 'static,
) -> ObjectStream {
    Box::pin(futures_util::stream::unfold(
        (reader, on_error),
        |(mut reader, on_error)| async move {
            let mut chunk = BytesMut::with_capacity(READ_CHUNK);
            match reader.read_buf(&mut chunk).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(chunk.freeze()), (reader, on_error))),
                Err(e) => Some((Err(on_error(e)), (reader, on_error))),
            }
        },
    ))
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
        let sha256 = sha256_hex(&body);
        let size = body.len() as u64;
        let write = |tmp: PathBuf| async move { tokio::fs::write(tmp, &body).await };
        self.store(key, write, sha256.clone(), content_type).await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size,
            sha256: Some(sha256),
            content_type: Some(content_type.to_owned()),
        })
    }

    async fn put_spooled(
        &self,
        key: &str,
        spool: &Spool,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        let write =
            |tmp: PathBuf| async move { tokio::fs::copy(spool.path(), tmp).await.map(drop) };
        let sha256 = spool.sha256().to_owned();
        self.store(key, write, sha256.clone(), content_type).await?;
        Ok(ObjectInfo {
            key: key.to_owned(),
            size: spool.size(),
            sha256: Some(sha256),
            content_type: Some(content_type.to_owned()),
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(body) => Ok(Bytes::from(body)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(key)),
            Err(e) => Err(self.backend("get", key, e)),
        }
    }

    async fn get_stream(
        &self,
        key: &str,
        range: Option<RangeInclusive<u64>>,
    ) -> Result<ObjectStream, StorageError> {
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(self.not_found(key)),
            Err(e) => return Err(self.backend("get", key, e)),
        };
        let (store, key) = (self.describe(), key.to_owned());
        let on_error = move |e: std::io::Error| StorageError::Backend {
            operation: "get",
            store: store.clone(),
            key: key.clone(),
            reason: e.to_string(),
        };
        let Some(range) = range else {
            return Ok(chunks(file, on_error));
        };
        if let Err(e) = file.seek(SeekFrom::Start(*range.start())).await {
            return Err(on_error(e));
        }
        let length = range.end().saturating_sub(*range.start()) + 1;
        Ok(chunks(file.take(length), on_error))
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

    async fn streamed(
        store: &LocalDirStore,
        key: &str,
        range: Option<RangeInclusive<u64>>,
    ) -> Vec<u8> {
        use futures_util::TryStreamExt;
        let chunks: Vec<Bytes> = store
            .get_stream(key, range)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn spooled_puts_and_ranged_streams() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path());
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let parts = body
            .chunks(7_000)
            .map(|c| Ok::<_, String>(Bytes::copy_from_slice(c)));
        let spool = Spool::write(
            &mut futures_util::stream::iter(parts.collect::<Vec<_>>()),
            1 << 20,
        )
        .await
        .unwrap();
        let info = store
            .put_spooled("a/b.wav", &spool, "audio/wav")
            .await
            .unwrap();
        assert_eq!(info.size, 200_000);
        assert_eq!(info.sha256.as_deref(), Some(sha256_hex(&body).as_str()));
        assert_eq!(store.head("a/b.wav").await.unwrap(), Some(info));
        assert_eq!(streamed(&store, "a/b.wav", None).await, body);
        assert_eq!(
            streamed(&store, "a/b.wav", Some(70_000..=199_999)).await,
            &body[70_000..]
        );
        assert_eq!(streamed(&store, "a/b.wav", Some(5..=5)).await, &body[5..6]);
        assert!(matches!(
            store.get_stream("a/missing.wav", None).await,
            Err(StorageError::NotFound { .. })
        ));
    }
}
