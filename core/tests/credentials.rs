//! Per-organization credentials against the real Postgres: sealed at rest, bound to their row,
//! opened only with the key they were sealed with.

use callscript_core::credentials::{self, CredentialError, CredentialKey, CredentialSpec, Secret};
use callscript_testkit::{create_org, TestDatabase};

const RINGBA: CredentialSpec<'static> = CredentialSpec {
    kind: "ringba",
    label: "default",
    public_id: Some("RA123"),
    endpoint: None,
};

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
    credentials::store(&**client, &key, acme, &RINGBA, &token)
        .await
        .unwrap();

    let opened = credentials::load(&**client, &key, acme, "ringba", "default")
        .await
        .unwrap();
    assert_eq!(opened.public_id.as_deref(), Some("RA123"));
    assert_eq!(opened.secret, token);
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
               (org_id, kind, label, public_id, key_id, nonce, ciphertext)
             SELECT $2, kind, label, public_id, key_id, nonce, ciphertext
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
    let with_endpoint = CredentialSpec {
        endpoint: Some("http://127.0.0.1:9/v2"),
        ..RINGBA
    };
    credentials::store(&**client, &key, acme, &with_endpoint, &rotated)
        .await
        .unwrap();
    let listed = credentials::list(&**client, acme).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_id, key.id());
    assert!(!format!("{listed:?}").contains("rotated"));
    assert_eq!(listed[0].endpoint.as_deref(), Some("http://127.0.0.1:9/v2"));
    let opened = credentials::load(&**client, &key, acme, "ringba", "default")
        .await
        .unwrap();
    assert_eq!(opened.secret, rotated);
    // Lanes find credentials by kind (all orgs) and by public id (a LiveKit webhook's issuer).
    let all = credentials::load_kind(&**client, &key, "ringba", None)
        .await
        .unwrap();
    // The copied row does not open, and does not hide the good one.
    let opened: Vec<_> = all.iter().filter_map(|c| c.as_ref().ok()).collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].org_id, acme);
    assert!(all
        .iter()
        .any(|c| matches!(c, Err(CredentialError::Tampered { .. }))));
    let found = credentials::find_by_public_id(&**client, &key, "ringba", "RA123")
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "the copied row shares the public id");
    let opened: Vec<_> = found.iter().filter_map(|c| c.as_ref().ok()).collect();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].org_id, acme);
    assert!(
        credentials::find_by_public_id(&**client, &key, "ringba", "RA999")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(credentials::delete(&**client, acme, "ringba", "default")
        .await
        .unwrap());
    assert!(matches!(
        credentials::load(&**client, &key, acme, "ringba", "default").await,
        Err(CredentialError::Missing { .. })
    ));
    assert!(matches!(
        credentials::store(
            &**client,
            &key,
            acme,
            &CredentialSpec {
                kind: "Ringba Token",
                ..RINGBA
            },
            &rotated
        )
        .await,
        Err(CredentialError::BadKind(_))
    ));
    assert!(matches!(
        credentials::store(
            &**client,
            &key,
            acme,
            &CredentialSpec {
                endpoint: Some("ftp://x"),
                ..RINGBA
            },
            &rotated
        )
        .await,
        Err(CredentialError::BadEndpoint(_))
    ));
}
