//! `AF_UNIX` sockets: FS-internal objects, like pipes.
//!
//! A socket is a [`Sock`] shared through an `Rc` by its one open file
//! description (`Kind::Socket`). Data travels in [`Queue`]s: each socket
//! owns its receive queue, and a connected socket holds its peer's
//! receive queue as its send side, so two connected sockets never point
//! at each other (no reference cycle) and closing one is its `Drop`: its
//! receive queue is marked read-shut (the peer's writes get `EPIPE`) and,
//! for connection-oriented types, the peer's receive queue write-shut
//! (the peer reads EOF once drained).
//!
//! Names (paths bound in the DC root, abstract names) map to sockets in
//! the [`Registry`] by weak reference; a path bind creates a real socket
//! node on the host, and `connect` finds the socket by the node's
//! `(dev, ino)`.
//!
//! Everything that would block (reading an empty socket, writing a full
//! one, `accept` with nothing pending, `connect` to a full backlog) is a
//! deferred call ([`Pending`]) retried by the server like pipe calls.
//!
//! Modules: `addr` (socket addresses and the name registry), `conn`
//! (`bind`, `listen`, `connect`, `accept`), `data` (moving bytes and
//! datagrams), `msg` (`sendmsg`/`recvmsg` and `SCM_RIGHTS`), `opts`
//! (socket options, `shutdown`, `getsockname`/`getpeername`).

mod addr;
mod conn;
mod data;
mod msg;
mod opts;

pub use addr::Registry;
pub use data::{recv, send, RecvOut};
pub(in crate::fs) use msg::{read_recv_aux, read_send_aux};

