//! `poll`: readiness of files (always ready), FS pipes, and host streams
//! (the console, FIFOs; asked to the host with a zero-timeout `ppoll`).
//!
//! When nothing is ready and the timeout is not zero, the call is
//! deferred; it is evaluated again whenever a pipe or a descriptor
//! changes, and when the watcher reports that one of its host streams is
//! ready or its deadline has passed.

use super::pipe::PIPE_BUF;
use super::table::{FdTable, Kind};
use super::{sys, Fs, Op, Waiter};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A deferred `poll`.
pub struct PollWait {
    /// The caller's `struct pollfd` array.
    pub addr: u64,
    /// `(fd, events)` of each entry.
    pub fds: Vec<(i32, i16)>,
    /// When it times out (`None`: never).
    pub deadline: Option<Instant>,
}

/// Largest `nfds` (entries may repeat descriptors or be negative).
const MAX_NFDS: usize = 4096;

/// Events always reported.
const ALWAYS: i16 = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
/// What a regular file reports (`DEFAULT_POLLMASK`).
const FILE_MASK: i16 = libc::POLLIN | libc::POLLOUT | libc::POLLRDNORM | libc::POLLWRNORM;

/// The `revents` of each entry and how many are non-zero.
pub(super) fn evaluate(table: Option<&FdTable>, fds: &[(i32, i16)]) -> (Vec<i16>, usize) {
    let mut rev = vec![0i16; fds.len()];
    let mut host: Vec<(usize, libc::pollfd)> = Vec::new();
    for (i, &(fd, events)) in fds.iter().enumerate() {
        if fd < 0 {
            continue;
        }
        let Some(e) = table.and_then(|t| t.get(fd).ok()) else {
            rev[i] = libc::POLLNVAL;
            continue;
        };
        let mask = match &e.ofd.kind {
            Kind::File { .. } => FILE_MASK,
            Kind::Path { .. } => libc::POLLNVAL,
            Kind::Epoll(_) => 0,
            Kind::Listing(_) => FILE_MASK,
            Kind::Socket(s) => super::unix::poll_mask(s),
            Kind::PipeRead(p) => {
                let p = p.borrow();
                let mut m = 0;
                if !p.buf.is_empty() {
                    m |= libc::POLLIN | libc::POLLRDNORM;
                }
                if p.writers == 0 {
                    m |= libc::POLLHUP;
                }
                m
            }
            Kind::PipeWrite(p) => {
                let p = p.borrow();
                let mut m = 0;
                if p.free() >= PIPE_BUF {
                    m |= libc::POLLOUT | libc::POLLWRNORM;
                }
                if p.readers == 0 {
                    m |= libc::POLLERR;
                }
                m
            }
            Kind::Stream { fd: hfd, .. } => {
                host.push((
                    i,
                    libc::pollfd {
                        fd: hfd.as_fd().as_raw_fd(),
                        events,
                        revents: 0,
                    },
                ));
                0
            }
        };
        rev[i] = mask & (events | ALWAYS);
    }
    if !host.is_empty() {
        let mut pfds: Vec<libc::pollfd> = host.iter().map(|h| h.1).collect();
        if sys::poll(&mut pfds, Some(Duration::ZERO)).is_ok() {
            for ((i, _), p) in host.iter().zip(pfds.iter()) {
                rev[*i] = p.revents;
            }
        }
    }
    let n = rev.iter().filter(|&&r| r != 0).count();
    (rev, n)
}

/// Writes the `revents` back into the caller's array.
fn write_back(
    ctx: &Ctx,
    to: Endpoint,
    addr: u64,
    fds: &[(i32, i16)],
    rev: &[i16],
) -> Result<(), i32> {
    if fds.is_empty() {
        return Ok(());
    }
    let mut raw = Vec::with_capacity(fds.len() * 8);
    for (&(fd, ev), &r) in fds.iter().zip(rev.iter()) {
        raw.extend_from_slice(&fd.to_ne_bytes());
        raw.extend_from_slice(&ev.to_ne_bytes());
        raw.extend_from_slice(&r.to_ne_bytes());
    }
    ctx.copy_out(to, addr, &raw)
}

fn reply(ctx: &Ctx, to: Endpoint, addr: u64, fds: &[(i32, i16)], rev: &[i16], n: usize) -> Message {
    match write_back(ctx, to, addr, fds, rev) {
        Ok(()) => abi::ok(n as i64),
        Err(e) => abi::err(e),
    }
}

impl Fs {
    fn poll_eval(&self, caller: Endpoint, fds: &[(i32, i16)]) -> (Vec<i16>, usize) {
        match self.procs.get(&caller) {
            Some(p) => evaluate(Some(&p.files.borrow()), fds),
            None => evaluate(None, fds),
        }
    }

    /// Re-evaluates a deferred poll: the reply if it is ready or timed out.
    pub(super) fn poll_retry(
        &mut self,
        ctx: &Ctx,
        caller: Endpoint,
        sender: Endpoint,
        pw: &PollWait,
    ) -> Option<Message> {
        let (rev, n) = self.poll_eval(caller, &pw.fds);
        if n > 0 || pw.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(reply(ctx, sender, pw.addr, &pw.fds, &rev, n));
        }
        None
    }

    /// The host streams a deferred poll waits on.
    pub(super) fn poll_interest(
        &self,
        caller: Endpoint,
        fds: &[(i32, i16)],
        out: &mut Vec<(Arc<OwnedFd>, i16)>,
    ) {
        let Some(p) = self.procs.get(&caller) else {
            return;
        };
        let t = p.files.borrow();
        for &(fd, events) in fds {
            if let Ok(e) = t.get(fd) {
                if let Kind::Stream { fd: hfd, .. } = &e.ofd.kind {
                    out.push((hfd.clone(), events));
                }
            }
        }
    }
}

/// `[fds, nfds, timeout_ms or -1]`.
fn poll(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let nfds = req.args[1];
    if nfds > MAX_NFDS as u64 {
        return Outcome::err(libc::EINVAL);
    }
    let nfds = nfds as usize;
    let addr = req.args[0];
    let timeout = req.i32(2);
    let raw = if nfds == 0 {
        Vec::new()
    } else {
        match ctx.copy_in(req.sender, addr, nfds * 8) {
            Ok(r) => r,
            Err(e) => return Outcome::err(e),
        }
    };
    let fds: Vec<(i32, i16)> = raw
        .chunks_exact(8)
        .map(|c| {
            (
                i32::from_ne_bytes([c[0], c[1], c[2], c[3]]),
                i16::from_ne_bytes([c[4], c[5]]),
            )
        })
        .collect();
    let (rev, n) = fs.poll_eval(req.caller, &fds);
    if n > 0 || timeout == 0 {
        return Outcome::Reply(reply(ctx, req.sender, addr, &fds, &rev, n));
    }
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
    fs.defer(
        ctx,
        Waiter {
            sender: req.sender,
            caller: req.caller,
            op: Op::Poll(PollWait {
                addr,
                fds,
                deadline,
            }),
        },
    );
    Outcome::Deferred
}

/// The poll call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsPoll, poll as Handler<Fs>)]
}
