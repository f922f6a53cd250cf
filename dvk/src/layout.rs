//! Layouts of the three kinds of shared memory of a DC.
//!
//! * **DC table** — one per DC, written only by the daemon, mapped
//!   read-only by every bound process. Per slot: the bound endpoint, flags
//!   (bound, frozen, privileged, kind), host pid/tid, node, allowed IPC
//!   calls, and a small ring of DVK notifications (e.g. "endpoint X died"
//!   for a warn endpoint).
//! * **Mailbox** — one per endpoint, written only by its owner, mapped
//!   read-only by its DC peers. It holds one outgoing message slot per
//!   destination, what the owner has consumed from each source, the
//!   notification counters, its IPC state and its counters. Because a
//!   receiver reads a message from the *sender's* mailbox, which nobody
//!   else can write, the receiver knows `m_source` without trusting the
//!   sender.
//! * **Doorbell** — one per endpoint, writable by all DC peers. It is only
//!   a hint: a futex word, a sleeper count, a FIFO ticket counter and a
//!   bitmap of sources that may have something pending. Every hint is
//!   validated against the mailboxes, so a bogus ring costs a wake-up and
//!   nothing else.

use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::message::Message;
use crate::sys::{futex_wake, Mapping};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

const PAGE: usize = 4096;

fn round_page(n: usize) -> usize {
    n.div_ceil(PAGE) * PAGE
}

/// Magic at the start of a DC table ("DVKDCTB1").
pub const TABLE_MAGIC: u64 = 0x3142_5443_444b_5644;

// ---------------------------------------------------------------- DC table

const T_MAGIC: usize = 0;
const T_NSLOTS: usize = 8;
const T_DCID: usize = 12;
const T_STATE: usize = 16;
const T_NR_TASKS: usize = 20;
const T_NR_PROCS: usize = 24;
const T_NR_SYSPROCS: usize = 28;
const T_MAX_COPYLEN: usize = 32;
const T_NODE: usize = 36;
const T_MAX_COPYBUF: usize = 40;
const T_HEADER: usize = 256;
const T_SLOT: usize = 128;
const S_EP: usize = 0;
const S_FLAGS: usize = 4;
const S_PID: usize = 8;
const S_TID: usize = 12;
const S_NODE: usize = 16;
const S_SEQ: usize = 20;
const S_IPCMASK: usize = 24;
const S_KNTF_HEAD: usize = 32;
const S_KNTF_RING: usize = 64;
/// Entries in a slot's DVK-notification ring.
pub const KNTF_RING: u32 = 8;

/// DC state: running.
pub const DC_RUNNING: u32 = 1;
/// DC state: ended (all calls fail with `EDVSDCNOTRUN`).
pub const DC_ENDED: u32 = 2;

/// Slot flag: an endpoint is bound.
pub const F_BOUND: u32 = 1;
/// Slot flag: traffic is frozen by `migr_start`.
pub const F_FROZEN: u32 = 2;
/// Slot flag: the endpoint is privileged.
pub const F_PRIV: u32 = 4;
/// Shift of the [`crate::params::ProcKind`] bits in the flag word.
pub const F_KIND_SHIFT: u32 = 8;

/// View of a DC table.
pub struct DcTable {
    map: Mapping,
    nslots: usize,
}

/// Geometry of a DC recorded in its table header.
#[derive(Debug, Clone, Copy)]
pub struct TableGeometry {
    /// DC id.
    pub dcid: i32,
    /// Slots (tasks + processes).
    pub nslots: usize,
    /// Tasks.
    pub nr_tasks: i32,
    /// Processes.
    pub nr_procs: i32,
    /// System processes.
    pub nr_sysprocs: i32,
    /// Largest copy.
    pub max_copylen: u32,
    /// Local node id.
    pub node: i32,
    /// Largest chunk of a copy.
    pub max_copybuf: u32,
}

impl DcTable {
    /// Bytes needed for a table of `nslots` slots.
    pub fn len_for(nslots: usize) -> usize {
        round_page(T_HEADER + nslots * T_SLOT)
    }