use super::io::{Attempt, Iov};
use super::table::{Kind, Ofd};
use super::{sys, Fs};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::{Rc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Default send/receive buffer size (Linux's `wmem_default`).
pub const DEFAULT_BUF: usize = 212_992;
/// Most datagrams queued on one socket (Linux's `max_dgram_qlen`).
pub const MAX_DGRAM_QLEN: usize = 512;
/// Most descriptors in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;
/// The device number shown by `fstat` on a socket (an anonymous minor).
const SOCK_DEV: u64 = 0x08;

/// Credentials of a socket's owner (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cred {
    /// DC PID.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Cred {
    /// The credentials of DC process `pid` (every DC process runs as
    /// FS's user).
    pub fn of(pid: i32) -> Cred {
        let (uid, gid) = sys::ids();
        Cred { pid, uid, gid }
    }
}

/// One write (stream) or one datagram/record.
pub struct Packet {
    /// The bytes.
    pub data: Vec<u8>,
    /// Bytes of a stream packet already read.
    pub off: usize,
    /// Descriptions passed with it (`SCM_RIGHTS`).
    pub fds: Vec<Rc<Ofd>>,
    /// The sender's name (datagrams).
    pub from: Option<Rc<addr::Name>>,
    /// Who sent it (`SCM_CREDENTIALS` for a reader with `SO_PASSCRED`).
    pub cred: Cred,
}

/// One direction of data: the receive queue of a socket.
pub struct Queue {
    /// Queued packets.
    pub pkts: VecDeque<Packet>,
    /// Unread bytes.
    pub bytes: usize,
    /// Capacity in bytes.
    pub cap: usize,
    /// The reader is gone or shut its reading side: writers get `EPIPE`
    /// (`ECONNREFUSED` for datagrams).
    pub rd_shut: bool,
    /// The writer is gone or shut its writing side: EOF once drained.
    pub wr_shut: bool,
    /// The writer closed with unread data in its own queue: the next
    /// read of an empty queue gives `ECONNRESET`.
    pub reset: bool,
}

impl Queue {
    /// An empty queue of `cap` bytes.
    pub fn new(cap: usize) -> Rc<RefCell<Queue>> {
        Rc::new(RefCell::new(Queue {
            pkts: VecDeque::new(),
            bytes: 0,
            cap,
            rd_shut: false,
            wr_shut: false,
            reset: false,
        }))
    }
}

/// A listening socket's state.
pub struct Listen {
    /// Connections allowed to wait beyond the first.
    pub backlog: usize,
    /// Connections not accepted yet (their server-side sockets).
    pub pending: VecDeque<Rc<RefCell<Sock>>>,
}

/// An `AF_UNIX` socket.
pub struct Sock {
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
    pub ty: i32,
    /// What others send to this socket.
    pub rx: Rc<RefCell<Queue>>,
    /// Where this socket sends: the peer's receive queue (connected).
    pub tx: Option<Rc<RefCell<Queue>>>,
    /// The name bound (`getsockname`).
    pub name: Option<Rc<addr::Name>>,
    /// The peer's name (`getpeername`; `None` inside: unnamed peer).
    pub peer_name: Option<Option<Rc<addr::Name>>>,
    /// Listening state.
    pub listen: Option<Listen>,
    /// Own credentials (of the process that created, connected or
    /// listened).
    pub cred: Cred,
    /// The peer's credentials.
    pub peer_cred: Option<Cred>,
    /// `shutdown(SHUT_RD)` was called.
    pub shut_rd: bool,
    /// `shutdown(SHUT_WR)` was called.
    pub shut_wr: bool,
    /// `SO_SNDBUF` as `getsockopt` shows it.
    pub sndbuf: usize,
    /// `SO_RCVBUF` as `getsockopt` shows it.
    pub rcvbuf: usize,
    /// Other options set with `setsockopt` (`SOL_SOCKET`), raw values.
    pub opts: HashMap<i32, Vec<u8>>,
    /// Inode number shown by `fstat`.
    pub ino: u64,
    /// Creation time shown by `fstat`.
    pub ctime: (i64, i64),
}

impl Sock {
    /// A new unconnected socket.
    pub fn new(fs: &mut Fs, ty: i32, cred: Cred) -> Sock {
        fs.next_ino += 1;
        Sock {
            ty,
            rx: Queue::new(DEFAULT_BUF),
            tx: None,
            name: None,
            peer_name: None,
            listen: None,
            cred,
            peer_cred: None,
            shut_rd: false,
            shut_wr: false,
            sndbuf: DEFAULT_BUF,
            rcvbuf: DEFAULT_BUF,
            opts: HashMap::new(),
            ino: fs.next_ino,
            ctime: now(),
        }
    }

    /// A connection-oriented type (stream or seqpacket).
    pub fn connected_type(&self) -> bool {
        self.ty != libc::SOCK_DGRAM
    }

    /// Nothing more can be read once the queue is empty.
    pub fn rcv_shut(&self) -> bool {
        self.shut_rd || (self.connected_type() && self.rx.borrow().wr_shut)
    }

    /// Nothing more can be sent.
    pub fn snd_shut(&self) -> bool {
        self.shut_wr
            || (self.connected_type() && self.tx.as_ref().is_some_and(|q| q.borrow().rd_shut))
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let (stale, unread) = {
            let mut rx = self.rx.borrow_mut();
            rx.rd_shut = true;
            rx.bytes = 0;
            let stale: Vec<Packet> = rx.pkts.drain(..).collect();
            let unread = !stale.is_empty();
            (stale, unread)
        };
        if self.connected_type() {
            if let Some(tx) = &self.tx {
                let mut q = tx.borrow_mut();
                q.wr_shut = true;
                q.reset |= unread;
            }
        }
        // Descriptions in flight may be sockets themselves: dropped with
        // no queue borrowed.
        drop(stale);
    }
}

fn now() -> (i64, i64) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

/// The `poll` events of a socket.
pub fn poll_mask(s: &RefCell<Sock>) -> i16 {
    let s = s.borrow();
    if let Some(l) = &s.listen {
        return if l.pending.is_empty() {
            0
        } else {
            libc::POLLIN | libc::POLLRDNORM
        };
    }
    let mut m = 0;
    let rcv = s.rcv_shut();
    let snd = s.snd_shut();
    {
        let rx = s.rx.borrow();
        if !rx.pkts.is_empty() {
            m |= libc::POLLIN | libc::POLLRDNORM;
        }
        if rx.reset {
            m |= libc::POLLERR;
        }
    }
    if rcv {
        m |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
    }
    if rcv && snd {
        m |= libc::POLLHUP;
    }
    if s.connected_type() && s.tx.is_none() {
        m |= libc::POLLHUP;
    }
    let writable = match &s.tx {
        None => true,
        Some(q) => {
            let q = q.borrow();
            q.rd_shut
                || if s.connected_type() {
                    q.bytes * 4 <= q.cap * 3
                } else {
                    q.bytes < q.cap && q.pkts.len() < MAX_DGRAM_QLEN
                }
        }
    };
    if writable && !s.shut_wr {
        m |= libc::POLLOUT | libc::POLLWRNORM;
    }
    m
}

/// `FIONREAD`/`SIOCINQ`: unread bytes (stream) or the size of the next
/// datagram.
pub fn inq(s: &RefCell<Sock>) -> Result<i32, i32> {
    let s = s.borrow();
    if s.listen.is_some() {
        return Err(libc::EINVAL);
    }
    let rx = s.rx.borrow();
    let n = if s.ty == libc::SOCK_STREAM {
        rx.bytes
    } else {
        rx.pkts.front().map_or(0, |p| p.data.len())
    };
    Ok(n.min(i32::MAX as usize) as i32)
}

/// A `struct stat` for a socket (what Linux shows for sockfs).
pub fn stat(s: &RefCell<Sock>) -> [u8; sys::STAT_SIZE] {
    let s = s.borrow();
    let mut st = [0u8; sys::STAT_SIZE];
    let (uid, gid) = sys::ids();
    let mut put = |off: usize, b: &[u8]| st[off..off + b.len()].copy_from_slice(b);
    put(0, &SOCK_DEV.to_ne_bytes());
    put(8, &s.ino.to_ne_bytes());
    put(16, &1u64.to_ne_bytes());
    put(24, &(libc::S_IFSOCK | 0o777).to_ne_bytes());
    put(28, &uid.to_ne_bytes());
    put(32, &gid.to_ne_bytes());
    put(56, &4096i64.to_ne_bytes());
    for off in [72, 88, 104] {
        put(off, &s.ctime.0.to_ne_bytes());
        put(off + 8, &s.ctime.1.to_ne_bytes());
    }
    st
}

/// A `struct statx` for a socket.
pub fn statx(s: &RefCell<Sock>) -> [u8; sys::STATX_SIZE] {
    let s = s.borrow();
    let mut sx = [0u8; sys::STATX_SIZE];
    let (uid, gid) = sys::ids();
    let mut put = |off: usize, b: &[u8]| sx[off..off + b.len()].copy_from_slice(b);
    put(0, &libc::STATX_BASIC_STATS.to_ne_bytes());
    put(4, &4096u32.to_ne_bytes());
    put(16, &1u32.to_ne_bytes());
    put(20, &uid.to_ne_bytes());
    put(24, &gid.to_ne_bytes());
    put(28, &((libc::S_IFSOCK | 0o777) as u16).to_ne_bytes());
    put(32, &s.ino.to_ne_bytes());
    for off in [64, 96, 112] {
        put(off, &s.ctime.0.to_ne_bytes());
        put(off + 8, &(s.ctime.1 as u32).to_ne_bytes());
    }
    put(140, &(SOCK_DEV as u32).to_ne_bytes());
    sx
}

/// A deferred socket call.
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
    /// `connect` to a full backlog.
    Connect {
        /// The connecting socket's description.
        ofd: Rc<Ofd>,
        /// The listener.
        target: Weak<RefCell<Sock>>,
        /// The caller's PID.
        pid: i32,
    },
    /// `recvmsg` on an empty socket.
    Recv {
        /// The socket's description.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// `MSG_*` flags.
        flags: i32,
        /// The caller's [`abi::RecvAux`] (0: none).
        aux: abi::RecvAux,
        /// Its address.
        aux_addr: u64,
    },
    /// `sendmsg` that does not fit.
    Send {
        /// The socket's description.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// `MSG_*` flags.
        flags: i32,
        /// The destination of an unconnected datagram socket.
        dest: Option<Weak<RefCell<Sock>>>,
        /// Descriptions still to pass.
        fds: Vec<Rc<Ofd>>,
        /// Bytes sent so far.
        done: usize,
        /// The sender's credentials.
        cred: Cred,
    },
}

