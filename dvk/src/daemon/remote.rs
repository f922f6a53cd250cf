//! The proxies' side of the daemon's tables: IPC with endpoints of other
//! nodes.
//!
//! An endpoint bound on another node (`rmtbind`, or the primary of a
//! `bkupbind`) has a **surrogate mailbox** here, created like any other
//! but written only by the daemon, and the proxies' shared doorbell. Local
//! tasks therefore talk to it exactly as to a local endpoint:
//!
//! * A local sender `A` posts into `A.out[r]` and rings the proxies'
//!   doorbell. [`State::remote_scan`] finds the post and forwards it to
//!   `R`'s node (`SendMsg`/`SndrecMsg`/`ReplyMsg`).
//! * There, [`State::remote_apply`] posts it into the surrogate of `A`,
//!   `A'.out[r]`, and rings `R`. `R` receives it as from `A` (the
//!   mailbox it read is `A`'s surrogate) and wakes the proxies' doorbell;
//!   the scan sees the claim and acknowledges (`SendAck`).
//! * Back on `A`'s node, the ack is published as `R'.consumed[a]`, which
//!   is what `A`'s `send` waits for; a refusal (`A` is not registered on
//!   `R`'s node, `R` is gone) goes into `R'.refused[a]` and fails the
//!   send with its error.
//! * A `sendrec` request leaves `A'` in `SendRec`/`ReplyWait` towards `R`
//!   on `R`'s node, so `R` may `reply`; the reply travels back the same
//!   way, is never acknowledged, and implies the ack of the request.
//! * A sender that gives up withdraws its post locally; the scan then
//!   sends `Cancel`, and `R`'s node withdraws the copy unless `R` took it
//!   already (a timed-out remote send may thus still have been received).
//! * `notify` bumps the surrogate's notification counter towards `R`.
//!
//! Everything here runs under the daemon's state lock and never blocks;
//! the frames to send are returned to the caller (the proxy threads).

use super::state::{Binding, State};
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::ipc::Poster;
use crate::layout::{
    kind, pack_pair, pack_refusal, pack_status, phase, unpack_out, unpack_pair, Doorbell, IpcState,
};
use crate::message::Message;
use crate::params::ProcKind;
use crate::proxy::frame::{Command, Header};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

/// Sources the proxies' doorbell tracks (the largest DC's slot count).
pub(crate) const BELL_SLOTS: usize = 4096;

/// `(dcid, source slot, destination slot)`.
type Key = (i32, usize, usize);

/// A frame for a node.
pub(crate) type Outgoing = Vec<(i32, Header)>;

/// A local post forwarded to another node, not yet acknowledged.
struct Forwarded {
    seq: u32,
    src: Endpoint,
    dst: Endpoint,
    node: i32,
}

/// How long the ack of a taken `sendrec` request waits for the reply to
/// carry it instead.
pub(crate) const ACK_DELAY: std::time::Duration = std::time::Duration::from_millis(1);

/// A message from another node posted here into a surrogate, not yet
/// acknowledged.
struct Inbound {
    /// When the receiver took it (a `sendrec` request waiting for its
    /// reply to carry the ack).
    taken: Option<std::time::Instant>,
    /// Sequence number of the post into the surrogate.
    seq: u32,
    /// The sender's sequence number, echoed in the ack.
    remote_seq: u32,
    kind: u32,
    src: Endpoint,
    dst: Endpoint,
    node: i32,
}

/// State of remote IPC on this node.
#[derive(Default)]
pub(crate) struct Remote {
    bell: Option<(OwnedFd, Doorbell)>,
    pending: Vec<u64>,
    forwarded: HashMap<Key, Forwarded>,
    notified: HashMap<Key, u32>,
    inbound: HashMap<Key, Inbound>,
    up: BTreeSet<i32>,
    /// Frames queued outside a scan (the next scan sends them).
    outbox: Outgoing,
    /// DCs shared with other nodes through `dc_join`: the nodes that
    /// joined a DC of this node, or the node whose DC this node joined.
    joined: HashMap<i32, BTreeSet<i32>>,
    /// The DCs this node joined, and the node each belongs to.
    origin: HashMap<i32, i32>,
}

