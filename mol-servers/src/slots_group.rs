//! SYSTASK's SLOTS thread: the slot-donation algorithm of
//! [`crate::slots`] run over Corosync CPG among the SYSTASKs of a DC's
//! nodes (DESIGN §4, §5; thesis §4.4.3).
//!
//! * **What a slot is.** The user process slots of the DC (`p_nr` from
//!   [`FIRST_USER_SLOT`] up). A task started on a node (a fork, a thread,
//!   a program a launcher runs there) is bound to a slot that node owns,
//!   with the slot's next generation; the node's replica of the ownership
//!   table decides, so no other node is asked. PM, on the DC's first node,
//!   allocates through its own node's group (the same process) and asks
//!   the SYSTASK of another node for a slot there (`SysSlot`).
//! * **The group.** One CPG group per DC (`dvs-dc<id>-<name>-slots`); the
//!   members are the nodes whose SYSTASK of the DC runs, by DVS node id
//!   (Corosync's id less one). The DC's first node is the founder and
//!   owns every slot. A node that joins later owns nothing: it multicasts
//!   `NeedState`, the lowest member that has the table answers with it
//!   (`State`), and the joiner applies what was delivered after its own
//!   `NeedState`; being below its reserve it then asks for slots as any
//!   member does. A member that leaves (its node failed, or the DC ended
//!   there) gives its slots to the primary, the lowest id.
//! * **Generations.** The owner of a slot knows its generation; a donation
//!   carries the generations of the slots it gives. Slots taken over from a
//!   failed member skip [`GEN_JUMP`] generations, as their last ones are
//!   unknown.
//! * **Registrations.** The group's views are Corosync's totally ordered
//!   broadcast of which nodes run a SYSTASK of the DC: when a node joins
//!   the group every member registers that node's SYSTASK endpoint as a
//!   Remote endpoint (a joiner registers those of the members the table
//!   names), and unregisters it when the node leaves. (The servers of the
//!   DC's first node reach the others through the DVK's `dc_join`.)
//! * **Partitions.** Only the side with the DC's first node keeps the
//!   table: a member that sees the first node leave gives up its slots
//!   (the DC ends on its node anyway), so tables never need merging.
//! * **Without Corosync** (a single-node DVS, or Corosync not running) the
//!   founder owns every slot and no other node gets any: a node that joins
//!   the DC cannot start processes, and says so.

use crate::abi::FIRST_USER_SLOT;
use crate::slots::{Member, Msg, NodeId, Params, Policy};
use dvk::membership::{Group, JoinGroup, MemberEvent, MAX_GROUP_LEN};
use dvk::{DcParams, Dvk, DvkError, Endpoint, ProcKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Free slots a node keeps for itself; below it, it asks for more.
pub const FREE_LOW: usize = 4;

/// Generations skipped on the slots of a member that failed.
pub const GEN_JUMP: i32 = 1024;

/// One round of the algorithm (its clock: retries and backoff).
const ROUND: Duration = Duration::from_millis(100);

/// Rounds before an unanswered request is repeated.
const RETRY_ROUNDS: u64 = 3;

/// How often a joiner without the table asks for it again.
const STATE_RETRY: Duration = Duration::from_millis(300);

/// Largest generation (endpoints stay in `i32`).
const GEN_MAX: i32 = i32::MAX / dvk::endpoint::GEN_SIZE - 1;

/// A multicast of the group.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Wire {
    /// A message of the algorithm; a donation carries the generations of
    /// the slots it gives (empty otherwise).
    Slots { msg: Msg, gens: Vec<i32> },
    /// A joiner asks for the table (its `ask`-th time).
    NeedState { from: NodeId, ask: u32 },
    /// The table, for joiner `to` in answer to its `ask`; `founder` is the
    /// DC's first node.
    State {
        to: NodeId,
        ask: u32,
        founder: NodeId,
        owner: Vec<NodeId>,
        members: Vec<NodeId>,
        synced: Vec<NodeId>,
    },
}

