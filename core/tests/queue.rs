//! The LIFO queue against the real Postgres: order, fairness, concurrency, leases, fencing,
//! backoff, dead letter, aging and wake-ups.

use std::collections::HashSet;
use std::time::Duration;

use callscript_core::maintenance;
use callscript_core::model::{CallState, Lane};
use callscript_core::queue::{
    self, ClaimRequest, Claimed, Failed, LaneLoop, QueueError, QueueListener, RequeueFilter, Retry,
    Until, Wakeup,
};
use callscript_testkit::{create_org, downloaded_call, insert_downloaded_calls, TestDatabase};
use chrono::{Duration as Age, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

fn request(worker: &str, batch_size: i64, lease_for: Duration) -> ClaimRequest<'_> {
    ClaimRequest {
        lane: Lane::Transcribe,
        worker,
        batch_size,
        lease_for,
        org_id: None,
    }
}

async fn claim(client: &impl GenericClient, worker: &str, batch_size: i64) -> Vec<Claimed> {
    queue::claim(
        client,
        &request(worker, batch_size, Duration::from_secs(60)),
    )
    .await
    .unwrap()
}

fn external_ids(claimed: &[Claimed]) -> Vec<&str> {
    claimed
        .iter()
        .map(|c| c.call.external_id.as_str())
        .collect()
}

async fn state_of(client: &impl GenericClient, id: Uuid) -> queue::Call {
    queue::get_call(client, id).await.unwrap().unwrap()
}

/// Enqueues a downloaded call that started now; returns its id.
async fn enqueue_now(client: &impl GenericClient, org: Uuid, external_id: &str) -> Uuid {
    queue::enqueue(client, &downloaded_call(org, external_id, Utc::now()))
        .await
        .unwrap()
        .call_id
}

/// Makes retries due now, as if their backoff had passed.
async fn make_retries_due(client: &impl GenericClient) {
    client
        .execute(
            "UPDATE core.calls SET run_after = now() WHERE run_after > now()",
            &[],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn newest_first_within_priority() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let now = Utc::now();
    for (id, hours_ago, priority) in [
        ("oldest", 3, 0),
        ("old", 1, 0),
        ("urgent", 2, 1),
        ("newest", 0, 0),
    ] {
        let mut call = downloaded_call(org, id, now - Age::hours(hours_ago));
        call.priority = priority;
        queue::enqueue(&**client, &call).await.unwrap();
    }
    let peeked: Vec<String> = queue::peek(&**client, Lane::Transcribe, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    assert_eq!(peeked, ["urgent", "newest", "old", "oldest"]);

    let first = claim(&**client, "w1", 2).await;
    assert_eq!(external_ids(&first), ["urgent", "newest"]);
    let rest = claim(&**client, "w1", 10).await;
    assert_eq!(external_ids(&rest), ["old", "oldest"]);
    assert!(claim(&**client, "w1", 10).await.is_empty());
    let call = &first[0].call;
    assert_eq!((call.state, call.attempts), (CallState::Transcribing, 1));
    assert_eq!(call.lease_owner.as_deref(), Some("w1"));
}

#[tokio::test]
async fn enqueue_is_idempotent_and_validated() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let call = downloaded_call(org, "ext-1", Utc::now());
    let first = queue::enqueue(&**client, &call).await.unwrap();
    let again = queue::enqueue(&**client, &call).await.unwrap();
    assert!(first.inserted && !again.inserted);
    assert_eq!(first.call_id, again.call_id);

    let mut no_object = call.clone();
    no_object.external_id = "ext-2".into();
    no_object.object_key = None;
    let err = queue::enqueue(&**client, &no_object).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidCall(_)), "{err}");
}

