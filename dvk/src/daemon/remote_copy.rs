//! `vcopy` between nodes.
//!
//! A task that copies to or from an endpoint of another node asks its own
//! node daemon (`RemoteCopy`), which does its side of the copy with
//! `process_vm_readv`/`writev` and lets the proxies carry the data, in
//! pieces of at most [`CHUNK`] bytes, all of them on their way at once:
//!
//! * to a remote destination: the daemon's copy pump (or, for a single
//!   piece, the session itself) reads the requester's buffer and sends
//!   `CopyinData` per piece; the
//!   destination's node checks the parties, writes the piece into the
//!   destination (blocked in IPC) and answers `CopyinAck`;
//! * from a remote source: the daemon sends a `CopyoutRqst` per piece;
//!   the source's node checks the parties and its copy pump (the proxy
//!   itself, for a short piece) reads the source (blocked in IPC) and
//!   answers `CopyoutData`, which the receiving proxy writes into the
//!   destination once the piece is in.
//!
//! The pump has two threads ([`super::copy_pump`]), so that reading one
//! piece overlaps sending the one before.
//!
//! A privileged requester may copy between two other endpoints: both on
//! one other node, that node copies (`CopylclRqst`/`CopylclAck`); on two
//! other nodes, the data comes to the requester's node and goes on from
//! there; one of them local, this daemon does that side.
//!
//! The requester waits in its control call; a node that goes down fails
//! its pending copies.

use super::copy_pump::Job;
use super::proxy::{Links, Sink};
use super::state::{Caller, State};
use super::Shared;
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::layout::{unpack_status, IpcState, F_FROZEN};
use crate::params::ProcKind;
use crate::proxy::frame::{Command, CopyDesc, Frame, Header};
use crate::sys::{vm_copy, CopyDir};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest wait for the far node's answer.
pub const COPY_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest piece of a copy that crosses in one frame (256 KiB: a
/// 1 MiB copy in 4 pieces went 1.5 GB/s between two testbed nodes, in 1
/// piece 1.0 GB/s, in 8 pieces 1.35 GB/s).
pub const CHUNK: usize = 256 * 1024;

/// Where one side of a copy is, as checked under the state lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// On this node: its host pid.
    Local(i32),
    /// On another node.
    Remote(i32),
}

/// A copy as checked under the state lock.
struct Plan {
    src: Side,
    dst: Side,
    local: i32,
}

/// Serves `RemoteCopy` for caller `c`: the copy `desc` in DC `dcid`, with
/// at least one side on another node. Data from a remote source comes
/// with `CopyoutRqst`, data for a remote destination goes with
/// `CopyinData`; both sides on one other node copy there
/// (`CopylclRqst`); sides on two other nodes are bridged here.
///
/// The data crosses in [`CHUNK`]-sized pieces, all of them asked for at
/// once, so that reading the source, the network and writing the
/// destination overlap; a failed piece fails the copy (the pieces before
/// it may have been written).
pub(crate) fn requested(shared: &Shared, c: &Caller, dcid: i32, mut desc: CopyDesc) -> Result<()> {
    let links = shared.links.get().ok_or(DvkError::NoProxy)?;
    let len = desc.bytes as usize;
    if len == 0 {
        return Err(DvkError::Inval);
    }
    let plan = shared.state().copy_plan(c, dcid, &mut desc)?;
    // The header of a request to `node` for the piece at `off`.
    let header = |cmd: Command, node: i32, off: usize, n: usize| {
        let mut h = Header::new(cmd);
        h.dcid = dcid;
        h.snode = plan.local as u16;
        h.dnode = node as u16;
        h.set_copy_desc(&CopyDesc {
            src_addr: desc.src_addr + off as u64,
            dst_addr: desc.dst_addr + off as u64,
            bytes: n as u64,
            ..desc
        });
        h
    };
    let pieces: Vec<(usize, usize)> = (0..len)
        .step_by(CHUNK)
        .map(|off| (off, CHUNK.min(len - off)))
        .collect();
    let mut acks = Vec::new();
    match (plan.src, plan.dst) {
        (Side::Remote(s), Side::Remote(d)) if s == d => {
            let h = header(Command::CopylclRqst, s, 0, len);
            links.request(s, h, &[]).wait(COPY_TIMEOUT)?;
        }
        (Side::Remote(s), dst) => {
            let mut asks: Vec<Header> = pieces
                .iter()
                .map(|&(off, n)| header(Command::CopyoutRqst, s, off, n))
                .collect();
            let sink = |h: &Header| match dst {
                Side::Local(pid) => {
                    let d = h.copy_desc();
                    Some(Sink {
                        pid,
                        addr: d.dst_addr,
                        len: d.bytes as usize,
                    })
                }
                Side::Remote(_) => None,
            };
            let answers = links.request_all(s, &mut asks, sink);
            match dst {
                // The receiver writes the data into a local destination:
                // only the answers are awaited.
                Side::Local(_) => acks = answers,
                Side::Remote(d) => {
                    for (p, &(off, n)) in answers.into_iter().zip(&pieces) {
                        let data = p.wait(COPY_TIMEOUT)?;
                        if data.len() != n {
                            return Err(DvkError::Protocol);
                        }
                        let h = header(Command::CopyinData, d, off, n);
                        acks.push(links.request(d, h, &data));
                    }
                }
            }
        }
        (Side::Local(pid), Side::Remote(d)) => {
            let mut jobs = Vec::new();
            for &(off, n) in &pieces {
                let mut h = header(Command::CopyinData, d, off, n);
                let p = links.expect(d, None);
                h.seq = p.id();
                acks.push(p);
                jobs.push(Job {
                    node: d,
                    header: h,
                    pid,
                    addr: desc.src_addr + off as u64,
                    len: n,
                });
            }
            if jobs.len() == 1 {
                super::copy_pump::send(links, jobs[0], &mut Vec::new());
            } else {
                links.pump.submit(jobs);
            }
        }
        // copy_plan refuses two local sides.
        (Side::Local(_), Side::Local(_)) => return Err(DvkError::Inval),
    }
    // The last answer first: the others are then most likely in, and
    // the requester sleeps once rather than once per piece.
    for a in acks.into_iter().rev() {
        a.wait(COPY_TIMEOUT)?;
    }
    Ok(())
}

