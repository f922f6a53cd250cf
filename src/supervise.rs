//! Static programs that a node's SYSTASK starts for a DC of another node
//! (`dvs-exec --node`, an exec with `DVS_NODE`): they have no dynamic
//! loader for the preload, so they run under a tracer, as `dvs-exec` runs
//! them on its own node. The tracer of a DC is started for the first
//! static program, as a new `dvs __tracer` process (the node process has
//! threads, so it cannot fork a tracer that goes on running its code).
//! Its workers take their endpoints from the top of the range down, away
//! from those of a tracer of dvs-exec on the DC's own node.
//!
//! Dynamic programs there run without the seccomp net: every thread that
//! the net serves holds a worker endpoint for its life, and worker
//! endpoints are fixed numbers that the tracers of several nodes would
//! share.

use mol_servers::systask::{PreparedExec, Supervisor};
use std::collections::HashSet;
use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The argument that makes `dvs` run as a tracer (see `main`).
pub const TRACER_ARG: &str = "__tracer";

/// The supervisor of one DC's SYSTASK on this node.
pub struct NodeTracer {
    socket: PathBuf,
    dcid: i32,
    tracer: Option<tracer::Tracer>,
    /// Held static programs, by host pid.
    held: HashSet<i32>,
    /// `exec_for` prepared a program whose pid `spawned` gives next.
    prepared: bool,
}

impl NodeTracer {
    /// For DC `dcid` of the node daemon at `socket`.
    pub fn new(socket: &Path, dcid: i32) -> NodeTracer {
        NodeTracer {
            socket: socket.to_path_buf(),
            dcid,
            tracer: None,
            held: HashSet::new(),
            prepared: false,
        }
    }

    fn tracer(&mut self) -> Result<&mut tracer::Tracer, i32> {
        if self.tracer.is_none() {
            let exe = std::env::current_exe().map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
            let mut t = tracer::Tracer::start_exec(&exe, TRACER_ARG).map_err(|e| {
                tracing::warn!(%e, "cannot start a tracer");
                libc::EAGAIN
            })?;
            t.configure_as(&self.socket, self.dcid, true).map_err(|e| {
                tracing::warn!(%e, "cannot configure the tracer");
                libc::EAGAIN
            })?;
            self.tracer = Some(t);
        }
        self.tracer.as_mut().ok_or(libc::EAGAIN)
    }
}

impl Supervisor for NodeTracer {
    fn exec_for(&mut self, prog: &CStr) -> Result<Option<PreparedExec>, i32> {
        let path = Path::new(std::ffi::OsStr::from_bytes(prog.to_bytes()));
        if !matches!(tracer::elf::kind(path), Ok(tracer::elf::Kind::Static)) {
            return Ok(None);
        }
        self.tracer()?;
        let filter = tracer::Filter::trace().map_err(|e| {
            tracing::warn!(%e, "cannot build the tracer's filter");
            libc::EINVAL
        })?;
        self.prepared = true;
        // After its release the tracer has seized the program: its filter
        // goes in right before the exec.
        Ok(Some(Box::new(move |a| {
            if filter.install_raw() != 0 {
                return 0;
            }
            mol_servers::spawn::execve(a)
        })))
    }

    fn spawned(&mut self, pid: i32) {
        if std::mem::take(&mut self.prepared) {
            self.held.insert(pid);
        }
    }

    fn bound(&mut self, pid: i32, ep: dvk::Endpoint) -> Result<(), i32> {
        if !self.held.remove(&pid) {
            return Ok(());
        }
        self.tracer()?.adopt(pid, ep, true).map_err(|e| {
            tracing::warn!(pid, %e, "the tracer cannot adopt the program");
            libc::EPERM
        })
    }
}
