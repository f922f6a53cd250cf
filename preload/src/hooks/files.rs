//! File, directory-entry and descriptor calls: served by FS.

use crate::state::{self, enter, hooked, libc_ret, set_errno, with_shim};
use crate::sys;
use libc::*;
use libc::{c_char, c_int, c_uint, c_ulong, c_void, gid_t, mode_t, off_t, size_t, ssize_t, uid_t};

const CWD: c_int = AT_FDCWD;

sys!(read => hk_read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t, SYS_read, [fd, buf, n]);
sys!(write => hk_write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t, SYS_write, [fd, buf, n]);
sys!(pread => hk_pread(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t, SYS_pread64, [fd, buf, n, off]);
sys!(pread64 => hk_pread64(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t, SYS_pread64, [fd, buf, n, off]);
sys!(pwrite => hk_pwrite(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t, SYS_pwrite64, [fd, buf, n, off]);
sys!(pwrite64 => hk_pwrite64(fd: c_int, buf: *const c_void, n: size_t, off: off_t) -> ssize_t, SYS_pwrite64, [fd, buf, n, off]);
sys!(readv => hk_readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t, SYS_readv, [fd, iov, cnt]);
sys!(writev => hk_writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t, SYS_writev, [fd, iov, cnt]);
sys!(preadv => hk_preadv(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t, SYS_preadv, [fd, iov, cnt, off]);
sys!(pwritev => hk_pwritev(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t, SYS_pwritev, [fd, iov, cnt, off]);
sys!(preadv64 => hk_preadv64(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t, SYS_preadv, [fd, iov, cnt, off]);
sys!(pwritev64 => hk_pwritev64(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t) -> ssize_t, SYS_pwritev, [fd, iov, cnt, off]);
sys!(preadv2 => hk_preadv2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, f: c_int) -> ssize_t, SYS_preadv2, [fd, iov, cnt, off, 0, f]);
sys!(pwritev2 => hk_pwritev2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, f: c_int) -> ssize_t, SYS_pwritev2, [fd, iov, cnt, off, 0, f]);
sys!(preadv64v2 => hk_preadv64v2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, f: c_int) -> ssize_t, SYS_preadv2, [fd, iov, cnt, off, 0, f]);
sys!(pwritev64v2 => hk_pwritev64v2(fd: c_int, iov: *const iovec, cnt: c_int, off: off_t, f: c_int) -> ssize_t, SYS_pwritev2, [fd, iov, cnt, off, 0, f]);
sys!(lseek => hk_lseek(fd: c_int, off: off_t, whence: c_int) -> off_t, SYS_lseek, [fd, off, whence]);
sys!(lseek64 => hk_lseek64(fd: c_int, off: off_t, whence: c_int) -> off_t, SYS_lseek, [fd, off, whence]);
sys!(open => hk_open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int, SYS_openat, [CWD, path, flags, mode]);
sys!(open64 => hk_open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int, SYS_openat, [CWD, path, flags, mode]);
sys!(__open_2 => hk_open_2(path: *const c_char, flags: c_int) -> c_int, SYS_openat, [CWD, path, flags, 0]);
sys!(__open64_2 => hk_open64_2(path: *const c_char, flags: c_int) -> c_int, SYS_openat, [CWD, path, flags, 0]);
sys!(openat => hk_openat(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int, SYS_openat, [dirfd, path, flags, mode]);
sys!(openat64 => hk_openat64(dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int, SYS_openat, [dirfd, path, flags, mode]);
sys!(__openat_2 => hk_openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, SYS_openat, [dirfd, path, flags, 0]);
sys!(creat => hk_creat(path: *const c_char, mode: mode_t) -> c_int, SYS_creat, [path, mode]);
sys!(creat64 => hk_creat64(path: *const c_char, mode: mode_t) -> c_int, SYS_creat, [path, mode]);
sys!(close => hk_close(fd: c_int) -> c_int, SYS_close, [fd]);
sys!(stat => hk_stat(path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, 0]);
sys!(stat64 => hk_stat64(path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, 0]);
sys!(lstat => hk_lstat(path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, AT_SYMLINK_NOFOLLOW]);
sys!(lstat64 => hk_lstat64(path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, AT_SYMLINK_NOFOLLOW]);
sys!(fstat => hk_fstat(fd: c_int, sb: *mut stat) -> c_int, SYS_fstat, [fd, sb]);
sys!(fstat64 => hk_fstat64(fd: c_int, sb: *mut stat) -> c_int, SYS_fstat, [fd, sb]);
sys!(fstatat => hk_fstatat(dirfd: c_int, path: *const c_char, sb: *mut stat, flags: c_int) -> c_int, SYS_newfstatat, [dirfd, path, sb, flags]);
sys!(fstatat64 => hk_fstatat64(dirfd: c_int, path: *const c_char, sb: *mut stat, flags: c_int) -> c_int, SYS_newfstatat, [dirfd, path, sb, flags]);
sys!(sendfile => hk_sendfile(o: c_int, i: c_int, off: *mut off_t, n: size_t) -> ssize_t, SYS_sendfile, [o, i, off, n]);
sys!(sendfile64 => hk_sendfile64(o: c_int, i: c_int, off: *mut off_t, n: size_t) -> ssize_t, SYS_sendfile, [o, i, off, n]);
sys!(copy_file_range => hk_copy_file_range(a: c_int, ao: *mut off_t, b: c_int, bo: *mut off_t, n: size_t, f: c_uint) -> ssize_t, SYS_copy_file_range, [a, ao, b, bo, n, f]);
sys!(splice => hk_splice(a: c_int, ao: *mut off_t, b: c_int, bo: *mut off_t, n: size_t, f: c_uint) -> ssize_t, SYS_splice, [a, ao, b, bo, n, f]);
sys!(fstatfs => hk_fstatfs(fd: c_int, b: *mut statfs) -> c_int, SYS_fstatfs, [fd, b]);
sys!(fstatfs64 => hk_fstatfs64(fd: c_int, b: *mut statfs) -> c_int, SYS_fstatfs, [fd, b]);
sys!(statfs => hk_statfs(p: *const c_char, b: *mut statfs) -> c_int, SYS_statfs, [p, b]);
sys!(statfs64 => hk_statfs64(p: *const c_char, b: *mut statfs) -> c_int, SYS_statfs, [p, b]);
sys!(__xstat => hk_xstat(ver: c_int, path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, 0]);
sys!(__xstat64 => hk_xstat64(ver: c_int, path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, 0]);
sys!(__lxstat => hk_lxstat(ver: c_int, path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, AT_SYMLINK_NOFOLLOW]);
sys!(__lxstat64 => hk_lxstat64(ver: c_int, path: *const c_char, sb: *mut stat) -> c_int, SYS_newfstatat, [CWD, path, sb, AT_SYMLINK_NOFOLLOW]);
sys!(__fxstat => hk_fxstat(ver: c_int, fd: c_int, sb: *mut stat) -> c_int, SYS_fstat, [fd, sb]);
sys!(__fxstat64 => hk_fxstat64(ver: c_int, fd: c_int, sb: *mut stat) -> c_int, SYS_fstat, [fd, sb]);
sys!(__fxstatat => hk_fxstatat(ver: c_int, dirfd: c_int, path: *const c_char, sb: *mut stat, flags: c_int) -> c_int, SYS_newfstatat, [dirfd, path, sb, flags]);
sys!(__fxstatat64 => hk_fxstatat64(ver: c_int, dirfd: c_int, path: *const c_char, sb: *mut stat, flags: c_int) -> c_int, SYS_newfstatat, [dirfd, path, sb, flags]);
sys!(statx => hk_statx(dirfd: c_int, path: *const c_char, flags: c_int, mask: c_uint, buf: *mut c_void) -> c_int, SYS_statx, [dirfd, path, flags, mask, buf]);
sys!(access => hk_access(path: *const c_char, mode: c_int) -> c_int, SYS_access, [path, mode]);
sys!(faccessat => hk_faccessat(dirfd: c_int, path: *const c_char, mode: c_int, flags: c_int) -> c_int, SYS_faccessat2, [dirfd, path, mode, flags]);
sys!(euidaccess => hk_euidaccess(path: *const c_char, mode: c_int) -> c_int, SYS_faccessat2, [CWD, path, mode, AT_EACCESS]);
sys!(eaccess => hk_eaccess(path: *const c_char, mode: c_int) -> c_int, SYS_faccessat2, [CWD, path, mode, AT_EACCESS]);
sys!(truncate => hk_truncate(path: *const c_char, len: off_t) -> c_int, SYS_truncate, [path, len]);
sys!(truncate64 => hk_truncate64(path: *const c_char, len: off_t) -> c_int, SYS_truncate, [path, len]);
sys!(ftruncate => hk_ftruncate(fd: c_int, len: off_t) -> c_int, SYS_ftruncate, [fd, len]);
sys!(ftruncate64 => hk_ftruncate64(fd: c_int, len: off_t) -> c_int, SYS_ftruncate, [fd, len]);
sys!(fsync => hk_fsync(fd: c_int) -> c_int, SYS_fsync, [fd]);
sys!(fdatasync => hk_fdatasync(fd: c_int) -> c_int, SYS_fdatasync, [fd]);
sys!(chmod => hk_chmod(path: *const c_char, mode: mode_t) -> c_int, SYS_chmod, [path, mode]);
sys!(fchmod => hk_fchmod(fd: c_int, mode: mode_t) -> c_int, SYS_fchmod, [fd, mode]);
// libc's `fchmodat` takes flags, which only the `fchmodat2` call carries.
sys!(fchmodat => hk_fchmodat(dirfd: c_int, path: *const c_char, mode: mode_t, flags: c_int) -> c_int, SYS_fchmodat2, [dirfd, path, mode, flags]);
sys!(chown => hk_chown(path: *const c_char, u: uid_t, g: gid_t) -> c_int, SYS_chown, [path, u, g]);
sys!(lchown => hk_lchown(path: *const c_char, u: uid_t, g: gid_t) -> c_int, SYS_lchown, [path, u, g]);
sys!(fchown => hk_fchown(fd: c_int, u: uid_t, g: gid_t) -> c_int, SYS_fchown, [fd, u, g]);
sys!(fchownat => hk_fchownat(dirfd: c_int, path: *const c_char, u: uid_t, g: gid_t, flags: c_int) -> c_int, SYS_fchownat, [dirfd, path, u, g, flags]);
sys!(umask => hk_umask(mask: mode_t) -> mode_t, SYS_umask, [mask]);
sys!(utimensat => hk_utimensat(dirfd: c_int, path: *const c_char, times: *const timespec, flags: c_int) -> c_int, SYS_utimensat, [dirfd, path, times, flags]);
sys!(futimens => hk_futimens(fd: c_int, times: *const timespec) -> c_int, SYS_utimensat, [fd, 0, times, 0]);
sys!(mkdir => hk_mkdir(path: *const c_char, mode: mode_t) -> c_int, SYS_mkdir, [path, mode]);
sys!(mkdirat => hk_mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int, SYS_mkdirat, [dirfd, path, mode]);
sys!(rmdir => hk_rmdir(path: *const c_char) -> c_int, SYS_rmdir, [path]);
sys!(unlink => hk_unlink(path: *const c_char) -> c_int, SYS_unlink, [path]);
sys!(unlinkat => hk_unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int, SYS_unlinkat, [dirfd, path, flags]);
sys!(rename => hk_rename(a: *const c_char, b: *const c_char) -> c_int, SYS_rename, [a, b]);
sys!(renameat => hk_renameat(ad: c_int, a: *const c_char, bd: c_int, b: *const c_char) -> c_int, SYS_renameat, [ad, a, bd, b]);
sys!(renameat2 => hk_renameat2(ad: c_int, a: *const c_char, bd: c_int, b: *const c_char, flags: c_uint) -> c_int, SYS_renameat2, [ad, a, bd, b, flags]);
sys!(link => hk_link(a: *const c_char, b: *const c_char) -> c_int, SYS_link, [a, b]);
sys!(linkat => hk_linkat(ad: c_int, a: *const c_char, bd: c_int, b: *const c_char, flags: c_int) -> c_int, SYS_linkat, [ad, a, bd, b, flags]);
sys!(symlink => hk_symlink(t: *const c_char, p: *const c_char) -> c_int, SYS_symlink, [t, p]);
sys!(symlinkat => hk_symlinkat(t: *const c_char, d: c_int, p: *const c_char) -> c_int, SYS_symlinkat, [t, d, p]);
sys!(readlink => hk_readlink(p: *const c_char, buf: *mut c_char, n: size_t) -> ssize_t, SYS_readlink, [p, buf, n]);
sys!(readlinkat => hk_readlinkat(d: c_int, p: *const c_char, buf: *mut c_char, n: size_t) -> ssize_t, SYS_readlinkat, [d, p, buf, n]);
sys!(getdents64 => hk_getdents64(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t, SYS_getdents64, [fd, buf, n]);
sys!(dup => hk_dup(fd: c_int) -> c_int, SYS_dup, [fd]);
sys!(eventfd => hk_eventfd(init: c_uint, flags: c_int) -> c_int, SYS_eventfd2, [init, flags]);
sys!(memfd_create => hk_memfd_create(name: *const c_char, flags: c_uint) -> c_int, SYS_memfd_create, [name, flags]);
sys!(inotify_init => hk_inotify_init() -> c_int, SYS_inotify_init1, [0]);
sys!(inotify_init1 => hk_inotify_init1(flags: c_int) -> c_int, SYS_inotify_init1, [flags]);
sys!(inotify_add_watch => hk_inotify_add_watch(fd: c_int, path: *const c_char, mask: u32) -> c_int, SYS_inotify_add_watch, [fd, path, mask]);
sys!(inotify_rm_watch => hk_inotify_rm_watch(fd: c_int, wd: c_int) -> c_int, SYS_inotify_rm_watch, [fd, wd]);
sys!(timerfd_create => hk_timerfd_create(clock: c_int, flags: c_int) -> c_int, SYS_timerfd_create, [clock, flags]);
sys!(timerfd_settime => hk_timerfd_settime(fd: c_int, flags: c_int, new: *const itimerspec, old: *mut itimerspec) -> c_int, SYS_timerfd_settime, [fd, flags, new, old]);
sys!(timerfd_gettime => hk_timerfd_gettime(fd: c_int, cur: *mut itimerspec) -> c_int, SYS_timerfd_gettime, [fd, cur]);
sys!(dup2 => hk_dup2(a: c_int, b: c_int) -> c_int, SYS_dup2, [a, b]);
sys!(dup3 => hk_dup3(a: c_int, b: c_int, flags: c_int) -> c_int, SYS_dup3, [a, b, flags]);
sys!(fcntl => hk_fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int, SYS_fcntl, [fd, cmd, arg]);
sys!(fcntl64 => hk_fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int, SYS_fcntl, [fd, cmd, arg]);
sys!(pipe => hk_pipe(fds: *mut c_int) -> c_int, SYS_pipe, [fds]);
sys!(pipe2 => hk_pipe2(fds: *mut c_int, flags: c_int) -> c_int, SYS_pipe2, [fds, flags]);
sys!(poll => hk_poll(fds: *mut pollfd, n: nfds_t, t: c_int) -> c_int, SYS_poll, [fds, n, t]);
sys!(select => hk_select(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *mut timeval) -> c_int, SYS_select, [n, r, w, e, t]);
sys!(epoll_create => hk_epoll_create(n: c_int) -> c_int, SYS_epoll_create, [n]);
sys!(epoll_create1 => hk_epoll_create1(f: c_int) -> c_int, SYS_epoll_create1, [f]);
sys!(epoll_ctl => hk_epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int, SYS_epoll_ctl, [ep, op, fd, ev]);
sys!(epoll_wait => hk_epoll_wait(ep: c_int, ev: *mut epoll_event, n: c_int, t: c_int) -> c_int, SYS_epoll_wait, [ep, ev, n, t]);
sys!(close_range => hk_close_range(a: c_uint, b: c_uint, f: c_int) -> c_int, SYS_close_range, [a, b, f]);
sys!(mknod => hk_mknod(p: *const c_char, m: mode_t, d: dev_t) -> c_int, SYS_mknodat, [CWD, p, m, d]);
sys!(mknodat => hk_mknodat(dfd: c_int, p: *const c_char, m: mode_t, d: dev_t) -> c_int, SYS_mknodat, [dfd, p, m, d]);
sys!(mkfifo => hk_mkfifo(p: *const c_char, m: mode_t) -> c_int, SYS_mknodat, [CWD, p, S_IFIFO | m, 0]);
sys!(mkfifoat => hk_mkfifoat(dfd: c_int, p: *const c_char, m: mode_t) -> c_int, SYS_mknodat, [dfd, p, S_IFIFO | m, 0]);
sys!(fallocate => hk_fallocate(fd: c_int, m: c_int, o: off_t, l: off_t) -> c_int, SYS_fallocate, [fd, m, o, l]);
sys!(fallocate64 => hk_fallocate64(fd: c_int, m: c_int, o: off_t, l: off_t) -> c_int, SYS_fallocate, [fd, m, o, l]);
sys!(flock => hk_flock(fd: c_int, op: c_int) -> c_int, SYS_flock, [fd, op]);

redhook::hook! {
    unsafe fn closefrom(lo: c_int) => hk_closefrom {
        hooked(SYS_close_range, [lo as u64, u32::MAX as u64, 0, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's argument.
            unsafe { redhook::real!(closefrom)(lo) };
            0
        });
    }
}

redhook::hook! {
    unsafe fn posix_fallocate(fd: c_int, o: off_t, l: off_t) -> c_int => hk_posix_fallocate {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(posix_fallocate)(fd, o, l) };
        };
        // posix_fallocate returns the error number instead of setting errno.
        match state::syscall(SYS_fallocate, [fd as u64, 0, o as u64, l as u64, 0, 0]) {
            shim::Action::Ret(v) if v < 0 => (-v) as c_int,
            shim::Action::Ret(_) => 0,
            _ => ENOSYS,
        }
    }
}

redhook::hook! {
    unsafe fn posix_fallocate64(fd: c_int, o: off_t, l: off_t) -> c_int => hk_posix_fallocate64 {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(posix_fallocate64)(fd, o, l) };
        };
        // posix_fallocate returns the error number instead of setting errno.
        match state::syscall(SYS_fallocate, [fd as u64, 0, o as u64, l as u64, 0, 0]) {
            shim::Action::Ret(v) if v < 0 => (-v) as c_int,
            shim::Action::Ret(_) => 0,
            _ => ENOSYS,
        }
    }
}

sys!(ioctl => hk_ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int, SYS_ioctl, [fd, req, arg]);

redhook::hook! {
    unsafe fn pselect(n: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, t: *const timespec, m: *const sigset_t) -> c_int => hk_pselect {
        // pselect6 takes a pointer to {sigmask, size}.
        let mask = [m as u64, 8u64];
        crate::interrupts::with_mask(m, || {
            hooked(SYS_pselect6, [n as u64, r as u64, w as u64, e as u64, t as u64, mask.as_ptr() as u64], || {
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!(pselect)(n, r, w, e, t, m) as i64 }
            })
        }) as c_int
    }
}

redhook::hook! {
    unsafe fn ppoll(fds: *mut pollfd, n: nfds_t, t: *const timespec, m: *const sigset_t) -> c_int => hk_ppoll {
        crate::interrupts::with_mask(m, || {
            hooked(SYS_ppoll, [fds as u64, n, t as u64, m as u64, 8, 0], || {
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!(ppoll)(fds, n, t, m) as i64 }
            })
        }) as c_int
    }
}

