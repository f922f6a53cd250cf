//! Confined path resolution.
//!
//! DC paths are resolved inside the DC root (a host directory) with
//! `openat2(2)`:
//!
//! * absolute paths: from the root's `O_PATH` descriptor with
//!   `RESOLVE_IN_ROOT`, so `..`, absolute symlinks and symlinks with `..`
//!   all stay inside the root;
//! * relative paths: from the cwd (or `dirfd`) with `RESOLVE_BENEATH`
//!   first, the fast common case; when the path leaves that directory
//!   (`EXDEV`), again from the root with `RESOLVE_IN_ROOT` on the
//!   directory's current DC path joined with the path.
//!
//! Magic links (`/proc/self/fd/N`) are never followed. Calls that act on
//! a name (mkdir, unlink, rename...) resolve its parent directory this way
//! and then use the `*at` system call on (parent descriptor, last
//! component), so no host lookup ever starts outside the root.

use super::table::Ofd;
use super::{sys, Fs};
use crate::server::{Ctx, Request};
use dvk::Endpoint;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

/// A DC path argument of `req` (address and length at `args[at]`,
/// `args[at + 1]`), with `/proc/self` and `/proc/thread-self` naming the
/// caller rather than FS (whose process would answer them otherwise):
/// `/proc/<host pid>` and `/proc/<host pid>/task/<host tid>`. A caller on
/// another node has no such directory here (`/proc/0`: ENOENT).
/// `/proc/self/fd` stays FS's business (see `open`'s descriptor aliases).
pub fn dc_path(ctx: &Ctx, req: &Request, at: usize) -> Result<Vec<u8>, i32> {
    let path = ctx.path(req.sender, req.args[at], req.args[at + 1])?;
    Ok(for_caller(ctx, req, path))
}

/// [`dc_path`] for a path already read.
pub fn for_caller(ctx: &Ctx, req: &Request, path: Vec<u8>) -> Vec<u8> {
    caller_proc(&path, || {
        (ctx.ipc.host_pid(req.caller), ctx.ipc.host_tid(req.sender))
    })
    .unwrap_or(path)
}

/// `path` with its `/proc/self` or `/proc/thread-self` prefix replaced
/// (see [`dc_path`]); `None` when it has none. `ids` gives the caller's
/// host pid and tid.
fn caller_proc(path: &[u8], ids: impl FnOnce() -> (i32, i32)) -> Option<Vec<u8>> {
    let after = |prefix: &[u8]| -> Option<usize> {
        let rest = path.strip_prefix(prefix)?;
        (rest.is_empty() || rest[0] == b'/').then_some(prefix.len())
    };
    let (cut, thread) = match after(b"/proc/self") {
        Some(n) => {
            let rest = &path[n..];
            if rest == b"/fd" || rest.starts_with(b"/fd/") {
                return None;
            }
            (n, false)
        }
        None => (after(b"/proc/thread-self")?, true),
    };
    let (pid, tid) = ids();
    let mut out = if thread {
        format!("/proc/{pid}/task/{tid}").into_bytes()
    } else {
        format!("/proc/{pid}").into_bytes()
    };
    out.extend_from_slice(&path[cut..]);
    Some(out)
}

/// `AT_FDCWD` as it arrives in a request.
pub const AT_FDCWD: i32 = libc::AT_FDCWD;

/// The kernel's `O_LARGEFILE` (x86-64; glibc defines it as 0 there, but
/// the kernel sets it on every 64-bit open and `F_GETFL` shows it).
pub const O_LARGEFILE: i32 = 0o100000;

/// Open flags `openat2` accepts (`VALID_OPEN_FLAGS` of the kernel).
pub const VALID_OPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_ASYNC
    | libc::O_DIRECT
    | O_LARGEFILE
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_PATH
    | libc::O_TMPFILE;

/// The DC root.
pub struct Root {
    /// `O_PATH` descriptor of the root directory.
    pub fd: OwnedFd,
    /// Its canonical host path, without a trailing slash (empty for `/`).
    pub host: Vec<u8>,
}

/// Where a relative path starts.
pub enum Base {
    /// The root (absolute paths).
    Root,
    /// The process's cwd.
    Cwd(Rc<OwnedFd>),
    /// A directory descriptor of the process.
    Dir(Rc<Ofd>),
}

impl Base {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Base::Root => None,
            Base::Cwd(fd) => Some(fd.as_fd()),
            Base::Dir(o) => o.dir_fd(),
        }
    }
}

