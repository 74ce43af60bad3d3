//! Certificate authorities made in the test (rcgen): a CA, server certificates for
//! `127.0.0.1`/`localhost`/`::1` signed by it (for the real registry's `http.tls`), and client
//! certificates (for `http.tls.clientcas` and a cert dir's `NAME.cert` + `NAME.key`).
//! Nothing is read from or written to the machine's trust store.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    dir: TempDir,
}

fn named(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

impl TestCa {
    /// A new CA whose certificate says `common_name`.
    pub fn new(common_name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = named(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::Builder::new()
            .prefix("mirror-it-ca-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        TestCa {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            dir,
        }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA certificate as a file (for the registry's `clientcas`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes the CA certificate to `dir/file_name` (creating `dir`), e.g. `ca.crt` in a cert dir.
    pub fn write_ca(&self, dir: &Path, file_name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(file_name);
        std::fs::write(&p, &self.pem).unwrap();
        p
    }

    /// A server certificate for `127.0.0.1`, `localhost` and `::1`: `(certificate, key)` PEM files.
    pub fn server_cert(&self) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            "::1".to_string(),
        ])
        .unwrap();
        params.distinguished_name = named("mirror test registry");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join("server.crt"),
            self.dir.path().join("server.key"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A client certificate written as `dir/STEM.cert` and `dir/STEM.key` (docker's cert-dir names).
    pub fn write_client_cert(&self, dir: &Path, stem: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = named("mirror test client");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.cert")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}
