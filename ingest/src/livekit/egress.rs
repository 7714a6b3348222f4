//! LiveKit's `EgressInfo` as JSON, and how a finished egress becomes a call.
//!
//! Two encoders produce the JSON: webhooks are protojson (lowerCamelCase names, zero values
//! left out), ListEgress answers through Twirp, which by default writes the proto field names
//! (snake_case) and every zero value. Both are read here: each field takes its proto name as an
//! alias, int64 values come as strings (protojson) or numbers, enums as names or numbers, and an
//! absent enum is its zero value (`EGRESS_STARTING`, `DEFAULT_MIXING`).

use callscript_core::model::{CallState, Source};
use callscript_core::queue::NewCall;
use callscript_core::storage::{self, ObjectStore};
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::LiveKitError;
use crate::links::{self, RecordingLink};

/// `livekit.EgressStatus`, by number.
const EGRESS_STATUS: &[&str] = &[
    "EGRESS_STARTING",
    "EGRESS_ACTIVE",
    "EGRESS_ENDING",
    "EGRESS_COMPLETE",
    "EGRESS_FAILED",
    "EGRESS_ABORTED",
    "EGRESS_LIMIT_REACHED",
];

/// `livekit.AudioMixing`, by number.
const AUDIO_MIXING: &[&str] = &[
    "DEFAULT_MIXING",
    "DUAL_CHANNEL_AGENT",
    "DUAL_CHANNEL_ALTERNATE",
];

/// The status of an egress whose file is finished and uploaded.
pub const EGRESS_COMPLETE: &str = "EGRESS_COMPLETE";

/// Agent audio in the left channel, everyone else in the right (`RoomCompositeEgressRequest`).
pub const DUAL_CHANNEL_AGENT: &str = "DUAL_CHANNEL_AGENT";

/// A `livekit.WebhookEvent`; only what the egress lane reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    /// `egress_ended`, `room_finished`, ...
    #[serde(default)]
    pub event: String,
    #[serde(default, alias = "egress_info")]
    pub egress_info: Option<EgressInfo>,
    #[serde(default)]
    pub id: String,
}

/// A `livekit.EgressInfo`; only what the egress lane reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressInfo {
    #[serde(alias = "egress_id")]
    pub egress_id: String,
    #[serde(default, alias = "room_id")]
    pub room_id: String,
    #[serde(default, alias = "room_name")]
    pub room_name: String,
    /// An `EgressStatus` name.
    #[serde(default = "starting", deserialize_with = "egress_status")]
    pub status: String,
    /// Unix nanoseconds.
    #[serde(default, alias = "started_at", deserialize_with = "int64")]
    pub started_at: i64,
    #[serde(default, alias = "ended_at", deserialize_with = "int64")]
    pub ended_at: i64,
    #[serde(default, alias = "file_results", deserialize_with = "list")]
    pub file_results: Vec<FileInfo>,
    /// The deprecated single result older servers fill instead of `fileResults`.
    #[serde(default)]
    pub file: Option<FileInfo>,
    /// The request, when it was a room composite (the `request` oneof is inlined in JSON).
    #[serde(default, alias = "room_composite")]
    pub room_composite: Option<RoomComposite>,
    #[serde(default)]
    pub error: String,
}

/// The part of a `RoomCompositeEgressRequest` that says how channels were mixed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomComposite {
    #[serde(
        default = "default_mixing",
        alias = "audio_mixing",
        deserialize_with = "mixing"
    )]
    pub audio_mixing: String,
}

/// A `livekit.FileInfo`: one uploaded file of an egress.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileInfo {
    /// The storage path the file was uploaded to.
    #[serde(default)]
    pub filename: String,
    /// Unix nanoseconds.
    #[serde(default, alias = "started_at", deserialize_with = "int64")]
    pub started_at: i64,
    #[serde(default, alias = "ended_at", deserialize_with = "int64")]
    pub ended_at: i64,
    /// Nanoseconds.
    #[serde(default, deserialize_with = "int64")]
    pub duration: i64,
    #[serde(default, deserialize_with = "int64")]
    pub size: i64,
    /// The URL the upload returned, or a presigned URL (valid 7 days); empty when none.
    #[serde(default)]
    pub location: RecordingLink,
}

impl EgressInfo {
    /// Whether the file is finished and uploaded: the only state worth a call.
    pub fn is_complete(&self) -> bool {
        self.status == EGRESS_COMPLETE
    }

    /// The recording: the first file result (LiveKit supports one file output per egress).
    pub fn file(&self) -> Option<&FileInfo> {
        self.file_results.first().or(self.file.as_ref())
    }

