//! FS pipes: `pipe2`, and the read/write attempts that the I/O handlers
//! and the deferred-operation retries share.
//!
//! A pipe is a 64 KiB byte queue inside FS. Reads on an empty pipe with
//! writers, and writes that do not fit, are deferred (the caller stays in
//! `sendrec`); every change of a pipe's contents or of its reader/writer
//! counts makes the server retry its deferred operations in arrival order.

use super::io::{Attempt, Iov};
use super::table::{FdEntry, Kind, Ofd};
use super::{sys, Fs};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Capacity of a pipe in bytes.
pub const PIPE_CAPACITY: usize = 65536;
/// Largest capacity `F_SETPIPE_SZ` accepts (Linux's default pipe-max-size).
pub const PIPE_MAX_CAPACITY: usize = 1 << 20;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;

/// The shared state of one pipe.
pub struct Pipe {
    /// Buffered bytes.
    pub buf: VecDeque<u8>,
    /// Open read-end descriptions.
    pub readers: usize,
    /// Open write-end descriptions.
    pub writers: usize,
    /// Inode number shown by `fstat`.
    pub ino: u64,
    /// Creation time (seconds, nanoseconds) shown by `fstat`.
    pub ctime: (i64, i64),
    /// Capacity in bytes (`F_SETPIPE_SZ`).
    pub cap: usize,
}

impl Pipe {
    /// Bytes that can be written without blocking.
    pub fn free(&self) -> usize {
        self.cap.saturating_sub(self.buf.len())
    }

    /// A `struct stat` for the pipe (what Linux shows for pipefs).
    pub fn stat(&self) -> [u8; sys::STAT_SIZE] {
        let mut st = [0u8; sys::STAT_SIZE];
        let (uid, gid) = sys::ids();
        let put = |st: &mut [u8; sys::STAT_SIZE], off: usize, b: &[u8]| {
            st[off..off + b.len()].copy_from_slice(b);
        };
        put(&mut st, 0, &PIPE_DEV.to_ne_bytes());
        put(&mut st, 8, &self.ino.to_ne_bytes());
        put(&mut st, 16, &1u64.to_ne_bytes());
        put(&mut st, 24, &(libc::S_IFIFO | 0o600).to_ne_bytes());
        put(&mut st, 28, &uid.to_ne_bytes());
        put(&mut st, 32, &gid.to_ne_bytes());
        put(&mut st, 56, &(PIPE_BUF as i64).to_ne_bytes());
        for off in [72, 88, 104] {
            put(&mut st, off, &self.ctime.0.to_ne_bytes());
            put(&mut st, off + 8, &self.ctime.1.to_ne_bytes());
        }
        st
    }

    /// A `struct statx` for the pipe.
    pub fn statx(&self) -> [u8; sys::STATX_SIZE] {
        let mut sx = [0u8; sys::STATX_SIZE];
        let (uid, gid) = sys::ids();
        let put = |sx: &mut [u8; sys::STATX_SIZE], off: usize, b: &[u8]| {
            sx[off..off + b.len()].copy_from_slice(b);
        };
        put(&mut sx, 0, &libc::STATX_BASIC_STATS.to_ne_bytes());
        put(&mut sx, 4, &(PIPE_BUF as u32).to_ne_bytes());
        put(&mut sx, 16, &1u32.to_ne_bytes());
        put(&mut sx, 20, &uid.to_ne_bytes());
        put(&mut sx, 24, &gid.to_ne_bytes());
        put(&mut sx, 28, &((libc::S_IFIFO | 0o600) as u16).to_ne_bytes());
        put(&mut sx, 32, &self.ino.to_ne_bytes());
        for off in [64, 96, 112] {
            put(&mut sx, off, &self.ctime.0.to_ne_bytes());
            put(&mut sx, off + 8, &(self.ctime.1 as u32).to_ne_bytes());
        }
        put(&mut sx, 140, &(PIPE_DEV as u32).to_ne_bytes());
        sx
    }
}

/// The device number FS pipes show (an anonymous minor).
const PIPE_DEV: u64 = 0x0f;

