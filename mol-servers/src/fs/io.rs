//! `read`, `write`, `pread64`, `pwrite64`, `readv`, `writev` and `lseek`.
//!
//! Files are read and written straight on FS's host descriptor, in chunks
//! of at most the DC's `max_copylen`, moving the data with `vcopy` while
//! the caller waits in `sendrec`. Pipes and host streams (the console,
//! FIFOs) are tried once; when they would block, the operation becomes a
//! deferred [`Op`](super::Op) that the server retries when the pipe
//! changes or the watcher reports readiness. A `read` of a host stream
//! may hand its bytes over through the caller's data channel instead
//! (see `channel`).

use super::channel::{self, Spliced};
use super::table::{Kind, Ofd};
use super::{pipe, sys, unix, Fs, Op, Waiter};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::os::fd::AsRawFd;
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

/// Largest single read or write, as Linux (`MAX_RW_COUNT`).
pub const MAX_RW: usize = 0x7fff_f000;
/// Largest `iovcnt` (`IOV_MAX`).
pub const IOV_MAX: usize = 1024;
/// Largest host read of a stream in one attempt.
const STREAM_CHUNK: usize = 256 * 1024;

thread_local! {
    /// FS's bounce buffer between host descriptors and client memory,
    /// kept between calls (a fresh buffer of this size per call costs an
    /// `mmap`, page faults and zeroing).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with a buffer of `len` bytes (contents unspecified).
pub fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0);
            }
            f(&mut v[..len])
        }
        // In use further up the stack: a buffer of its own.
        Err(_) => f(&mut vec![0u8; len]),
    })
}
/// Most bytes one attempt writes to a host stream before letting other
/// requests in (the watcher resumes it at once if the stream stays ready).
const STREAM_BUDGET: usize = 1024 * 1024;

/// The client buffers of a read or write: `(address, length)` segments.
#[derive(Debug, Clone)]
pub struct Iov {
    /// The segments, in order.
    pub segs: Vec<(u64, usize)>,
    /// Their total length.
    pub total: usize,
    /// The caller's data channel, when a stream read may use it instead
    /// of the segments.
    pub chan: Option<super::channel::Channel>,
}

impl Iov {
    /// One buffer; the length is capped at [`MAX_RW`].
    pub fn single(addr: u64, len: u64) -> Iov {
        let len = usize::try_from(len).unwrap_or(MAX_RW).min(MAX_RW);
        Iov {
            segs: vec![(addr, len)],
            total: len,
            chan: None,
        }
    }

    /// Reads a client `struct iovec` array (`EINVAL` for a bad count or
    /// a total that overflows; the total is then capped at [`MAX_RW`]).
    pub fn from_client(ctx: &Ctx, from: Endpoint, addr: u64, cnt: u64) -> Result<Iov, i32> {
        let cnt = usize::try_from(cnt).map_err(|_| libc::EINVAL)?;
        if cnt > IOV_MAX {
            return Err(libc::EINVAL);
        }
        if cnt == 0 {
            return Ok(Iov {
                segs: Vec::new(),
                total: 0,
                chan: None,
            });
        }
        let raw = ctx.copy_in(from, addr, cnt * 16)?;
        let mut segs = Vec::with_capacity(cnt);
        let mut total: usize = 0;
        for c in raw.chunks_exact(16) {
            let mut b = [0u8; 8];
            b.copy_from_slice(&c[0..8]);
            let base = u64::from_ne_bytes(b);
            b.copy_from_slice(&c[8..16]);
            let len = u64::from_ne_bytes(b);
            if len > isize::MAX as u64 {
                return Err(libc::EINVAL);
            }
            let len = len as usize;
            total = total
                .checked_add(len)
                .filter(|&t| t <= isize::MAX as usize)
                .ok_or(libc::EINVAL)?;
            segs.push((base, len));
        }
        // Linux silently truncates the transfer at MAX_RW_COUNT.
        if total > MAX_RW {
            let mut left = MAX_RW;
            for s in segs.iter_mut() {
                s.1 = s.1.min(left);
                left -= s.1;
            }
            total = MAX_RW;
        }
        Ok(Iov {
            segs,
            total,
            chan: None,
        })
    }

