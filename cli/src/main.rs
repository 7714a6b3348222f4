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
        .with_env_filter(log_filter(std::env::var("CALLSCRIPT_LOG").ok()))
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

/// The log filter from `CALLSCRIPT_LOG` (tracing's directive syntax), `warn` when unset or
/// unreadable. tokio-postgres logs every statement's parameters at debug level (its `query`
/// module, which logs nothing else), and those hold transcripts, token hashes and sealed
/// secrets: a plain `CALLSCRIPT_LOG=debug` leaves them out, and only a directive that names
/// `tokio_postgres` itself lets them through.
fn log_filter(setting: Option<String>) -> tracing_subscriber::EnvFilter {
    // symphonia warns about container quirks it recovers from (junk bytes before an MP4
    // box); a user cannot act on those.
    const DEFAULT: &str = "warn,symphonia_core=error";
    let directives = setting.unwrap_or_else(|| DEFAULT.to_owned());
    let directives = if directives.contains("tokio_postgres") {
        directives
    } else {
        format!("{directives},tokio_postgres::query=info")
    };
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT))
}