#[tokio::test]
async fn a_big_backfill_delays_another_orgs_new_call_by_at_most_one_batch() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let big = create_org(&**client, "big-backfill").await;
    let small = create_org(&**client, "small").await;
    let now = Utc::now();
    // 10 000 calls of the big org, all newer than the small org's call, some urgent.
    insert_downloaded_calls(&**client, big, "backfill", 10_000, now).await;
    client
        .execute(
            "UPDATE core.calls SET priority = 5 WHERE external_id LIKE 'backfill-%' AND random() < 0.5",
            &[],
        )
        .await
        .unwrap();
    queue::enqueue(
        &**client,
        &downloaded_call(small, "live", now - Age::days(3)),
    )
    .await
    .unwrap();

    let batch = claim(&**client, "w1", 16).await;
    assert_eq!(batch.len(), 16);
    assert!(
        external_ids(&batch).contains(&"live"),
        "the small org's call waited behind the backfill: {:?}",
        external_ids(&batch)
    );
    // The backfill itself is still served newest-first (priority first).
    let next = claim(&**client, "w1", 4).await;
    assert!(next
        .iter()
        .all(|c| c.call.org_id == big && c.call.priority == 5));
}

#[tokio::test]
async fn a_claim_for_one_organization_takes_only_its_calls() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let mine = create_org(&**client, "mine").await;
    let other = create_org(&**client, "other").await;
    let now = Utc::now();
    insert_downloaded_calls(&**client, mine, "mine", 3, now - Age::hours(1)).await;
    insert_downloaded_calls(&**client, other, "other", 3, now).await;
    let only_mine = ClaimRequest {
        org_id: Some(mine),
        ..request("dedicated", 10, Duration::from_secs(60))
    };
    let batch = queue::claim(&**client, &only_mine).await.unwrap();
    assert_eq!(external_ids(&batch), ["mine-0", "mine-1", "mine-2"]);
    assert!(queue::claim(&**client, &only_mine)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(claim(&**client, "anyone", 10).await.len(), 3);
}

#[tokio::test]
async fn depth_counts_each_asked_state_over_all_organizations() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let a = create_org(&**client, "a").await;
    let b = create_org(&**client, "b").await;
    insert_downloaded_calls(&**client, a, "a", 3, Utc::now()).await;
    insert_downloaded_calls(&**client, b, "b", 2, Utc::now()).await;
    claim(&**client, "w", 1).await;
    let depth = queue::depth(
        &**client,
        &[
            CallState::Downloaded,
            CallState::Transcribing,
            CallState::Failed,
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        depth,
        [
            (CallState::Downloaded, 4),
            (CallState::Transcribing, 1),
            (CallState::Failed, 0)
        ]
    );
}

