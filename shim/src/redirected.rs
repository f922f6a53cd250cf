//! The system calls dvs redirects: the ones [`crate::Shim::syscall`]
//! serves (or reports as unsupported), for the interception layers that
//! must catch them when they do not come through libc (the tracer's
//! seccomp filter for static binaries, and the preload's future seccomp
//! net).

#![allow(non_upper_case_globals)]
use libc::*;

/// Redirected calls the shim serves. Keep in step with the dispatch in
/// `files.rs`, `procs.rs` (and the other families): a call missing here is
/// not caught when it bypasses libc.
const SERVED: &[i64] = &[
    // Files and descriptors (FS).
    SYS_read,
    SYS_write,
    SYS_pread64,
    SYS_pwrite64,
    SYS_readv,
    SYS_writev,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_lseek,
    SYS_open,
    SYS_creat,
    SYS_openat,
    SYS_close,
    SYS_close_range,
    SYS_eventfd,
    SYS_eventfd2,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    SYS_memfd_create,
    SYS_inotify_init,
    SYS_inotify_init1,
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    SYS_stat,
    SYS_lstat,
    SYS_fstat,
    SYS_newfstatat,
    SYS_sendfile,
    SYS_statfs,
    SYS_fstatfs,
    SYS_statx,
    SYS_access,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_truncate,
    SYS_ftruncate,
    SYS_fsync,
    SYS_fdatasync,
    SYS_chmod,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_chown,
    SYS_fchown,
    SYS_lchown,
    SYS_fchownat,
    SYS_umask,
    SYS_utimensat,
    SYS_mkdir,
    SYS_mkdirat,
    SYS_rmdir,
    SYS_unlink,
    SYS_unlinkat,
    SYS_rename,
    SYS_renameat,
    SYS_renameat2,
    SYS_link,
    SYS_linkat,
    SYS_symlink,
    SYS_symlinkat,
    SYS_readlink,
    SYS_readlinkat,
    SYS_getdents64,
    SYS_chdir,
    SYS_fchdir,
    SYS_getcwd,
    SYS_dup,
    SYS_dup2,
    SYS_dup3,
    SYS_fcntl,
    SYS_pipe,
    SYS_pipe2,
    SYS_poll,
    SYS_ppoll,
    SYS_select,
    SYS_pselect6,
    SYS_ioctl,
    SYS_epoll_create,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_wait,
    SYS_epoll_pwait,
    SYS_mknod,
    SYS_mknodat,
    SYS_fallocate,
    SYS_flock,
    SYS_copy_file_range,
    SYS_splice,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_fgetxattr,
    SYS_setxattr,
    SYS_lsetxattr,
    SYS_fsetxattr,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_flistxattr,
    SYS_removexattr,
    SYS_lremovexattr,
    SYS_fremovexattr,
    // Sockets (FS).
    SYS_socket,
    SYS_socketpair,
    SYS_bind,
    SYS_listen,
    SYS_accept,
    SYS_accept4,
    SYS_connect,
    SYS_getsockname,
    SYS_getpeername,
    SYS_shutdown,
    SYS_getsockopt,
    SYS_setsockopt,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_sendmmsg,
    SYS_recvmmsg,
    // Processes (PM).
    SYS_getpid,
    SYS_getppid,
    SYS_fork,
    SYS_vfork,
    SYS_clone,
    SYS_execve,
    SYS_execveat,
    SYS_wait4,
    SYS_waitid,
    SYS_kill,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_setpgid,
    SYS_getpgid,
    SYS_getpgrp,
    SYS_setsid,
    SYS_getsid,
];

/// Highest system call number looked at for the unsupported ones.
const MAX_NR: i64 = 512;

/// Every redirected system call: the served ones and the redirected ones
/// dvs does not implement yet (`ENOSYS`), sorted, without duplicates.
pub fn redirected() -> Vec<i64> {
    let mut v: Vec<i64> = SERVED
        .iter()
        .copied()
        .chain((0..MAX_NR).filter(|&nr| crate::sysnames::redirected_unsupported(nr)))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// [`is_redirected`] for every number below [`MAX_NR`], worked out at
/// compile time: a lookup costs one load (glibc's `syscall` function asks
/// it for every call, `futex` included).
const TABLE: [bool; MAX_NR as usize] = {
    let mut t = [false; MAX_NR as usize];
    let mut i = 0;
    while i < SERVED.len() {
        t[SERVED[i] as usize] = true;
        i += 1;
    }
    let mut i = 0;
    while i < crate::sysnames::UNSUPPORTED.len() {
        t[crate::sysnames::UNSUPPORTED[i].0 as usize] = true;
        i += 1;
    }
    t
};

/// Whether `nr` is redirected.
pub fn is_redirected(nr: i64) -> bool {
    usize::try_from(nr).is_ok_and(|n| n < TABLE.len() && TABLE[n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_the_families() {
        let r = redirected();
        for nr in [
            SYS_openat, SYS_read, SYS_getpid, SYS_wait4, SYS_kill, SYS_socket,
        ] {
            assert!(r.contains(&nr), "{nr} missing");
        }
        assert!(!r.contains(&SYS_mmap));
        assert!(!r.contains(&SYS_futex));
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        for nr in -1..MAX_NR + 2 {
            assert_eq!(is_redirected(nr), r.contains(&nr), "call {nr}");
        }
    }
}
