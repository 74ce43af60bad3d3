//! What can go wrong at a location, as kinds a caller can act on.
//!
//! Every variant says what happened and where (a redacted URL, a path, a registry host); the ones a
//! person can fix carry a [`Hint`]: data naming *what* to do (give credentials, trust a CA), which
//! the command line renders with its own flag names. Nothing in the engine names a CLI flag.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::oci::{ContentError, ManifestError};

/// One error of a registry's error body (distribution spec, "Error Codes").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryErrorItem {
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// `detail` as the registry sent it, flattened to a string (a digest for `MANIFEST_BLOB_UNKNOWN`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Which side of a command a location is; hints are rendered with that side's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Side {
    Source,
    Destination,
    /// A command that reads one location (`inspect`, `verify`, `inventory`).
    Single,
    /// Not known (a library caller): hints name both sides.
    #[default]
    Either,
}

/// What a person can do about an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub side: Side,
    pub fix: Fix,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Give credentials for `registry` (a flag, an auth file, or `docker login`).
    Credentials { registry: String },
    /// Log in for a higher pull quota, or wait for the window to pass.
    LoginForQuota,
    /// Trust the CA that signed the registry's certificate: put it in one of `dirs` (or a
    /// certificate directory given on the command line).
    TrustCertificate { dirs: Vec<PathBuf> },
    /// The registry refused the TLS handshake, likely for want of a client certificate: put one
    /// (`NAME.cert` + `NAME.key`) in one of `dirs` (or a certificate directory given on the
    /// command line).
    ClientCertificate { dirs: Vec<PathBuf> },
    /// The registry's certificate directory holds something unusable; fix or point elsewhere.
    CertificateDirectory,
    /// Turn TLS verification off (which also allows plain http), if the network is trusted.
    AllowInsecure,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{what} not found at {location}")]
    NotFound { what: String, location: String },

    /// The registry answered with an error status (and the spec's error body, when it sent one).
    #[error("{method} {url}: HTTP {status}{}", describe_items(.errors))]
    Registry {
        method: String,
        /// Redacted: no credentials, no query string.
        url: String,
        status: u16,
        errors: Vec<RegistryErrorItem>,
    },

    /// Missing, wrong or refused credentials.
    #[error("authentication to {registry} failed: {message}")]
    Auth {
        registry: String,
        message: String,
        hint: Option<Hint>,
    },

    /// The registry's pull quota is used up: retrying would only make it worse.
    #[error("{registry} says its pull quota is used up ({message})")]
    RateLimited {
        registry: String,
        message: String,
        hint: Option<Hint>,
    },

    /// A TLS handshake or certificate that failed, or certificate files that cannot be used.
    #[error("{registry}: {message}")]
    Tls {
        registry: String,
        message: String,
        hint: Option<Hint>,
    },

    /// The connection failed, was cut, or went silent: worth another try.
    #[error("{method} {url}: {message}")]
    Http {
        method: String,
        url: String,
        message: String,
    },

    /// A local failure to set up the HTTP client or a request (not the registry's doing, and not
    /// worth another try).
    #[error("{registry}: {message}")]
    Setup { registry: String, message: String },

    /// A peer's answer that cannot be used (a bad header, a malformed body, a wrong address).
    #[error("{location}: {message}")]
    Protocol { location: String, message: String },

    #[error("{path}: {message}")]
    Io { path: String, message: String },

    #[error("{location}: {message}")]
    Layout { location: String, message: String },

    /// Bytes that do not match their digest or size.
    #[error(transparent)]
    Content(#[from] ContentError),

    #[error("{location}: {source}")]
    Manifest {
        location: String,
        #[source]
        source: ManifestError,
    },

    /// The operation was stopped (Ctrl-C, SIGTERM, or a sibling's failure).
    #[error("interrupted")]
    Interrupted,

    /// Being replaced by the kinds above; do not add uses.
    #[error("{0}")]
    Other(String),
}

fn describe_items(errors: &[RegistryErrorItem]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let items: Vec<String> = errors
        .iter()
        .take(5)
        .map(|e| {
            let mut s = e.code.clone();
            if !e.message.is_empty() {
                s.push_str(&format!(" ({})", e.message));
            }
            if !e.detail.is_empty() {
                s.push_str(&format!(": {}", e.detail));
            }
            s
        })
        .collect();
    let more = if errors.len() > 5 {
        format!(" and {} more", errors.len() - 5)
    } else {
        String::new()
    };
    format!(" {}{more}", items.join("; "))
}

impl TransportError {
    pub fn io(path: impl std::fmt::Display, e: std::io::Error) -> TransportError {
        TransportError::Io {
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    pub fn protocol(location: impl Into<String>, message: impl Into<String>) -> TransportError {
        TransportError::Protocol {
            location: location.into(),
            message: message.into(),
        }
    }

    /// Is this worth another try (connection trouble, 408, 429, 5xx)?
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Registry { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            TransportError::Http { .. } => true,
            _ => false,
        }
    }

    /// What a person can do about it, if anything.
    pub fn hint(&self) -> Option<&Hint> {
        match self {
            TransportError::Auth { hint, .. }
            | TransportError::RateLimited { hint, .. }
            | TransportError::Tls { hint, .. } => hint.as_ref(),
            _ => None,
        }
    }

    /// A copy of this error for a second reader (a stream's error is both forwarded to the
    /// uploader and remembered as the cause). Sources that cannot be cloned keep their text.
    pub fn duplicate(&self) -> TransportError {
        match self {
            TransportError::Content(c) => TransportError::Content(c.clone()),
            TransportError::Http {
                method,
                url,
                message,
            } => TransportError::Http {
                method: method.clone(),
                url: url.clone(),
                message: message.clone(),
            },
            other => TransportError::Protocol {
                location: String::new(),
                message: other.to_string(),
            },
        }
    }
}

/// An error and its causes on one line, each text once (messages often include their cause).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}
