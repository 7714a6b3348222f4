//! `callscript rules` and `callscript judge` as a user runs them.

use std::process::Command;

fn callscript(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_callscript"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
