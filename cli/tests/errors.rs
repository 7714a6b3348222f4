//! The binary's answer to bad settings: one clear line naming the setting, exit status 1.

use std::process::Command;

fn callscript(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callscript"));
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CALLSCRIPT_STORAGE");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run callscript");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn unreachable_database_is_one_line_naming_the_setting() {
    let (code, stdout, stderr) = callscript(
        &["queue", "show"],
        &[("DATABASE_URL", "postgres://ops:hunter2@127.0.0.1:1/calls")],
    );
    assert_eq!(code, 1);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to the database at DATABASE_URL=postgres://ops@127.0.0.1:1/calls: "),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn missing_and_malformed_settings_are_named() {
    let (code, _, stderr) = callscript(&["migrate"], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: DATABASE_URL is not set"),
        "{stderr}"
    );

    let (code, _, stderr) = callscript(&["migrate"], &[("DATABASE_URL", "postgres://h:port/db")]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: DATABASE_URL is not a valid Postgres URL"),
        "{stderr}"
    );
}
