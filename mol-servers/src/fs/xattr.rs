//! Extended attributes: `getxattr`, `setxattr`, `listxattr`,
//! `removexattr`, each in its path, `l` (no final symlink followed) and
//! `f` (descriptor) forms.
//!
//! A path is resolved inside the root as for the metadata calls, and the
//! host call then names the resolved object through `/proc/self/fd/N`
//! (an `O_PATH` descriptor cannot be given to `f*xattr`); a descriptor's
//! own host file is used as it is, so that the kernel's checks (an
//! `O_PATH` descriptor is `EBADF`) stay Linux's.

use super::meta::Target;
use super::sys::{self, XattrOn};
use super::table::Kind;
use super::Fs;
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use std::ffi::CString;

/// The largest attribute value (and name list) Linux handles
/// (`XATTR_SIZE_MAX`).
const SIZE_MAX: usize = 65536;

/// The `AT_*` bits of the flags word (its high half is `setxattr`'s).
const AT_FLAGS: i32 = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;

/// The path and the attribute name a request names: `len` bytes at
/// `args[1]`, the path, a NUL, the name (no name for `listxattr`).
fn names(ctx: &Ctx, req: &Request, with_name: bool) -> Result<(Vec<u8>, Option<CString>), i32> {
    let len = req.args[2] as usize;
    if len > abi::PATH_MAX + 1 + 256 {
        return Err(libc::ENAMETOOLONG);
    }
    let raw = if len == 0 {
        Vec::new()
    } else {
        ctx.copy_in(req.sender, req.args[1], len)?
    };
    let (path, name) = match raw.iter().position(|&b| b == 0) {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (&raw[..], None),
    };
    if path.len() > abi::PATH_MAX {
        return Err(libc::ENAMETOOLONG);
    }
    let name = match (with_name, name) {
        (true, Some(n)) => Some(sys::cstr(n)?),
        (false, None) => None,
        _ => return Err(libc::EINVAL),
    };
    let path = super::path::for_caller(ctx, req, path.to_vec());
    Ok((path, name))
}

/// Runs `op` on what the request names; `anon` is the result on a
/// descriptor without a host file (a pipe, a socket, an epoll set).
fn on_target<T>(
    fs: &Fs,
    req: &Request,
    path: &[u8],
    anon: Result<T, i32>,
    op: impl FnOnce(XattrOn<'_>) -> Result<T, i32>,
) -> Result<T, i32> {
    let t = fs.meta_target(req.caller, req.i32(0), path, req.i32(3) & AT_FLAGS)?;
    match &t {
        Target::Desc(o) => match (&o.kind, o.host_fd()) {
            (Kind::Path { .. }, _) => Err(libc::EBADF),
            (_, Some(fd)) => op(XattrOn::Fd(fd)),
            (_, None) => anon,
        },
        _ => {
            let p = sys::proc_fd_path(t.fd().ok_or(libc::EBADF)?);
            op(XattrOn::Path(&p))
        }
    }
}

/// What Linux answers for attribute `name` of a pipe or an anonymous
/// file: user attributes exist only on regular files and directories
/// (none to read, `EPERM` to write); no other namespace is served.
fn anon(name: &CString, write: bool) -> i32 {
    match (name.as_bytes().starts_with(b"user."), write) {
        (true, false) => libc::ENODATA,
        (true, true) => libc::EPERM,
        (false, _) => libc::EOPNOTSUPP,
    }
}

/// An output buffer for a value or list of `size` bytes (none for 0,
/// which asks for the size).
fn out_buf(size: u64) -> Vec<u8> {
    vec![0u8; (size as usize).min(SIZE_MAX)]
}

/// `[dirfd, names, len, flags, value, size]`.
fn getxattr(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (path, name) = names(ctx, req, true)?;
        let name = name.ok_or(libc::EINVAL)?;
        let mut buf = out_buf(req.args[5]);
        let n = on_target(fs, req, &path, Err(anon(&name, false)), |on| {
            sys::getxattr(on, &name, &mut buf)
        })?;
        if !buf.is_empty() {
            ctx.copy_out(req.sender, req.args[4], &buf[..n])?;
        }
        Ok(n as i64)
    })();
    Outcome::from(r)
}

/// `[dirfd, names, len, flags | XATTR_* << 32, value, size]`.
fn setxattr(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (path, name) = names(ctx, req, true)?;
        let name = name.ok_or(libc::EINVAL)?;
        let size = req.args[5] as usize;
        if size > SIZE_MAX {
            return Err(libc::E2BIG);
        }
        let value = if size == 0 {
            Vec::new()
        } else {
            ctx.copy_in(req.sender, req.args[4], size)?
        };
        let flags = (req.args[3] >> 32) as i32;
        on_target(fs, req, &path, Err(anon(&name, true)), |on| {
            sys::setxattr(on, &name, &value, flags)
        })?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[dirfd, path, len, flags, list, size]`.
fn listxattr(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (path, _) = names(ctx, req, false)?;
        let mut buf = out_buf(req.args[5]);
        let n = on_target(fs, req, &path, Ok(0), |on| sys::listxattr(on, &mut buf))?;
        if !buf.is_empty() {
            ctx.copy_out(req.sender, req.args[4], &buf[..n])?;
        }
        Ok(n as i64)
    })();
    Outcome::from(r)
}

/// `[dirfd, names, len, flags]`.
fn removexattr(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (path, name) = names(ctx, req, true)?;
        let name = name.ok_or(libc::EINVAL)?;
        on_target(fs, req, &path, Err(anon(&name, true)), |on| {
            sys::removexattr(on, &name)
        })?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// The extended-attribute calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsGetxattr, getxattr as Handler<Fs>),
        (Call::FsSetxattr, setxattr),
        (Call::FsListxattr, listxattr),
        (Call::FsRemovexattr, removexattr),
    ]
}