/// A path split into the directory part and the last component.
pub struct Split<'a> {
    /// The directory part (`"."` when there is none).
    pub dir: &'a [u8],
    /// The last component (`"."` for `/`).
    pub last: &'a [u8],
    /// The path ended with `/`.
    pub trailing_slash: bool,
}

/// Splits `path` (non-empty) into its parent and last component.
pub fn split(path: &[u8]) -> Split<'_> {
    let mut end = path.len();
    while end > 0 && path[end - 1] == b'/' {
        end -= 1;
    }
    let trailing_slash = end < path.len();
    if end == 0 {
        return Split {
            dir: b"/",
            last: b".",
            trailing_slash,
        };
    }
    let p = &path[..end];
    match p.iter().rposition(|&c| c == b'/') {
        Some(i) => Split {
            dir: &p[..=i],
            last: &p[i + 1..],
            trailing_slash,
        },
        None => Split {
            dir: b".",
            last: p,
            trailing_slash,
        },
    }
}

impl Root {
    /// Opens the root directory at host path `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Root> {
        let canon = std::fs::canonicalize(path)?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(canon.as_os_str()).to_vec();
        let c = sys::cstr(&bytes).map_err(std::io::Error::from_raw_os_error)?;
        let fd = sys::open(&c, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .map_err(std::io::Error::from_raw_os_error)?;
        let host = if bytes == b"/" { Vec::new() } else { bytes };
        Ok(Root { fd, host })
    }

    /// The DC path of a host path, if it is inside the root.
    pub fn dc_path(&self, host: &[u8]) -> Option<Vec<u8>> {
        if self.host.is_empty() {
            return Some(host.to_vec());
        }
        let rest = host.strip_prefix(self.host.as_slice())?;
        if rest.is_empty() {
            Some(b"/".to_vec())
        } else if rest.starts_with(b"/") {
            Some(rest.to_vec())
        } else {
            None
        }
    }