redhook::hook! {
    unsafe fn epoll_pwait(ep: c_int, ev: *mut epoll_event, n: c_int, t: c_int, m: *const sigset_t) -> c_int => hk_epoll_pwait {
        crate::interrupts::with_mask(m, || {
            hooked(SYS_epoll_pwait, [ep as u64, ev as u64, n as u64, t as u64, m as u64, 8], || {
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!(epoll_pwait)(ep, ev, n, t, m) as i64 }
            })
        }) as c_int
    }
}

redhook::hook! {
    unsafe fn chdir(path: *const c_char) -> c_int => hk_chdir {
        let r = hooked(SYS_chdir, [path as u64, 0, 0, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's arguments.
            unsafe { redhook::real!(chdir)(path) as i64 }
        });
        if r == 0 {
            sync_host_cwd();
        }
        r as c_int
    }
}

redhook::hook! {
    unsafe fn fchdir(fd: c_int) -> c_int => hk_fchdir {
        let r = hooked(SYS_fchdir, [fd as u64, 0, 0, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's arguments.
            unsafe { redhook::real!(fchdir)(fd) as i64 }
        });
        if r == 0 {
            sync_host_cwd();
        }
        r as c_int
    }
}

/// Whether DC descriptor `fd` is a terminal (for choosing buffering).
pub fn tty(fd: c_int) -> bool {
    let mut t = [0u8; 64];
    matches!(
        state::syscall(
            SYS_ioctl,
            [fd as u64, TCGETS, t.as_mut_ptr() as u64, 0, 0, 0]
        ),
        shim::Action::Ret(0)
    )
}

