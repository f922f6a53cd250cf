//! The host system calls FS makes, as small safe wrappers.
//!
//! Every wrapper returns the positive `errno` on failure, which is what
//! the handlers reply with. This is the only module of FS with `unsafe`
//! code besides the eventfd and signal-mask set-up of the threads.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Size of the kernel's `struct stat` (x86-64).
pub const STAT_SIZE: usize = 144;
/// Size of the kernel's `struct statx`.
pub const STATX_SIZE: usize = 256;

/// The result of a host call: the value or the positive `errno`.
pub type SysResult<T> = Result<T, i32>;

/// The `errno` of the last failed call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

pub(super) fn check(r: libc::c_int) -> SysResult<libc::c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

fn check_long(r: libc::c_long) -> SysResult<libc::c_long> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

pub(super) fn check_size(r: isize) -> SysResult<usize> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r as usize)
    }
}

pub(super) fn owned(r: libc::c_int) -> SysResult<OwnedFd> {
    let fd = check(r)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `O_PATH` descriptor of FS's own link of its descriptor `fd` (its
/// `/proc/self/fd` entry, not followed).
pub fn own_fd_link(fd: BorrowedFd<'_>) -> SysResult<OwnedFd> {
    let p = cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: a NUL-terminated path that lives across the call.
    owned(unsafe {
        libc::open(
            p.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })
}

/// A path as a C string (`EINVAL` for an interior NUL).
pub fn cstr(p: &[u8]) -> SysResult<CString> {
    CString::new(p).map_err(|_| libc::EINVAL)
}

/// The empty C string, for `AT_EMPTY_PATH` calls.
pub fn empty() -> &'static CStr {
    c""
}

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Tries of an `openat2` that keeps failing with `EAGAIN`.
const OPENAT2_TRIES: usize = 64;

/// `openat2(2)` with `RESOLVE_*` flags. With `RESOLVE_BENEATH` or
/// `RESOLVE_IN_ROOT` the kernel fails with `EAGAIN` when a rename or mount
/// anywhere on the host raced with the lookup; the lookup is then retried
/// (a program opening a file must not see that).
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> SysResult<OwnedFd> {
    let how = OpenHow {
        flags,
        mode,
        resolve,
    };
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated, `how` is a valid `open_how`
        // whose size we pass; the kernel only reads both.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check_long(r) {
            Err(libc::EAGAIN) if tries < OPENAT2_TRIES => tries += 1,
            r => return owned(r? as libc::c_int),
        }
    }
}

/// `openat(2)`.
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> SysResult<OwnedFd> {
    // SAFETY: plain system call on a NUL-terminated path.
    owned(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags, mode) })
}

/// `open(2)` of an absolute host path.
pub fn open(path: &CStr, flags: i32) -> SysResult<OwnedFd> {
    // SAFETY: plain system call on a NUL-terminated path.
    owned(unsafe { libc::open(path.as_ptr(), flags) })
}

