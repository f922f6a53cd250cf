//! M3-IPC between bound processes: `send`, `receive`, `sendrec`,
//! `rcvrqst`, `reply` and `notify`, each blocking call with a timed `_t`
//! variant. (`vcopy` is in `vcopy.rs`.)
//!
//! The data path is direct: the daemon is never involved once both peers
//! have mapped each other. A message travels like this:
//!
//! 1. The sender writes it into its own mailbox, in the outgoing slot that
//!    belongs to the destination, publishes `(seq, POSTED, kind)` and
//!    rings the destination's doorbell.
//! 2. The receiver picks the pending sender with the lowest FIFO ticket,
//!    reads the message from the sender's (read-only) mailbox, and claims
//!    it by publishing `(sender, seq)` in its own `consumed` table.
//! 3. The sender sees the claim and returns (or, for `sendrec`, waits for
//!    the reply in the same way in the other direction).
//!
//! `m_source` comes from *which* mailbox the message was read from, which
//! only its owner can write. A sender that gives up (timeout, death of the
//! receiver) withdraws its message with a Dekker-style handshake on
//! `(phase, consumed)` so that a message is either delivered and reported
//! as sent, or not delivered and reported as failed, never both.

use crate::client::Dvk;
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::layout::{
    kind, pack_out, pack_pair, pack_status, phase, unpack_out, unpack_pair, unpack_refusal,
    unpack_status, DcTable, Doorbell, IpcState, Mailbox, TableGeometry, DC_RUNNING, F_FROZEN,
    F_KIND_SHIFT, F_PRIV,
};
use crate::message::{Message, NotifyKind};
use crate::params::{ipc_call, DcParams, ProcKind};
use crate::proto::Grant;
use crate::wait::{wait_until, wait_until_intr, Expired, Spin};
use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A mapped DC peer.
pub(crate) struct Peer {
    pub(crate) ep: Endpoint,
    /// Binding sequence of the slot when mapped: the same endpoint number
    /// bound again is a different mailbox.
    seq: u32,
    pub(crate) mbx: Mailbox,
    pub(crate) bell: Doorbell,
}

/// What a receive accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `receive(ANY)`: notifications first, then `send`/`sendrec` messages.
    Any,
    /// `receive(HARDWARE)`: notifications only.
    Notifications,
    /// `receive(src)`: `send`/`sendrec` messages from `src`.
    From(Endpoint),
    /// `rcvrqst`: `sendrec` requests only.
    Request,
    /// The reply phase of `sendrec` to `src`: `send`/`reply` from `src`.
    Reply(Endpoint),
}

/// A thread's binding to an endpoint of a DC: the handle for M3-IPC.
///
/// Obtained from [`Dvk::bind`], [`Dvk::tbind`] or [`Dvk::wait4bind`]. It
/// owns a control connection to the daemon ([`Ipc::dvk`]) through which
/// the bound task makes its management calls. Dropping it unbinds the
/// endpoint. An `Ipc` is meant to be used
/// by the thread it was bound for; after `fork` the child must not use the
/// parent's `Ipc` (every call fails with `EDVSNOTBIND`), because children
/// do not inherit registration.
pub struct Ipc {
    dvk: Dvk,
    pub(crate) table: DcTable,
    pub(crate) geo: TableGeometry,
    dc: DcParams,
    pub(crate) me: Endpoint,
    pub(crate) slot: usize,
    pub(crate) mbx: Mailbox,
    pub(crate) bell: Doorbell,
    peers: RefCell<Vec<Option<Arc<Peer>>>>,
    pending: RefCell<Vec<u64>>,
    /// How the next `receive` waits: a server whose last reply went to
    /// another node waits for that node's next request as for a remote
    /// answer (see [`Spin`]).
    next_receive: Cell<Spin>,
    fork_epoch: u64,
    /// The DC table's identity (device, inode of its memfd): bindings to
    /// different daemons, or to a DC created again with the same id, never
    /// share peers.
    table_id: (u64, u64),
}

/// Peers mapped by any binding of this process, by DC table and slot: another
/// thread's binding (or a fork child's, whose inherited mappings stay
/// valid) reuses them instead of asking the daemon again. An entry is used
/// only while its endpoint and binding sequence still match the table.
type PeerCache = std::collections::HashMap<((u64, u64), usize), Arc<Peer>>;

fn shared_peers<R>(f: impl FnOnce(&mut PeerCache) -> R) -> R {
    static PEERS: std::sync::Mutex<Option<PeerCache>> = std::sync::Mutex::new(None);
    let mut g = PEERS.lock().unwrap_or_else(|p| p.into_inner());
    f(g.get_or_insert_with(PeerCache::new))
}

pub(crate) fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