    /// Creates and initialises a table (daemon side).
    pub fn create(g: &TableGeometry) -> Result<(OwnedFd, DcTable)> {
        let (fd, map) = Mapping::create(
            &format!("dvs-dc{}-table", g.dcid),
            Self::len_for(g.nslots),
            true,
        )?;
        let t = DcTable {
            map,
            nslots: g.nslots,
        };
        t.map
            .u32(T_NSLOTS)
            .store(g.nslots as u32, Ordering::Relaxed);
        t.map.i32(T_DCID).store(g.dcid, Ordering::Relaxed);
        t.map.i32(T_NR_TASKS).store(g.nr_tasks, Ordering::Relaxed);
        t.map.i32(T_NR_PROCS).store(g.nr_procs, Ordering::Relaxed);
        t.map
            .i32(T_NR_SYSPROCS)
            .store(g.nr_sysprocs, Ordering::Relaxed);
        t.map
            .u32(T_MAX_COPYLEN)
            .store(g.max_copylen, Ordering::Relaxed);
        t.map.i32(T_NODE).store(g.node, Ordering::Relaxed);
        t.map
            .u32(T_MAX_COPYBUF)
            .store(g.max_copybuf, Ordering::Relaxed);
        for s in 0..g.nslots {
            t.ep(s).store(Endpoint::NONE.0, Ordering::Relaxed);
        }
        t.map.u32(T_STATE).store(DC_RUNNING, Ordering::Relaxed);
        t.map.u64(T_MAGIC).store(TABLE_MAGIC, Ordering::Release);
        Ok((fd, t))
    }

    /// Maps an existing table received from the daemon (client side, read-only).
    pub fn open(fd: &OwnedFd) -> Result<DcTable> {
        let map = Mapping::map(fd, false, false)?;
        if map.u64(T_MAGIC).load(Ordering::Acquire) != TABLE_MAGIC {
            return Err(crate::error::DvkError::Protocol);
        }
        let nslots = map.u32(T_NSLOTS).load(Ordering::Relaxed) as usize;
        if Self::len_for(nslots) > map.len() {
            return Err(crate::error::DvkError::Protocol);
        }
        Ok(DcTable { map, nslots })
    }

    /// Geometry recorded in the header.
    pub fn geometry(&self) -> TableGeometry {
        TableGeometry {
            dcid: self.map.i32(T_DCID).load(Ordering::Relaxed),
            nslots: self.nslots,
            nr_tasks: self.map.i32(T_NR_TASKS).load(Ordering::Relaxed),
            nr_procs: self.map.i32(T_NR_PROCS).load(Ordering::Relaxed),
            nr_sysprocs: self.map.i32(T_NR_SYSPROCS).load(Ordering::Relaxed),
            max_copylen: self.map.u32(T_MAX_COPYLEN).load(Ordering::Relaxed),
            node: self.map.i32(T_NODE).load(Ordering::Relaxed),
            max_copybuf: self.map.u32(T_MAX_COPYBUF).load(Ordering::Relaxed),
        }
    }

    /// Number of slots.
    pub fn nslots(&self) -> usize {
        self.nslots
    }

    /// DC state word (`DC_RUNNING`, `DC_ENDED`).
    pub fn state(&self) -> &AtomicU32 {
        self.map.u32(T_STATE)
    }

    fn slot_off(&self, slot: usize, field: usize) -> usize {
        assert!(slot < self.nslots, "slot {slot} out of range");
        T_HEADER + slot * T_SLOT + field
    }

    /// Endpoint bound to `slot` (`NONE` if free).
    pub fn ep(&self, slot: usize) -> &AtomicI32 {
        self.map.i32(self.slot_off(slot, S_EP))
    }
    /// Flag word of `slot`.
    pub fn flags(&self, slot: usize) -> &AtomicU32 {
        self.map.u32(self.slot_off(slot, S_FLAGS))
    }
    /// Host pid of `slot`.
    pub fn pid(&self, slot: usize) -> &AtomicI32 {
        self.map.i32(self.slot_off(slot, S_PID))
    }
    /// Host tid of `slot`.
    pub fn tid(&self, slot: usize) -> &AtomicI32 {
        self.map.i32(self.slot_off(slot, S_TID))
    }
    /// Node of `slot`.
    pub fn node(&self, slot: usize) -> &AtomicI32 {
        self.map.i32(self.slot_off(slot, S_NODE))
    }
    /// Binding sequence of `slot` (changes on every bind/unbind/commit).
    pub fn seq(&self, slot: usize) -> &AtomicU32 {
        self.map.u32(self.slot_off(slot, S_SEQ))
    }
    /// Allowed IPC calls of `slot`.
    pub fn ipc_mask(&self, slot: usize) -> &AtomicU32 {
        self.map.u32(self.slot_off(slot, S_IPCMASK))
    }
    /// DVK-notification ring head of `slot` (written by the daemon).
    pub fn kntf_head(&self, slot: usize) -> &AtomicU32 {
        self.map.u32(self.slot_off(slot, S_KNTF_HEAD))
    }
    /// Entry `i` of the DVK-notification ring of `slot`: `(endpoint, kind)`.
    pub fn kntf_entry(&self, slot: usize, i: u32) -> &AtomicU64 {
        self.map
            .u64(self.slot_off(slot, S_KNTF_RING + 8 * (i % KNTF_RING) as usize))
    }
}

