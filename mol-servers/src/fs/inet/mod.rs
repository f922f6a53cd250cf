//! `AF_INET` and `AF_INET6` sockets: host sockets owned by FS.
//!
//! A DC process never holds a host socket. `socket` makes FS create one
//! (non-blocking on the host side, like every host stream FS keeps) and
//! install a descriptor for it; the socket is an ordinary host stream
//! description (`Kind::Stream`), so `read`/`write`, `poll`/`select`/
//! `epoll`, `fcntl`, `fstat`, `dup`, `fork` and `close` need nothing
//! new. The socket calls act on the host socket on the caller's behalf;
//! the program's addresses and option values are passed on as raw bytes
//! (the host kernel checks them), data moves between the program and FS
//! by `vcopy`.
//!
//! A call that would block (`accept` with nothing pending, a `connect` in
//! progress, `recv` with nothing queued, `send` into a full buffer) is a
//! deferred call ([`Pending`]) that the watcher wakes when the host socket
//! becomes ready; a signal ends it with `EINTR` (FS's cancellation).
//!
//! Modules: `host` (the host calls), `data` (`sendmsg`/`recvmsg`),
//! `publish` (`dvs-exec --publish`: DC ports on other host ports).
//!
//! Control messages (`IPV6_HOPLIMIT`, `IP_PKTINFO`, timestamps) pass
//! between the program and the host raw. Known limits:
//! `MSG_WAITALL` with `MSG_PEEK` returns after the first data.
//! `SO_RCVTIMEO`/`SO_SNDTIMEO` are the host socket's; a deferred call
//! takes them when it blocks (`sockets::deadline`).

mod data;
mod host;
mod publish;

pub use publish::Publish;

use super::io::Iov;
use super::table::{Kind, Ofd};
use super::{Fs, Op, Waiter};
use crate::abi::{self, Call, RecvAux};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

/// A deferred INET call.
pub enum Pending {
    /// `accept` with no connection pending.
    Accept {
        /// The listening socket's description.
        ofd: Rc<Ofd>,
        /// Where the peer's address goes, and its capacity.
        addr: (u64, u64),
        /// `SOCK_NONBLOCK | SOCK_CLOEXEC`.
        flags: i32,
    },
    /// A blocking `connect` in progress.
    Connect {
        /// The connecting socket's description.
        ofd: Rc<Ofd>,
    },
    /// `recvmsg` with nothing queued.
    Recv {
        /// The socket's description.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// `MSG_*` flags.
        flags: i32,
        /// The caller's [`abi::RecvAux`].
        aux: RecvAux,
        /// Its address (0: none).
        aux_addr: u64,
        /// Bytes a `MSG_WAITALL` receive already moved.
        done: usize,
    },
    /// `sendmsg` that did not fit.
    Send {
        /// The socket's description.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// `MSG_*` flags.
        flags: i32,
        /// The raw destination address.
        dest: Option<Vec<u8>>,
        /// Raw control messages.
        ctl: Vec<u8>,
        /// Bytes sent so far.
        done: usize,
    },
}

impl Pending {
    /// The host socket waited on and the `poll` events awaited.
    pub fn interest(&self) -> Option<(Arc<OwnedFd>, i16)> {
        let (ofd, ev) = match self {
            Pending::Accept { ofd, .. } | Pending::Recv { ofd, .. } => (ofd, libc::POLLIN),
            Pending::Connect { ofd } | Pending::Send { ofd, .. } => (ofd, libc::POLLOUT),
        };
        match &ofd.kind {
            Kind::Stream { fd, .. } => Some((fd.clone(), ev)),
            _ => None,
        }
    }

    /// Bytes a cancelled call already moved (it then returns them).
    pub fn sent(&self) -> usize {
        match self {
            Pending::Send { done, .. } | Pending::Recv { done, .. } => *done,
            _ => 0,
        }
    }
}

/// Whether descriptor `fd` of `ep` is an INET socket (FS's host socket).
pub fn is_inet(fs: &Fs, ep: Endpoint, fd: i32) -> bool {
    fs.ofd(ep, fd).is_ok_and(|o| host_socket(&o).is_some())
}

/// The host socket of a description, if it is one FS created.
fn host_socket(ofd: &Ofd) -> Option<BorrowedFd<'_>> {
    match &ofd.kind {
        Kind::Stream {
            fd, console: false, ..
        } if is_socket(fd.as_fd()) => Some(fd.as_fd()),
        _ => None,
    }
}

fn is_socket(fd: BorrowedFd<'_>) -> bool {
    super::sys::fmode(fd).is_ok_and(|m| m & libc::S_IFMT == libc::S_IFSOCK)
}

/// The description and host socket of descriptor `fd` of `ep`.
fn socket_of(fs: &Fs, ep: Endpoint, fd: i32) -> Result<Rc<Ofd>, i32> {
    let ofd = fs.ofd(ep, fd)?;
    if host_socket(&ofd).is_none() {
        return Err(libc::ENOTSOCK);
    }
    Ok(ofd)
}