/// `newfstatat(2)` into the raw kernel `struct stat`.
pub fn fstatat_raw(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> SysResult<[u8; STAT_SIZE]> {
    let mut buf = [0u8; STAT_SIZE];
    // SAFETY: `buf` has room for the kernel's `struct stat` (144 bytes on
    // x86-64); the kernel writes at most that much.
    let r = unsafe {
        libc::syscall(
            libc::SYS_newfstatat,
            dir.as_raw_fd(),
            path.as_ptr(),
            buf.as_mut_ptr(),
            flags,
        )
    };
    check_long(r)?;
    Ok(buf)
}

/// Size of the kernel's `struct statfs` on x86-64.
pub const STATFS_SIZE: usize = 120;

/// `fstatfs(2)` into the raw kernel `struct statfs`.
pub fn fstatfs_raw(fd: BorrowedFd<'_>) -> SysResult<[u8; STATFS_SIZE]> {
    let mut buf = [0u8; STATFS_SIZE];
    // SAFETY: `buf` has room for the kernel's `struct statfs` (120 bytes
    // on x86-64); the kernel writes at most that much.
    let r = unsafe { libc::syscall(libc::SYS_fstatfs, fd.as_raw_fd(), buf.as_mut_ptr()) };
    check_long(r)?;
    Ok(buf)
}

/// The `struct statfs` of an FS pipe or socket: pipefs's magic number, a
/// 4 KiB block size, name length 255, and nothing else.
pub fn anon_statfs() -> [u8; STATFS_SIZE] {
    const PIPEFS_MAGIC: u64 = 0x5049_5045;
    let mut st = [0u8; STATFS_SIZE];
    st[0..8].copy_from_slice(&PIPEFS_MAGIC.to_ne_bytes());
    st[8..16].copy_from_slice(&4096u64.to_ne_bytes());
    st[64..72].copy_from_slice(&255u64.to_ne_bytes());
    st[72..80].copy_from_slice(&4096u64.to_ne_bytes());
    st
}

/// `statx(2)` into the raw kernel `struct statx`.
pub fn statx_raw(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mask: u32,
) -> SysResult<[u8; STATX_SIZE]> {
    let mut buf = [0u8; STATX_SIZE];
    // SAFETY: `buf` has room for the kernel's `struct statx` (256 bytes).
    let r = unsafe {
        libc::syscall(
            libc::SYS_statx,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags,
            mask,
            buf.as_mut_ptr(),
        )
    };
    check_long(r)?;
    Ok(buf)
}

/// Whether directory `fd` is the root of a procfs (`/proc`).
pub fn is_proc_root(fd: BorrowedFd<'_>) -> bool {
    let Ok(st) = fstatat_raw(fd, empty(), libc::AT_EMPTY_PATH) else {
        return false;
    };
    let mut ino = [0u8; 8];
    ino.copy_from_slice(&st[8..16]);
    u64::from_ne_bytes(ino) == 1
        && fstatfs_raw(fd).is_ok_and(|b| {
            let mut t = [0u8; 8];
            t.copy_from_slice(&b[..8]);
            i64::from_ne_bytes(t) == libc::PROC_SUPER_MAGIC
        })
}

/// `st_mode` of a descriptor.
pub fn fmode(fd: BorrowedFd<'_>) -> SysResult<u32> {
    Ok(stat_mode(&fstatat_raw(fd, empty(), libc::AT_EMPTY_PATH)?))
}

/// `st_mode` of a raw `struct stat`.
pub fn stat_mode(st: &[u8; STAT_SIZE]) -> u32 {
    u32::from_ne_bytes([st[24], st[25], st[26], st[27]])
}

/// `st_nlink` of a raw `struct stat`.
pub fn stat_nlink(st: &[u8; STAT_SIZE]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&st[16..24]);
    u64::from_ne_bytes(b)
}

/// `read(2)`.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// `pread(2)`.
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], off: i64) -> SysResult<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check_size(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) })
}

/// `write(2)`.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> SysResult<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    check_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}

/// `pwrite(2)`.
pub fn pwrite(fd: BorrowedFd<'_>, buf: &[u8], off: i64) -> SysResult<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    check_size(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), off) })
}

/// `lseek(2)`.
pub fn lseek(fd: BorrowedFd<'_>, off: i64, whence: i32) -> SysResult<i64> {
    // SAFETY: plain system call.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), off, whence) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

/// `getdents64(2)`: raw `linux_dirent64` records.
pub fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    Ok(check_long(r)? as usize)
}

/// `ppoll(2)` with an optional timeout (`None` waits forever).
pub fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> SysResult<usize> {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds the kernel
    // updates in place; `tsp` is null or points to a live timespec.
    let r = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    check(r).map(|n| n as usize)
}