// ------------------------------------------------------------------ mailbox

const M_EP: usize = 0;
const M_STATUS: usize = 8;
const M_LSNT: usize = 16;
const M_RSNT: usize = 24;
const M_LCOPY: usize = 32;
const M_RCOPY: usize = 40;
const M_KNTF_TAIL: usize = 48;
const M_INCARNATION: usize = 52;
const M_HEADER: usize = 256;
const OUT_SLOT: usize = 128;
const O_STATE: usize = 0;
const O_DST: usize = 8;
const O_TICKET: usize = 16;
const O_CONFIRMED: usize = 24;
const O_MSG: usize = 64;

/// IPC state of an endpoint, published in its mailbox (`status` word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum IpcState {
    /// Not in an IPC call.
    Running = 0,
    /// In `send`, waiting for the receiver.
    Sending = 1,
    /// In `receive`.
    Receiving = 2,
    /// In `sendrec`, request not yet taken.
    SendRec = 3,
    /// In `sendrec`, waiting for the reply.
    ReplyWait = 4,
    /// In `rcvrqst`.
    RcvRqst = 5,
}

impl IpcState {
    /// Decodes a state word.
    pub fn from_u32(v: u32) -> IpcState {
        match v {
            1 => IpcState::Sending,
            2 => IpcState::Receiving,
            3 => IpcState::SendRec,
            4 => IpcState::ReplyWait,
            5 => IpcState::RcvRqst,
            _ => IpcState::Running,
        }
    }

    /// Short name for status tables.
    pub fn name(self) -> &'static str {
        match self {
            IpcState::Running => "-",
            IpcState::Sending => "SEND",
            IpcState::Receiving => "RECV",
            IpcState::SendRec => "SNDREC",
            IpcState::ReplyWait => "RPLWAIT",
            IpcState::RcvRqst => "RCVRQST",
        }
    }
}

/// Phase of an outgoing message slot.
pub mod phase {
    /// Never used.
    pub const EMPTY: u32 = 0;
    /// Offered to the receiver.
    pub const POSTED: u32 = 1;
    /// The sender is withdrawing it (timeout, death of the receiver).
    pub const CANCELLING: u32 = 2;
    /// Withdrawal lost the race: the receiver has it.
    pub const DELIVERED: u32 = 3;
    /// Withdrawn before the receiver took it.
    pub const ABORTED: u32 = 4;
}

/// Kind of an outgoing message.
pub mod kind {
    /// `send`.
    pub const SEND: u32 = 1;
    /// `sendrec` (request).
    pub const SENDREC: u32 = 2;
    /// `reply`.
    pub const REPLY: u32 = 3;
}

/// Packs the state word of an outgoing slot.
pub fn pack_out(seq: u32, phase: u32, kind: u32) -> u64 {
    seq as u64 | ((phase as u64) << 32) | ((kind as u64) << 40)
}

/// Unpacks the state word of an outgoing slot: `(seq, phase, kind)`.
pub fn unpack_out(w: u64) -> (u32, u32, u32) {
    (
        w as u32,
        ((w >> 32) & 0xff) as u32,
        ((w >> 40) & 0xff) as u32,
    )
}

/// Packs an `(endpoint, counter)` pair into one atomic word.
pub fn pack_pair(ep: Endpoint, n: u32) -> u64 {
    ((ep.0 as u32 as u64) << 32) | n as u64
}

/// Unpacks an `(endpoint, counter)` pair.
pub fn unpack_pair(w: u64) -> (Endpoint, u32) {
    (Endpoint((w >> 32) as u32 as i32), w as u32)
}

