//! `eventfd`: a counter descriptor for wake-ups (libuv, GLib and many
//! event loops use one).
//!
//! FS creates a host eventfd and installs it as a host stream: `read` and
//! `write` of its 8-byte counter, `poll`/`select`/`epoll` readiness, a
//! read that waits for a non-zero counter (deferred, as for any host
//! stream) and the `EFD_SEMAPHORE` semantics are the host kernel's.

use super::table::{FdEntry, Kind, Ofd};
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;

/// `[initval, flags]`: a new eventfd.
fn eventfd(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let (init, flags) = (req.args[0] as u32, req.i32(1));
    if flags & !(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    // FS's side never blocks: a read of a zero counter waits as a
    // deferred call unless the program asked for EFD_NONBLOCK.
    let host_flags = libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | (flags & libc::EFD_SEMAPHORE);
    // SAFETY: eventfd with integer arguments; the result is checked.
    let fd = unsafe { libc::eventfd(init, host_flags) };
    if fd < 0 {
        return Outcome::err(super::sys::errno());
    }
    // SAFETY: a new descriptor the kernel gave us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ofd = Ofd::new(
        Kind::Stream {
            fd: Arc::new(fd),
            console: false,
            plain: false,
        },
        libc::O_RDWR | (flags & libc::EFD_NONBLOCK),
    );
    let cloexec = flags & libc::EFD_CLOEXEC != 0;
    let r = fs
        .procs
        .get(&req.caller)
        .ok_or(libc::EBADF)
        .and_then(|p| p.files.borrow_mut().alloc(0, FdEntry::new(ofd, cloexec)));
    Outcome::from(r.map(i64::from))
}

/// The eventfd call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsEventfd, eventfd as Handler<Fs>)]
}