impl Pending {
    /// Bytes a cancelled call already moved (it then returns them).
    pub fn sent(&self) -> usize {
        match self {
            Pending::Send { done, .. } => *done,
            _ => 0,
        }
    }
}

/// The result of a retry: the reply, or still blocked (`true`: some
/// bytes moved).
pub type Retry = Result<Message, bool>;

/// Turns one attempt into a retry result.
fn attempt_retry(a: Attempt, done: impl FnOnce(i64) -> Message) -> Retry {
    match a {
        Attempt::Done(Ok(v)) => Ok(done(v)),
        Attempt::Done(Err(e)) => Ok(abi::err(e)),
        Attempt::Blocked { progressed } => Err(progressed),
    }
}

/// Retries a deferred socket call.
pub fn retry(fs: &mut Fs, ctx: &Ctx, sender: Endpoint, caller: Endpoint, p: &mut Pending) -> Retry {
    match p {
        Pending::Accept { ofd, addr, flags } => attempt_retry_msg(conn::try_accept(
            fs, ctx, sender, caller, ofd, *addr, *flags,
        )),
        Pending::Connect { ofd, target, pid } => {
            let Some(t) = target.upgrade() else {
                return Ok(abi::err(libc::ECONNREFUSED));
            };
            attempt_retry(conn::try_connect(fs, ofd, &t, *pid), abi::ok)
        }
        Pending::Recv {
            ofd,
            iov,
            flags,
            aux,
            aux_addr,
        } => attempt_retry_msg(msg::try_recv(
            fs, ctx, sender, caller, ofd, iov, *flags, aux, *aux_addr,
        )),
        Pending::Send {
            ofd,
            iov,
            flags,
            dest,
            fds,
            done,
            cred,
        } => {
            let d = match dest {
                Some(w) => match w.upgrade() {
                    Some(d) => Some(d),
                    None => return Ok(abi::err(libc::ECONNREFUSED)),
                },
                None => None,
            };
            let Kind::Socket(s) = &ofd.kind else {
                return Ok(abi::err(libc::ENOTSOCK));
            };
            let nb = ofd.nonblock() || *flags & libc::MSG_DONTWAIT != 0;
            attempt_retry(
                send(ctx, sender, s, nb, iov, d.as_ref(), fds, done, *cred),
                abi::ok,
            )
        }
    }
}

