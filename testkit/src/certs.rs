//! Certificate authorities made at run time for the loopback TLS servers of the tests (the SMTP
//! sink, the TLS-only Postgres cluster), so no key is ever checked in.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A self-signed CA that issues server certificates.
pub struct TestCa {
    certificate: Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A new CA whose subject is `common_name`.
    pub fn new(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let certificate = params.self_signed(&key).expect("CA certificate");
        Self { certificate, key }
    }

    /// The CA's certificate as PEM, what a client is given to trust.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A server certificate valid for `names` (DNS names or IP addresses) and its key.
    pub fn issue(&self, names: &[&str]) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().expect("server key");
        let names = names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>();
        let certificate = CertificateParams::new(names)
            .expect("server certificate parameters")
            .signed_by(&key, &self.certificate, &self.key)
            .expect("server certificate");
        (certificate, key)
    }
}