/// Runs `f` on the host socket of `ofd`.
fn with_host<T>(ofd: &Ofd, f: impl FnOnce(BorrowedFd<'_>) -> Result<T, i32>) -> Result<T, i32> {
    match host_socket(ofd) {
        Some(fd) => f(fd),
        None => Err(libc::ENOTSOCK),
    }
}

/// A new description for host socket `s`.
fn ofd_for(s: OwnedFd, nonblock: bool) -> Rc<Ofd> {
    Ofd::host_stream(
        s,
        libc::O_RDWR | if nonblock { libc::O_NONBLOCK } else { 0 },
    )
}

/// Reads a program's socket address of `len` bytes.
fn read_addr(ctx: &Ctx, from: Endpoint, addr: u64, len: u64) -> Result<Vec<u8>, i32> {
    if len > host::ADDR_CAP as u64 {
        return Err(libc::EINVAL);
    }
    ctx.copy_in(from, addr, len as usize)
}

/// `[domain, type, protocol, pid]`.
pub fn socket(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ty = req.i32(1);
        let flags = ty & !0xf;
        if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
            return Err(libc::EINVAL);
        }
        // Netlink: only the route family (interfaces, addresses, routes
        // of the servers' node), read-mostly and harmless.
        if req.i32(0) == libc::AF_NETLINK && req.i32(2) != libc::NETLINK_ROUTE {
            return Err(libc::EPROTONOSUPPORT);
        }
        let s = host::socket(req.i32(0), ty & 0xf, req.i32(2))?;
        let ofd = ofd_for(s, flags & libc::SOCK_NONBLOCK != 0);
        fs.install(req.caller, ofd, flags & libc::SOCK_CLOEXEC != 0)
            .map(i64::from)
    })();
    Outcome::from(r)
}

/// `[fd, addr, addrlen]`.
fn bind(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let mut a = read_addr(ctx, req.sender, req.args[1], req.args[2])?;
        publish::to_host(&fs.publish, &mut a, true);
        with_host(&ofd, |fd| host::bind(fd, &a))?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// `[fd, backlog, pid]`.
fn listen(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        with_host(&ofd, |fd| host::listen(fd, req.i32(1)))?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// One try of `accept`: the reply, or `None` when it would block.
fn try_accept(
    fs: &Fs,
    ctx: &Ctx,
    sender: Endpoint,
    caller: Endpoint,
    ofd: &Rc<Ofd>,
    addr: (u64, u64),
    flags: i32,
) -> Option<Message> {
    let (s, mut peer) = match with_host(ofd, host::accept) {
        Ok(x) => x,
        Err(libc::EAGAIN) if !ofd.nonblock() => return None,
        Err(e) => return Some(abi::err(e)),
    };
    publish::to_dc(&fs.publish, &mut peer, false);
    let new = ofd_for(s, flags & libc::SOCK_NONBLOCK != 0);
    let fd = match fs.install(caller, new, flags & libc::SOCK_CLOEXEC != 0) {
        Ok(fd) => fd,
        Err(e) => return Some(abi::err(e)),
    };
    if addr.0 != 0 {
        let n = peer.len().min(addr.1 as usize);
        if let Err(e) = ctx.copy_out(sender, addr.0, &peer[..n]) {
            if let Some(p) = fs.procs.get(&caller) {
                let gone = p.files.borrow_mut().remove(fd);
                drop(gone);
            }
            return Some(abi::err(e));
        }
    }
    let mut m = abi::ok(fd as i64);
    m.words_mut()[1] = peer.len() as u64;
    Some(m)
}

/// `[fd, addr or 0, addrcap, flags]`.
fn accept(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let ofd = match socket_of(fs, req.caller, req.i32(0)) {
        Ok(o) => o,
        Err(e) => return Outcome::err(e),
    };
    let addr = (req.args[1], req.args[2]);
    match try_accept(fs, ctx, req.sender, req.caller, &ofd, addr, flags) {
        Some(m) => Outcome::Reply(m),
        None => defer(fs, ctx, req, Pending::Accept { ofd, addr, flags }),
    }
}

/// Keeps `p` to answer when its host socket is ready.
fn defer(fs: &mut Fs, ctx: &Ctx, req: &Request, p: Pending) -> Outcome {
    let (ofd, name) = match &p {
        Pending::Accept { ofd, .. } | Pending::Recv { ofd, .. } => (ofd, libc::SO_RCVTIMEO),
        Pending::Connect { ofd } | Pending::Send { ofd, .. } => (ofd, libc::SO_SNDTIMEO),
    };
    let deadline = super::sockets::deadline(ofd, name);
    fs.defer(
        ctx,
        Waiter {
            sender: req.sender,
            caller: req.caller,
            op: Op::Net(p, deadline),
        },
    );
    Outcome::Deferred
}

/// The timeout `name` (`SO_RCVTIMEO`, `SO_SNDTIMEO`) of `ofd`'s host
/// socket, if it is an INET socket with one set.
pub fn timeout(ofd: &Ofd, name: i32) -> Option<std::time::Duration> {
    host::timeout(host_socket(ofd)?, name)
}

/// The end of a connect in progress: `None` while it still is.
fn connect_result(ofd: &Ofd) -> Option<Result<i64, i32>> {
    let r = with_host(ofd, |fd| {
        if super::sys::poll_now(fd, libc::POLLOUT) == 0 {
            return Ok(None);
        }
        match host::take_error(fd)? {
            0 => Ok(Some(0)),
            e => Err(e),
        }
    });
    match r {
        Ok(None) => None,
        Ok(Some(v)) => Some(Ok(v)),
        Err(e) => Some(Err(e)),
    }
}

/// `[fd, addr, addrlen, pid]`.
fn connect(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let mut a = read_addr(ctx, req.sender, req.args[1], req.args[2])?;
        publish::to_host(&fs.publish, &mut a, false);
        match with_host(&ofd, |fd| host::connect(fd, &a)) {
            Ok(()) => Ok(None),
            Err(libc::EINPROGRESS) if !ofd.nonblock() => Ok(Some(ofd)),
            Err(e) => Err(e),
        }
    })();
    match r {
        Ok(None) => Outcome::ok(0),
        Ok(Some(ofd)) => match connect_result(&ofd) {
            Some(r) => Outcome::from(r),
            None => defer(fs, ctx, req, Pending::Connect { ofd }),
        },
        Err(e) => Outcome::err(e),
    }
}

