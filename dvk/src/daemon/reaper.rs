//! Watches the pidfds of bound tasks and unbinds the ones that end.

use super::Shared;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, BorrowedFd, RawFd};

/// Epoll token of the wake-up eventfd (binding tokens start at 1).
const WAKE: u64 = u64::MAX;

pub(crate) struct Reaper {
    epoll: Epoll,
    wake: EventFd,
}

impl Reaper {
    pub fn new() -> anyhow::Result<Reaper> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        Ok(Reaper { epoll, wake })
    }

    /// Wakes the reaper thread at once (the daemon is stopping).
    pub fn wake(&self) {
        let _ = self.wake.write(1);
    }

    /// Starts watching `fd` (a pidfd owned by a binding, which must stay
    /// open while registered; closing it removes it from the set).
    pub fn watch(&self, fd: RawFd, token: u64) -> nix::Result<()> {
        // SAFETY: the fd belongs to a binding that is alive while we hold
        // the state lock (the caller does); epoll keeps no borrow after
        // the call returns.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        self.epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
    }
}

pub(crate) fn run(shared: &Shared) {
    let mut events = [EpollEvent::empty(); 32];
    while !shared.stopping() {
        let n = match shared
            .reaper
            .epoll
            .wait(&mut events, EpollTimeout::from(200u16))
        {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => {
                tracing::error!(%e, "epoll_wait failed");
                std::thread::sleep(std::time::Duration::from_millis(200));
                0
            }
        };
        shared.with_state(|st| {
            for ev in &events[..n] {
                if ev.data() == WAKE {
                    let _ = shared.reaper.wake.read();
                    continue;
                }
                st.task_ended(ev.data());
            }
            st.flush_deferred();
        });
    }
}