#[tokio::test]
async fn thirty_two_concurrent_claimers_take_each_call_exactly_once() {
    const CALLS: i64 = 5_000;
    const CLAIMERS: usize = 32;
    let db = TestDatabase::new(CLAIMERS + 2).await;
    {
        let client = db.client().await;
        let orgs = [
            create_org(&**client, "org-a").await,
            create_org(&**client, "org-b").await,
            create_org(&**client, "org-c").await,
        ];
        for (i, org) in orgs.iter().enumerate() {
            let share = if i == 0 {
                CALLS - 2 * (CALLS / 3)
            } else {
                CALLS / 3
            };
            insert_downloaded_calls(&**client, *org, &format!("o{i}"), share, Utc::now()).await;
        }
    }
    let mut tasks = Vec::new();
    for worker in 0..CLAIMERS {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            let name = format!("worker-{worker}");
            let mut mine = Vec::new();
            loop {
                let batch = claim(&**client, &name, 10).await;
                if batch.is_empty() {
                    let left: i64 = client
                        .query_one(
                            "SELECT count(*) FROM core.calls WHERE state = 'downloaded'",
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if left == 0 {
                        return mine;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                for claimed in batch {
                    queue::complete(&**client, &claimed.lease).await.unwrap();
                    mine.push(claimed.call.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len() as i64, CALLS, "claims in total");
    assert_eq!(unique.len() as i64, CALLS, "a call was claimed twice");
    let client = db.client().await;
    let done: i64 = client
        .query_one(
            "SELECT count(*) FROM core.calls WHERE state = 'transcribed' AND attempts = 0",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, CALLS);
}

#[tokio::test]
async fn expired_lease_is_rescued_reclaimed_and_the_stale_worker_is_fenced_out() {
    let db = TestDatabase::new(2).await;
    let mut client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let id = enqueue_now(&**client, org, "c1").await;
    client
        .execute(
            "UPDATE core.queue_settings SET backoff_base = '1 ms', backoff_max = '1 ms'",
            &[],
        )
        .await
        .unwrap();

    // Worker A claims with a short lease and then stalls (no heartbeat).
    let stale = queue::claim(
        &**client,
        &request("worker-a", 1, Duration::from_millis(200)),
    )
    .await
    .unwrap()
    .remove(0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = maintenance::run_once(&**client).await.unwrap();
    assert_eq!((report.rescued, report.dead_lettered), (1, 0));
    let rescued = state_of(&**client, id).await;
    assert_eq!(rescued.state, CallState::Downloaded);
    assert_eq!(rescued.rescue_count, 1);
    assert!(rescued.last_error.unwrap().contains("worker-a"));

    // Worker B takes it over.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let fresh = claim(&**client, "worker-b", 1).await.remove(0);
    assert_eq!(fresh.lease.attempt, 2);
    assert_ne!(fresh.lease.token, stale.lease.token);

    // Worker A wakes up: every write it tries is refused, and its transaction's data with it.
    let mut stale_leases = [stale.lease.clone()];
    let beat = queue::heartbeat(&**client, &mut stale_leases, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(beat.lost, [id]);
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO core.transcripts (call_id, org_id, model, text) VALUES ($1, $2, 'stale', 'stale words')",
        &[&id, &org],
    )
    .await
    .unwrap();
    let err = queue::complete(&*tx, &stale.lease).await.unwrap_err();
    assert!(
        matches!(err, QueueError::LeaseLost { call_id } if call_id == id),
        "{err}"
    );
    tx.rollback().await.unwrap();
    assert!(matches!(
        queue::fail(&**client, &stale.lease, "late", Retry::WithBackoff).await,
        Err(QueueError::LeaseLost { .. })
    ));
    assert!(matches!(
        queue::release(&**client, &stale.lease).await,
        Err(QueueError::LeaseLost { .. })
    ));

    // Worker B's work stands.
    let tx = client.transaction().await.unwrap();
    queue::complete(&*tx, &fresh.lease).await.unwrap();
    tx.execute(
        "INSERT INTO core.transcripts (call_id, org_id, model, text) VALUES ($1, $2, 'fresh', 'fresh words')",
        &[&id, &org],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let call = state_of(&**client, id).await;
    assert_eq!(
        (call.state, call.attempts, call.last_error),
        (CallState::Transcribed, 0, None)
    );
    let model: String = client
        .query_one(
            "SELECT model FROM core.transcripts WHERE call_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(model, "fresh");
}

#[tokio::test]
async fn heartbeats_keep_a_lease_alive() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    enqueue_now(&**client, org, "c1").await;
    let claimed = queue::claim(&**client, &request("w", 1, Duration::from_millis(300)))
        .await
        .unwrap()
        .remove(0);
    let mut leases = [claimed.lease.clone()];
    let beat = queue::heartbeat(&**client, &mut leases, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((beat.renewed, beat.lost.len()), (1, 0));
    assert!(leases[0].expires_at > claimed.lease.expires_at);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(maintenance::run_once(&**client).await.unwrap().rescued, 0);
    queue::complete(&**client, &leases[0]).await.unwrap();
}

#[tokio::test]
async fn failures_back_off_then_dead_letter_and_requeue_brings_them_back() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let mut call = downloaded_call(org, "c1", Utc::now());
    call.max_attempts = 3;
    let id = queue::enqueue(&**client, &call).await.unwrap().call_id;

    let mut expected_backoff = 10.0;
    for attempt in 1..=2 {
        let claimed = claim(&**client, "w", 1).await.remove(0);
        assert_eq!(claimed.lease.attempt, attempt);
        let failed = queue::fail(
            &**client,
            &claimed.lease,
            "decoder exploded",
            Retry::WithBackoff,
        )
        .await
        .unwrap();
        let Failed::WillRetry { run_after } = failed else {
            panic!("attempt {attempt} dead-lettered early")
        };
        let wait = (run_after - Utc::now()).num_milliseconds() as f64 / 1000.0;
        assert!(
            (expected_backoff * 0.85..=expected_backoff * 1.1).contains(&wait),
            "attempt {attempt}: backoff {wait} s, expected about {expected_backoff} s"
        );
        let waiting = state_of(&**client, id).await;
        assert_eq!(waiting.state, CallState::Downloaded);
        assert_eq!(waiting.last_error.as_deref(), Some("decoder exploded"));
        assert!(
            claim(&**client, "w", 1).await.is_empty(),
            "claimed during backoff"
        );
        let counts = queue::counts(&**client, Some(org)).await.unwrap();
        assert_eq!(counts[0].retrying, 1);
        make_retries_due(&**client).await;
        expected_backoff *= 2.0;
    }
    let last = claim(&**client, "w", 1).await.remove(0);
    assert_eq!(
        queue::fail(
            &**client,
            &last.lease,
            "decoder exploded again",
            Retry::WithBackoff
        )
        .await
        .unwrap(),
        Failed::DeadLettered
    );
    let dead = state_of(&**client, id).await;
    assert_eq!(dead.state, CallState::Failed);
    assert_eq!(dead.last_error.as_deref(), Some("decoder exploded again"));
    make_retries_due(&**client).await;
    assert!(claim(&**client, "w", 1).await.is_empty());

    let requeued = queue::requeue_failed(
        &**client,
        &RequeueFilter {
            org_id: Some(org),
            call_ids: vec![],
        },
    )
    .await
    .unwrap();
    assert_eq!(requeued, 1);
    let back = claim(&**client, "w", 1).await.remove(0);
    assert_eq!((back.call.id, back.lease.attempt), (id, 1));

    // A failure that retrying cannot fix goes straight to the dead letter.
    assert_eq!(
        queue::fail(&**client, &back.lease, "not audio", Retry::Never)
            .await
            .unwrap(),
        Failed::DeadLettered
    );
}

#[tokio::test]
async fn rescue_past_max_attempts_dead_letters() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let mut call = downloaded_call(org, "poison", Utc::now());
    call.max_attempts = 1;
    let id = queue::enqueue(&**client, &call).await.unwrap().call_id;
    queue::claim(&**client, &request("crashy", 1, Duration::from_millis(50)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let report = maintenance::run_once(&**client).await.unwrap();
    assert_eq!((report.rescued, report.dead_lettered), (0, 1));
    assert_eq!(state_of(&**client, id).await.state, CallState::Failed);
}

#[tokio::test]
async fn release_returns_the_call_without_spending_an_attempt() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let id = enqueue_now(&**client, org, "c1").await;
    let claimed = claim(&**client, "w", 1).await.remove(0);
    queue::release(&**client, &claimed.lease).await.unwrap();
    let call = state_of(&**client, id).await;
    assert_eq!(
        (call.state, call.attempts, call.lease_owner),
        (CallState::Downloaded, 0, None)
    );
}

#[tokio::test]
async fn aging_serves_long_waiting_calls_before_newer_ones() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let now = Utc::now();
    queue::enqueue(
        &**client,
        &downloaded_call(org, "yesterday", now - Age::days(1)),
    )
    .await
    .unwrap();
    queue::enqueue(&**client, &downloaded_call(org, "live", now))
        .await
        .unwrap();
    client
        .execute(
            "UPDATE core.calls SET queued_at = now() - interval '2 hours' WHERE external_id = 'yesterday'",
            &[],
        )
        .await
        .unwrap();
    let report = maintenance::run_once(&**client).await.unwrap();
    assert_eq!(report.aged, 1);
    assert_eq!(external_ids(&claim(&**client, "w", 1).await), ["yesterday"]);
    // Aged once per period: a second pass right away does nothing.
    assert_eq!(maintenance::run_once(&**client).await.unwrap().aged, 0);
}

#[tokio::test]
async fn listeners_wake_when_their_lane_gets_work() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let mut listener = QueueListener::connect(&db.url).await.unwrap();
    assert_eq!(
        listener
            .wait(Lane::Transcribe, Duration::from_millis(200))
            .await,
        Wakeup::PollInterval
    );
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let wakeup = listener
            .wait(Lane::Transcribe, Duration::from_secs(30))
            .await;
        (wakeup, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Work for another lane does not wake it; work for this lane does.
    let mut pending = downloaded_call(org, "p", Utc::now());
    pending.state = CallState::Pending;
    pending.object_key = None;
    queue::enqueue(&**client, &pending).await.unwrap();
    enqueue_now(&**client, org, "d").await;
    let (wakeup, waited) = waiting.await.unwrap();
    assert_eq!(wakeup, Wakeup::Notified);
    assert!(waited < Duration::from_secs(5), "woke after {waited:?}");
}

#[tokio::test]
async fn the_service_maintenance_loop_rescues_when_pg_cron_does_not() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    assert!(!maintenance::scheduled_by_pg_cron(&**client).await.unwrap());
    let org = create_org(&**client, "acme").await;
    let id = enqueue_now(&**client, org, "c1").await;
    queue::claim(&**client, &request("gone", 1, Duration::from_millis(100)))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = maintenance::MaintenanceConfig {
        interval: Duration::from_secs(1),
    };
    config.validate().unwrap();
    let service = tokio::spawn(maintenance::run_until(db.pool.clone(), config, async {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state_of(&**client, id).await.state != CallState::Downloaded {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop never rescued the call"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    service.await.unwrap();
    assert!(maintenance::MaintenanceConfig {
        interval: Duration::from_millis(10)
    }
    .validate()
    .is_err());
}

#[tokio::test]
async fn skip_ends_the_call_with_its_reason_under_the_lease() {
    let db = TestDatabase::new(1).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let id = enqueue_now(&**client, org, "c1").await;
    let claimed = claim(&**client, "w", 1).await.remove(0);
    queue::skip(
        &**client,
        &claimed.lease,
        "recording deleted at the source (404)",
    )
    .await
    .unwrap();
    let call = state_of(&**client, id).await;
    assert_eq!(call.state, CallState::Skipped);
    assert_eq!(
        call.last_error.as_deref(),
        Some("recording deleted at the source (404)")
    );
    assert_eq!(call.lease_owner, None);
    assert!(matches!(
        queue::skip(&**client, &claimed.lease, "again").await,
        Err(QueueError::LeaseLost { .. })
    ));
}

/// Runs an until-idle transcription loop of `wait` whose batches complete what they claim;
/// returns the calls it finished and how long it ran.
async fn drain(db: &TestDatabase, wait: Duration) -> (Vec<Uuid>, Duration) {
    let (_keep, stop) = tokio::sync::watch::channel(false);
    let started = std::time::Instant::now();
    let mut finished = Vec::new();
    queue::run_batches(
        LaneLoop {
            database_url: &db.url,
            pool: &db.pool,
            lane: Lane::Transcribe,
            org_id: None,
            poll_interval: Duration::from_secs(1),
            until: Until::Idle { wait },
        },
        stop,
        || async {
            let client = db.pool.get().await?;
            let claimed =
                queue::claim(&**client, &request("drainer", 10, Duration::from_secs(60))).await?;
            for call in &claimed {
                queue::complete(&**client, &call.lease).await?;
            }
            Ok::<_, QueueError>(
                (!claimed.is_empty()).then(|| claimed.iter().map(|c| c.call.id).collect()),
            )
        },
        |ids: Vec<Uuid>| finished.extend(ids),
    )
    .await
    .unwrap();
    (finished, started.elapsed())
}

#[tokio::test]
async fn until_idle_finishes_calls_in_backoff_and_behind_dead_leases_and_says_what_it_left() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    client
        .execute("UPDATE core.queue_settings SET backoff_base = '1 s'", &[])
        .await
        .unwrap();
    // A call waiting out a 2 s backoff.
    let retried = enqueue_now(&**client, org, "retried").await;
    let lease = claim(&**client, "crashed", 1).await.remove(0).lease;
    queue::fail(&**client, &lease, "store outage", Retry::WithBackoff)
        .await
        .unwrap();
    client
        .execute(
            "UPDATE core.calls SET run_after = now() + interval '2 s' WHERE id = $1",
            &[&retried],
        )
        .await
        .unwrap();
    // A call whose worker died holding a 2 s lease (the rescuer is not running).
    let orphaned = enqueue_now(&**client, org, "orphaned").await;
    queue::claim(&**client, &request("dead", 1, Duration::from_secs(2)))
        .await
        .unwrap();
    // A call a live worker holds and keeps renewing: it is that worker's to finish.
    let held = enqueue_now(&**client, org, "held").await;
    let mut live = queue::claim(&**client, &request("live", 1, Duration::from_secs(1)))
        .await
        .unwrap();
    let pool = db.pool.clone();
    let heartbeat = tokio::spawn(async move {
        let mut leases = vec![live.remove(0).lease];
        loop {
            let client = pool.get().await.unwrap();
            queue::heartbeat(&**client, &mut leases, Duration::from_secs(1))
                .await
                .unwrap();
            drop(client);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // A dead letter.
    enqueue_now(&**client, org, "undecodable").await;
    let lease = claim(&**client, "worker", 1).await.remove(0).lease;
    queue::fail(&**client, &lease, "not audio", Retry::Never)
        .await
        .unwrap();

    let (finished, took) = drain(&db, Duration::from_secs(30)).await;
    heartbeat.abort();
    let finished: HashSet<Uuid> = finished.into_iter().collect();
    assert_eq!(finished, HashSet::from([retried, orphaned]));
    // It left when nothing more fell due, not at the end of its wait.
    assert!(took < Duration::from_secs(15), "ran {took:?}");
    assert_eq!(
        state_of(&**client, held).await.state,
        CallState::Transcribing
    );

    let left = queue::left_behind(&**client, Lane::Transcribe, None)
        .await
        .unwrap();
    assert_eq!(
        (left.ready, left.in_backoff, left.leased, left.dead_lettered),
        (0, 0, 1, 1),
        "{left:?}"
    );
    let said = left.to_string();
    assert!(
        said.contains("1 call leased by other workers") && said.contains("1 call dead-lettered"),
        "{said}"
    );
    // Another organization's calls are not this org's leftovers.
    let other = create_org(&**client, "globex").await;
    let mine = queue::left_behind(&**client, Lane::Transcribe, Some(other))
        .await
        .unwrap();
    assert_eq!(mine.to_string(), "nothing");
}

#[tokio::test]
async fn until_idle_does_not_wait_for_a_backoff_past_its_wait() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let soon = enqueue_now(&**client, org, "soon").await;
    enqueue_now(&**client, org, "later").await;
    for lease in claim(&**client, "worker", 2).await {
        queue::fail(&**client, &lease.lease, "timeout", Retry::WithBackoff)
            .await
            .unwrap();
    }
    client
        .execute(
            "UPDATE core.calls SET run_after = now() + CASE WHEN id = $1 THEN interval '1 s'
                                                            ELSE interval '1 hour' END",
            &[&soon],
        )
        .await
        .unwrap();

    let (finished, took) = drain(&db, Duration::from_secs(3)).await;
    assert_eq!(finished, [soon]);
    assert!(took < Duration::from_secs(5), "ran {took:?}");
    let left = queue::left_behind(&**client, Lane::Transcribe, None)
        .await
        .unwrap();
    assert_eq!(left.in_backoff, 1, "{left:?}");
    assert!(
        left.to_string()
            .starts_with("1 call in backoff past the wait (the first until 20"),
        "{left}"
    );

    // A wait of zero is the first empty claim's exit.
    client
        .execute(
            "UPDATE core.calls SET run_after = now() + interval '1 s'",
            &[],
        )
        .await
        .unwrap();
    let (finished, _) = drain(&db, Duration::ZERO).await;
    assert!(finished.is_empty());
}
