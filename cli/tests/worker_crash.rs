//! The crash test: 200 short calls, 4 `callscript worker` processes on the real Postgres, one
//! of them killed with SIGKILL every few seconds and started again. At the end every call is
//! transcribed exactly once in effect: one transcript, the segments of one run, one usage row;
//! none lost, none leased, and the rescuer took back what the killed workers held.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use callscript_core::model::{CallState, Source};
use callscript_core::queue::{self, NewCall};
use callscript_core::storage::{LocalDirStore, ObjectStore};
use callscript_testkit::{create_org, TestDatabase};
use chrono::Utc;
use common::{fixture, model};

mod common;

const CALLS: usize = 200;
const WORKERS: usize = 4;
/// The clips calls are made of: short, and each with its own words, so a transcript stored on
/// the wrong call would show.
const CLIPS: &[&str] = &[
    "goforward.wav",
    "eval/cards_005.wav",
    "eval/cmu_arctic_us_aew_a0003.wav",
];

/// xorshift64*: a kill schedule that differs run to run, printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn start_worker(index: usize, database_url: &str, storage: &str) -> Child {
    common::callscript()
        .args([
            "worker",
            "--model",
            &model(),
            "--no-diarize",
            "--threads",
            "1",
        ])
        .args(["--worker-id", &format!("crash-test-{index}")])
        .args(["--batch-calls", "4", "--batch-size", "4"])
        .args(["--lease-seconds", "4", "--heartbeat-seconds", "1"])
        .args(["--poll-seconds", "0.5", "--maintenance-seconds", "1"])
        .env("DATABASE_URL", database_url)
        .env("CALLSCRIPT_STORAGE", storage)
        .env("CALLSCRIPT_LOG", "error")
        .env_remove("CALLSCRIPT_METRICS_ADDR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start callscript worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_no_call_and_do_none_twice() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "crash").await;
    // Workers die here far more often than in production: retry sooner, and let a call be
    // caught by many kills before it would count as a poison pill (dead letter).
    client
        .batch_execute(
            "UPDATE core.queue_settings
             SET backoff_base = '200 milliseconds', backoff_max = '2 seconds'",
        )
        .await
        .unwrap();
    let objects = tempfile::tempdir().unwrap();
    let store = LocalDirStore::new(objects.path());
    store.prepare().await.unwrap();
    let mut keys = Vec::new();
    for clip in CLIPS {
        let key = format!("clips/{}", clip.rsplit('/').next().unwrap());
        let body = std::fs::read(fixture(clip)).unwrap();
        let info = store
            .put(&key, Bytes::from(body), "audio/wav")
            .await
            .unwrap();
        keys.push((key, info.sha256));
    }
    let mut clip_of = HashMap::new();
    for i in 0..CALLS {
        let (key, sha256) = &keys[i % CLIPS.len()];
        let mut call = NewCall::new(
            org,
            Source::Upload,
            format!("call-{i}"),
            Utc::now() - chrono::Duration::seconds(i as i64),
        );
        call.state = CallState::Downloaded;
        call.object_key = Some(key.clone());
        call.sha256 = sha256.clone();
        call.max_attempts = 50;
        let id = queue::enqueue(&**client, &call).await.unwrap().call_id;
        clip_of.insert(id, i % CLIPS.len());
    }

    let url = db.url.url.clone();
    let storage = objects.path().display().to_string();
    let mut workers: Vec<Child> = (0..WORKERS)
        .map(|i| start_worker(i, &url, &storage))
        .collect();
    let seed = Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1;
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut kills = 0;
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let mut next_kill = Instant::now() + Duration::from_secs(2 + rng.below(3));
    loop {
        let done = count("SELECT count(*) FROM core.calls WHERE state = 'transcribed'").await;
        if done == CALLS as i64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {done} of {CALLS} calls transcribed after 10 minutes (seed {seed})"
        );
        if Instant::now() >= next_kill {
            let victim = rng.below(WORKERS as u64) as usize;
            workers[victim].kill().expect("SIGKILL a worker");
            workers[victim].wait().unwrap();
            workers[victim] = start_worker(victim, &url, &storage);
            kills += 1;
            next_kill = Instant::now() + Duration::from_secs(2 + rng.below(3));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();

    // A clean stop of the survivors: SIGTERM, exit status 0.
    for worker in &workers {
        common::terminate(worker);
    }
    for worker in &mut workers {
        let status = worker.wait().unwrap();
        assert!(
            status.success(),
            "a worker stopped by SIGTERM exits 0: {status}"
        );
    }

    let transcripts = count("SELECT count(*) FROM core.transcripts").await;
    let transcript_calls = count("SELECT count(DISTINCT call_id) FROM core.transcripts").await;
    let segments = count("SELECT count(*) FROM core.transcript_segments").await;
    let usage = count("SELECT count(*) FROM core.usage").await;
    let usage_calls = count("SELECT count(DISTINCT call_id) FROM core.usage").await;
    let leased = count("SELECT count(*) FROM core.calls WHERE lease_token IS NOT NULL").await;
    let not_done = count("SELECT count(*) FROM core.calls WHERE state <> 'transcribed'").await;
    let rescues = count("SELECT coalesce(sum(rescue_count), 0)::bigint FROM core.calls").await;
    let rescued_calls = count("SELECT count(*) FROM core.calls WHERE rescue_count > 0").await;
    println!(
        "crash test (seed {seed}): {CALLS} calls, {WORKERS} workers, {kills} SIGKILLs in \
         {:.1} s; {transcripts} transcripts for {transcript_calls} calls, {segments} segments, \
         {usage} usage rows for {usage_calls} calls, {rescues} leases rescued on \
         {rescued_calls} calls, {leased} still leased, {not_done} not transcribed",
        elapsed.as_secs_f64()
    );
    assert!(kills >= 3, "the test killed too few workers to mean much");
    assert_eq!(not_done, 0);
    assert_eq!(transcripts, CALLS as i64);
    assert_eq!(transcript_calls, CALLS as i64);
    assert_eq!(
        usage, CALLS as i64,
        "one usage row per call: no work counted twice"
    );
    assert_eq!(usage_calls, CALLS as i64);
    assert_eq!(leased, 0, "a clean stop leaves no lease");
    assert!(
        rescues > 0,
        "killed workers held leases: the rescuer must have taken them back"
    );

    // Every call has exactly the segments of one run of its clip: same count, same text.
    let rows = client
        .query(
            "SELECT t.call_id, t.text, count(s.*)
             FROM core.transcripts t LEFT JOIN core.transcript_segments s USING (call_id)
             GROUP BY t.call_id, t.text",
            &[],
        )
        .await
        .unwrap();
    let mut by_clip: HashMap<usize, (String, i64)> = HashMap::new();
    for row in rows {
        let clip = clip_of[&row.get::<_, uuid::Uuid>(0)];
        let seen = (row.get::<_, String>(1), row.get::<_, i64>(2));
        assert!(seen.1 > 0, "a call without segments: {seen:?}");
        let expected = by_clip.entry(clip).or_insert_with(|| seen.clone());
        assert_eq!(&seen, expected, "{}", CLIPS[clip]);
    }
    assert_eq!(by_clip.len(), CLIPS.len());
    assert!(by_clip[&0].0.contains("forward"), "{:?}", by_clip[&0]);
}
