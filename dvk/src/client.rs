//! The management API of the DVK, as seen by a client process.
//!
//! A [`Dvk`] is a control connection to the node daemon `dvkd`. Calls made
//! through it are identified by the calling thread (sent once in the
//! `Hello`) and its host credentials, so the daemon can apply privilege
//! checks: a bound, unprivileged endpoint may not manage anything; an
//! unbound task may manage only if it runs with the daemon's user id.

use crate::conn::Conn;
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::ipc::Ipc;
use crate::params::{DcInfo, DcParams, DvsInfo, DvsParams, PrivRecord, ProcInfo};
use crate::proto::{BindTarget, Request, Response, StatusSnapshot, PROTOCOL_VERSION};
use std::cell::Cell;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default control socket of the local node daemon.
pub const DEFAULT_SOCKET: &str = "/run/dvs/dvkd.sock";

/// The control socket: `$DVS_SOCKET` if set, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os("DVS_SOCKET")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Where dvs-exec's embedded node daemons put their control sockets for
/// the calling user, and where `dvs ps` and `dvs kill` look for them:
/// `/run/dvs` for root; for another user `$XDG_RUNTIME_DIR/dvs`, or
/// `/tmp/dvs-<uid>` without it (`/run/dvs` is root's).
pub fn embedded_dir() -> PathBuf {
    // SAFETY: geteuid has no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return PathBuf::from("/run/dvs");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("dvs"),
        None => PathBuf::from(format!("/tmp/dvs-{uid}")),
    }
}

/// How long a new connection waits for the daemon's answer to `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

fn ms(t: Option<Duration>) -> Option<u64> {
    t.map(|d| d.as_millis().min(u64::MAX as u128) as u64)
}

/// A control connection to the local node daemon.
pub struct Dvk {
    conn: Conn,
    path: PathBuf,
    fork_epoch: u64,
    _not_sync: PhantomData<Cell<()>>,
}

/// A connection that said hello on behalf of a task about to be bound
/// ([`Dvk::begin_attach`]).
#[derive(Debug)]
pub struct PendingAttach(Dvk);

impl PendingAttach {
    /// Waits until the task is bound (at most `timeout`) and returns its
    /// handle, which keeps this connection.
    pub fn finish(self, timeout: Duration) -> Result<Ipc> {
        self.finish_with_peers(timeout, &[])
    }

    /// [`PendingAttach::finish`], also mapping the DC endpoints `peers`
    /// (at most [`crate::proto::MAX_PEERS_PER_MAP`]; the servers a new
    /// process calls first) in the same round trip. Best effort for the
    /// peers: one that cannot be mapped now is mapped at its first use.
    pub fn finish_with_peers(self, timeout: Duration, peers: &[Endpoint]) -> Result<Ipc> {
        let dvk = self.0;
        dvk.conn.send(
            &Request::Wait4Bind {
                timeout_ms: ms(Some(timeout)),
            },
            &[],
        )?;
        PendingAttach(dvk).granted_with_peers(peers)
    }

    /// Asks for `peers` behind the request already sent (a bind or a wait
    /// for one), then reads the hello's answer, the grant and the peers.
    fn granted_with_peers(self, peers: &[Endpoint]) -> Result<Ipc> {
        let dvk = self.0;
        let peers = &peers[..peers.len().min(crate::proto::MAX_PEERS_PER_MAP)];
        if !peers.is_empty() {
            dvk.conn.send(
                &Request::MapPeers {
                    dcid: None,
                    eps: peers.to_vec(),
                },
                &[],
            )?;
        }
        dvk.hello_answered()?;
        let ipc = dvk.granted()?;
        if !peers.is_empty() {
            // The answer must be read off the connection even if unused.
            if let Ok(mapped) = ipc.dvk().peers_answered(peers.len()) {
                ipc.add_peers(peers, mapped);
            }
        }
        Ok(ipc)
    }
}

/// A peer's descriptors (mailbox read-only, doorbell) and its binding
/// sequence number, as `MapPeers` answers them.
pub(crate) struct MappedPeer {
    pub seq: u32,
    pub mbx: OwnedFd,
    pub bell: OwnedFd,
}

impl std::fmt::Debug for Dvk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dvk").field("socket", &self.path).finish()
    }
}

