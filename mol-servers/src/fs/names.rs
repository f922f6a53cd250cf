//! Name calls: `mkdirat`, `unlinkat`, `renameat2`, `linkat`, `symlinkat`,
//! `readlinkat`, `getdents64`, `chdir`, `fchdir`, `getcwd`.
//!
//! Each resolves the parent directory inside the root and calls the host
//! `*at` system call on (parent descriptor, last component). A trailing
//! slash is checked here (the host never sees it, as it would make the
//! host follow a symlink outside the root).

use super::path::AT_FDCWD;
use super::proc::DEFAULT_UMASK;
use super::table::Kind;
use super::{sys, Fs};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

/// Largest `getdents64` buffer FS fills in one call.
const DIRENT_MAX: usize = 1 << 20;

/// `S_IFMT` of the entry `name` in `dir` without following it, or `None`
/// if there is no such entry.
fn entry_type(dir: BorrowedFd<'_>, name: &CStr) -> Result<Option<u32>, i32> {
    match sys::fstatat_raw(dir, name, libc::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(sys::stat_mode(&st) & libc::S_IFMT)),
        Err(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A path with a trailing slash must name a directory (a symlink is not one).
fn check_dir_slash(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), i32> {
    match entry_type(dir, name)? {
        Some(t) if t != libc::S_IFDIR => Err(libc::ENOTDIR),
        _ => Ok(()),
    }
}

impl Fs {
    pub(super) fn umask_of(&self, ep: Endpoint) -> u32 {
        self.procs
            .get(&ep)
            .map_or(DEFAULT_UMASK, |p| p.fs.borrow().umask)
    }
}

fn path_at(ctx: &Ctx, req: &Request, addr: u64, len: u64) -> Result<Vec<u8>, i32> {
    let path = ctx.path(req.sender, addr, len)?;
    Ok(super::path::for_caller(ctx, req, path))
}

/// `[dirfd, path, len, mode]`.
fn mkdirat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let path = path_at(ctx, req, req.args[1], req.args[2])?;
        let (dir, name, _) = fs.parent(req.caller, req.i32(0), &path)?;
        let mode = req.args[3] as u32 & 0o7777 & !fs.umask_of(req.caller);
        sys::mkdirat(dir.as_fd(), &name, mode)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, mode, dev]`.
fn mknodat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let path = path_at(ctx, req, req.args[1], req.args[2])?;
        let kind = req.args[3] as u32 & libc::S_IFMT;
        let kind = if kind == 0 { libc::S_IFREG } else { kind };
        if !matches!(kind, libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK) {
            return Err(libc::EPERM);
        }
        let (dir, name, _) = fs.parent(req.caller, req.i32(0), &path)?;
        let mode = req.args[3] as u32 & 0o7777 & !fs.umask_of(req.caller);
        sys::mknodat(dir.as_fd(), &name, kind | mode, 0)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, flags]`.
fn unlinkat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(3);
        if flags & !libc::AT_REMOVEDIR != 0 {
            return Err(libc::EINVAL);
        }
        let path = path_at(ctx, req, req.args[1], req.args[2])?;
        let (dir, name, slash) = fs.parent(req.caller, req.i32(0), &path)?;
        if slash {
            match entry_type(dir.as_fd(), &name)? {
                None => return Err(libc::ENOENT),
                Some(libc::S_IFDIR) if flags == 0 => return Err(libc::EISDIR),
                Some(libc::S_IFDIR) => {}
                Some(_) => return Err(libc::ENOTDIR),
            }
        }
        sys::unlinkat(dir.as_fd(), &name, flags)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// Both paths of a two-path call: `[olddirfd, oldpath, lens, newdirfd, newpath, ...]`.
fn two_paths(ctx: &Ctx, req: &Request) -> Result<(Vec<u8>, Vec<u8>), i32> {
    let (ol, nl) = abi::unpack_lens(req.args[2]);
    let old = path_at(ctx, req, req.args[1], ol as u64)?;
    let new = path_at(ctx, req, req.args[4], nl as u64)?;
    Ok((old, new))
}

/// `[olddirfd, oldpath, oldlen | newlen << 32, newdirfd, newpath, flags]`.
fn renameat2(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.args[5] as u32;
        let (old, new) = two_paths(ctx, req)?;
        let (od, on, os) = fs.parent(req.caller, req.i32(0), &old)?;
        let (nd, nn, ns) = fs.parent(req.caller, req.i32(3), &new)?;
        if os || ns {
            check_dir_slash(od.as_fd(), &on)?;
        }
        sys::renameat2(od.as_fd(), &on, nd.as_fd(), &nn, flags)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[olddirfd, oldpath, oldlen | newlen << 32, newdirfd, newpath, flags]`.
fn linkat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let flags = req.i32(5);
        if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
            return Err(libc::EINVAL);
        }
        let (old, new) = two_paths(ctx, req)?;
        let (nd, nn, ns) = fs.parent(req.caller, req.i32(3), &new)?;
        if ns {
            return Err(match entry_type(nd.as_fd(), &nn)? {
                Some(_) => libc::EEXIST,
                None => libc::ENOENT,
            });
        }
        if old.is_empty() || flags & libc::AT_SYMLINK_FOLLOW != 0 {
            // Link the file itself, through its /proc/self/fd magic link.
            let t = fs.meta_target(req.caller, req.i32(0), &old, flags & libc::AT_EMPTY_PATH)?;
            let fd = t.fd().ok_or(libc::ENOENT)?;
            let p = sys::proc_fd_path(fd);
            sys::linkat(None, &p, nd.as_fd(), &nn, libc::AT_SYMLINK_FOLLOW)?;
        } else {
            let (od, on, os) = fs.parent(req.caller, req.i32(0), &old)?;
            if os {
                check_dir_slash(od.as_fd(), &on)?;
            }
            sys::linkat(Some(od.as_fd()), &on, nd.as_fd(), &nn, 0)?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[target, targetlen | pathlen << 32, newdirfd, path]`.
fn symlinkat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (tl, pl) = abi::unpack_lens(req.args[1]);
        // The link's text, not a path to resolve.
        let target = ctx.path(req.sender, req.args[0], tl as u64)?;
        let path = path_at(ctx, req, req.args[3], pl as u64)?;
        if target.is_empty() {
            return Err(libc::ENOENT);
        }
        let (dir, name, slash) = fs.parent(req.caller, req.i32(2), &path)?;
        if slash {
            return Err(match entry_type(dir.as_fd(), &name)? {
                Some(_) => libc::EEXIST,
                None => libc::ENOENT,
            });
        }
        sys::symlinkat(&sys::cstr(&target)?, dir.as_fd(), &name)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, buf, bufsize]`: the link text, unchanged.
fn readlinkat(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let size = req.int(4);
        if size <= 0 {
            return Err(libc::EINVAL);
        }
        let path = path_at(ctx, req, req.args[1], req.args[2])?;
        let size = (size as usize).min(abi::PATH_MAX);
        if let Some(n) = super::open::fd_link(&path) {
            let target = fs.fd_target_name(req.caller, n)?;
            let n = target.len().min(size);
            ctx.copy_out(req.sender, req.args[3], &target[..n])?;
            return Ok(n as i64);
        }
        let t = fs.meta_target(
            req.caller,
            req.i32(0),
            &path,
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH,
        )?;
        let fd = t.fd().ok_or(libc::EINVAL)?;
        let mut buf = vec![0u8; size];
        let n = match sys::readlinkat(fd, sys::empty(), &mut buf) {
            Ok(n) => n,
            // The descriptor exists, so ENOENT means "not a symlink".
            Err(libc::ENOENT) if !path.is_empty() => return Err(libc::EINVAL),
            Err(e) => return Err(e),
        };
        ctx.copy_out(req.sender, req.args[3], &buf[..n])?;
        Ok(n as i64)
    })();
    Outcome::from(r)
}

impl Fs {
    /// What the link of `caller`'s descriptor `n` shows, as Linux: its
    /// file's DC path, or `pipe:[ino]`, `socket:[ino]`, an anonymous
    /// inode's name (not the host descriptor of the same number, which
    /// the program's process holds for its own use).
    fn fd_target_name(&self, caller: Endpoint, n: i32) -> Result<Vec<u8>, i32> {
        let ofd = self.ofd(caller, n).map_err(|_| libc::ENOENT)?;
        let ino = |st: [u8; sys::STAT_SIZE]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&st[8..16]);
            u64::from_ne_bytes(b)
        };
        let named = match &ofd.kind {
            Kind::PipeRead(p) | Kind::PipeWrite(p) => format!("pipe:[{}]", ino(p.borrow().stat())),
            Kind::Socket(s) => format!("socket:[{}]", ino(super::unix::stat(s))),
            Kind::Epoll(_) => "anon_inode:[eventpoll]".into(),
            _ => {
                let fd = ofd.host_fd().ok_or(libc::EINVAL)?;
                return match self.dc_path_of(fd) {
                    Some(p) => Ok(p),
                    // Not a file of the root: a host pipe, the terminal.
                    None => sys::fd_host_path(fd),
                };
            }
        };
        Ok(named.into_bytes())
    }
}

/// `[fd, buf, count]`: the kernel's `linux_dirent64` records.
fn getdents64(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let fd = match &ofd.kind {
            Kind::File { fd, .. } => fd.as_fd(),
            Kind::Listing(l) => {
                let out = l.read(usize::try_from(req.args[2]).unwrap_or(usize::MAX))?;
                ctx.copy_out(req.sender, req.args[1], out)?;
                l.advance(out.len());
                return Ok(out.len() as i64);
            }
            Kind::Path { .. } => return Err(libc::EBADF),
            _ => return Err(libc::ENOTDIR),
        };
        let count = usize::try_from(req.args[2])
            .unwrap_or(DIRENT_MAX)
            .min(DIRENT_MAX);
        let pos = sys::lseek(fd, 0, libc::SEEK_CUR).ok();
        let mut buf = vec![0u8; count];
        let n = sys::getdents64(fd, &mut buf)?;
        if let Err(e) = ctx.copy_out(req.sender, req.args[1], &buf[..n]) {
            if let Some(p) = pos {
                let _ = sys::lseek(fd, p, libc::SEEK_SET);
            }
            return Err(e);
        }
        Ok(n as i64)
    })();
    Outcome::from(r)
}

/// Makes `fd` (a directory) the cwd of `ep` after the search-permission check.
fn set_cwd(fs: &mut Fs, ep: Endpoint, fd: OwnedFd) -> Result<i64, i32> {
    sys::faccessat2(
        fd.as_fd(),
        sys::empty(),
        libc::X_OK,
        libc::AT_EMPTY_PATH | libc::AT_EACCESS,
    )?;
    let p = fs.procs.get(&ep).ok_or(libc::EBADF)?;
    p.fs.borrow_mut().cwd = Rc::new(fd);
    Ok(0)
}

/// `[path, len]`.
fn chdir(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let path = path_at(ctx, req, req.args[0], req.args[1])?;
        if !fs.procs.contains_key(&req.caller) {
            return Err(libc::EBADF);
        }
        let base = fs.base(req.caller, AT_FDCWD, &path)?;
        let flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
        let fd = fs.open_from(&base, &path, flags, 0)?;
        set_cwd(fs, req.caller, fd)
    })();
    Outcome::from(r)
}

/// `[fd]`.
fn fchdir(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let dir = ofd.dir_fd().ok_or(libc::ENOTDIR)?;
        let fd = sys::openat(
            dir,
            c".",
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            0,
        )?;
        set_cwd(fs, req.caller, fd)
    })();
    Outcome::from(r)
}

/// `[buf, size]`: returns the length including the NUL.
fn getcwd(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let p = fs.procs.get(&req.caller).ok_or(libc::EBADF)?;
        let cwd = p.fs.borrow().cwd.clone();
        let st = sys::fstatat_raw(cwd.as_fd(), sys::empty(), libc::AT_EMPTY_PATH)?;
        if sys::stat_nlink(&st) == 0 {
            return Err(libc::ENOENT);
        }
        let mut path = fs.dc_path_of(cwd.as_fd()).ok_or(libc::ENOENT)?;
        path.push(0);
        if (req.args[1] as usize) < path.len() {
            return Err(libc::ERANGE);
        }
        ctx.copy_out(req.sender, req.args[0], &path)?;
        Ok(path.len() as i64)
    })();
    Outcome::from(r)
}

/// The name calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsMkdirat, mkdirat as Handler<Fs>),
        (Call::FsMknodat, mknodat),
        (Call::FsUnlinkat, unlinkat),
        (Call::FsRenameat2, renameat2),
        (Call::FsLinkat, linkat),
        (Call::FsSymlinkat, symlinkat),
        (Call::FsReadlinkat, readlinkat),
        (Call::FsGetdents64, getdents64),
        (Call::FsChdir, chdir),
        (Call::FsFchdir, fchdir),
        (Call::FsGetcwd, getcwd),
    ]
}
