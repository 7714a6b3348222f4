//! A claimed call's audio: fetched from the object store, checked against the SHA-256 it was
//! stored with, and decoded to 16 kHz channels. Calls of a batch are fetched concurrently and
//! decoded on the blocking pool while the model works on the previous batch.

use std::sync::Arc;

use callscript_core::queue::{Claimed, Retry};
use callscript_core::storage::{sha256_hex, ObjectStore, StorageError};
use futures_util::stream::{self, StreamExt};

use crate::audio::{self, AudioLimits};
use crate::transcribe::Recording;

/// How many objects one worker downloads at once.
const CONCURRENT_FETCHES: usize = 8;

/// A claimed call with its audio.
pub(super) struct ReadyCall {
    pub claimed: Claimed,
    pub recording: Recording,
    /// The rate the codec decoded at (before resampling to 16 kHz).
    pub source_sample_rate: u32,
}

/// Why a call could not be prepared, and whether trying again may help.
#[derive(Debug)]
pub(super) struct CallFailure {
    pub message: String,
    pub retry: Retry,
}

/// Fetches and decodes every call; each comes back ready or with its failure, in order.
pub(super) async fn prepare_all(
    store: &Arc<dyn ObjectStore>,
    claimed: Vec<Claimed>,
    limits: AudioLimits,
) -> Vec<Result<ReadyCall, (Claimed, CallFailure)>> {
    stream::iter(claimed)
        .map(|claimed| {
            let store = store.clone();
            async move {
                match prepare(&store, &claimed, limits).await {
                    Ok((recording, source_sample_rate)) => Ok(ReadyCall {
                        claimed,
                        recording,
                        source_sample_rate,
                    }),
                    Err(failure) => Err((claimed, failure)),
                }
            }
        })
        .buffered(CONCURRENT_FETCHES)
        .collect()
        .await
}

async fn prepare(
    store: &Arc<dyn ObjectStore>,
    claimed: &Claimed,
    limits: AudioLimits,
) -> Result<(Recording, u32), CallFailure> {
    let call = &claimed.call;
    let Some(key) = call.object_key.clone() else {
        return Err(CallFailure {
            message: "the call has no stored recording (object_key is empty)".into(),
            retry: Retry::Never,
        });
    };
    let bytes = store.get(&key).await.map_err(|e| CallFailure {
        message: match &e {
            StorageError::NotFound { .. } => format!("recording missing: {e}"),
            _ => format!("fetching the recording: {e}"),
        },
        // A missing object may still arrive (a vault retry); a store outage passes.
        retry: Retry::WithBackoff,
    })?;
    if let Some(expected) = &call.sha256 {
        let actual = sha256_hex(&bytes);
        if &actual != expected {
            return Err(CallFailure {
                message: format!(
                    "recording {key} is corrupt in storage: sha256 {actual}, stored as {expected}"
                ),
                retry: Retry::WithBackoff,
            });
        }
    }
    let hint = extension(&key);
    let name = call.id.to_string();
    let decoded =
        tokio::task::spawn_blocking(move || audio::decode(&bytes, hint.as_deref(), &limits))
            .await
            .map_err(|e| CallFailure {
                message: format!("decoding {key}: the decoder crashed: {e}"),
                retry: Retry::Never,
            })?
            .map_err(|e| CallFailure {
                // The same bytes decode the same way every time: retrying cannot help.
                message: format!("decoding {key}: {e}"),
                retry: Retry::Never,
            })?;
    Ok((
        Recording {
            name,
            channels: decoded.channels,
        },
        decoded.source_sample_rate,
    ))
}

/// The file extension of an object key (`ab/cd.wav` → `wav`), a hint for the decoder.
fn extension(key: &str) -> Option<String> {
    let file = key.rsplit('/').next()?;
    let (_, extension) = file.rsplit_once('.')?;
    (!extension.is_empty()).then(|| extension.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::extension;

    #[test]
    fn extension_comes_from_the_last_path_part() {
        assert_eq!(extension("org/ab/cd.WAV").as_deref(), Some("wav"));
        assert_eq!(extension("org/a.b/cd"), None);
        assert_eq!(extension("cd."), None);
    }
}