/// What a node's group reports (`SysSlots`, `dvs status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotsStatus {
    /// This node.
    pub node: i32,
    /// The CPG group, or why there is none.
    pub gcs: String,
    /// Whether this node has the ownership table.
    pub synced: bool,
    /// Members of the group (DVS node ids).
    pub members: Vec<i32>,
    /// The first user slot; `owner[i]` is the owner of slot
    /// `first_slot + i` (-1: unknown yet).
    pub first_slot: i32,
    /// The owner of every user slot, in this replica.
    pub owner: Vec<i32>,
    /// Free slots this node owns.
    pub free: usize,
    /// Slots in use on this node.
    pub in_use: usize,
    /// Slots given out here since the start (forks, threads, programs).
    pub allocs: u64,
    /// Allocations that found no free slot at first.
    pub waits: u64,
    /// Allocations that failed (no slot in time).
    pub failed: u64,
    /// Multicasts this node sent (requests, donations, tables, table requests).
    pub multicasts: u64,
    /// Requests this node sent.
    pub requests: u64,
    /// Slots this node received in donations.
    pub received: u64,
    /// Slots this node donated.
    pub donated: u64,
}

struct Inner {
    member: Member,
    /// The DC's first node (known once synced).
    founder: Option<NodeId>,
    gens: Vec<i32>,
    /// Has the table (the founder from the start).
    synced: bool,
    /// Members known to have the table (replicated once synced).
    synced_set: BTreeSet<NodeId>,
    /// A joiner's events since its first delivered `NeedState`, and where
    /// each of its `NeedState`s was delivered in it.
    backlog: Vec<MemberEvent>,
    marks: Vec<(u32, usize)>,
    asks: u32,
    last_ask: Option<Instant>,
    gcs: String,
    now: u64,
    stats: SlotsStatus,
}