    /// `openat2` inside the root, retrying the rare `EAGAIN` of a racing
    /// rename.
    fn openat2(
        &self,
        dir: Option<BorrowedFd<'_>>,
        path: &[u8],
        flags: u64,
        mode: u64,
    ) -> Result<OwnedFd, i32> {
        let c = sys::cstr(path)?;
        let (dir, resolve) = match dir {
            Some(d) => (d, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS),
            None => (
                self.fd.as_fd(),
                libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
            ),
        };
        let mut tries = 0;
        loop {
            match sys::openat2(dir, &c, flags, mode, resolve) {
                Err(libc::EAGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }
}

impl Fs {
    /// The base of `path` for `dirfd` of `caller` (`EBADF`, `ENOTDIR`).
    /// Unknown callers resolve relative paths from the root.
    pub(super) fn base(&self, caller: Endpoint, dirfd: i32, path: &[u8]) -> Result<Base, i32> {
        if path.first() == Some(&b'/') {
            return Ok(Base::Root);
        }
        let Some(p) = self.procs.get(&caller) else {
            return if dirfd == AT_FDCWD {
                Ok(Base::Root)
            } else {
                Err(libc::EBADF)
            };
        };
        if dirfd == AT_FDCWD {
            return Ok(Base::Cwd(p.fs.borrow().cwd.clone()));
        }
        let ofd = p.files.borrow().get(dirfd)?.ofd.clone();
        if ofd.dir_fd().is_none() {
            return Err(libc::ENOTDIR);
        }
        Ok(Base::Dir(ofd))
    }

    /// Opens `path` from `base` with `openat2` flags and mode, confined to
    /// the root.
    pub(super) fn open_from(
        &self,
        base: &Base,
        path: &[u8],
        flags: u64,
        mode: u64,
    ) -> Result<OwnedFd, i32> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let Some(dir) = base.fd() else {
            let follow = flags & libc::O_NOFOLLOW as u64 == 0;
            if let Some(p) = self.through_proc_link(path, follow) {
                return self.root.openat2(None, &p, flags, mode);
            }
            return self.root.openat2(None, path, flags, mode);
        };
        match self.root.openat2(Some(dir), path, flags, mode) {
            Err(libc::EXDEV) => {}
            r => return r,
        }
        // The path leaves the base directory: resolve it from the root
        // on the directory's DC path.
        let mut full = sys::fd_host_path(dir)
            .ok()
            .and_then(|h| self.root.dc_path(&h))
            .unwrap_or_else(|| b"/".to_vec());
        if full.last() != Some(&b'/') {
            full.push(b'/');
        }
        full.extend_from_slice(path);
        if full.len() > crate::abi::PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        self.root.openat2(None, &full, flags, mode)
    }

    /// `path` with its leading `/proc/<pid>/exe`, `/cwd` or `/root` replaced
    /// by the DC path of what that magic link names. Resolution inside the
    /// root never follows magic links (`RESOLVE_NO_MAGICLINKS`), but Linux
    /// does, and programs rely on it (`stat -L /proc/self/exe`, `test -e
    /// /proc/self/exe`, `/proc/self/root/etc/...`). `None` for any other
    /// path, for the link itself when it is the last component and is not
    /// followed, and for a target outside the root.
    fn through_proc_link(&self, path: &[u8], follow: bool) -> Option<Vec<u8>> {
        let rest = path.strip_prefix(b"/proc/")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let after = rest
            .get(digits..)?
            .strip_prefix(b"/")
            .filter(|_| digits > 0)?;
        let end = after.iter().position(|&b| b == b'/').unwrap_or(after.len());
        let (link, tail) = after.split_at(end);
        if !matches!(link, b"exe" | b"cwd" | b"root") || (tail.is_empty() && !follow) {
            return None;
        }
        let at = path.len() - tail.len();
        let host = std::fs::read_link(std::ffi::OsStr::from_bytes(&path[..at])).ok()?;
        let mut dc = self.root.dc_path(host.as_os_str().as_bytes())?;
        if !tail.is_empty() {
            while dc.last() == Some(&b'/') {
                dc.pop();
            }
            dc.extend_from_slice(tail);
        }
        Some(dc)
    }

    /// An `O_PATH` descriptor of what `path` names (following a final
    /// symlink if `follow`).
    pub(super) fn target(
        &self,
        caller: Endpoint,
        dirfd: i32,
        path: &[u8],
        follow: bool,
    ) -> Result<OwnedFd, i32> {
        let base = self.base(caller, dirfd, path)?;
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        self.open_from(
            &base,
            path,
            (libc::O_PATH | libc::O_CLOEXEC | nofollow) as u64,
            0,
        )
    }

    /// The parent directory of `path` and its last component. A last
    /// component `.` or `..` is replaced by resolving the whole path and
    /// naming it `.`, so no host call ever sees `..` at the root.
    pub(super) fn parent(
        &self,
        caller: Endpoint,
        dirfd: i32,
        path: &[u8],
    ) -> Result<(OwnedFd, CString, bool), i32> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let base = self.base(caller, dirfd, path)?;
        let sp = split(path);
        let dirflags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        if sp.last == b"." || sp.last == b".." {
            let fd = self.open_from(&base, path, dirflags, 0)?;
            return Ok((fd, sys::cstr(b".")?, sp.trailing_slash));
        }
        if sp.last.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        let fd = self.open_from(&base, sp.dir, dirflags, 0)?;
        Ok((fd, sys::cstr(sp.last)?, sp.trailing_slash))
    }

    /// The DC path of a host descriptor (`None` if outside the root).
    pub(super) fn dc_path_of(&self, fd: BorrowedFd<'_>) -> Option<Vec<u8>> {
        sys::fd_host_path(fd)
            .ok()
            .and_then(|h| self.root.dc_path(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_self_names_the_caller() {
        let ids = || (41, 43);
        let m = |p: &[u8]| caller_proc(p, ids).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(m(b"/proc/self").as_deref(), Some("/proc/41"));
        assert_eq!(m(b"/proc/self/exe").as_deref(), Some("/proc/41/exe"));
        assert_eq!(
            m(b"/proc/thread-self/comm").as_deref(),
            Some("/proc/41/task/43/comm")
        );
        assert_eq!(m(b"/proc/selfish"), None);
        assert_eq!(m(b"/proc/self/fd"), None);
        assert_eq!(m(b"/proc/self/fd/3"), None);
        assert_eq!(
            m(b"/proc/self/fdinfo/3").as_deref(),
            Some("/proc/41/fdinfo/3")
        );
        assert_eq!(m(b"proc/self/exe"), None);
        assert_eq!(m(b"/proc/1/exe"), None);
    }

    #[test]
    fn splits() {
        let s = split(b"a/b/c");
        assert_eq!(
            (s.dir, s.last, s.trailing_slash),
            (&b"a/b/"[..], &b"c"[..], false)
        );
        let s = split(b"c//");
        assert_eq!(
            (s.dir, s.last, s.trailing_slash),
            (&b"."[..], &b"c"[..], true)
        );
        let s = split(b"/");
        assert_eq!((s.dir, s.last), (&b"/"[..], &b"."[..]));
        let s = split(b"/x");
        assert_eq!((s.dir, s.last), (&b"/"[..], &b"x"[..]));
    }
}