impl Remote {
    /// Queues a frame for node `n` and wakes the agent, which sends it.
    pub fn queue(&mut self, n: i32, h: Header) {
        self.outbox.push((n, h));
        if let Some((_, bell)) = &self.bell {
            bell.wake();
        }
    }

    /// Records that DC `dcid` is shared with node `n` (through `dc_join`).
    pub fn add_joined(&mut self, dcid: i32, n: i32) {
        self.joined.entry(dcid).or_default().insert(n);
    }

    /// Records that this node joined DC `dcid` of node `n`.
    pub fn add_origin(&mut self, dcid: i32, n: i32) {
        self.add_joined(dcid, n);
        self.origin.insert(dcid, n);
    }

    /// The nodes DC `dcid` is shared with (through `dc_join`).
    pub fn joined_nodes(&self, dcid: i32) -> Vec<i32> {
        self.joined
            .get(&dcid)
            .map_or_else(Vec::new, |s| s.iter().copied().collect())
    }

    /// The node whose DC `dcid` this node joined.
    pub fn origin_of(&self, dcid: i32) -> Option<i32> {
        self.origin.get(&dcid).copied()
    }

    /// Node `n` left DC `dcid`; whether it had joined it.
    pub fn leave(&mut self, dcid: i32, n: i32) -> bool {
        self.joined.get_mut(&dcid).is_some_and(|s| s.remove(&n))
    }

    /// The nodes DC `dcid` is shared with; forgets them.
    pub fn forget_joined(&mut self, dcid: i32) -> BTreeSet<i32> {
        self.origin.remove(&dcid);
        self.joined.remove(&dcid).unwrap_or_default()
    }

    /// Whether the proxies to node `n` are connected.
    pub fn is_up(&self, n: i32) -> bool {
        self.up.contains(&n)
    }

    /// How soon the agent must scan again although nothing rings: an ack
    /// is being held for a reply.
    pub fn next_scan(&self) -> Option<std::time::Duration> {
        self.inbound
            .values()
            .any(|i| i.taken.is_some())
            .then_some(ACK_DELAY)
    }

    /// The proxies' doorbell for a surrogate of a DC with `nslots` slots:
    /// its descriptor and a view.
    pub fn bell_for(&mut self, nslots: usize) -> Result<(OwnedFd, Doorbell)> {
        if nslots > BELL_SLOTS {
            return Err(DvkError::TooBig);
        }
        let fd = self.bell_fd()?;
        let view = Doorbell::open(&fd, nslots)?;
        Ok((fd, view))
    }

    /// A descriptor of the proxies' doorbell (created on first use).
    pub fn bell_fd(&mut self) -> Result<OwnedFd> {
        if self.bell.is_none() {
            let (fd, bell) = Doorbell::create(-1, Endpoint::NONE, BELL_SLOTS)?;
            self.bell = Some((fd, bell));
        }
        let (fd, _) = self.bell.as_ref().ok_or(DvkError::NoMem)?;
        fd.try_clone().map_err(|_| DvkError::NoMem)
    }
}

fn is_surrogate(b: &Binding) -> bool {
    matches!(b.kind, ProcKind::Remote | ProcKind::Backup)
}

fn poster(b: &Binding, slot: usize) -> Poster<'_> {
    Poster {
        mbx: &b.mbx,
        me: b.ep,
        slot,
    }
}

/// A frame about a message from `src` to `dst` of DC `dcid`.
fn frame(cmd: Command, dcid: i32, src: Endpoint, dst: Endpoint, seq: u32) -> Header {
    let mut h = Header::new(cmd);
    h.dcid = dcid;
    h.src = src.0;
    h.dst = dst.0;
    h.seq = seq as u64;
    h
}

