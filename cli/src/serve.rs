//! `callscript serve`: the review API and web UI.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use callscript_server::{router, AppState};
use clap::Args;
use tokio::net::TcpListener;

use crate::commands::{migrated_pool, open_reachable_storage, stop_on_signal, Settings};
use crate::notify::print_report;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CALLSCRIPT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Largest recording the upload endpoint accepts, in MiB.
    #[arg(long, default_value_t = 512)]
    max_upload_mib: u64,
    /// Database connections held for requests.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[command(flatten)]
    alongside: crate::notify::AlongsideArgs,
}

pub async fn serve(settings: &Settings, args: ServeArgs) -> Result<()> {
    let (url, pool) = migrated_pool(settings, args.connections).await?;
    let store = open_reachable_storage(settings).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    let address = listener.local_addr()?;
    eprintln!("serve: review UI on http://{address}/ and API on http://{address}/api/v1");
    let stop = stop_on_signal();
    let beside = args.alongside.lane(&url, &pool)?.map(|delivery| {
        let stop = stop.clone();
        tokio::spawn(async move { delivery.run(false, stop).await })
    });
    let app = router(AppState {
        pool,
        store,
        max_upload_bytes: args.max_upload_mib.saturating_mul(1 << 20),
    });
    let mut stopped = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .context("serving the review API")?;
    if let Some(beside) = beside {
        print_report(&beside.await??);
    }
    Ok(())
}
