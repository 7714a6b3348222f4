//! Claim throughput and latency of the LIFO queue on a real Postgres (`DATABASE_URL`), with
//! 1, 8 and 64 concurrent claimers, each claiming as fast as it can for a fixed time over a queue
//! of calls spread across four organizations: once claiming only (the claim statement's own
//! cost), once completing every claimed call too (a worker's full queue round trip; each
//! completion is a commit of its own).
//!
//! Run with `scripts/bench` (or `cargo bench -p callscript-benches --bench queue` with
//! `DATABASE_URL` set). `QUEUE_BENCH_SECONDS` sets the time per configuration (default 5).

use std::time::{Duration, Instant};

use callscript_core::model::Lane;
use callscript_core::queue::{self, ClaimRequest};
use callscript_testkit::{create_org, insert_downloaded_calls, TestDatabase};
use chrono::Utc;

const CALLS_PER_ORG: i64 = 25_000;

struct Measured {
    claims: usize,
    calls: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn measure(claimers: usize, batch_size: i64, complete: bool, run_for: Duration) -> Measured {
    let db = TestDatabase::new(claimers + 1).await;
    {
        let client = db.client().await;
        for org in 0..4 {
            let id = create_org(&**client, &format!("org-{org}")).await;
            insert_downloaded_calls(&**client, id, &format!("o{org}"), CALLS_PER_ORG, Utc::now())
                .await;
        }
        client
            .batch_execute("VACUUM ANALYZE core.calls")
            .await
            .unwrap();
    }
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = Vec::new();
    for worker in 0..claimers {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await.unwrap();
            let name = format!("bench-{worker}");
            let request = ClaimRequest {
                lane: Lane::Transcribe,
                worker: &name,
                batch_size,
                lease_for: Duration::from_secs(60),
                org_id: None,
            };
            let (mut latencies, mut calls) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let t = Instant::now();
                let claimed = queue::claim(&**client, &request).await.unwrap();
                latencies.push(t.elapsed());
                if claimed.is_empty() {
                    break;
                }
                calls += claimed.len();
                if complete {
                    for c in &claimed {
                        queue::complete(&**client, &c.lease).await.unwrap();
                    }
                }
            }
            (latencies, calls)
        }));
    }
    let mut measured = Measured {
        claims: 0,
        calls: 0,
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, calls) = task.await.unwrap();
        measured.claims += latencies.len();
        measured.calls += calls;
        measured.latencies.extend(latencies);
    }
    measured.elapsed = started.elapsed();
    measured.latencies.sort();
    measured
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run when benching.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds: u64 = std::env::var("QUEUE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!(
        "queue claim benchmark: {} calls over 4 orgs, {seconds} s per row; latency is the claim statement's",
        4 * CALLS_PER_ORG
    );
    println!(
        "{:>15} {:>9} {:>6} {:>12} {:>11} {:>10} {:>10} {:>10}",
        "mode", "claimers", "batch", "claims/s", "calls/s", "p50 ms", "p99 ms", "max ms"
    );
    for complete in [false, true] {
        for (claimers, batch) in [(1, 1), (8, 1), (64, 1), (1, 10), (8, 10), (64, 10)] {
            let run_for = Duration::from_secs(seconds);
            let m = runtime.block_on(measure(claimers, batch, complete, run_for));
            let secs = m.elapsed.as_secs_f64();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{:>15} {:>9} {:>6} {:>12.0} {:>11.0} {:>10.2} {:>10.2} {:>10.2}",
                if complete { "claim+complete" } else { "claim" },
                claimers,
                batch,
                m.claims as f64 / secs,
                m.calls as f64 / secs,
                ms(percentile(&m.latencies, 0.50)),
                ms(percentile(&m.latencies, 0.99)),
                ms(*m.latencies.last().unwrap_or(&Duration::ZERO)),
            );
        }
    }
}