/// `[fd, buf, cap, peer]`.
fn sockname(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let peer = req.args[3] != 0;
        let mut raw = with_host(&ofd, |fd| host::name(fd, peer))?;
        publish::to_dc(&fs.publish, &mut raw, !peer);
        let n = raw.len().min(req.args[2] as usize);
        ctx.copy_out(req.sender, req.args[1], &raw[..n])?;
        Ok(raw.len() as i64)
    })();
    Outcome::from(r)
}

/// `[fd, how]`.
fn shutdown(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        with_host(&ofd, |fd| host::shutdown(fd, req.i32(1)))?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// Largest option value moved (`struct linger`, `timeval`, `tcp_info`
/// are smaller).
const OPT_MAX: usize = 256;

/// `[fd, level, name, buf, cap]`.
fn getsockopt(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let cap = (req.args[4] as usize).min(OPT_MAX);
        let v = with_host(&ofd, |fd| host::getsockopt(fd, req.i32(1), req.i32(2), cap))?;
        ctx.copy_out(req.sender, req.args[3], &v)?;
        Ok(v.len() as i64)
    })();
    Outcome::from(r)
}

/// `[fd, level, name, buf, len]`.
fn setsockopt(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let len = (req.args[4] as usize).min(OPT_MAX);
        let v = ctx.copy_in(req.sender, req.args[3], len)?;
        with_host(&ofd, |fd| host::setsockopt(fd, req.i32(1), req.i32(2), &v))?;
        Ok(0)
    })();
    Outcome::from(r)
}

/// Retries a deferred INET call (only after the watcher saw its socket
/// ready): the reply, or `None` while it still blocks.
pub fn retry(
    fs: &mut Fs,
    ctx: &Ctx,
    sender: Endpoint,
    caller: Endpoint,
    p: &mut Pending,
) -> Option<Message> {
    match p {
        Pending::Accept { ofd, addr, flags } => {
            try_accept(fs, ctx, sender, caller, ofd, *addr, *flags)
        }
        Pending::Connect { ofd } => connect_result(ofd).map(|r| match r {
            Ok(v) => abi::ok(v),
            Err(e) => abi::err(e),
        }),
        Pending::Recv {
            ofd,
            iov,
            flags,
            aux,
            aux_addr,
            done,
        } => data::try_recv(
            ctx,
            sender,
            ofd,
            iov,
            *flags,
            (aux, *aux_addr),
            &fs.publish,
            done,
        ),
        Pending::Send {
            ofd,
            iov,
            flags,
            dest,
            ctl,
            done,
        } => data::try_send(ctx, sender, ofd, iov, *flags, (dest.as_deref(), ctl), done),
    }
}

/// The INET socket calls (routed here by `sockets` for INET
/// descriptors and domains).
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsSocket, socket as Handler<Fs>),
        (Call::FsBind, bind),
        (Call::FsListen, listen),
        (Call::FsAccept, accept),
        (Call::FsConnect, connect),
        (Call::FsSockName, sockname),
        (Call::FsShutdown, shutdown),
        (Call::FsGetsockopt, getsockopt),
        (Call::FsSetsockopt, setsockopt),
        (Call::FsSendmsg, data::sendmsg),
        (Call::FsRecvmsg, data::recvmsg),
    ]
}
