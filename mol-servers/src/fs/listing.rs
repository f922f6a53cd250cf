//! Directories FS makes up: `/proc/self/fd` (and `/dev/fd`) of a DC
//! process list its DC descriptors, which only FS knows (the host's
//! listing would show the preload's own descriptors, or FS's); `/proc`
//! lists the DC pids of the DC's processes on FS's node instead of the
//! host's pids (the shim turns `/proc/<DC pid>` into the host directory
//! of that process).

use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// Whether `path` names the process directory `/proc`.
pub fn names_proc_dir(path: &[u8]) -> bool {
    matches!(path, b"/proc" | b"/proc/")
}

/// Whether `path` names the caller's descriptor directory.
pub fn names_fd_dir(path: &[u8]) -> bool {
    matches!(
        path,
        b"/proc/self/fd" | b"/proc/self/fd/" | b"/dev/fd" | b"/dev/fd/"
    )
}

/// A made-up directory: its `linux_dirent64` records and the read offset.
pub struct Listing {
    /// A host directory that stands for it where a host descriptor is
    /// needed (`fstat`, `fstatfs`): FS's own `/proc/self/fd`, a directory
    /// of the same kind.
    dir: OwnedFd,
    records: Vec<u8>,
    pos: Cell<usize>,
}

impl Listing {
    /// The listing of descriptors `fds` ("." and ".." first).
    pub fn of_descriptors(fds: &[i32]) -> Result<Listing, i32> {
        let (dir, mut records) = start("/proc/self/fd")?;
        for (i, fd) in fds.iter().enumerate() {
            push(
                &mut records,
                3 + i as u64,
                libc::DT_LNK,
                fd.to_string().as_bytes(),
            );
        }
        Ok(Listing {
            dir,
            records,
            pos: Cell::new(0),
        })
    }

    /// The listing of `/proc` for a DC: the host's entries that are not
    /// process directories, then DC pids `pids` (ascending, as the kernel
    /// lists pids after the rest).
    pub fn of_proc(pids: &[i32]) -> Result<Listing, i32> {
        let (dir, mut records) = start("/proc")?;
        let entries =
            std::fs::read_dir("/proc").map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.as_encoded_bytes();
            if name.iter().all(u8::is_ascii_digit) {
                continue;
            }
            use std::os::unix::fs::{DirEntryExt, FileTypeExt};
            let t = e.file_type().ok();
            let dtype = match t {
                Some(t) if t.is_dir() => libc::DT_DIR,
                Some(t) if t.is_symlink() => libc::DT_LNK,
                Some(t) if t.is_file() => libc::DT_REG,
                Some(t) if t.is_char_device() => libc::DT_CHR,
                _ => libc::DT_UNKNOWN,
            };
            push(&mut records, e.ino(), dtype, name);
        }
        let mut pids = pids.to_vec();
        pids.sort_unstable();
        pids.dedup();
        for pid in pids {
            // Process directories have no stable inode number of their own
            // worth copying; these do not collide with the rest.
            push(
                &mut records,
                (1 << 32) + pid as u64,
                libc::DT_DIR,
                pid.to_string().as_bytes(),
            );
        }
        Ok(Listing {
            dir,
            records,
            pos: Cell::new(0),
        })
    }

    /// The host directory that stands for it.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The whole records from the read offset that fit in `count` bytes
    /// (`EINVAL` if not even one does), without moving the offset.
    pub fn read(&self, count: usize) -> Result<&[u8], i32> {
        let rest = &self.records[self.pos.get().min(self.records.len())..];
        let mut n = 0;
        while n < rest.len() {
            let len = usize::from(u16::from_ne_bytes([rest[n + 16], rest[n + 17]]));
            if n + len > count {
                break;
            }
            n += len;
        }
        if n == 0 && !rest.is_empty() {
            return Err(libc::EINVAL);
        }
        Ok(&rest[..n])
    }

    /// Moves the read offset past `n` bytes that were read.
    pub fn advance(&self, n: usize) {
        self.pos.set(self.pos.get() + n);
    }

    /// `lseek`: to the start, to a record's offset (what `telldir` gave),
    /// or where it is.
    pub fn seek(&self, off: i64, whence: i32) -> Result<i64, i32> {
        let to = match whence {
            libc::SEEK_SET => usize::try_from(off).map_err(|_| libc::EINVAL)?,
            libc::SEEK_CUR if off == 0 => self.pos.get(),
            _ => return Err(libc::EINVAL),
        };
        if to > self.records.len() {
            return Err(libc::EINVAL);
        }
        self.pos.set(to);
        Ok(to as i64)
    }
}

/// The host directory `path`, which stands for a made-up one, and the
/// records of "." and "..".
fn start(path: &str) -> Result<(OwnedFd, Vec<u8>), i32> {
    let dir = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| e as i32)?;
    let mut records = Vec::new();
    push(&mut records, 1, libc::DT_DIR, b".");
    push(&mut records, 2, libc::DT_DIR, b"..");
    Ok((dir, records))
}

/// Appends one `linux_dirent64` record: inode, offset of the next record,
/// record length, type, NUL-terminated name, padded to 8 bytes.
fn push(out: &mut Vec<u8>, ino: u64, dtype: u8, name: &[u8]) {
    let len = (19 + name.len() + 1).next_multiple_of(8);
    let next = (out.len() + len) as i64;
    out.extend_from_slice(&ino.to_ne_bytes());
    out.extend_from_slice(&next.to_ne_bytes());
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.push(dtype);
    out.extend_from_slice(name);
    out.resize(out.len() + len - 19 - name.len(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(b: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut n = 0;
        while n < b.len() {
            let len = usize::from(u16::from_ne_bytes([b[n + 16], b[n + 17]]));
            let name = &b[n + 19..n + len];
            let end = name.iter().position(|&c| c == 0).unwrap();
            out.push(String::from_utf8(name[..end].to_vec()).unwrap());
            n += len;
        }
        out
    }

    #[test]
    fn lists_in_pieces_and_rewinds() {
        let l = Listing::of_descriptors(&[0, 1, 2, 10]).unwrap();
        assert_eq!(l.read(8), Err(libc::EINVAL));
        let a = l.read(48).unwrap().to_vec();
        assert_eq!(names(&a), [".", ".."]);
        l.advance(a.len());
        let b = l.read(4096).unwrap().to_vec();
        assert_eq!(names(&b), ["0", "1", "2", "10"]);
        l.advance(b.len());
        assert!(l.read(4096).unwrap().is_empty());
        assert_eq!(l.seek(0, libc::SEEK_SET), Ok(0));
        assert_eq!(names(l.read(4096).unwrap()).len(), 6);
        assert_eq!(l.seek(5, libc::SEEK_END), Err(libc::EINVAL));
    }

    #[test]
    fn paths() {
        assert!(names_fd_dir(b"/proc/self/fd"));
        assert!(names_fd_dir(b"/dev/fd/"));
        assert!(!names_fd_dir(b"/proc/self/fd/3"));
        assert!(!names_fd_dir(b"/proc/self/fdinfo"));
    }
}
