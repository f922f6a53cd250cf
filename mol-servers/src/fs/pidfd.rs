//! Process descriptors: `pidfd_open` of a DC process.
//!
//! A DC program names processes by DC pid, which means nothing to the
//! host (DC pid 2 is some other host process). `pidfd_open` therefore
//! goes to PM for the process's endpoint and then here: FS opens a host
//! pidfd for the task the DVK has bound as that endpoint, on FS's node,
//! and installs it as a DC descriptor that remembers the DC pid. `poll`,
//! `select` and `epoll` report it readable once the process ends (host
//! readiness, as for any host stream FS holds); `pidfd_send_signal` and
//! `waitid(P_PIDFD)` learn its DC pid here and go to PM as `kill` and
//! `waitid(P_PID)` do. A zombie's pidfd is a copy of the pidfd of a task
//! that has ended (readable at once). A process of another node has no
//! host task here: `EREMOTE`, which the shim reports as unsupported.

use super::table::Ofd;
use super::Fs;
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `[pid, ep, flags, zombie]`: a descriptor for DC process `pid`, bound
/// as `ep` or ended.
fn open(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let (pid, ep, flags) = (req.i32(0), Endpoint(req.i32(1)), req.i32(2));
    if pid <= 0 || flags & !libc::O_NONBLOCK != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let fd = if req.args[3] == 1 {
        dead_pidfd(fs)
    } else {
        live_pidfd(ctx, ep)
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    let ofd = Ofd::pidfd(fd, pid, libc::O_RDWR | (flags & libc::O_NONBLOCK));
    let r = fs.install(req.caller, ofd, true);
    Outcome::from(r.map(i64::from))
}

/// A host pidfd for the task bound as `ep` on this node.
fn live_pidfd(ctx: &Ctx, ep: Endpoint) -> Result<OwnedFd, i32> {
    match ctx.ipc.node_of(ep) {
        // Ended meanwhile (the caller asks PM again).
        None => Err(libc::ESRCH),
        Some(n) if n != ctx.ipc.node() => Err(libc::EREMOTE),
        Some(_) => pidfd_open(ctx.ipc.host_pid(ep)),
    }
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, i32> {
    // SAFETY: pidfd_open with integer arguments; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(super::sys::errno());
    }
    // SAFETY: a new descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A pidfd of a process that has ended, for a DC zombie (readable at
/// once, as a zombie's pidfd is): a copy of the pidfd of a helper task
/// that FS started and reaped once.
fn dead_pidfd(fs: &mut Fs) -> Result<OwnedFd, i32> {
    if fs.dead_pidfd.is_none() {
        fs.dead_pidfd = Some(ended_task()?);
    }
    match &fs.dead_pidfd {
        Some(fd) => fd
            .try_clone()
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EMFILE)),
        None => Err(libc::ESRCH),
    }
}

/// Starts a task that exits at once, reaps it, and returns its pidfd.
fn ended_task() -> Result<OwnedFd, i32> {
    let mut pidfd: libc::c_int = -1;
    // SAFETY: a fork-like clone (no CLONE_VM: the child has a copy of our
    // memory) that reports the child's pidfd in `pidfd`, with no exit
    // signal; the child only makes the exit system call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_PIDFD as libc::c_ulong,
            0usize,
            &mut pidfd as *mut libc::c_int,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: the child ends at once.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
    if pid < 0 {
        return Err(super::sys::errno());
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that we now own.
    let fd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child through its pidfd (`__WALL`: it
    // has no exit signal); `info` is a valid siginfo.
    unsafe {
        libc::waitid(
            libc::P_PIDFD,
            fd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::__WALL,
        )
    };
    Ok(fd)
}

/// `[fd]`: the DC pid of the process pidfd `fd`.
fn pid(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = fs
        .ofd(req.caller, req.i32(0))
        .and_then(|o| match o.pidfd_of {
            0 => Err(libc::EBADF),
            pid => Ok(i64::from(pid)),
        });
    Outcome::from(r)
}

/// The process-descriptor calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsPidfdOpen, open as Handler<Fs>),
        (Call::FsPidfdPid, pid),
    ]
}
