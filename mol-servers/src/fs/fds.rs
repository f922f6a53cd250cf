//! Descriptor calls: `dup`, `dup3` (and `dup2`), `fcntl`.
//!
//! Record locks are taken on FS's host descriptor as *open file
//! description* locks (`F_OFD_*`): every DC process's files are open in
//! the one FS process, where classic POSIX locks (owned by the process)
//! would never conflict. A lock belongs to the description shared by
//! `dup` and `fork` and is released when its last descriptor closes.
//! `F_SETLKW` on a held lock is deferred and retried whenever a lock
//! changes in FS, and every [`LOCK_RETRY`] for locks held by host
//! processes (which give no event).

use super::table::{FdEntry, Kind, Ofd, MAX_FDS};
use super::{sys, Fs, Op, Waiter};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How often a waiting `F_SETLKW` is retried.
pub const LOCK_RETRY: Duration = Duration::from_millis(20);

/// Status flags `F_SETFL` may change.
const SETFL_MASK: i32 =
    libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;

/// Size of `struct flock` on x86-64.
const FLOCK_SIZE: usize = 32;

/// Tries to take the lock `fl` on `ofd`: `Ok(false)` if it is held.
pub fn try_lock(ofd: &Ofd, fl: &mut libc::flock) -> Result<bool, i32> {
    let fd = ofd.host_fd().ok_or(libc::EINVAL)?;
    match sys::fcntl_lock(fd, libc::F_OFD_SETLK, fl) {
        Ok(_) => Ok(true),
        Err(libc::EAGAIN) | Err(libc::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

fn flock_from(raw: &[u8]) -> libc::flock {
    let i16_at = |o: usize| i16::from_ne_bytes([raw[o], raw[o + 1]]);
    let i64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[o..o + 8]);
        i64::from_ne_bytes(b)
    };
    libc::flock {
        l_type: i16_at(0),
        l_whence: i16_at(2),
        l_start: i64_at(8),
        l_len: i64_at(16),
        // OFD lock calls require 0.
        l_pid: 0,
    }
}

fn flock_bytes(fl: &libc::flock) -> [u8; FLOCK_SIZE] {
    let mut b = [0u8; FLOCK_SIZE];
    b[0..2].copy_from_slice(&fl.l_type.to_ne_bytes());
    b[2..4].copy_from_slice(&fl.l_whence.to_ne_bytes());
    b[8..16].copy_from_slice(&fl.l_start.to_ne_bytes());
    b[16..24].copy_from_slice(&fl.l_len.to_ne_bytes());
    b[24..28].copy_from_slice(&fl.l_pid.to_ne_bytes());
    b
}

/// `[fd]`: the lowest free descriptor.
fn dup(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let mut t = p.files.borrow_mut();
    let r = match t.get(req.i32(0)) {
        Ok(e) => {
            let e = FdEntry::new(e.ofd.clone(), false);
            t.alloc(0, e)
        }
        Err(e) => Err(e),
    };
    Outcome::from(r.map(i64::from))
}

/// `[oldfd, newfd, flags]` (`flags` bit 31: `dup2`).
fn dup3(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let is_dup2 = req.args[2] & abi::DUP2 != 0;
    let flags = (req.args[2] & !abi::DUP2) as i64 as i32;
    if flags & !libc::O_CLOEXEC != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let (old, new) = (req.i32(0), req.i32(1));
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let replaced = {
        let mut t = p.files.borrow_mut();
        let ofd = match t.get(old) {
            Ok(e) => e.ofd.clone(),
            Err(e) => return Outcome::err(e),
        };
        if old == new {
            return if is_dup2 {
                Outcome::ok(new as i64)
            } else {
                Outcome::err(libc::EINVAL)
            };
        }
        match t.place(new, FdEntry::new(ofd, flags & libc::O_CLOEXEC != 0)) {
            Ok(r) => r,
            Err(e) => return Outcome::err(e),
        }
    };
    if replaced.is_some() {
        drop(replaced);
        fs.settle(ctx, false);
    }
    Outcome::ok(new as i64)
}

/// `[fd, cmd, arg]`.
fn fcntl(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let fd = req.i32(0);
    let cmd = req.i32(1);
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let files = p.files.clone();
    let mut t = files.borrow_mut();
    let entry = match t.get_mut(fd) {
        Ok(e) => e,
        Err(e) => return Outcome::err(e),
    };
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let min = req.int(2);
            if !(0..MAX_FDS as i64).contains(&min) {
                return Outcome::err(libc::EINVAL);
            }
            let e = FdEntry::new(entry.ofd.clone(), cmd == libc::F_DUPFD_CLOEXEC);
            Outcome::from(t.alloc(min as usize, e).map(i64::from))
        }
        libc::F_GETFD => Outcome::ok(if entry.cloexec {
            libc::FD_CLOEXEC as i64
        } else {
            0
        }),
        libc::F_SETFD => {
            entry.cloexec = req.i32(2) & libc::FD_CLOEXEC != 0;
            Outcome::ok(0)
        }
        libc::F_GETFL => Outcome::ok(entry.ofd.flags.get() as i64),
        libc::F_SETFL => {
            let ofd = entry.ofd.clone();
            drop(t);
            Outcome::from(setfl(&ofd, req.i32(2)))
        }
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => {
            let ofd = entry.ofd.clone();
            drop(t);
            lock(fs, ctx, req, ofd, cmd)
        }
        super::dnotify::F_NOTIFY => {
            let ofd = entry.ofd.clone();
            drop(t);
            let r = fs.dnotify(req.caller, &ofd, req.int(2));
            fs.settle(ctx, false);
            Outcome::from(r)
        }
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ => {
            let (Kind::PipeRead(p) | Kind::PipeWrite(p)) = &entry.ofd.kind else {
                return Outcome::err(libc::EBADF);
            };
            let mut p = p.borrow_mut();
            if cmd == libc::F_SETPIPE_SZ {
                let want = req.int(2);
                if want < 0 || want as usize > super::pipe::PIPE_MAX_CAPACITY {
                    return Outcome::err(libc::EINVAL);
                }
                // Linux rounds up to a power-of-two number of pages.
                let size = (want as usize).max(4096).next_power_of_two();
                if size < p.buf.len() {
                    return Outcome::err(libc::EBUSY);
                }
                p.cap = size;
            }
            let cap = p.cap as i64;
            drop(p);
            drop(t);
            fs.settle(ctx, false);
            Outcome::ok(cap)
        }
        _ => Outcome::err(libc::EINVAL),
    }
}

