//! One Ringba call-log record: what it says about the call, and what the queue does with it.

use callscript_core::model::{CallState, Source};
use callscript_core::queue::NewCall;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::links::RecordingLink;

/// The fields we act on; the record, less its signed link, is kept in the call's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct CallLogRecord {
    pub inbound_call_id: String,
    pub started_at: DateTime<Utc>,
    pub is_live: bool,
    pub has_recording: bool,
    /// `None` when the record's `recordingUrl` is missing or empty.
    pub recording_url: Option<RecordingLink>,
    /// Ringba's campaign id and name, when the call has a campaign.
    pub campaign: Option<(String, String)>,
    pub caller_number: Option<String>,
    pub dialed_number: Option<String>,
    raw: Value,
}

/// What to do with a record now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Finished with a recording link: queue it for the vault.
    Recording,
    /// Finished without a recording: keep it, as `skipped`.
    NoRecording,
    /// Still in progress: look again later.
    Live,
    /// Finished, with a recording whose link is not published yet (Ringba adds it about a
    /// second after the call ends, in a `CallRecordingMigrated` event): look again later.
    RecordingNotPublished,
}

impl Readiness {
    pub fn must_recheck(self) -> bool {
        matches!(self, Self::Live | Self::RecordingNotPublished)
    }
}

/// Why a record cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Ringba record {id}: {reason}")]
pub struct RecordError {
    pub id: String,
    pub reason: String,
}

impl CallLogRecord {
    pub fn parse(record: &Value) -> Result<Self, RecordError> {
        let id = record["inboundCallId"]
            .as_str()
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        let error = |reason: &str| RecordError {
            id: if id.is_empty() {
                "(no inboundCallId)".into()
            } else {
                id.clone()
            },
            reason: reason.into(),
        };
        if id.is_empty() {
            return Err(error("inboundCallId is missing"));
        }
        let started_at = record["callDt"]
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| error("callDt is not a time in epoch milliseconds"))?;
        let text = |field: &str| {
            record[field]
                .as_str()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let campaign = text("campaignId").map(|campaign_id| {
            let name = text("campaignName").unwrap_or_else(|| campaign_id.clone());
            (campaign_id, name)
        });
        let recording_url = text("recordingUrl").map(RecordingLink::new);
        let mut raw = record.clone();
        if let Some(object) = raw.as_object_mut() {
            // Call details carry the full event history, which is large and not about the
            // call's outcome (and repeats the signed link); the call log's columns are what
            // reviewers and scores use.
            object.remove("events");
            // Members read the metadata: the link is kept for the vault alone.
            if let Some(link) = &recording_url {
                object.insert("recordingUrl".into(), link.shown().into());
            }
        }
        Ok(Self {
            inbound_call_id: id.clone(),
            started_at,
            is_live: record["isLive"].as_bool().unwrap_or(false),
            has_recording: record["hasRecording"].as_bool().unwrap_or(false),
            recording_url,
            campaign,
            caller_number: text("inboundPhoneNumber"),
            dialed_number: text("number"),
            raw,
        })
    }

    pub fn readiness(&self) -> Readiness {
        if self.is_live {
            Readiness::Live
        } else if self.recording_url.is_some() {
            Readiness::Recording
        } else if self.has_recording {
            Readiness::RecordingNotPublished
        } else {
            Readiness::NoRecording
        }
    }

    /// The call's metadata: the record under `ringba`, so refreshing replaces it whole; its
    /// `recordingUrl` is [`crate::links::shown`], without the signing query.
    pub fn metadata(&self) -> Value {
        serde_json::json!({ "ringba": self.raw })
    }

