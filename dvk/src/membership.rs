//! Node membership and totally ordered multicast through Corosync CPG.
//!
//! [`Membership::join`] joins a CPG (closed process group) of the local
//! Corosync, e.g. `"dvs-<cluster>"`, and runs the CPG dispatch loop on its
//! own thread, `dvkd-cpg`. What CPG reports reaches the caller, in order,
//! as [`MemberEvent`]s on a [`std::sync::mpsc::Receiver`]. The Corosync
//! protocol itself is Corosync's: this module only drives `libcpg`
//! through the `rust-corosync` bindings.
//!
//! # Semantics
//!
//! * **Members are nodes.** CPG tracks processes (node id + pid); this
//!   module folds them into Corosync node ids. A node is in the view while
//!   at least one of its processes is in the group: [`MemberEvent::Joined`]
//!   is sent once when a node appears (or re-appears) in the view and
//!   [`MemberEvent::Left`] once when it disappears, whether CPG reports
//!   that as a leave, a process death (`ProcDown`), a node failure
//!   (`NodeDown`), or only through a totem ring change. A second process
//!   of an already present node is therefore invisible in the events, and
//!   so is its departure while another process of that node stays.
//! * **The first events** after a join are `Joined` for every node
//!   already in the group, the local node included.
//! * **Ordering.** [`Membership::multicast`] uses CPG's *agreed* delivery:
//!   every member delivers every message in the same total order, the
//!   sender included (it gets its own messages back as
//!   [`MemberEvent::Message`]), and view changes are ordered consistently
//!   with messages (virtual synchrony).
//! * **One membership per process and group.** CPG identifies a member by
//!   node id and pid, so a process can join a given group only once at a
//!   time ([`MembershipError::AlreadyJoined`]).
//! * **Loss of Corosync.** If Corosync stops or dies, the dispatch thread
//!   ends and the event channel is closed (`recv` returns an error); no
//!   `Left` is synthesized for the remaining nodes. Later calls of
//!   [`Membership::multicast`] fail with [`MembershipError::Disconnected`].
//! * **Unbounded queue.** Events are buffered without limit until the
//!   receiver reads them.

use rust_corosync::cpg;
use rust_corosync::{CsError, DispatchFlags, NodeId};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest CPG group name, in bytes (`CPG_MAX_NAME_LENGTH` less the NUL).
pub const MAX_GROUP_LEN: usize = 127;

/// How long [`Membership::join`] waits for Corosync to confirm the join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call that Corosync answers with "try again" (flow control,
/// ring being formed) is retried before the error is returned.
const TRY_AGAIN_FOR: Duration = Duration::from_secs(5);

/// How long dropping a [`Membership`] waits for Corosync to confirm the
/// leave before it finalizes the connection anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_millis(500);

/// What a [`Membership`] reports, in CPG delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    /// This Corosync node appeared in the group view.
    Joined(u32),
    /// This Corosync node disappeared from the group view (left, its
    /// process died, or the node failed).
    Left(u32),
    /// A message multicast to the group, by a process of node `from`.
    Message {
        /// The Corosync node id of the sender.
        from: u32,
        /// The payload, as sent.
        data: Vec<u8>,
    },
}