/// `[first, last, flags]`: `close_range`.
fn close_range(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let (first, last, flags) = (req.args[0] as u32, req.args[1] as u32, req.args[2] as u32);
    if first > last || flags & !(libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let files = p.files.clone();
    let mut gone = Vec::new();
    {
        let mut t = files.borrow_mut();
        // Only as far as the table goes (`close_range(3, ~0U)` is common).
        let span = u32::try_from(t.span()).unwrap_or(u32::MAX);
        for fd in first..span.min(last.saturating_add(1)) {
            if flags & libc::CLOSE_RANGE_CLOEXEC != 0 {
                if let Ok(e) = t.get_mut(fd as i32) {
                    e.cloexec = true;
                }
            } else if let Ok(e) = t.remove(fd as i32) {
                gone.push(e);
            }
        }
    }
    drop(gone);
    fs.settle(ctx, false);
    Outcome::ok(0)
}

/// `[fd, operation]`: `flock` on the host file. FS never waits on the
/// host, so a lock held elsewhere gives `EWOULDBLOCK` even without
/// `LOCK_NB` (waiting for it is not served yet).
fn flock(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = fs.ofd(req.caller, req.i32(0))?;
        let fd = ofd.host_fd().ok_or(libc::EINVAL)?;
        sys::flock(fd, req.i32(1) & !libc::LOCK_NB)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `F_SETFL`: the DC flags, mirrored on FS's own host descriptions.
pub(super) fn setfl(ofd: &Ofd, arg: i32) -> Result<i64, i32> {
    let new = (ofd.flags.get() & !SETFL_MASK) | (arg & SETFL_MASK);
    match &ofd.kind {
        Kind::Path { .. } => return Err(libc::EBADF),
        Kind::File { fd, .. } => {
            sys::fcntl_int(fd.as_fd(), libc::F_SETFL, new & SETFL_MASK)?;
        }
        Kind::Stream {
            fd, console: false, ..
        } => {
            // Never blocking on the host side.
            sys::fcntl_int(
                fd.as_fd(),
                libc::F_SETFL,
                (new & SETFL_MASK) | libc::O_NONBLOCK,
            )?;
        }
        // The console's host flags belong to the user's shell.
        Kind::Stream { console: true, .. }
        | Kind::PipeRead(_)
        | Kind::PipeWrite(_)
        | Kind::Epoll(_)
        | Kind::Listing(_)
        | Kind::Socket(_) => {}
    }
    ofd.flags.set(new);
    Ok(0)
}

/// The record-lock commands.
fn lock(fs: &mut Fs, ctx: &Ctx, req: &Request, ofd: std::rc::Rc<Ofd>, cmd: i32) -> Outcome {
    let hostfd = match &ofd.kind {
        Kind::File { fd, .. } => fd.as_fd(),
        Kind::Stream { fd, .. } => fd.as_fd(),
        Kind::Path { .. } => return Outcome::err(libc::EBADF),
        Kind::PipeRead(_)
        | Kind::PipeWrite(_)
        | Kind::Epoll(_)
        | Kind::Socket(_)
        | Kind::Listing(_) => return Outcome::err(libc::EINVAL),
    };
    let raw = match ctx.copy_in(req.sender, req.args[2], FLOCK_SIZE) {
        Ok(r) => r,
        Err(e) => return Outcome::err(e),
    };
    let mut fl = flock_from(&raw);
    match cmd {
        libc::F_GETLK | libc::F_OFD_GETLK => {
            if let Err(e) = sys::fcntl_lock(hostfd, libc::F_OFD_GETLK, &mut fl) {
                return Outcome::err(e);
            }
            Outcome::from(
                ctx.copy_out(req.sender, req.args[2], &flock_bytes(&fl))
                    .map(|_| 0),
            )
        }
        libc::F_SETLK | libc::F_OFD_SETLK => {
            let r = sys::fcntl_lock(hostfd, libc::F_OFD_SETLK, &mut fl);
            if r.is_ok() {
                // Someone may wait for what was released.
                fs.settle(ctx, false);
            }
            Outcome::from(r.map(|_| 0))
        }
        _ => match try_lock(&ofd, &mut fl) {
            Ok(true) => {
                fs.settle(ctx, false);
                Outcome::ok(0)
            }
            Ok(false) => {
                fs.defer(
                    ctx,
                    Waiter {
                        sender: req.sender,
                        caller: req.caller,
                        op: Op::Lock {
                            ofd: ofd.clone(),
                            fl,
                            next: Instant::now() + LOCK_RETRY,
                        },
                    },
                );
                Outcome::Deferred
            }
            Err(e) => Outcome::err(e),
        },
    }
}

/// The descriptor calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsDup, dup as Handler<Fs>),
        (Call::FsDup3, dup3),
        (Call::FsFcntl, fcntl),
        (Call::FsCloseRange, close_range),
        (Call::FsFlock, flock),
    ]
}