fn ack(dcid: i32, src: Endpoint, dst: Endpoint, seq: u32, rcode: i32) -> Header {
    let mut h = frame(Command::SendAck, dcid, src, dst, seq);
    h.rcode = rcode;
    h
}

impl State {
    /// The proxies to node `n` are connected.
    pub(crate) fn node_up(&mut self, n: i32) {
        if self.remote.up.insert(n) {
            tracing::info!(node = n, "node up");
        }
    }

    /// Node `n` is gone: its endpoints are unbound everywhere here (their
    /// peers' calls fail), and messages to it are refused.
    pub(crate) fn node_down(&mut self, n: i32) {
        if !self.remote.up.remove(&n) {
            return;
        }
        tracing::warn!(node = n, "node down");
        let gone: Vec<(i32, usize)> = self
            .dcs
            .iter()
            .flat_map(|(&id, dc)| {
                dc.slots.iter().enumerate().filter_map(move |(s, b)| {
                    b.as_ref()
                        .filter(|b| b.kind == ProcKind::Remote && b.node == n)
                        .map(|_| (id, s))
                })
            })
            .collect();
        // The DCs joined from that node lost their servers: they end.
        let orphans: Vec<i32> = (self.remote.origin.iter())
            .filter(|&(_, &o)| o == n)
            .map(|(&d, _)| d)
            .collect();
        for dcid in orphans {
            tracing::warn!(dcid, "the DC's node {n} is down: the DC ends here");
            self.kill_local_processes(dcid);
            let _ = self.dc_end_here(dcid);
        }
        // Its endpoints ended as if killed: their warn endpoints (PM) are
        // told, and see their processes end by SIGKILL.
        for (dcid, s) in gone {
            self.unbind_slot(dcid, s, true);
        }
        self.remote.inbound.retain(|_, i| i.node != n);
    }

