//! The upload lane: a recording file becomes a call.
//!
//! The content decides identity: the object key and the call's external id are the file's
//! SHA-256, so uploading the same recording twice (under any name) stores it once and queues it
//! once. The audio is stored before the call is queued, so a queued `downloaded` call always
//! has its object.

use std::path::Path;

use bytes::Bytes;
use callscript_core::model::{CallState, Source};
use callscript_core::queue::{self, NewCall, QueueError};
use callscript_core::storage::{sha256_hex, ObjectInfo, ObjectStore, Spool, StorageError};
use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Audio containers we accept, recognised by their first bytes (not by the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioContainer {
    Wav,
    Flac,
    Mp3,
    Ogg,
    Mp4,
    Aac,
    Webm,
}

impl AudioContainer {
    /// Sniffs the container from the start of a file.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let starts = |magic: &[u8]| head.starts_with(magic);
        if head.len() >= 12 && starts(b"RIFF") && &head[8..12] == b"WAVE" {
            Some(Self::Wav)
        } else if starts(b"fLaC") {
            Some(Self::Flac)
        } else if starts(b"OggS") {
            Some(Self::Ogg)
        } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
            Some(Self::Mp4)
        } else if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
            Some(Self::Webm)
        } else if starts(b"ID3") {
            Some(Self::Mp3)
        } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 {
            // An MPEG frame sync; layer bits 00 mean ADTS (AAC), anything else MPEG audio.
            if head[1] & 0x06 == 0 {
                Some(Self::Aac)
            } else {
                Some(Self::Mp3)
            }
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Flac => "flac",
            Self::Mp3 => "mp3",
            Self::Ogg => "ogg",
            Self::Mp4 => "m4a",
            Self::Aac => "aac",
            Self::Webm => "webm",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Wav => "audio/wav",
            Self::Flac => "audio/flac",
            Self::Mp3 => "audio/mpeg",
            Self::Ogg => "audio/ogg",
            Self::Mp4 => "audio/mp4",
            Self::Aac => "audio/aac",
            Self::Webm => "audio/webm",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: the file is empty")]
    Empty { path: String },
    #[error("{path}: {size} bytes is over the upload limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error(
        "{path}: not a recognised audio file (expected WAV, FLAC, MP3, OGG, M4A, AAC or WebM)"
    )]
    NotAudio { path: String },
    #[error("{path}: storing the recording failed: {source}")]
    Store { path: String, source: StorageError },
    #[error("{path}: queueing the call failed: {source}")]
    Queue { path: String, source: QueueError },
}

/// How an upload is queued.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub org_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub priority: i16,
    /// When the call happened; the file's modification time (or now) when not given.
    pub started_at: Option<DateTime<Utc>>,
    pub max_bytes: u64,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub call_id: Uuid,
    pub object_key: String,
    pub sha256: String,
    pub size: u64,
    /// False when this recording was already queued for the org.
    pub newly_queued: bool,
}

/// Stores one recording and queues its call.
pub async fn enqueue_file(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    path: &Path,
    options: &UploadOptions,
) -> Result<Uploaded, UploadError> {
    let shown = path.display().to_string();
    let read_error = |e: std::io::Error| UploadError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let metadata = tokio::fs::metadata(path).await.map_err(read_error)?;
    if !metadata.is_file() {
        return Err(UploadError::Read {
            path: shown,
            reason: "not a regular file".into(),
        });
    }
    if metadata.len() > options.max_bytes {
        return Err(UploadError::TooLarge {
            path: shown,
            size: metadata.len(),
            limit: options.max_bytes,
        });
    }
    let body = Bytes::from(tokio::fs::read(path).await.map_err(read_error)?);
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let modified = metadata.modified().ok().map(DateTime::<Utc>::from);
    enqueue_bytes(
        client,
        store,
        &shown,
        file_name.as_deref(),
        body,
        modified,
        options,
    )
    .await
}

/// Stores one recording held in memory (a read file) and queues its call.
/// `shown` names it in errors; `started_at` stands in when the options give no start time.
pub async fn enqueue_bytes(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    shown: &str,
    file_name: Option<&str>,
    body: Bytes,
    started_at: Option<DateTime<Utc>>,
    options: &UploadOptions,
) -> Result<Uploaded, UploadError> {
    let recording = Recording::Memory {
        sha256: sha256_hex(&body),
        body,
    };
    enqueue(
        client, store, shown, file_name, recording, started_at, options,
    )
    .await
}

/// Stores one recording spooled to disk (an HTTP upload, never held in memory) and queues its
/// call, like [`enqueue_bytes`].
pub async fn enqueue_spooled(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    shown: &str,
    file_name: Option<&str>,
    spool: &Spool,
    started_at: Option<DateTime<Utc>>,
    options: &UploadOptions,
) -> Result<Uploaded, UploadError> {
    let recording = Recording::Spooled(spool);
    enqueue(
        client, store, shown, file_name, recording, started_at, options,
    )
    .await
}

