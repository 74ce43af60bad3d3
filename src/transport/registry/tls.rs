//! TLS material for one registry, and TLS failures as errors that say what to do.
//!
//! A registry's certificate directory, in docker's layout: `*.crt` are CAs (added to the system
//! roots), `NAME.cert` + `NAME.key` a client certificate. The directory given in the options is
//! read alone (as skopeo does), else every `CERTS_D_ROOT/HOST[:PORT]/` that exists. A failed
//! handshake is never retried and never a reason to fall back to plain http: it is a
//! [`TransportError::Tls`] with a [`Fix`] (trust the CA, present a client certificate).

use std::path::{Path, PathBuf};

use reqwest::Url;

use super::RegistryOptions;
use super::session::Session;
use crate::transport::{Fix, Result, TransportError};

/// The environment variable that replaces the certs.d roots (a `:`-separated list). For tests,
/// which cannot write `/etc`.
pub const CERTS_D_ENV: &str = "MIRROR_CERTS_D";

/// Where docker and podman keep per-registry certificates, `ROOT/HOST[:PORT]/`.
pub const DEFAULT_CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

impl RegistryOptions {
    fn certs_d_roots(&self) -> Vec<PathBuf> {
        if let Some(r) = &self.certs_d {
            return r.clone();
        }
        match std::env::var_os(CERTS_D_ENV) {
            Some(v) => std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
        }
    }

    /// Where the CA or client certificate of `registry` would be read: the certificate directory
    /// given, else `ROOT/REGISTRY/` under each certs.d root.
    fn cert_dirs_for(&self, registry: &str) -> Vec<PathBuf> {
        match &self.cert_dir {
            Some(d) => vec![d.clone()],
            None => self
                .certs_d_roots()
                .iter()
                .map(|r| r.join(registry))
                .collect(),
        }
    }
}

/// CAs and a client certificate for one registry, and the directories they came from.
pub(super) struct TlsMaterial {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
    pub dirs: Vec<PathBuf>,
}

/// Read the registry's certificate directories (for the name the user wrote and the API host).
pub(super) fn load(
    registry: &str,
    api_host: &str,
    options: &RegistryOptions,
) -> Result<TlsMaterial> {
    let unusable = |message: String| TransportError::Tls {
        registry: registry.to_string(),
        message,
        hint: options.hint(Fix::CertificateDirectory),
    };
    let dirs: Vec<PathBuf> = match &options.cert_dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(unusable(format!(
                    "the certificate directory {} is not a directory",
                    d.display()
                )));
            }
            vec![d.clone()]
        }
        None => {
            let mut hosts = vec![registry];
            if api_host != registry {
                hosts.push(api_host);
            }
            options
                .certs_d_roots()
                .iter()
                .flat_map(|root| hosts.iter().map(move |h| root.join(h)))
                .filter(|d| d.is_dir())
                .collect()
        }
    };
    let mut material = TlsMaterial {
        roots: Vec::new(),
        identity: None,
        dirs: dirs.clone(),
    };
    for dir in &dirs {
        read_cert_dir(dir, &mut material, &unusable)?;
    }
    Ok(material)
}