    /// Kills (`SIGKILL`) the host processes bound in DC `dcid` on this
    /// node: without their DC nothing serves them.
    pub(crate) fn kill_local_processes(&self, dcid: i32) {
        let Some(dc) = self.dcs.get(&dcid) else {
            return;
        };
        for b in dc.slots.iter().flatten() {
            if b.kind == ProcKind::Local
                && !b.thread
                && b.pid > 0
                && b.pid != std::process::id() as i32
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(b.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    /// Looks at what local tasks posted to remote endpoints and what local
    /// receivers took from surrogates since the last scan; returns the
    /// frames to send. Called whenever the proxies' doorbell rings.
    pub(crate) fn remote_scan(&mut self) -> Outgoing {
        let mut out = Vec::new();
        let Some(local) = self.dvs.map(|(n, _)| n) else {
            return out;
        };
        let Some((_, bell)) = &self.remote.bell else {
            return out;
        };
        let words = bell.pending_words();
        self.remote.pending.resize(words, 0);
        for (i, w) in self.remote.pending.iter_mut().enumerate() {
            let cell = bell.pending(i);
            if cell.load(Ordering::Relaxed) != 0 {
                *w |= cell.swap(0, Ordering::SeqCst);
            }
        }
        out.append(&mut self.remote.outbox);
        let pending = std::mem::take(&mut self.remote.pending);
        for (&dcid, dc) in &self.dcs {
            let remotes: Vec<usize> = (0..dc.slots.len())
                .filter(|&r| dc.slots[r].as_ref().is_some_and(is_surrogate))
                .collect();
            if remotes.is_empty() {
                continue;
            }
            for (i, &w) in pending.iter().enumerate() {
                let mut w = w;
                while w != 0 {
                    let a = i * 64 + w.trailing_zeros() as usize;
                    w &= w - 1;
                    let Some(src) = dc.slots.get(a).and_then(|b| b.as_ref()) else {
                        continue;
                    };
                    if is_surrogate(src) {
                        continue;
                    }
                    for &r in &remotes {
                        let Some(dst) = dc.slots[r].as_ref() else {
                            continue;
                        };
                        // Notifications first: a task that notifies and
                        // then sends expects them to arrive in that order.
                        self.remote
                            .forward_notify(dcid, local, a, src, r, dst, &mut out);
                        self.remote
                            .forward_post(dcid, local, a, src, r, dst, &mut out);
                    }
                }
            }
        }
        self.remote.pending = pending.iter().map(|_| 0).collect();
        self.remote_cancel_withdrawn(local, &mut out);
        self.remote_ack_taken(local, &mut out);
        out
    }

    /// Cancels forwarded posts whose sender withdrew them or is gone.
    fn remote_cancel_withdrawn(&mut self, local: i32, out: &mut Outgoing) {
        let dcs = &self.dcs;
        self.remote.forwarded.retain(|&(dcid, a, r), f| {
            let src = dcs.get(&dcid).and_then(|dc| dc.slots[a].as_ref());
            let dst = dcs.get(&dcid).and_then(|dc| dc.slots[r].as_ref());
            let Some(dst) = dst.filter(|d| d.ep == f.dst) else {
                return false; // the remote endpoint is gone: its sender fails
            };
            let still = src.filter(|s| s.ep == f.src).is_some_and(|s| {
                let (seq, ph, _) = unpack_out(s.mbx.out_state(r).load(Ordering::Acquire));
                seq == f.seq && ph != phase::ABORTED
            });
            if !still {
                let mut h = frame(Command::Cancel, dcid, f.src, f.dst, f.seq);
                h.snode = local as u16;
                h.dnode = dst.node as u16;
                out.push((f.node, h));
            }
            still
        });
    }

    /// Acknowledges messages from other nodes that local receivers took;
    /// refuses those whose receiver is gone.
    fn remote_ack_taken(&mut self, local: i32, out: &mut Outgoing) {
        let dcs = &self.dcs;
        self.remote.inbound.retain(|&(dcid, a, r), inb| {
            let Some(dc) = dcs.get(&dcid) else {
                return false;
            };
            let Some(sur) = dc.slots[a].as_ref().filter(|b| b.ep == inb.src) else {
                return false; // the sender's node went down
            };
            let mut reply = |rcode: i32| {
                let mut h = ack(dcid, inb.src, inb.dst, inb.remote_seq, rcode);
                h.snode = local as u16;
                h.dnode = inb.node as u16;
                out.push((inb.node, h));
            };
            let Some(rcv) = dc.slots[r].as_ref().filter(|b| b.ep == inb.dst) else {
                // Nobody can take it any more: withdrawn.
                let (seq, _, _) = unpack_out(sur.mbx.out_state(r).load(Ordering::Acquire));
                if seq == inb.seq {
                    sur.mbx.out_state(r).store(
                        crate::layout::pack_out(seq, phase::ABORTED, inb.kind),
                        Ordering::SeqCst,
                    );
                }
                sur.mbx
                    .status()
                    .store(pack_status(IpcState::Running, Endpoint::NONE), Ordering::Release);
                tracing::debug!(src = %inb.src, dst = %inb.dst, "receiver of a remote message gone");
                reply(DvkError::DstDied.code());
                return false;
            };
            if rcv.mbx.consumed(a).load(Ordering::Acquire) != pack_pair(inb.src, inb.seq) {
                return true;
            }
            if inb.kind == kind::SENDREC {
                // The reply will carry the ack, unless it is slow to come.
                let taken = *inb.taken.get_or_insert_with(std::time::Instant::now);
                if taken.elapsed() < ACK_DELAY {
                    sur.mbx
                        .status()
                        .store(pack_status(IpcState::ReplyWait, inb.dst), Ordering::Release);
                    return true;
                }
            }
            let st = if inb.kind == kind::SENDREC {
                IpcState::ReplyWait
            } else {
                IpcState::Running
            };
            let peer = if st == IpcState::Running {
                Endpoint::NONE
            } else {
                inb.dst
            };
            sur.mbx
                .status()
                .store(pack_status(st, peer), Ordering::Release);
            reply(0);
            false
        });
    }

    /// Applies a frame received from node `from`; returns the frames to
    /// send in answer. Frames that do not match the tables (stale,
    /// misrouted, forged) are refused or dropped, never trusted.
    pub(crate) fn remote_apply(&mut self, from: i32, h: &Header) -> Outgoing {
        let mut out = Vec::new();
        let Some(local) = self.dvs.map(|(n, _)| n) else {
            return out;
        };
        match h.cmd {
            Command::Kntf => {
                self.kntf_arrived(from, h);
                return out;
            }
            Command::DcLeave => {
                self.dc_left(h.dcid, from);
                return out;
            }
            Command::Register | Command::Unregister => {
                self.announced(from, h);
                return out;
            }
            _ => {}
        }
        let (src, dst) = (Endpoint(h.src), Endpoint(h.dst));
        let seq = h.seq as u32;
        let Some(dc) = self.dcs.get(&h.dcid) else {
            if matches!(h.cmd, Command::SendMsg | Command::SndrecMsg) {
                out.push((from, ack(h.dcid, src, dst, seq, DvkError::DcNotRun.code())));
            }
            return out;
        };
        let slot = |ep: Endpoint| -> Option<usize> {
            (!ep.is_special())
                .then(|| dc.params.slot_of(ep.p_nr()))
                .flatten()
        };
        let bound = |s: Option<usize>, ep: Endpoint| -> Option<(usize, &Binding)> {
            let s = s?;
            dc.slots[s].as_ref().filter(|b| b.ep == ep).map(|b| (s, b))
        };
        // The far end of a message must be registered here as a remote
        // endpoint of the node it comes from (the seed's Case B: the
        // destination node rejects senders it does not know).
        let remote_of =
            |ep: Endpoint| bound(slot(ep), ep).filter(|(_, b)| is_surrogate(b) && b.node == from);
        let local_of = |ep: Endpoint| bound(slot(ep), ep).filter(|(_, b)| !is_surrogate(b));
        match h.cmd {
            Command::SendMsg | Command::SndrecMsg => {
                let refuse = |code: DvkError| {
                    tracing::debug!(from, %src, %dst, %code, "remote message refused");
                    let mut a = ack(h.dcid, src, dst, seq, code.code());
                    a.snode = local as u16;
                    a.dnode = from as u16;
                    vec![(from, a)]
                };
                let Some((a, sur)) = remote_of(src) else {
                    return refuse(DvkError::NotBind);
                };
                let Some((r, rcv)) = local_of(dst) else {
                    let died = slot(dst).is_some_and(|s| dc.slots[s].is_some());
                    return refuse(if died {
                        DvkError::DstDied
                    } else {
                        DvkError::NotBind
                    });
                };
                let key = (h.dcid, a, r);
                let p = poster(sur, a);
                if let Some(old) = self.remote.inbound.remove(&key) {
                    p.withdraw(r, &rcv.mbx, &rcv.bell, old.seq);
                }
                let k = if h.cmd == Command::SndrecMsg {
                    kind::SENDREC
                } else {
                    kind::SEND
                };
                let st = if k == kind::SENDREC {
                    IpcState::SendRec
                } else {
                    IpcState::Sending
                };
                sur.mbx
                    .status()
                    .store(pack_status(st, dst), Ordering::Release);
                let m: Message = h.message();
                let posted = p.post(r, &rcv.mbx, &rcv.bell, &m, k);
                sur.mbx.rsnt().fetch_add(1, Ordering::Relaxed);
                self.remote.inbound.insert(
                    key,
                    Inbound {
                        taken: None,
                        seq: posted,
                        remote_seq: seq,
                        kind: k,
                        src,
                        dst,
                        node: from,
                    },
                );
            }
            Command::ReplyMsg => {
                // From remote `src` to local `dst`, which waits in sendrec.
                let (Some((r, sur)), Some((a, rcv))) = (remote_of(src), local_of(dst)) else {
                    return out;
                };
                if let Some(f) = self.remote.forwarded.remove(&(h.dcid, a, r)) {
                    sur.mbx
                        .consumed(a)
                        .store(pack_pair(f.src, f.seq), Ordering::SeqCst);
                }
                let m: Message = h.message();
                poster(sur, r).post(a, &rcv.mbx, &rcv.bell, &m, kind::REPLY);
                sur.mbx.rsnt().fetch_add(1, Ordering::Relaxed);
            }
            Command::SendAck => {
                // For local `src`'s message to remote `dst`.
                let (Some((a, snd)), Some((r, sur))) = (local_of(src), remote_of(dst)) else {
                    return out;
                };
                let key = (h.dcid, a, r);
                if self.remote.forwarded.get(&key).is_none_or(|f| f.seq != seq) {
                    return out; // withdrawn meanwhile, or stale
                }
                self.remote.forwarded.remove(&key);
                if h.rcode == 0 {
                    sur.mbx
                        .consumed(a)
                        .store(pack_pair(src, seq), Ordering::SeqCst);
                } else {
                    sur.mbx
                        .refused(a)
                        .store(pack_refusal(seq, h.rcode), Ordering::SeqCst);
                }
                snd.bell.wake();
            }
            Command::NtfyMsg => {
                let (Some((a, sur)), Some((r, rcv))) = (remote_of(src), local_of(dst)) else {
                    return out;
                };
                let cell = sur.mbx.ntf_sent(r);
                let (to, n) = unpack_pair(cell.load(Ordering::Relaxed));
                let next = if to == dst {
                    n.wrapping_add(1).max(1)
                } else {
                    1
                };
                cell.store(pack_pair(dst, next), Ordering::Release);
                rcv.bell.ring_from(a);
            }
            Command::Cancel => {
                let (Some((a, sur)), Some((r, rcv))) = (remote_of(src), local_of(dst)) else {
                    return out;
                };
                let key = (h.dcid, a, r);
                if let Some(inb) = self.remote.inbound.get(&key) {
                    if inb.remote_seq == seq {
                        let taken = poster(sur, a).withdraw(r, &rcv.mbx, &rcv.bell, inb.seq);
                        sur.mbx.status().store(
                            pack_status(IpcState::Running, Endpoint::NONE),
                            Ordering::Release,
                        );
                        self.remote.inbound.remove(&key);
                        tracing::debug!(%src, %dst, taken, "remote message cancelled");
                    }
                }
            }
            // Connection-level frames are the link's business; copies are
            // not carried yet.
            _ => {}
        }
        out
    }
}

impl Remote {
    /// Forwards the replies that `src`, being unbound from slot `a`, posted
    /// to remote endpoints and that were not forwarded yet.
    pub(crate) fn forward_last_replies(
        &mut self,
        dcid: i32,
        local: i32,
        a: usize,
        src: &Binding,
        slots: &[Option<Binding>],
    ) {
        if self.bell.is_none() || is_surrogate(src) {
            return;
        }
        let mut out = std::mem::take(&mut self.outbox);
        for (r, dst) in slots.iter().enumerate() {
            let Some(dst) = dst.as_ref().filter(|d| is_surrogate(d)) else {
                continue;
            };
            let (_, _, k) = unpack_out(src.mbx.out_state(r).load(Ordering::Acquire));
            if k == kind::REPLY {
                self.forward_post(dcid, local, a, src, r, dst, &mut out);
            }
        }
        self.outbox = out;
    }

    /// Answers the messages from other nodes posted to `rcv`, being
    /// unbound from slot `r`: an ack for those it took, a refusal for the
    /// others (their posts stay in the surrogates, which nobody reads from
    /// that slot any more).
    pub(crate) fn settle_inbound_to(
        &mut self,
        dcid: i32,
        local: i32,
        r: usize,
        rcv: &Binding,
        slots: &[Option<Binding>],
    ) {
        let outbox = &mut self.outbox;
        self.inbound.retain(|&(d, a, to), inb| {
            if d != dcid || to != r || inb.dst != rcv.ep {
                return true;
            }
            if let Some(sur) = slots[a].as_ref().filter(|b| b.ep == inb.src) {
                sur.mbx.status().store(
                    pack_status(IpcState::Running, Endpoint::NONE),
                    Ordering::Release,
                );
            }
            let taken = rcv.mbx.consumed(a).load(Ordering::Acquire) == pack_pair(inb.src, inb.seq);
            let code = if taken { 0 } else { DvkError::DstDied.code() };
            let mut h = ack(dcid, inb.src, inb.dst, inb.remote_seq, code);
            h.snode = local as u16;
            h.dnode = inb.node as u16;
            outbox.push((inb.node, h));
            false
        });
    }

    /// Forwards `src`'s post to remote `dst`, if there is a new one.
    #[allow(clippy::too_many_arguments)]
    fn forward_post(
        &mut self,
        dcid: i32,
        local: i32,
        a: usize,
        src: &Binding,
        r: usize,
        dst: &Binding,
        out: &mut Outgoing,
    ) {
        let (seq, ph, k) = unpack_out(src.mbx.out_state(r).load(Ordering::Acquire));
        let key = (dcid, a, r);
        if ph != phase::POSTED
            || src.mbx.out_dst(r).load(Ordering::Relaxed) != dst.mbx.address()
            || dst.mbx.consumed(a).load(Ordering::Acquire) == pack_pair(src.ep, seq)
            || self.forwarded.get(&key).is_some_and(|f| f.seq == seq)
        {
            return;
        }
        if !self.is_up(dst.node) {
            dst.mbx.refused(a).store(
                pack_refusal(seq, DvkError::NoProxy.code()),
                Ordering::SeqCst,
            );
            src.bell.wake();
            return;
        }
        let cmd = match k {
            kind::SEND => Command::SendMsg,
            kind::SENDREC => Command::SndrecMsg,
            _ => Command::ReplyMsg,
        };
        let mut h = frame(cmd, dcid, src.ep, dst.ep, seq);
        h.snode = local as u16;
        h.dnode = dst.node as u16;
        h.set_message(&src.mbx.read_msg(r));
        if cmd == Command::ReplyMsg {
            // A reply is never acknowledged: it is taken as soon as it is
            // on its way, and the replier's slot is free again. It carries
            // the ack of the request it answers.
            dst.mbx
                .consumed(a)
                .store(pack_pair(src.ep, seq), Ordering::SeqCst);
            if self.inbound.remove(&(dcid, r, a)).is_some() {
                dst.mbx.status().store(
                    pack_status(IpcState::Running, Endpoint::NONE),
                    Ordering::Release,
                );
            }
        } else {
            self.forwarded.insert(
                key,
                Forwarded {
                    seq,
                    src: src.ep,
                    dst: dst.ep,
                    node: dst.node,
                },
            );
        }
        out.push((dst.node, h));
    }

    /// Forwards `src`'s notifications to remote `dst`, if it sent new ones.
    #[allow(clippy::too_many_arguments)]
    fn forward_notify(
        &mut self,
        dcid: i32,
        local: i32,
        a: usize,
        src: &Binding,
        r: usize,
        dst: &Binding,
        out: &mut Outgoing,
    ) {
        let (to, n) = unpack_pair(src.mbx.ntf_sent(r).load(Ordering::Acquire));
        let key = (dcid, a, r);
        if to != dst.ep || n == 0 || self.notified.get(&key) == Some(&n) {
            return;
        }
        self.notified.insert(key, n);
        if !self.is_up(dst.node) {
            return;
        }
        let mut h = frame(Command::NtfyMsg, dcid, src.ep, dst.ep, n);
        h.snode = local as u16;
        h.dnode = dst.node as u16;
        out.push((dst.node, h));
    }
}