/// What this node does with a copy frame from node `from`: serve a
/// request (returning the answer) or complete a pending copy.
pub(crate) fn served(shared: &Shared, links: &Links, from: i32, f: Frame) -> Option<Frame> {
    let h = &f.header;
    let desc = h.copy_desc();
    let len = desc.bytes as usize;
    let answer = |cmd: Command, rcode: i32, payload: Vec<u8>| {
        let mut a = Header::new(cmd);
        a.dcid = h.dcid;
        a.seq = h.seq;
        a.rcode = rcode;
        a.snode = h.dnode;
        a.dnode = h.snode;
        a.set_copy_desc(&desc);
        Some(Frame { header: a, payload })
    };
    match h.cmd {
        Command::CopyinData => {
            let r = shared
                .state()
                .copy_party(from, h.dcid, &desc, Endpoint(desc.dst))
                .and_then(|pid| {
                    if f.payload.len() != len {
                        return Err(DvkError::Protocol);
                    }
                    vm_copy(
                        CopyDir::Write,
                        pid,
                        f.payload.as_ptr() as u64,
                        desc.dst_addr,
                        len,
                    )
                    .map_err(|e| died(e, DvkError::DstDied))
                });
            answer(Command::CopyinAck, code(r), Vec::new())
        }
        Command::CopyoutRqst => {
            // The pump reads a full piece and sends the answer; a short
            // one is sent from here.
            let r = if len > crate::proxy::frame::MAX_PAYLOAD {
                Err(DvkError::TooBig)
            } else {
                shared
                    .state()
                    .copy_party(from, h.dcid, &desc, Endpoint(desc.src))
            };
            match r {
                Ok(pid) => {
                    let a = answer(Command::CopyoutData, 0, Vec::new())?;
                    let job = Job {
                        node: from,
                        header: a.header,
                        pid,
                        addr: desc.src_addr,
                        len,
                    };
                    // A short piece is a whole copy or the last piece of
                    // one: sent from here, without the pump's wake-up.
                    if len < CHUNK {
                        super::copy_pump::send(links, job, &mut Vec::new());
                    } else {
                        links.pump.submit([job]);
                    }
                    None
                }
                Err(e) => answer(Command::CopyoutData, e.code(), Vec::new()),
            }
        }
        Command::CopylclRqst => {
            let r = {
                let st = shared.state();
                st.copy_party(from, h.dcid, &desc, Endpoint(desc.src))
                    .and_then(|s| Ok((s, st.copy_party(from, h.dcid, &desc, Endpoint(desc.dst))?)))
            }
            .and_then(|(spid, dpid)| {
                let mut buf = vec![0u8; CHUNK.min(len)];
                for off in (0..len).step_by(CHUNK) {
                    let n = CHUNK.min(len - off);
                    let at = buf.as_mut_ptr() as u64;
                    vm_copy(CopyDir::Read, spid, at, desc.src_addr + off as u64, n)
                        .map_err(|e| died(e, DvkError::SrcDied))?;
                    vm_copy(CopyDir::Write, dpid, at, desc.dst_addr + off as u64, n)
                        .map_err(|e| died(e, DvkError::DstDied))?;
                }
                Ok(())
            });
            answer(Command::CopylclAck, code(r), Vec::new())
        }
        Command::CopyinAck | Command::CopyoutData | Command::CopylclAck => {
            let (id, rcode) = (h.seq, h.rcode);
            let r = if rcode == 0 {
                Ok(f.payload)
            } else {
                Err(DvkError::from_code(rcode))
            };
            let cmd = h.cmd;
            links.finish(id, from, |sink| match (r, sink) {
                (Ok(data), Some(s)) if cmd == Command::CopyoutData => {
                    if data.len() != s.len {
                        return Err(DvkError::Protocol);
                    }
                    vm_copy(CopyDir::Write, s.pid, data.as_ptr() as u64, s.addr, s.len)
                        .map(|()| Vec::new())
                        .map_err(|e| died(e, DvkError::DstDied))
                }
                (r, _) => r,
            });
            None
        }
        _ => None,
    }
}

