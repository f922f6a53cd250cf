//! DCs that span nodes: joining a node to a DC, ending it everywhere, and
//! DVK notifications for endpoints of other nodes.
//!
//! * **Join** (`dc_join`, a manager call). The DC's node daemon sends
//!   `DcJoin` with the DC's parameters and its local system endpoints of
//!   the DC (the servers).
//!   The joining daemon creates the DC, registers those endpoints as
//!   remote ones ([`crate::proto::BindTarget::Remote`]), runs its join
//!   hook (`dvs node` starts the node's SYSTASK of the DC there) and
//!   answers `DcJoinAck` with its own endpoints of the DC, which the
//!   requester registers in turn. A failed join leaves no DC behind.
//! * **Leave.** A DC that ends on a node ends on the other nodes of its
//!   node set too (`DcLeave`).
//! * **Notifications.** The DVK's `Exit` and `Signal` notifications of a
//!   local endpoint for an endpoint of another node (PM, FS on the DC's
//!   first node) travel as `Kntf`. An `Exit` first unbinds the ended
//!   endpoint's surrogate there, so that its slot can be bound again.

use super::proxy::Links;
use super::state::{Caller, State};
use super::Shared;
use crate::endpoint::Endpoint;
use crate::error::{DvkError, Result};
use crate::layout::{pack_pair, unpack_pair};
use crate::params::{DcParams, ProcKind};
use crate::proto::BindTarget;
use crate::proxy::frame::{Command, Frame, Header};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Longest wait for the joining node's answer (it starts a server).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a node runs when it joins a DC: starts its servers of the DC.
pub type JoinHook = Box<dyn Fn(i32) -> std::result::Result<(), String> + Send + Sync>;

/// The payload of `DcJoin`.
#[derive(Serialize, Deserialize)]
struct JoinBody {
    params: DcParams,
    endpoints: Vec<i32>,
}

/// The daemon itself, as the caller of the binds it makes for a peer.
fn daemon_caller() -> Caller {
    Caller {
        pid: std::process::id() as i32,
        tid: 0,
        uid: 0,
    }
}

impl State {
    /// System endpoints (tasks and system processes: the servers) of DC
    /// `dcid` bound on this node, not surrogates. User processes are
    /// registered on other nodes one by one, where they need to be (PM does
    /// it for processes of other nodes).
    fn local_endpoints(&self, dcid: i32) -> Vec<i32> {
        self.dcs.get(&dcid).map_or_else(Vec::new, |dc| {
            dc.slots
                .iter()
                .flatten()
                .filter(|b| dc.params.privileged_by_default(b.ep.p_nr()))
                .filter(|b| matches!(b.kind, ProcKind::Local | ProcKind::Replica))
                .map(|b| b.ep.0)
                .collect()
        })
    }

