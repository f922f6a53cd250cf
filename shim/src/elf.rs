//! Telling static programs from dynamic ones: an ELF executable without a
//! `PT_INTERP` program header has no dynamic loader, so the preload
//! library cannot be injected into it and it must run under the tracer.

use goblin::elf::header::{ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP};
use std::io::Read;
use std::path::Path;

/// How much of the file is read first: the ELF header and the program
/// headers of nearly every executable fit (one `read` per exec).
const FIRST: u64 = 4096;

/// How much of the file is read at most: program headers further in are
/// read too, up to here.
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
    let mut buf = Vec::with_capacity(FIRST as usize);
    f.by_ref()
        .take(FIRST)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    let more = phdrs_end(&buf).map_or(0, |end| end.min(HEAD).saturating_sub(buf.len() as u64));
    if more > 0 && buf.len() as u64 == FIRST {
        f.take(more).read_to_end(&mut buf).map_err(read_err)?;
    }
    kind_of(&buf).map_err(|reason| ElfError::Elf {
        path: path.display().to_string(),
        reason,
    })
}

/// Where the program headers of an ELF image end (from its header).
fn phdrs_end(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < SELFMAG || &bytes[..SELFMAG] != ELFMAG {
        return None;
    }
    let h = goblin::elf::Elf::parse_header(bytes).ok()?;
    Some(h.e_phoff + u64::from(h.e_phnum) * u64::from(h.e_phentsize))
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
        // Program headers past the first read: read as well.
        let img = |phoff: usize, p_type: u32| {
            let mut b = vec![0u8; phoff + 56];
            b[..4].copy_from_slice(ELFMAG);
            b[4] = 2; // ELFCLASS64
            b[5] = 1; // little endian
            b[6] = 1; // EV_CURRENT
            b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
            b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
            b[20..24].copy_from_slice(&1u32.to_le_bytes());
            b[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
            b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
            b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
            b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
            b[phoff..phoff + 4].copy_from_slice(&p_type.to_le_bytes());
            b
        };
        let dir = std::env::temp_dir().join(format!("dvs-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (phoff, p_type, want) in [
            (64, PT_INTERP, Kind::Dynamic),
            (5000, PT_INTERP, Kind::Dynamic),
            (5000, 1, Kind::Static),
        ] {
            let f = dir.join("img");
            std::fs::write(&f, img(phoff, p_type)).unwrap();
            assert_eq!(kind(&f).unwrap(), want, "phoff {phoff}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(kind_of(b"\x7fELF\x02\x01").is_err());
    }
}
