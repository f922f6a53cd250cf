//! Metadata calls: `newfstatat`, `statx`, `statfs`, `faccessat2`, `truncate`,
//! `ftruncate`, `fsync`, `fchmodat`, `fchownat`, `umask`, `utimensat`.
//!
//! A path is first resolved inside the root to an `O_PATH` descriptor
//! (following a final symlink unless `AT_SYMLINK_NOFOLLOW`), and the host
//! call then acts on that descriptor with `AT_EMPTY_PATH`, so no host
//! lookup ever starts outside the root. `stat` results are the raw kernel
//! structures, copied as they are.

use super::path::AT_FDCWD;
use super::table::{Kind, Ofd};
use super::{sys, unix, Fs};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

/// What a metadata call acts on.
pub(super) enum Target {
    /// A resolved path.
    Path(OwnedFd),
    /// A descriptor (`AT_EMPTY_PATH`).
    Desc(Rc<Ofd>),
    /// The cwd (`AT_FDCWD` with an empty path and `AT_EMPTY_PATH`).
    Cwd(Rc<OwnedFd>),
}

impl Target {
    /// The host descriptor, or `None` for an FS pipe.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Target::Path(fd) => Some(fd.as_fd()),
            Target::Desc(o) => o.host_fd(),
            Target::Cwd(fd) => Some(fd.as_fd()),
        }
    }

    fn socket(&self) -> Option<Rc<std::cell::RefCell<unix::Sock>>> {
        match self {
            Target::Desc(o) => match &o.kind {
                Kind::Socket(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    fn pipe(&self) -> Option<std::cell::Ref<'_, super::pipe::Pipe>> {
        match self {
            Target::Desc(o) => match &o.kind {
                Kind::PipeRead(p) | Kind::PipeWrite(p) => Some(p.borrow()),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Fs {
    /// Resolves `(dirfd, path)` under `flags` (`AT_EMPTY_PATH`,
    /// `AT_SYMLINK_NOFOLLOW`).
    pub(super) fn meta_target(
        &self,
        caller: Endpoint,
        dirfd: i32,
        path: &[u8],
        flags: i32,
    ) -> Result<Target, i32> {
        if path.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(libc::ENOENT);
            }
            return self.fd_target(caller, dirfd);
        }
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        // `/dev/fd/N` and its kin name the caller's descriptor N (their
        // magic links are not followed inside the root).
        if let Some(n) = super::open::fd_alias(path).filter(|_| follow) {
            return self.fd_target(caller, n);
        }
        // The link itself: FS's own link of the same file has its mode.
        if let Some(n) = super::open::fd_link(path) {
            let ofd = self.ofd(caller, n).map_err(|_| libc::ENOENT)?;
            if let Some(fd) = ofd.host_fd() {
                return sys::own_fd_link(fd).map(Target::Path);
            }
        }
        self.target(caller, dirfd, path, follow).map(Target::Path)
    }

    /// The descriptor `dirfd` itself (or the cwd for `AT_FDCWD`).
    fn fd_target(&self, caller: Endpoint, dirfd: i32) -> Result<Target, i32> {
        let p = self.procs.get(&caller).ok_or(libc::EBADF)?;
        if dirfd == AT_FDCWD {
            return Ok(Target::Cwd(p.fs.borrow().cwd.clone()));
        }
        let ofd = p.files.borrow().get(dirfd)?.ofd.clone();
        Ok(Target::Desc(ofd))
    }
}

fn path_arg(ctx: &Ctx, req: &Request, addr: usize) -> Result<Vec<u8>, i32> {
    super::path::dc_path(ctx, req, addr)
}

/// `[dirfd, path, len, statbuf, flags]`.
fn fstatat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(4);
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH | libc::AT_NO_AUTOMOUNT) != 0 {
            return Err(libc::EINVAL);
        }
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, flags)?;
        let st = match (t.fd(), t.pipe()) {
            (Some(fd), _) => sys::fstatat_raw(fd, sys::empty(), libc::AT_EMPTY_PATH)?,
            (None, Some(p)) => p.stat(),
            (None, None) => match t.socket() {
                Some(s) => unix::stat(&s),
                None => return Err(libc::EBADF),
            },
        };
        ctx.copy_out(req.sender, req.args[3], &st)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, statfsbuf, flags]`.
fn statfs(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, req.i32(4))?;
        let st = match t.fd() {
            Some(fd) => sys::fstatfs_raw(fd)?,
            None => sys::anon_statfs(),
        };
        ctx.copy_out(req.sender, req.args[3], &st)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, flags, mask, statxbuf]`.
fn statx(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(3);
        let allowed = libc::AT_SYMLINK_NOFOLLOW
            | libc::AT_EMPTY_PATH
            | libc::AT_NO_AUTOMOUNT
            | libc::AT_STATX_SYNC_TYPE;
        if flags & !allowed != 0 || flags & libc::AT_STATX_SYNC_TYPE == libc::AT_STATX_SYNC_TYPE {
            return Err(libc::EINVAL);
        }
        let mask = req.args[4] as u32;
        if mask & libc::STATX__RESERVED as u32 != 0 {
            return Err(libc::EINVAL);
        }
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, flags)?;
        let sx = match (t.fd(), t.pipe()) {
            (Some(fd), _) => sys::statx_raw(
                fd,
                sys::empty(),
                libc::AT_EMPTY_PATH | (flags & libc::AT_STATX_SYNC_TYPE),
                mask,
            )?,
            (None, Some(p)) => p.statx(),
            (None, None) => match t.socket() {
                Some(s) => unix::statx(&s),
                None => return Err(libc::EBADF),
            },
        };
        ctx.copy_out(req.sender, req.args[5], &sx)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, mode, flags]`.
fn faccessat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let mode = req.i32(3);
        let flags = req.i32(4);
        if mode & !(libc::R_OK | libc::W_OK | libc::X_OK) != 0
            || flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0
        {
            return Err(libc::EINVAL);
        }
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, flags)?;
        // An FS pipe (no host file) is rw for its owner.
        if let Some(fd) = t.fd() {
            sys::faccessat2(
                fd,
                sys::empty(),
                mode,
                libc::AT_EMPTY_PATH | (flags & libc::AT_EACCESS),
            )?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[path, len, length]`.
