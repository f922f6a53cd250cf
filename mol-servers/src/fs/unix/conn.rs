//! `bind`, `listen`, `connect` and `accept`.
//!
//! A stream (or seqpacket) `connect` creates the server side of the
//! connection at once and queues it on the listener, as Linux does: the
//! client may write before it is accepted. A full backlog makes a
//! blocking `connect` wait (deferred) and a non-blocking one fail with
//! `EAGAIN`. A datagram `connect` only records the default destination.

use super::super::io::Attempt;
use super::super::{Fs, Op, Waiter};
use super::addr::{self, parse, Addr};
use super::{ofd_for, socket_of, Cred, Listen, Pending, Sock};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Largest backlog (`SOMAXCONN`).
const SOMAXCONN: i32 = 4096;

/// Reads a client address of `len` bytes.
pub(super) fn read_addr(ctx: &Ctx, from: Endpoint, addr: u64, len: u64) -> Result<Addr, i32> {
    if len > addr::SUN_LEN as u64 || (len as usize) < 2 {
        return Err(libc::EINVAL);
    }
    parse(&ctx.copy_in(from, addr, len as usize)?)
}

/// `[fd, addr, addrlen]`.
fn bind(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        let a = read_addr(ctx, req.sender, req.args[1], req.args[2])?;
        fs.unix_bind(req.caller, &s, a)?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, backlog, pid]`.
fn listen(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        let mut s = s.borrow_mut();
        if s.ty == libc::SOCK_DGRAM {
            return Err(libc::EOPNOTSUPP);
        }
        if s.tx.is_some() || s.name.is_none() {
            return Err(libc::EINVAL);
        }
        let backlog = req.i32(1).clamp(0, SOMAXCONN) as usize;
        match &mut s.listen {
            Some(l) => l.backlog = backlog,
            None => {
                s.listen = Some(Listen {
                    backlog,
                    pending: VecDeque::new(),
                })
            }
        }
        s.cred = Cred::of(req.i32(2));
        Ok(0)
    })();
    // Waiting connectors may fit now.
    fs.settle(ctx, false);
    Outcome::from(r)
}

/// One try of a stream/seqpacket connect of `ofd`'s socket to listener
/// `t`.
pub(super) fn try_connect(
    fs: &mut Fs,
    ofd: &Rc<super::Ofd>,
    t: &Rc<RefCell<Sock>>,
    pid: i32,
) -> Attempt {
    let super::Kind::Socket(s) = &ofd.kind else {
        return Attempt::Done(Err(libc::ENOTSOCK));
    };
    if Rc::ptr_eq(s, t) {
        return Attempt::Done(Err(libc::EINVAL));
    }
    let cred = Cred::of(pid);
    let (ty, client_name, client_rx) = {
        let c = s.borrow();
        if c.tx.is_some() {
            return Attempt::Done(Err(libc::EISCONN));
        }
        if c.listen.is_some() {
            return Attempt::Done(Err(libc::EINVAL));
        }
        (c.ty, c.name.clone(), c.rx.clone())
    };
    let (listener_name, listener_cred) = {
        let l = t.borrow();
        if l.ty != ty {
            return Attempt::Done(Err(libc::EPROTOTYPE));
        }
        let Some(lq) = &l.listen else {
            return Attempt::Done(Err(libc::ECONNREFUSED));
        };
        if lq.pending.len() > lq.backlog {
            return if ofd.nonblock() {
                Attempt::Done(Err(libc::EAGAIN))
            } else {
                Attempt::Blocked { progressed: false }
            };
        }
        (l.name.clone(), l.cred)
    };
    let mut server = Sock::new(fs, ty, listener_cred);
    server.tx = Some(client_rx);
    server.name = listener_name.clone();
    server.peer_name = Some(client_name);
    server.peer_cred = Some(cred);
    let server_rx = server.rx.clone();
    {
        let mut c = s.borrow_mut();
        c.tx = Some(server_rx);
        c.peer_name = Some(listener_name);
        c.peer_cred = Some(listener_cred);
        c.cred = cred;
    }
    if let Some(lq) = &mut t.borrow_mut().listen {
        lq.pending.push_back(Rc::new(RefCell::new(server)));
    }
    Attempt::Done(Ok(0))
}

/// `[fd, addr, addrlen, pid]`.
fn connect(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let pid = req.i32(3);
    let r = (|| {
        let (ofd, s) = socket_of(fs, req.caller, req.i32(0))?;
        let a = read_addr(ctx, req.sender, req.args[1], req.args[2])?;
        let dgram = s.borrow().ty == libc::SOCK_DGRAM;
        if dgram {
            let mut me = s.borrow_mut();
            if a == Addr::Unspec {
                me.tx = None;
                me.peer_name = None;
                me.peer_cred = None;
                return Ok(None);
            }
            drop(me);
            let t = fs.unix_find(req.caller, &a)?;
            let tb = t.borrow();
            if tb.ty != libc::SOCK_DGRAM {
                return Err(libc::EPROTOTYPE);
            }
            let (rx, name, cred) = (tb.rx.clone(), tb.name.clone(), tb.cred);
            drop(tb);
            let mut me = s.borrow_mut();
            me.tx = Some(rx);
            me.peer_name = Some(name);
            me.peer_cred = Some(cred);
            return Ok(None);
        }
        if a == Addr::Unspec {
            return Err(libc::EINVAL);
        }
        let t = fs.unix_find(req.caller, &a)?;
        Ok(Some((ofd, t)))
    })();
    let (ofd, t) = match r {
        Ok(None) => return Outcome::ok(0),
        Ok(Some(x)) => x,
        Err(e) => return Outcome::err(e),
    };
    match try_connect(fs, &ofd, &t, pid) {
        Attempt::Done(r) => {
            // The listener became readable.
            fs.settle(ctx, false);
            Outcome::from(r)
        }
        Attempt::Blocked { .. } => {
            let deadline = super::super::sockets::deadline(&ofd, libc::SO_SNDTIMEO);
            fs.defer(
                ctx,
                Waiter {
                    sender: req.sender,
                    caller: req.caller,
                    op: Op::Sock(
                        Pending::Connect {
                            ofd,
                            target: Rc::downgrade(&t),
                            pid,
                        },
                        deadline,
                    ),
                },
            );
            Outcome::Deferred
        }
    }
}

/// One try of `accept`: `Ok(Some(reply))`, `Ok(None)` when it would
/// block.
pub(super) fn try_accept(
    fs: &mut Fs,
    ctx: &Ctx,
    sender: Endpoint,
    caller: Endpoint,
    ofd: &Rc<super::Ofd>,
    addr: (u64, u64),
    flags: i32,
) -> Result<Option<Message>, bool> {
    let super::Kind::Socket(s) = &ofd.kind else {
        return Ok(Some(abi::err(libc::ENOTSOCK)));
    };
    let conn = {
        let mut l = s.borrow_mut();
        let ty = l.ty;
        let Some(lq) = &mut l.listen else {
            return Ok(Some(abi::err(if ty == libc::SOCK_DGRAM {
                libc::EOPNOTSUPP
            } else {
                libc::EINVAL
            })));
        };
        match lq.pending.pop_front() {
            Some(c) => c,
            None if ofd.nonblock() => return Ok(Some(abi::err(libc::EAGAIN))),
            None => return Ok(None),
        }
    };
    let peer = conn.borrow().peer_name.clone().flatten();
    let new = ofd_for(conn.clone(), flags & libc::SOCK_NONBLOCK != 0);
    let fd = match fs.install(caller, new, flags & libc::SOCK_CLOEXEC != 0) {
        Ok(fd) => fd,
        Err(e) => {
            // Not taken: the connection stays first in line.
            if let Some(lq) = &mut s.borrow_mut().listen {
                lq.pending.push_front(conn);
            }
            return Ok(Some(abi::err(e)));
        }
    };
    let raw = addr::sockaddr(peer.as_deref());
    if addr.0 != 0 {
        let n = raw.len().min(addr.1 as usize);
        if let Err(e) = ctx.copy_out(sender, addr.0, &raw[..n]) {
            if let Some(p) = fs.procs.get(&caller) {
                let gone = p.files.borrow_mut().remove(fd);
                drop(gone);
            }
            return Ok(Some(abi::err(e)));
        }
    }
    let mut m = abi::ok(fd as i64);
    m.words_mut()[1] = raw.len() as u64;
    Ok(Some(m))
}

/// `[fd, addr or 0, addrcap, flags]`.
fn accept(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let ofd = match socket_of(fs, req.caller, req.i32(0)) {
        Ok((o, _)) => o,
        Err(e) => return Outcome::err(e),
    };
    let addr = (req.args[1], req.args[2]);
    match try_accept(fs, ctx, req.sender, req.caller, &ofd, addr, flags) {
        Ok(Some(m)) => {
            // A waiting connector may fit in the backlog now.
            fs.settle(ctx, false);
            Outcome::Reply(m)
        }
        _ => {
            let deadline = super::super::sockets::deadline(&ofd, libc::SO_RCVTIMEO);
            fs.defer(
                ctx,
                Waiter {
                    sender: req.sender,
                    caller: req.caller,
                    op: Op::Sock(Pending::Accept { ofd, addr, flags }, deadline),
                },
            );
            Outcome::Deferred
        }
    }
}

/// The connection calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsBind, bind as Handler<Fs>),
        (Call::FsListen, listen),
        (Call::FsConnect, connect),
        (Call::FsAccept, accept),
    ]
}
