//! The node daemon dvs-exec talks to: a running one, or an embedded one
//! that lives as long as this run.

use anyhow::{bail, Context, Result};
use dvk::{Dvk, DvsParams};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// An embedded daemon: how to stop it, and its thread.
type Embedded = (Box<dyn Fn() + Send + Sync>, JoinHandle<()>);

/// A connection target, possibly with an embedded daemon behind it.
pub struct Node {
    /// Control socket.
    pub socket: PathBuf,
    embedded: Option<Embedded>,
    /// An embedded daemon that is bound (its socket exists) but has no
    /// thread yet: [`Node::serve`] starts it.
    bound: Option<dvk::daemon::Daemon>,
    _dir: Option<tempfile::TempDir>,
}

impl Node {
    /// Uses the daemon at `socket` (or `$DVS_SOCKET`), which must be
    /// running; with neither, the default daemon if one runs, else an
    /// embedded one, bound but started only by [`Node::serve`] (so that
    /// this process can fork before it has threads).
    pub fn get(socket: Option<PathBuf>) -> Result<Node> {
        match Self::running(socket)? {
            Some(n) => Ok(n),
            None => Self::embedded(),
        }
    }

    /// The daemon at `socket` (or `$DVS_SOCKET`), which must be running,
    /// else the default daemon if one runs; `None` if there is none.
    /// Starts no thread.
    pub fn running(socket: Option<PathBuf>) -> Result<Option<Node>> {
        let explicit = socket.or_else(|| {
            std::env::var_os("DVS_SOCKET")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        if let Some(s) = explicit {
            if Dvk::connect(&s).is_err() {
                bail!(
                    "no node daemon is running on {} (start one with `dvs node start`)",
                    s.display()
                );
            }
            return Ok(Some(Node {
                socket: s,
                embedded: None,
                bound: None,
                _dir: None,
            }));
        }
        let default = PathBuf::from(dvk::DEFAULT_SOCKET);
        if Dvk::connect(&default).is_ok() {
            return Ok(Some(Node {
                socket: default,
                embedded: None,
                bound: None,
                _dir: None,
            }));
        }
        Ok(None)
    }

    /// Whether the daemon is this process's own.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some() || self.bound.is_some()
    }

    /// Starts the embedded daemon's thread (nothing for a running one).
    pub fn serve(&mut self) -> Result<()> {
        let Some(daemon) = self.bound.take() else {
            return Ok(());
        };
        let stop = Box::new(daemon.stopper());
        let thread = std::thread::Builder::new()
            .name("dvkd".into())
            .spawn(move || {
                if let Err(e) = daemon.run() {
                    eprintln!("dvs-exec: embedded node daemon: {e:#}");
                }
            })
            .context("cannot start the embedded node daemon")?;
        self.embedded = Some((stop, thread));
        Ok(())
    }

    /// Exits with `code` at once, without stopping an embedded daemon in
    /// order: only its socket (and the directory made for it) outlive the
    /// process, and they are removed first.
    pub fn exit_now(&self, code: i32) -> ! {
        if self.is_embedded() {
            let _ = std::fs::remove_file(&self.socket);
            if let Some(d) = &self._dir {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
        std::process::exit(code)
    }

    fn embedded() -> Result<Node> {
        let run = dvk::client::embedded_dir();
        let (socket, dir) = match usable_run_dir(&run) {
            Ok(()) => {
                sweep_stale(&run);
                (run.join(format!("exec-{}.sock", std::process::id())), None)
            }
            Err(_) => {
                let d = tempfile::tempdir()
                    .context("cannot create a directory for the embedded node")?;
                (d.path().join("dvkd.sock"), Some(d))
            }
        };
        let cfg = dvk::daemon::Config {
            socket: socket.clone(),
            init: Some((0, DvsParams::default())),
        };
        let daemon =
            dvk::daemon::Daemon::bind(&cfg).context("cannot start the embedded node daemon")?;
        Ok(Node {
            socket,
            embedded: None,
            bound: Some(daemon),
            _dir: dir,
        })
    }
}

/// Makes `dir` (only the user can enter it, unless it is root's
/// `/run/dvs`) and checks that it is a directory of this user's that this
/// user can write: a directory someone else made in `/tmp` under that
/// name is not used.
fn usable_run_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    // SAFETY: geteuid has no arguments and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mode = if uid == 0 { 0o755 } else { 0o700 };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)?;
    let m = std::fs::symlink_metadata(dir)?;
    let foreign =
        !m.is_dir() || m.uid() != uid || (uid != 0 && m.permissions().mode() & 0o077 != 0);
    if foreign {
        return Err(std::io::ErrorKind::PermissionDenied.into());
    }
    Ok(())
}

/// Removes the sockets of embedded nodes whose dvs-exec was killed before
/// it could clean up (nothing listens on them any more), so that `dvs ps`
/// and `dvs kill` do not trip over them.
fn sweep_stale(run: &Path) {
    let Ok(entries) = std::fs::read_dir(run) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("exec-") && name.ends_with(".sock")) {
            continue;
        }
        let path = e.path();
        if let Err(err) = std::os::unix::net::UnixStream::connect(&path) {
            if err.kind() == std::io::ErrorKind::ConnectionRefused {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.embedded.take() {
            stop();
            let _ = thread.join();
        }
        if self.bound.take().is_some() {
            // Never served: its socket is all it left.
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}
