//! Detaching the node daemon from the terminal.
//!
//! [`fork`] splits the process in two, with a pipe from the child to the
//! parent: the child detaches ([`detach`]), binds the daemon socket and
//! reports the outcome with [`Reporter::ready`] or [`Reporter::failed`];
//! the parent learns it with [`Startup::wait`]. It must be called while
//! the process has a single thread.

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::{ForkResult, Pid};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

/// Which side of the fork we are on.
pub enum Forked {
    /// The original process: `child` is the daemon.
    Parent {
        /// Host pid of the daemon.
        child: Pid,
        /// Where the daemon's start-up outcome arrives.
        startup: Startup,
    },
    /// The daemon.
    Child {
        /// Where to send the start-up outcome.
        reporter: Reporter,
    },
}

/// What the daemon reported at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It is listening.
    Ready,
    /// It could not start; the reason.
    Failed(String),
    /// It exited without a report.
    Exited,
    /// No report before the deadline.
    TimedOut,
}

/// The parent's end of the start-up pipe.
pub struct Startup(File);

/// The child's end of the start-up pipe.
pub struct Reporter(File);

const READY: &str = "OK";
const FAILED: &str = "ERR ";

/// Forks, with a start-up pipe from the child to the parent.
pub fn fork() -> anyhow::Result<Forked> {
    let (rd, wr): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| anyhow::anyhow!("cannot create a pipe: {e}"))?;
    // SAFETY: the caller guarantees that the process is single-threaded
    // here (no thread has been created yet), so the child may run any code.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => {
            drop(wr);
            Ok(Forked::Parent {
                child,
                startup: Startup(File::from(rd)),
            })
        }
        Ok(ForkResult::Child) => {
            drop(rd);
            Ok(Forked::Child {
                reporter: Reporter(File::from(wr)),
            })
        }
        Err(e) => Err(anyhow::anyhow!("cannot fork: {e}")),
    }
}

/// Detaches the calling (child) process: new session, working directory
/// `/`, stdin and stdout on `/dev/null`, stderr appended to `log` (its
/// directory is created if needed).
pub fn detach(log: &Path) -> anyhow::Result<()> {
    nix::unistd::setsid().map_err(|e| anyhow::anyhow!("setsid: {e}"))?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    }
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| anyhow::anyhow!("cannot open /dev/null: {e}"))?;
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| anyhow::anyhow!("cannot open the log file {}: {e}", log.display()))?;
    let redirect = |what: &str, r: nix::Result<()>| {
        r.map_err(|e| anyhow::anyhow!("cannot redirect {what}: {e}"))
    };
    redirect("stdin", nix::unistd::dup2_stdin(null.as_fd()))?;
    redirect("stdout", nix::unistd::dup2_stdout(null.as_fd()))?;
    redirect("stderr", nix::unistd::dup2_stderr(err.as_fd()))?;
    nix::unistd::chdir("/").map_err(|e| anyhow::anyhow!("cannot change directory to /: {e}"))?;
    Ok(())
}

impl Reporter {
    /// Tells the parent that the daemon is listening.
    pub fn ready(self) {
        self.send(READY);
    }

    /// Tells the parent that the daemon could not start, and why.
    pub fn failed(self, why: &str) {
        self.send(&format!("{FAILED}{why}"));
    }

    fn send(mut self, msg: &str) {
        // If the parent is gone there is nobody to tell: ignore errors.
        let _ = self.0.write_all(msg.as_bytes());
    }
}

impl Startup {
    /// Waits (until `deadline`) for the child's report.
    pub fn wait(mut self, deadline: Instant) -> anyhow::Result<Outcome> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => return Ok(Outcome::TimedOut),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => anyhow::bail!("cannot wait for the daemon: {e}"),
            }
            match self.0.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => anyhow::bail!("cannot read the daemon's start-up report: {e}"),
            }
        }
        let msg = String::from_utf8_lossy(&buf);
        Ok(if msg == READY {
            Outcome::Ready
        } else if let Some(why) = msg.strip_prefix(FAILED) {
            Outcome::Failed(why.to_string())
        } else {
            Outcome::Exited
        })
    }
}