impl Dvk {
    /// Frees this handle without closing its connection (see
    /// [`crate::Ipc::forget_foreign`]).
    pub(crate) fn forget_connection(self) {
        let Dvk { conn, path, .. } = self;
        conn.forget();
        drop(path);
    }

    /// Connects to the daemon at [`socket_path`].
    pub fn open() -> Result<Dvk> {
        Self::connect(&socket_path())
    }

    /// Connects to the daemon listening at `path`.
    pub fn connect(path: &Path) -> Result<Dvk> {
        let dvk = Self::say_hello(path)?;
        dvk.hello_answered()?;
        Ok(dvk)
    }

    /// Connects to the daemon at `path` and waits until the calling
    /// process is bound (`wait4bind_T`), handing this connection to the
    /// returned handle: what a process attaching at start-up does. The
    /// hello and the wait go out together (one round trip fewer).
    /// The DC endpoints `peers` (the servers a process calls first) are
    /// mapped in the same round trip ([`PendingAttach::finish_with_peers`]).
    pub fn attach(path: &Path, timeout: Duration, peers: &[Endpoint]) -> Result<Ipc> {
        Self::begin_attach(path)?.finish_with_peers(timeout, peers)
    }

    /// Connects to the daemon at `path` and binds the calling thread to
    /// `ep` in DC `dcid` (`tbind`) on that one connection, which the
    /// returned handle keeps: the hello and the bind go out together. What
    /// a server thread does when it starts.
    pub fn tbind_at(path: &Path, dcid: i32, ep: Endpoint) -> Result<Ipc> {
        Self::tbind_at_with_peers(path, dcid, ep, &[])
    }

    /// [`Dvk::tbind_at`], also mapping the DC endpoints `peers` (at most
    /// [`crate::proto::MAX_PEERS_PER_MAP`]) in the same round trip, as
    /// [`PendingAttach::finish_with_peers`] does. Best effort for the
    /// peers.
    pub fn tbind_at_with_peers(
        path: &Path,
        dcid: i32,
        ep: Endpoint,
        peers: &[Endpoint],
    ) -> Result<Ipc> {
        let dvk = Self::say_hello(path)?;
        dvk.conn.send(
            &Request::Bind {
                dcid,
                ep,
                target: BindTarget::Thread,
            },
            &[],
        )?;
        PendingAttach(dvk).granted_with_peers(peers)
    }

    /// The first half of [`Dvk::attach`]: connects and says hello, so that
    /// a task can do it while its binding is still being made (a new
    /// thread, while its creator asks PM for its endpoint).
    pub fn begin_attach(path: &Path) -> Result<PendingAttach> {
        Ok(PendingAttach(Self::say_hello(path)?))
    }

    /// Connects and sends `Hello`, without waiting for the answer.
    fn say_hello(path: &Path) -> Result<Dvk> {
        crate::forkwatch::install();
        // Read here, in every process before it serves a call (see
        // `own_pid`).
        crate::sys::own_pid();
        let sock = UnixStream::connect(path).map_err(|_| DvkError::NoDaemon)?;
        let sock = UnixStream::from(crate::sys::high_fd(sock.into()));
        // A daemon that accepts but does not answer must not hang us; later
        // calls may block for as long as they need (wait4bind...).
        sock.set_read_timeout(Some(HELLO_TIMEOUT))
            .map_err(|_| DvkError::NoDaemon)?;
        let dvk = Dvk {
            conn: Conn::new(sock),
            path: path.to_path_buf(),
            fork_epoch: crate::forkwatch::epoch(),
            _not_sync: PhantomData,
        };
        dvk.conn.send(
            &Request::Hello {
                tid: crate::sys::gettid(),
                version: PROTOCOL_VERSION,
            },
            &[],
        )?;
        Ok(dvk)
    }

    /// Reads a `Granted` answer and makes the handle, which keeps this
    /// connection.
    fn granted(self) -> Result<Ipc> {
        match self.conn.recv::<Response>()? {
            (Response::Granted(g), fds) => Ipc::from_grant(self, g, fds),
            (Response::Err(code), _) => Err(DvkError::from_code(code)),
            _ => Err(DvkError::Protocol),
        }
    }

