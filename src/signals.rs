//! Termination signals for the node daemon, handled by a dedicated thread.
//!
//! [`block_termination`] must run in the main thread before any other
//! thread exists, so that every thread inherits the blocked mask and
//! `SIGINT`/`SIGTERM` stay pending until [`spawn_handler`]'s thread takes
//! them with `sigwait`. No code runs in signal-handler context.

use nix::sys::signal::{SigSet, Signal};
use std::thread::JoinHandle;

/// The signals that stop the daemon.
fn termination_set() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set
}

/// Blocks `SIGINT` and `SIGTERM` in the calling thread (and in the threads it
/// creates afterwards).
pub fn block_termination() -> anyhow::Result<()> {
    termination_set()
        .thread_block()
        .map_err(|e| anyhow::anyhow!("cannot block termination signals: {e}"))
}

/// Starts a thread that waits for `SIGINT`/`SIGTERM` and calls `on_signal`
/// for each one received (it must be idempotent).
pub fn spawn_handler(
    on_signal: impl Fn(Signal) + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let set = termination_set();
    std::thread::Builder::new()
        .name("dvs-signals".into())
        .spawn(move || loop {
            match set.wait() {
                Ok(sig) => on_signal(sig),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!(%e, "sigwait failed; signals are no longer handled");
                    return;
                }
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start the signal thread: {e}"))
}