/// Errors of [`Membership`].
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The Corosync IPC endpoint cannot be reached.
    #[error("cannot reach Corosync: is corosync running on this node?")]
    NotRunning,
    /// The group name is empty or too long.
    #[error("invalid CPG group name {name:?}: {reason}")]
    InvalidGroup {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// This process already is a member of the group (CPG allows one
    /// membership per process and group).
    #[error("this process already is a member of CPG group {0:?}")]
    AlreadyJoined(String),
    /// Corosync accepted the join but did not confirm it in time.
    #[error("Corosync did not confirm the join of CPG group {group:?} within {timeout:?}")]
    JoinTimeout {
        /// The group.
        group: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The connection to Corosync was lost (Corosync stopped or died).
    #[error("lost the connection to Corosync")]
    Disconnected,
    /// A CPG call failed.
    #[error("Corosync CPG {op} failed: {error}")]
    Corosync {
        /// The CPG operation, e.g. `"join"`.
        op: &'static str,
        /// Corosync's error code.
        #[source]
        error: CsError,
    },
    /// The dispatch thread could not be started.
    #[error("cannot start the CPG dispatch thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl MembershipError {
    fn corosync(op: &'static str, error: CsError) -> MembershipError {
        match error {
            CsError::CsErrLibrary | CsError::CsErrBadHandle => MembershipError::Disconnected,
            error => MembershipError::Corosync { op, error },
        }
    }
}

/// A membership in a CPG group. Dropping it leaves the group and stops
/// the dispatch thread (within about half a second).
pub struct Membership {
    group: String,
    local: u32,
    key: u64,
    handle: Arc<Mutex<cpg::Handle>>,
    shared: Arc<Shared>,
    wake: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
    /// Corosync accepted our `cpg_join` (the group must be left).
    join_sent: bool,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("group", &self.group)
            .field("local", &self.local)
            .field("members", &self.members())
            .finish()
    }
}

impl Membership {
    /// Joins the CPG group `group` of the local Corosync and starts the
    /// dispatch thread. Returns once Corosync has confirmed the join, so
    /// [`Membership::members`] already contains the local node, and the
    /// receiver already holds the first `Joined` events.
    pub fn join(group: &str) -> Result<(Membership, Receiver<MemberEvent>), MembershipError> {
        if group.is_empty() || group.len() > MAX_GROUP_LEN {
            return Err(MembershipError::InvalidGroup {
                name: group.to_string(),
                reason: "must be 1 to 127 bytes long",
            });
        }
        let model = cpg::ModelData::ModelV1(cpg::Model1Data {
            flags: cpg::Model1Flags::None,
            deliver_fn: Some(on_deliver),
            confchg_fn: Some(on_confchg),
            totem_confchg_fn: Some(on_totem_confchg),
        });
        let handle = retry(|| cpg::initialize(&model, 0)).map_err(|e| match e {
            CsError::CsErrLibrary => MembershipError::NotRunning,
            error => MembershipError::Corosync {
                op: "initialize",
                error,
            },
        })?;
        // Until `Membership` exists, dropping `handle` finalizes it.
        let local = cpg::local_get(&handle)
            .map(u32::from)
            .map_err(|e| MembershipError::corosync("local_get", e))?;
        let fd = cpg::fd_get(&handle).map_err(|e| MembershipError::corosync("fd_get", e))?;
        let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
        cpg::context_set(&handle, key).map_err(|e| MembershipError::corosync("context_set", e))?;
        let (wake, wake_rx) = UnixStream::pair().map_err(MembershipError::Thread)?;
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            local_node: local,
            local_pid: std::process::id(),
            state: Mutex::new(State {
                view: View::default(),
                tx: Some(tx),
                joined: false,
                left: false,
                stopped: false,
            }),
            changed: Condvar::new(),
        });
        lock(&REGISTRY).insert(key, Arc::clone(&shared));
        let handle = Arc::new(Mutex::new(handle));
        let mut membership = Membership {
            group: group.to_string(),
            local,
            key,
            handle: Arc::clone(&handle),
            shared: Arc::clone(&shared),
            wake: Some(wake),
            thread: None,
            join_sent: false,
        };
        // From here on, `Drop for Membership` cleans up on every error.
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("dvkd-cpg".into())
            .spawn(move || dispatch_loop(handle, fd, wake_rx, thread_shared))
            .map_err(MembershipError::Thread)?;
        membership.thread = Some(thread);

        retry(|| cpg::join(&lock(&membership.handle), group)).map_err(|e| match e {
            CsError::CsErrExist => MembershipError::AlreadyJoined(group.to_string()),
            e => MembershipError::corosync("join", e),
        })?;
        membership.join_sent = true;
        let deadline = Instant::now() + JOIN_TIMEOUT;
        let mut st = lock(&shared.state);
        while !st.joined {
            if st.stopped {
                return Err(MembershipError::Disconnected);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(MembershipError::JoinTimeout {
                    group: group.to_string(),
                    timeout: JOIN_TIMEOUT,
                });
            }
            st = shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(st);
        tracing::debug!(group, local, "joined the CPG group");
        Ok((membership, rx))
    }

    /// The Corosync node id of this node.
    pub fn local_node(&self) -> u32 {
        self.local
    }

    /// The nodes in the current view, sorted: the view as of the last
    /// event put in the channel.
    pub fn members(&self) -> Vec<u32> {
        lock(&self.shared.state)
            .view
            .nodes
            .iter()
            .copied()
            .collect()
    }

    /// Multicasts `data` to the group with agreed (totally ordered)
    /// delivery; every member, this one included, receives it as a
    /// [`MemberEvent::Message`]. Under Corosync flow control the call is
    /// retried for up to 5 s.
    pub fn multicast(&self, data: &[u8]) -> Result<(), MembershipError> {
        retry(|| cpg::mcast_joined(&lock(&self.handle), cpg::Guarantee::TypeAgreed, data))
            .map_err(|e| MembershipError::corosync("multicast", e))
    }
}

