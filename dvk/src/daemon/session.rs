//! One client connection: identifies the caller, then serves its requests.

use super::state::{task_exists, BindOutcome, Caller};
use super::Shared;
use crate::conn::Conn;
use crate::error::{DvkError, Result};
use crate::proto::{Grant, Request, Response, PROTOCOL_VERSION};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a blocked `wait4*` call checks that its caller still exists.
const WAIT_POLL: Duration = Duration::from_millis(250);

fn peer_caller(sock: &UnixStream) -> Result<(i32, u32)> {
    let cred = nix::sys::socket::getsockopt(sock, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|_| DvkError::Protocol)?;
    Ok((cred.pid(), cred.uid()))
}

/// Serves one connection until the client closes it.
pub(crate) fn serve(shared: Arc<Shared>, sock: UnixStream) {
    let conn = Conn::new(sock);
    let mut caller = match hello(&conn) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%e, "rejected connection");
            let _ = conn.send(&Response::Err(e.code()), &[]);
            return;
        }
    };
    if conn.send(&Response::Ok, &[]).is_err() {
        return;
    }
    loop {
        let req = match conn.recv::<Request>() {
            Ok((r, _)) => r,
            Err(DvkError::NoDaemon) => return, // client closed
            Err(e) => {
                tracing::warn!(pid = caller.pid, %e, "malformed request");
                let _ = conn.send(&Response::Err(e.code()), &[]);
                return;
            }
        };
        let shutdown = matches!(req, Request::Shutdown);
        let result = match req {
            // The connection acts as another task from now on.
            Request::Retask { tid } => shared.with_state(|st| st.retask(&caller, tid)).map(|t| {
                caller.tid = t;
                (Response::Ok, Vec::new())
            }),
            req => handle(&shared, &caller, req),
        };
        let (resp, fds) = match result {
            Ok(x) => x,
            Err(e) => (Response::Err(e.code()), Vec::new()),
        };
        let ok = matches!(resp, Response::Ok);
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        if conn.send(&resp, &raw).is_err() {
            return;
        }
        drop(fds);
        if shutdown && ok {
            shared.stop();
            return;
        }
    }
}

fn hello(conn: &Conn) -> Result<Caller> {
    let (pid, uid) = peer_caller(conn.socket())?;
    match conn.recv::<Request>()?.0 {
        Request::Hello { tid, version } => {
            if version != PROTOCOL_VERSION {
                return Err(DvkError::Protocol);
            }
            // The peer's process is alive; another of its threads is checked.
            if tid != pid && !task_exists(pid, tid) {
                return Err(DvkError::BadPid);
            }
            Ok(Caller { pid, tid, uid })
        }
        _ => Err(DvkError::Protocol),
    }
}

type Reply = (Response, Vec<OwnedFd>);

fn plain(r: Response) -> Result<Reply> {
    Ok((r, Vec::new()))
}

fn handle(shared: &Shared, c: &Caller, req: Request) -> Result<Reply> {
    match req {
        Request::Wait4Bind { timeout_ms } => wait4bind(shared, c, timeout_ms),
        Request::Wait4BindEp {
            dcid,
            ep,
            timeout_ms,
        } => {
            shared.state().require_reader(c, Some(dcid))?;
            wait_for(shared, c, timeout_ms, |st| match st.find(dcid, ep) {
                Ok(_) => Some(Ok(Response::Endpoint(ep))),
                Err(DvkError::NotBind) => None,
                Err(e) => Some(Err(e)),
            })
        }
        Request::Wait4Unbind {
            dcid,
            ep,
            timeout_ms,
        } => {
            shared.state().require_reader(c, Some(dcid))?;
            wait_for(shared, c, timeout_ms, |st| match st.find(dcid, ep) {
                Ok(_) => None,
                Err(DvkError::NotBind) => Some(Ok(Response::Ok)),
                Err(e) => Some(Err(e)),
            })
        }
        Request::RemoteCopy {
            dcid,
            src,
            src_addr,
            dst,
            dst_addr,
            len,
        } => {
            let desc = crate::proxy::frame::CopyDesc {
                src: src.0,
                dst: dst.0,
                requester: 0,
                src_addr,
                dst_addr,
                bytes: len,
            };
            super::remote_copy::requested(shared, c, dcid, desc)?;
            plain(Response::Ok)
        }
        Request::DcJoin { dcid, node } => {
            super::remote_dc::requested(shared, c, dcid, node)?;
            plain(Response::Ok)
        }
        other => shared.with_state(|st| immediate(st, c, other)),
    }
}