/// Readiness of one descriptor right now (`revents`, 0 if not ready).
pub fn poll_now(fd: BorrowedFd<'_>, events: i16) -> i16 {
    let mut p = [libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }];
    match poll(&mut p, Some(Duration::ZERO)) {
        Ok(_) => p[0].revents,
        Err(_) => 0,
    }
}

/// `ioctl(2)` whose argument is a buffer of `buf.len()` bytes the kernel
/// reads or writes (the caller sizes it for the request).
pub fn ioctl_buf(fd: BorrowedFd<'_>, req: libc::Ioctl, buf: &mut [u8]) -> SysResult<i32> {
    // SAFETY: the callers only pass requests whose argument is a structure
    // of at most `buf.len()` bytes, so the kernel stays inside `buf`.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), req, buf.as_mut_ptr()) })
}

/// `ioctl(TCFLSH, TCIFLUSH)`: discards a terminal's pending input.
pub fn tty_flush_input(fd: BorrowedFd<'_>) -> SysResult<()> {
    // SAFETY: TCFLSH takes an integer argument and touches no memory.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TCFLSH, libc::TCIFLUSH) }).map(drop)
}

/// `fcntl(2)` with an integer argument.
pub fn fcntl_int(fd: BorrowedFd<'_>, cmd: i32, arg: i32) -> SysResult<i32> {
    // SAFETY: commands with an integer argument do not touch memory.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, arg) })
}

/// `fcntl(2)` with a `struct flock` argument.
pub fn fcntl_lock(fd: BorrowedFd<'_>, cmd: i32, fl: &mut libc::flock) -> SysResult<i32> {
    // SAFETY: `fl` is a valid `struct flock` the kernel reads and may update.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, fl as *mut libc::flock) })
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: plain system call on a NUL-terminated name.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `mknodat(2)`.
pub fn mknodat(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> SysResult<()> {
    // SAFETY: plain system call on a NUL-terminated name.
    check(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) }).map(drop)
}

/// `fallocate(2)`.
pub fn fallocate(fd: BorrowedFd<'_>, mode: i32, off: i64, len: i64) -> SysResult<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::fallocate(fd.as_raw_fd(), mode, off, len) }).map(drop)
}

/// `flock(2)` (never blocking: FS must not wait on the host).
pub fn flock(fd: BorrowedFd<'_>, op: i32) -> SysResult<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::flock(fd.as_raw_fd(), op | libc::LOCK_NB) }).map(drop)
}

/// `unlinkat(2)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> SysResult<()> {
    // SAFETY: plain system call on a NUL-terminated name.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `renameat2(2)`.
pub fn renameat2(
    od: BorrowedFd<'_>,
    on: &CStr,
    nd: BorrowedFd<'_>,
    nn: &CStr,
    flags: u32,
) -> SysResult<()> {
    // SAFETY: plain system call on NUL-terminated names.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            od.as_raw_fd(),
            on.as_ptr(),
            nd.as_raw_fd(),
            nn.as_ptr(),
            flags,
        )
    };
    check_long(r).map(drop)
}

/// `linkat(2)`; `od` is `None` for `AT_FDCWD` (used with `/proc/self/fd`).
pub fn linkat(
    od: Option<BorrowedFd<'_>>,
    on: &CStr,
    nd: BorrowedFd<'_>,
    nn: &CStr,
    flags: i32,
) -> SysResult<()> {
    let od = od.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    // SAFETY: plain system call on NUL-terminated names.
    check(unsafe { libc::linkat(od, on.as_ptr(), nd.as_raw_fd(), nn.as_ptr(), flags) }).map(drop)
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> SysResult<()> {
    // SAFETY: plain system call on NUL-terminated strings.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `readlinkat(2)` into `buf`; returns the length placed.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    check_size(unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// `faccessat2(2)`.
pub fn faccessat2(dir: BorrowedFd<'_>, path: &CStr, mode: i32, flags: i32) -> SysResult<()> {
    // SAFETY: plain system call on a NUL-terminated path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            mode,
            flags,
        )
    };
    check_long(r).map(drop)
}

