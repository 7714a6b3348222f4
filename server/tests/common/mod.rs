//! What the server's tests share: a judged call with its recording, transcript and flags.

use bytes::Bytes;
use callscript_core::model::SpeakerRole;
use callscript_core::queue;
use callscript_core::storage::ObjectStore;
use callscript_core::transcripts::SegmentRecord;
use callscript_testkit::{downloaded_call, save_transcript, wav_bytes};
use chrono::{TimeZone, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The rule of the second flag, the customer's do-not-call request at 0:04.
pub const DNC_RULE: &str = "do-not-call-request";

/// A judged call of `org`: a 12-second recording in `store`, an agent and a customer segment
/// (the customer's holds markup, which must show as text), and two flags of different rules
/// and severities. Returns the call and its flags in the order said.
pub async fn judged_call(
    client: &impl GenericClient,
    store: &dyn ObjectStore,
    org: Uuid,
    id: &str,
) -> (Uuid, [Uuid; 2]) {
    let wav = wav_bytes(8_000, 1, &vec![0i16; 12 * 8_000]);
    let key = format!("orgs/{org}/upload/{id}.wav");
    store
        .put(&key, Bytes::from(wav), "audio/wav")
        .await
        .unwrap();
    let started = Utc.with_ymd_and_hms(2026, 11, 5, 15, 0, 0).unwrap();
    let mut call = downloaded_call(org, id, started);
    call.object_key = Some(key);
    call.content_type = Some("audio/wav".into());
    call.duration_ms = Some(12_000);
    let call_id = queue::enqueue(client, &call).await.unwrap().call_id;
    client
        .execute(
            "UPDATE core.calls SET state = 'judged', flagged = true WHERE id = $1",
            &[&call_id],
        )
        .await
        .unwrap();
    let segment = |start_ms, end_ms, speaker: &str, role, text: &str| SegmentRecord {
        start_ms,
        end_ms,
        speaker: Some(speaker.into()),
        channel: None,
        role: Some(role),
        text: text.into(),
        avg_logprob: None,
        no_speech_prob: None,
    };
    save_transcript(
        client,
        call_id,
        org,
        vec![
            segment(
                0,
                3_000,
                "SPEAKER_00",
                SpeakerRole::Agent,
                "Hi, it's Sam, guaranteed approval.",
            ),
            segment(
                4_000,
                7_000,
                "SPEAKER_01",
                SpeakerRole::Customer,
                "Stop calling me <b>now</b>.",
            ),
            segment(
                8_000,
                10_000,
                "SPEAKER_00",
                SpeakerRole::Agent,
                "Sorry to bother you.",
            ),
        ],
    )
    .await;
    let mut flags = [Uuid::nil(); 2];
    for (flag, (rule, severity, start_ms, evidence)) in flags.iter_mut().zip([
        (
            "prohibited-claim-approval",
            "high",
            0,
            "guaranteed approval",
        ),
        (DNC_RULE, "critical", 4_000, "Stop calling me"),
    ]) {
        *flag = client
            .query_one(
                "INSERT INTO core.qa_flags (call_id, org_id, rule_id, rulebook_version, category,
                                            severity, evidence_text, start_ms, end_ms)
                 VALUES ($1, $2, $3, 'default@1', 'compliance', $4::text::core.flag_severity,
                         $5, $6, $6 + 3000)
                 RETURNING id",
                &[&call_id, &org, &rule, &severity, &evidence, &start_ms],
            )
            .await
            .unwrap()
            .get(0);
    }
    (call_id, flags)
}
