//! `openat`, `close`, and the host path of a descriptor or a DC path.
//!
//! FS opens the host file inside the DC root itself (`openat2`, see
//! `path`) and keeps the host descriptor in the new open file
//! description. Host descriptors are always `O_CLOEXEC` and `O_NOCTTY`,
//! and opened `O_NONBLOCK` so that a FIFO can never block FS; regular
//! files and directories get their blocking mode back at once, other
//! objects (FIFOs, character devices) become host streams that FS only
//! reads or writes when they are ready.

use super::path::{Base, O_LARGEFILE, VALID_OPEN_FLAGS};
use super::table::{FdEntry, Kind, Ofd};
use super::{sys, Fs, Op, Waiter};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The descriptor a DC path names directly (`/dev/stdin`, `/dev/fd/N`,
/// `/proc/self/fd/N`), magic links on Linux that cannot be followed inside
/// the root: an open of one opens a regular file or a directory anew,
/// through FS's own link of it, and duplicates any other descriptor.
pub(super) fn fd_alias(path: &[u8]) -> Option<i32> {
    match path {
        b"/dev/stdin" => return Some(0),
        b"/dev/stdout" => return Some(1),
        b"/dev/stderr" => return Some(2),
        _ => {}
    }
    let n = path
        .strip_prefix(b"/dev/fd/")
        .or_else(|| path.strip_prefix(b"/proc/self/fd/"))?;
    if n.is_empty() || n.len() > 9 || !n.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// The descriptor whose link `path` is (`/proc/self/fd/N`, `/dev/fd/N`;
/// not `/dev/stdin`, a plain symlink to such a link).
pub(super) fn fd_link(path: &[u8]) -> Option<i32> {
    let link = path.starts_with(b"/proc/self/fd/") || path.starts_with(b"/dev/fd/");
    link.then(|| fd_alias(path)).flatten()
}

/// Classifies a freshly opened host descriptor.
pub(super) fn classify(fd: OwnedFd, flags: i32) -> Result<Kind, i32> {
    let ftype = sys::fmode(fd.as_fd())? & libc::S_IFMT;
    if flags & libc::O_PATH != 0 {
        return Ok(Kind::Path { fd, ftype });
    }
    match ftype {
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK | libc::S_IFLNK => {
            if flags & libc::O_NONBLOCK == 0 {
                let fl = sys::fcntl_int(fd.as_fd(), libc::F_GETFL, 0)?;
                sys::fcntl_int(fd.as_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK)?;
            }
            Ok(Kind::File { fd, ftype })
        }
        _ => Ok(Kind::Stream {
            fd: Arc::new(fd),
            console: false,
            plain: false,
        }),
    }
}

/// The `F_GETFL` flags of a description opened with `flags`.
pub(super) fn status_flags(flags: i32) -> i32 {
    if flags & libc::O_PATH != 0 {
        return libc::O_PATH | (flags & (libc::O_DIRECTORY | libc::O_NOFOLLOW));
    }
    (flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_TRUNC | libc::O_CLOEXEC))
        | O_LARGEFILE
}

/// `[dirfd, path, len, flags, mode]`.
fn openat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let path = match super::path::dc_path(ctx, req, 1) {
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    let (dirfd, flags, mode) = (req.i32(0), req.i32(3), req.args[4] as u32);
    match fs.open(ctx, req, dirfd, &path, flags, mode) {
        Err(libc::ENXIO) if waits_for_reader(flags) => {
            fs.wait_for_reader(ctx, req, dirfd, path, flags, mode)
        }
        r => {
            // A FIFO's reader may be what a writer's open waits for.
            if r.is_ok()
                && fs
                    .waiters
                    .iter()
                    .any(|w| matches!(w.op, Op::OpenFifo { .. }))
            {
                fs.settle(ctx, true);
            }
            Outcome::from(r)
        }
    }
}

impl Fs {
    fn open(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        dirfd: i32,
        path: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<i64, i32> {
        let proc = self.procs.get(&req.caller).ok_or(libc::EBADF)?;
        let cloexec = flags & libc::O_CLOEXEC != 0;
        if let Some(n) = fd_alias(path) {
            let ofd = proc
                .files
                .borrow()
                .get(n)
                .map_err(|_| libc::ENOENT)?
                .ofd
                .clone();
            if let Some(host) = ofd.reopenable() {
                let link = sys::cstr(format!("/proc/self/fd/{}", host.as_raw_fd()).as_bytes())?;
                return self.open_with(req.caller, flags, mode, |fs, h, m| {
                    sys::openat(fs.root.fd.as_fd(), &link, h as i32, m as u32)
                });
            }
            let mut t = proc.files.borrow_mut();
            return t.alloc(0, FdEntry::new(ofd, cloexec)).map(i64::from);
        }
        if super::listing::names_fd_dir(path) {
            if flags & (libc::O_ACCMODE | libc::O_CREAT) != libc::O_RDONLY {
                return Err(libc::EISDIR);
            }
            let mut t = proc.files.borrow_mut();
            let (mut fds, next) = t.numbers();
            // Like Linux, the listing shows its own descriptor.
            fds.extend(next);
            fds.sort_unstable();
            let l = super::listing::Listing::of_descriptors(&fds)?;
            let ofd = Ofd::new(Kind::Listing(l), status_flags(flags));
            return t.alloc(0, FdEntry::new(ofd, cloexec)).map(i64::from);
        }
        // `/proc`, or `.` from the working directory `/proc` (Debian's
        // `pidof`).
        let proc_dir = super::listing::names_proc_dir(path)
            || (dirfd == libc::AT_FDCWD
                && matches!(path, b"." | b"./")
                && sys::is_proc_root(proc.fs.borrow().cwd.as_fd()));
        if proc_dir && self.root.host.is_empty() {
            if flags & (libc::O_ACCMODE | libc::O_CREAT) != libc::O_RDONLY {
                return Err(libc::EISDIR);
            }
            let pids = self.local_pids(ctx);
            let l = super::listing::Listing::of_proc(&pids)?;
            let ofd = Ofd::new(Kind::Listing(l), status_flags(flags));
            let proc = self.procs.get(&req.caller).ok_or(libc::EBADF)?;
            return proc
                .files
                .borrow_mut()
                .alloc(0, FdEntry::new(ofd, cloexec))
                .map(i64::from);
        }
        if path == b"/dev/tty" {
            if let Some(c) = &self.console {
                let mut t = [0u8; 64];
                if sys::ioctl_buf(c.input.as_fd(), libc::TCGETS, &mut t).is_ok() {
                    let ofd = Ofd::new(
                        Kind::Stream {
                            fd: c.input.clone(),
                            console: true,
                            plain: false,
                        },
                        libc::O_RDWR,
                    );
                    return proc
                        .files
                        .borrow_mut()
                        .alloc(0, FdEntry::new(ofd, cloexec))
                        .map(i64::from);
                }
            }
        }
        let base = self.base(req.caller, dirfd, path)?;
        self.open_at(req.caller, &base, path, flags, mode)
    }

    /// Opens `path` from `base` for `caller` and installs it: the host
    /// part of [`Fs::open`].
    pub(super) fn open_at(
        &mut self,
        caller: Endpoint,
        base: &Base,
        path: &[u8],
        flags: i32,
        mode: u32,
    ) -> Result<i64, i32> {
        self.open_with(caller, flags, mode, |fs, host, mode| {
            fs.open_from(base, path, host, mode)
        })
    }

    /// [`Fs::open_at`] with `open` making the host open, given the host
    /// flags and the creation mode (the caller's umask applied).
    fn open_with(
        &mut self,
        caller: Endpoint,
        flags: i32,
        mode: u32,
        open: impl FnOnce(&Fs, u64, u64) -> Result<OwnedFd, i32>,
    ) -> Result<i64, i32> {
        let proc = self.procs.get(&caller).ok_or(libc::EBADF)?;
        let cloexec = flags & libc::O_CLOEXEC != 0;
        let umask = proc.fs.borrow().umask;
        let mut flags = flags & VALID_OPEN_FLAGS;
        let creating = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        let mode = if creating { mode & 0o7777 & !umask } else { 0 };
        let host = if flags & libc::O_PATH != 0 {
            flags &= libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            flags | libc::O_CLOEXEC
        } else {
            flags | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK
        };
        let fd = open(self, host as u32 as u64, mode as u64)?;
        let kind = classify(fd, flags)?;
        let ofd = Ofd::new(kind, status_flags(flags));
        let proc = self.procs.get(&caller).ok_or(libc::EBADF)?;
        let r = proc.files.borrow_mut().alloc(0, FdEntry::new(ofd, cloexec));
        r.map(i64::from)
    }

    /// A blocking `open` for writing that found no reader (`ENXIO`): on a
    /// FIFO it waits for one, as on Linux; FS retries it when a process of
    /// the DC opens a FIFO and every [`FIFO_RETRY`] (for readers outside
    /// the DC).
    fn wait_for_reader(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        dirfd: i32,
        path: Vec<u8>,
        flags: i32,
        mode: u32,
    ) -> Outcome {
        let base = match self.base(req.caller, dirfd, &path) {
            Ok(b) => b,
            Err(e) => return Outcome::err(e),
        };
        let what = libc::O_PATH | libc::O_CLOEXEC;
        let fifo = self
            .open_from(&base, &path, what as u32 as u64, 0)
            .and_then(|fd| sys::fmode(fd.as_fd()))
            .is_ok_and(|m| m & libc::S_IFMT == libc::S_IFIFO);
        if !fifo {
            return Outcome::err(libc::ENXIO);
        }
        self.defer(
            ctx,
            Waiter {
                sender: req.sender,
                caller: req.caller,
                op: Op::OpenFifo {
                    base,
                    path,
                    flags,
                    mode,
                    next: Instant::now() + FIFO_RETRY,
                },
            },
        );
        Outcome::Deferred
    }
}

/// How often an `open` waiting for a FIFO's reader is retried.
pub const FIFO_RETRY: Duration = Duration::from_millis(10);

/// Whether an open with `flags` waits for a FIFO's reader.
fn waits_for_reader(flags: i32) -> bool {
    flags & libc::O_ACCMODE == libc::O_WRONLY && flags & libc::O_NONBLOCK == 0
}

/// `[fd]`.
fn close(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let r = p.files.borrow_mut().remove(req.i32(0));
    match r {
        Ok(e) => {
            drop(e);
            fs.settle(ctx, false);
            Outcome::ok(0)
        }
        Err(e) => Outcome::err(e),
    }
}

/// Copies what fits of a host path to the caller; returns its full length.
fn reply_path(ctx: &Ctx, req: &Request, host: &[u8], buf: u64, len: u64) -> Outcome {
    let n = usize::try_from(len).unwrap_or(usize::MAX).min(host.len());
    match ctx.copy_out(req.sender, buf, &host[..n]) {
        Ok(()) => Outcome::ok(host.len() as i64),
        Err(e) => Outcome::err(e),
    }
}

/// `[fd, buf, len]`: the host path of the descriptor's file.
fn host_path(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let ofd = match fs.ofd(req.caller, req.i32(0)) {
        Ok(o) => o,
        Err(e) => return Outcome::err(e),
    };
    let Some(fd) = ofd.host_fd() else {
        return Outcome::err(libc::EINVAL);
    };
    match sys::fd_host_path(fd) {
        // A file without a path (a memfd, a deleted file) is reached
        // through FS's own descriptor link.
        Ok(h) if !h.starts_with(b"/") || h.ends_with(b" (deleted)") => {
            let link = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
            reply_path(ctx, req, link.as_bytes(), req.args[1], req.args[2])
        }
        Ok(h) => reply_path(ctx, req, &h, req.args[1], req.args[2]),
        Err(e) => Outcome::err(e),
    }
}

/// `[dirfd, path, len, buf, bufsize, flags]`: the host path of a DC path.
fn host_path_at(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let path = match super::path::dc_path(ctx, req, 1) {
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    let flags = req.i32(5);
    if flags & !libc::AT_SYMLINK_NOFOLLOW != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let fd = match fs.target(req.caller, req.i32(0), &path, follow) {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    match sys::fd_host_path(fd.as_fd()) {
        Ok(h) => reply_path(ctx, req, &h, req.args[3], req.args[4]),
        Err(e) => Outcome::err(e),
    }
}

/// The open/close calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsOpenat, openat as Handler<Fs>),
        (Call::FsClose, close),
        (Call::FsHostPath, host_path),
        (Call::FsHostPathAt, host_path_at),
    ]
}

impl Fs {
    /// DC pids of the DC's processes on this node (PID 1 is the process
    /// that runs PM, as the shim has it).
    fn local_pids(&self, ctx: &Ctx) -> Vec<i32> {
        let here = ctx.ipc.node();
        let local =
            |ep: dvk::Endpoint| ctx.ipc.node_of(ep) == Some(here) && ctx.ipc.host_pid(ep) > 0;
        let mut pids: Vec<i32> = self
            .procs
            .iter()
            .filter(|(ep, p)| p.pid > 0 && local(**ep))
            .map(|(_, p)| p.pid)
            .collect();
        if local(crate::abi::PM) {
            pids.push(crate::abi::INIT_PID);
        }
        pids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(fd_alias(b"/dev/stdin"), Some(0));
        assert_eq!(fd_alias(b"/dev/fd/63"), Some(63));
        assert_eq!(fd_alias(b"/proc/self/fd/7"), Some(7));
        assert_eq!(fd_alias(b"/dev/fd/"), None);
        assert_eq!(fd_alias(b"/dev/fd/1x"), None);
        assert_eq!(fd_alias(b"dev/stdin"), None);
    }

    #[test]
    fn getfl() {
        assert_eq!(
            status_flags(libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC | libc::O_TRUNC),
            libc::O_RDWR | O_LARGEFILE
        );
        assert_eq!(status_flags(libc::O_PATH | libc::O_CLOEXEC), libc::O_PATH);
    }
}