    /// Visits the client ranges covering bytes `[start, start + len)`:
    /// `f(address, offset in that range, length)`.
    fn ranges(
        &self,
        start: usize,
        len: usize,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), i32>,
    ) -> Result<(), i32> {
        let mut pos = 0usize; // offset of the current segment
        let mut done = 0usize;
        for &(base, slen) in &self.segs {
            if done == len {
                break;
            }
            let seg_end = pos + slen;
            let want = start + done;
            if want < seg_end {
                let off = want - pos;
                let n = (slen - off).min(len - done);
                f(base.wrapping_add(off as u64), done, n)?;
                done += n;
            }
            pos = seg_end;
        }
        Ok(())
    }

    /// Copies client bytes `[start, start + buf.len())` into `buf`.
    pub fn copy_in(
        &self,
        ctx: &Ctx,
        from: Endpoint,
        start: usize,
        buf: &mut [u8],
    ) -> Result<(), i32> {
        self.ranges(start, buf.len(), |addr, off, n| {
            ctx.copy_in_to(from, addr, &mut buf[off..off + n])
        })
    }

    /// Copies `data` to client bytes `[start, start + data.len())`.
    pub fn copy_out(&self, ctx: &Ctx, to: Endpoint, start: usize, data: &[u8]) -> Result<(), i32> {
        if data.is_empty() {
            return Ok(());
        }
        self.ranges(start, data.len(), |addr, off, n| {
            ctx.copy_out(to, addr, &data[off..off + n])
        })
    }
}

/// The result of one try of a pipe or stream operation.
pub enum Attempt {
    /// Finished: reply with this.
    Done(Result<i64, i32>),
    /// Would block; `progressed` if some bytes moved on this try.
    Blocked {
        /// Some bytes moved.
        progressed: bool,
    },
}

/// Largest chunk moved per host call and vcopy.
fn chunk_len(ctx: &Ctx) -> usize {
    (ctx.ipc.dc().max_copylen as usize).clamp(4096, 1 << 20)
}

/// The file position `done` bytes after `off` (`EINVAL` on overflow, as
/// Linux for `pos + count`).
fn at(off: i64, done: usize) -> Result<i64, i32> {
    i64::try_from(done)
        .ok()
        .and_then(|d| off.checked_add(d))
        .ok_or(libc::EINVAL)
}