/// A membership in a group as its user sees it: it multicasts, and
/// leaves the group when dropped. [`Membership`] is Corosync's.
pub trait Group: Send {
    /// Multicasts `data` to the group in agreed order (see
    /// [`Membership::multicast`]).
    fn multicast(&self, data: &[u8]) -> Result<(), MembershipError>;
}

impl Group for Membership {
    fn multicast(&self, data: &[u8]) -> Result<(), MembershipError> {
        Membership::multicast(self, data)
    }
}

/// How a program joins a group: [`join_cpg`], through Corosync. It is
/// passed in by the programs that take part in a cluster, so that one
/// that never does (dvs-exec on a single node) names no CPG code and does
/// not load `libcpg` and its libraries at start (about 0.7 ms).
pub type JoinGroup = fn(&str) -> Result<(Box<dyn Group>, Receiver<MemberEvent>), MembershipError>;

/// [`Membership::join`] as a [`JoinGroup`].
pub fn join_cpg(group: &str) -> Result<(Box<dyn Group>, Receiver<MemberEvent>), MembershipError> {
    let (m, events) = Membership::join(group)?;
    Ok((Box::new(m), events))
}

impl Drop for Membership {
    fn drop(&mut self) {
        let running = self.thread.is_some() && !lock(&self.shared.state).stopped;
        if running && self.join_sent {
            // Leaving (rather than only finalizing) makes the others see
            // a `Leave`, not a `ProcDown`, and lets this process join the
            // group again at once. Corosync confirms it with a confchg
            // that has us in its left list.
            let res = retry_for(LEAVE_TIMEOUT, || {
                cpg::leave(&lock(&self.handle), &self.group)
            });
            if res.is_ok() {
                let deadline = Instant::now() + LEAVE_TIMEOUT;
                let mut st = lock(&self.shared.state);
                while !st.left && !st.stopped {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    st = self
                        .shared
                        .changed
                        .wait_timeout(st, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        // Closing our end of the socket pair wakes the dispatch thread up.
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the CPG dispatch thread panicked");
            }
        }
        lock(&REGISTRY).remove(&self.key);
        // The last reference to the handle goes with `self.handle`, which
        // finalizes the CPG connection.
    }
}

/// The state shared by a [`Membership`], its dispatch thread and the CPG
/// callbacks.
struct Shared {
    local_node: u32,
    local_pid: u32,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    view: View,
    /// `None` once the dispatch thread has ended.
    tx: Option<Sender<MemberEvent>>,
    /// Corosync confirmed our join.
    joined: bool,
    /// Corosync confirmed our leave.
    left: bool,
    /// The dispatch thread has ended.
    stopped: bool,
}

impl State {
    fn emit(&mut self, events: impl IntoIterator<Item = MemberEvent>) {
        if let Some(tx) = &self.tx {
            for event in events {
                // A dropped receiver is not an error: nobody listens.
                let _ = tx.send(event);
            }
        }
    }
}

/// The group view: CPG processes and the nodes they make up.
#[derive(Debug, Default)]
struct View {
    /// (node id, pid) of every process in the group.
    processes: BTreeSet<(u32, u32)>,
    /// The nodes with at least one process in the group.
    nodes: BTreeSet<u32>,
}

impl View {
    /// A CPG confchg: `members` is the complete new process list.
    fn set_processes(&mut self, members: impl IntoIterator<Item = (u32, u32)>) -> Vec<MemberEvent> {
        self.processes = members.into_iter().collect();
        self.refresh()
    }

    /// A totem confchg: only the nodes in `ring` are still reachable.
    fn restrict_to_ring(&mut self, ring: &[u32]) -> Vec<MemberEvent> {
        self.processes.retain(|(node, _)| ring.contains(node));
        self.refresh()
    }

    /// Recomputes the nodes; `Left` for the nodes gone, then `Joined` for
    /// the new ones, each in ascending order.
    fn refresh(&mut self) -> Vec<MemberEvent> {
        let nodes: BTreeSet<u32> = self.processes.iter().map(|&(node, _)| node).collect();
        let left = self.nodes.difference(&nodes).map(|&n| MemberEvent::Left(n));
        let joined = nodes
            .difference(&self.nodes)
            .map(|&n| MemberEvent::Joined(n));
        let events = left.chain(joined).collect();
        self.nodes = nodes;
        events
    }
}

/// Maps the CPG context value of a handle to its [`Shared`]. The callbacks
/// of `rust-corosync` are plain functions, so this is how they find theirs.
static REGISTRY: Mutex<BTreeMap<u64, Arc<Shared>>> = Mutex::new(BTreeMap::new());
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Locks a mutex; a panic elsewhere while it was held does not make its
/// data unusable here (every update is a single assignment or insert).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shared_of(handle: &cpg::Handle) -> Option<Arc<Shared>> {
    let key = cpg::context_get(handle).ok()?;
    lock(&REGISTRY).get(&key).cloned()
}

/// Runs `f` again while Corosync says "try again", for up to 5 s.
fn retry<T>(f: impl FnMut() -> Result<T, CsError>) -> Result<T, CsError> {
    retry_for(TRY_AGAIN_FOR, f)
}

fn retry_for<T>(limit: Duration, mut f: impl FnMut() -> Result<T, CsError>) -> Result<T, CsError> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            Err(CsError::CsErrTryAgain) if Instant::now() + pause < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            res => return res,
        }
    }
}

