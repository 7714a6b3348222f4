//! TLS for Postgres connections over rustls: tokio-postgres's `MakeTlsConnect` for the pool and
//! the dedicated connections alike, checking the server's certificate as the `sslmode` asks
//! (nothing, its chain, or its chain and host name).
//!
//! Written here rather than taken from crates.io: `tokio-postgres-rustls` verifies every
//! certificate fully (no `require` or `verify-ca`), and the adapter is a few lines over
//! tokio-rustls. No channel binding is offered (SCRAM then runs without it, as tokio-postgres
//! allows under its default `channel_binding=prefer`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::Socket;
use tokio_rustls::client::TlsStream as RustlsClientStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use tokio_rustls::rustls::crypto::{self, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::server::ParsedCertificate;
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::tls_settings::{CertificateCheck, RootCertificates, TlsSettings};

/// Makes a TLS session per connection, all with one rustls configuration.
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
}

impl MakeRustlsConnect {
    /// The connector for `settings`; fails when `sslrootcert` cannot be read or holds no
    /// certificate.
    pub fn new(settings: &TlsSettings) -> Result<Self, String> {
        // ring and aws-lc-rs are both compiled into the workspace's rustls, so there is no
        // process default to fall back on: name one.
        let provider = Arc::new(crypto::ring::default_provider());
        let verifier = PostgresServerVerifier {
            check: settings.check(),
            roots: Arc::new(root_store(settings)?),
            algorithms: provider.signature_verification_algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        // The protocol name libpq 17 sends: PostgreSQL 17 requires it for `sslnegotiation=direct`.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

/// The trusted CAs; none are loaded when no certificate is checked.
fn root_store(settings: &TlsSettings) -> Result<RootCertStore, String> {
    if settings.check() == CertificateCheck::Nothing {
        return Ok(RootCertStore::empty());
    }
    match &settings.roots {
        RootCertificates::Public => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        RootCertificates::File(path) => {
            let cannot = |reason: String| format!("sslrootcert={}: {reason}", path.display());
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|e| cannot(format!("cannot read a PEM certificate from it ({e})")))?;
            let mut store = RootCertStore::empty();
            let (_, unusable) = store.add_parsable_certificates(certificates);
            if store.is_empty() {
                return Err(cannot(format!(
                    "no usable CA certificate in it ({unusable} unparsable)"
                )));
            }
            Ok(store)
        }
    }
}

impl MakeTlsConnect<Socket> for MakeRustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnect;
    type Error = String;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnect, String> {
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host:?} is not a host name TLS can check"))?;
        Ok(RustlsConnect {
            config: self.config.clone(),
            server_name,
        })
    }
}

/// The TLS handshake of one connection.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let stream = TlsConnector::from(self.config)
                .connect(self.server_name, socket)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An encrypted connection to the server (boxed: a TLS session is a few hundred bytes, and
/// tokio-postgres keeps it in an enum beside plain sockets).
pub struct RustlsStream(Box<RustlsClientStream<Socket>>);

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// Checks the server's certificate as far as the `sslmode` asks. The handshake's signatures
/// are always checked, so even an unchecked certificate proves the server holds its key.
#[derive(Debug)]
struct PostgresServerVerifier {
    check: CertificateCheck,
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PostgresServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if self.check == CertificateCheck::Nothing {
            return Ok(ServerCertVerified::assertion());
        }
        let certificate = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &certificate,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.check == CertificateCheck::ChainAndHostName {
            verify_server_name(&certificate, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
