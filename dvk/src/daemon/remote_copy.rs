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
//! A privileged requester may copy between two other endpoints: both on
//! one other node, that node copies (`CopylclRqst`/`CopylclAck`); on two
//! other nodes, the data comes to the requester's node and goes on from
//! there; one of them local, this daemon does that side.
//!
//! The requester waits in its control call; a node that goes down fails
//! its pending copies.

use super::proxy::Links;
use super::state::{Caller, State};
use super::Shared;
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::layout::{unpack_status, IpcState, F_FROZEN};
use crate::params::ProcKind;
use crate::proxy::frame::{Command, CopyDesc, Frame, Header};
use crate::sys::{vm_copy, vm_read, CopyDir};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest wait for the far node's answer.
pub const COPY_TIMEOUT: Duration = Duration::from_secs(10);

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
pub(crate) fn requested(shared: &Shared, c: &Caller, dcid: i32, mut desc: CopyDesc) -> Result<()> {
    let links = shared.links.get().ok_or(DvkError::NoProxy)?;
    let len = desc.bytes as usize;
    if len == 0 || len > crate::proxy::frame::MAX_PAYLOAD {
        return Err(DvkError::TooBig);
    }
    let plan = shared.state().copy_plan(c, dcid, &mut desc)?;
    let ask = |cmd: Command, node: i32, payload: Vec<u8>| -> Result<Vec<u8>> {
        let mut h = Header::new(cmd);
        h.dcid = dcid;
        h.snode = plan.local as u16;
        h.dnode = node as u16;
        h.set_copy_desc(&desc);
        links.ask(node, Frame { header: h, payload }, COPY_TIMEOUT)
    };
    let data = match (plan.src, plan.dst) {
        (Side::Remote(s), Side::Remote(d)) if s == d => {
            ask(Command::CopylclRqst, s, Vec::new())?;
            return Ok(());
        }
        (Side::Remote(s), _) => {
            let data = ask(Command::CopyoutRqst, s, Vec::new())?;
            if data.len() != len {
                return Err(DvkError::Protocol);
            }
            data
        }
        (Side::Local(pid), _) => {
            vm_read(pid, desc.src_addr, len).map_err(|e| died(e, DvkError::SrcDied))?
        }
    };
    match plan.dst {
        Side::Remote(d) => {
            ask(Command::CopyinData, d, data)?;
        }
        Side::Local(pid) => {
            vm_copy(
                CopyDir::Write,
                pid,
                data.as_ptr() as u64,
                desc.dst_addr,
                len,
            )
            .map_err(|e| died(e, DvkError::DstDied))?;
        }
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
                    vm_read(pid, desc.src_addr, len).map_err(|e| died(e, DvkError::SrcDied))
                });
            match r {
                Ok(buf) => answer(Command::CopyoutData, 0, buf),
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
                if len > crate::proxy::frame::MAX_PAYLOAD {
                    return Err(DvkError::TooBig);
                }
                let buf =
                    vm_read(spid, desc.src_addr, len).map_err(|e| died(e, DvkError::SrcDied))?;
                vm_copy(
                    CopyDir::Write,
                    dpid,
                    buf.as_ptr() as u64,
                    desc.dst_addr,
                    len,
                )
                .map_err(|e| died(e, DvkError::DstDied))
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
    /// caller must be bound in `dcid`, be one side or privileged, and at
    /// least one side must be an endpoint of a node whose proxies are up.
    /// A local side other than the caller must be blocked in IPC and not
    /// migrating.
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
