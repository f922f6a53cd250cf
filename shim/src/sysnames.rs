//! Names of system calls, and which redirected ones dvs does not serve yet.

#![allow(non_upper_case_globals)]
use libc::*;

/// System calls that belong to a redirected family (they name DC
/// descriptors, paths or processes) but that dvs does not implement yet.
/// They fail with `ENOSYS` and a one-line report instead of reaching the
/// host.
pub(crate) const UNSUPPORTED: &[(i64, &str)] = &[
    (SYS_tee, "tee"),
    (SYS_vmsplice, "vmsplice"),
    (SYS_fadvise64, "fadvise64"),
    (SYS_readahead, "readahead"),
    (SYS_sync_file_range, "sync_file_range"),
    (SYS_signalfd, "signalfd"),
    (SYS_signalfd4, "signalfd4"),
    (SYS_clone3, "clone3"),
    (SYS_chroot, "chroot"),
    (SYS_pidfd_getfd, "pidfd_getfd"),
    // A debugger's or strace's: it names processes by host pid and waits
    // for their stops with wait4, which PM serves without ptrace stops
    // (it hung).
    (SYS_ptrace, "ptrace"),
];

/// Served calls that are unsupported for some arguments (sockets of
/// families other than `AF_UNIX`, pidfds of processes on other nodes,
/// signals with a `siginfo`): named in the one-line report.
const PARTIAL: &[(i64, &str)] = &[
    (SYS_socket, "socket"),
    (SYS_socketpair, "socketpair"),
    (SYS_pidfd_open, "pidfd_open"),
    (SYS_pidfd_send_signal, "pidfd_send_signal"),
];

/// Whether `nr` is redirected but not served.
pub fn redirected_unsupported(nr: i64) -> bool {
    UNSUPPORTED.iter().any(|&(n, _)| n == nr)
}

/// The name of a system call (best effort, for messages).
pub fn name(nr: i64) -> String {
    UNSUPPORTED
        .iter()
        .chain(PARTIAL.iter())
        .find(|&&(n, _)| n == nr)
        .map(|&(_, s)| s.to_string())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}