    /// The call to queue: `pending` (its link is [`Self::recording_url`], queued with
    /// [`crate::links::enqueue`]), or `skipped` when there is no recording.
    pub fn new_call(&self, org_id: Uuid, campaign_id: Option<Uuid>) -> NewCall {
        let mut call = NewCall::new(
            org_id,
            Source::Ringba,
            self.inbound_call_id.clone(),
            self.started_at,
        );
        call.campaign_id = campaign_id;
        call.caller_number = self.caller_number.clone();
        call.callee_number = self.dialed_number.clone();
        call.metadata = self.metadata();
        if self.recording_url.is_none() {
            call.state = CallState::Skipped;
            call.metadata["skip_reason"] = "Ringba has no recording of this call".into();
        }
        call
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn documented() -> Value {
        json!({
            "campaignName": "API Test", "campaignId": "CA74c0b7f1f3824246b73e72a9238b4bfc",
            "publisherName": "You", "inboundCallId": "v21GxftEiw9_xeb",
            "callDt": 1612219718965_i64, "inboundPhoneNumber": "+16613804706",
            "number": "+18884143472", "isLive": false, "hasRecording": true,
            "conversionAmount": 0, "payoutAmount": 0,
            "recordingUrl": "https://media.ringba.com/recording-public?v=v1&k=LU5E",
            "events": [{"name": "CompletedCall", "recordingUrl": ""}]
        })
    }

    #[test]
    fn a_finished_call_with_a_link_is_queued_with_its_fields() {
        let record = CallLogRecord::parse(&documented()).unwrap();
        assert_eq!(record.readiness(), Readiness::Recording);
        assert_eq!(record.started_at.timestamp_millis(), 1612219718965);
        let org = Uuid::new_v4();
        let call = record.new_call(org, None);
        assert_eq!(call.state, CallState::Pending);
        assert_eq!(call.external_id, "v21GxftEiw9_xeb");
        assert_eq!(call.caller_number.as_deref(), Some("+16613804706"));
        assert_eq!(call.callee_number.as_deref(), Some("+18884143472"));
        assert_eq!(call.metadata["ringba"]["publisherName"], "You");
        assert!(call.metadata["ringba"].get("events").is_none());
        // The signed link goes to the vault alone; members see where it pointed.
        assert_eq!(
            record.recording_url.as_ref().map(RecordingLink::url),
            Some("https://media.ringba.com/recording-public?v=v1&k=LU5E")
        );
        assert_eq!(
            call.metadata["ringba"]["recordingUrl"],
            "https://media.ringba.com/recording-public?…"
        );
        assert!(!call.metadata.to_string().contains("LU5E"));
        assert_eq!(
            record.campaign,
            Some((
                "CA74c0b7f1f3824246b73e72a9238b4bfc".into(),
                "API Test".into()
            ))
        );
    }

    #[test]
    fn live_unpublished_and_unrecorded_calls() {
        let mut live = documented();
        live["isLive"] = json!(true);
        assert_eq!(
            CallLogRecord::parse(&live).unwrap().readiness(),
            Readiness::Live
        );
        let mut unpublished = documented();
        unpublished["recordingUrl"] = json!("");
        assert_eq!(
            CallLogRecord::parse(&unpublished).unwrap().readiness(),
            Readiness::RecordingNotPublished
        );
        let mut unrecorded = unpublished.clone();
        unrecorded["hasRecording"] = json!(false);
        let record = CallLogRecord::parse(&unrecorded).unwrap();
        assert_eq!(record.readiness(), Readiness::NoRecording);
        assert_eq!(
            record.new_call(Uuid::new_v4(), None).state,
            CallState::Skipped
        );
    }

    #[test]
    fn unusable_records_say_why() {
        let mut no_id = documented();
        no_id["inboundCallId"] = json!("");
        assert!(CallLogRecord::parse(&no_id)
            .unwrap_err()
            .reason
            .contains("inboundCallId"));
        let mut bad_time = documented();
        bad_time["callDt"] = json!("yesterday");
        let error = CallLogRecord::parse(&bad_time).unwrap_err();
        assert_eq!(error.id, "v21GxftEiw9_xeb");
        assert!(error.to_string().contains("callDt"), "{error}");
    }
}