/// Packs a refusal: the refused sequence number and the (negative) DVK
/// error code.
pub fn pack_refusal(seq: u32, code: i32) -> u64 {
    seq as u64 | ((code as u32 as u64) << 32)
}

/// Unpacks a refusal: `(seq, code)`.
pub fn unpack_refusal(w: u64) -> (u32, i32) {
    (w as u32, (w >> 32) as u32 as i32)
}

/// Packs the IPC status word: state and peer.
pub fn pack_status(st: IpcState, peer: Endpoint) -> u64 {
    st as u32 as u64 | ((peer.0 as u32 as u64) << 32)
}

/// Unpacks the IPC status word.
pub fn unpack_status(w: u64) -> (IpcState, Endpoint) {
    (
        IpcState::from_u32(w as u32),
        Endpoint((w >> 32) as u32 as i32),
    )
}

/// What a binding of a slot leaves for the next binding of that slot,
/// towards one peer slot ([`Mailbox::carried`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carried {
    /// The peer slot.
    pub slot: usize,
    /// The outgoing slot's state word (its sequence number goes on).
    pub out: u64,
    /// Notifications sent to the peer.
    pub ntf_sent: u64,
    /// Notifications seen from the peer.
    pub ntf_seen: u64,
}

/// View of an endpoint's mailbox.
pub struct Mailbox {
    map: Mapping,
    nslots: usize,
}

impl Mailbox {
    fn out_base(&self) -> usize {
        M_HEADER
    }
    fn consumed_base(&self) -> usize {
        M_HEADER + self.nslots * OUT_SLOT
    }
    fn ntf_sent_base(&self) -> usize {
        self.consumed_base() + self.nslots * 8
    }
    fn ntf_seen_base(&self) -> usize {
        self.ntf_sent_base() + self.nslots * 8
    }
    fn refused_base(&self) -> usize {
        self.ntf_seen_base() + self.nslots * 8
    }

    /// Bytes needed for a mailbox with `nslots` peers.
    pub fn len_for(nslots: usize) -> usize {
        round_page(M_HEADER + nslots * (OUT_SLOT + 32))
    }

    /// Creates a mailbox (daemon side) and returns its fd and a writable
    /// view. `incarnation` must differ from every other binding's.
    pub fn create(
        dcid: i32,
        ep: Endpoint,
        nslots: usize,
        incarnation: u32,
    ) -> Result<(OwnedFd, Mailbox)> {
        let (fd, map) = Mapping::create(
            &format!("dvs-dc{dcid}-mbx{}", ep.0),
            Self::len_for(nslots),
            true,
        )?;
        map.u32(M_INCARNATION).store(incarnation, Ordering::Relaxed);
        map.i32(M_EP).store(ep.0, Ordering::Release);
        Ok((fd, Mailbox { map, nslots }))
    }