/// Keeps the host working directory on the DC one, so that what the host
/// resolves for us (exec of a relative path, the dynamic loader) agrees.
fn sync_host_cwd() {
    let Some(_g) = enter() else {
        return;
    };
    let mut buf = vec![0u8; 4097];
    let n = state::syscall(
        SYS_getcwd,
        [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0],
    );
    if let shim::Action::Ret(n) = n {
        if n > 0 {
            // SAFETY: buf holds a NUL-terminated path written by FS.
            unsafe { crate::gate::syscall6(SYS_chdir, [buf.as_ptr() as u64, 0, 0, 0, 0, 0]) };
        }
    }
}

redhook::hook! {
    unsafe fn getcwd(buf: *mut c_char, size: size_t) -> *mut c_char => hk_getcwd {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(getcwd)(buf, size) };
        };
        // glibc extension: NULL buffer means allocate (size 0: as needed).
        let (target, cap, owned) = if buf.is_null() {
            let cap = if size == 0 { 4097 } else { size };
            // SAFETY: malloc of a positive size; freed by the caller (or below).
            let p = unsafe { libc::malloc(cap) as *mut c_char };
            if p.is_null() {
                set_errno(ENOMEM);
                return std::ptr::null_mut();
            }
            (p, cap, true)
        } else {
            (buf, size, false)
        };
        let r = libc_ret(match state::syscall(SYS_getcwd, [target as u64, cap as u64, 0, 0, 0, 0]) {
            shim::Action::Ret(v) => v,
            _ => -(ENOSYS as i64),
        });
        if r < 0 {
            if owned {
                // SAFETY: freeing what we allocated above.
                unsafe { libc::free(target as *mut c_void) };
            }
            return std::ptr::null_mut();
        }
        target
    }
}

