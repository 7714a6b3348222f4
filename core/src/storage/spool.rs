//! A body too large to hold in memory (an HTTP upload), written to a temporary file as it
//! arrives while its SHA-256 is computed, so a content-addressed key is known when the writing
//! ends and [`ObjectStore::put_spooled`](super::ObjectStore::put_spooled) can stream the file
//! from disk.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// How many first bytes a spool keeps in memory (enough to sniff any container we accept).
const HEAD_BYTES: usize = 64;

/// A temporary file with its size, SHA-256 and first bytes; the file is removed when dropped.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    size: u64,
    sha256: String,
    head: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("more than {limit} bytes")]
    TooLarge { limit: u64 },
    /// The source failed (a client that went away mid-upload).
    #[error("reading the body failed: {0}")]
    Read(String),
    #[error("writing the temporary file {path} failed: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Spool {
    /// Writes `chunks` to a new file in the system's temporary directory, hashing as it goes;
    /// stops with [`SpoolError::TooLarge`] as soon as more than `limit` bytes arrived (the rest
    /// is left in `chunks`, for a server to drain before it answers).
    pub async fn write<S, E>(chunks: &mut S, limit: u64) -> Result<Spool, SpoolError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = std::env::temp_dir().join(format!(
            "callscript-spool-{}",
            uuid::Uuid::new_v4().simple()
        ));
        // From here on the file is removed whatever happens: the spool owns it.
        let mut spool = Spool {
            path,
            size: 0,
            sha256: String::new(),
            head: Vec::new(),
        };
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError::Write { path, source }
        };
        let mut file = tokio::fs::File::create(&spool.path)
            .await
            .map_err(write_error(&spool.path))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| SpoolError::Read(e.to_string()))?;
            spool.size += chunk.len() as u64;
            if spool.size > limit {
                return Err(SpoolError::TooLarge { limit });
            }
            let wanted = HEAD_BYTES.saturating_sub(spool.head.len()).min(chunk.len());
            spool.head.extend_from_slice(&chunk[..wanted]);
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(write_error(&spool.path))?;
        }
        file.flush().await.map_err(write_error(&spool.path))?;
        spool.sha256 = hex::encode(hasher.finalize());
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hex SHA-256 of the content, as [`super::sha256_hex`] computes it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The first bytes (up to 64), for sniffing the format.
    pub fn head(&self) -> &[u8] {
        &self.head
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Nothing to do about a file already gone; a leftover one is only a temporary file.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sha256_hex;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn spools_hashes_and_removes_its_file() {
        let spool = Spool::write(&mut chunks(&[b"RIFF", b"....", b"WAVE"]), 12)
            .await
            .unwrap();
        assert_eq!(spool.size(), 12);
        assert_eq!(spool.sha256(), sha256_hex(b"RIFF....WAVE"));
        assert_eq!(spool.head(), b"RIFF....WAVE");
        assert_eq!(std::fs::read(spool.path()).unwrap(), b"RIFF....WAVE");
        let path = spool.path().to_owned();
        drop(spool);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn stops_at_the_limit_and_on_a_failed_source() {
        let err = Spool::write(&mut chunks(&[b"RIFF", b"....", b"WAVE"]), 11)
            .await
            .unwrap_err();
        assert!(matches!(err, SpoolError::TooLarge { limit: 11 }), "{err}");
        let mut failing =
            futures_util::stream::iter([Ok(Bytes::from_static(b"RIFF")), Err("connection reset")]);
        let err = Spool::write(&mut failing, 100).await.unwrap_err();
        assert_eq!(err.to_string(), "reading the body failed: connection reset");
    }
}
