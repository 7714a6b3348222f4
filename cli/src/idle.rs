//! `--until-idle` and its wait, the same on every lane of the calls queue (`worker`, `vault`,
//! `judge`): a cron or serverless run finishes what is finishable, then says what it left.

use anyhow::Result;
use callscript_core::db::Pool;
use callscript_core::model::Lane;
use callscript_core::queue::{self, LeftBehind, Until, DEFAULT_IDLE_WAIT};
use clap::Args;
use uuid::Uuid;

use crate::worker::seconds;

#[derive(Args)]
pub struct IdleArgs {
    /// Exit when the work is done instead of waiting for new calls: once no call is ready and
    /// none falls due within --idle-wait-seconds. Calls waiting out a retry backoff and calls
    /// leased by a stopped worker (whose expired leases this run takes back) are waited for; a
    /// lease another worker keeps renewing is left to it. At exit, says what was left and why.
    #[arg(long)]
    until_idle: bool,
    /// With --until-idle: how long to wait, once nothing is ready, for calls that fall due (0:
    /// exit at the first empty claim).
    #[arg(long, requires = "until_idle", default_value_t = DEFAULT_IDLE_WAIT.as_secs_f64())]
    idle_wait_seconds: f64,
}

impl IdleArgs {
    pub fn until(&self) -> Result<Until> {
        Ok(if self.until_idle {
            Until::Idle {
                wait: seconds("--idle-wait-seconds", self.idle_wait_seconds)?,
            }
        } else {
            Until::Stopped
        })
    }

    /// What an until-idle run left in `lane` (`None` for a run that waited for new calls).
    pub async fn left_behind(
        &self,
        pool: &Pool,
        lane: Lane,
        org_id: Option<Uuid>,
    ) -> Result<Option<LeftBehind>> {
        if !self.until_idle {
            return Ok(None);
        }
        Ok(Some(
            queue::left_behind(&**pool.get().await?, lane, org_id).await?,
        ))
    }
}