    pub fn audio_mixing(&self) -> Option<&str> {
        self.room_composite
            .as_ref()
            .map(|request| request.audio_mixing.as_str())
    }
}

fn starting() -> String {
    EGRESS_STATUS[0].to_owned()
}

fn default_mixing() -> String {
    AUDIO_MIXING[0].to_owned()
}

/// An int64 as protojson writes it (a string) or as a number; null is zero.
fn int64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(0),
        Value::String(text) => text
            .parse()
            .map_err(|_| D::Error::custom(format!("{text:?} is not an int64"))),
        Value::Number(number) => number
            .as_i64()
            .ok_or_else(|| D::Error::custom(format!("{number} is not an int64"))),
        other => Err(D::Error::custom(format!("{other} is not an int64"))),
    }
}

/// A repeated field; null is empty.
fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// An enum by name, or by number (looked up in `names`); null is the zero value.
fn enum_name<'de, D: Deserializer<'de>>(
    deserializer: D,
    names: &[&str],
) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(names[0].to_owned()),
        Value::String(name) => Ok(name),
        Value::Number(number) => number
            .as_u64()
            .and_then(|n| names.get(n as usize))
            .map(|name| (*name).to_owned())
            .ok_or_else(|| D::Error::custom(format!("unknown enum number {number}"))),
        other => Err(D::Error::custom(format!("{other} is not an enum value"))),
    }
}

fn egress_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    enum_name(deserializer, EGRESS_STATUS)
}

fn mixing<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    enum_name(deserializer, AUDIO_MIXING)
}

/// What [`record_egress`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub call_id: Uuid,
    /// False when the egress was already a call (a repeated webhook, or reconcile after one).
    pub inserted: bool,
    /// `downloaded` when the file is in our store already, `pending` when the vault fetches it.
    pub state: CallState,
}

/// Egress files are named by their extension; the object's own content type wins when the
/// store knows one more specific than "some bytes".
fn content_type(key: &str, stored: Option<&str>) -> Option<String> {
    let stored = stored.filter(|t| !t.is_empty() && *t != "application/octet-stream");
    let extension = key
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let by_extension = match extension.as_deref() {
        Some("ogg") => Some("audio/ogg"),
        Some("mp4" | "m4a") => Some("audio/mp4"),
        Some("mp3") => Some("audio/mpeg"),
        Some("wav") => Some("audio/wav"),
        _ => None,
    };
    stored.or(by_extension).map(str::to_owned)
}

fn nanos_to_time(nanos: i64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| DateTime::from_timestamp_nanos(nanos))
}

