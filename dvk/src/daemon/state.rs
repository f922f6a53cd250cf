//! The daemon's tables and the management operations on them.
//!
//! Everything here runs under the daemon's single state lock. Operations
//! never block; the blocking management calls (`wait4bind` and friends)
//! are loops in `session.rs` around the non-blocking checks here.

use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::layout::{
    pack_pair, unpack_status, Carried, DcTable, Doorbell, IpcState, Mailbox, TableGeometry,
    DC_ENDED, F_BOUND, F_FROZEN, F_KIND_SHIFT, F_PRIV, KNTF_RING,
};
use crate::message::NotifyKind;
use crate::params::{DcInfo, DcParams, DvsInfo, DvsParams, PrivRecord, ProcInfo, ProcKind};
use crate::proto::{BindTarget, DcStats, DcStatus, NodeStatus, StatusSnapshot};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::OwnedFd;
use std::sync::atomic::{fence, Ordering};

/// Who is calling: from `SO_PEERCRED` and the verified `Hello`.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    /// Host process id.
    pub pid: i32,
    /// Host thread id.
    pub tid: i32,
    /// Host user id.
    pub uid: u32,
}

/// A bound endpoint, as the daemon keeps it.
pub(crate) struct Binding {
    pub ep: Endpoint,
    pub pid: i32,
    pub tid: i32,
    pub thread: bool,
    pub kind: ProcKind,
    pub node: i32,
    pub privilege: PrivRecord,
    pub mbx_fd: OwnedFd,
    pub mbx_ro: OwnedFd,
    pub mbx: Mailbox,
    pub bell_fd: OwnedFd,
    pub bell: Doorbell,
    pub pidfd: Option<OwnedFd>,
    pub token: u64,
    pub granted: bool,
}

pub(crate) struct Dc {
    pub params: DcParams,
    pub table: DcTable,
    pub table_ro: OwnedFd,
    pub slots: Vec<Option<Binding>>,
    /// Per slot, the outgoing sequence words and notification counters of
    /// its last binding, towards every other slot, and the notifications
    /// it had seen from them. A new binding of the slot continues from
    /// them, so that a receiver's `consumed` or `ntf_seen` entry left from
    /// the previous binding of the same endpoint number can never match a
    /// new message, and a notification taken before is not taken again.
    pub carried: Vec<Option<Vec<Carried>>>,
}

/// A DVK notification that did not fit in its target's ring yet.
pub(crate) struct Deferred {
    pub dcid: i32,
    pub target: Endpoint,
    pub entry: u64,
}

/// What the caller of a bind gets back.
pub(crate) enum BindOutcome {
    /// The caller itself was bound to this slot: hand it the grant.
    Granted(usize),
    /// Another process was bound.
    Other(Endpoint),
}

/// The daemon's state.
pub(crate) struct State {
    pub socket: String,
    pub uid: u32,
    pub dvs: Option<(i32, DvsParams)>,
    pub dcs: BTreeMap<i32, Dc>,
    /// The cluster's nodes, from the configuration file (empty without one).
    pub cluster_nodes: Vec<crate::cluster::NodeConfig>,
    /// pidfd token -> (dcid, slot).
    pub tokens: HashMap<u64, (i32, usize)>,
    next_token: u64,
    pub(crate) deferred: Vec<Deferred>,
    /// pidfds to register with the reaper (taken by the caller after each op).
    pub new_pidfds: Vec<(u64, std::os::fd::RawFd)>,
    /// The proxies' side of the tables: surrogate mailboxes of remote
    /// endpoints, messages in flight between nodes, which nodes are up.
    pub remote: super::remote::Remote,
}

/// A host task, `(process, task, bound as a thread)`, and a pidfd for it.
type Task = ((i32, i32, bool), OwnedFd);

