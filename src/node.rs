//! `dvs node start` and `dvs node stop`: the node daemon's life cycle.

use crate::client::{explain, DvkContext};
use crate::daemonize::{self, Forked, Outcome};
use crate::signals;
use dvk::cluster::ClusterConfig;
use dvk::daemon::{Config, Daemon};
use dvk::{Dvk, DvkError, DvsParams};
use nix::sys::wait::{waitpid, WaitPidFlag};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `start` and `stop` wait for the daemon.
const WAIT: Duration = Duration::from_secs(5);

/// How often they look.
const POLL: Duration = Duration::from_millis(20);

/// Name of the daemon's log file, next to its socket.
const LOG_FILE: &str = "dvkd.log";

/// `dvs node start`: runs the daemon in the foreground, or forks it into
/// the background and returns once it accepts connections.
///
/// Must be called before the process creates any thread.
pub fn start(
    socket: &Path,
    node: i32,
    foreground: bool,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let socket = std::path::absolute(socket)
        .map_err(|e| anyhow::anyhow!("bad socket path {}: {e}", socket.display()))?;
    // The file is checked before anything starts, so that its errors reach
    // the user's terminal with their line numbers.
    let cluster = config.map(load_cluster).transpose()?;
    if let (Some(c), Some(path)) = (&cluster, config) {
        if c.node(node).is_none() {
            let ids: Vec<String> = c.nodes.iter().map(|n| n.id.to_string()).collect();
            anyhow::bail!(
                "node {node} is not defined in {} (its nodes: {})",
                path.display(),
                ids.join(", ")
            );
        }
    }
    let cluster = cluster.as_ref();
    if foreground {
        signals::block_termination()?;
        init_logging(true);
        serve(bind(&socket, node, cluster)?)
    } else {
        start_background(&socket, node, cluster)
    }
}

/// Reads and validates a cluster configuration file.
fn load_cluster(path: &Path) -> anyhow::Result<ClusterConfig> {
    dvk::cluster::load(path).map_err(|e| anyhow::anyhow!("invalid cluster configuration: {e}"))
}

fn start_background(
    socket: &Path,
    node: i32,
    cluster: Option<&ClusterConfig>,
) -> anyhow::Result<()> {
    let log = log_path(socket);
    let deadline = Instant::now() + WAIT;
    match daemonize::fork()? {
        Forked::Parent { child, startup } => {
            let failure = match startup.wait(deadline)? {
                Outcome::Ready => None,
                Outcome::Failed(why) => Some((why, true)),
                Outcome::Exited => Some((
                    format!(
                        "the node daemon exited during start-up (see {})",
                        log.display()
                    ),
                    true,
                )),
                Outcome::TimedOut => Some((
                    format!(
                        "the node daemon (pid {child}) did not start within {} s (see {})",
                        WAIT.as_secs(),
                        log.display()
                    ),
                    false,
                )),
            };
            if let Some((why, exited)) = failure {
                // Reap a child that has given up; one that is stuck is left
                // to the user (its pid is in the message).
                let flags = (!exited).then_some(WaitPidFlag::WNOHANG);
                let _ = waitpid(child, flags);
                anyhow::bail!(why);
            }
            wait_connectable(socket, deadline).map_err(|e| {
                anyhow::anyhow!(
                    "the node daemon (pid {child}) does not answer on {}: {e} (see {})",
                    socket.display(),
                    log.display()
                )
            })?;
            crate::emit(&format!(
                "dvkd started (pid {child}, socket {})\n",
                socket.display()
            ))
        }
        Forked::Child { reporter } => {
            let daemon = daemonize::detach(&log)
                .and_then(|()| signals::block_termination())
                .and_then(|()| {
                    init_logging(false);
                    bind(socket, node, cluster)
                });
            match daemon {
                Ok(d) => {
                    reporter.ready();
                    serve(d)
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::error!("{msg}");
                    reporter.failed(&msg);
                    std::process::exit(1);
                }
            }
        }
    }
}

/// The log file of a daemonized node daemon: `dvkd.log` next to its socket.
fn log_path(socket: &Path) -> PathBuf {
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/"))
        .join(LOG_FILE)
}

/// Logs to stderr, filtered by `$DVS_LOG` (default `info`).
fn init_logging(ansi: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Fails only if a subscriber is already installed; keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi && std::io::stderr().is_terminal())
        .try_init();
}

/// Binds the daemon's socket, initialises the DVS as node `node` and
/// applies the cluster configuration, if any.
fn bind(socket: &Path, node: i32, cluster: Option<&ClusterConfig>) -> anyhow::Result<Daemon> {
    let daemon = Daemon::bind(&Config {
        socket: socket.to_path_buf(),
        init: Some((node, DvsParams::default())),
    })?;
    if let Some(c) = cluster {
        if let Err(e) = daemon.configure(c) {
            // Nothing was served: leave no socket behind.
            let _ = std::fs::remove_file(socket);
            anyhow::bail!("cannot apply the cluster configuration: {e}");
        }
    }
    // A DC of another node that this node joins (`dvs-exec --node`) gets
    // this node's SYSTASK, a thread of this process, which starts programs
    // here: this process is their host subreaper.
    let sock = socket.to_path_buf();
    daemon.on_dc_join(move |dcid| {
        let supervisor = Box::new(crate::supervise::NodeTracer::new(&sock, dcid));
        mol_servers::systask::start_with(
            &sock,
            dcid,
            node,
            Some(supervisor),
            dvk::membership::join_cpg,
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    });
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    Ok(daemon)
}

/// Serves until `dvs node stop`, `SIGINT` or `SIGTERM`. Signals must be
/// blocked already (see [`signals::block_termination`]).
fn serve(daemon: Daemon) -> anyhow::Result<()> {
    let stop = daemon.stopper();
    signals::spawn_handler(move |sig| {
        tracing::info!(signal = %sig, "stopping");
        stop();
    })?;
    daemon.run()
}

/// Waits until a client can complete the handshake on `socket`.
fn wait_connectable(socket: &Path, deadline: Instant) -> anyhow::Result<()> {
    loop {
        match Dvk::connect(socket) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(anyhow::anyhow!("{}", explain(e))),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// `dvs node stop`: asks the daemon to end the DVS and exit, then waits
/// for its socket to go away.
pub fn stop(socket: &Path) -> anyhow::Result<()> {
    let dvk = match Dvk::connect(socket) {
        Ok(d) => d,
        Err(DvkError::NoDaemon) => {
            anyhow::bail!("no node daemon is running on {}", socket.display())
        }
        Err(e) => anyhow::bail!(
            "cannot talk to the node daemon on {}: {}",
            socket.display(),
            explain(e)
        ),
    };
    let pid = dvk.getdvsinfo().ok().map(|i| i.daemon_pid);
    dvk.shutdown().doing("cannot stop the node daemon")?;
    drop(dvk);
    let deadline = Instant::now() + WAIT;
    loop {
        let gone = !socket.exists();
        if gone || Instant::now() >= deadline {
            if !gone && UnixStream::connect(socket).is_ok() {
                anyhow::bail!(
                    "the node daemon on {} did not stop within {} s",
                    socket.display(),
                    WAIT.as_secs()
                );
            }
            break;
        }
        std::thread::sleep(POLL);
    }
    crate::emit(&match pid {
        Some(pid) => format!("dvkd stopped (pid {pid})\n"),
        None => "dvkd stopped\n".to_string(),
    })
}