    /// Reads the answer to `Hello`; then lifts the read timeout.
    fn hello_answered(&self) -> Result<()> {
        match self.conn.recv::<Response>()?.0 {
            Response::Ok => self
                .conn
                .socket()
                .set_read_timeout(None)
                .map_err(|_| DvkError::NoDaemon),
            Response::Err(code) => Err(DvkError::from_code(code)),
            _ => Err(DvkError::Protocol),
        }
    }

    /// Whether the daemon has closed this connection (it exited or was
    /// killed). Does not block.
    pub fn daemon_gone(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let sock = self.conn.socket();
        // A UNIX stream socket whose peer has closed reports POLLHUP
        // (which poll always reports, asked or not).
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::empty())];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(n) if n > 0 => fds[0]
                .revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
            _ => false,
        }
    }

    /// The socket this connection uses.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call(&self, req: &Request) -> Result<(Response, Vec<OwnedFd>)> {
        if crate::forkwatch::epoch() != self.fork_epoch {
            return Err(DvkError::NotBind);
        }
        self.conn.send(req, &[])?;
        let (resp, fds) = self.conn.recv::<Response>()?;
        match resp {
            Response::Err(code) => Err(DvkError::from_code(code)),
            r => Ok((r, fds)),
        }
    }

    fn call_ok(&self, req: &Request) -> Result<()> {
        match self.call(req)?.0 {
            Response::Ok => Ok(()),
            _ => Err(DvkError::Protocol),
        }
    }

    fn call_ep(&self, req: &Request) -> Result<Endpoint> {
        match self.call(req)?.0 {
            Response::Endpoint(e) => Ok(e),
            _ => Err(DvkError::Protocol),
        }
    }

    /// `dvs_init`: initialises the DVS on this node.
    pub fn dvs_init(&self, node: i32, params: &DvsParams) -> Result<()> {
        self.call_ok(&Request::DvsInit {
            node,
            params: *params,
        })
    }

    /// `dvs_end`: ends every DC on this node and de-initialises the DVS.
    pub fn dvs_end(&self) -> Result<()> {
        self.call_ok(&Request::DvsEnd)
    }

    /// `getdvsinfo`.
    pub fn getdvsinfo(&self) -> Result<DvsInfo> {
        match self.call(&Request::GetDvsInfo)?.0 {
            Response::DvsInfo(i) => Ok(i),
            _ => Err(DvkError::Protocol),
        }
    }

    /// `dc_init`: creates a DC on this node; returns the local node id.
    pub fn dc_init(&self, params: &DcParams) -> Result<i32> {
        match self.call(&Request::DcInit(params.clone()))?.0 {
            Response::Node(n) => Ok(n),
            _ => Err(DvkError::Protocol),
        }
    }

    /// Makes `node` take part in DC `dcid` of this node (a manager call):
    /// the DC is created there, this node's endpoints of the DC become
    /// remote endpoints there, the node starts its servers of the DC
    /// (SYSTASK, in a `dvs node`), and their endpoints become remote
    /// endpoints here. `node` must be in the DC's node set and up.
    pub fn dc_join(&self, dcid: i32, node: i32) -> Result<()> {
        self.call_ok(&Request::DcJoin { dcid, node })
    }

    /// `dc_end`: unbinds every endpoint of the DC and removes it.
    pub fn dc_end(&self, dcid: i32) -> Result<()> {
        self.call_ok(&Request::DcEnd { dcid })
    }

    /// `getdcinfo`.
    pub fn getdcinfo(&self, dcid: i32) -> Result<DcInfo> {
        match self.call(&Request::GetDcInfo { dcid })?.0 {
            Response::DcInfo(i) => Ok(i),
            _ => Err(DvkError::Protocol),
        }
    }

    /// Finds a DC id by name.
    pub fn dc_lookup(&self, name: &str) -> Result<i32> {
        match self
            .call(&Request::DcLookup {
                name: name.to_string(),
            })?
            .0
        {
            Response::Dc(d) => Ok(d),
            _ => Err(DvkError::Protocol),
        }
    }

    fn grant(&self, req: &Request) -> Result<Ipc> {
        match self.call(req)? {
            (Response::Granted(g), fds) => {
                let own = Dvk::connect(&self.path)?;
                Ipc::from_grant(own, g, fds)
            }
            _ => Err(DvkError::Protocol),
        }
    }

    /// `bind`: binds the calling process to `ep` in DC `dcid` and returns
    /// the IPC handle. The endpoint ends when the process ends.
    pub fn bind(&self, dcid: i32, ep: Endpoint) -> Result<Ipc> {
        self.grant(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Process,
        })
    }

    /// `tbind`: binds the calling thread only; the endpoint ends when the
    /// thread ends.
    pub fn tbind(&self, dcid: i32, ep: Endpoint) -> Result<Ipc> {
        self.grant(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Thread,
        })
    }

    /// `lclbind`: binds another local process (by host pid) to `ep`; given
    /// a thread id, binds that thread only. The bound task obtains its
    /// handle with [`Dvk::wait4bind`].
    pub fn lclbind(&self, dcid: i32, pid: i32, ep: Endpoint) -> Result<Endpoint> {
        self.call_ep(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Pid(pid),
        })
    }

    /// `rmtbind`: registers `ep` as running on `node`. Local endpoints then
    /// reach it through the proxies; messages from it are accepted here.
    pub fn rmtbind(&self, dcid: i32, ep: Endpoint, node: i32) -> Result<Endpoint> {
        self.call_ep(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Remote(node),
        })
    }

    /// `bkupbind`: binds local process `pid` as the backup of `ep`, whose
    /// primary runs on `node`. IPC with `ep` goes to the primary; the
    /// backup takes over when a manager binds it again as Local.
    pub fn bkupbind(&self, dcid: i32, pid: i32, ep: Endpoint, node: i32) -> Result<Endpoint> {
        self.call_ep(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Backup { pid, node },
        })
    }

    /// `replbind`: binds local process `pid` as a replica of `ep`: IPC with
    /// `ep` on this node goes to it, as with a Local endpoint.
    pub fn replbind(&self, dcid: i32, pid: i32, ep: Endpoint) -> Result<Endpoint> {
        self.call_ep(&Request::Bind {
            dcid,
            ep,
            target: BindTarget::Replica(pid),
        })
    }

    /// Has the node daemon carry out a `vcopy` between the caller (bound as
    /// `src` or `dst`) and an endpoint of another node.
    pub(crate) fn remote_copy(
        &self,
        dcid: i32,
        src: Endpoint,
        src_addr: u64,
        dst: Endpoint,
        dst_addr: u64,
        len: usize,
    ) -> Result<()> {
        self.call_ok(&Request::RemoteCopy {
            dcid,
            src,
            src_addr,
            dst,
            dst_addr,
            len: len as u64,
        })
    }

    /// `unbind`.
    pub fn unbind(&self, dcid: i32, ep: Endpoint) -> Result<()> {
        self.call_ok(&Request::Unbind { dcid, ep })
    }

    /// Tells the endpoint that the caller (bound as `ep`) waits for a
    /// reply from that a signal interrupted the wait (a
    /// [`crate::NotifyKind::Signal`] notification); nothing if it waits
    /// for no reply.
    pub fn interrupt(&self, dcid: i32, ep: Endpoint) -> Result<()> {
        self.call_ok(&Request::Interrupt { dcid, ep })
    }

    /// `getprocinfo`. `ep` may also be a bare slot number (generation 0).
    pub fn getprocinfo(&self, dcid: i32, ep: Endpoint) -> Result<ProcInfo> {
        match self.call(&Request::GetProcInfo { dcid, ep })?.0 {
            Response::ProcInfo(i) => Ok(i),
            _ => Err(DvkError::Protocol),
        }
    }

    /// `wait4bind`: blocks until someone binds the calling thread's process
    /// (or thread), then returns its IPC handle. A task that is already
    /// bound gets its binding again (this is how a program re-attaches
    /// after `execve`).
    pub fn wait4bind(&self) -> Result<Ipc> {
        self.grant(&Request::Wait4Bind { timeout_ms: None })
    }

    /// `wait4bind_T`.
    pub fn wait4bind_t(&self, timeout: Duration) -> Result<Ipc> {
        self.grant(&Request::Wait4Bind {
            timeout_ms: ms(Some(timeout)),
        })
    }

    /// `wait4bindep[_T]`: blocks until `ep` is bound in `dcid`.
    pub fn wait4bindep(
        &self,
        dcid: i32,
        ep: Endpoint,
        timeout: Option<Duration>,
    ) -> Result<Endpoint> {
        self.call_ep(&Request::Wait4BindEp {
            dcid,
            ep,
            timeout_ms: ms(timeout),
        })
    }

    /// `wait4unbind[_T]`: blocks until `ep` is no longer bound in `dcid`.
    pub fn wait4unbind(&self, dcid: i32, ep: Endpoint, timeout: Option<Duration>) -> Result<()> {
        self.call_ok(&Request::Wait4Unbind {
            dcid,
            ep,
            timeout_ms: ms(timeout),
        })
    }

    /// `setpriv`.
    pub fn setpriv(&self, dcid: i32, ep: Endpoint, record: &PrivRecord) -> Result<()> {
        self.call_ok(&Request::SetPriv {
            dcid,
            ep,
            record: *record,
        })
    }

    /// `getpriv`.
    pub fn getpriv(&self, dcid: i32, ep: Endpoint) -> Result<PrivRecord> {
        match self.call(&Request::GetPriv { dcid, ep })?.0 {
            Response::Priv(p) => Ok(p),
            _ => Err(DvkError::Protocol),
        }
    }

    /// `migr_start`: freezes all traffic to and from `ep` on this node.
    pub fn migr_start(&self, dcid: i32, ep: Endpoint) -> Result<()> {
        self.call_ok(&Request::MigrStart { dcid, ep })
    }

    /// `migr_rollback`: resumes the traffic of `ep` where it was.
    pub fn migr_rollback(&self, dcid: i32, ep: Endpoint) -> Result<()> {
        self.call_ok(&Request::MigrRollback { dcid, ep })
    }

    /// The thread binding this connection acts as passes to thread `tid`
    /// of the caller's process (which must be alive and unbound); with
    /// `tid == 0` it is parked: it stays bound to the process, not to any
    /// thread, until a thread of the process takes it again with this
    /// call. A process keeps the endpoints of its ended threads this way,
    /// and a new thread costs one daemon round trip.
    pub fn retask(&self, tid: i32) -> Result<()> {
        self.call_ok(&Request::Retask { tid })
    }

    /// `migr_commit`: `ep` now runs as host process `pid` on `node`;
    /// resumes its traffic. Callers blocked during the freeze continue.
    pub fn migr_commit(&self, pid: i32, dcid: i32, ep: Endpoint, node: i32) -> Result<()> {
        self.call_ok(&Request::MigrCommit {
            pid,
            dcid,
            ep,
            node,
        })
    }

    /// Everything `dvs status` shows.
    pub fn status(&self) -> Result<StatusSnapshot> {
        match self.call(&Request::Status)?.0 {
            Response::Status(s) => Ok(*s),
            _ => Err(DvkError::Protocol),
        }
    }

    /// Asks the daemon to end the DVS and exit.
    pub fn shutdown(&self) -> Result<()> {
        self.call_ok(&Request::Shutdown)
    }

    /// Maps peers of a DC the caller is bound in: the read-only mailbox,
    /// doorbell and binding sequence number of each of `eps` (at most
    /// [`crate::proto::MAX_PEERS_PER_MAP`]), in order.
    pub(crate) fn map_peers(&self, dcid: i32, eps: &[Endpoint]) -> Result<Vec<MappedPeer>> {
        let answer = self.call(&Request::MapPeers {
            dcid: Some(dcid),
            eps: eps.to_vec(),
        })?;
        mapped_peers(answer, eps.len())
    }

    /// Reads the answer to a `MapPeers` request for `n` peers.
    fn peers_answered(&self, n: usize) -> Result<Vec<MappedPeer>> {
        mapped_peers(self.conn.recv::<Response>()?, n)
    }
}

/// The peers of a `MapPeers` answer for `n` of them.
fn mapped_peers(answer: (Response, Vec<OwnedFd>), n: usize) -> Result<Vec<MappedPeer>> {
    match answer {
        (Response::Peers { seqs, .. }, fds) if fds.len() == 2 * n && seqs.len() == n => {
            let mut it = fds.into_iter();
            let mut out = Vec::with_capacity(n);
            for seq in seqs {
                if let (Some(mbx), Some(bell)) = (it.next(), it.next()) {
                    out.push(MappedPeer { seq, mbx, bell });
                }
            }
            Ok(out)
        }
        (Response::Err(code), _) => Err(DvkError::from_code(code)),
        _ => Err(DvkError::Protocol),
    }
}
