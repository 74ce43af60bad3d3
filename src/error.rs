//! The library's error type, and the exit codes (DESIGN.md, Exit codes) in one place.
//!
//! Each variant is a kind a caller acts on; its text says what happened and where. What a person
//! can do about it (a flag to pass, a policy to choose) is data, [`Advice`] here and
//! [`crate::transport::Hint`] for a location's errors, that the command line renders with its own
//! flag names: the engine names no CLI flag.

use crate::oci::Digest;
use crate::transport::{RegistryErrorItem, TransportError};

/// The process exit codes. `sync` and `copy` reports carry them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Everything asked for is at the destination.
    Ok = 0,
    /// A failure: network, authentication, digest mismatch, missing content, an absent platform.
    Failure = 1,
    /// A usage or config error: nothing was read or written.
    Usage = 2,
    /// The destination refused the sparse index; the kept children are there by digest.
    Partial = 3,
    /// Ctrl-C or SIGTERM.
    Interrupted = 130,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A next step the engine suggests; the CLI words it with its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Choose platforms the image has, or make absent ones a warning.
    SkipMissingPlatforms,
    /// Push a stripped index instead (the `strip` sparse-rejection policy).
    StripPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or configuration: nothing was read or written (exit 2).
    #[error("{0}")]
    Usage(String),

    /// A location failed while doing `context` (exit 1; 130 when it was interrupted).
    #[error("{context}: {source}")]
    Transport {
        context: String,
        #[source]
        source: TransportError,
    },

    /// The reference names nothing there; `message` lists what there is.
    #[error("{0}")]
    NotFound(String),

    /// Content that cannot be used as what it claims to be: a child of the wrong kind, a size that
    /// disagrees with its descriptor, a config that is not JSON, indexes nested too deep.
    #[error("{location}: {message}")]
    InvalidContent { location: String, message: String },

    /// A requested platform the image does not have.
    #[error("{message}")]
    PlatformMissing {
        message: String,
        advice: Option<Advice>,
    },

    /// Content the selection keeps that the source does not have (the source is itself sparse),
    /// or that a bundle left out and the destination lacks.
    #[error("{0}")]
    SourceIncomplete(String),

    /// The destination refused an index for a reason other than the entries left out, or refused
    /// it again after a fallback.
    #[error("{location} refused the index {digest} (HTTP {status}: {}){why}", describe(.errors))]
    Refused {
        location: String,
        digest: Digest,
        status: u16,
        errors: Vec<RegistryErrorItem>,
        /// Why this is not (or no longer) a sparse rejection, starting with `, `.
        why: String,
    },

    /// A sparse-rejection policy could not finish.
    #[error("the destination refused the sparse index and {policy} cannot finish: {reason}")]
    Fallback {
        policy: String,
        reason: Box<Error>,
        advice: Option<Advice>,
    },

    /// A local file (state file, lock file) could not be read or written.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Another process holds the lock on a destination.
    #[error(
        "another mirror sync is writing there (it holds {}): wait for it to finish, then run again",
        .0.display()
    )]
    Locked(std::path::PathBuf),

    /// Ctrl-C or SIGTERM (exit 130).
    #[error("interrupted: nothing half-written was tagged; rerun to continue where it stopped")]
    Interrupted,

    /// A broken invariant of the program itself.
    #[error("internal error: {0}")]
    Internal(String),
}

fn describe(errors: &[RegistryErrorItem]) -> String {
    if errors.is_empty() {
        return "no error body".into();
    }
    errors
        .iter()
        .map(|e| {
            let what = if e.detail.is_empty() {
                &e.message
            } else {
                &e.detail
            };
            format!("{} {what}", e.code)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn transport(context: impl Into<String>, source: TransportError) -> Error {
        Error::Transport {
            context: context.into(),
            source,
        }
    }

    pub fn invalid(location: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidContent {
            location: location.into(),
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Interrupted
            | Error::Transport {
                source: TransportError::Interrupted,
                ..
            } => ExitCode::Interrupted,
            Error::Fallback { reason, .. } if reason.exit_code() == ExitCode::Interrupted => {
                ExitCode::Interrupted
            }
            _ => ExitCode::Failure,
        }
    }

    /// The engine's suggestion, if any.
    pub fn advice(&self) -> Option<Advice> {
        match self {
            Error::PlatformMissing { advice, .. } | Error::Fallback { advice, .. } => *advice,
            _ => None,
        }
    }
}

pub use crate::transport::chain;
