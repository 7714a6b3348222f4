//! The README's scripts and a plain `cargo` agree on where builds go, and the scripts show
//! cargo's progress while they build (a first build takes minutes; silence looks like a hang).

use std::path::{Path, PathBuf};
use std::process::Command;

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the cli crate sits in the checkout")
        .to_path_buf()
}

/// The folder a plain `cargo build` in the checkout writes to, with no `CARGO_TARGET_DIR` set.
fn plain_cargo_target_dir() -> PathBuf {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(checkout())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    PathBuf::from(metadata["target_directory"].as_str().unwrap())
}

/// The folder the scripts build into (`cs_target_dir`), with no `CARGO_TARGET_DIR` set.
fn scripts_target_dir() -> PathBuf {
    let output = Command::new("bash")
        .args([
            "-c",
            "source scripts/lib/common.sh && cs_target_dir && printf %s \"$CARGO_TARGET_DIR\"",
        ])
        .current_dir(checkout())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run bash");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap())
}

#[test]
fn plain_cargo_and_the_scripts_build_into_one_folder_outside_the_checkout() {
    // The same folder however it is spelled (`main/../.callscript-target`, or through a link).
    let resolved = |path: PathBuf| std::fs::canonicalize(&path).unwrap_or(path);
    // The scripts' first: `cs_target_dir` creates the folder, so both spellings resolve.
    let scripts = resolved(scripts_target_dir());
    let plain = resolved(plain_cargo_target_dir());
    assert_eq!(
        plain, scripts,
        "a build by hand and a script would compile everything twice"
    );
    let root = checkout().canonicalize().unwrap();
    assert!(
        !plain.starts_with(&root),
        "{} is inside the checkout {}",
        plain.display(),
        root.display()
    );
}

#[test]
fn scripts_never_build_quietly() {
    let scripts = checkout().join("scripts");
    let mut quiet = Vec::new();
    for entry in std::fs::read_dir(&scripts).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or_default();
            let builds = code.contains("cargo build") || code.contains("cargo bench");
            let silent = code
                .split_whitespace()
                .any(|word| word == "-q" || word == "--quiet");
            if builds && silent {
                quiet.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        quiet.is_empty(),
        "builds without progress:\n{}",
        quiet.join("\n")
    );
}