/// Queues a finished egress's recording as a call of `org_id`, once.
///
/// The egress id is the call's external id, so a repeated webhook, or reconcile finding an
/// egress a webhook already delivered, changes nothing. When LiveKit uploaded the file into
/// our own store (the egress's S3 output is our bucket, `filename` its key) the call is queued
/// `downloaded` straight away with what the store knows of the object; otherwise it is queued
/// `pending` with the file's `location` for the vault to fetch. Run it in a transaction: the
/// call and its link ([`links::enqueue`]) are written together.
pub async fn record_egress(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    org_id: Uuid,
    egress: &EgressInfo,
) -> Result<Recorded, LiveKitError> {
    let egress_id = &egress.egress_id;
    if !egress.is_complete() {
        return Err(LiveKitError::NotComplete {
            egress_id: egress_id.clone(),
            status: egress.status.clone(),
        });
    }
    let file = egress.file().ok_or_else(|| LiveKitError::NoFile {
        egress_id: egress_id.clone(),
    })?;
    let started_at = nanos_to_time(file.started_at)
        .or_else(|| nanos_to_time(egress.started_at))
        .ok_or_else(|| LiveKitError::NoStartTime {
            egress_id: egress_id.clone(),
        })?;
    let duration_ns = if file.duration > 0 {
        file.duration
    } else {
        (file.ended_at - file.started_at).max(0)
    };

    let mut metadata = json!({
        "egress_id": egress_id,
        "room_name": egress.room_name,
        "room_id": egress.room_id,
        "filename": file.filename,
        // Members read the metadata: the (possibly presigned) link is kept for the vault alone.
        "location": file.location.shown(),
        "started_at_ns": file.started_at,
        "ended_at_ns": file.ended_at,
        "duration_ns": duration_ns,
        "size": file.size,
        "audio_mixing": egress.audio_mixing(),
        "status": egress.status,
    });
    if egress.audio_mixing() == Some(DUAL_CHANNEL_AGENT) {
        metadata["channel_map"] = json!({"0": "agent", "1": "customer"});
    }

    let mut call = NewCall::new(org_id, Source::Livekit, egress_id.clone(), started_at);
    call.metadata = metadata;
    call.duration_ms =
        (duration_ns > 0).then(|| (duration_ns / 1_000_000).min(i32::MAX as i64) as i32);
    let stored = if storage::validate_key(&file.filename).is_ok() {
        store
            .head(&file.filename)
            .await
            .map_err(|source| LiveKitError::Store {
                egress_id: egress_id.clone(),
                source,
            })?
    } else {
        None
    };
    let mut link = None;
    match stored {
        Some(object) => {
            call.state = CallState::Downloaded;
            call.content_type = content_type(&object.key, object.content_type.as_deref());
            call.size_bytes = Some(object.size as i64);
            call.sha256 = object.sha256;
            call.object_key = Some(object.key);
        }
        None if file.location.url().is_empty() => {
            return Err(LiveKitError::NoLocation {
                egress_id: egress_id.clone(),
                filename: file.filename.clone(),
            })
        }
        None => {
            call.state = CallState::Pending;
            link = Some(&file.location);
        }
    }
    let enqueued = links::enqueue(client, &call, link)
        .await
        .map_err(|source| LiveKitError::Queue {
            egress_id: egress_id.clone(),
            source,
        })?;
    Ok(Recorded {
        call_id: enqueued.call_id,
        inserted: enqueued.inserted,
        state: call.state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_protojson_and_twirp_shapes() {
        let protojson: EgressInfo = serde_json::from_value(json!({
            "egressId": "EG_1",
            "roomName": "room",
            "status": "EGRESS_COMPLETE",
            "startedAt": "1732550400123456789",
            "roomComposite": {"audioMixing": "DUAL_CHANNEL_AGENT"},
            "fileResults": [{"filename": "a.ogg", "duration": "12500000000", "size": "10"}],
        }))
        .unwrap();
        let twirp: EgressInfo = serde_json::from_value(json!({
            "egress_id": "EG_1",
            "room_id": "",
            "room_name": "room",
            "status": 3,
            "started_at": 1_732_550_400_123_456_789_i64,
            "ended_at": "0",
            "room_composite": {"audio_mixing": 1},
            "file_results": [{
                "filename": "a.ogg", "started_at": "0", "duration": 12_500_000_000_i64,
                "size": 10, "location": "",
            }],
            "file": null,
            "error": "",
        }))
        .unwrap();
        assert_eq!(protojson, twirp);
        assert!(protojson.is_complete());
        assert_eq!(protojson.audio_mixing(), Some(DUAL_CHANNEL_AGENT));
        assert_eq!(protojson.file().unwrap().duration, 12_500_000_000);

        // Zero values are left out by protojson.
        let starting: EgressInfo = serde_json::from_value(json!({"egressId": "EG_2"})).unwrap();
        assert_eq!(starting.status, "EGRESS_STARTING");
        assert!(starting.file().is_none());
        let deprecated: EgressInfo = serde_json::from_value(json!({
            "egressId": "EG_3", "roomComposite": {}, "file": {"filename": "b.mp4"}
        }))
        .unwrap();
        assert_eq!(deprecated.file().unwrap().filename, "b.mp4");
        assert_eq!(deprecated.audio_mixing(), Some("DEFAULT_MIXING"));

        assert!(serde_json::from_value::<EgressInfo>(json!({"roomName": "no id"})).is_err());
        assert!(serde_json::from_value::<EgressInfo>(
            json!({"egressId": "EG", "startedAt": "soon"})
        )
        .is_err());
    }

    #[test]
    fn content_types_come_from_the_store_or_the_extension() {
        assert_eq!(content_type("r/a.OGG", None).as_deref(), Some("audio/ogg"));
        assert_eq!(content_type("a.m4a", None).as_deref(), Some("audio/mp4"));
        assert_eq!(content_type("a.mp4", None).as_deref(), Some("audio/mp4"));
        assert_eq!(content_type("a.mp3", None).as_deref(), Some("audio/mpeg"));
        assert_eq!(content_type("a.wav", None).as_deref(), Some("audio/wav"));
        assert_eq!(content_type("a", None), None);
        assert_eq!(
            content_type("a.ogg", Some("application/octet-stream")).as_deref(),
            Some("audio/ogg")
        );
        assert_eq!(
            content_type("a.mp4", Some("video/mp4")).as_deref(),
            Some("video/mp4")
        );
    }
}