fn code(r: Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

/// A vanished process is the death of that side of the copy.
fn died(e: DvkError, as_: DvkError) -> DvkError {
    match e {
        DvkError::Srch => as_,
        other => other,
    }
}

impl State {
    /// Checks a copy requested by `c` and fills in the requester: the
    /// caller must be bound in `dcid`, be one side or privileged, and at
    /// least one side must be an endpoint of a node whose proxies are up,
    /// and the copy no longer than the DC's `max_copylen`. A local side
    /// other than the caller must be blocked in IPC and not migrating.
    fn copy_plan(&self, c: &Caller, dcid: i32, desc: &mut CopyDesc) -> Result<Plan> {
        let (local, _) = self.dvs.ok_or(DvkError::DvsNotRun)?;
        let (d, s) = self.binding_of(c).ok_or(DvkError::NotBind)?;
        if d != dcid {
            return Err(DvkError::Perm);
        }
        let dc = self.dcs.get(&dcid).ok_or(DvkError::DcNotRun)?;
        if desc.bytes > u64::from(dc.params.max_copylen) {
            return Err(DvkError::TooBig);
        }
        let me = dc.slots[s].as_ref().ok_or(DvkError::NotBind)?;
        if dc.table.flags(s).load(Ordering::Acquire) & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        let (src, dst) = (Endpoint(desc.src), Endpoint(desc.dst));
        if src != me.ep && dst != me.ep && !me.privilege.privileged() {
            return Err(DvkError::Privileges);
        }
        let side = |ep: Endpoint, died: DvkError| -> Result<Side> {
            if ep == me.ep {
                return Ok(Side::Local(me.pid));
            }
            let o = (!ep.is_special())
                .then(|| dc.params.slot_of(ep.p_nr()))
                .flatten()
                .ok_or(DvkError::BadEndpoint)?;
            let b = dc.slots[o].as_ref().ok_or(DvkError::NotBind)?;
            if b.ep != ep {
                return Err(died);
            }
            if matches!(b.kind, ProcKind::Remote | ProcKind::Backup) {
                if !self.remote.is_up(b.node) {
                    return Err(DvkError::NoProxy);
                }
                return Ok(Side::Remote(b.node));
            }
            if dc.table.flags(o).load(Ordering::Acquire) & F_FROZEN != 0 {
                return Err(DvkError::Migrate);
            }
            let (st, _) = unpack_status(b.mbx.status().load(Ordering::Acquire));
            if st == IpcState::Running {
                return Err(DvkError::NotReady);
            }
            Ok(Side::Local(b.pid))
        };
        let plan = Plan {
            src: side(src, DvkError::SrcDied)?,
            dst: side(dst, DvkError::DstDied)?,
            local,
        };
        if matches!((plan.src, plan.dst), (Side::Local(_), Side::Local(_))) {
            return Err(DvkError::Inval);
        }
        desc.requester = me.ep.0;
        Ok(plan)
    }

    /// Checks the local side `side` of a copy asked for by node `from`:
    /// the requester must be registered here as an endpoint of `from`,
    /// the copy no longer than the DC's `max_copylen`, and `side` must be
    /// bound here, blocked in IPC and not migrating.
    /// Returns its host pid.
    fn copy_party(&self, from: i32, dcid: i32, desc: &CopyDesc, side: Endpoint) -> Result<i32> {
        let dc = self.dcs.get(&dcid).ok_or(DvkError::DcNotRun)?;
        if desc.bytes > u64::from(dc.params.max_copylen) {
            return Err(DvkError::TooBig);
        }
        let slot = |ep: Endpoint| -> Result<usize> {
            (!ep.is_special())
                .then(|| dc.params.slot_of(ep.p_nr()))
                .flatten()
                .ok_or(DvkError::BadEndpoint)
        };
        let requester = Endpoint(desc.requester);
        let r = dc.slots[slot(requester)?]
            .as_ref()
            .filter(|b| b.ep == requester)
            .ok_or(DvkError::NotBind)?;
        if !matches!(r.kind, ProcKind::Remote | ProcKind::Backup) || r.node != from {
            return Err(DvkError::NotBind);
        }
        let s = slot(side)?;
        let b = dc.slots[s]
            .as_ref()
            .filter(|b| b.ep == side)
            .ok_or(DvkError::NotBind)?;
        if matches!(b.kind, ProcKind::Remote | ProcKind::Backup) {
            return Err(DvkError::NoProxy);
        }
        if dc.table.flags(s).load(Ordering::Acquire) & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        let (st, _) = unpack_status(b.mbx.status().load(Ordering::Acquire));
        if st == IpcState::Running {
            return Err(DvkError::NotReady);
        }
        Ok(b.pid)
    }
}
