//! `callscript org credentials`: a secret goes in through standard input and never comes out.

use std::process::Output;

use callscript_testkit::{create_org, TestDatabase};

mod common;

const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const SECRET: &str = "livekit-secret-5f1e0c";

fn org_credentials(db: &TestDatabase, args: &[&str], key: Option<&str>, stdin: &str) -> Output {
    let mut command = common::callscript();
    command
        .args(["org", "credentials"])
        .args(args)
        .env("DATABASE_URL", &db.url.url)
        .env_remove("CALLSCRIPT_CREDENTIALS_KEY");
    if let Some(key) = key {
        command.env("CALLSCRIPT_CREDENTIALS_KEY", key);
    }
    common::output_with_stdin(&mut command, stdin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_stored_from_stdin_and_never_printed() {
    let db = TestDatabase::new(2).await;
    create_org(&**db.client().await, "acme").await;
    let secret_line = format!("{SECRET}\n");
    let set = ["set", "acme", "livekit", "--public-id", "APIkey123"];

    let refused = org_credentials(&db, &set, None, &secret_line);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("CALLSCRIPT_CREDENTIALS_KEY"));

    let mut outputs = vec![org_credentials(&db, &set, Some(KEY), &secret_line)];
    assert!(outputs[0].status.success(), "{outputs:?}");
    outputs.push(org_credentials(&db, &["list", "acme"], None, ""));
    let listed = String::from_utf8_lossy(&outputs[1].stdout).into_owned();
    assert!(
        listed.starts_with("livekit") && listed.contains("APIkey123"),
        "{listed}"
    );
    for output in &outputs {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!all.contains(SECRET), "{all}");
    }
    let stored: Vec<u8> = db
        .client()
        .await
        .query_one("SELECT ciphertext FROM core.organization_credentials", &[])
        .await
        .unwrap()
        .get(0);
    assert_ne!(stored, SECRET.as_bytes());

    let empty = org_credentials(&db, &set, Some(KEY), "\n");
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no secret on standard input"));
    let deleted = org_credentials(&db, &["delete", "acme", "livekit"], None, "");
    assert!(deleted.status.success());
    let listed = org_credentials(&db, &["list", "acme"], None, "");
    assert!(listed.stdout.is_empty());
}
