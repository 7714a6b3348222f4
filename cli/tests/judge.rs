//! `callscript rules`, `callscript report` and `judge`'s LLM settings as a user runs them.

use std::process::Command;

use callscript_testkit::TestDatabase;

/// Runs the binary (against `db` when given, with `env` set): (success, stdout, stderr).
fn run(db: Option<&TestDatabase>, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_callscript"));
    if let Some(db) = db {
        command.env("DATABASE_URL", &db.url.url);
    }
    // Tests set the LLM settings they mean; the machine's own never leak in.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CALLSCRIPT_LLM_")) {
        command.env_remove(name);
    }
    let output = command
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn callscript(args: &[&str]) -> (bool, String, String) {
    run(None, &[], args)
}

fn callscript_on(db: &TestDatabase, args: &[&str]) -> (bool, String, String) {
    run(Some(db), &[], args)
}

#[test]
fn an_llm_endpoint_without_a_model_is_refused_before_anything_runs() {
    let (ok, _, stderr) = run(
        None,
        &[("CALLSCRIPT_LLM_BASE_URL", "http://127.0.0.1:8080/v1")],
        &["judge", "--until-idle"],
    );
    assert!(!ok);
    assert!(stderr.contains("CALLSCRIPT_LLM_MODEL"), "{stderr}");
    let (ok, _, stderr) = run(
        None,
        &[("CALLSCRIPT_LLM_MODEL", "local")],
        &["judge", "--until-idle"],
    );
    assert!(!ok);
    assert!(stderr.contains("CALLSCRIPT_LLM_BASE_URL"), "{stderr}");
}

#[test]
fn rules_check_names_each_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.toml");
    let (ok, text, _) = callscript(&["rules", "default"]);
    assert!(ok);
    std::fs::write(&default, &text).unwrap();
    let (ok, stdout, stderr) = callscript(&["rules", "check", default.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rulebook default@1"), "{stdout}");

    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[rulebook]\nname = \"acme\"\nversion = \"1\"\n\n[[rules]]\nid = \"x\"\nkind = \"shout\"\n\
         category = \"compliance\"\nseverity = \"high\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = callscript(&["rules", "check", broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("line 7"), "the kind's line: {stderr}");
    assert!(stderr.contains("shout"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_stored_applied_and_a_daily_report() {
    let db = TestDatabase::new(2).await;
    let (ok, _, stderr) = callscript_on(&db, &["org", "create", "acme", "--timezone", "Mars/Base"]);
    assert!(!ok);
    assert!(
        stderr.contains("unknown time zone \"Mars/Base\""),
        "{stderr}"
    );
    let (ok, _, stderr) = callscript_on(
        &db,
        &["org", "create", "acme", "--timezone", "America/New_York"],
    );
    assert!(ok, "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("acme.toml");
    let (_, default, _) = callscript(&["rules", "default"]);
    std::fs::write(
        &file,
        default.replacen("name = \"default\"", "name = \"acme-sales\"", 1),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let (ok, stdout, stderr) = callscript_on(&db, &["rules", "add", file, "--org", "acme"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "stored acme-sales@1 for acme");
    let (ok, stdout, _) = callscript_on(&db, &["rules", "add", file, "--org", "acme"]);
    assert!(ok);
    assert!(stdout.starts_with("unchanged acme-sales@1"), "{stdout}");

    let (ok, _, stderr) = callscript_on(&db, &["rules", "use", "nope", "--org", "acme"]);
    assert!(!ok);
    assert!(stderr.contains("no rulebook nope stored"), "{stderr}");
    let (ok, stdout, stderr) = callscript_on(&db, &["rules", "use", "acme-sales", "--org", "acme"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("acme: calls judged from now on by rulebook acme-sales"),
        "{stdout}"
    );
    let (ok, stdout, _) = callscript_on(&db, &["rules", "list", "--org", "acme"]);
    assert!(ok);
    assert!(stdout.starts_with("acme-sales@1"), "{stdout}");
    assert!(stdout.contains("applied to organization"), "{stdout}");

    let (ok, stdout, stderr) = callscript_on(
        &db,
        &["report", "daily", "--org", "acme", "--date", "2026-11-05"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("acme — 2026-11-05 (America/New_York)\ncalls: 0 (0 judged"),
        "{stdout}"
    );
    let (ok, stdout, _) = callscript_on(
        &db,
        &[
            "report",
            "daily",
            "--org",
            "acme",
            "--date",
            "2026-11-05",
            "--json",
        ],
    );
    assert!(ok);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["day"], "2026-11-05");
    assert_eq!(report["calls"]["total"], 0);
    let (ok, _, stderr) =
        callscript_on(&db, &["report", "daily", "--org", "acme", "--date", "5/11"]);
    assert!(!ok);
    assert!(stderr.contains("--date"), "{stderr}");
}
