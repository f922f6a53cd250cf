//! The tracer's error type.

use std::io;

/// What can go wrong when preparing or running the tracer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a program file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// The file is not an ELF image goblin understands.
    #[error("{path}: not a valid ELF file: {reason}")]
    Elf {
        /// The file.
        path: String,
        /// What goblin reported.
        reason: String,
    },
    /// Building the seccomp filter failed.
    #[error("cannot build the seccomp filter: {0}")]
    Filter(String),
    /// A host system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// The operation.
        what: &'static str,
        /// The cause.
        source: nix::Error,
    },
    /// The control channel to the tracer process failed.
    #[error("tracer control channel: {0}")]
    Control(#[from] io::Error),
    /// The tracer refused a request.
    #[error("the tracer refused to {what}: {errno}")]
    Refused {
        /// The request.
        what: &'static str,
        /// The reason, as an errno.
        errno: nix::Error,
    },
}

impl Error {
    /// A failed host call.
    pub(crate) fn sys(what: &'static str, source: nix::Error) -> Error {
        Error::Sys { what, source }
    }
}