fn truncate(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let path = path_arg(ctx, req, 0)?;
        let fd = fs.target(req.caller, AT_FDCWD, &path, true)?;
        sys::truncate_fd_path(fd.as_fd(), req.int(2))?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, length]`.
fn ftruncate(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        match &ofd.kind {
            Kind::File { fd, .. } => sys::ftruncate(fd.as_fd(), req.int(1))?,
            Kind::Stream { fd, .. } => sys::ftruncate(fd.as_fd(), req.int(1))?,
            Kind::Path { .. } => return Err(libc::EBADF),
            Kind::Listing(_) => return Err(libc::EISDIR),
            Kind::PipeRead(_) | Kind::PipeWrite(_) | Kind::Epoll(_) | Kind::Socket(_) => {
                return Err(libc::EINVAL)
            }
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, mode, offset, len]`.
fn fallocate(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        match &ofd.kind {
            Kind::File { fd, ftype } if *ftype == libc::S_IFREG => {
                if ofd.flags.get() & libc::O_ACCMODE == libc::O_RDONLY {
                    return Err(libc::EBADF);
                }
                sys::fallocate(fd.as_fd(), req.i32(1), req.int(2), req.int(3))?
            }
            Kind::File { .. } => return Err(libc::ENODEV),
            Kind::PipeRead(_) | Kind::PipeWrite(_) | Kind::Socket(_) => return Err(libc::ESPIPE),
            Kind::Path { .. } => return Err(libc::EBADF),
            Kind::Stream { .. } | Kind::Epoll(_) | Kind::Listing(_) => return Err(libc::ENODEV),
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, datasync]`.
fn fsync(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        match &ofd.kind {
            Kind::File { fd, .. } => sys::fsync(fd.as_fd(), req.args[1] != 0)?,
            Kind::Stream { fd, .. } => sys::fsync(fd.as_fd(), req.args[1] != 0)?,
            Kind::Path { .. } => return Err(libc::EBADF),
            Kind::PipeRead(_)
            | Kind::PipeWrite(_)
            | Kind::Epoll(_)
            | Kind::Socket(_)
            | Kind::Listing(_) => return Err(libc::EINVAL),
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, mode, flags]`.
fn fchmodat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(4);
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(libc::EINVAL);
        }
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, flags)?;
        let nofollow = matches!(t, Target::Path(_)) && flags & libc::AT_SYMLINK_NOFOLLOW != 0;
        if let Some(fd) = t.fd() {
            sys::fchmod_fd(fd, req.args[3] as u32 & 0o7777, nofollow)?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, uid, gid, flags]`.
fn fchownat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(5);
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(libc::EINVAL);
        }
        let path = path_arg(ctx, req, 1)?;
        let t = fs.meta_target(req.caller, req.i32(0), &path, flags)?;
        if let Some(fd) = t.fd() {
            sys::fchownat(
                fd,
                sys::empty(),
                req.args[3] as u32,
                req.args[4] as u32,
                libc::AT_EMPTY_PATH,
            )?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[mask]`: returns the previous mask.
fn umask(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let mut info = p.fs.borrow_mut();
    let old = info.umask;
    info.umask = req.args[0] as u32 & 0o777;
    Outcome::ok(old as i64)
}

/// `[dirfd, path, len, times, flags]`; an empty path means `dirfd` itself
/// (`futimens`).
fn utimensat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(4);
        if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(libc::EINVAL);
        }
        let dirfd = req.i32(0);
        let times = if req.args[3] == 0 {
            None
        } else {
            let raw = ctx.copy_in(req.sender, req.args[3], 32)?;
            let word = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
                i64::from_ne_bytes(b)
            };
            Some([
                libc::timespec {
                    tv_sec: word(0),
                    tv_nsec: word(1),
                },
                libc::timespec {
                    tv_sec: word(2),
                    tv_nsec: word(3),
                },
            ])
        };
        let path = path_arg(ctx, req, 1)?;
        let t = if path.is_empty() {
            // `utimensat(fd, NULL, ...)`, i.e. `futimens`.
            if dirfd == AT_FDCWD && flags & libc::AT_EMPTY_PATH == 0 {
                return Err(libc::EFAULT);
            }
            fs.fd_target(req.caller, dirfd)?
        } else {
            fs.meta_target(req.caller, dirfd, &path, flags)?
        };
        if let Some(fd) = t.fd() {
            sys::utimensat(fd, sys::empty(), times.as_ref(), libc::AT_EMPTY_PATH)?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// The metadata calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsFstatat, fstatat as Handler<Fs>),
        (Call::FsStatx, statx),
        (Call::FsStatfs, statfs),
        (Call::FsFaccessat, faccessat),
        (Call::FsTruncate, truncate),
        (Call::FsFtruncate, ftruncate),
        (Call::FsFsync, fsync),
        (Call::FsFallocate, fallocate),
        (Call::FsFchmodat, fchmodat),
        (Call::FsFchownat, fchownat),
        (Call::FsUmask, umask),
        (Call::FsUtimensat, utimensat),
    ]
}
