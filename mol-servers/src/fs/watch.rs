//! The I/O watcher: a second thread, bound as [`abi::FS_WATCH`], that
//! turns host-descriptor readiness and deadlines into notifications to FS.
//!
//! FS publishes its *interest* (the host descriptors its deferred
//! operations wait on, with their events, and the nearest deadline) in
//! [`WatchShared`] and rings an eventfd. The watcher `ppoll`s the eventfd
//! plus those descriptors until the deadline. When something is ready or
//! the deadline has passed it `notify`s FS once, then waits for FS to
//! acknowledge by publishing again (FS always does after a notification),
//! so readiness that FS has not consumed yet never makes it spin.
//!
//! The descriptors are `Arc`s shared with FS's open file descriptions, so
//! one that FS closes meanwhile stays open (and its number unused) until
//! the watcher has let go of its snapshot.

use super::sys;
use crate::abi;
use dvk::{DvkError, Ipc};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What FS waits for.
#[derive(Default)]
pub struct Interest {
    /// Host descriptors and `poll` events.
    pub fds: Vec<(Arc<OwnedFd>, i16)>,
    /// The nearest deadline of a deferred operation.
    pub deadline: Option<Instant>,
}

impl Interest {
    /// Same descriptors, events and deadline.
    pub fn same(&self, other: &Interest) -> bool {
        self.deadline == other.deadline
            && self.fds.len() == other.fds.len()
            && self
                .fds
                .iter()
                .zip(other.fds.iter())
                .all(|(a, b)| a.0.as_raw_fd() == b.0.as_raw_fd() && a.1 == b.1)
    }
}

struct State {
    generation: u64,
    interest: Interest,
    stop: bool,
}

/// State shared by FS and its watcher.
pub struct WatchShared {
    state: Mutex<State>,
    bell: OwnedFd,
}

impl WatchShared {
    /// New shared state with its eventfd.
    pub fn new() -> std::io::Result<Arc<WatchShared>> {
        let bell = sys::eventfd().map_err(std::io::Error::from_raw_os_error)?;
        Ok(Arc::new(WatchShared {
            state: Mutex::new(State {
                generation: 0,
                interest: Interest::default(),
                stop: false,
            }),
            bell,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the interest (a new generation, which also acknowledges
    /// the last notification) and wakes the watcher.
    pub fn publish(&self, interest: Interest) {
        {
            let mut st = self.lock();
            st.generation += 1;
            st.interest = interest;
        }
        sys::eventfd_signal(self.bell.as_fd());
    }

    /// Asks the watcher to end.
    pub fn stop(&self) {
        self.lock().stop = true;
        sys::eventfd_signal(self.bell.as_fd());
    }
}

/// The watcher's loop: returns when stopped or when FS cannot be notified
/// any more (the DC ended).
pub fn run(ipc: Ipc, shared: Arc<WatchShared>) {
    // The generation at which FS was last notified: until FS publishes a
    // newer one, only the eventfd is watched.
    let mut notified_at: Option<u64> = None;
    loop {
        let (generation, fds, deadline) = {
            let st = shared.lock();
            if st.stop {
                break;
            }
            (st.generation, st.interest.fds.clone(), st.interest.deadline)
        };
        let waiting_ack = notified_at == Some(generation);
        let mut pfds = vec![libc::pollfd {
            fd: shared.bell.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        if !waiting_ack {
            pfds.extend(fds.iter().map(|(fd, ev)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: *ev,
                revents: 0,
            }));
        }
        let timeout = match (waiting_ack, deadline) {
            (false, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            _ => None,
        };
        match sys::poll(&mut pfds, timeout) {
            Ok(_) | Err(libc::EINTR) => {}
            Err(e) => {
                tracing::error!(errno = e, "FS watcher: poll failed");
                break;
            }
        }
        if pfds[0].revents != 0 {
            sys::eventfd_drain(shared.bell.as_fd());
        }
        if waiting_ack {
            continue;
        }
        let ready = pfds[1..].iter().any(|p| p.revents != 0);
        let due = deadline.is_some_and(|d| Instant::now() >= d);
        if ready || due {
            match ipc.notify(abi::FS) {
                Ok(()) => notified_at = Some(generation),
                Err(DvkError::DcNotRun | DvkError::NotBind) => break,
                Err(DvkError::DstDied) => break,
                Err(e) => {
                    tracing::warn!(%e, "FS watcher: notify failed");
                    break;
                }
            }
        }
    }
    tracing::debug!("FS watcher stopped");
}