/// A recording's content with its SHA-256: in memory, or in a spool file.
enum Recording<'a> {
    Memory { body: Bytes, sha256: String },
    Spooled(&'a Spool),
}

impl Recording<'_> {
    fn size(&self) -> u64 {
        match self {
            Recording::Memory { body, .. } => body.len() as u64,
            Recording::Spooled(spool) => spool.size(),
        }
    }

    fn head(&self) -> &[u8] {
        match self {
            Recording::Memory { body, .. } => body,
            Recording::Spooled(spool) => spool.head(),
        }
    }

    fn sha256(&self) -> &str {
        match self {
            Recording::Memory { sha256, .. } => sha256,
            Recording::Spooled(spool) => spool.sha256(),
        }
    }

    async fn put(
        &self,
        store: &dyn ObjectStore,
        key: &str,
        content_type: &str,
    ) -> Result<ObjectInfo, StorageError> {
        match self {
            Recording::Memory { body, .. } => store.put(key, body.clone(), content_type).await,
            Recording::Spooled(spool) => store.put_spooled(key, spool, content_type).await,
        }
    }
}

async fn enqueue(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    shown: &str,
    file_name: Option<&str>,
    recording: Recording<'_>,
    started_at: Option<DateTime<Utc>>,
    options: &UploadOptions,
) -> Result<Uploaded, UploadError> {
    let shown = shown.to_owned();
    let size = recording.size();
    if size > options.max_bytes {
        return Err(UploadError::TooLarge {
            path: shown,
            size,
            limit: options.max_bytes,
        });
    }
    if size == 0 {
        return Err(UploadError::Empty { path: shown });
    }
    let container = AudioContainer::sniff(recording.head()).ok_or(UploadError::NotAudio {
        path: shown.clone(),
    })?;
    let sha256 = recording.sha256().to_owned();
    let key = format!(
        "orgs/{}/upload/{sha256}.{}",
        options.org_id,
        container.extension()
    );
    let store_error = |source| UploadError::Store {
        path: shown.clone(),
        source,
    };
    let stored = store.head(&key).await.map_err(store_error)?;
    if stored.and_then(|info| info.sha256).as_deref() != Some(sha256.as_str()) {
        recording
            .put(store, &key, container.content_type())
            .await
            .map_err(store_error)?;
    }

    let started_at = options.started_at.or(started_at).unwrap_or_else(Utc::now);
    let mut call = NewCall::new(options.org_id, Source::Upload, sha256.clone(), started_at);
    call.state = CallState::Downloaded;
    call.campaign_id = options.campaign_id;
    call.priority = options.priority;
    call.object_key = Some(key.clone());
    call.sha256 = Some(sha256.clone());
    call.content_type = Some(container.content_type().to_owned());
    call.size_bytes = Some(size as i64);
    call.metadata = serde_json::json!({ "filename": file_name });
    let enqueued = queue::enqueue(client, &call)
        .await
        .map_err(|source| UploadError::Queue {
            path: shown.clone(),
            source,
        })?;
    Ok(Uploaded {
        call_id: enqueued.call_id,
        object_key: key,
        sha256,
        size,
        newly_queued: enqueued.inserted,
    })
}

#[cfg(test)]
mod tests {
    use super::AudioContainer;

    #[test]
    fn sniffs_containers_by_content() {
        assert_eq!(
            AudioContainer::sniff(b"RIFF\x24\0\0\0WAVEfmt "),
            Some(AudioContainer::Wav)
        );
        assert_eq!(
            AudioContainer::sniff(b"fLaC\0\0\0\x22"),
            Some(AudioContainer::Flac)
        );
        assert_eq!(
            AudioContainer::sniff(b"ID3\x04\0\0"),
            Some(AudioContainer::Mp3)
        );
        assert_eq!(
            AudioContainer::sniff(&[0xFF, 0xFB, 0x90, 0x00]),
            Some(AudioContainer::Mp3)
        );
        assert_eq!(
            AudioContainer::sniff(&[0xFF, 0xF1, 0x50, 0x80]),
            Some(AudioContainer::Aac)
        );
        assert_eq!(
            AudioContainer::sniff(b"OggS\0\x02"),
            Some(AudioContainer::Ogg)
        );
        assert_eq!(
            AudioContainer::sniff(b"\0\0\0\x20ftypM4A "),
            Some(AudioContainer::Mp4)
        );
        assert_eq!(AudioContainer::sniff(b"%PDF-1.7"), None);
        assert_eq!(AudioContainer::sniff(b""), None);
    }
}
