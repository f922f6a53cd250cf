//! Telling static programs from dynamic ones: an ELF executable without a
//! `PT_INTERP` program header has no dynamic loader, so the preload
//! library cannot be injected into it and it must run under the tracer.

use goblin::elf::header::{ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP};
use std::io::Read;
use std::path::Path;

/// How much of the file is read: the ELF header and program headers of
/// every ordinary executable fit.
const HEAD: u64 = 64 * 1024;

/// What kind of program a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ELF executable without a dynamic loader (`PT_INTERP`).
    Static,
    /// An ELF executable with a dynamic loader.
    Dynamic,
    /// Not ELF (a script, ...): the host kernel decides what runs.
    Other,
}

/// Why a program could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an ELF image goblin understands.
    #[error("{path}: not a valid ELF file: {reason}")]
    Elf {
        /// The file.
        path: String,
        /// What goblin reported.
        reason: String,
    },
}

/// Classifies the program at `path` (only its first bytes are read).
pub fn kind(path: &Path) -> Result<Kind, ElfError> {
    let read_err = |source| ElfError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    f.by_ref()
        .take(HEAD)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    kind_of(&buf).map_err(|reason| ElfError::Elf {
        path: path.display().to_string(),
        reason,
    })
}

/// Classifies an image from its first bytes.
pub fn kind_of(bytes: &[u8]) -> Result<Kind, String> {
    if bytes.len() < SELFMAG || &bytes[..SELFMAG] != ELFMAG {
        return Ok(Kind::Other);
    }
    let header = goblin::elf::Elf::parse_header(bytes).map_err(|e| e.to_string())?;
    let ctx = goblin::container::Ctx::new(
        header.container().map_err(|e| e.to_string())?,
        header.endianness().map_err(|e| e.to_string())?,
    );
    let phdrs = ProgramHeader::parse(bytes, header.e_phoff as usize, header.e_phnum as usize, ctx)
        .map_err(|e| e.to_string())?;
    Ok(if phdrs.iter().any(|p| p.p_type == PT_INTERP) {
        Kind::Dynamic
    } else {
        Kind::Static
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_host_programs() {
        let sh = Path::new("/bin/sh");
        if sh.exists() {
            assert_eq!(kind(sh).unwrap(), Kind::Dynamic);
        }
        let bb = Path::new("/bin/busybox");
        if bb.exists() && kind(bb).unwrap() == Kind::Static {
            assert_eq!(kind(bb).unwrap(), Kind::Static);
        }
        assert_eq!(kind_of(b"#!/bin/sh\n").unwrap(), Kind::Other);
        assert!(kind_of(b"\x7fELF\x02\x01").is_err());
    }
}
