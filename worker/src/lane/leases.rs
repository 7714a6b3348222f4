//! The leases this worker holds, and the heartbeat that keeps them.
//!
//! Every claimed call is registered here until its result is written, it is failed or it is
//! released. The heartbeat extends all of them in one statement; a lease the heartbeat finds
//! gone (it expired and the rescuer took it back) is dropped from the set: the work on it is
//! discarded when its write is refused by the lease fence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callscript_core::db::Pool;
use callscript_core::model::Lane;
use callscript_core::queue::{self, Lease};
use callscript_core::workers;
use uuid::Uuid;

use super::LaneMetrics;

#[derive(Debug, Clone, Default)]
pub(super) struct HeldLeases {
    leases: Arc<Mutex<HashMap<Uuid, Lease>>>,
}

impl HeldLeases {
    pub fn insert(&self, lease: Lease) {
        self.lock().insert(lease.call_id, lease);
    }

    /// Stops holding a call's lease (its result was written, or it was failed or released).
    pub fn remove(&self, call_id: Uuid) {
        self.lock().remove(&call_id);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Takes every lease out of the set.
    pub fn take_all(&self) -> Vec<Lease> {
        self.lock().drain().map(|(_, lease)| lease).collect()
    }

    fn snapshot(&self) -> Vec<Lease> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Lease>> {
        self.leases.lock().expect("lease set poisoned")
    }
}

/// What the heartbeat needs to know of the lane.
pub(super) struct HeartbeatConfig {
    pub worker_id: String,
    pub org_id: Option<Uuid>,
    pub every: Duration,
    pub lease_for: Duration,
}

/// Each `every`, reports the worker in (`core.workers`, busy or idle) and extends every held
/// lease, for `lease_for` from then; runs until aborted.
pub(super) async fn heartbeat_loop(
    pool: Pool,
    held: HeldLeases,
    config: HeartbeatConfig,
    metrics: LaneMetrics,
) {
    let mut ticks = tokio::time::interval(config.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        metrics.leases_held.set(held.len() as f64);
        let mut leases = held.snapshot();
        let report = async {
            let client = pool.get().await?;
            workers::report_in(
                &**client,
                &config.worker_id,
                Lane::Transcribe,
                config.org_id,
            )
            .await?;
            if leases.is_empty() {
                return Ok(queue::HeartbeatReport::default());
            }
            queue::heartbeat(&**client, &mut leases, config.lease_for).await
        };
        match report.await {
            Ok(report) => {
                for call_id in report.lost {
                    tracing::warn!(%call_id, "lease lost (expired and rescued); its work will be dropped");
                    held.remove(call_id);
                }
            }
            // The next beat tries again; leases last several beats.
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}