/// A node's SLOTS state for one DC, shared by its SYSTASK, its SLOTS
/// thread and (on the DC's first node) PM.
pub struct SlotsGroup {
    dcid: i32,
    node: i32,
    params: Params,
    inner: Mutex<Inner>,
    changed: Condvar,
    cpg: Mutex<Option<Box<dyn Group>>>,
    /// Without a group, unit tests collect the multicasts here.
    #[cfg(test)]
    outbox: Mutex<Vec<Wire>>,
    stop: std::sync::atomic::AtomicBool,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotsGroup {
    fn new(dcid: i32, node: i32, nr_procs: i32, founder: bool) -> Arc<SlotsGroup> {
        let n = (nr_procs - FIRST_USER_SLOT).max(0) as usize;
        let params = Params {
            policy: Policy::Surplus,
            nr_slots: n,
            free_low: FREE_LOW,
            retry_rounds: RETRY_ROUNDS,
        };
        let me = node as NodeId;
        let member = if founder {
            Member::new(me, params, &[me])
        } else {
            Member::joiner(me, params)
        };
        Arc::new(SlotsGroup {
            dcid,
            node,
            params,
            inner: Mutex::new(Inner {
                member,
                founder: founder.then_some(me),
                gens: vec![0; n],
                synced: founder,
                synced_set: if founder {
                    BTreeSet::from([me])
                } else {
                    BTreeSet::new()
                },
                backlog: Vec::new(),
                marks: Vec::new(),
                asks: 0,
                last_ask: None,
                gcs: "none".into(),
                now: 0,
                stats: SlotsStatus {
                    node,
                    gcs: String::new(),
                    synced: founder,
                    members: vec![node],
                    first_slot: FIRST_USER_SLOT,
                    owner: Vec::new(),
                    free: 0,
                    in_use: 0,
                    allocs: 0,
                    waits: 0,
                    failed: 0,
                    multicasts: 0,
                    requests: 0,
                    received: 0,
                    donated: 0,
                },
            }),
            changed: Condvar::new(),
            cpg: Mutex::new(None),
            #[cfg(test)]
            outbox: Mutex::new(Vec::new()),
            stop: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The group of the DC's first node: it owns every slot of a DC with
    /// `nr_procs` process slots.
    pub fn founder(dcid: i32, node: i32, nr_procs: i32) -> Arc<SlotsGroup> {
        SlotsGroup::new(dcid, node, nr_procs, true)
    }

    /// The group of a node that joined the DC: it owns nothing until the
    /// others give it slots.
    pub fn joiner(dcid: i32, node: i32, nr_procs: i32) -> Arc<SlotsGroup> {
        SlotsGroup::new(dcid, node, nr_procs, false)
    }

    /// A free slot of this node, as its next endpoint. Without one, asks
    /// the group and waits up to `wait` for a donation (`EAGAIN` then).
    pub fn alloc(&self, wait: Duration) -> Result<Endpoint, i32> {
        let deadline = Instant::now() + wait;
        let mut st = lock(&self.inner);
        let mut first = true;
        loop {
            let (slot, ask) = st.member.alloc();
            if let Some(ask) = ask {
                st.stats.requests += 1;
                st = self.send(
                    st,
                    &[Wire::Slots {
                        msg: ask,
                        gens: Vec::new(),
                    }],
                );
            }
            if let Some(s) = slot {
                st.stats.allocs += 1;
                return Ok(Endpoint::new(
                    st.gens[s as usize],
                    FIRST_USER_SLOT + s as i32,
                ));
            }
            if first {
                st.stats.waits += 1;
                first = false;
            }
            let now = Instant::now();
            if now >= deadline {
                st.stats.failed += 1;
                if st.synced {
                    tracing::warn!(node = self.node, gcs = %st.gcs, "no free process slot on this node");
                } else {
                    tracing::warn!(
                        node = self.node,
                        gcs = %st.gcs,
                        "no process slot: no member of the DC's SLOTS group sent this node \
                         the slot table (is Corosync running on the DC's first node?)"
                    );
                }
                return Err(libc::EAGAIN);
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The task bound as `ep` (a slot of this node) is gone: its slot is
    /// free again, with the next generation.
    pub fn release(&self, ep: Endpoint) {
        self.free(ep.p_nr(), Some(ep.generation()));
    }

    /// Frees slot `p_nr` if it is in use here (and has generation `gen`,
    /// if given), bumping its generation.
    fn free(&self, p_nr: i32, gen: Option<i32>) {
        let s = p_nr - FIRST_USER_SLOT;
        if s < 0 {
            return;
        }
        let mut st = lock(&self.inner);
        if st.member.in_use(s as u32) && gen.is_none_or(|g| st.gens[s as usize] == g) {
            st.member.release(s as u32);
            let g = &mut st.gens[s as usize];
            *g = if *g >= GEN_MAX { 0 } else { *g + 1 };
            self.changed.notify_all();
        }
    }

    /// Whether this node owns slot `p_nr` (in its replica).
    pub fn owns(&self, p_nr: i32) -> bool {
        let s = p_nr - FIRST_USER_SLOT;
        s >= 0 && lock(&self.inner).member.owner_of(s as u32) == Some(self.node as NodeId)
    }

    /// Slot `p_nr`, which this node took over from a failed node while it
    /// was the endpoint of a process elsewhere (so it stayed taken, see
    /// [`SlotsGroup::alloc`]'s callers), is free now.
    pub fn release_slot(&self, p_nr: i32) {
        self.free(p_nr, None);
    }

    /// This node's view.
    pub fn status(&self) -> SlotsStatus {
        let st = lock(&self.inner);
        let mut s = st.stats.clone();
        s.gcs = st.gcs.clone();
        s.synced = st.synced;
        s.members = st.member.members().iter().map(|&m| m as i32).collect();
        s.owner = (0..st.gens.len() as u32)
            .map(|i| match st.member.owner_of(i) {
                Some(o) if o != NodeId::MAX => o as i32,
                _ => -1,
            })
            .collect();
        s.free = st.member.free_count();
        s.in_use = (0..st.gens.len() as u32)
            .filter(|&i| st.member.in_use(i))
            .count();
        s
    }

    /// Multicasts `msgs` without holding the lock (Corosync may make the
    /// call wait); returns the lock again. Without a group they are
    /// dropped (requests are repeated by the clock).
    fn send<'a>(&'a self, st: MutexGuard<'a, Inner>, msgs: &[Wire]) -> MutexGuard<'a, Inner> {
        if msgs.is_empty() {
            return st;
        }
        drop(st);
        #[cfg(test)]
        self.outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(msgs.iter().cloned());
        let mut sent = 0;
        if let Some(cpg) = self
            .cpg
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            for m in msgs {
                match bincode::serialize(m) {
                    Ok(data) => match cpg.multicast(&data) {
                        Ok(()) => sent += 1,
                        Err(e) => tracing::warn!(%e, "SLOTS cannot multicast"),
                    },
                    Err(e) => tracing::error!(%e, "SLOTS cannot encode a message"),
                }
            }
        }
        let mut st = lock(&self.inner);
        st.stats.multicasts += sent;
        st
    }

    /// Starts the SLOTS thread: joins CPG group of the DC (`name`) through
    /// the local Corosync and follows it until the group ends. A founder
    /// whose DVS has no other nodes (`cluster` false) stays alone, and so
    /// does one of a program that joins no groups (`join` is `None`).
    pub fn start(
        self: &Arc<Self>,
        socket: &Path,
        name: &str,
        cluster: bool,
        join: Option<JoinGroup>,
    ) {
        if !cluster {
            lock(&self.inner).gcs = "none (single-node DVS)".into();
            return;
        }
        let Some(join) = join else {
            tracing::warn!("SLOTS has no group service here: process slots stay where they are");
            lock(&self.inner).gcs = "none (no group service in this program)".into();
            return;
        };
        let mut group = format!("dvs-dc{}-{name}-slots", self.dcid);
        group.truncate(MAX_GROUP_LEN);
        let (me, socket) = (self.clone(), socket.to_path_buf());
        let r = std::thread::Builder::new()
            .name("slots".into())
            .spawn(move || me.run(&group, &socket, join));
        if let Err(e) = r {
            tracing::warn!(%e, "cannot start the SLOTS thread");
        }
    }

    fn run(self: Arc<Self>, group: &str, socket: &Path, join: JoinGroup) {
        let (cpg, events) = match join(group) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%e, group, "SLOTS has no group: process slots stay where they are");
                lock(&self.inner).gcs = format!("none ({e})");
                self.changed.notify_all();
                return;
            }
        };
        let dvk = Dvk::connect(socket)
            .map_err(|e| tracing::warn!(%e, "SLOTS cannot reach the node daemon"))
            .ok();
        *self.cpg.lock().unwrap_or_else(PoisonError::into_inner) = Some(cpg);
        lock(&self.inner).gcs = group.to_string();
        tracing::info!(group, node = self.node, "SLOTS joined its group");
        // A joiner asks for the table at once.
        self.tick();
        let mut next_round = Instant::now() + ROUND;
        while !self.stop.load(Ordering::Acquire) {
            let wait = next_round.saturating_duration_since(Instant::now());
            match events.recv_timeout(wait) {
                Ok(ev) => self.event(ev, dvk.as_ref()),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_round {
                self.tick();
                next_round = Instant::now() + ROUND;
            }
        }
        // Leaving the group hands our slots to the primary elsewhere.
        let left = self
            .cpg
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if !self.stop.load(Ordering::Acquire) {
            tracing::warn!(group, "SLOTS lost its group (Corosync ended)");
            lock(&self.inner).gcs = format!("lost ({group})");
        }
        drop(left);
    }

    /// The DC ended on this node: the SLOTS thread leaves the group.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
    }

    /// One round: a request that is due again, or the table asked again.
    fn tick(&self) {
        let me = self.node as NodeId;
        let mut st = lock(&self.inner);
        let mut out = Vec::new();
        if st.synced {
            st.now += 1;
            let now = st.now;
            if let Some(ask) = st.member.tick(now) {
                st.stats.requests += 1;
                out.push(Wire::Slots {
                    msg: ask,
                    gens: Vec::new(),
                });
            }
        } else if st.last_ask.is_none_or(|t| t.elapsed() >= STATE_RETRY) {
            st.asks += 1;
            st.last_ask = Some(Instant::now());
            out.push(Wire::NeedState {
                from: me,
                ask: st.asks,
            });
        }
        drop(self.send(st, &out));
    }

    /// A CPG event, in delivery order.
    fn event(&self, ev: MemberEvent, dvk: Option<&Dvk>) {
        let me = self.node as NodeId;
        let mut st = lock(&self.inner);
        if !st.synced {
            // Our own NeedState marks where a table answering it stands.
            if let MemberEvent::Message { from, data } = &ev {
                if let Ok(Wire::NeedState { from: f, ask }) = bincode::deserialize(data) {
                    if f == me && *from == me + 1 {
                        let at = st.backlog.len();
                        st.marks.push((ask, at));
                        return;
                    }
                }
            }
            if st.marks.is_empty() {
                return; // before our first NeedState: the table has it
            }
            if let MemberEvent::Message { from, data } = &ev {
                if let Ok(Wire::State {
                    to,
                    ask,
                    founder,
                    owner,
                    members,
                    synced,
                }) = bincode::deserialize(data)
                {
                    if to == me && *from != me + 1 {
                        st.founder = Some(founder);
                        drop(st);
                        return self.take_table(ask, owner, &members, synced, dvk);
                    }
                }
            }
            st.backlog.push(ev);
            return;
        }
        drop(st);
        self.apply(ev, dvk);
    }

    /// A joiner got the table answering its `ask`: applies it, then what
    /// was delivered after that `NeedState`.
    fn take_table(
        &self,
        ask: u32,
        owner: Vec<NodeId>,
        members: &[NodeId],
        synced: Vec<NodeId>,
        dvk: Option<&Dvk>,
    ) {
        let me = self.node as NodeId;
        let rest = {
            let mut st = lock(&self.inner);
            let Some(&(_, at)) = st.marks.iter().find(|(a, _)| *a == ask) else {
                return;
            };
            if !st.member.set_table(owner, members) {
                tracing::warn!("SLOTS got a table of another size: ignored");
                return;
            }
            st.synced = true;
            st.synced_set = synced.into_iter().collect();
            st.synced_set.insert(me);
            // Any slots the table gives us come with unknown generations.
            for i in 0..st.gens.len() {
                if st.member.owner_of(i as u32) == Some(me) {
                    st.gens[i] = GEN_JUMP;
                }
            }
            let backlog = std::mem::take(&mut st.backlog);
            st.marks.clear();
            tracing::info!(node = self.node, "SLOTS has the slot table");
            backlog.into_iter().skip(at).collect::<Vec<_>>()
        };
        {
            // The members' SYSTASKs become reachable, and a joiner, which
            // owns few slots if any, asks at once.
            if let Some(d) = dvk {
                for m in members.iter().filter(|&&m| m != me) {
                    self.register_systask(d, *m as i32);
                }
            }
            let mut st = lock(&self.inner);
            let now = st.now;
            if let Some(ask) = st.member.tick(now) {
                st.stats.requests += 1;
                let ask = Wire::Slots {
                    msg: ask,
                    gens: Vec::new(),
                };
                drop(self.send(st, &[ask]));
            }
        }
        for ev in rest {
            self.apply(ev, dvk);
        }
        self.changed.notify_all();
    }

    /// An event for a member that has the table.
    fn apply(&self, ev: MemberEvent, dvk: Option<&Dvk>) {
        let me = self.node as NodeId;
        let mut st = lock(&self.inner);
        let mut out = Vec::new();
        match ev {
            MemberEvent::Joined(id) => {
                let id = id.wrapping_sub(1);
                if id != me {
                    st.member.member_joined(id);
                    if let Some(d) = dvk {
                        self.register_systask(d, id as i32);
                    }
                }
            }
            MemberEvent::Left(id) => {
                let id = id.wrapping_sub(1);
                if id == me {
                    return;
                }
                if st.founder == Some(id) {
                    // Cut off from the DC's first node (the DC ends here
                    // too): this side's table may not be merged back, so
                    // this node gives up its slots and would ask for the
                    // table again.
                    tracing::warn!(
                        node = id,
                        "SLOTS: the DC's first node left; this node's slots are void"
                    );
                    st.member = Member::joiner(me, self.params);
                    st.founder = None;
                    st.synced = false;
                    st.synced_set.clear();
                    st.backlog.clear();
                    st.marks.clear();
                    st.last_ask = None;
                    self.changed.notify_all();
                    return;
                }
                let before: Vec<Option<NodeId>> = (0..st.gens.len() as u32)
                    .map(|i| st.member.owner_of(i))
                    .collect();
                st.member.members_left(&[id]);
                st.synced_set.remove(&id);
                for (i, b) in before.into_iter().enumerate() {
                    if b != Some(me) && st.member.owner_of(i as u32) == Some(me) {
                        st.gens[i] = (st.gens[i] + GEN_JUMP) % GEN_MAX;
                    }
                }
                tracing::info!(
                    node = id,
                    "SLOTS: node left the group; its slots go to the primary"
                );
                if let Some(d) = dvk {
                    self.forget_systask(d, id as i32);
                }
            }
            MemberEvent::Message { from, data } => {
                let Ok(w) = bincode::deserialize::<Wire>(&data) else {
                    tracing::warn!(from, "SLOTS: malformed message ignored");
                    return;
                };
                let sender = from.wrapping_sub(1);
                match w {
                    Wire::Slots { msg, gens } => {
                        let claimed = match &msg {
                            Msg::Request { from, .. } | Msg::Donate { from, .. } => *from,
                        };
                        if claimed != sender {
                            tracing::warn!(
                                sender,
                                claimed,
                                "SLOTS: message for another node ignored"
                            );
                            return;
                        }
                        // Slots that become ours take the donor's generations.
                        let given: Vec<(u32, i32, bool)> = match &msg {
                            Msg::Donate { slots, .. } => slots
                                .iter()
                                .enumerate()
                                .map(|(k, &s)| {
                                    let g = gens.get(k).copied().unwrap_or(GEN_JUMP);
                                    (s, g.clamp(0, GEN_MAX), st.member.owner_of(s) == Some(me))
                                })
                                .collect(),
                            Msg::Request { .. } => Vec::new(),
                        };
                        let answer = st.member.deliver(&msg);
                        for (s, g, was_mine) in given {
                            if st.member.owner_of(s) == Some(me) && !was_mine {
                                st.gens[s as usize] = g;
                                st.stats.received += 1;
                            } else if was_mine && st.member.owner_of(s) != Some(me) {
                                st.stats.donated += 1;
                            }
                        }
                        if let Some(answer) = answer {
                            let gens = match &answer {
                                Msg::Donate { slots, .. } => slots
                                    .iter()
                                    .map(|&s| st.gens.get(s as usize).copied().unwrap_or(0))
                                    .collect(),
                                Msg::Request { .. } => Vec::new(),
                            };
                            out.push(Wire::Slots { msg: answer, gens });
                        }
                        self.changed.notify_all();
                    }
                    Wire::NeedState { from: f, ask } => {
                        // The lowest member with the table answers.
                        if f == sender && st.synced_set.first() == Some(&me) {
                            let (owner, members) = st.member.table();
                            let synced = st.synced_set.iter().copied().collect();
                            out.push(Wire::State {
                                to: f,
                                ask,
                                founder: st.founder.unwrap_or(me),
                                owner,
                                members,
                                synced,
                            });
                        }
                    }
                    Wire::State { to, .. } => {
                        st.synced_set.insert(to);
                    }
                }
            }
        }
        drop(self.send(st, &out));
    }

    /// Node `node`'s SYSTASK becomes a Remote endpoint here.
    fn register_systask(&self, dvk: &Dvk, node: i32) {
        let ep = crate::abi::systask(node);
        match dvk.rmtbind(self.dcid, ep, node) {
            Ok(_) => tracing::debug!(node, %ep, "SLOTS registered a SYSTASK"),
            Err(DvkError::SlotUsed) => {}
            Err(e) => tracing::debug!(node, %ep, %e, "SLOTS cannot register a SYSTASK"),
        }
    }

    /// Node `node` left the group: its SYSTASK's registration here goes.
    fn forget_systask(&self, dvk: &Dvk, node: i32) {
        let ep = crate::abi::systask(node);
        let theirs = dvk
            .getprocinfo(self.dcid, ep)
            .is_ok_and(|p| p.kind == ProcKind::Remote && p.node == node);
        if theirs {
            let _ = dvk.unbind(self.dcid, ep);
        }
    }
}

/// The SLOTS state of a DC (parameters `dc`) on its first node, `node`
/// of the daemon at `socket`, which owns every slot, with its thread
/// started. The group is over CPG, joined with `join`, when the DC spans
/// other nodes (a DC made on a node of a cluster spans all of them).
pub fn start_founder(
    socket: &Path,
    dc: &DcParams,
    node: i32,
    join: Option<JoinGroup>,
) -> Arc<SlotsGroup> {
    let cluster = (0..64).any(|n| n != node && dc.nodes & 1 << n != 0);
    let g = SlotsGroup::founder(dc.dcid, node, dc.nr_procs);
    g.start(socket, &dc.name, cluster, join);
    g
}

/// The SLOTS state of DC `dcid` on node `node` of the daemon at `socket`,
/// which joined the DC: it owns no slot until the others give it some,
/// over CPG (joined with `join`). Its thread is started.
pub fn start_joiner(
    socket: &Path,
    dcid: i32,
    node: i32,
    join: JoinGroup,
) -> std::io::Result<Arc<SlotsGroup>> {
    let dvk = Dvk::connect(socket).map_err(crate::server::dvk_io)?;
    let dc = dvk.getdcinfo(dcid).map_err(crate::server::dvk_io)?.params;
    let g = SlotsGroup::joiner(dcid, node, dc.nr_procs);
    g.start(socket, &dc.name, true, Some(join));
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_founder_gives_every_slot_once_and_reuses_it_with_a_new_generation() {
        let g = SlotsGroup::founder(0, 0, FIRST_USER_SLOT + 3);
        let a = g.alloc(Duration::ZERO).unwrap();
        let b = g.alloc(Duration::ZERO).unwrap();
        let c = g.alloc(Duration::ZERO).unwrap();
        assert_eq!(
            [a.p_nr(), b.p_nr(), c.p_nr()],
            [FIRST_USER_SLOT, FIRST_USER_SLOT + 1, FIRST_USER_SLOT + 2]
        );
        assert_eq!(g.alloc(Duration::ZERO), Err(libc::EAGAIN));
        // A stale endpoint of the slot frees nothing.
        g.release(b.next_generation());
        assert_eq!(g.alloc(Duration::ZERO), Err(libc::EAGAIN));
        g.release(b);
        let d = g.alloc(Duration::ZERO).unwrap();
        assert_eq!(d.p_nr(), b.p_nr());
        assert_ne!(d, b);
        let s = g.status();
        assert_eq!((s.in_use, s.free, s.allocs, s.failed), (3, 0, 4, 2));
        assert!(s.owner.iter().all(|&o| o == 0));
        // A slot kept for a process of another generation (one that moved
        // off a node that failed) is freed by its number.
        g.release_slot(a.p_nr());
        let e = g.alloc(Duration::ZERO).unwrap();
        assert_eq!(e.p_nr(), a.p_nr());
        assert_eq!(e.generation(), a.generation() + 1);
        g.release_slot(FIRST_USER_SLOT - 1); // not a user slot: ignored
    }

    /// A CPG stand-in: delivers every member's multicasts to all, in
    /// one total order, until nothing is left.
    fn deliver(groups: &[&Arc<SlotsGroup>]) {
        loop {
            let mut sent = Vec::new();
            for g in groups {
                let mut o = g.outbox.lock().unwrap();
                sent.extend(o.drain(..).map(|w| (g.node, w)));
            }
            if sent.is_empty() {
                return;
            }
            for (from, w) in sent {
                let data = bincode::serialize(&w).unwrap();
                for g in groups {
                    g.event(
                        MemberEvent::Message {
                            from: from as u32 + 1,
                            data: data.clone(),
                        },
                        None,
                    );
                }
            }
        }
    }

    fn view(groups: &[&Arc<SlotsGroup>], ev: MemberEvent) {
        for g in groups {
            g.event(ev.clone(), None);
        }
    }

    #[test]
    fn a_joiner_gets_the_table_then_slots_and_a_lost_founder_voids_them() {
        let n = FIRST_USER_SLOT + 40;
        let f = SlotsGroup::founder(0, 0, n);
        let j = SlotsGroup::joiner(0, 2, n);
        let both = [&f, &j];
        let taken = f.alloc(Duration::ZERO).unwrap();
        // Node 2 joins: it asks for the table (its clock), gets it, asks
        // for slots and gets some.
        view(&both, MemberEvent::Joined(3));
        j.tick();
        deliver(&both);
        let (fs, js) = (f.status(), j.status());
        assert!(js.synced);
        assert_eq!(fs.owner, js.owner, "the replicas differ");
        assert_eq!(js.members, [0, 2]);
        assert!(js.free >= FREE_LOW, "{js:?}");
        assert_eq!(fs.free + js.free + 1, 40);
        // Its slots are its own: neither hands out the other's.
        let e = j.alloc(Duration::ZERO).unwrap();
        let i = (e.p_nr() - FIRST_USER_SLOT) as usize;
        assert_eq!(js.owner[i], 2);
        assert_ne!(e.p_nr(), taken.p_nr());
        // Node 2 fails: its slots, the one in use included, go to node 0.
        view(&[&f], MemberEvent::Left(3));
        let fs = f.status();
        assert_eq!(fs.members, [0]);
        assert!(fs.owner.iter().all(|&o| o == 0));
        assert_eq!(fs.free, 39);
        // The slot comes back with a generation no old endpoint has.
        let mut seen = Vec::new();
        while let Ok(x) = f.alloc(Duration::ZERO) {
            seen.push(x);
        }
        let again = seen.iter().find(|x| x.p_nr() == e.p_nr()).unwrap();
        assert!(again.generation() >= GEN_JUMP);
        // On node 2's side, the founder left: its slots are void.
        view(&[&j], MemberEvent::Left(1));
        let js = j.status();
        assert!(!js.synced);
        assert_eq!(js.free, 0);
        assert_eq!(j.alloc(Duration::ZERO), Err(libc::EAGAIN));
    }

    #[test]
    fn malformed_or_forged_messages_change_nothing() {
        let f = SlotsGroup::founder(0, 0, FIRST_USER_SLOT + 8);
        let before = f.status();
        f.event(
            MemberEvent::Message {
                from: 3,
                data: vec![0xff; 7],
            },
            None,
        );
        // Node 2 claims a donation from node 0 of all its slots.
        let forged = Wire::Slots {
            msg: Msg::Donate {
                from: 0,
                to: 2,
                slots: (0..8).collect(),
            },
            gens: Vec::new(),
        };
        f.event(
            MemberEvent::Message {
                from: 3,
                data: bincode::serialize(&forged).unwrap(),
            },
            None,
        );
        assert_eq!(f.status(), before);
    }

    #[test]
    fn a_joiner_without_a_group_has_no_slots() {
        let g = SlotsGroup::joiner(0, 2, FIRST_USER_SLOT + 8);
        assert_eq!(g.alloc(Duration::from_millis(10)), Err(libc::EAGAIN));
        let s = g.status();
        assert!(!s.synced);
        assert!(s.owner.iter().all(|&o| o == -1));
    }
}