/// `fchmodat2(2)` (Linux 6.6), falling back to `chmod` through
/// `/proc/self/fd` when the kernel lacks it.
pub fn fchmod_fd(fd: BorrowedFd<'_>, mode: u32, nofollow: bool) -> SysResult<()> {
    let flags = libc::AT_EMPTY_PATH
        | if nofollow {
            libc::AT_SYMLINK_NOFOLLOW
        } else {
            0
        };
    // SAFETY: plain system call on the empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            empty().as_ptr(),
            mode,
            flags,
        )
    };
    match check_long(r) {
        Ok(_) => Ok(()),
        Err(libc::ENOSYS) => {
            if nofollow && (fmode(fd)? & libc::S_IFMT) == libc::S_IFLNK {
                return Err(libc::EOPNOTSUPP);
            }
            let p = proc_fd_path(fd);
            // SAFETY: plain system call on a NUL-terminated path.
            check(unsafe { libc::fchmodat(libc::AT_FDCWD, p.as_ptr(), mode, 0) }).map(drop)
        }
        Err(e) => Err(e),
    }
}

/// `fchownat(2)`.
pub fn fchownat(dir: BorrowedFd<'_>, path: &CStr, uid: u32, gid: u32, flags: i32) -> SysResult<()> {
    // SAFETY: plain system call on a NUL-terminated path.
    check(unsafe { libc::fchownat(dir.as_raw_fd(), path.as_ptr(), uid, gid, flags) }).map(drop)
}

/// `utimensat(2)`.
pub fn utimensat(
    dir: BorrowedFd<'_>,
    path: &CStr,
    times: Option<&[libc::timespec; 2]>,
    flags: i32,
) -> SysResult<()> {
    let tp = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: `tp` is null or points to two live timespecs.
    check(unsafe { libc::utimensat(dir.as_raw_fd(), path.as_ptr(), tp, flags) }).map(drop)
}

/// `truncate(2)` of the file behind an `O_PATH` descriptor.
pub fn truncate_fd_path(fd: BorrowedFd<'_>, len: i64) -> SysResult<()> {
    let p = proc_fd_path(fd);
    // SAFETY: plain system call on a NUL-terminated path.
    check(unsafe { libc::truncate(p.as_ptr(), len) }).map(drop)
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: BorrowedFd<'_>, len: i64) -> SysResult<()> {
    // SAFETY: plain system call.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// `fsync(2)` or `fdatasync(2)`.
pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> SysResult<()> {
    // SAFETY: plain system calls.
    let r = unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    };
    check(r).map(drop)
}

/// What an extended-attribute call acts on.
#[derive(Clone, Copy)]
pub enum XattrOn<'a> {
    /// An open descriptor (`f*xattr`).
    Fd(BorrowedFd<'a>),
    /// A path, a final symlink followed (`*xattr`).
    Path(&'a CStr),
}

/// The pointer and size of an optional output buffer (null and 0 asks
/// for the size only).
fn out_buf(buf: &mut [u8]) -> (*mut libc::c_void, usize) {
    if buf.is_empty() {
        (std::ptr::null_mut(), 0)
    } else {
        (buf.as_mut_ptr().cast(), buf.len())
    }
}

/// `getxattr(2)`/`fgetxattr(2)`: the value's size (written to `buf`
/// unless `buf` is empty).
pub fn getxattr(on: XattrOn<'_>, name: &CStr, buf: &mut [u8]) -> SysResult<usize> {
    let (p, n) = out_buf(buf);
    // SAFETY: `name` and a path are NUL-terminated; the kernel writes at
    // most `n` bytes at `p` (null when `n` is 0).
    check_size(unsafe {
        match on {
            XattrOn::Fd(fd) => libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), p, n),
            XattrOn::Path(path) => libc::getxattr(path.as_ptr(), name.as_ptr(), p, n),
        }
    })
}

