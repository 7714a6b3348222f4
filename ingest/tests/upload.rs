//! Uploads against the real Postgres and S3 server: stored once, queued once, bad files named.

use std::path::PathBuf;

use callscript_core::model::CallState;
use callscript_core::queue;
use callscript_core::storage;
use callscript_ingest::upload::{enqueue_file, UploadError, UploadOptions};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::{create_org, TestDatabase};
use uuid::Uuid;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audio")
        .join(name)
}

fn options(org_id: Uuid, max_bytes: u64) -> UploadOptions {
    UploadOptions {
        org_id,
        campaign_id: None,
        priority: 0,
        started_at: None,
        max_bytes,
    }
}

#[tokio::test]
async fn a_recording_is_stored_and_queued_once() {
    let db = TestDatabase::new(1).await;
    let server = TestS3Server::start().await;
    let store = storage::open("s3://recordings", server.settings()).unwrap();
    store.prepare().await.unwrap();
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let options = options(org, 10 << 20);

    let path = fixture("goforward.wav");
    let first = enqueue_file(&**client, store.as_ref(), &path, &options)
        .await
        .unwrap();
    assert!(first.newly_queued);
    assert_eq!(
        first.sha256,
        "97ec638609b9c7eeb616764b4e5713d7ed2d0a8e1a2f8246631d9074d47aaf11"
    );
    assert_eq!(
        store.get(&first.object_key).await.unwrap(),
        std::fs::read(&path).unwrap()
    );

    // The same content under another name is the same call.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("renamed.wav");
    std::fs::copy(&path, &copy).unwrap();
    let again = enqueue_file(&**client, store.as_ref(), &copy, &options)
        .await
        .unwrap();
    assert_eq!((again.call_id, again.newly_queued), (first.call_id, false));

    let call = queue::get_call(&**client, first.call_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(call.state, CallState::Downloaded);
    assert_eq!(call.object_key.as_deref(), Some(first.object_key.as_str()));
    assert_eq!(call.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(call.metadata["filename"], "goforward.wav");
}

#[tokio::test]
async fn bad_files_get_their_own_errors_and_store_nothing() {
    let db = TestDatabase::new(1).await;
    let dir = tempfile::tempdir().unwrap();
    let store = storage::open(
        dir.path().join("objects").to_str().unwrap(),
        Default::default(),
    )
    .unwrap();
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let options = options(org, 1000);
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, b"this is not audio at all").unwrap();

    let cases = [
        (dir.path().join("missing.wav"), "No such file"),
        (empty, "the file is empty"),
        (text, "not a recognised audio file"),
        (
            fixture("goforward.wav"),
            "over the upload limit of 1000 bytes",
        ),
    ];
    for (path, expected) in cases {
        let err = enqueue_file(&**client, store.as_ref(), &path, &options)
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&path.display().to_string()),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
        assert!(!matches!(
            err,
            UploadError::Store { .. } | UploadError::Queue { .. }
        ));
    }
    assert!(queue::counts(&**client, None).await.unwrap().is_empty());
    assert!(!dir.path().join("objects").exists());
}
