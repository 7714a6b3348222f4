//! Per-organization credentials against the real Postgres: sealed at rest, bound to their row,
//! opened only with the key they were sealed with.

use callscript_core::credentials::{self, CredentialError, CredentialKey, Secret};
use callscript_testkit::{create_org, TestDatabase};

fn key_of(byte: u8) -> CredentialKey {
    use base64::Engine as _;
    CredentialKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
        .unwrap()
}

#[tokio::test]
async fn secrets_are_sealed_bound_to_their_row_and_need_their_key() {
    let db = TestDatabase::new(2).await;
    let client = db.client().await;
    let acme = create_org(&**client, "acme").await;
    let other = create_org(&**client, "other").await;
    let key = key_of(7);
    let token = Secret::new("ringba-token-0123456789");
    credentials::store(
        &**client,
        &key,
        acme,
        "ringba",
        "default",
        Some("RA123"),
        &token,
    )
    .await
    .unwrap();

    let (public_id, secret) = credentials::load(&**client, &key, acme, "ringba", "default")
        .await
        .unwrap();
    assert_eq!(public_id.as_deref(), Some("RA123"));
    assert_eq!(secret, token);
    // Not stored in the clear.
    let raw: Vec<u8> = client
        .query_one(
            "SELECT ciphertext FROM core.organization_credentials WHERE org_id = $1",
            &[&acme],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!raw
        .windows(token.expose().len())
        .any(|w| w == token.expose().as_bytes()));

    // Another key is named, not tried.
    match credentials::load(&**client, &key_of(8), acme, "ringba", "default").await {
        Err(CredentialError::WrongKey { stored, .. }) => assert_eq!(stored, key.id()),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    // The ciphertext copied onto another org's row does not open there.
    client
        .execute(
            "INSERT INTO core.organization_credentials
               (org_id, kind, label, key_id, nonce, ciphertext)
             SELECT $2, kind, label, key_id, nonce, ciphertext
             FROM core.organization_credentials WHERE org_id = $1",
            &[&acme, &other],
        )
        .await
        .unwrap();
    assert!(matches!(
        credentials::load(&**client, &key, other, "ringba", "default").await,
        Err(CredentialError::Tampered { .. })
    ));

    // Replacing keeps one row; listing shows no secret; deleting removes it.
    let rotated = Secret::new("ringba-token-rotated");
    credentials::store(
        &**client,
        &key,
        acme,
        "ringba",
        "default",
        Some("RA123"),
        &rotated,
    )
    .await
    .unwrap();
    let listed = credentials::list(&**client, acme).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, key.id());
    assert!(!format!("{listed:?}").contains("rotated"));
    let (_, secret) = credentials::load(&**client, &key, acme, "ringba", "default")
        .await
        .unwrap();
    assert_eq!(secret, rotated);
    assert!(credentials::delete(&**client, acme, "ringba", "default")
        .await
        .unwrap());
    assert!(matches!(
        credentials::load(&**client, &key, acme, "ringba", "default").await,
        Err(CredentialError::Missing { .. })
    ));
    assert!(matches!(
        credentials::store(&**client, &key, acme, "Ringba Token", "x", None, &rotated).await,
        Err(CredentialError::BadKind(_))
    ));
}
