//! Connecting to a Postgres server that takes TLS connections only, under each `sslmode`: the
//! pool and the dedicated connection encrypt, certificates are checked as libpq checks them,
//! and a refusal is one line that names the setting to change.

use callscript_core::db::{connect_one, connect_pool, DatabaseUrl, DbError};
use callscript_testkit::tls_postgres::{TlsOnlyPostgres, CERTIFIED_HOST};

fn database_url(url: String) -> DatabaseUrl {
    DatabaseUrl::new("DATABASE_URL", url)
}

/// Whether the dedicated connection `url` opens is encrypted, as the server sees it.
async fn dedicated_connection_is_encrypted(url: &DatabaseUrl) -> Result<bool, DbError> {
    let (client, connection) = connect_one(url).await?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn refusal(url: &DatabaseUrl) -> String {
    let err = connect_one(url)
        .await
        .err()
        .expect("the connection should be refused")
        .to_string();
    assert!(
        err.starts_with("cannot connect to the database at DATABASE_URL=postgres://postgres@"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    err
}

#[tokio::test]
async fn require_encrypts_the_pool_and_the_dedicated_connection() {
    let server = TlsOnlyPostgres::start();
    let url = database_url(server.url("127.0.0.1", "sslmode=require"));

    assert!(dedicated_connection_is_encrypted(&url).await.unwrap());

    let pool = connect_pool(&url, 2).await.unwrap();
    let client = pool.get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
}

#[tokio::test]
async fn no_sslmode_prefers_tls() {
    let server = TlsOnlyPostgres::start();
    let url = database_url(server.url("127.0.0.1", "application_name=tls-test"));
    assert!(dedicated_connection_is_encrypted(&url).await.unwrap());
}

#[tokio::test]
async fn verify_full_connects_to_the_name_the_ca_certified() {
    let server = TlsOnlyPostgres::start();
    let query = format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca_file().display()
    );
    let url = database_url(server.url(CERTIFIED_HOST, &query));
    assert!(dedicated_connection_is_encrypted(&url).await.unwrap());
}

#[tokio::test]
async fn verify_full_in_a_key_value_string_connects() {
    let server = TlsOnlyPostgres::start();
    let url = database_url(format!(
        "host={CERTIFIED_HOST} port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{}'",
        server.port(),
        server.ca_file().display()
    ));
    assert!(dedicated_connection_is_encrypted(&url).await.unwrap());
}

#[tokio::test]
async fn verify_full_refuses_a_host_name_the_certificate_does_not_name() {
    let server = TlsOnlyPostgres::start();
    let query = format!(
        "sslmode=verify-full&sslrootcert={}",
        server.ca_file().display()
    );
    // The certificate names `localhost` only.
    let err = refusal(&database_url(server.url("127.0.0.1", &query))).await;
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let server = TlsOnlyPostgres::start();
    let trusted = format!(
        "sslmode=verify-ca&sslrootcert={}",
        server.ca_file().display()
    );
    let url = database_url(server.url("127.0.0.1", &trusted));
    assert!(dedicated_connection_is_encrypted(&url).await.unwrap());

    let untrusted = format!(
        "sslmode=verify-ca&sslrootcert={}",
        server.unrelated_ca_file().display()
    );
    let err = refusal(&database_url(server.url(CERTIFIED_HOST, &untrusted))).await;
    assert!(err.contains("sslmode=verify-ca"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn verify_full_without_a_root_certificate_trusts_only_public_authorities() {
    let server = TlsOnlyPostgres::start();
    let err = refusal(&database_url(
        server.url(CERTIFIED_HOST, "sslmode=verify-full"),
    ))
    .await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn require_with_a_root_certificate_checks_the_chain_as_libpq_does() {
    let server = TlsOnlyPostgres::start();
    let query = format!(
        "sslmode=require&sslrootcert={}",
        server.unrelated_ca_file().display()
    );
    let err = refusal(&database_url(server.url(CERTIFIED_HOST, &query))).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn disable_against_a_tls_only_server_says_which_sslmode_to_use() {
    let server = TlsOnlyPostgres::start();
    let err = refusal(&database_url(server.url("127.0.0.1", "sslmode=disable"))).await;
    assert!(err.contains("sslmode=disable"), "{err}");
    assert!(err.contains("use sslmode=require"), "{err}");
}

#[tokio::test]
async fn an_unreadable_root_certificate_names_the_setting() {
    let server = TlsOnlyPostgres::start();
    let url = database_url(server.url(
        CERTIFIED_HOST,
        "sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
    ));
    let err = connect_one(&url).await.err().unwrap().to_string();
    assert!(
        err.starts_with("DATABASE_URL: sslrootcert=/nonexistent/root.crt"),
        "{err}"
    );
}
