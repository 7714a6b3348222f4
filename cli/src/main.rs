//! The `callscript` binary: parses arguments and settings, then calls the libraries.
//! Every failure ends as one `error: ...` line on stderr and exit status 1.

mod bench;
mod commands;
mod doctor;
mod idle;
mod ingest;
mod judge;
mod notify;
mod review;
mod serve;
mod transcribe;
mod worker;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CALLSCRIPT_LOG")
                // symphonia warns about container quirks it recovers from (junk bytes before
                // an MP4 box); a user cannot act on those.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,symphonia_core=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(commands::run(cli));
    // A worker stopped after its grace period leaves its batch running on a blocking thread:
    // its leases are already released, so the process exits without waiting for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