/// Tries to read from a pipe into `iov`.
pub fn read(ctx: &Ctx, to: Endpoint, pipe: &RefCell<Pipe>, nonblock: bool, iov: &Iov) -> Attempt {
    let mut p = pipe.borrow_mut();
    if iov.total == 0 {
        return Attempt::Done(Ok(0));
    }
    if p.buf.is_empty() {
        return if p.writers == 0 {
            Attempt::Done(Ok(0))
        } else if nonblock {
            Attempt::Done(Err(libc::EAGAIN))
        } else {
            Attempt::Blocked { progressed: false }
        };
    }
    let n = iov.total.min(p.buf.len());
    let (a, b) = p.buf.as_slices();
    let na = n.min(a.len());
    let r = iov
        .copy_out(ctx, to, 0, &a[..na])
        .and_then(|_| iov.copy_out(ctx, to, na, &b[..n - na]));
    if let Err(e) = r {
        return Attempt::Done(Err(e));
    }
    p.buf.drain(..n);
    Attempt::Done(Ok(n as i64))
}

/// Tries to write `iov[done..]` into a pipe; `done` advances with what
/// was written.
pub fn write(
    ctx: &Ctx,
    from: Endpoint,
    pipe: &RefCell<Pipe>,
    nonblock: bool,
    iov: &Iov,
    done: &mut usize,
) -> Attempt {
    let mut p = pipe.borrow_mut();
    let total = iov.total;
    if total == 0 {
        return Attempt::Done(Ok(0));
    }
    let partial = |done: usize, e: i32| {
        if done > 0 {
            Attempt::Done(Ok(done as i64))
        } else {
            Attempt::Done(Err(e))
        }
    };
    if p.readers == 0 {
        return partial(*done, libc::EPIPE);
    }
    let remaining = total - *done;
    let free = p.free();
    let n = if total <= PIPE_BUF {
        // Atomic: all or nothing.
        if free < remaining {
            return if nonblock {
                Attempt::Done(Err(libc::EAGAIN))
            } else {
                Attempt::Blocked { progressed: false }
            };
        }
        remaining
    } else {
        if free == 0 {
            return if nonblock {
                partial(*done, libc::EAGAIN)
            } else {
                Attempt::Blocked { progressed: false }
            };
        }
        remaining.min(free)
    };
    let mut chunk = vec![0u8; n];
    if let Err(e) = iov.copy_in(ctx, from, *done, &mut chunk) {
        return partial(*done, e);
    }
    p.buf.extend(chunk);
    *done += n;
    if *done == total {
        Attempt::Done(Ok(total as i64))
    } else if nonblock {
        Attempt::Done(Ok(*done as i64))
    } else {
        Attempt::Blocked { progressed: true }
    }
}

fn now() -> (i64, i64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

/// `pipe2(flags)`: returns the read end, `words[1]` the write end.
fn pipe2(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(0);
    if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let Some(proc) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    fs.next_ino += 1;
    let pipe = Rc::new(RefCell::new(Pipe {
        buf: VecDeque::new(),
        readers: 0,
        writers: 0,
        ino: fs.next_ino,
        ctime: now(),
        cap: PIPE_CAPACITY,
    }));
    let status = flags & (libc::O_NONBLOCK | libc::O_DIRECT);
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let r = Ofd::new(Kind::PipeRead(pipe.clone()), libc::O_RDONLY | status);
    let w = Ofd::new(Kind::PipeWrite(pipe), libc::O_WRONLY | status);
    let mut t = proc.files.borrow_mut();
    let rfd = match t.alloc(0, FdEntry::new(r, cloexec)) {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    match t.alloc(0, FdEntry::new(w, cloexec)) {
        Ok(wfd) => {
            let mut m = crate::abi::ok(rfd as i64);
            m.words_mut()[1] = wfd as u64;
            Outcome::Reply(m)
        }
        Err(e) => {
            let _ = t.remove(rfd);
            Outcome::err(e)
        }
    }
}

/// The pipe calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsPipe2, pipe2 as Handler<Fs>)]
}