impl Ipc {
    pub(crate) fn from_grant(dvk: Dvk, grant: Grant, mut fds: Vec<OwnedFd>) -> Result<Ipc> {
        if fds.len() != 3 {
            return Err(DvkError::Protocol);
        }
        let bell_fd = fds.pop().ok_or(DvkError::Protocol)?;
        let mbx_fd = fds.pop().ok_or(DvkError::Protocol)?;
        let table_fd = fds.pop().ok_or(DvkError::Protocol)?;
        let table = DcTable::open(&table_fd)?;
        let st = nix::sys::stat::fstat(&table_fd)?;
        let table_id = (st.st_dev, st.st_ino);
        let geo = table.geometry();
        let slot = grant
            .dc
            .slot_of(grant.ep.p_nr())
            .ok_or(DvkError::Protocol)?;
        if geo.nslots != grant.dc.nr_slots() {
            return Err(DvkError::Protocol);
        }
        let mbx = Mailbox::open(&mbx_fd, geo.nslots, true)?;
        let bell = Doorbell::open(&bell_fd, geo.nslots)?;
        let words = bell.pending_words();
        crate::forkwatch::install();
        Ok(Ipc {
            dvk,
            table,
            geo,
            dc: grant.dc,
            me: grant.ep,
            slot,
            mbx,
            bell,
            peers: RefCell::new((0..geo.nslots).map(|_| None).collect()),
            // Scan every source once: hints swapped out by a previous
            // image of this task (before `execve`) are not lost.
            pending: RefCell::new(vec![u64::MAX; words]),
            next_receive: Cell::new(Spin::Local),
            fork_epoch: crate::forkwatch::epoch(),
            table_id,
        })
    }

    /// The bound endpoint.
    pub fn endpoint(&self) -> Endpoint {
        self.me
    }

    /// Frees this handle's memory and unmaps its table, mailbox and
    /// doorbell without a word to the node daemon and without closing its
    /// connection: a handle that a vfork child made in its parent's memory,
    /// whose descriptor was the child's (the number may name another file
    /// of the parent's by now).
    pub fn forget_foreign(self) {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, and each field with
        // something to release is moved out of it exactly once.
        let (dvk, table, mbx, bell, peers, pending, dc) = unsafe {
            (
                std::ptr::read(&me.dvk),
                std::ptr::read(&me.table),
                std::ptr::read(&me.mbx),
                std::ptr::read(&me.bell),
                std::ptr::read(&me.peers),
                std::ptr::read(&me.pending),
                std::ptr::read(&me.dc),
            )
        };
        dvk.forget_connection();
        drop((table, mbx, bell, peers, pending, dc));
    }

    /// The DC id.
    pub fn dcid(&self) -> i32 {
        self.dc.dcid
    }

    /// The DC parameters.
    pub fn dc(&self) -> &DcParams {
        &self.dc
    }

    /// The local node id.
    pub fn node(&self) -> i32 {
        self.geo.node
    }

    /// Whether this handle is dead for good while its DC runs: its
    /// endpoint was unbound (the daemon does that when the bound task
    /// ends), or this is a fork child's inherited copy. False while the DC
    /// is ending, when every slot is unbound under running tasks.
    pub fn was_unbound(&self) -> bool {
        if crate::forkwatch::epoch() != self.fork_epoch {
            return true;
        }
        self.table.state().load(Ordering::Acquire) == DC_RUNNING
            && self.table.ep(self.slot).load(Ordering::Acquire) != self.me.0
    }

    /// The control connection of this binding, for management calls made
    /// as this endpoint.
    pub fn dvk(&self) -> &Dvk {
        &self.dvk
    }

    // ------------------------------------------------------------ helpers

    /// Fails unless this binding is still valid: same process (not a fork
    /// child), DC running, endpoint still bound.
    pub(crate) fn check_alive(&self) -> Result<()> {
        if crate::forkwatch::epoch() != self.fork_epoch {
            return Err(DvkError::NotBind);
        }
        if self.table.state().load(Ordering::Acquire) != DC_RUNNING {
            return Err(DvkError::DcNotRun);
        }
        if self.table.ep(self.slot).load(Ordering::Acquire) != self.me.0 {
            return Err(DvkError::NotBind);
        }
        Ok(())
    }

    /// `Some(Err(NoDaemon))` if the node daemon is gone (its end of our
    /// control connection is closed): nobody will unbind dead peers or
    /// wake us any more. One `poll`; only called by sleeping waiters.
    pub(crate) fn daemon_gone<T>(&self) -> Option<Result<T>> {
        self.dvk.daemon_gone().then_some(Err(DvkError::NoDaemon))
    }

    fn check_call(&self, call: u32) -> Result<()> {
        self.check_alive()?;
        if self.table.ipc_mask(self.slot).load(Ordering::Relaxed) & call == 0 {
            return Err(DvkError::CallDenied);
        }
        Ok(())
    }

    pub(crate) fn privileged(&self) -> bool {
        self.table.flags(self.slot).load(Ordering::Acquire) & F_PRIV != 0
    }

    /// Slot index of a non-special endpoint of this DC.
    pub(crate) fn slot_of(&self, ep: Endpoint) -> Result<usize> {
        if ep.is_special() {
            return Err(DvkError::BadSrcDst);
        }
        self.dc.slot_of(ep.p_nr()).ok_or(DvkError::BadEndpoint)
    }

    /// Checks that `ep` is bound right now; `died` is the error when its
    /// slot holds another generation.
    pub(crate) fn lookup(&self, ep: Endpoint, died: DvkError) -> Result<(usize, u32)> {
        let s = self.slot_of(ep)?;
        let cur = self.table.ep(s).load(Ordering::Acquire);
        if cur == Endpoint::NONE.0 {
            return Err(DvkError::NotBind);
        }
        if cur != ep.0 {
            return Err(died);
        }
        // Remote (and Backup) endpoints have a surrogate mailbox that the
        // node daemon's proxy owns: IPC with them looks local.
        Ok((s, self.table.flags(s).load(Ordering::Acquire)))
    }