/// Reads a file (host descriptor that does not block) into `iov`.
fn file_read(
    ctx: &Ctx,
    to: Endpoint,
    fd: BorrowedFd<'_>,
    iov: &Iov,
    off: Option<i64>,
) -> Result<i64, i32> {
    if iov.total == 0 {
        // Still let the host check the descriptor's mode.
        return match off {
            Some(o) => sys::pread(fd, &mut [], o),
            None => sys::read(fd, &mut []),
        }
        .map(|n| n as i64);
    }
    with_scratch(chunk_len(ctx).min(iov.total), |buf| {
        let mut done = 0usize;
        while done < iov.total {
            let want = buf.len().min(iov.total - done);
            let r = match off {
                Some(o) => sys::pread(fd, &mut buf[..want], at(o, done)?),
                None => sys::read(fd, &mut buf[..want]),
            };
            let n = match r {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if let Err(e) = iov.copy_out(ctx, to, done, &buf[..n]) {
                // Give the bytes back: the offset must not move past them.
                if off.is_none() && n > 0 {
                    let _ = sys::lseek(fd, -(n as i64), libc::SEEK_CUR);
                }
                return if done > 0 { Ok(done as i64) } else { Err(e) };
            }
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done as i64)
    })
}

/// Writes `iov` to a file.
fn file_write(
    ctx: &Ctx,
    from: Endpoint,
    fd: BorrowedFd<'_>,
    iov: &Iov,
    off: Option<i64>,
) -> Result<i64, i32> {
    if iov.total == 0 {
        return match off {
            Some(o) => sys::pwrite(fd, &[], o),
            None => sys::write(fd, &[]),
        }
        .map(|n| n as i64);
    }
    with_scratch(chunk_len(ctx).min(iov.total), |buf| {
        let mut done = 0usize;
        while done < iov.total {
            let want = buf.len().min(iov.total - done);
            if let Err(e) = iov.copy_in(ctx, from, done, &mut buf[..want]) {
                return if done > 0 { Ok(done as i64) } else { Err(e) };
            }
            let r = match off {
                Some(o) => sys::pwrite(fd, &buf[..want], at(o, done)?),
                None => sys::write(fd, &buf[..want]),
            };
            let n = match r {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done as i64)
    })
}

/// Tries to read a host stream (console, FIFO, character device). With
/// `poll_first` (a blocking host descriptor: the console) the read is only
/// done when `poll` says it will not block.
pub fn stream_read(
    ctx: &Ctx,
    to: Endpoint,
    fd: BorrowedFd<'_>,
    poll_first: bool,
    nonblock: bool,
    iov: &Iov,
) -> Attempt {
    let blocked = || {
        if nonblock {
            Attempt::Done(Err(libc::EAGAIN))
        } else {
            Attempt::Blocked { progressed: false }
        }
    };
    if iov.total == 0 {
        return Attempt::Done(Ok(0));
    }
    // The console's descriptor is blocking (it is the user's): only read
    // when poll says a read will not block.
    if poll_first && sys::poll_now(fd, libc::POLLIN) == 0 {
        return blocked();
    }
    // FS opens FIFOs without waiting for a writer: until one came, the
    // end of the stream is not one yet.
    let no_writer_yet = || !nonblock && fifo_without_writer(fd);
    if let (Some(chan), false) = (&iov.chan, poll_first) {
        match channel::splice_into(fd, chan, iov.total.min(STREAM_CHUNK)) {
            Spliced::Bytes(0) if no_writer_yet() => return blocked(),
            Spliced::Bytes(n) => return Attempt::Done(Ok(channel::via_channel(n))),
            Spliced::Again => return blocked(),
            Spliced::Unusable => {}
        }
    }
    with_scratch(iov.total.min(STREAM_CHUNK), |buf| {
        match sys::read(fd, buf) {
            Ok(0) if no_writer_yet() => blocked(),
            Ok(n) => Attempt::Done(iov.copy_out(ctx, to, 0, &buf[..n]).map(|_| n as i64)),
            Err(libc::EAGAIN) => blocked(),
            Err(e) => Attempt::Done(Err(e)),
        }
    })
}

/// Whether `fd`, which just read the end of its stream, is a FIFO that
/// has had no writer since FS opened it (the kernel raises `POLLHUP` on a
/// FIFO's reader only once a writer came and left).
fn fifo_without_writer(fd: BorrowedFd<'_>) -> bool {
    sys::fmode(fd).is_ok_and(|m| m & libc::S_IFMT == libc::S_IFIFO)
        && sys::poll_now(fd, libc::POLLIN) & (libc::POLLIN | libc::POLLHUP) == 0
}

/// Tries to write `iov[done..]` to a host stream; with `poll_first`, in
/// steps of `PIPE_BUF` each after `poll` said the stream is writable.
pub fn stream_write(
    ctx: &Ctx,
    from: Endpoint,
    fd: BorrowedFd<'_>,
    poll_first: bool,
    nonblock: bool,
    iov: &Iov,
    done: &mut usize,
) -> Attempt {
    let partial = |done: usize, e: i32| {
        if done > 0 {
            Attempt::Done(Ok(done as i64))
        } else {
            Attempt::Done(Err(e))
        }
    };
    if iov.total == 0 {
        return Attempt::Done(Ok(0));
    }
    let start = *done;
    // A blocking console write of at most PIPE_BUF bytes after POLLOUT
    // does not block on a pipe or a terminal.
    let step = if poll_first {
        pipe::PIPE_BUF
    } else {
        STREAM_CHUNK
    };
    with_scratch(step.min(iov.total - *done), |buf| {
        while *done < iov.total {
            if *done - start >= STREAM_BUDGET {
                return Attempt::Blocked { progressed: true };
            }
            if poll_first && sys::poll_now(fd, libc::POLLOUT) == 0 {
                break;
            }
            let n = step.min(iov.total - *done);
            if let Err(e) = iov.copy_in(ctx, from, *done, &mut buf[..n]) {
                return partial(*done, e);
            }
            match sys::write(fd, &buf[..n]) {
                Ok(k) => *done += k,
                Err(libc::EAGAIN) => break,
                Err(e) => return partial(*done, e),
            }
        }
        if *done == iov.total {
            Attempt::Done(Ok(*done as i64))
        } else if nonblock {
            partial(*done, libc::EAGAIN)
        } else {
            Attempt::Blocked {
                progressed: *done > start,
            }
        }
    })
}

/// One try of a read on `ofd` (used first by the handler, then by retries).
pub fn try_read(ctx: &Ctx, to: Endpoint, ofd: &Ofd, iov: &Iov) -> Attempt {
    match &ofd.kind {
        Kind::PipeRead(p) => pipe::read(ctx, to, p, ofd.nonblock(), iov),
        Kind::Stream { fd, console, plain } => stream_read(
            ctx,
            to,
            fd.as_fd(),
            *console && !*plain,
            ofd.nonblock(),
            iov,
        ),
        Kind::File { fd, .. } => Attempt::Done(file_read(ctx, to, fd.as_fd(), iov, None)),
        Kind::Socket(s) => {
            let mut out = unix::RecvOut::default();
            unix::recv(ctx, to, s, ofd.nonblock(), iov, 0, &mut out)
        }
        Kind::PipeWrite(_) | Kind::Path { .. } => Attempt::Done(Err(libc::EBADF)),
        Kind::Epoll(_) => Attempt::Done(Err(libc::EINVAL)),
        Kind::Listing(_) => Attempt::Done(Err(libc::EISDIR)),
    }
}

/// One try of a write on `ofd` for DC process `pid` (the sender of what
/// goes into a socket).
pub fn try_write(
    ctx: &Ctx,
    from: Endpoint,
    pid: i32,
    ofd: &Ofd,
    iov: &Iov,
    done: &mut usize,
) -> Attempt {
    match &ofd.kind {
        Kind::PipeWrite(p) => pipe::write(ctx, from, p, ofd.nonblock(), iov, done),
        Kind::Stream { fd, console, plain } => stream_write(
            ctx,
            from,
            fd.as_fd(),
            *console && !*plain,
            ofd.nonblock(),
            iov,
            done,
        ),
        Kind::File { fd, .. } => Attempt::Done(file_write(ctx, from, fd.as_fd(), iov, None)),
        Kind::Socket(s) => {
            let mut none = Vec::new();
            let cred = unix::Cred::of(pid);
            unix::send(
                ctx,
                from,
                s,
                ofd.nonblock(),
                iov,
                None,
                &mut none,
                done,
                cred,
            )
        }
        Kind::PipeRead(_) | Kind::Path { .. } | Kind::Listing(_) => Attempt::Done(Err(libc::EBADF)),
        Kind::Epoll(_) => Attempt::Done(Err(libc::EINVAL)),
    }
}

/// The host file of a positional (`pread`/`pwrite`) transfer: only
/// regular files have an offset to give.
fn positional(ofd: &Ofd) -> Result<BorrowedFd<'_>, i32> {
    match &ofd.kind {
        Kind::File { fd, .. } => Ok(fd.as_fd()),
        Kind::Path { .. } => Err(libc::EBADF),
        Kind::Listing(_) => Err(libc::EISDIR),
        Kind::PipeRead(_)
        | Kind::PipeWrite(_)
        | Kind::Epoll(_)
        | Kind::Socket(_)
        | Kind::Stream { .. } => Err(libc::ESPIPE),
    }
}

impl Fs {
    /// A read of `iov` from descriptor `fd` at `off` (or the current offset).
    fn do_read(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        fd: i32,
        iov: Iov,
        off: Option<i64>,
    ) -> Outcome {
        let ofd = match self.ofd(req.caller, fd) {
            Ok(o) => o,
            Err(e) => return Outcome::err(e),
        };
        if let Some(o) = off {
            if o < 0 {
                return Outcome::err(libc::EINVAL);
            }
            return Outcome::from(
                positional(&ofd).and_then(|fd| file_read(ctx, req.sender, fd, &iov, Some(o))),
            );
        }
        let r = try_read(ctx, req.sender, &ofd, &iov);
        let pipe = matches!(ofd.kind, Kind::PipeRead(_) | Kind::Socket(_));
        self.finish_io(ctx, req, r, pipe, || Op::Read {
            deadline: super::sockets::deadline(&ofd, libc::SO_RCVTIMEO),
            ofd: ofd.clone(),
            iov,
        })
    }

    /// A write of `iov` to descriptor `fd` at `off` (or the current offset).
    fn do_write(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        fd: i32,
        iov: Iov,
        off: Option<i64>,
    ) -> Outcome {
        let ofd = match self.ofd(req.caller, fd) {
            Ok(o) => o,
            Err(e) => return Outcome::err(e),
        };
        if let Some(o) = off {
            if o < 0 {
                return Outcome::err(libc::EINVAL);
            }
            return Outcome::from(
                positional(&ofd).and_then(|fd| file_write(ctx, req.sender, fd, &iov, Some(o))),
            );
        }
        let mut done = 0;
        let pid = self.sender_pid(&ofd, req.caller);
        let r = try_write(ctx, req.sender, pid, &ofd, &iov, &mut done);
        let pipe = matches!(ofd.kind, Kind::PipeWrite(_) | Kind::Socket(_));
        self.finish_io(ctx, req, r, pipe, || Op::Write {
            deadline: super::sockets::deadline(&ofd, libc::SO_SNDTIMEO),
            ofd: ofd.clone(),
            iov,
            done,
        })
    }

    /// Replies to a first try, or defers it.
    fn finish_io(
        &mut self,
        ctx: &Ctx,
        req: &Request,
        r: Attempt,
        pipe: bool,
        op: impl FnOnce() -> Op,
    ) -> Outcome {
        match r {
            Attempt::Done(r) => {
                if pipe {
                    // The pipe changed: peers may continue.
                    self.settle(ctx, false);
                }
                Outcome::from(r)
            }
            Attempt::Blocked { .. } => {
                // `defer` settles, which also lets peers use the bytes
                // that moved on this try.
                self.defer(
                    ctx,
                    Waiter {
                        sender: req.sender,
                        caller: req.caller,
                        op: op(),
                    },
                );
                Outcome::Deferred
            }
        }
    }

    /// Shared `Rc` of the description of `fd` of `ep`.
    pub(super) fn ofd(&self, ep: Endpoint, fd: i32) -> Result<Rc<Ofd>, i32> {
        let p = self.procs.get(&ep).ok_or(libc::EBADF)?;
        let t = p.files.borrow();
        Ok(t.get(fd)?.ofd.clone())
    }
}

fn read(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let mut iov = Iov::single(req.args[1], req.args[2]);
    match req.args[3] {
        abi::READ_CHANNEL => {}
        abi::RECV_CHANNEL => {
            let fd = req.i32(0);
            match fs.ofd(req.caller, fd) {
                Ok(o) if matches!(o.kind, Kind::Socket(_)) => {}
                Ok(_) if super::inet::is_inet(fs, req.caller, fd) => {}
                Ok(_) => return Outcome::err(libc::ENOTSOCK),
                Err(e) => return Outcome::err(e),
            }
        }
        _ => return fs.do_read(ctx, req, req.i32(0), iov, None),
    }
    iov.chan = fs.channels.get(&req.sender).cloned();
    fs.do_read(ctx, req, req.i32(0), iov, None)
}

fn write(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    fs.do_write(
        ctx,
        req,
        req.i32(0),
        Iov::single(req.args[1], req.args[2]),
        None,
    )
}

fn pread(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    fs.do_read(
        ctx,
        req,
        req.i32(0),
        Iov::single(req.args[1], req.args[2]),
        Some(req.int(3)),
    )
}

fn pwrite(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    fs.do_write(
        ctx,
        req,
        req.i32(0),
        Iov::single(req.args[1], req.args[2]),
        Some(req.int(3)),
    )
}

/// The offset word of `readv`/`writev`: -1 means the current offset.
fn vec_offset(req: &Request) -> Option<i64> {
    match req.int(3) {
        -1 => None,
        o => Some(o),
    }
}

fn readv(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let iov = match Iov::from_client(ctx, req.sender, req.args[1], req.args[2]) {
        Ok(i) => i,
        Err(e) => return Outcome::err(e),
    };
    fs.do_read(ctx, req, req.i32(0), iov, vec_offset(req))
}

fn writev(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let iov = match Iov::from_client(ctx, req.sender, req.args[1], req.args[2]) {
        Ok(i) => i,
        Err(e) => return Outcome::err(e),
    };
    fs.do_write(ctx, req, req.i32(0), iov, vec_offset(req))
}

fn lseek(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let ofd = match fs.ofd(req.caller, req.i32(0)) {
        Ok(o) => o,
        Err(e) => return Outcome::err(e),
    };
    Outcome::from(match &ofd.kind {
        Kind::File { fd, .. } => sys::lseek(fd.as_fd(), req.int(1), req.i32(2)),
        Kind::Stream { fd, .. } => sys::lseek(fd.as_fd(), req.int(1), req.i32(2)),
        Kind::Listing(l) => l.seek(req.int(1), req.i32(2)),
        Kind::PipeRead(_) | Kind::PipeWrite(_) | Kind::Epoll(_) | Kind::Socket(_) => {
            Err(libc::ESPIPE)
        }
        Kind::Path { .. } => Err(libc::EBADF),
    })
}

/// `copy_file_range` between two regular files (anything else is
/// `EINVAL`, and callers fall back to read/write as with Linux).
fn copy_file_range(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let (a, b) = match (
        fs.ofd(req.caller, req.i32(0)),
        fs.ofd(req.caller, req.i32(2)),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Outcome::err(e),
    };
    let (Kind::File { fd: fin, .. }, Kind::File { fd: fout, .. }) = (&a.kind, &b.kind) else {
        return Outcome::err(libc::EINVAL);
    };
    if a.flags.get() & libc::O_ACCMODE == libc::O_WRONLY
        || b.flags.get() & libc::O_ACCMODE == libc::O_RDONLY
        || b.flags.get() & libc::O_APPEND != 0
    {
        return Outcome::err(libc::EBADF);
    }
    let mut oin = req.int(1);
    let mut oout = req.int(3);
    let pin: *mut i64 = if oin < 0 {
        std::ptr::null_mut()
    } else {
        &mut oin
    };
    let pout: *mut i64 = if oout < 0 {
        std::ptr::null_mut()
    } else {
        &mut oout
    };
    let len = (req.args[4] as usize).min(1 << 30);
    // SAFETY: two host descriptors we own, offsets on our stack or null.
    let r = unsafe {
        libc::copy_file_range(
            fin.as_raw_fd(),
            pin,
            fout.as_raw_fd(),
            pout,
            len,
            req.args[5] as u32,
        )
    };
    if r < 0 {
        Outcome::err(nix::errno::Errno::last_raw())
    } else {
        Outcome::ok(r as i64)
    }
}

/// The I/O calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsRead, read as Handler<Fs>),
        (Call::FsWrite, write),
        (Call::FsPread, pread),
        (Call::FsPwrite, pwrite),
        (Call::FsReadv, readv),
        (Call::FsWritev, writev),
        (Call::FsLseek, lseek),
        (Call::FsCopyFileRange, copy_file_range),
    ]
}
