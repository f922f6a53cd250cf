//! `vcopy` between nodes.
//!
//! A task that copies to or from an endpoint of another node asks its own
//! node daemon (`RemoteCopy`), which does its side of the copy with one
//! `process_vm_readv`/`writev` and lets the proxies carry the data:
//!
//! * to a remote destination: the daemon reads the requester's buffer and
//!   sends `CopyinData`; the destination's node checks the parties, writes
//!   the data into the destination (blocked in IPC) and answers
//!   `CopyinAck`;
//! * from a remote source: the daemon sends `CopyoutRqst`; the source's
//!   node reads the source (blocked in IPC) and answers `CopyoutData`,
//!   which the daemon writes into the requester.
//!
//! The requester waits in its control call; a node that goes down fails
//! its pending copies. Copies between two other endpoints with one of them
//! remote are not carried (`EDVSNOPROXY`).

use super::proxy::Links;
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

/// The requester's side of a copy, as checked under the state lock.
struct Plan {
    /// Host pid of the requester.
    pid: i32,
    /// Node of the other side.
    node: i32,
    /// The requester is the source.
    outbound: bool,
    local: i32,
}

/// Serves `RemoteCopy` for caller `c`: the copy `desc` in DC `dcid`.
pub(crate) fn requested(shared: &Shared, c: &Caller, dcid: i32, mut desc: CopyDesc) -> Result<()> {
    let links = shared.links.get().ok_or(DvkError::NoProxy)?;
    let len = desc.bytes as usize;
    if len == 0 || len > crate::proxy::frame::MAX_PAYLOAD {
        return Err(DvkError::TooBig);
    }
    let plan = shared.state().copy_plan(c, dcid, &mut desc)?;
    let mut h = Header::new(if plan.outbound {
        Command::CopyinData
    } else {
        Command::CopyoutRqst
    });
    h.dcid = dcid;
    h.snode = plan.local as u16;
    h.dnode = plan.node as u16;
    h.set_copy_desc(&desc);
    let payload = if plan.outbound {
        let mut buf = vec![0u8; len];
        vm_copy(
            CopyDir::Read,
            plan.pid,
            buf.as_mut_ptr() as u64,
            desc.src_addr,
            len,
        )?;
        buf
    } else {
        Vec::new()
    };
    let (id, answer) = links.expect_copy(plan.node);
    h.seq = id;
    links.send_frame(plan.node, Frame { header: h, payload });
    let r = answer
        .recv_timeout(COPY_TIMEOUT)
        .unwrap_or(Err(DvkError::TimedOut));
    links.forget_copy(id);
    let data = r?;
    if !plan.outbound {
        if data.len() != len {
            return Err(DvkError::Protocol);
        }
        vm_copy(
            CopyDir::Write,
            plan.pid,
            data.as_ptr() as u64,
            desc.dst_addr,
            len,
        )?;
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
            let r = shared
                .state()
                .copy_party(from, h.dcid, &desc, Endpoint(desc.src))
                .and_then(|pid| {
                    if len > crate::proxy::frame::MAX_PAYLOAD {
                        return Err(DvkError::TooBig);
                    }
                    let mut buf = vec![0u8; len];
                    vm_copy(
                        CopyDir::Read,
                        pid,
                        buf.as_mut_ptr() as u64,
                        desc.src_addr,
                        len,
                    )
                    .map_err(|e| died(e, DvkError::SrcDied))?;
                    Ok(buf)
                });
            match r {
                Ok(buf) => answer(Command::CopyoutData, 0, buf),
                Err(e) => answer(Command::CopyoutData, e.code(), Vec::new()),
            }
        }
        Command::CopyinAck | Command::CopyoutData => {
            let (id, rcode) = (h.seq, h.rcode);
            let r = if rcode == 0 {
                Ok(f.payload)
            } else {
                Err(DvkError::from_code(rcode))
            };
            links.complete(id, r);
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
    /// caller must be bound in `dcid` as one side, the other side must be
    /// an endpoint of a node whose proxies are up.
    fn copy_plan(&self, c: &Caller, dcid: i32, desc: &mut CopyDesc) -> Result<Plan> {
        let (local, _) = self.dvs.ok_or(DvkError::DvsNotRun)?;
        let (d, s) = self.binding_of(c).ok_or(DvkError::NotBind)?;
        if d != dcid {
            return Err(DvkError::Perm);
        }
        let dc = self.dcs.get(&dcid).ok_or(DvkError::DcNotRun)?;
        let me = dc.slots[s].as_ref().ok_or(DvkError::NotBind)?;
        if dc.table.flags(s).load(Ordering::Acquire) & F_FROZEN != 0 {
            return Err(DvkError::Migrate);
        }
        let (src, dst) = (Endpoint(desc.src), Endpoint(desc.dst));
        let (other, outbound, died) = if src == me.ep && dst != me.ep {
            (dst, true, DvkError::DstDied)
        } else if dst == me.ep && src != me.ep {
            (src, false, DvkError::SrcDied)
        } else {
            return Err(DvkError::Inval);
        };
        let o = (!other.is_special())
            .then(|| dc.params.slot_of(other.p_nr()))
            .flatten()
            .ok_or(DvkError::BadEndpoint)?;
        let b = dc.slots[o].as_ref().ok_or(DvkError::NotBind)?;
        if b.ep != other {
            return Err(died);
        }
        if !matches!(b.kind, ProcKind::Remote | ProcKind::Backup) {
            return Err(DvkError::Inval);
        }
        if !self.remote.is_up(b.node) {
            return Err(DvkError::NoProxy);
        }
        desc.requester = me.ep.0;
        Ok(Plan {
            pid: me.pid,
            node: b.node,
            outbound,
            local,
        })
    }

    /// Checks the local side `side` of a copy asked for by node `from`:
    /// the requester must be registered here as an endpoint of `from`,
    /// and `side` must be bound here, blocked in IPC and not migrating.
    /// Returns its host pid.
    fn copy_party(&self, from: i32, dcid: i32, desc: &CopyDesc, side: Endpoint) -> Result<i32> {
        let dc = self.dcs.get(&dcid).ok_or(DvkError::DcNotRun)?;
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
