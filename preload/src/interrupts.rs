//! When a signal ends a call the servers are serving.
//!
//! A signal from the host (a timer's `SIGALRM`, a `kill` from outside the
//! DC) runs its handler while the thread waits in `sendrec` for FS or PM.
//! Natively the blocking call would then fail with `EINTR` unless the
//! handler was installed with `SA_RESTART`. The DVK cannot tell which
//! signal ran, so the call is ended (FS or PM answers `EINTR`, or the bytes
//! moved) when the process has a handler without `SA_RESTART`; a process
//! whose handlers all restart (shells) keeps waiting, as natively.

/// The policy given to [`dvk::set_signal_policy`].
pub fn policy() -> bool {
    (1..=64).any(|sig| {
        // SAFETY: a zeroed sigaction is a valid value to receive into.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying the action of `sig` (no new action).
        let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
        r == 0
            && old.sa_sigaction != libc::SIG_DFL
            && old.sa_sigaction != libc::SIG_IGN
            && old.sa_flags & libc::SA_RESTART == 0
    })
}
