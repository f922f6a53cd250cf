//! `inotify`: watching files and directories for changes (`tail -f`,
//! build tools and file managers use it).
//!
//! FS creates a host inotify instance and installs it as a host stream:
//! reading events (a read waits, deferred, for the next one), readiness
//! and the event format are the host kernel's. `inotify_add_watch` names
//! a DC path: FS resolves it inside the DC root, as for any path, and
//! watches the file it found through its own descriptor link, so the
//! watch is on exactly that file. Event names are relative to the watched
//! directory, so they need no translation.

use super::table::Ofd;
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::AsRawFd;

/// `[flags]`: a new inotify instance.
fn init(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(0);
    if flags & !(libc::IN_CLOEXEC | libc::IN_NONBLOCK) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    // FS's side never blocks; the program's IN_NONBLOCK is its flag.
    // SAFETY: inotify_init1 with integer flags; `owned` checks it.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    let r = super::sys::owned(fd).and_then(|fd| {
        let ofd = Ofd::host_stream(fd, libc::O_RDONLY | (flags & libc::IN_NONBLOCK));
        fs.install(req.caller, ofd, flags & libc::IN_CLOEXEC != 0)
    });
    Outcome::from(r.map(i64::from))
}

/// `[fd, path, len, mask]`: watches what a DC path names.
fn add_watch(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let host = ofd.host_fd().ok_or(libc::EINVAL)?;
        let path = super::path::dc_path(ctx, req, 1)?;
        let mask = req.args[3] as u32;
        let target = fs.target(
            req.caller,
            libc::AT_FDCWD,
            &path,
            mask & libc::IN_DONT_FOLLOW == 0,
        )?;
        // The link to FS's descriptor of the target: the watch is on that
        // very file (a symlink itself with IN_DONT_FOLLOW).
        let link = super::sys::proc_fd_path(std::os::fd::AsFd::as_fd(&target));
        // SAFETY: a valid C string; the kernel checks the rest.
        let wd = unsafe {
            libc::inotify_add_watch(
                host.as_raw_fd(),
                link.as_ptr(),
                mask & !libc::IN_DONT_FOLLOW,
            )
        };
        super::sys::check(wd).map(i64::from)
    })();
    Outcome::from(r)
}

/// `[fd, wd]`: removes a watch.
fn rm_watch(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let host = ofd.host_fd().ok_or(libc::EINVAL)?;
        // SAFETY: integer arguments.
        super::sys::check(unsafe { libc::inotify_rm_watch(host.as_raw_fd(), req.i32(1)) })
            .map(|_| 0)
    })();
    Outcome::from(r)
}

/// The inotify calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsInotifyInit, init as Handler<Fs>),
        (Call::FsInotifyAddWatch, add_watch),
        (Call::FsInotifyRmWatch, rm_watch),
    ]
}