redhook::hook! {
    unsafe fn isatty(fd: c_int) -> c_int => hk_isatty {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(isatty)(fd) };
        };
        let mut t = [0u8; 64];
        match state::syscall(SYS_ioctl, [fd as u64, TCGETS, t.as_mut_ptr() as u64, 0, 0, 0]) {
            shim::Action::Ret(0) => 1,
            shim::Action::Ret(e) if e < 0 => {
                set_errno((-e) as i32);
                0
            }
            _ => {
                set_errno(ENOTTY);
                0
            }
        }
    }
}

redhook::hook! {
    unsafe fn tcgetattr(fd: c_int, t: *mut termios) -> c_int => hk_tcgetattr {
        hooked(SYS_ioctl, [fd as u64, TCGETS, t as u64, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's arguments.
            unsafe { redhook::real!(tcgetattr)(fd, t) as i64 }
        }) as c_int
    }
}

redhook::hook! {
    unsafe fn tcsetattr(fd: c_int, act: c_int, t: *const termios) -> c_int => hk_tcsetattr {
        let req = match act {
            TCSANOW => TCSETS,
            TCSADRAIN => TCSETSW,
            TCSAFLUSH => TCSETSF,
            _ => {
                set_errno(EINVAL);
                return -1;
            }
        };
        hooked(SYS_ioctl, [fd as u64, req, t as u64, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's arguments.
            unsafe { redhook::real!(tcsetattr)(fd, act, t) as i64 }
        }) as c_int
    }
}

