//! `eventfd`: a counter descriptor for wake-ups (libuv, GLib and many
//! event loops use one).
//!
//! FS creates a host eventfd and installs it as a host stream: `read` and
//! `write` of its 8-byte counter, `poll`/`select`/`epoll` readiness, a
//! read that waits for a non-zero counter (deferred, as for any host
//! stream) and the `EFD_SEMAPHORE` semantics are the host kernel's.

use super::table::Ofd;
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};

/// `[initval, flags]`: a new eventfd.
fn eventfd(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let (init, flags) = (req.args[0] as u32, req.i32(1));
    if flags & !(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    // FS's side never blocks: a read of a zero counter waits as a
    // deferred call unless the program asked for EFD_NONBLOCK.
    let host_flags = libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | (flags & libc::EFD_SEMAPHORE);
    // SAFETY: eventfd with integer arguments; `owned` checks the result.
    let fd = match super::sys::owned(unsafe { libc::eventfd(init, host_flags) }) {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    let ofd = Ofd::host_stream(fd, libc::O_RDWR | (flags & libc::EFD_NONBLOCK));
    let r = fs.install(req.caller, ofd, flags & libc::EFD_CLOEXEC != 0);
    Outcome::from(r.map(i64::from))
}

/// The eventfd call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsEventfd, eventfd as Handler<Fs>)]
}
