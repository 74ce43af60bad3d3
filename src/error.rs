//! The library's error type and its mapping to exit codes (DESIGN.md, Exit codes).

use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or configuration: nothing was read or written (exit 2).
    #[error("{0}")]
    Usage(String),

    /// A transport failed while doing `context` (exit 1).
    #[error("{context}: {source}")]
    Transport {
        context: String,
        #[source]
        source: TransportError,
    },

    /// Anything else that stops a copy: missing content, absent platforms, mismatches (exit 1).
    #[error("{0}")]
    Failed(String),

    /// Ctrl-C or SIGTERM (exit 130).
    #[error("interrupted: nothing half-written was tagged; rerun to continue where it stopped")]
    Interrupted,
}

impl Error {
    pub fn transport(context: impl Into<String>, source: TransportError) -> Error {
        Error::Transport {
            context: context.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Transport { .. } | Error::Failed(_) => 1,
            Error::Interrupted => 130,
        }
    }
}

pub use crate::transport::chain;
