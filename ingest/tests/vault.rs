//! The vault's failure paths against the real Postgres and S3: each call fails alone, with the
//! right retry decision and a message naming what was wrong.

use std::time::Duration;

use callscript_core::model::Source;
use callscript_core::queue::NewCall;
use callscript_ingest::links::{self, RecordingLink};
use callscript_ingest::vault::{VaultConfig, VaultLane};
use callscript_testkit::s3::TestS3Server;
use callscript_testkit::vendors::ringba::FakeRingba;
use callscript_testkit::{create_org, TestDatabase};
use chrono::Utc;

#[tokio::test]
async fn each_bad_recording_fails_alone_with_its_reason() {
    let db = TestDatabase::new(4).await;
    let client = db.client().await;
    let org = create_org(&**client, "acme").await;
    let media = FakeRingba::start("RA1", "token").await;
    let wav = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/audio/goforward.wav"
    ))
    .unwrap();
    media.add_recording("big", wav.clone());
    media.add_recording("small", wav[..2000].to_vec());
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let cases = [
        ("not-yet", Some(media.recording_url("not-yet"))),
        ("too-big", Some(media.recording_url("big"))),
        ("no-link", None),
        ("refused", Some(format!("http://{closed}/rec.mp3"))),
        ("fine", Some(media.recording_url("small"))),
    ];
    for (id, url) in &cases {
        let call = NewCall::new(org, Source::Ringba, *id, Utc::now());
        let link = url.as_deref().map(RecordingLink::new);
        links::enqueue(&**client, &call, link.as_ref())
            .await
            .unwrap();
    }

    let s3 = TestS3Server::start().await;
    let store = s3.store().await;
    let vault = VaultLane {
        pool: db.pool.clone(),
        database_url: db.url.clone(),
        store,
        http: callscript_ingest::http::client(Duration::from_secs(5)),
        config: VaultConfig {
            max_bytes: 10_000,
            ..VaultConfig::default()
        },
    };
    let report = vault.run_batch().await.unwrap().unwrap();
    assert_eq!(
        (
            report.stored,
            report.skipped,
            report.retrying,
            report.dead_lettered
        ),
        (1, 1, 2, 1),
        "{report:?}"
    );

    let state = |id: &'static str| {
        let client = &client;
        async move {
            let row = client
                .query_one(
                    "SELECT state::text, coalesce(last_error, ''), run_after > now(), attempts
                     FROM core.calls WHERE external_id = $1",
                    &[&id],
                )
                .await
                .unwrap();
            (
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, bool>(2),
                row.get::<_, i32>(3),
            )
        }
    };
    let (s, error, later, attempts) = state("not-yet").await;
    assert_eq!(
        (s.as_str(), later, attempts),
        ("pending", true, 1),
        "{error}"
    );
    assert!(error.contains("HTTP 404"), "{error}");
    let (s, error, ..) = state("too-big").await;
    assert_eq!(s, "failed");
    assert!(error.contains("10000-byte limit"), "{error}");
    let (s, error, ..) = state("no-link").await;
    assert_eq!(s, "skipped");
    assert!(error.contains("no recording URL"), "{error}");
    let (s, error, later, _) = state("refused").await;
    assert_eq!((s.as_str(), later), ("pending", true));
    assert!(error.contains(&closed.to_string()), "{error}");
    let (s, ..) = state("fine").await;
    assert_eq!(s, "downloaded");
    // Only the calls the vault will try again keep their links.
    let kept: Vec<String> = client
        .query(
            "SELECT c.external_id FROM core.call_recording_links l
             JOIN core.calls c ON c.id = l.call_id ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, ["not-yet", "refused", "too-big"]);
    // Nothing is left leased.
    let leased: i64 = client
        .query_one(
            "SELECT count(*) FROM core.calls WHERE lease_token IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leased, 0);
}
