//! The loopback S3 server of the local stack: `s3-dev-server --root DIR --addr 127.0.0.1:9014
//! [--access-key K --secret-key S]`. Runs until killed.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let mut root: Option<PathBuf> = None;
    let mut addr = "127.0.0.1:9014".to_owned();
    let mut access_key = callscript_testkit::s3::ACCESS_KEY.to_owned();
    let mut secret_key = callscript_testkit::s3::SECRET_KEY.to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--root" => root = Some(PathBuf::from(value())),
            "--addr" => addr = value(),
            "--access-key" => access_key = value(),
            "--secret-key" => secret_key = value(),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let root = root.unwrap_or_else(|| usage("--root is required"));
    if let Err(e) = std::fs::create_dir_all(&root) {
        eprintln!("error: cannot create {}: {e}", root.display());
        return std::process::ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("s3-dev-server: serving {} on http://{addr}", root.display());
        callscript_testkit::s3::serve(listener, &root, &access_key, &secret_key).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: s3-dev-server on {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("error: {problem}");
    }
    eprintln!(
        "usage: s3-dev-server --root DIR [--addr 127.0.0.1:9014] [--access-key K --secret-key S]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}
