//! Session threads kept for the next connection. Every process that
//! starts in a DC (each fork child, each exec'd image) opens a connection
//! to attach, and a new thread per connection cost a `clone`, a stack and
//! a first scheduling on each process start. A thread whose session ended
//! waits for the next connection instead, up to [`MAX_IDLE`] of them.

use super::{session, Shared};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Idle session threads kept at most.
const MAX_IDLE: usize = 8;

/// Hands accepted connections to session threads.
pub(crate) struct SessionPool {
    tx: Sender<UnixStream>,
    rx: Mutex<Receiver<UnixStream>>,
    /// Threads committed to take the next connection from `rx`.
    idle: AtomicUsize,
}

impl SessionPool {
    pub(crate) fn new() -> Arc<SessionPool> {
        let (tx, rx) = channel();
        Arc::new(SessionPool {
            tx,
            rx: Mutex::new(rx),
            idle: AtomicUsize::new(0),
        })
    }

    /// Serves `sock` on an idle session thread, or on a new one.
    pub(crate) fn serve(self: &Arc<Self>, shared: &Arc<Shared>, sock: UnixStream) {
        let claimed = self
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        // An idle thread counted itself before waiting on `rx`, so a
        // claimed one is there (or about to be) to take this connection.
        let sock = if claimed {
            match self.tx.send(sock) {
                Ok(()) => return,
                Err(e) => e.0,
            }
        } else {
            sock
        };
        let (pool, shared) = (self.clone(), shared.clone());
        let spawned = std::thread::Builder::new()
            .name("dvkd-session".into())
            .spawn(move || pool.run(shared, sock));
        if let Err(e) = spawned {
            tracing::error!(%e, "cannot start a session thread");
        }
    }

    /// A session thread: serves `sock`, then waits for more while the pool
    /// has room for an idle thread.
    fn run(&self, shared: Arc<Shared>, mut sock: UnixStream) {
        loop {
            session::serve(shared.clone(), sock);
            if self.idle.fetch_add(1, Ordering::AcqRel) >= MAX_IDLE {
                self.idle.fetch_sub(1, Ordering::AcqRel);
                return;
            }
            let next = self.rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
            match next {
                Ok(s) => sock = s,
                Err(_) => return,
            }
        }
    }
}
