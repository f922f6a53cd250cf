//! Telling static programs from dynamic ones: the shim's check
//! ([`shim::elf`]), so that dvs-exec, the tracer and the preload agree.

use crate::Error;
pub use shim::elf::{kind_of, Kind};
use std::path::Path;

/// Classifies the program at `path` (only its first bytes are read).
pub fn kind(path: &Path) -> Result<Kind, Error> {
    shim::elf::kind(path).map_err(|e| match e {
        shim::elf::ElfError::Read { path, source } => Error::Read { path, source },
        shim::elf::ElfError::Elf { path, reason } => Error::Elf { path, reason },
    })
}