    /// The counters that a later binding of the same slot continues:
    /// `(peer slot, out_state, ntf_sent, ntf_seen)` for every peer that
    /// one of them is not zero for. They are read from `fd`, this
    /// mailbox's file, where a page nobody wrote reads as zeros without
    /// being allocated; a load through the mapping would allocate and
    /// clear it, and most of a mailbox is slots towards peers its owner
    /// never talked to.
    pub fn carried(&self, fd: &OwnedFd) -> Vec<Carried> {
        let start = self.out_base();
        let mut bytes = vec![0u8; self.refused_base() - start];
        let read = crate::sys::pread_all(fd, &mut bytes, start).is_ok();
        let word = |off: usize| -> u64 {
            if read {
                let at = off - start;
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[at..at + 8]);
                u64::from_ne_bytes(w)
            } else {
                // Not expected (the daemon's own memfd): the mapping
                // gives the same words, at the price of the pages.
                self.map.u64(off).load(Ordering::Acquire)
            }
        };
        (0..self.nslots)
            .map(|d| Carried {
                slot: d,
                out: word(self.out_base() + d * OUT_SLOT + O_STATE),
                ntf_sent: word(self.ntf_sent_base() + 8 * d),
                ntf_seen: word(self.ntf_seen_base() + 8 * d),
            })
            .filter(|c| c.out != 0 || c.ntf_sent != 0 || c.ntf_seen != 0)
            .collect()
    }

    /// Starts this (new) mailbox from the counters a previous binding of
    /// its slot left ([`Mailbox::carried`]): the sequence numbers go on,
    /// the phases start empty. Untouched entries stay untouched (zero).
    pub fn continue_from(&self, carried: &[Carried]) {
        for c in carried {
            let (seq, _, _) = unpack_out(c.out);
            self.out_state(c.slot)
                .store(pack_out(seq, phase::EMPTY, 0), Ordering::Relaxed);
            self.ntf_sent(c.slot).store(c.ntf_sent, Ordering::Relaxed);
            self.ntf_seen(c.slot).store(c.ntf_seen, Ordering::Relaxed);
        }
    }

    /// Maps a mailbox fd: writable for its owner, read-only for peers.
    pub fn open(fd: &OwnedFd, nslots: usize, writable: bool) -> Result<Mailbox> {
        let map = Mapping::map(fd, writable, writable)?;
        if map.len() < Self::len_for(nslots) {
            return Err(crate::error::DvkError::Protocol);
        }
        Ok(Mailbox { map, nslots })
    }

    /// The owner endpoint.
    pub fn ep(&self) -> Endpoint {
        Endpoint(self.map.i32(M_EP).load(Ordering::Relaxed))
    }
    /// Which binding of the endpoint number this mailbox belongs to. A
    /// post names it (see [`Mailbox::out_dst`]), so that a later binding of
    /// the same endpoint number never takes a message meant for an earlier one.
    pub fn incarnation(&self) -> u32 {
        self.map.u32(M_INCARNATION).load(Ordering::Relaxed)
    }
    /// The `(endpoint, incarnation)` pair that posts to this mailbox carry.
    pub fn address(&self) -> u64 {
        pack_pair(self.ep(), self.incarnation())
    }
    /// IPC status word, see [`pack_status`].
    pub fn status(&self) -> &AtomicU64 {
        self.map.u64(M_STATUS)
    }
    /// Messages sent to local endpoints.
    pub fn lsnt(&self) -> &AtomicU64 {
        self.map.u64(M_LSNT)
    }
    /// Messages sent to remote endpoints.
    pub fn rsnt(&self) -> &AtomicU64 {
        self.map.u64(M_RSNT)
    }
    /// Local copies.
    pub fn lcopy(&self) -> &AtomicU64 {
        self.map.u64(M_LCOPY)
    }
    /// Remote copies.
    pub fn rcopy(&self) -> &AtomicU64 {
        self.map.u64(M_RCOPY)
    }
    /// How many DVK notifications the owner has consumed.
    pub fn kntf_tail(&self) -> &AtomicU32 {
        self.map.u32(M_KNTF_TAIL)
    }
    /// State word of the outgoing slot towards `dst_slot`.
    pub fn out_state(&self, dst_slot: usize) -> &AtomicU64 {
        assert!(dst_slot < self.nslots);
        self.map
            .u64(self.out_base() + dst_slot * OUT_SLOT + O_STATE)
    }
    /// Destination of the outgoing slot towards `dst_slot`: the
    /// destination mailbox's [`Mailbox::address`].
    pub fn out_dst(&self, dst_slot: usize) -> &AtomicU64 {
        assert!(dst_slot < self.nslots);
        self.map.u64(self.out_base() + dst_slot * OUT_SLOT + O_DST)
    }
    /// FIFO ticket of the outgoing slot towards `dst_slot`.
    pub fn out_ticket(&self, dst_slot: usize) -> &AtomicU64 {
        assert!(dst_slot < self.nslots);
        self.map
            .u64(self.out_base() + dst_slot * OUT_SLOT + O_TICKET)
    }
    /// Last sequence number towards `dst_slot` that the owner knows was
    /// delivered. Written before the owner reuses the slot, so that a
    /// receiver whose claim raced with a withdrawal learns the verdict.
    pub fn out_confirmed(&self, dst_slot: usize) -> &AtomicU32 {
        assert!(dst_slot < self.nslots);
        self.map
            .u32(self.out_base() + dst_slot * OUT_SLOT + O_CONFIRMED)
    }
    /// Writes the message body of the outgoing slot towards `dst_slot`.
    pub fn write_msg(&self, dst_slot: usize, m: &Message) {
        let base = self.out_base() + dst_slot * OUT_SLOT + O_MSG;
        for (i, w) in m.to_words().iter().enumerate() {
            self.map.u64(base + 8 * i).store(*w, Ordering::Relaxed);
        }
    }
    /// Reads the message body of the outgoing slot towards `dst_slot`.
    pub fn read_msg(&self, dst_slot: usize) -> Message {
        let base = self.out_base() + dst_slot * OUT_SLOT + O_MSG;
        let mut w = [0u64; 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = self.map.u64(base + 8 * i).load(Ordering::Relaxed);
        }
        Message::from_words(w)
    }
    /// Last message consumed from `src_slot`: `(sender endpoint, seq)`.
    pub fn consumed(&self, src_slot: usize) -> &AtomicU64 {
        assert!(src_slot < self.nslots);
        self.map.u64(self.consumed_base() + 8 * src_slot)
    }
    /// Notifications sent to `dst_slot`: `(destination endpoint, count)`.
    pub fn ntf_sent(&self, dst_slot: usize) -> &AtomicU64 {
        assert!(dst_slot < self.nslots);
        self.map.u64(self.ntf_sent_base() + 8 * dst_slot)
    }
    /// Notifications consumed from `src_slot`: `(source endpoint, count)`.
    pub fn ntf_seen(&self, src_slot: usize) -> &AtomicU64 {
        assert!(src_slot < self.nslots);
        self.map.u64(self.ntf_seen_base() + 8 * src_slot)
    }
    /// A message from `src_slot` that the owner refused: `(seq, error
    /// code)` packed by [`pack_refusal`]. Only surrogate mailboxes of
    /// remote endpoints write it: the destination node rejected the
    /// message (the sender is not registered there, the destination died).
    pub fn refused(&self, src_slot: usize) -> &AtomicU64 {
        assert!(src_slot < self.nslots);
        self.map.u64(self.refused_base() + 8 * src_slot)
    }
}