/// An attempt whose success is already a full reply.
fn attempt_retry_msg(a: Result<Option<Message>, bool>) -> Retry {
    match a {
        Ok(Some(m)) => Ok(m),
        Ok(None) => Err(false),
        Err(p) => Err(p),
    }
}

/// The socket of descriptor `fd` of `ep` (`EBADF`, `ENOTSOCK`).
impl Sock {
    /// Whether `SO_PASSCRED` is on: every receive reports its sender.
    pub fn passcred(&self) -> bool {
        self.opts
            .get(&libc::SO_PASSCRED)
            .is_some_and(|v| v.iter().any(|&b| b != 0))
    }
}

/// The timeout `name` (`SO_RCVTIMEO`, `SO_SNDTIMEO`) set on `ofd`, if it
/// is an `AF_UNIX` socket with one.
pub fn timeout(ofd: &Ofd, name: i32) -> Option<std::time::Duration> {
    let Kind::Socket(s) = &ofd.kind else {
        return None;
    };
    let s = s.borrow();
    let v = s.opts.get(&name)?;
    let sec = u64::from_ne_bytes(v.get(..8)?.try_into().ok()?);
    let usec = u64::from_ne_bytes(v.get(8..16)?.try_into().ok()?);
    let t = std::time::Duration::from_secs(sec) + std::time::Duration::from_micros(usec);
    (!t.is_zero()).then_some(t)
}