/// `setxattr(2)`/`fsetxattr(2)`.
pub fn setxattr(on: XattrOn<'_>, name: &CStr, value: &[u8], flags: i32) -> SysResult<()> {
    let (p, n) = (value.as_ptr().cast(), value.len());
    // SAFETY: `name` and a path are NUL-terminated; the kernel reads `n`
    // bytes at `p`.
    check(unsafe {
        match on {
            XattrOn::Fd(fd) => libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), p, n, flags),
            XattrOn::Path(path) => libc::setxattr(path.as_ptr(), name.as_ptr(), p, n, flags),
        }
    })
    .map(drop)
}

/// `listxattr(2)`/`flistxattr(2)`: the size of the name list (written to
/// `buf` unless `buf` is empty).
pub fn listxattr(on: XattrOn<'_>, buf: &mut [u8]) -> SysResult<usize> {
    let (p, n) = out_buf(buf);
    // SAFETY: a path is NUL-terminated; the kernel writes at most `n`
    // bytes at `p` (null when `n` is 0).
    check_size(unsafe {
        match on {
            XattrOn::Fd(fd) => libc::flistxattr(fd.as_raw_fd(), p.cast(), n),
            XattrOn::Path(path) => libc::listxattr(path.as_ptr(), p.cast(), n),
        }
    })
}

/// `removexattr(2)`/`fremovexattr(2)`.
pub fn removexattr(on: XattrOn<'_>, name: &CStr) -> SysResult<()> {
    // SAFETY: `name` and a path are NUL-terminated.
    check(unsafe {
        match on {
            XattrOn::Fd(fd) => libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()),
            XattrOn::Path(path) => libc::removexattr(path.as_ptr(), name.as_ptr()),
        }
    })
    .map(drop)
}

/// `/proc/self/fd/N` of a descriptor of this process.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    // A decimal number never contains a NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// The host path a descriptor refers to (`readlink /proc/self/fd/N`).
pub fn fd_host_path(fd: BorrowedFd<'_>) -> SysResult<Vec<u8>> {
    let p = proc_fd_path(fd);
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 64];
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let n = check_size(unsafe { libc::readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    buf.truncate(n);
    Ok(buf)
}

/// A new non-blocking, close-on-exec eventfd.
pub fn eventfd() -> SysResult<OwnedFd> {
    // SAFETY: plain system call.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// Adds 1 to an eventfd.
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one = 1u64.to_ne_bytes();
    // A full counter (EAGAIN) still wakes the reader: nothing to do.
    let _ = write(fd, &one);
}

/// Resets an eventfd.
pub fn eventfd_drain(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 8];
    let _ = read(fd, &mut b);
}

/// Gives the calling thread its own cwd/umask (`unshare(CLONE_FS)`) and
/// sets its umask to 0: FS applies each DC process's umask itself.
pub fn private_fs_umask0() -> SysResult<()> {
    // SAFETY: `unshare(CLONE_FS)` only detaches this thread's fs_struct.
    check(unsafe { libc::unshare(libc::CLONE_FS) })?;
    // SAFETY: plain system call; affects only this thread's fs_struct now.
    unsafe { libc::umask(0) };
    Ok(())
}

/// Blocks `SIGPIPE` in the calling thread: a write to a host pipe without
/// readers then fails with `EPIPE` instead of killing the process.
pub fn block_sigpipe() {
    // SAFETY: `set` is initialised by `sigemptyset` before use and the
    // mask change only concerns the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Raises the soft limit of open files to the hard limit: FS holds the
/// host descriptors of every DC process.
pub fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit the kernel fills and then reads.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// The effective uid and gid of this process.
pub fn ids() -> (u32, u32) {
    // FS never changes its ids: read once (every AF_UNIX send asks).
    static IDS: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    // SAFETY: plain system calls without arguments.
    *IDS.get_or_init(|| unsafe { (libc::geteuid(), libc::getegid()) })
}
