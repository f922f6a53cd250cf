//! Data channels: a pipe per client thread through which FS hands over the
//! bytes of a stream read (an INET socket, a host FIFO) without copying
//! them itself.
//!
//! A read served the usual way costs two copies: the host socket into a
//! buffer of FS, then that buffer into the caller by `vcopy`. With a
//! channel, FS `splice`s the socket's data into the pipe (the kernel moves
//! page references) and the caller reads the pipe into its own buffer: one
//! copy, as natively. The caller creates the pipe and registers its write
//! end ([`Call::FsChannel`]); FS takes a copy of that descriptor with
//! `pidfd_getfd`, so only callers on FS's node have a channel. The caller
//! keeps only the read end: a process never holds the host socket.
//!
//! The channel is used only when it is empty (the caller read everything
//! FS put there before it asked again) and only for reads whose result
//! says so ([`abi::VIA_CHANNEL`]); anything unusual (a descriptor that
//! cannot splice) falls back to the copy through FS.

use super::Fs;
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::rc::Rc;

/// The write end of a client's channel pipe (FS's copy).
pub type Channel = Rc<OwnedFd>;

/// What one try of a read through a channel gave.
pub enum Spliced {
    /// `n` bytes wait in the channel (0: end of stream).
    Bytes(usize),
    /// Nothing to read now.
    Again,
    /// The channel cannot serve this read: copy through FS instead.
    Unusable,
}

/// Moves at most `max` bytes from host stream `src` into `chan`.
pub fn splice_into(src: BorrowedFd<'_>, chan: &Channel, max: usize) -> Spliced {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, to a local.
    let r = unsafe { libc::ioctl(chan.as_raw_fd(), libc::FIONREAD, &mut queued) };
    if r != 0 || queued != 0 {
        return Spliced::Unusable;
    }
    // SAFETY: plain descriptors, no offsets; FS's host streams are
    // non-blocking and SPLICE_F_NONBLOCK keeps the pipe side from waiting.
    let n = unsafe {
        libc::splice(
            src.as_raw_fd(),
            std::ptr::null_mut(),
            chan.as_raw_fd(),
            std::ptr::null_mut(),
            max,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    };
    if n >= 0 {
        return Spliced::Bytes(n as usize);
    }
    match super::sys::errno() {
        libc::EAGAIN => Spliced::Again,
        _ => Spliced::Unusable,
    }
}

/// `[fd]`: the caller's pipe write end `fd` becomes its channel.
fn register(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    // A privileged server calling on behalf of a process has no channel.
    if req.sender != req.caller {
        return Outcome::err(libc::EINVAL);
    }
    let pid = ctx.ipc.host_pid(req.sender);
    if pid <= 0 {
        // Not bound on this node: no descriptor of it can reach FS.
        return Outcome::err(libc::EXDEV);
    }
    match take_pipe_writer(pid, req.i32(0)) {
        Ok(fd) => {
            fs.channels.insert(req.sender, Rc::new(fd));
            Outcome::ok(0)
        }
        Err(e) => Outcome::err(e),
    }
}

/// A copy of descriptor `fd` of process `pid`, if it is a pipe's write end.
fn take_pipe_writer(pid: i32, fd: i32) -> Result<OwnedFd, i32> {
    // SAFETY: plain syscalls with integer arguments; each new descriptor
    // is owned at once.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(super::sys::errno());
    }
    // SAFETY: the kernel returned a new descriptor that we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let got = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if got < 0 {
        return Err(super::sys::errno());
    }
    // SAFETY: a new descriptor (close-on-exec) that we now own.
    let got = unsafe { OwnedFd::from_raw_fd(got as i32) };
    let mode = super::sys::fmode(got.as_fd())?;
    let fl = super::sys::fcntl_int(got.as_fd(), libc::F_GETFL, 0)?;
    if mode & libc::S_IFMT != libc::S_IFIFO || fl & libc::O_ACCMODE != libc::O_WRONLY {
        return Err(libc::EINVAL);
    }
    Ok(got)
}

/// The data-channel call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsChannel, register as Handler<Fs>)]
}

/// The reply to a read whose `n` bytes are in the caller's channel.
pub fn via_channel(n: usize) -> i64 {
    if n == 0 {
        0
    } else {
        n as i64 | abi::VIA_CHANNEL
    }
}
