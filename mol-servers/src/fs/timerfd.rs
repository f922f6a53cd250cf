//! `timerfd`: timers read as descriptors (event loops that keep their
//! timers in the kernel use them).
//!
//! FS creates a host timerfd and installs it as a host stream, as it does
//! an eventfd: reads of the expiration count (a read waits, deferred, for
//! the next expiry), readiness and the clocks are the host kernel's.
//! `timerfd_settime` and `timerfd_gettime` name the DC descriptor; FS
//! applies them to its host timer.

use super::table::Ofd;
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::AsRawFd;

/// `struct itimerspec`: two timespecs.
const ITIMERSPEC: usize = 32;

/// `[clockid, flags]`: a new timerfd.
fn create(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let (clock, flags) = (req.i32(0), req.i32(1));
    if flags & !(libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    // FS's side never blocks; the program's TFD_NONBLOCK is its flag.
    // SAFETY: timerfd_create with integer arguments; `owned` checks it.
    let fd = unsafe { libc::timerfd_create(clock, libc::TFD_CLOEXEC | libc::TFD_NONBLOCK) };
    let fd = match super::sys::owned(fd) {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    let ofd = Ofd::host_stream(fd, libc::O_RDWR | (flags & libc::TFD_NONBLOCK));
    let r = fs.install(req.caller, ofd, flags & libc::TFD_CLOEXEC != 0);
    Outcome::from(r.map(i64::from))
}

/// `[fd, flags, new, old]`: `timerfd_settime`.
fn settime(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let host = ofd.host_fd().ok_or(libc::EINVAL)?;
        let mut new = [0u8; ITIMERSPEC];
        ctx.copy_in_to(req.sender, req.args[2], &mut new)?;
        let mut old = [0u8; ITIMERSPEC];
        // SAFETY: both buffers are itimerspec-sized; the kernel checks
        // that `host` is a timerfd and the values.
        let r = unsafe {
            libc::timerfd_settime(
                host.as_raw_fd(),
                req.i32(1),
                new.as_ptr() as *const libc::itimerspec,
                old.as_mut_ptr() as *mut libc::itimerspec,
            )
        };
        super::sys::check(r)?;
        if req.args[3] != 0 {
            ctx.copy_out(req.sender, req.args[3], &old)?;
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, cur]`: `timerfd_gettime`.
fn gettime(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let host = ofd.host_fd().ok_or(libc::EINVAL)?;
        let mut cur = [0u8; ITIMERSPEC];
        // SAFETY: an itimerspec-sized buffer; the kernel checks `host`.
        let r = unsafe {
            libc::timerfd_gettime(host.as_raw_fd(), cur.as_mut_ptr() as *mut libc::itimerspec)
        };
        super::sys::check(r)?;
        ctx.copy_out(req.sender, req.args[1], &cur)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// The timerfd calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsTimerfdCreate, create as Handler<Fs>),
        (Call::FsTimerfdSettime, settime),
        (Call::FsTimerfdGettime, gettime),
    ]
}