// The CPG callbacks run on the dispatch thread, inside `cpg::dispatch`,
// while it holds the handle's lock. They must not panic (they are called
// from C) and must not call back into CPG.

fn on_deliver(
    handle: &cpg::Handle,
    _group: String,
    nodeid: NodeId,
    _pid: u32,
    msg: &[u8],
    _msg_len: usize,
) {
    if let Some(shared) = shared_of(handle) {
        lock(&shared.state).emit([MemberEvent::Message {
            from: nodeid.into(),
            data: msg.to_vec(),
        }]);
    }
}

fn on_confchg(
    handle: &cpg::Handle,
    _group: &str,
    members: Vec<cpg::Address>,
    left: Vec<cpg::Address>,
    _joined: Vec<cpg::Address>,
) {
    let Some(shared) = shared_of(handle) else {
        return;
    };
    let me = (shared.local_node, shared.local_pid);
    let is_me = |a: &cpg::Address| (u32::from(a.nodeid), a.pid) == me;
    let mut st = lock(&shared.state);
    let events = st
        .view
        .set_processes(members.iter().map(|a| (u32::from(a.nodeid), a.pid)));
    st.emit(events);
    if members.iter().any(is_me) {
        st.joined = true;
    }
    if left.iter().any(is_me) {
        st.left = true;
    }
    drop(st);
    shared.changed.notify_all();
}

fn on_totem_confchg(handle: &cpg::Handle, _ring: cpg::RingId, members: Vec<NodeId>) {
    let Some(shared) = shared_of(handle) else {
        return;
    };
    let ring: Vec<u32> = members.into_iter().map(u32::from).collect();
    let mut st = lock(&shared.state);
    let events = st.view.restrict_to_ring(&ring);
    st.emit(events);
}