redhook::hook! {
    unsafe fn tcgetpgrp(fd: c_int) -> pid_t => hk_tcgetpgrp {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(tcgetpgrp)(fd) };
        };
        let mut g: pid_t = 0;
        let r = state::syscall(SYS_ioctl, [fd as u64, TIOCGPGRP, &mut g as *mut pid_t as u64, 0, 0, 0]);
        match r {
            shim::Action::Ret(0) => g,
            shim::Action::Ret(e) => libc_ret(e) as pid_t,
            _ => {
                set_errno(ENOTTY);
                -1
            }
        }
    }
}

redhook::hook! {
    unsafe fn tcsetpgrp(fd: c_int, g: pid_t) -> c_int => hk_tcsetpgrp {
        hooked(SYS_ioctl, [fd as u64, TIOCSPGRP, &g as *const pid_t as u64, 0, 0, 0], || {
            // SAFETY: the real libc function with the caller's arguments.
            unsafe { redhook::real!(tcsetpgrp)(fd, g) as i64 }
        }) as c_int
    }
}

/// The host `mmap`, through the gate when it is mapped: the seccomp net
/// catches an `mmap` of a descriptor from anywhere else (glibc's internal
/// mappings of DC descriptors), and the preload's own come with host
/// descriptors.
fn host_mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    if !shim::gatepage::mapped() {
        // SAFETY: the real libc function with the caller's arguments.
        return unsafe { redhook::real!(mmap)(addr, len, prot, flags, fd, off) };
    }
    // SAFETY: mmap's arguments as the caller gave them; the kernel checks
    // them.
    let r = unsafe {
        crate::gate::syscall6(
            SYS_mmap,
            [
                addr as u64,
                len as u64,
                prot as u64,
                flags as u64,
                fd as i64 as u64,
                off as u64,
            ],
        )
    };
    if (-4095..0).contains(&r) {
        set_errno(-r as i32);
        return MAP_FAILED;
    }
    r as *mut c_void
}

