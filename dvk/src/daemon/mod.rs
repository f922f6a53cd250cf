//! `dvkd`, the node daemon: the control plane of the DVK on one node.
//!
//! It owns the tables (DVS, DCs, bindings, privileges), creates the
//! shared memory of every DC and endpoint and hands it out over its
//! control socket, watches every bound task with a pidfd so that a task
//! that dies without unbinding is unbound and its warn endpoint notified,
//! and serves `dvs status`. It is not on the data path: bound processes
//! exchange messages directly.

mod copy_pump;
mod proxy;
mod reaper;
mod remote;
mod remote_copy;
mod remote_dc;
mod session;
mod session_pool;
pub mod state;

use crate::error::{DvkError, Result};
use crate::params::DvsParams;
use state::State;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How the daemon starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Control socket path.
    pub socket: PathBuf,
    /// Initialise the DVS at start (`dvs_init`) with this node id and parameters.
    pub init: Option<(i32, DvsParams)>,
}

/// State shared by the daemon's threads.
pub(crate) struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    reaper: reaper::Reaper,
    socket: PathBuf,
    /// The proxies, once started (multi-node clusters only).
    links: std::sync::OnceLock<Arc<proxy::Links>>,
    /// What runs when this node joins a DC of another node.
    join_hook: std::sync::OnceLock<remote_dc::JoinHook>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug in the daemon; the
        // tables stay consistent field by field, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` under the lock, then registers new pidfds and wakes waiters.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.state();
        let r = f(&mut st);
        self.after_change(&mut st);
        r
    }

    fn after_change(&self, st: &mut State) {
        for (token, fd) in st.new_pidfds.drain(..) {
            if let Err(e) = self.reaper.watch(fd, token) {
                tracing::error!(%e, "cannot watch a bound task");
            }
        }
        self.changed.notify_all();
    }

    pub(crate) fn wait_change<'a>(
        &self,
        guard: MutexGuard<'a, State>,
        d: Duration,
    ) -> MutexGuard<'a, State> {
        match self.changed.wait_timeout(guard, d) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.changed.notify_all();
        self.reaper.wake();
        // Unblock the accept loop.
        let _ = UnixStream::connect(&self.socket);
    }
}

/// Prepares the socket path: creates the directory, and removes a stale
/// socket left by a daemon that is gone. Fails if a daemon answers there.
fn prepare_socket(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "a node daemon is already running on {} (stop it with `dvs node stop`)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .map_err(|e| anyhow::anyhow!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A daemon that is listening; [`Daemon::run`] serves until shutdown.
pub struct Daemon {
    listener: UnixListener,
    shared: Arc<Shared>,
}

impl Daemon {
    /// Binds the control socket and initialises the DVS if asked to.
    pub fn bind(cfg: &Config) -> anyhow::Result<Daemon> {
        prepare_socket(&cfg.socket)?;
        let listener = UnixListener::bind(&cfg.socket)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.socket.display()))?;
        // Any local user may connect; what a caller may do is checked per call.
        let _ = std::fs::set_permissions(&cfg.socket, std::fs::Permissions::from_mode(0o666));
        let mut state = State::new(cfg.socket.display().to_string());
        if let Some((node, params)) = cfg.init {
            state
                .dvs_init(node, params)
                .map_err(|e: DvkError| anyhow::anyhow!("dvs_init: {e}"))?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            reaper: reaper::Reaper::new()?,
            socket: cfg.socket.clone(),
            links: std::sync::OnceLock::new(),
            join_hook: std::sync::OnceLock::new(),
        });
        Ok(Daemon { listener, shared })
    }

    /// Serves connections until a `Shutdown` request; then ends the DVS and
    /// removes the socket.
    pub fn run(self) -> anyhow::Result<()> {
        let reaper = {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name("dvkd-reaper".into())
                .spawn(move || reaper::run(&shared))?
        };
        tracing::info!(socket = %self.shared.socket.display(), "dvkd listening");
        let sessions = session_pool::SessionPool::new();
        for conn in self.listener.incoming() {
            if self.shared.stopping() {
                break;
            }
            match conn {
                Ok(sock) => sessions.serve(&self.shared, sock),
                Err(e) => tracing::warn!(%e, "accept failed"),
            }
        }
        self.shared.with_state(|st| {
            if st.dvs.is_some() {
                let _ = st.dvs_end();
            }
        });
        let _ = reaper.join();
        let _ = std::fs::remove_file(&self.shared.socket);
        tracing::info!("dvkd stopped");
        Ok(())
    }

    /// Applies a cluster configuration (see [`crate::cluster`]): this
    /// node must be in it; its DCs are created, and with other nodes in
    /// the cluster the proxies start (listening on this node's address).
    pub fn configure(&self, cluster: &crate::cluster::ClusterConfig) -> anyhow::Result<()> {
        let node = self.shared.with_state(|st| -> Result<i32> {
            st.configure(cluster)?;
            st.dvs.map(|(n, _)| n).ok_or(DvkError::DvsNotRun)
        })?;
        if cluster.nodes.len() > 1 {
            proxy::start(self.shared.clone(), cluster, node)?;
        }
        Ok(())
    }

    /// Sets what runs when another node makes this one join a DC
    /// ([`crate::Dvk::dc_join`]): `hook(dcid)` starts this node's servers
    /// of the DC (the join fails if it returns an error). Without a hook,
    /// a joined DC has no local servers.
    pub fn on_dc_join(
        &self,
        hook: impl Fn(i32) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) {
        let _ = self.shared.join_hook.set(Box::new(hook));
    }

    /// Asks a running daemon to stop (used by signal handlers).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || shared.stop()
    }
}

/// Binds and runs a daemon (the body of `dvkd` and `dvs node start`).
pub fn run(cfg: &Config) -> anyhow::Result<()> {
    Daemon::bind(cfg)?.run()
}

/// Convenience for tests and benchmarks: the result type of daemon calls.
pub type DaemonResult<T> = Result<T>;