/// The body of the `dvkd-cpg` thread: waits for CPG events or for the
/// [`Membership`] to close its end of `wake`, and dispatches.
fn dispatch_loop(
    handle: Arc<Mutex<cpg::Handle>>,
    fd: RawFd,
    wake: UnixStream,
    shared: Arc<Shared>,
) {
    use nix::errno::Errno;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    // SAFETY: `fd` is the IPC socket of the CPG connection in `handle`. It
    // stays open until the connection is finalized, which happens only
    // when the last reference to the handle is dropped; this thread holds
    // one (`handle`) until it returns, after the last use of `cpg_fd`.
    let cpg_fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let broken = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
    loop {
        let mut fds = [
            PollFd::new(cpg_fd, PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(error = %e, "poll on the CPG connection failed");
                break;
            }
        }
        let cpg_ev = fds[0].revents().unwrap_or(PollFlags::empty());
        let wake_ev = fds[1].revents().unwrap_or(PollFlags::empty());
        if !wake_ev.is_empty() {
            break;
        }
        if cpg_ev.is_empty() {
            continue;
        }
        let res = cpg::dispatch(&lock(&handle), DispatchFlags::All);
        match res {
            Ok(()) | Err(CsError::CsErrTryAgain) => {}
            Err(e) => {
                tracing::warn!(error = %e, fd = cpg_fd.as_raw_fd(), "lost the connection to Corosync");
                break;
            }
        }
        if cpg_ev.intersects(broken) {
            tracing::warn!("Corosync closed the CPG connection");
            break;
        }
    }
    let mut st = lock(&shared.state);
    st.stopped = true;
    st.tx = None; // closes the channel
    drop(st);
    shared.changed.notify_all();
}

#[cfg(test)]
mod tests {
    use super::MemberEvent::{Joined, Left};
    use super::*;

    #[test]
    fn first_view_reports_every_node_once() {
        let mut v = View::default();
        let ev = v.set_processes([(2, 10), (1, 5), (2, 11)]);
        assert_eq!(ev, vec![Joined(1), Joined(2)]);
        assert_eq!(v.nodes.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn second_process_of_a_node_is_not_an_event() {
        let mut v = View::default();
        v.set_processes([(1, 5)]);
        assert!(v.set_processes([(1, 5), (1, 6)]).is_empty());
        assert!(v.set_processes([(1, 6)]).is_empty());
        assert_eq!(v.set_processes([]), vec![Left(1)]);
    }

    #[test]
    fn node_down_and_rejoin() {
        let mut v = View::default();
        v.set_processes([(1, 5), (2, 7), (3, 9)]);
        assert_eq!(v.set_processes([(1, 5), (3, 9)]), vec![Left(2)]);
        assert_eq!(v.set_processes([(1, 5), (2, 8), (3, 9)]), vec![Joined(2)]);
        assert_eq!(
            v.set_processes([(1, 5), (4, 1)]),
            vec![Left(2), Left(3), Joined(4)]
        );
    }

    #[test]
    fn totem_change_removes_unreachable_nodes_once() {
        let mut v = View::default();
        v.set_processes([(1, 5), (2, 7), (2, 8), (3, 9)]);
        assert_eq!(v.restrict_to_ring(&[1, 3]), vec![Left(2)]);
        // The CPG confchg (NodeDown) that follows changes nothing more.
        assert!(v.set_processes([(1, 5), (3, 9)]).is_empty());
        // A ring change that keeps every node is no event.
        assert!(v.restrict_to_ring(&[1, 2, 3]).is_empty());
        assert_eq!(v.set_processes([(1, 5), (2, 20), (3, 9)]), vec![Joined(2)]);
    }

    #[test]
    fn membership_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Membership>();
    }

    #[test]
    fn not_running_message() {
        assert_eq!(
            MembershipError::NotRunning.to_string(),
            "cannot reach Corosync: is corosync running on this node?"
        );
    }
}