redhook::hook! {
    unsafe fn mmap(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void => hk_mmap {
        if flags & MAP_ANONYMOUS != 0 || fd < 0 {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(mmap)(addr, len, prot, flags, fd, off) };
        }
        let Some(_g) = enter() else {
            // The preload's own mapping of a host descriptor.
            return host_mmap(addr, len, prot, flags, fd, off);
        };
        // A DC descriptor: map the host file it refers to.
        let path = match with_shim(|s| s.host_path(fd)) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                set_errno(if e == EBADF { EBADF } else { ENODEV });
                return MAP_FAILED;
            }
            None => {
                set_errno(ENOSYS);
                return MAP_FAILED;
            }
        };
        let Ok(cpath) = std::ffi::CString::new(path) else {
            set_errno(ENODEV);
            return MAP_FAILED;
        };
        let mode = if prot & PROT_WRITE != 0 && flags & MAP_SHARED != 0 { O_RDWR } else { O_RDONLY };
        // SAFETY: openat and close through the gate with a NUL-terminated
        // path and our own descriptor.
        let hfd = unsafe { crate::gate::syscall6(SYS_openat, [AT_FDCWD as u64, cpath.as_ptr() as u64, (mode | O_CLOEXEC) as u64, 0, 0, 0]) };
        if hfd < 0 {
            set_errno((-hfd) as i32);
            return MAP_FAILED;
        }
        let p = host_mmap(addr, len, prot, flags, hfd as c_int, off);
        let e = std::io::Error::last_os_error();
        // SAFETY: closing the descriptor opened above.
        unsafe { crate::gate::syscall6(SYS_close, [hfd as u64, 0, 0, 0, 0, 0]) };
        if p == MAP_FAILED {
            set_errno(e.raw_os_error().unwrap_or(ENODEV));
        }
        p
    }
}

redhook::hook! {
    unsafe fn mmap64(addr: *mut c_void, len: size_t, prot: c_int, flags: c_int, fd: c_int, off: off_t) -> *mut c_void => hk_mmap64 {
        // SAFETY: our own mmap hook with the caller's arguments.
        unsafe { hk_mmap(addr, len, prot, flags, fd, off) }
    }
}