    /// Registers `eps` of DC `dcid` as endpoints of `node` (those already
    /// registered are kept).
    fn register_remote(&mut self, dcid: i32, node: i32, eps: &[i32]) -> Result<()> {
        for &ep in eps {
            match self.bind(
                &daemon_caller(),
                dcid,
                Endpoint(ep),
                BindTarget::Remote(node),
            ) {
                Ok(_) | Err(DvkError::SlotUsed) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Frames telling the nodes that share DC `dcid` with this one (through
    /// `dc_join`) that it ends.
    pub(crate) fn leave_frames(&mut self, dcid: i32) {
        let Some(local) = self.dvs.map(|(n, _)| n) else {
            return;
        };
        for n in self.remote.forget_joined(dcid) {
            if self.remote.is_up(n) {
                let mut h = Header::new(Command::DcLeave);
                h.dcid = dcid;
                h.snode = local as u16;
                h.dnode = n as u16;
                self.remote.queue(n, h);
            }
        }
    }

    /// DC `dcid` ended on node `from`. If it is the DC's node, the DC
    /// ends here too, and its processes here are killed; if `from` had
    /// joined it, its endpoints are gone as if killed (their warn endpoint,
    /// PM, sees them end by `SIGKILL`).
    pub(crate) fn dc_left(&mut self, dcid: i32, from: i32) {
        if self.remote.origin_of(dcid) == Some(from) {
            tracing::info!(dcid, from, "the DC ended on its node {from}");
            self.kill_local_processes(dcid);
            let _ = self.dc_end_here(dcid);
        } else if self.remote.leave(dcid, from) {
            tracing::info!(dcid, from, "node {from} left the DC");
            let gone: Vec<usize> = self.dcs.get(&dcid).map_or_else(Vec::new, |dc| {
                (0..dc.slots.len())
                    .filter(|&s| {
                        dc.slots[s]
                            .as_ref()
                            .is_some_and(|b| b.kind == ProcKind::Remote && b.node == from)
                    })
                    .collect()
            });
            for s in gone {
                self.unbind_slot(dcid, s, true);
            }
        }
    }

    /// A system endpoint (a tool's probe, a tracer's worker) of a DC this
    /// node joined was bound here (`bound`) or unbound: the DC's node,
    /// where the servers are, learns it, so that it can talk to them. (Its
    /// first message follows the announcement on the same connection.)
    /// The DC's node announces nothing: its later system endpoints talk to
    /// its own servers only.
    pub(crate) fn announce(&mut self, dcid: i32, ep: Endpoint, bound: bool) {
        let Some(local) = self.dvs.map(|(n, _)| n) else {
            return;
        };
        let Some(dc) = self.dcs.get(&dcid) else {
            return;
        };
        if !dc.params.privileged_by_default(ep.p_nr()) {
            return;
        }
        if let Some(n) = self.remote.origin_of(dcid) {
            let mut h = Header::new(if bound {
                Command::Register
            } else {
                Command::Unregister
            });
            h.dcid = dcid;
            h.src = ep.0;
            h.snode = local as u16;
            h.dnode = n as u16;
            self.remote.queue(n, h);
        }
    }

    /// `Register`/`Unregister` from node `from`.
    pub(crate) fn announced(&mut self, from: i32, h: &Header) {
        if !self.remote.joined_nodes(h.dcid).contains(&from) {
            return;
        }
        let ep = Endpoint(h.src);
        if h.cmd == Command::Register {
            match self.bind(&daemon_caller(), h.dcid, ep, BindTarget::Remote(from)) {
                Ok(_) | Err(DvkError::SlotUsed) => {}
                Err(e) => tracing::debug!(%ep, from, %e, "cannot register a remote endpoint"),
            }
        } else if let Some(dc) = self.dcs.get(&h.dcid) {
            let s = dc.params.slot_of(ep.p_nr()).filter(|_| !ep.is_special());
            let theirs = s
                .and_then(|s| dc.slots[s].as_ref().map(|b| (s, b)))
                .filter(|(_, b)| b.ep == ep && b.kind == ProcKind::Remote && b.node == from);
            if let Some((s, _)) = theirs {
                self.unbind_slot(h.dcid, s, false);
            }
        }
    }

    /// A DVK notification for `target`, an endpoint of `node`: sent there.
    pub(crate) fn forward_kntf(&mut self, dcid: i32, node: i32, target: Endpoint, entry: u64) {
        let Some(local) = self.dvs.map(|(n, _)| n) else {
            return;
        };
        let (ep, kind) = unpack_pair(entry);
        let mut h = Header::new(Command::Kntf);
        h.dcid = dcid;
        h.src = ep.0;
        h.dst = target.0;
        h.snode = local as u16;
        h.dnode = node as u16;
        h.rcode = kind as i32;
        self.remote.queue(node, h);
    }

    /// A notification from node `from`: endpoint `h.src` of that node
    /// ended (its surrogate here is unbound) or was interrupted; the local
    /// endpoint `h.dst` is told.
    pub(crate) fn kntf_arrived(&mut self, from: i32, h: &Header) {
        let (src, dst) = (Endpoint(h.src), Endpoint(h.dst));
        let Some(dc) = self.dcs.get(&h.dcid) else {
            return;
        };
        let Some(s) = dc.params.slot_of(src.p_nr()).filter(|_| !src.is_special()) else {
            return;
        };
        let surrogate = dc.slots[s]
            .as_ref()
            .is_some_and(|b| b.ep == src && b.kind == ProcKind::Remote && b.node == from);
        if !surrogate {
            return; // not an endpoint of that node: ignored
        }
        if h.rcode == crate::NotifyKind::Exit as i32 {
            self.unbind_slot(h.dcid, s, false);
        }
        self.deferred.push(super::state::Deferred {
            dcid: h.dcid,
            target: dst,
            entry: pack_pair(src, h.rcode as u32),
        });
        self.flush_deferred();
    }
}

/// Serves `DcJoin` for caller `c`: asks `node` to join DC `dcid` and
/// registers its endpoints here.
pub(crate) fn requested(shared: &Shared, c: &Caller, dcid: i32, node: i32) -> Result<()> {
    let links = shared.links.get().ok_or(DvkError::NoProxy)?;
    let (local, payload) = {
        let st = shared.state();
        st.require_manager(c)?;
        let (local, dvs) = st.dvs.ok_or(DvkError::DvsNotRun)?;
        let params = st.dc_params(dcid)?;
        if node < 0 || node >= dvs.nr_nodes || node == local {
            return Err(DvkError::BadNodeId);
        }
        if node >= 64 || params.nodes & (1u64 << node) == 0 {
            return Err(DvkError::NoDcNode);
        }
        if !st.remote.is_up(node) {
            return Err(DvkError::NoProxy);
        }
        let body = JoinBody {
            endpoints: st.local_endpoints(dcid),
            params,
        };
        let payload = bincode::serialize(&body).map_err(|_| DvkError::Protocol)?;
        (local, payload)
    };
    let mut h = Header::new(Command::DcJoin);
    h.dcid = dcid;
    h.snode = local as u16;
    h.dnode = node as u16;
    let answer = links.ask(node, Frame { header: h, payload }, JOIN_TIMEOUT)?;
    let eps: Vec<i32> = bincode::deserialize(&answer).map_err(|_| DvkError::Protocol)?;
    shared.with_state(|st| {
        st.register_remote(dcid, node, &eps)?;
        st.remote.add_joined(dcid, node);
        Ok(())
    })
}

/// `DcJoin` from node `from`: joins on a thread of its own (the hook
/// starts a server, which talks to this daemon), then answers.
pub(crate) fn join_asked(shared: Arc<Shared>, links: Arc<Links>, from: i32, f: Frame) {
    let spawned = std::thread::Builder::new()
        .name("dvkd-join".into())
        .spawn(move || {
            let h = f.header;
            let mut a = Header::new(Command::DcJoinAck);
            a.dcid = h.dcid;
            a.seq = h.seq;
            a.snode = h.dnode;
            a.dnode = from as u16;
            let payload = match join(&shared, from, h.dcid, &f.payload) {
                Ok(eps) => bincode::serialize(&eps).unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(dcid = h.dcid, from, %e, "cannot join the DC");
                    a.rcode = e.code();
                    Vec::new()
                }
            };
            links.send_frame(from, Frame { header: a, payload });
        });
    if let Err(e) = spawned {
        tracing::error!(%e, "cannot start a join thread");
    }
}

fn join(shared: &Shared, from: i32, dcid: i32, payload: &[u8]) -> Result<Vec<i32>> {
    let body: JoinBody = bincode::deserialize(payload).map_err(|_| DvkError::Protocol)?;
    if body.params.dcid != dcid {
        return Err(DvkError::Protocol);
    }
    shared.with_state(|st| {
        st.dc_init(body.params)?;
        st.register_remote(dcid, from, &body.endpoints)
            .inspect_err(|_| {
                let _ = st.dc_end_here(dcid);
            })
    })?;
    shared.with_state(|st| st.remote.add_origin(dcid, from));
    tracing::info!(dcid, from, "joined a DC of node {from}");
    if let Some(hook) = shared.join_hook.get() {
        if let Err(why) = hook(dcid) {
            tracing::warn!(dcid, %why, "the join hook failed");
            shared.with_state(|st| st.dc_end_here(dcid))?;
            return Err(DvkError::Io);
        }
    }
    Ok(shared.state().local_endpoints(dcid))
}

/// `DcJoinAck`: hands the answer to the waiting requester.
pub(crate) fn join_answered(links: &Links, f: Frame) {
    let r = if f.header.rcode == 0 {
        Ok(f.payload)
    } else {
        Err(DvkError::from_code(f.header.rcode))
    };
    links.complete(f.header.seq, r);
}