/// Requests answered at once under the state lock.
fn immediate(st: &mut super::state::State, c: &Caller, req: Request) -> Result<Reply> {
    match req {
        Request::Hello { .. } => Err(DvkError::Protocol),
        Request::DvsInit { node, params } => {
            st.require_manager(c)?;
            st.dvs_init(node, params)?;
            plain(Response::Ok)
        }
        Request::DvsEnd | Request::Shutdown => {
            st.require_manager(c)?;
            if st.dvs.is_some() {
                st.dvs_end()?;
            }
            plain(Response::Ok)
        }
        Request::GetDvsInfo => plain(Response::DvsInfo(st.dvs_info()?)),
        Request::DcInit(p) => {
            st.require_manager(c)?;
            plain(Response::Node(st.dc_init(p)?))
        }
        Request::DcEnd { dcid } => {
            st.require_manager(c)?;
            st.dc_end(dcid)?;
            plain(Response::Ok)
        }
        Request::GetDcInfo { dcid } => {
            st.require_reader(c, Some(dcid))?;
            plain(Response::DcInfo(st.dc_info(dcid)?))
        }
        Request::DcLookup { name } => {
            let id = st.dc_lookup(&name)?;
            st.require_reader(c, Some(id))?;
            plain(Response::Dc(id))
        }
        Request::Bind { dcid, ep, target } => {
            st.require_manager(c)?;
            match st.bind(c, dcid, ep, target)? {
                BindOutcome::Other(ep) => plain(Response::Endpoint(ep)),
                BindOutcome::Granted(s) => grant(st, dcid, s),
            }
        }
        Request::Unbind { dcid, ep } => {
            st.unbind(c, dcid, ep)?;
            plain(Response::Ok)
        }
        Request::Interrupt { dcid, ep } => {
            st.interrupt(c, dcid, ep)?;
            plain(Response::Ok)
        }
        Request::GetProcInfo { dcid, ep } => {
            st.require_reader(c, Some(dcid))?;
            plain(Response::ProcInfo(st.getprocinfo(dcid, ep)?))
        }
        Request::SetPriv { dcid, ep, record } => {
            st.require_manager(c)?;
            st.setpriv(dcid, ep, record)?;
            plain(Response::Ok)
        }
        Request::GetPriv { dcid, ep } => {
            st.require_reader(c, Some(dcid))?;
            plain(Response::Priv(st.getpriv(dcid, ep)?))
        }
        Request::MigrStart { dcid, ep } => {
            st.require_manager(c)?;
            st.migr_start(dcid, ep)?;
            plain(Response::Ok)
        }
        Request::MigrRollback { dcid, ep } => {
            st.require_manager(c)?;
            st.migr_rollback(dcid, ep)?;
            plain(Response::Ok)
        }
        Request::MigrCommit {
            pid,
            dcid,
            ep,
            node,
        } => {
            st.require_manager(c)?;
            st.migr_commit(pid, dcid, ep, node)?;
            plain(Response::Ok)
        }
        Request::MapPeers { dcid, eps } => {
            if eps.len() > crate::proto::MAX_PEERS_PER_MAP {
                return Err(DvkError::TooBig);
            }
            let dcid = match dcid {
                Some(d) => d,
                None => st.binding_of(c).ok_or(DvkError::NotBind)?.0,
            };
            let mut all = Vec::with_capacity(2 * eps.len());
            let mut seqs = Vec::with_capacity(eps.len());
            let mut nslots = 0;
            for ep in eps {
                let (n, seq, fds) = st.peer_fds(c, dcid, ep)?;
                nslots = n;
                seqs.push(seq);
                all.extend(fds);
            }
            Ok((Response::Peers { nslots, seqs }, all))
        }
        Request::Status => {
            let mut snap = st.status()?;
            if let Some(d) = st.confined_to(c) {
                snap.dcs.retain(|x| x.info.params.dcid == d);
            }
            plain(Response::Status(Box::new(snap)))
        }
        Request::Wait4Bind { .. }
        | Request::Wait4BindEp { .. }
        | Request::Wait4Unbind { .. }
        | Request::RemoteCopy { .. }
        | Request::DcJoin { .. }
        | Request::Retask { .. } => Err(DvkError::Protocol),
    }
}

fn grant(st: &super::state::State, dcid: i32, s: usize) -> Result<Reply> {
    let (dc, ep, node, fds) = st.grant_fds(dcid, s)?;
    Ok((Response::Granted(Grant { dc, ep, node }), fds))
}

fn wait4bind(shared: &Shared, c: &Caller, timeout_ms: Option<u64>) -> Result<Reply> {
    {
        // A task that already holds its grant asks again after `execve`
        // replaced its image: hand the same binding to the new image.
        let st = shared.state();
        if st.already_granted(c) {
            let (d, s) = st.binding_of(c).ok_or(DvkError::NotBind)?;
            return grant(&st, d, s);
        }
    }
    let mut out = None;
    wait_for(shared, c, timeout_ms, |st| {
        let (d, s) = st.take_grant(c)?;
        match grant(st, d, s) {
            Ok(r) => {
                out = Some(r);
                Some(Ok(Response::Ok))
            }
            Err(e) => Some(Err(e)),
        }
    })?;
    out.ok_or(DvkError::Protocol)
}

/// Blocks until `check` gives an answer, the timeout passes, or the
/// caller disappears.
fn wait_for(
    shared: &Shared,
    c: &Caller,
    timeout_ms: Option<u64>,
    mut check: impl FnMut(&mut super::state::State) -> Option<Result<Response>>,
) -> Result<Reply> {
    let deadline = timeout_ms.map(|t| Instant::now() + Duration::from_millis(t));
    let mut st = shared.state();
    loop {
        if let Some(r) = check(&mut st) {
            return r.map(|r| (r, Vec::new()));
        }
        if shared.stopping() || !task_exists(c.pid, c.tid) {
            return Err(DvkError::Intr);
        }
        let mut wait = WAIT_POLL;
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d {
                return Err(DvkError::TimedOut);
            }
            wait = wait.min(d - now);
        }
        st = shared.wait_change(st, wait);
    }
}
