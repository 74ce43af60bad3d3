//! What to do about an error, in this command line's words.
//!
//! The engine says *what* would fix an error as data ([`Hint`]: give credentials, trust a CA, …)
//! and which side of the command it is about; only the command line knows its flags, so the
//! wording lives here. `fail` prints the hint of the first transport error in an error's chain.

use crate::transport::{Fix, Hint, Side, TransportError};

/// The flags that configure one side's registry.
struct Flags {
    creds: &'static str,
    cert_dir: &'static str,
    tls_verify: &'static str,
}

fn flags(side: Side) -> Flags {
    match side {
        Side::Source => Flags {
            creds: "--src-creds",
            cert_dir: "--src-cert-dir",
            tls_verify: "--src-tls-verify",
        },
        Side::Destination => Flags {
            creds: "--dest-creds",
            cert_dir: "--dest-cert-dir",
            tls_verify: "--dest-tls-verify",
        },
        Side::Single => Flags {
            creds: "--creds",
            cert_dir: "--cert-dir",
            tls_verify: "--tls-verify",
        },
        Side::Either => Flags {
            creds: "--src-creds/--dest-creds",
            cert_dir: "--src-cert-dir/--dest-cert-dir",
            tls_verify: "--src-tls-verify/--dest-tls-verify",
        },
    }
}

/// `hint` as advice naming the flags of its side.
pub fn render(hint: &Hint) -> String {
    let f = flags(hint.side);
    let dirs = |dirs: &[std::path::PathBuf]| {
        dirs.iter()
            .map(|d| format!("{}/", d.display().to_string().trim_end_matches('/')))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match &hint.fix {
        Fix::Credentials { registry } => format!(
            "pass {} USER[:PASS] or --authfile FILE, or log in with `docker login {registry}`",
            f.creds
        ),
        Fix::LoginForQuota => format!(
            "log in for a higher limit ({}, docker login) or wait for the window to pass",
            f.creds
        ),
        Fix::TrustCertificate { dirs: d } if d.is_empty() => format!(
            "pass {} DIR holding its CA (a *.crt file), or pass {}=false to skip verification",
            f.cert_dir, f.tls_verify
        ),
        Fix::TrustCertificate { dirs: d } => format!(
            "add its CA (a *.crt file) to {} or pass {} DIR, or pass {}=false to skip verification",
            dirs(d),
            f.cert_dir,
            f.tls_verify
        ),
        Fix::ClientCertificate { dirs: d } if d.is_empty() => format!(
            "if it requires a client certificate, pass {} DIR holding NAME.cert and NAME.key",
            f.cert_dir
        ),
        Fix::ClientCertificate { dirs: d } => format!(
            "if it requires a client certificate, put NAME.cert and NAME.key in {} or pass {} DIR",
            dirs(d),
            f.cert_dir
        ),
        Fix::CertificateDirectory => format!(
            "fix or remove that file, or pass {} DIR with usable certificates",
            f.cert_dir
        ),
        Fix::AllowInsecure => format!("pass {}=false if this network is trusted", f.tls_verify),
    }
}

/// The engine's advice in this command line's words.
pub fn advice(advice: crate::error::Advice) -> &'static str {
    use crate::error::Advice;
    match advice {
        Advice::SkipMissingPlatforms => "pick platforms it has, or pass --skip-missing-platforms",
        Advice::StripPolicy => {
            "use --on-sparse-reject strip to push an index of the kept entries (a new digest)"
        }
    }
}

/// The hint of the first transport error in `e`'s chain that has one.
pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Hint> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(hint) = err
            .downcast_ref::<TransportError>()
            .and_then(TransportError::hint)
        {
            return Some(hint);
        }
        current = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn hint(side: Side, fix: Fix) -> Hint {
        Hint { side, fix }
    }

    #[test]
    fn hints_name_the_flags_of_their_side() {
        let creds = Fix::Credentials {
            registry: "reg:5000".into(),
        };
        assert_eq!(
            render(&hint(Side::Source, creds.clone())),
            "pass --src-creds USER[:PASS] or --authfile FILE, or log in with `docker login reg:5000`"
        );
        assert!(render(&hint(Side::Destination, creds.clone())).starts_with("pass --dest-creds "));
        assert!(render(&hint(Side::Single, creds.clone())).starts_with("pass --creds "));
        assert!(render(&hint(Side::Either, creds)).starts_with("pass --src-creds/--dest-creds "));
        assert_eq!(
            render(&hint(Side::Source, Fix::LoginForQuota)),
            "log in for a higher limit (--src-creds, docker login) or wait for the window to pass"
        );
        let trust = Fix::TrustCertificate {
            dirs: vec![
                PathBuf::from("/etc/containers/certs.d/reg:5000"),
                PathBuf::from("/etc/docker/certs.d/reg:5000"),
            ],
        };
        assert_eq!(
            render(&hint(Side::Destination, trust)),
            "add its CA (a *.crt file) to /etc/containers/certs.d/reg:5000/ or /etc/docker/certs.d/reg:5000/ or pass --dest-cert-dir DIR, or pass --dest-tls-verify=false to skip verification"
        );
        assert_eq!(
            render(&hint(Side::Single, Fix::AllowInsecure)),
            "pass --tls-verify=false if this network is trusted"
        );
        let client = Fix::ClientCertificate {
            dirs: vec![PathBuf::from("/certs")],
        };
        assert!(render(&hint(Side::Source, client)).contains("NAME.cert and NAME.key in /certs/"));
    }

    #[test]
    fn the_hint_is_found_under_the_context_of_an_error() {
        let source = TransportError::Auth {
            registry: "reg".into(),
            message: "no credentials".into(),
            hint: Some(hint(
                Side::Source,
                Fix::Credentials {
                    registry: "reg".into(),
                },
            )),
        };
        let e = crate::error::Error::transport("reading docker://reg/app", source);
        let found = find(&e).expect("a hint");
        assert_eq!(found.side, Side::Source);
        assert!(find(&crate::error::Error::Interrupted).is_none());
    }
}