    /// Whether the endpoint in slot `s` lives on another node (Remote, or
    /// a Backup whose primary is elsewhere): its mailbox is the proxy's.
    pub(crate) fn is_remote(&self, s: usize) -> bool {
        let flags = self.table.flags(s).load(Ordering::Acquire);
        matches!(
            ProcKind::from_bits(flags >> F_KIND_SHIFT),
            ProcKind::Remote | ProcKind::Backup
        )
    }

    /// How a task waits for the endpoint in slot `s`: longer when the
    /// answer crosses the network.
    fn spin_for(&self, s: usize) -> Spin {
        if self.is_remote(s) {
            Spin::Remote
        } else {
            Spin::Local
        }
    }

    /// Counts a message sent to slot `s`.
    fn count_sent(&self, s: usize) {
        if self.is_remote(s) {
            self.mbx.rsnt().fetch_add(1, Ordering::Relaxed);
        } else {
            self.mbx.lsnt().fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The mapping of the peer bound to slot `s` as `ep`, mapping it through
    /// the daemon the first time.
    pub(crate) fn peer(&self, s: usize, ep: Endpoint) -> Result<Arc<Peer>> {
        let seq = self.table.seq(s).load(Ordering::Acquire);
        if let Some(p) = self.cached_peer(s, ep, seq) {
            return Ok(p);
        }
        let m = self
            .dvk
            .map_peers(self.dc.dcid, &[ep])?
            .pop()
            .ok_or(DvkError::Protocol)?;
        self.add_peer(s, ep, m.seq, &m.mbx, &m.bell)
    }

    /// The mapping of peer `ep` (slot `s`, binding sequence `seq`) if this
    /// handle or another of the process has it.
    fn cached_peer(&self, s: usize, ep: Endpoint, seq: u32) -> Option<Arc<Peer>> {
        let fresh = |p: &&Arc<Peer>| p.ep == ep && p.seq == seq;
        if let Some(p) = self.peers.borrow()[s].as_ref().filter(fresh) {
            return Some(p.clone());
        }
        let p = shared_peers(|m| m.get(&(self.table_id, s)).filter(fresh).cloned())?;
        self.peers.borrow_mut()[s] = Some(p.clone());
        Some(p)
    }

    /// Caches the mapping of peer `ep` (slot `s`, binding sequence `seq`)
    /// from its descriptors.
    fn add_peer(
        &self,
        s: usize,
        ep: Endpoint,
        seq: u32,
        mbx_fd: &OwnedFd,
        bell_fd: &OwnedFd,
    ) -> Result<Arc<Peer>> {
        let p = Arc::new(Peer {
            ep,
            seq,
            mbx: Mailbox::open(mbx_fd, self.geo.nslots, false)?,
            bell: Doorbell::open(bell_fd, self.geo.nslots)?,
        });
        if p.mbx.ep() != ep {
            return Err(DvkError::DstDied);
        }
        self.peers.borrow_mut()[s] = Some(p.clone());
        shared_peers(|m| m.insert((self.table_id, s), p.clone()));
        Ok(p)
    }

    /// Caches the peers `eps` that `MapPeers` mapped (in that order).
    pub(crate) fn add_peers(&self, eps: &[Endpoint], mapped: Vec<crate::client::MappedPeer>) {
        for (&ep, m) in eps.iter().zip(mapped) {
            if let Ok((s, _)) = self.lookup(ep, DvkError::DstDied) {
                let _ = self.add_peer(s, ep, m.seq, &m.mbx, &m.bell);
            }
        }
    }

    /// Publishes this endpoint's IPC state. Before a blocking state's
    /// checks, a full fence: the node daemon skips waking a peer whose
    /// state waits on another endpoint when it unbinds one (see
    /// `State::unbind_slot`), so either it sees this state or the checks
    /// that follow see the unbind.
    fn set_status(&self, st: IpcState, peer: Endpoint) {
        self.mbx
            .status()
            .store(pack_status(st, peer), Ordering::Release);
        if st != IpcState::Running {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    /// Waits while this endpoint or the one in slot `s` is frozen by a
    /// migration. Callers blocked here continue after commit/rollback.
    fn wait_thaw(&self, s: usize, deadline: Option<Instant>) -> Result<()> {
        let frozen = |slot: usize| self.table.flags(slot).load(Ordering::Acquire) & F_FROZEN != 0;
        if !frozen(self.slot) && !frozen(s) {
            return Ok(());
        }
        wait_until(
            &self.bell,
            Spin::Local,
            deadline,
            || {
                if let Err(e) = self.check_alive() {
                    return Some(Err(e));
                }
                (!frozen(self.slot) && !frozen(s)).then_some(Ok(()))
            },
            || self.daemon_gone(),
        )
        .map_err(|_: Expired| DvkError::TimedOut)?
    }

    // ------------------------------------------------------------ sending

    fn poster(&self) -> Poster<'_> {
        Poster {
            mbx: &self.mbx,
            me: self.me,
            slot: self.slot,
        }
    }

    /// Posts `m` to the peer in slot `b` and rings it; returns the sequence
    /// number. Does not wait.
    fn post(&self, b: usize, peer: &Peer, m: &Message, k: u32) -> u32 {
        self.poster().post(b, &peer.mbx, &peer.bell, m, k)
    }

    /// Withdraws message `seq` towards slot `b`. Returns true if the
    /// receiver had already claimed it (then it counts as delivered).
    fn withdraw(&self, b: usize, peer: &Peer, seq: u32) -> bool {
        self.poster().withdraw(b, &peer.mbx, &peer.bell, seq)
    }

    /// Resolves and checks a destination for a sending call.
    fn prepare_dst(
        &self,
        dst: Endpoint,
        deadline: Option<Instant>,
    ) -> Result<(Endpoint, usize, Arc<Peer>)> {
        let dst = if dst == Endpoint::SELF { self.me } else { dst };
        if dst == self.me {
            return Err(DvkError::Locked);
        }
        let b = self.slot_of(dst)?;
        self.lookup(dst, DvkError::DstDied)?;
        self.wait_thaw(b, deadline)?;
        self.lookup(dst, DvkError::DstDied)?;
        let peer = self.peer(b, dst)?;
        Ok((dst, b, peer))
    }

    /// Whether `peer` is blocked sending to us with a message we have not
    /// taken: sending to it now would deadlock.
    fn would_deadlock(&self, peer: &Peer) -> bool {
        let (st, to) = unpack_status(peer.mbx.status().load(Ordering::Acquire));
        if !matches!(st, IpcState::Sending | IpcState::SendRec) || to != self.me {
            return false;
        }
        let (seq, ph, _) = unpack_out(peer.mbx.out_state(self.slot).load(Ordering::Acquire));
        let s = match self.dc.slot_of(peer.ep.p_nr()) {
            Some(s) => s,
            None => return false,
        };
        ph == phase::POSTED
            && self.mbx.consumed(s).load(Ordering::Acquire) != pack_pair(peer.ep, seq)
    }

    /// Sends and waits until the destination has taken the message.
    fn send_and_wait(
        &self,
        dst: Endpoint,
        m: &Message,
        k: u32,
        deadline: Option<Instant>,
    ) -> Result<(usize, Arc<Peer>)> {
        let (dst, b, peer) = self.prepare_dst(dst, deadline)?;
        if self.would_deadlock(&peer) {
            return Err(DvkError::Locked);
        }
        let st = if k == kind::SENDREC {
            IpcState::SendRec
        } else {
            IpcState::Sending
        };
        self.set_status(st, dst);
        let seq = self.post(b, &peer, m, k);
        let key = pack_pair(self.me, seq);
        let a = self.slot;
        let spin = self.spin_for(b);
        let r = wait_until(
            &self.bell,
            spin,
            deadline,
            || {
                if peer.mbx.consumed(a).load(Ordering::Acquire) == key {
                    return Some(Ok(()));
                }
                // Rejected by the destination node (remote peers only).
                let (rseq, code) = unpack_refusal(peer.mbx.refused(a).load(Ordering::Acquire));
                if rseq == seq && code < 0 {
                    return Some(Err(DvkError::from_code(code)));
                }
                if self.table.ep(b).load(Ordering::Acquire) != dst.0 {
                    return Some(Err(DvkError::DstDied));
                }
                self.check_alive().err().map(Err)
            },
            || self.daemon_gone(),
        );
        let r = match r {
            Ok(Ok(())) => {
                self.mbx.out_confirmed(b).store(seq, Ordering::Release);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(Expired) => Err(DvkError::TimedOut),
        };
        let r = match r {
            Err(e) if !self.withdraw(b, &peer, seq) => Err(e),
            _ => Ok((b, peer)),
        };
        if r.is_err() || k != kind::SENDREC {
            self.set_status(IpcState::Running, Endpoint::NONE);
        }
        if r.is_ok() {
            self.count_sent(b);
        }
        r
    }

    /// `send`: blocks until `dst` receives `m`.
    pub fn send(&self, dst: Endpoint, m: &Message) -> Result<()> {
        self.send_opt(dst, m, None)
    }

    /// `send_T`: `send` with a timeout (`EDVSTIMEDOUT`).
    pub fn send_t(&self, dst: Endpoint, m: &Message, timeout: Duration) -> Result<()> {
        self.send_opt(dst, m, Some(timeout))
    }

    fn send_opt(&self, dst: Endpoint, m: &Message, timeout: Option<Duration>) -> Result<()> {
        self.check_call(ipc_call::SEND)?;
        self.send_and_wait(dst, m, kind::SEND, deadline(timeout))
            .map(|_| ())
    }

    /// `sendrec`: sends `m` to `dst` and waits for the reply in `m`.
    pub fn sendrec(&self, dst: Endpoint, m: &mut Message) -> Result<()> {
        self.sendrec_opt(dst, m, None)
    }

    /// `sendrec_T`: `sendrec` with a timeout covering both phases.
    pub fn sendrec_t(&self, dst: Endpoint, m: &mut Message, timeout: Duration) -> Result<()> {
        self.sendrec_opt(dst, m, Some(timeout))
    }

    fn sendrec_opt(&self, dst: Endpoint, m: &mut Message, timeout: Option<Duration>) -> Result<()> {
        self.check_call(ipc_call::SENDREC)?;
        let dl = deadline(timeout);
        let dst = if dst == Endpoint::SELF { self.me } else { dst };
        let (b, _) = self.send_and_wait(dst, m, kind::SENDREC, dl)?;
        self.set_status(IpcState::ReplyWait, dst);
        // A signal handler that ran while we waited may end the call: the
        // server hears of it from the DVK (once per call).
        let mut told = false;
        let r = self.receive_mode_with(Mode::Reply(dst), self.spin_for(b), dl, |forced| {
            if !told && (forced || crate::wait::signal_ends_calls()) {
                told = true;
                let _ = self.dvk.interrupt(self.dc.dcid, self.me);
            }
        });
        *m = r?;
        Ok(())
    }

    /// `reply`: delivers `m` to `dst`, which must be waiting in `sendrec`
    /// for the caller (`EDVSNOTREADY` otherwise). Never blocks.
    pub fn reply(&self, dst: Endpoint, m: &Message) -> Result<()> {
        self.check_call(ipc_call::REPLY)?;
        let dst = if dst == Endpoint::SELF { self.me } else { dst };
        if dst == self.me {
            return Err(DvkError::Locked);
        }
        let (b, _) = self.lookup(dst, DvkError::DstDied)?;
        let peer = self.peer(b, dst)?;
        let (st, to) = unpack_status(peer.mbx.status().load(Ordering::Acquire));
        if !matches!(st, IpcState::SendRec | IpcState::ReplyWait) || to != self.me {
            return Err(DvkError::NotReady);
        }
        self.post(b, &peer, m, kind::REPLY);
        self.count_sent(b);
        self.next_receive.set(self.spin_for(b));
        Ok(())
    }

    /// How long [`Ipc::abandon_call`] waits for an answer on its way
    /// before it asks the server to end the call.
    const SETTLE: Duration = Duration::from_millis(20);

    /// Cleans up after a call that the calling thread left without
    /// returning: a signal handler `longjmp`ed out of its wait (shells do
    /// it to end their `wait` builtin when a trapped signal comes). A
    /// message still posted is withdrawn; a request a server took (one it
    /// keeps for later, such as a `wait` for a child) is ended the way a
    /// signal ends it (`Interrupt`: the server answers `EINTR`), and that
    /// answer is taken here, so that it cannot pass for the reply to a
    /// later call. Waits for that answer at most `patience`.
    pub fn abandon_call(&self, patience: Duration) {
        crate::wait::forget_wait();
        let (st, peer) = unpack_status(self.mbx.status().load(Ordering::Acquire));
        if matches!(st, IpcState::Sending | IpcState::SendRec) {
            if let Some(b) = self.dc.slot_of(peer.p_nr()) {
                let (seq, ph, _) = unpack_out(self.mbx.out_state(b).load(Ordering::Acquire));
                let taken = match ph {
                    phase::POSTED => self.peer(b, peer).is_ok_and(|p| self.withdraw(b, &p, seq)),
                    phase::ABORTED => false,
                    _ => true,
                };
                if !taken || st == IpcState::Sending {
                    self.set_status(IpcState::Running, Endpoint::NONE);
                    return;
                }
                self.set_status(IpcState::ReplyWait, peer);
            }
        }
        let (st, peer) = unpack_status(self.mbx.status().load(Ordering::Acquire));
        if st == IpcState::ReplyWait {
            let spin = self.spin_for(self.dc.slot_of(peer.p_nr()).unwrap_or(0));
            // A signal sent through PM ends the call at its server by
            // itself: that answer comes at once. Asking for it as well
            // could end the next call instead, if the request arrived
            // after that call's.
            let r = self.receive_mode_with(
                Mode::Reply(peer),
                spin,
                deadline(Some(Self::SETTLE)),
                |_| {},
            );
            if matches!(r, Err(DvkError::TimedOut)) {
                self.set_status(IpcState::ReplyWait, peer);
                let _ = self.dvk.interrupt(self.dc.dcid, self.me);
                let _ = self.receive_mode_with(
                    Mode::Reply(peer),
                    spin,
                    deadline(Some(patience)),
                    |_| {},
                );
            }
        }
        self.set_status(IpcState::Running, Endpoint::NONE);
    }

    /// `notify`: sets a pending notification at `dst`, which `receive`
    /// delivers as a message from `HARDWARE`. Privileged callers only;
    /// never blocks; repeated notifications before a receive coalesce.
    pub fn notify(&self, dst: Endpoint) -> Result<()> {
        self.check_call(ipc_call::NOTIFY)?;
        if !self.privileged() {
            return Err(DvkError::Privileges);
        }
        let dst = if dst == Endpoint::SELF { self.me } else { dst };
        let (b, _) = self.lookup(dst, DvkError::DstDied)?;
        if b == self.slot {
            return Err(DvkError::Locked);
        }
        let peer = self.peer(b, dst)?;
        let cell = self.mbx.ntf_sent(b);
        let (to, n) = unpack_pair(cell.load(Ordering::Relaxed));
        let next = if to == dst {
            n.wrapping_add(1).max(1)
        } else {
            1
        };
        cell.store(pack_pair(dst, next), Ordering::Release);
        peer.bell.ring_from(self.slot);
        self.count_sent(b);
        Ok(())
    }

    // ---------------------------------------------------------- receiving

    /// `receive`: blocks until a message from `src` arrives. With `ANY`,
    /// pending notifications come first, then senders in arrival order.
    /// With `HARDWARE`, only notifications are received.
    pub fn receive(&self, src: Endpoint) -> Result<Message> {
        self.receive_opt(src, None)
    }

    /// `receive_T`: `receive` with a timeout.
    pub fn receive_t(&self, src: Endpoint, timeout: Duration) -> Result<Message> {
        self.receive_opt(src, Some(timeout))
    }

    fn receive_opt(&self, src: Endpoint, timeout: Option<Duration>) -> Result<Message> {
        self.check_call(ipc_call::RECEIVE)?;
        let mode = match src {
            Endpoint::ANY => Mode::Any,
            Endpoint::HARDWARE => Mode::Notifications,
            Endpoint::SELF => return Err(DvkError::Locked),
            e if e == self.me => return Err(DvkError::Locked),
            e => {
                self.lookup(e, DvkError::SrcDied)?;
                Mode::From(e)
            }
        };
        self.set_status(IpcState::Receiving, src);
        self.receive_mode(mode, deadline(timeout))
    }

    /// `rcvrqst`: like `receive(ANY)` but only takes requests from
    /// processes waiting in `sendrec`.
    pub fn rcvrqst(&self) -> Result<Message> {
        self.rcvrqst_opt(None)
    }

    /// `rcvrqst_T`: `rcvrqst` with a timeout.
    pub fn rcvrqst_t(&self, timeout: Duration) -> Result<Message> {
        self.rcvrqst_opt(Some(timeout))
    }

    fn rcvrqst_opt(&self, timeout: Option<Duration>) -> Result<Message> {
        self.check_call(ipc_call::RCVRQST)?;
        self.set_status(IpcState::RcvRqst, Endpoint::ANY);
        self.receive_mode(Mode::Request, deadline(timeout))
    }

    fn receive_mode(&self, mode: Mode, deadline: Option<Instant>) -> Result<Message> {
        self.receive_mode_with(mode, self.next_receive.get(), deadline, |_| {})
    }

    fn receive_mode_with(
        &self,
        mode: Mode,
        spin: Spin,
        deadline: Option<Instant>,
        on_signal: impl FnMut(bool),
    ) -> Result<Message> {
        let r = wait_until_intr(
            &self.bell,
            spin,
            deadline,
            || self.try_receive(mode),
            || self.daemon_gone(),
            on_signal,
        );
        self.set_status(IpcState::Running, Endpoint::NONE);
        match r {
            Ok(r) => r,
            Err(Expired) => Err(DvkError::TimedOut),
        }
    }

    /// One non-blocking attempt to receive under `mode`.
    fn try_receive(&self, mode: Mode) -> Option<Result<Message>> {
        if let Err(e) = self.check_alive() {
            return Some(Err(e));
        }
        if let Mode::From(src) | Mode::Reply(src) = mode {
            let s = self.dc.slot_of(src.p_nr())?;
            if self.table.ep(s).load(Ordering::Acquire) != src.0 {
                // Gone: but what it sent before going (a reply, typically)
                // is still ours to take.
                if let Some(m) = self.take_from_gone(s, src, mode) {
                    return Some(Ok(m));
                }
                return Some(Err(if matches!(mode, Mode::Reply(_)) {
                    DvkError::DstDied
                } else {
                    DvkError::SrcDied
                }));
            }
        }
        if self.table.flags(self.slot).load(Ordering::Acquire) & F_FROZEN != 0 {
            return None;
        }
        // Move the doorbell hints into the private pending set.
        let mut pend = self.pending.borrow_mut();
        for (i, w) in pend.iter_mut().enumerate() {
            let bell = self.bell.pending(i);
            if bell.load(Ordering::Relaxed) != 0 {
                *w |= bell.swap(0, Ordering::SeqCst);
            }
        }
        let want_ntf = matches!(mode, Mode::Any | Mode::Notifications);
        if want_ntf {
            if let Some(m) = self.take_kernel_notification() {
                return Some(Ok(m));
            }
        }
        let only = match mode {
            Mode::From(e) | Mode::Reply(e) => self.dc.slot_of(e.p_nr()),
            _ => None,
        };
        // Candidates: (ticket, slot, peer, seq).
        let mut best: Option<(u64, usize, Arc<Peer>, u32)> = None;
        for i in 0..pend.len() {
            let mut w = pend[i];
            while w != 0 {
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                let s = i * 64 + bit;
                if only.is_some_and(|o| o != s) {
                    continue;
                }
                let (ntf, msg) = self.pending_from(s, mode);
                if want_ntf {
                    if let Some(m) = ntf {
                        return Some(Ok(m));
                    }
                }
                match msg {
                    Pending::Nothing => pend[i] &= !(1 << bit),
                    Pending::NotAcceptable => {}
                    Pending::Message(ticket, peer, seq) => {
                        if best.as_ref().is_none_or(|b| ticket < b.0) {
                            best = Some((ticket, s, peer, seq));
                        }
                    }
                }
            }
        }
        drop(pend);
        let (_, s, peer, seq) = best?;
        match self.claim(s, &peer, seq) {
            Some(m) => Some(Ok(m)),
            // Withdrawn under our feet: look again right away.
            None => self.try_receive(mode),
        }
    }

    fn take_kernel_notification(&self) -> Option<Message> {
        let head = self.table.kntf_head(self.slot).load(Ordering::Acquire);
        let tail = self.mbx.kntf_tail().load(Ordering::Relaxed);
        if head == tail {
            return None;
        }
        let (ep, k) = unpack_pair(
            self.table
                .kntf_entry(self.slot, tail)
                .load(Ordering::Acquire),
        );
        self.mbx
            .kntf_tail()
            .store(tail.wrapping_add(1), Ordering::Release);
        Some(Message::notification(ep, NotifyKind::from_u32(k)))
    }

    /// A message that endpoint `ep`, now unbound, posted to us before it
    /// went (from our mapping of its mailbox, which outlives it).
    fn take_from_gone(&self, s: usize, ep: Endpoint, mode: Mode) -> Option<Message> {
        let peer = self.peers.borrow()[s].clone().filter(|p| p.ep == ep)?;
        match self.pending_in(s, peer, mode).1 {
            Pending::Message(_, peer, seq) => self.claim(s, &peer, seq),
            _ => None,
        }
    }

    /// What slot `s` has pending for us: a notification (taken at once if
    /// present) and the state of its message slot.
    fn pending_from(&self, s: usize, mode: Mode) -> (Option<Message>, Pending) {
        let ep = Endpoint(self.table.ep(s).load(Ordering::Acquire));
        if ep == Endpoint::NONE || s == self.slot {
            return (None, Pending::Nothing);
        }
        let peer = match self.peer(s, ep) {
            Ok(p) => p,
            Err(_) => return (None, Pending::Nothing),
        };
        self.pending_in(s, peer, mode)
    }

    /// What the mapped peer of slot `s` has pending for us.
    fn pending_in(&self, s: usize, peer: Arc<Peer>, mode: Mode) -> (Option<Message>, Pending) {
        let ep = peer.ep;
        let a = self.slot;
        let mut ntf = None;
        let mut ntf_pending = false;
        let (to, n) = unpack_pair(peer.mbx.ntf_sent(a).load(Ordering::Acquire));
        if to == self.me
            && n != 0
            && self.mbx.ntf_seen(s).load(Ordering::Relaxed) != pack_pair(ep, n)
        {
            let privileged = self.table.flags(s).load(Ordering::Acquire) & F_PRIV != 0;
            if privileged && matches!(mode, Mode::Any | Mode::Notifications) {
                self.mbx
                    .ntf_seen(s)
                    .store(pack_pair(ep, n), Ordering::Release);
                ntf = Some(Message::notification(ep, NotifyKind::Notify));
            } else if privileged {
                ntf_pending = true;
            }
        }
        let (seq, ph, k) = unpack_out(peer.mbx.out_state(a).load(Ordering::Acquire));
        let live = matches!(ph, phase::POSTED | phase::CANCELLING)
            && peer.mbx.out_dst(a).load(Ordering::Relaxed) == self.mbx.address()
            && self.mbx.consumed(s).load(Ordering::Relaxed) != pack_pair(ep, seq);
        let msg = if !live {
            if ntf_pending {
                Pending::NotAcceptable
            } else {
                Pending::Nothing
            }
        } else {
            let ok = match mode {
                Mode::Any | Mode::From(_) => k == kind::SEND || k == kind::SENDREC,
                Mode::Request => k == kind::SENDREC,
                Mode::Reply(_) => k == kind::SEND || k == kind::REPLY,
                Mode::Notifications => false,
            };
            if ok {
                Pending::Message(peer.mbx.out_ticket(a).load(Ordering::Relaxed), peer, seq)
            } else {
                Pending::NotAcceptable
            }
        };
        (ntf, msg)
    }

    /// Claims message `seq` from slot `s`. Returns it, or `None` if the
    /// sender withdrew it first.
    fn claim(&self, s: usize, peer: &Peer, seq: u32) -> Option<Message> {
        let a = self.slot;
        let mut m = peer.mbx.read_msg(a);
        self.mbx
            .consumed(s)
            .store(pack_pair(peer.ep, seq), Ordering::SeqCst);
        let accepted = loop {
            let (cur, ph, _) = unpack_out(peer.mbx.out_state(a).load(Ordering::SeqCst));
            if cur != seq {
                break peer.mbx.out_confirmed(a).load(Ordering::Acquire) == seq;
            }
            match ph {
                phase::POSTED | phase::DELIVERED => break true,
                phase::ABORTED => break false,
                _ => {
                    // The sender is deciding; it is running, so this is short.
                    if self.table.ep(s).load(Ordering::Acquire) != peer.ep.0 {
                        break false;
                    }
                    std::thread::yield_now();
                }
            }
        };
        if !accepted {
            return None;
        }
        m.m_source = peer.ep.0;
        peer.bell.wake();
        Some(m)
    }
}

/// The writer of a mailbox posting into it: a bound task, or the node
/// daemon for the surrogate mailbox of a remote endpoint.
pub(crate) struct Poster<'a> {
    /// The mailbox written.
    pub mbx: &'a Mailbox,
    /// Its endpoint.
    pub me: Endpoint,
    /// Its slot.
    pub slot: usize,
}

impl Poster<'_> {
    /// Posts `m` to the mailbox `dst` (slot `b`) and rings `bell`; returns
    /// the sequence number. Does not wait.
    pub(crate) fn post(
        &self,
        b: usize,
        dst: &Mailbox,
        bell: &Doorbell,
        m: &Message,
        k: u32,
    ) -> u32 {
        let a = self.slot;
        let (prev, ph, _) = unpack_out(self.mbx.out_state(b).load(Ordering::Relaxed));
        let addr = dst.address();
        if ph == phase::POSTED && self.mbx.out_dst(b).load(Ordering::Relaxed) == addr {
            // A previous reply nobody has taken (its receiver gave up):
            // withdraw it before reusing the slot.
            if dst.consumed(a).load(Ordering::Acquire) == pack_pair(self.me, prev) {
                self.mbx.out_confirmed(b).store(prev, Ordering::Release);
            } else {
                self.withdraw(b, dst, bell, prev);
            }
        }
        let mut seq = prev.wrapping_add(1);
        if seq == 0 {
            seq = 1;
        }
        self.mbx.out_dst(b).store(addr, Ordering::Relaxed);
        let ticket = bell.ticket().fetch_add(1, Ordering::Relaxed);
        self.mbx.out_ticket(b).store(ticket, Ordering::Relaxed);
        self.mbx.write_msg(b, m);
        self.mbx
            .out_state(b)
            .store(pack_out(seq, phase::POSTED, k), Ordering::Release);
        bell.ring_from(a);
        seq
    }

    /// Withdraws message `seq` towards slot `b` (Dekker's handshake with
    /// the receiver's claim). Returns true if the receiver had already
    /// claimed it (then it counts as delivered).
    pub(crate) fn withdraw(&self, b: usize, dst: &Mailbox, bell: &Doorbell, seq: u32) -> bool {
        let a = self.slot;
        let (_, _, k) = unpack_out(self.mbx.out_state(b).load(Ordering::Relaxed));
        self.mbx
            .out_state(b)
            .store(pack_out(seq, phase::CANCELLING, k), Ordering::SeqCst);
        let delivered = dst.consumed(a).load(Ordering::SeqCst) == pack_pair(self.me, seq);
        if delivered {
            self.mbx.out_confirmed(b).store(seq, Ordering::Release);
        }
        let verdict = if delivered {
            phase::DELIVERED
        } else {
            phase::ABORTED
        };
        self.mbx
            .out_state(b)
            .store(pack_out(seq, verdict, k), Ordering::SeqCst);
        bell.wake();
        delivered
    }
}

enum Pending {
    Nothing,
    NotAcceptable,
    Message(u64, Arc<Peer>, u32),
}

impl Ipc {
    /// Flags word of this endpoint's slot (for tests and status).
    pub fn flags(&self) -> u32 {
        self.table.flags(self.slot).load(Ordering::Acquire)
    }

    /// Whether `ep` is bound in this DC right now and privileged. Servers
    /// use it to accept requests made on behalf of another endpoint only
    /// from privileged proxies.
    pub fn is_privileged(&self, ep: Endpoint) -> bool {
        match self.slot_of(ep) {
            Ok(s) => {
                self.table.ep(s).load(Ordering::Acquire) == ep.0
                    && self.table.flags(s).load(Ordering::Acquire) & F_PRIV != 0
            }
            Err(_) => false,
        }
    }

    /// Host thread id of the task bound as `ep` in this DC (0 if unbound
    /// or remote).
    pub fn host_tid(&self, ep: Endpoint) -> i32 {
        match self.slot_of(ep) {
            Ok(s) if self.table.ep(s).load(Ordering::Acquire) == ep.0 => {
                self.table.tid(s).load(Ordering::Acquire)
            }
            _ => 0,
        }
    }

    /// The node `ep` is bound on in this DC, if it is bound.
    pub fn node_of(&self, ep: Endpoint) -> Option<i32> {
        match self.slot_of(ep) {
            Ok(s) if self.table.ep(s).load(Ordering::Acquire) == ep.0 => {
                Some(self.table.node(s).load(Ordering::Acquire))
            }
            _ => None,
        }
    }

    /// Host pid of the task bound as `ep` in this DC (0 if unbound or remote).
    pub fn host_pid(&self, ep: Endpoint) -> i32 {
        match self.slot_of(ep) {
            Ok(s) if self.table.ep(s).load(Ordering::Acquire) == ep.0 => {
                self.table.pid(s).load(Ordering::Acquire)
            }
            _ => 0,
        }
    }
}

impl Drop for Ipc {
    /// Dropping the handle unbinds the endpoint (when it is still bound to
    /// this task; a forked child's inherited copy does nothing).
    fn drop(&mut self) {
        if self.check_alive().is_ok() {
            let _ = self.dvk.unbind(self.dc.dcid, self.me);
        }
    }
}

impl std::fmt::Debug for Ipc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ipc")
            .field("dcid", &self.dc.dcid)
            .field("endpoint", &self.me)
            .finish()
    }
}