// ----------------------------------------------------------------- doorbell

const D_FUTEX: usize = 0;
const D_SLEEPERS: usize = 4;
const D_TICKET: usize = 8;
const D_PENDING: usize = 64;

/// View of an endpoint's doorbell.
pub struct Doorbell {
    map: Mapping,
    words: usize,
}

impl Doorbell {
    /// Bytes needed for a doorbell with `nslots` sources.
    pub fn len_for(nslots: usize) -> usize {
        round_page(D_PENDING + nslots.div_ceil(64) * 8)
    }

    /// Creates a doorbell (daemon side).
    pub fn create(dcid: i32, ep: Endpoint, nslots: usize) -> Result<(OwnedFd, Doorbell)> {
        let (fd, map) = Mapping::create(
            &format!("dvs-dc{dcid}-bell{}", ep.0),
            Self::len_for(nslots),
            false,
        )?;
        Ok((fd, Self::from_map(map, nslots)))
    }

    /// Maps a doorbell (always writable).
    pub fn open(fd: &OwnedFd, nslots: usize) -> Result<Doorbell> {
        let map = Mapping::map(fd, true, false)?;
        if map.len() < Self::len_for(nslots) {
            return Err(crate::error::DvkError::Protocol);
        }
        Ok(Self::from_map(map, nslots))
    }

    fn from_map(map: Mapping, nslots: usize) -> Doorbell {
        Doorbell {
            map,
            words: nslots.div_ceil(64),
        }
    }

    /// The futex word, bumped on every ring.
    pub fn futex(&self) -> &AtomicU32 {
        self.map.u32(D_FUTEX)
    }
    /// Number of threads sleeping on the futex.
    pub fn sleepers(&self) -> &AtomicU32 {
        self.map.u32(D_SLEEPERS)
    }
    /// FIFO ticket dispenser for senders.
    pub fn ticket(&self) -> &AtomicU64 {
        self.map.u64(D_TICKET)
    }
    /// Number of words in the pending bitmap.
    pub fn pending_words(&self) -> usize {
        self.words
    }
    /// Word `i` of the pending-source bitmap.
    pub fn pending(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.words);
        self.map.u64(D_PENDING + 8 * i)
    }

    /// Marks `src_slot` as possibly pending and wakes the owner.
    pub fn ring_from(&self, src_slot: usize) {
        self.pending(src_slot / 64)
            .fetch_or(1 << (src_slot % 64), Ordering::SeqCst);
        self.wake();
    }

    /// Wakes the owner without marking a source (state changed elsewhere).
    pub fn wake(&self) {
        self.futex().fetch_add(1, Ordering::SeqCst);
        if self.sleepers().load(Ordering::SeqCst) != 0 {
            futex_wake(self.futex(), i32::MAX);
        }
    }
}
