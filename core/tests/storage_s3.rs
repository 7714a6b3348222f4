//! The S3 store against a real S3-protocol server on loopback.

use std::time::Duration;

use bytes::Bytes;
use callscript_core::storage::{self, sha256_hex, S3Settings, Spool, StorageError};
use callscript_testkit::s3::TestS3Server;
use futures_util::TryStreamExt;

#[tokio::test]
async fn round_trip_head_presign_and_missing_objects() {
    let server = TestS3Server::start().await;
    let store = storage::open("s3://recordings/vault", server.settings()).unwrap();
    store.prepare().await.unwrap();
    store.prepare().await.unwrap(); // idempotent

    let audio = Bytes::from(vec![7u8; 300_000]);
    let info = store
        .put("orgs/a/upload/call.flac", audio.clone(), "audio/flac")
        .await
        .unwrap();
    assert_eq!(info.sha256.as_deref(), Some(sha256_hex(&audio).as_str()));
    assert_eq!(info.size, 300_000);

    let head = store
        .head("orgs/a/upload/call.flac")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head, info);
    assert_eq!(store.get("orgs/a/upload/call.flac").await.unwrap(), audio);

    let url = store
        .presign_get("orgs/a/upload/call.flac", Duration::from_secs(300))
        .await
        .unwrap();
    assert!(
        url.starts_with(&server.endpoint) && url.contains("X-Amz-Signature"),
        "{url}"
    );
    let fetched = reqwest::get(&url).await.unwrap();
    assert!(fetched.status().is_success(), "{}", fetched.status());
    assert_eq!(fetched.bytes().await.unwrap(), audio);

    assert_eq!(
        store.head("orgs/a/upload/missing.flac").await.unwrap(),
        None
    );
    assert!(matches!(
        store.get("orgs/a/upload/missing.flac").await,
        Err(StorageError::NotFound { .. })
    ));
}

#[tokio::test]
async fn wrong_credentials_fail_with_a_clear_error() {
    let server = TestS3Server::start().await;
    let settings = S3Settings {
        secret_access_key: Some("not-the-secret".into()),
        ..server.settings()
    };
    let store = storage::open("s3://recordings", settings).unwrap();
    let err = store
        .put("a.wav", Bytes::from_static(b"RIFF"), "audio/wav")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("put \"a.wav\" in s3://recordings at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("SignatureDoesNotMatch"), "{err}");

    let missing = storage::open("s3://recordings", S3Settings::default())
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("AWS_ACCESS_KEY_ID"),
        "{missing}"
    );
}

#[tokio::test]
async fn spooled_puts_and_ranged_streams() {
    let server = TestS3Server::start().await;
    let store = server.store().await;
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let parts: Vec<Result<Bytes, String>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let spool = Spool::write(&mut futures_util::stream::iter(parts), 4 << 20)
        .await
        .unwrap();
    let info = store
        .put_spooled("orgs/a/upload/long.wav", &spool, "audio/wav")
        .await
        .unwrap();
    assert_eq!(info.size, 3_000_000);
    assert_eq!(info.sha256.as_deref(), Some(sha256_hex(&body).as_str()));
    assert_eq!(
        store.head("orgs/a/upload/long.wav").await.unwrap(),
        Some(info)
    );
    let streamed = |range| {
        let store = store.clone();
        async move {
            let chunks: Vec<Bytes> = store
                .get_stream("orgs/a/upload/long.wav", range)
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            chunks.concat()
        }
    };
    assert_eq!(streamed(None).await, body);
    assert_eq!(
        streamed(Some(2_500_000..=2_999_999)).await,
        &body[2_500_000..]
    );
    assert_eq!(streamed(Some(0..=3)).await, &body[..4]);
    assert!(matches!(
        store.get_stream("orgs/a/upload/missing.wav", None).await,
        Err(StorageError::NotFound { .. })
    ));
}