/// The thread group (process) of host task `tid`, if it exists.
fn thread_group(tid: i32) -> Option<i32> {
    if tid <= 0 {
        return None;
    }
    let st = crate::sys::read_proc(&format!("/proc/{tid}/status")).ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn proc_exists(pid: i32) -> bool {
    pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether `tid` is a live thread of process `pid`.
pub(crate) fn task_exists(pid: i32, tid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists()
}

impl State {
    pub fn new(socket: String) -> State {
        State {
            socket,
            uid: nix::unistd::getuid().as_raw(),
            dvs: None,
            dcs: BTreeMap::new(),
            cluster_nodes: Vec::new(),
            tokens: HashMap::new(),
            next_token: 1,
            deferred: Vec::new(),
            new_pidfds: Vec::new(),
            remote: super::remote::Remote::default(),
        }
    }

    fn dvs(&self) -> Result<(i32, DvsParams)> {
        self.dvs.ok_or(DvkError::DvsNotRun)
    }

    fn find_binding(&self, pred: impl Fn(&Binding) -> bool) -> Option<(i32, usize)> {
        self.dcs.iter().find_map(|(&id, dc)| {
            dc.slots
                .iter()
                .position(|b| b.as_ref().is_some_and(&pred))
                .map(|s| (id, s))
        })
    }

    /// The binding the calling task acts as, if any: its own (thread)
    /// binding, else its process's binding. `(dcid, slot)`.
    pub fn binding_of(&self, c: &Caller) -> Option<(i32, usize)> {
        self.find_binding(|b| b.tid == c.tid)
            .or_else(|| self.find_binding(|b| !b.thread && b.pid == c.pid))
    }

    /// Whether binding task `tid` of process `pid` (the whole process
    /// unless `thread`) would clash with an existing binding.
    fn task_bound(&self, pid: i32, tid: i32, thread: bool) -> bool {
        self.find_binding(|b| b.tid == tid || (!thread && !b.thread && b.pid == pid))
            .is_some()
    }

    fn binding(&self, dcid: i32, s: usize) -> Option<&Binding> {
        self.dcs.get(&dcid)?.slots.get(s)?.as_ref()
    }

    /// Management calls: privileged endpoints, or unbound tasks running
    /// with the daemon's user id (or root).
    pub fn require_manager(&self, c: &Caller) -> Result<()> {
        match self.binding_of(c) {
            Some((d, s)) => match self.binding(d, s) {
                Some(b) if b.privilege.privileged() => Ok(()),
                _ => Err(DvkError::Privileges),
            },
            None if c.uid == 0 || c.uid == self.uid => Ok(()),
            None => Err(DvkError::Perm),
        }
    }

    /// Information calls: anyone, but a bound unprivileged endpoint may
    /// only look at its own DC.
    pub fn require_reader(&self, c: &Caller, dcid: Option<i32>) -> Result<()> {
        match (self.confined_to(c), dcid) {
            (Some(own), Some(d)) if own != d => Err(DvkError::Privileges),
            _ => Ok(()),
        }
    }

    /// The DC of a bound, unprivileged caller: the only DC it may see.
    pub fn confined_to(&self, c: &Caller) -> Option<i32> {
        let (d, s) = self.binding_of(c)?;
        let privileged = self.binding(d, s).is_some_and(|b| b.privilege.privileged());
        (!privileged).then_some(d)
    }

    fn dc(&self, dcid: i32) -> Result<&Dc> {
        self.dvs()?;
        self.dcs.get(&dcid).ok_or(DvkError::DcNotRun)
    }

    fn dc_mut(&mut self, dcid: i32) -> Result<&mut Dc> {
        self.dvs()?;
        self.dcs.get_mut(&dcid).ok_or(DvkError::DcNotRun)
    }

    // ------------------------------------------------------------- DVS

    pub fn dvs_init(&mut self, node: i32, params: DvsParams) -> Result<()> {
        if self.dvs.is_some() {
            return Err(DvkError::DvsRunning);
        }
        params.validate()?;
        if node < 0 || node >= params.nr_nodes {
            return Err(DvkError::BadNodeId);
        }
        self.dvs = Some((node, params));
        tracing::info!(node, ?params, "DVS initialised");
        Ok(())
    }

    pub fn dvs_end(&mut self) -> Result<()> {
        self.dvs()?;
        let ids: Vec<i32> = self.dcs.keys().copied().collect();
        for id in ids {
            self.dc_end(id)?;
        }
        self.dvs = None;
        tracing::info!("DVS ended");
        Ok(())
    }

    pub fn dvs_info(&self) -> Result<DvsInfo> {
        let (node, params) = self.dvs()?;
        Ok(DvsInfo {
            node,
            params,
            version: env!("CARGO_PKG_VERSION").to_string(),
            daemon_pid: std::process::id() as i32,
            socket: self.socket.clone(),
        })
    }

    /// Applies the cluster configuration on this node: records the nodes,
    /// and creates the DCs that span this node (ids in file order; a DC
    /// without an id gets the lowest free one).
    pub fn configure(&mut self, cluster: &crate::cluster::ClusterConfig) -> Result<()> {
        let (node, dvs) = self.dvs()?;
        if cluster.node(node).is_none() {
            return Err(DvkError::BadNodeId);
        }
        self.cluster_nodes = cluster.nodes.clone();
        for d in cluster.dcs_of(node) {
            let dcid = match d.id {
                Some(id) => id,
                None => (0..dvs.nr_dcs)
                    .find(|id| {
                        !self.dcs.contains_key(id) && !cluster.dcs.iter().any(|o| o.id == Some(*id))
                    })
                    .ok_or(DvkError::BadDcId)?,
            };
            let mut p = DcParams::new(dcid, &d.name, &dvs);
            p.nodes = d.nodes.iter().fold(0u64, |m, &n| m | 1 << n);
            self.dc_init(p)?;
        }
        Ok(())
    }

    // -------------------------------------------------------------- DCs

    pub fn dc_init(&mut self, p: DcParams) -> Result<i32> {
        let (node, dvs) = self.dvs()?;
        p.validate(&dvs)?;
        if self.dcs.contains_key(&p.dcid) {
            return Err(DvkError::DcExist);
        }
        if self.dcs.values().any(|d| d.params.name == p.name) {
            return Err(DvkError::Exist);
        }
        let geo = TableGeometry {
            dcid: p.dcid,
            nslots: p.nr_slots(),
            nr_tasks: p.nr_tasks,
            nr_procs: p.nr_procs,
            nr_sysprocs: p.nr_sysprocs,
            max_copylen: p.max_copylen,
            node,
            max_copybuf: dvs.max_copybuf.min(p.max_copylen),
        };
        let (fd, table) = DcTable::create(&geo)?;
        let table_ro = crate::sys::reopen_readonly(&fd)?;
        tracing::info!(dcid = p.dcid, name = %p.name, "DC initialised");
        let slots = (0..geo.nslots).map(|_| None).collect();
        let carried = (0..geo.nslots).map(|_| None).collect();
        self.dcs.insert(
            p.dcid,
            Dc {
                params: p,
                table,
                table_ro,
                slots,
                carried,
            },
        );
        Ok(node)
    }

    /// Ends a DC here and on the nodes that joined it (or that it joined).
    pub fn dc_end(&mut self, dcid: i32) -> Result<()> {
        self.dc(dcid)?;
        self.leave_frames(dcid);
        self.dc_end_here(dcid)
    }

    /// Ends a DC on this node only.
    pub fn dc_end_here(&mut self, dcid: i32) -> Result<()> {
        let dc = self.dc(dcid)?;
        // Ended first, so that the calls woken by the unbinds report it.
        dc.table.state().store(DC_ENDED, Ordering::Release);
        let n = dc.slots.len();
        for s in 0..n {
            self.unbind_slot(dcid, s, false);
        }
        if let Some(dc) = self.dcs.remove(&dcid) {
            tracing::info!(dcid, name = %dc.params.name, "DC ended");
        }
        self.deferred.retain(|d| d.dcid != dcid);
        self.remote.forget_joined(dcid);
        Ok(())
    }

    /// The parameters of DC `dcid`.
    pub fn dc_params(&self, dcid: i32) -> Result<DcParams> {
        Ok(self.dc(dcid)?.params.clone())
    }

    pub fn dc_info(&self, dcid: i32) -> Result<DcInfo> {
        let dc = self.dc(dcid)?;
        Ok(DcInfo {
            params: dc.params.clone(),
            running: true,
            nr_bound: dc.slots.iter().filter(|s| s.is_some()).count(),
        })
    }

    pub fn dc_lookup(&self, name: &str) -> Result<i32> {
        self.dvs()?;
        self.dcs
            .values()
            .find(|d| d.params.name == name)
            .map(|d| d.params.dcid)
            .ok_or(DvkError::NoEnt)
    }

    // ---------------------------------------------------------- binding

    fn slot_for(dc: &Dc, ep: Endpoint) -> Result<usize> {
        if ep.is_special() {
            return Err(DvkError::BadEndpoint);
        }
        dc.params.slot_of(ep.p_nr()).ok_or(DvkError::BadEndpoint)
    }

    /// Finds the slot bound to exactly `ep` in `dcid`.
    pub fn find(&self, dcid: i32, ep: Endpoint) -> Result<usize> {
        let dc = self.dc(dcid)?;
        let s = Self::slot_for(dc, ep)?;
        match &dc.slots[s] {
            Some(b) if b.ep == ep => Ok(s),
            _ => Err(DvkError::NotBind),
        }
    }

    pub fn bind(
        &mut self,
        c: &Caller,
        dcid: i32,
        ep: Endpoint,
        target: BindTarget,
    ) -> Result<BindOutcome> {
        let (local, dvs) = self.dvs()?;
        // The host task `(process, task, bound as a thread)` and a pidfd
        // for it. A thread id binds that thread only.
        let open = |pid: i32, tid: i32, thread: bool| -> Result<Task> {
            let fd = crate::sys::pidfd_open(pid, if thread { tid } else { pid })
                .map_err(|_| DvkError::BadPid)?;
            Ok(((pid, tid, thread), fd))
        };
        let task_of = |p: i32| -> Result<Task> {
            if p <= 0 {
                return Err(DvkError::BadPid);
            }
            // A pidfd of a process (no PIDFD_THREAD) opens for a thread
            // group's leader only: a forked process, the usual case,
            // needs no /proc read to tell.
            if let Ok(fd) = crate::sys::pidfd_open(p, p) {
                return Ok(((p, p, false), fd));
            }
            let tgid = thread_group(p).ok_or(DvkError::BadPid)?;
            open(tgid, p, tgid != p)
        };
        let (kind, node, task) = match target {
            BindTarget::Process => (ProcKind::Local, local, Some(open(c.pid, c.tid, false)?)),
            BindTarget::Thread => (ProcKind::Local, local, Some(open(c.pid, c.tid, true)?)),
            BindTarget::Pid(p) => (ProcKind::Local, local, Some(task_of(p)?)),
            BindTarget::Replica(p) => (ProcKind::Replica, local, Some(task_of(p)?)),
            BindTarget::Remote(n) => (ProcKind::Remote, n, None),
            BindTarget::Backup { pid, node } => (ProcKind::Backup, node, Some(task_of(pid)?)),
        };
        let (task, pidfd) = match task {
            Some((t, fd)) => (Some(t), Some(fd)),
            None => (None, None),
        };
        if let Some((pid, tid, thread)) = task {
            if self.task_bound(pid, tid, thread) {
                return Err(DvkError::ProcBound);
            }
        }
        let dc = self.dc(dcid)?;
        if node != local {
            if node < 0 || node >= dvs.nr_nodes {
                return Err(DvkError::BadNodeId);
            }
            if node >= 64 || dc.params.nodes & (1u64 << node) == 0 {
                return Err(DvkError::NoDcNode);
            }
            if !self.remote.is_up(node) {
                return Err(DvkError::NoProxy);
            }
        } else if matches!(kind, ProcKind::Remote | ProcKind::Backup) {
            return Err(DvkError::BadNodeId);
        }
        let s = Self::slot_for(dc, ep)?;
        if dc.slots[s].is_some() {
            return Err(DvkError::SlotUsed);
        }
        let nslots = dc.slots.len();
        let privileged = dc.params.privileged_by_default(ep.p_nr());
        let token = self.next_token;
        let (mbx_fd, mbx) = Mailbox::create(dcid, ep, nslots, token as u32)?;
        if let Some(carried) = &dc.carried[s] {
            mbx.continue_from(carried);
        }
        let mbx_ro = crate::sys::reopen_readonly(&mbx_fd)?;
        // The mailbox of an endpoint of another node is a surrogate that
        // the proxies write; its doorbell is theirs, shared by all of them.
        let (bell_fd, bell) = if node == local {
            Doorbell::create(dcid, ep, nslots)?
        } else {
            self.remote.bell_for(nslots)?
        };
        let (pid, tid, thread) = task.unwrap_or((0, 0, false));
        let privilege = PrivRecord::default_for(privileged);
        self.next_token += 1;
        let granted = matches!(target, BindTarget::Process | BindTarget::Thread)
            || !matches!(kind, ProcKind::Local | ProcKind::Replica);
        let b = Binding {
            ep,
            pid,
            tid,
            thread,
            kind,
            node,
            privilege,
            mbx_fd,
            mbx_ro,
            mbx,
            bell_fd,
            bell,
            pidfd,
            token,
            granted,
        };
        self.publish(dcid, s, b)?;
        tracing::debug!(dcid, %ep, pid, tid, ?kind, node, "bound");
        if matches!(kind, ProcKind::Local | ProcKind::Replica) {
            self.announce(dcid, ep, true);
        }
        Ok(match target {
            BindTarget::Process | BindTarget::Thread => BindOutcome::Granted(s),
            _ => BindOutcome::Other(ep),
        })
    }

    /// Writes a binding into the shared table (endpoint last) and registers
    /// its pidfd with the reaper.
    fn publish(&mut self, dcid: i32, s: usize, b: Binding) -> Result<()> {
        let dc = self.dc_mut(dcid)?;
        let t = &dc.table;
        t.pid(s).store(b.pid, Ordering::Relaxed);
        t.tid(s).store(b.tid, Ordering::Relaxed);
        t.node(s).store(b.node, Ordering::Relaxed);
        t.ipc_mask(s).store(b.privilege.ipc_mask, Ordering::Relaxed);
        t.kntf_head(s).store(0, Ordering::Relaxed);
        let mut flags = F_BOUND | (b.kind.bits() << F_KIND_SHIFT);
        if b.privilege.privileged() {
            flags |= F_PRIV;
        }
        t.flags(s).store(flags, Ordering::Release);
        t.seq(s).fetch_add(1, Ordering::Release);
        t.ep(s).store(b.ep.0, Ordering::Release);
        if let Some(fd) = &b.pidfd {
            use std::os::fd::AsRawFd;
            self.new_pidfds.push((b.token, fd.as_raw_fd()));
        }
        self.tokens.insert(b.token, (dcid, s));
        let dc = self.dc_mut(dcid)?;
        dc.slots[s] = Some(b);
        Ok(())
    }

    /// The grant for the caller's own binding, if it has one not yet handed out.
    pub fn take_grant(&mut self, c: &Caller) -> Option<(i32, usize)> {
        let (d, s) = self.binding_of(c)?;
        let b = self.dcs.get_mut(&d)?.slots.get_mut(s)?.as_mut()?;
        if b.granted {
            return None;
        }
        b.granted = true;
        Some((d, s))
    }

    /// Whether the caller is bound and already holds its grant.
    pub fn already_granted(&self, c: &Caller) -> bool {
        self.binding_of(c)
            .and_then(|(d, s)| self.binding(d, s))
            .is_some_and(|b| b.granted)
    }

    /// Descriptors of a grant: table (read-only), mailbox, doorbell.
    pub fn grant_fds(
        &self,
        dcid: i32,
        s: usize,
    ) -> Result<(DcParams, Endpoint, i32, Vec<OwnedFd>)> {
        let dc = self.dc(dcid)?;
        let b = dc.slots[s].as_ref().ok_or(DvkError::NotBind)?;
        let fds = vec![
            dc.table_ro.try_clone().map_err(|_| DvkError::NoMem)?,
            b.mbx_fd.try_clone().map_err(|_| DvkError::NoMem)?,
            b.bell_fd.try_clone().map_err(|_| DvkError::NoMem)?,
        ];
        Ok((dc.params.clone(), b.ep, b.node, fds))
    }

    /// Descriptors of a peer for a caller bound in the same DC, and its
    /// binding sequence number.
    pub fn peer_fds(
        &self,
        c: &Caller,
        dcid: i32,
        ep: Endpoint,
    ) -> Result<(usize, u32, Vec<OwnedFd>)> {
        match self.binding_of(c) {
            Some((d, _)) if d == dcid => {}
            Some(_) => return Err(DvkError::Perm),
            None => return Err(DvkError::NotBind),
        }
        let s = self.find(dcid, ep)?;
        let dc = self.dc(dcid)?;
        let b = dc.slots[s].as_ref().ok_or(DvkError::NotBind)?;
        let fds = vec![
            b.mbx_ro.try_clone().map_err(|_| DvkError::NoMem)?,
            b.bell_fd.try_clone().map_err(|_| DvkError::NoMem)?,
        ];
        Ok((dc.slots.len(), dc.table.seq(s).load(Ordering::Acquire), fds))
    }

    /// Unbind requested through the API: by a manager, or by the endpoint itself.
    pub fn unbind(&mut self, c: &Caller, dcid: i32, ep: Endpoint) -> Result<()> {
        let s = self.find(dcid, ep)?;
        if self.binding_of(c) != Some((dcid, s)) {
            self.require_manager(c)?;
        }
        self.unbind_slot(dcid, s, false);
        Ok(())
    }

    /// The caller's own endpoint `ep` was interrupted by a signal while
    /// waiting for a reply: the endpoint it waits for gets a `Signal`
    /// notification (through the same ring as `Exit`).
    pub fn interrupt(&mut self, c: &Caller, dcid: i32, ep: Endpoint) -> Result<()> {
        let s = self.find(dcid, ep)?;
        if self.binding_of(c) != Some((dcid, s)) {
            return Err(DvkError::Privileges);
        }
        let dc = self.dc_mut(dcid)?;
        let b = dc.slots[s].as_ref().ok_or(DvkError::NotBind)?;
        let (st, to) = unpack_status(b.mbx.status().load(Ordering::Acquire));
        if matches!(st, IpcState::SendRec | IpcState::ReplyWait) && to != Endpoint::NONE {
            self.deferred.push(Deferred {
                dcid,
                target: to,
                entry: pack_pair(ep, NotifyKind::Signal as u32),
            });
            self.flush_deferred();
        }
        Ok(())
    }

    /// Frees a slot. `died` means the task ended without unbinding: its
    /// warn endpoint (or the DC's) gets an `Exit` notification.
    pub fn unbind_slot(&mut self, dcid: i32, s: usize, died: bool) {
        let local = self.dvs.map(|(n, _)| n).unwrap_or(0);
        let Some(dc) = self.dcs.get_mut(&dcid) else {
            return;
        };
        let Some(b) = dc.slots.get_mut(s).and_then(|x| x.take()) else {
            return;
        };
        // A reply posted just before the end still goes to its remote
        // receiver, as a local receiver would still take it.
        self.remote
            .forward_last_replies(dcid, local, s, &b, &dc.slots);
        // Messages from other nodes it took are acknowledged, the others
        // refused.
        self.remote.settle_inbound_to(dcid, local, s, &b, &dc.slots);
        let t = &dc.table;
        t.ep(s).store(Endpoint::NONE.0, Ordering::Release);
        t.flags(s).store(0, Ordering::Release);
        t.seq(s).fetch_add(1, Ordering::Release);
        t.pid(s).store(0, Ordering::Relaxed);
        t.tid(s).store(0, Ordering::Relaxed);
        self.tokens.remove(&b.token);
        dc.carried[s] = Some(b.mbx.carried(&b.mbx_fd));
        // The endpoint's own blocked call and peers blocked on it re-check
        // and fail. A local peer whose published IPC state waits on
        // another endpoint (a server idle in `receive(ANY)`) has nothing
        // to re-check: waking every process and server of the DC at each
        // exit cost a context switch apiece. The fence pairs with the one
        // in `Ipc::set_status`: either that peer's check sees the endpoint
        // gone, or this sees its state.
        b.bell.wake();
        fence(Ordering::SeqCst);
        for other in dc.slots.iter().flatten() {
            if other.kind == ProcKind::Local {
                let (st, peer) = unpack_status(other.mbx.status().load(Ordering::Acquire));
                if st != IpcState::Running && peer != b.ep {
                    continue;
                }
            }
            other.bell.wake();
        }
        tracing::debug!(dcid, ep = %b.ep, died, "unbound");
        if died {
            let warn = if b.privilege.warn != Endpoint::NONE {
                b.privilege.warn
            } else {
                dc.params.warn2proc
            };
            if warn != Endpoint::NONE {
                self.deferred.push(Deferred {
                    dcid,
                    target: warn,
                    entry: pack_pair(b.ep, NotifyKind::Exit as u32),
                });
            }
        }
        if matches!(b.kind, ProcKind::Local | ProcKind::Replica) {
            self.announce(dcid, b.ep, false);
        }
        self.flush_deferred();
    }

    /// Delivers deferred DVK notifications whose target ring has room.
    pub fn flush_deferred(&mut self) {
        let mut keep = Vec::new();
        for d in std::mem::take(&mut self.deferred) {
            let Some(dc) = self.dcs.get(&d.dcid) else {
                continue;
            };
            let Some(s) = dc.params.slot_of(d.target.p_nr()) else {
                continue;
            };
            let Some(b) = dc.slots[s].as_ref().filter(|b| b.ep == d.target) else {
                continue; // target gone: nobody to warn
            };
            if b.kind == ProcKind::Remote {
                let node = b.node;
                self.forward_kntf(d.dcid, node, d.target, d.entry);
                continue;
            }
            let head = dc.table.kntf_head(s).load(Ordering::Relaxed);
            let tail = b.mbx.kntf_tail().load(Ordering::Acquire);
            if head.wrapping_sub(tail) >= KNTF_RING {
                keep.push(d);
                continue;
            }
            dc.table
                .kntf_entry(s, head)
                .store(d.entry, Ordering::Release);
            dc.table
                .kntf_head(s)
                .store(head.wrapping_add(1), Ordering::Release);
            b.bell.wake();
        }
        self.deferred = keep;
    }

    /// Called by the reaper when a pidfd fires.
    pub fn task_ended(&mut self, token: u64) {
        if let Some(&(dcid, s)) = self.tokens.get(&token) {
            self.unbind_slot(dcid, s, true);
        }
    }

    // -------------------------------------------------------- privileges

    pub fn setpriv(&mut self, dcid: i32, ep: Endpoint, rec: PrivRecord) -> Result<()> {
        let s = self.find(dcid, ep)?;
        let dc = self.dc_mut(dcid)?;
        let b = dc.slots[s].as_mut().ok_or(DvkError::NotBind)?;
        b.privilege = rec;
        let t = &dc.table;
        t.ipc_mask(s).store(rec.ipc_mask, Ordering::Release);
        if rec.privileged() {
            t.flags(s).fetch_or(F_PRIV, Ordering::Release);
        } else {
            t.flags(s).fetch_and(!F_PRIV, Ordering::Release);
        }
        Ok(())
    }

    pub fn getpriv(&self, dcid: i32, ep: Endpoint) -> Result<PrivRecord> {
        let s = self.find(dcid, ep)?;
        Ok(self.dc(dcid)?.slots[s]
            .as_ref()
            .ok_or(DvkError::NotBind)?
            .privilege)
    }

    /// `Retask`: the thread binding that `c` acts as passes to thread
    /// `tid` of its process, or is parked (`tid == 0`): bound to the
    /// process, watched through the process's pidfd, under a task id no
    /// thread has (a negative number unique to the binding). Returns the
    /// task id the caller's connection acts as from now on.
    pub fn retask(&mut self, c: &Caller, tid: i32) -> Result<i32> {
        let (dcid, s) = self
            .find_binding(|b| b.thread && b.pid == c.pid && b.tid == c.tid)
            .ok_or(DvkError::NotBind)?;
        if tid != 0 {
            if tid < 0 || !task_exists(c.pid, tid) {
                return Err(DvkError::BadPid);
            }
            if self.find_binding(|b| b.tid == tid).is_some() {
                return Err(DvkError::SlotUsed);
            }
        }
        let pidfd = crate::sys::pidfd_open(c.pid, if tid == 0 { c.pid } else { tid })
            .map_err(|_| DvkError::BadPid)?;
        let token = self.next_token;
        self.next_token += 1;
        let new_tid = if tid == 0 {
            -1 - (token % i32::MAX as u64) as i32
        } else {
            tid
        };
        let dc = self.dcs.get_mut(&dcid).ok_or(DvkError::DcNotRun)?;
        let b = dc.slots[s].as_mut().ok_or(DvkError::NotBind)?;
        self.tokens.remove(&b.token);
        b.token = token;
        b.tid = new_tid;
        use std::os::fd::AsRawFd;
        self.new_pidfds.push((token, pidfd.as_raw_fd()));
        b.pidfd = Some(pidfd);
        self.tokens.insert(token, (dcid, s));
        dc.table.tid(s).store(new_tid, Ordering::Release);
        Ok(new_tid)
    }

    // --------------------------------------------------------- migration

    fn wake_dc(dc: &Dc) {
        for b in dc.slots.iter().flatten() {
            b.bell.wake();
        }
    }

    pub fn migr_start(&mut self, dcid: i32, ep: Endpoint) -> Result<()> {
        let s = self.find(dcid, ep)?;
        let dc = self.dc(dcid)?;
        let prev = dc.table.flags(s).fetch_or(F_FROZEN, Ordering::AcqRel);
        if prev & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        Ok(())
    }

    pub fn migr_rollback(&mut self, dcid: i32, ep: Endpoint) -> Result<()> {
        let s = self.find(dcid, ep)?;
        let dc = self.dc(dcid)?;
        let prev = dc.table.flags(s).fetch_and(!F_FROZEN, Ordering::AcqRel);
        if prev & F_FROZEN == 0 {
            return Err(DvkError::Inval);
        }
        Self::wake_dc(dc);
        Ok(())
    }

    pub fn migr_commit(&mut self, pid: i32, dcid: i32, ep: Endpoint, node: i32) -> Result<()> {
        let (local, dvs) = self.dvs()?;
        let s = self.find(dcid, ep)?;
        if self.dc(dcid)?.table.flags(s).load(Ordering::Acquire) & F_FROZEN == 0 {
            return Err(DvkError::Inval);
        }
        if node < 0 || node >= dvs.nr_nodes {
            return Err(DvkError::BadNodeId);
        }
        if node != local {
            // Moving an endpoint to another node needs the proxies of the
            // multi-node DVS, which this node does not have.
            return Err(DvkError::NoDcNode);
        }
        let dc = self.dcs.get_mut(&dcid).ok_or(DvkError::DcNotRun)?;
        let b = dc.slots[s].as_mut().ok_or(DvkError::NotBind)?;
        if pid != b.pid {
            if !proc_exists(pid) {
                return Err(DvkError::BadPid);
            }
            let pidfd = crate::sys::pidfd_open(pid, pid).map_err(|_| DvkError::BadPid)?;
            self.tokens.remove(&b.token);
            b.token = self.next_token;
            self.next_token += 1;
            b.pid = pid;
            b.tid = pid;
            b.thread = false;
            b.granted = false;
            use std::os::fd::AsRawFd;
            self.new_pidfds.push((b.token, pidfd.as_raw_fd()));
            b.pidfd = Some(pidfd);
            self.tokens.insert(b.token, (dcid, s));
            dc.table.pid(s).store(pid, Ordering::Release);
            dc.table.tid(s).store(pid, Ordering::Release);
            dc.table.seq(s).fetch_add(1, Ordering::Release);
        }
        dc.table.flags(s).fetch_and(!F_FROZEN, Ordering::AcqRel);
        Self::wake_dc(dc);
        Ok(())
    }

    // ------------------------------------------------------------ status

    fn proc_info(dc: &Dc, s: usize, b: &Binding) -> ProcInfo {
        let (st, peer) = unpack_status(b.mbx.status().load(Ordering::Acquire));
        let (getf, sndt) = match st {
            crate::layout::IpcState::Receiving
            | crate::layout::IpcState::RcvRqst
            | crate::layout::IpcState::ReplyWait => (peer, Endpoint::NONE),
            crate::layout::IpcState::Sending | crate::layout::IpcState::SendRec => {
                (Endpoint::NONE, peer)
            }
            crate::layout::IpcState::Running => (Endpoint::NONE, Endpoint::NONE),
        };
        ProcInfo {
            dcid: dc.params.dcid,
            p_nr: b.ep.p_nr(),
            endpoint: b.ep,
            lpid: b.pid,
            tid: b.tid,
            node: b.node,
            kind: b.kind,
            privilege: b.privilege,
            migrating: dc.table.flags(s).load(Ordering::Acquire) & F_FROZEN != 0,
            state: st.name().to_string(),
            getf,
            sndt,
            // Read when asked: it follows the task's execs.
            name: match b.kind {
                ProcKind::Remote => format!("(node {})", b.node),
                _ => crate::sys::task_name(b.pid, if b.thread { b.tid } else { b.pid }),
            },
            lsnt: b.mbx.lsnt().load(Ordering::Relaxed),
            rsnt: b.mbx.rsnt().load(Ordering::Relaxed),
            lcopy: b.mbx.lcopy().load(Ordering::Relaxed),
            rcopy: b.mbx.rcopy().load(Ordering::Relaxed),
        }
    }

    pub fn getprocinfo(&self, dcid: i32, ep: Endpoint) -> Result<ProcInfo> {
        let dc = self.dc(dcid)?;
        let s = Self::slot_for(dc, ep)?;
        match &dc.slots[s] {
            Some(b) if b.ep == ep || ep.generation() == 0 => Ok(Self::proc_info(dc, s, b)),
            Some(_) => Err(DvkError::NotBind),
            None => Err(DvkError::NotBind),
        }
    }

    pub fn status(&self) -> Result<StatusSnapshot> {
        let info = self.dvs_info()?;
        let mut dcs = Vec::new();
        for (&id, dc) in &self.dcs {
            let procs: Vec<ProcInfo> = dc
                .slots
                .iter()
                .enumerate()
                .filter_map(|(s, b)| b.as_ref().map(|b| Self::proc_info(dc, s, b)))
                .collect();
            let mut stats = DcStats::default();
            for p in &procs {
                stats.lsnt += p.lsnt;
                stats.rsnt += p.rsnt;
                stats.lcopy += p.lcopy;
                stats.rcopy += p.rcopy;
            }
            dcs.push(DcStatus {
                info: self.dc_info(id)?,
                procs,
                stats,
            });
        }
        let node = NodeStatus {
            id: info.node,
            name: self
                .cluster_nodes
                .iter()
                .find(|n| n.id == info.node)
                .map(|n| n.name.clone())
                .or_else(|| nix::unistd::gethostname().ok()?.into_string().ok())
                .unwrap_or_else(|| format!("node{}", info.node)),
            up: true,
            proxy: None,
            dcs: self.dcs.keys().copied().collect(),
        };
        // Other configured nodes are up while their proxies are connected.
        let mut nodes = vec![node];
        for n in self.cluster_nodes.iter().filter(|n| n.id != info.node) {
            nodes.push(NodeStatus {
                id: n.id,
                name: n.name.clone(),
                up: self.remote.is_up(n.id),
                proxy: None,
                dcs: Vec::new(),
            });
        }
        nodes.sort_by_key(|n| n.id);
        Ok(StatusSnapshot {
            info,
            nodes,
            proxies: Vec::new(),
            dcs,
        })
    }
}