pub(super) fn socket_of(
    fs: &Fs,
    ep: Endpoint,
    fd: i32,
) -> Result<(Rc<Ofd>, Rc<RefCell<Sock>>), i32> {
    let ofd = fs.ofd(ep, fd)?;
    let s = match &ofd.kind {
        Kind::Socket(s) => s.clone(),
        _ => return Err(libc::ENOTSOCK),
    };
    Ok((ofd, s))
}

/// Checks `socket`'s arguments: returns the type and the descriptor flags.
fn check_type(domain: i32, ty: i32, protocol: i32) -> Result<(i32, i32), i32> {
    if domain != libc::AF_UNIX {
        return Err(libc::EAFNOSUPPORT);
    }
    let flags = ty & !0xf;
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(libc::EINVAL);
    }
    if protocol != 0 && protocol != libc::PF_UNIX {
        return Err(libc::EPROTONOSUPPORT);
    }
    let base = match ty & 0xf {
        libc::SOCK_STREAM => libc::SOCK_STREAM,
        libc::SOCK_DGRAM | libc::SOCK_RAW => libc::SOCK_DGRAM,
        libc::SOCK_SEQPACKET => libc::SOCK_SEQPACKET,
        _ => return Err(libc::ESOCKTNOSUPPORT),
    };
    Ok((base, flags))
}

/// A new description for socket `s`.
fn ofd_for(s: Rc<RefCell<Sock>>, nonblock: bool) -> Rc<Ofd> {
    let fl = libc::O_RDWR | if nonblock { libc::O_NONBLOCK } else { 0 };
    Ofd::new(Kind::Socket(s), fl)
}

/// A new description for a new socket.
fn sock_ofd(s: Sock, nonblock: bool) -> Rc<Ofd> {
    ofd_for(Rc::new(RefCell::new(s)), nonblock)
}

/// `[domain, type, protocol, pid]`.
fn socket(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (ty, flags) = check_type(req.i32(0), req.i32(1), req.i32(2))?;
        let s = Sock::new(fs, ty, Cred::of(req.i32(3)));
        let ofd = sock_ofd(s, flags & libc::SOCK_NONBLOCK != 0);
        fs.install(req.caller, ofd, flags & libc::SOCK_CLOEXEC != 0)
            .map(i64::from)
    })();
    Outcome::from(r)
}

/// `[domain, type, protocol, pid]`: returns both descriptors.
fn socketpair(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (ty, flags) = check_type(req.i32(0), req.i32(1), req.i32(2))?;
        let cred = Cred::of(req.i32(3));
        let mut a = Sock::new(fs, ty, cred);
        let mut b = Sock::new(fs, ty, cred);
        a.tx = Some(b.rx.clone());
        b.tx = Some(a.rx.clone());
        a.peer_name = Some(None);
        b.peer_name = Some(None);
        a.peer_cred = Some(cred);
        b.peer_cred = Some(cred);
        let nb = flags & libc::SOCK_NONBLOCK != 0;
        let cloexec = flags & libc::SOCK_CLOEXEC != 0;
        let fa = fs.install(req.caller, sock_ofd(a, nb), cloexec)?;
        match fs.install(req.caller, sock_ofd(b, nb), cloexec) {
            Ok(fb) => Ok((fa, fb)),
            Err(e) => {
                if let Some(p) = fs.procs.get(&req.caller) {
                    let gone = p.files.borrow_mut().remove(fa);
                    drop(gone);
                }
                Err(e)
            }
        }
    })();
    match r {
        Ok((a, b)) => {
            let mut m = abi::ok(a as i64);
            m.words_mut()[1] = b as u64;
            Outcome::Reply(m)
        }
        Err(e) => Outcome::err(e),
    }
}

/// The socket calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    let mut t = vec![
        (Call::FsSocket, socket as Handler<Fs>),
        (Call::FsSocketpair, socketpair),
    ];
    t.extend(conn::table());
    t.extend(msg::table());
    t.extend(opts::table());
    t
}
