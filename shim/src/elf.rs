//! Telling static programs from dynamic ones: an ELF executable without a
//! `PT_INTERP` program header has no dynamic loader, so the preload
//! library cannot be injected into it and it must run under the tracer.

use goblin::elf::header::{ELFMAG, SELFMAG};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
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
    /// Not ELF, or a script whose interpreter cannot be read: the host
    /// kernel decides what runs. (A script with a readable `#!`
    /// interpreter is of its interpreter's kind.)
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

/// How many `#!` interpreters are followed, as Linux does
/// (`BINPRM_MAX_RECURSION`).
const MAX_INTERPRETERS: usize = 4;

/// Classifies the program at `path` (only its first bytes are read). A
/// script is of its `#!` interpreter's kind: what runs is the interpreter
/// (a script for a static busybox needs the tracer as busybox does).
pub fn kind(path: &Path) -> Result<Kind, ElfError> {
    let mut path = path.to_path_buf();
    for _ in 0..=MAX_INTERPRETERS {
        let head = read_head(&path)?;
        let Some(interp) = interpreter(&head) else {
            let k = kind_of(&head).map_err(|reason| ElfError::Elf {
                path: path.display().to_string(),
                reason,
            })?;
            return Ok(if k == Kind::Static && is_loader(&path, &head) {
                Kind::Dynamic
            } else {
                k
            });
        };
        let next = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(interp));
        // An interpreter that cannot be read fails at the exec itself.
        if std::fs::metadata(&next).is_err() {
            return Ok(Kind::Other);
        }
        path = next;
    }
    Ok(Kind::Other)
}

/// The interpreter a script's `#!` line names: its first word.
fn interpreter(head: &[u8]) -> Option<&[u8]> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let word = &line[start..];
    let end = word
        .iter()
        .position(|&b| b == b' ' || b == b'\t')
        .unwrap_or(word.len());
    Some(&word[..end])
}

/// The first bytes of the file at `path`: its ELF header and program
/// headers when it is ELF.
fn read_head(path: &Path) -> Result<Vec<u8>, ElfError> {
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
    Ok(buf)
}

/// Where the program headers of an ELF image end (from its header).
fn phdrs_end(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < SELFMAG || &bytes[..SELFMAG] != ELFMAG {
        return None;
    }
    let h = goblin::elf::Elf::parse_header(bytes).ok()?;
    Some(h.e_phoff + u64::from(h.e_phnum) * u64::from(h.e_phentsize))
}

/// Whether the image at `path` is the dynamic loader itself (`ldd` runs
/// `/lib64/ld-linux-x86-64.so.2 --verify PROG`, and so may anyone): a
/// shared object (`ET_DYN`) without `PT_INTERP` named `ld-*.so*` or
/// `ld.so*` (a static-pie program is `ET_DYN` without `PT_INTERP` too). It
/// loads the program it is given with the preload, as a program's own
/// loader does.
fn is_loader(path: &Path, head: &[u8]) -> bool {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let name = resolved
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_default();
    let named = (name.starts_with(b"ld-") || name.starts_with(b"ld."))
        && name.windows(3).any(|w| w == b".so");
    named
        && goblin::elf::Elf::parse_header(head)
            .is_ok_and(|h| h.e_type == goblin::elf::header::ET_DYN)
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
        // The dynamic loader run as a program loads the program it is
        // given (with the preload).
        let ld = Path::new("/lib64/ld-linux-x86-64.so.2");
        if ld.exists() {
            assert_eq!(kind(ld).unwrap(), Kind::Dynamic);
        }
        assert_eq!(kind_of(b"#!/bin/sh\n").unwrap(), Kind::Other);
        assert_eq!(interpreter(b"#!/bin/sh\n"), Some(&b"/bin/sh"[..]));
        assert_eq!(
            interpreter(b"#! /usr/bin/env  python3 -u\n"),
            Some(&b"/usr/bin/env"[..])
        );
        assert_eq!(interpreter(b"#!\n"), None);
        assert_eq!(interpreter(b"\x7fELF"), None);
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

    /// A script is of its interpreter's kind, through a chain of scripts;
    /// one whose interpreter is missing is left to the kernel.
    #[test]
    fn scripts_are_of_their_interpreters_kind() {
        let dir = std::env::temp_dir().join(format!("dvs-elf-sh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |name: &str, text: String| {
            let f = dir.join(name);
            std::fs::write(&f, text).unwrap();
            f
        };
        let static_img = script("static", String::new());
        let mut img = vec![0u8; 64 + 56];
        img[..4].copy_from_slice(ELFMAG);
        img[4] = 2;
        img[5] = 1;
        img[6] = 1;
        img[16..18].copy_from_slice(&2u16.to_le_bytes());
        img[18..20].copy_from_slice(&62u16.to_le_bytes());
        img[20..24].copy_from_slice(&1u32.to_le_bytes());
        img[32..40].copy_from_slice(&64u64.to_le_bytes());
        img[52..54].copy_from_slice(&64u16.to_le_bytes());
        img[54..56].copy_from_slice(&56u16.to_le_bytes());
        img[56..58].copy_from_slice(&1u16.to_le_bytes());
        img[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD only
        std::fs::write(&static_img, img).unwrap();
        let a = script("a", format!("#!{} -x\necho\n", static_img.display()));
        let b = script("b", format!("#! {}\n", a.display()));
        let gone = script("gone", "#!/nonexistent/interpreter\n".into());
        assert_eq!(kind(&a).unwrap(), Kind::Static);
        assert_eq!(kind(&b).unwrap(), Kind::Static);
        assert_eq!(kind(&gone).unwrap(), Kind::Other);
        if Path::new("/bin/sh").exists() {
            let sh = script("sh", "#!/bin/sh\n".into());
            assert_eq!(kind(&sh).unwrap(), Kind::Dynamic);
        }
        // A loop of scripts ends (as the kernel's ELOOP).
        let l1 = dir.join("l1");
        let l2 = script("l2", format!("#!{}\n", l1.display()));
        std::fs::write(&l1, format!("#!{}\n", l2.display())).unwrap();
        assert_eq!(kind(&l1).unwrap(), Kind::Other);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