fn read_cert_dir(
    dir: &Path,
    material: &mut TlsMaterial,
    unusable: &dyn Fn(String) -> TransportError,
) -> Result<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TransportError::io(dir.display(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let read = |p: &Path| std::fs::read(p).map_err(|e| TransportError::io(p.display(), e));
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let certs = reqwest::Certificate::from_pem_bundle(&read(path)?)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        unusable(format!(
                            "{}: not a PEM certificate (a CA *.crt file is expected)",
                            path.display()
                        ))
                    })?;
                material.roots.extend(certs);
            }
            Some("cert") => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(unusable(format!(
                        "{}: a client certificate without its key {}",
                        path.display(),
                        key.display()
                    )));
                }
                if material.identity.is_some() {
                    continue; // one client certificate per registry: the first by name
                }
                let mut pem = read(path)?;
                pem.push(b'\n');
                pem.extend(read(&key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                    unusable(format!(
                        "{} and {}: not a PEM client certificate and its private key",
                        path.display(),
                        key.display()
                    ))
                })?;
                material.identity = Some(identity);
            }
            Some("key") => {
                let cert = path.with_extension("cert");
                if !cert.is_file() {
                    return Err(unusable(format!(
                        "{}: a client key without its certificate {}",
                        path.display(),
                        cert.display()
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Why a TLS connection could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TlsFailure {
    /// The server's certificate did not verify.
    Certificate,
    /// The server ended the handshake with an alert (it wants a client certificate, or refused
    /// the one given).
    Refused,
    /// Something else: often a peer that does not speak TLS at all (plain http).
    NotTls,
}

/// The TLS failure behind a request error, if that is what it is.
pub(super) fn failure(e: &reqwest::Error) -> Option<TlsFailure> {
    // rustls's error sits inside an io::Error, whose `source()` skips it: look inside.
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(match r {
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                    TlsFailure::Certificate
                }
                rustls::Error::AlertReceived(_) => TlsFailure::Refused,
                _ => TlsFailure::NotTls,
            });
        }
        current = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    // The same, from the text, should the chain be wrapped in a way not seen above.
    let text = crate::transport::chain(e).to_ascii_lowercase();
    if text.contains("received fatal alert") {
        Some(TlsFailure::Refused)
    } else if text.contains("certificate") {
        Some(TlsFailure::Certificate)
    } else {
        None
    }
}

impl Session {
    /// Is `url` on the registry's own host and port (where its certificate directory applies)?
    fn is_registry_host(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or("");
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        authority.eq_ignore_ascii_case(&self.api_host)
            || authority.eq_ignore_ascii_case(&self.registry)
    }

    /// A certificate that did not verify, with how to trust it.
    pub(super) fn certificate_failed(&self, url: &Url, e: TransportError) -> TransportError {
        if !self.is_registry_host(url) {
            return tls_error(url, format!("{e}: the TLS certificate did not verify"));
        }
        let tried = if self.cert_dirs.is_empty() {
            String::new()
        } else {
            let dirs: Vec<String> = self
                .cert_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            format!(" (with the CAs of {})", dirs.join(", "))
        };
        TransportError::Tls {
            registry: self.registry.clone(),
            message: format!("{e}: the registry's TLS certificate did not verify{tried}"),
            hint: self.options.hint(Fix::TrustCertificate {
                dirs: self.options.cert_dirs_for(&self.registry),
            }),
        }
    }

    /// The server speaks TLS but refused the handshake for another reason than its certificate.
    pub(super) fn handshake_refused(&self, url: &Url, e: TransportError) -> TransportError {
        if !self.is_registry_host(url) {
            return tls_error(url, format!("{e}: the server refused the TLS connection"));
        }
        TransportError::Tls {
            registry: self.registry.clone(),
            message: format!("{e}: the registry refused the TLS connection"),
            hint: self.options.hint(Fix::ClientCertificate {
                dirs: self.options.cert_dirs_for(&self.registry),
            }),
        }
    }
}

/// A TLS failure at another host than the registry (a redirect): its certificate directory
/// would not help.
fn tls_error(url: &Url, message: String) -> TransportError {
    TransportError::Tls {
        registry: url.host_str().unwrap_or("").to_string(),
        message,
        hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_ca() -> (String, rcgen::KeyPair, rcgen::CertificateParams) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key, params)
    }

    #[test]
    fn cert_dirs_give_cas_and_a_client_certificate_and_bad_ones_are_named() {
        let (ca_pem, ca_key, ca_params) = test_ca();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client_cert = rcgen::CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();

        let root = tempfile::tempdir().unwrap();
        let host_dir = root.path().join("reg.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("ca.crt"), &ca_pem).unwrap();
        std::fs::write(host_dir.join("client.cert"), client_cert.pem()).unwrap();
        std::fs::write(host_dir.join("client.key"), client_key.serialize_pem()).unwrap();
        let options = RegistryOptions {
            certs_d: Some(vec![root.path().to_path_buf()]),
            ..Default::default()
        };
        let m = load("reg.example:5000", "reg.example:5000", &options).unwrap();
        assert_eq!(m.roots.len(), 1);
        assert!(m.identity.is_some());
        assert_eq!(m.dirs, vec![host_dir.clone()]);
        assert!(Session::new("reg.example:5000", "reg.example:5000", options.clone()).is_ok());
        // Another registry: nothing.
        let m = load("other:5000", "other:5000", &options).unwrap();
        assert!(m.roots.is_empty() && m.identity.is_none());

        std::fs::remove_file(host_dir.join("client.key")).unwrap();
        let e = load("reg.example:5000", "reg.example:5000", &options)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("client.cert") && e.contains("without its key"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let options = RegistryOptions {
            cert_dir: Some(dir.path().to_path_buf()),
            side: crate::transport::Side::Destination,
            ..Default::default()
        };
        let e = load("x", "x", &options).err().unwrap();
        let text = e.to_string();
        assert!(
            text.contains("ca.crt") && text.contains("not a PEM certificate"),
            "{text}"
        );
        assert_eq!(
            e.hint().map(|h| (h.side, &h.fix)),
            Some((
                crate::transport::Side::Destination,
                &Fix::CertificateDirectory
            ))
        );
    }

    /// A plain-http server answering a TLS ClientHello the way Go's server does.
    #[tokio::test]
    async fn a_plain_http_peer_is_a_tls_failure_that_is_not_about_certificates() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let e = reqwest::Client::builder()
            .build()
            .unwrap()
            .get(format!("https://{addr}/v2/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&e), Some(TlsFailure::NotTls), "{e:?}");
    }
}
