//! The small unsafe surface of the DVK: shared memory, futexes, pidfds and
//! cross-process copies. Everything else in the crate is safe code on top
//! of these wrappers.

use crate::error::{DvkError, Result};
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Creates an anonymous shared-memory file of `len` bytes (zero-filled).
pub fn memfd(name: &str, len: usize) -> Result<OwnedFd> {
    let cname = std::ffi::CString::new(name).map_err(|_| DvkError::Inval)?;
    let fd =
        nix::sys::memfd::memfd_create(cname.as_c_str(), nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    nix::unistd::ftruncate(&fd, len as libc::off_t)?;
    Ok(fd)
}

/// Opens a second, read-only file description of a shared-memory file.
/// A mapping of the returned fd can never be made writable, which is how
/// the DVK hands out views of a mailbox that the receiver cannot forge.
pub fn reopen_readonly(fd: &OwnedFd) -> Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let f = std::fs::File::open(path).map_err(|_| DvkError::Io)?;
    Ok(OwnedFd::from(f))
}

/// Whether [`high_fd`] moves descriptors.
static HIGH_FDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`high_fd`] move descriptors: what a DC process's preload wants
/// (called before its first connection, while it has one thread).
pub fn keep_fds_high() {
    HIGH_FDS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Moves `fd` to a high descriptor number (close-on-exec), out of the
/// way of the low numbers a program's own descriptors take: a client's
/// long-lived host descriptors (its daemon connection) live in a process
/// whose DC descriptors FS numbers from 0, and the seccomp net mirrors a
/// DC descriptor at its own number in the host table when glibc maps it.
/// Keeps `fd` where it is if the limit on descriptors leaves no room, or
/// unless [`keep_fds_high`] was called (a process with threads would pay
/// for growing its descriptor table with an RCU grace period, which the
/// servers need not pay).
pub fn high_fd(fd: OwnedFd) -> OwnedFd {
    if !HIGH_FDS.load(std::sync::atomic::Ordering::Relaxed) {
        return fd;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return fd;
    }
    let cur = lim.rlim_cur.min(1024) as i32;
    if cur <= 128 {
        return fd;
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own; the result, if any,
    // is a new descriptor we then own.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, cur - 64) };
    if high < 0 {
        return fd;
    }
    // SAFETY: `high` was just returned by the kernel and is ours.
    unsafe { OwnedFd::from_raw_fd(high) }
}

/// Size of a shared-memory file.
pub fn fd_len(fd: &OwnedFd) -> Result<usize> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok(st.st_size as usize)
}

/// A shared mapping of a memfd. Unmapped on drop.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
    writable: bool,
    /// Set for `MADV_DONTFORK` mappings: the fork epoch they belong to. A
    /// forked child does not have them, so its copy must not unmap the
    /// range (which the child may have reused).
    fork_epoch: Option<u64>,
}

// SAFETY: the mapping is shared memory accessed only through atomics (see
// the accessors below), so it can be used from any thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; all accesses are atomic operations.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the whole file. `writable` needs an fd opened for writing.
    /// `dontfork` keeps the mapping out of children created by `fork`.
    pub fn map(fd: &OwnedFd, writable: bool, dontfork: bool) -> Result<Mapping> {
        Self::map_len(fd, fd_len(fd)?, writable, dontfork)
    }

    /// Creates a shared-memory file `name` of `len` bytes ([`memfd`]) and
    /// maps it writable, without asking the size it was just given.
    pub fn create(name: &str, len: usize, dontfork: bool) -> Result<(OwnedFd, Mapping)> {
        let fd = memfd(name, len)?;
        let map = Self::map_len(&fd, len, true, dontfork)?;
        Ok((fd, map))
    }

    fn map_len(fd: &OwnedFd, len: usize, writable: bool, dontfork: bool) -> Result<Mapping> {
        if len == 0 {
            return Err(DvkError::Inval);
        }
        if dontfork {
            crate::forkwatch::install();
        }
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: mapping a file we hold an fd for; the kernel chooses the
        // address, so no existing memory is affected. Failure is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(DvkError::from_errno(Errno::last()));
        }
        if dontfork {
            // SAFETY: advising on the range we just mapped.
            let r = unsafe { libc::madvise(ptr, len, libc::MADV_DONTFORK) };
            if r != 0 {
                // SAFETY: unmapping the range we just mapped.
                unsafe { libc::munmap(ptr, len) };
                return Err(DvkError::from_errno(Errno::last()));
            }
        }
        Ok(Mapping {
            ptr: ptr as *mut u8,
            len,
            writable,
            fork_epoch: dontfork.then(crate::forkwatch::epoch),
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping has zero length (never true for a valid mapping).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether stores are allowed.
    pub fn writable(&self) -> bool {
        self.writable
    }

    fn at<T>(&self, off: usize) -> *const T {
        assert!(
            off.is_multiple_of(std::mem::align_of::<T>())
                && off + std::mem::size_of::<T>() <= self.len,
            "shared layout offset {off} out of range {}",
            self.len
        );
        // SAFETY: bounds and alignment checked just above.
        unsafe { self.ptr.add(off) as *const T }
    }

    /// The atomic `u32` at `off`. Layout offsets are computed by this crate.
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: in range, aligned, lives as long as `self`; shared memory
        // is only ever accessed atomically.
        unsafe { &*self.at::<AtomicU32>(off) }
    }

    /// The atomic `i32` at `off`.
    pub fn i32(&self, off: usize) -> &AtomicI32 {
        // SAFETY: as for `u32`.
        unsafe { &*self.at::<AtomicI32>(off) }
    }

    /// The atomic `u64` at `off`.
    pub fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: as for `u32`.
        unsafe { &*self.at::<AtomicU64>(off) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self
            .fork_epoch
            .is_some_and(|e| e != crate::forkwatch::epoch())
        {
            return;
        }
        // SAFETY: unmapping exactly what `map` mapped; no references outlive
        // `self` because all accessors borrow it.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// Waits on a shared futex word while it equals `expected`. Returns early
/// on wake-ups, signals and value changes; the caller re-checks.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> bool {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call;
    // a non-private futex because the word lives in shared memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
}

/// Wakes up to `n` waiters of a shared futex word.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; waking has no memory effects.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The calling thread's host id.
pub fn gettid() -> i32 {
    nix::unistd::gettid().as_raw()
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// Opens a pidfd for a process, or for a single thread when `tid != pid`.
/// It becomes readable when that task exits.
pub fn pidfd_open(pid: i32, tid: i32) -> Result<OwnedFd> {
    let (target, flags) = if tid != pid && tid > 0 {
        (tid, PIDFD_THREAD)
    } else {
        (pid, 0)
    };
    // SAFETY: plain syscall with integer arguments; the result is checked.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, target, flags) };
    if r < 0 {
        return Err(DvkError::from_errno(Errno::last()));
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Direction of a cross-process copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDir {
    /// From the other process into ours (`process_vm_readv`).
    Read,
    /// From ours into the other process (`process_vm_writev`).
    Write,
}

/// This process's host pid, without a system call after the first: it
/// is kept with the fork epoch it was read in ([`crate::forkwatch`]), so
/// a `fork` child reads its own. A `vfork` or `CLONE_VM` child gets its
/// parent's, whose memory it shares: right for [`vm_copy`] on itself, as
/// long as the parent read it first (a connection to the daemon does),
/// so that the child never stores its own pid in the shared cache.
pub fn own_pid() -> i32 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    crate::forkwatch::install();
    let epoch = crate::forkwatch::epoch() as u32;
    let c = CACHE.load(Ordering::Relaxed);
    if c != 0 && (c >> 32) as u32 == epoch {
        return c as u32 as i32;
    }
    let pid = std::process::id();
    CACHE.store(u64::from(epoch) << 32 | u64::from(pid), Ordering::Relaxed);
    pid as i32
}

/// Copies `len` bytes between `local` (an address in this process) and
/// `remote` (an address in process `pid`) with one kernel copy. Bad
/// addresses on either side give `EDVSFAULT`; nothing is dereferenced by
/// this process itself.
pub fn vm_copy(dir: CopyDir, pid: i32, local: u64, remote: u64, len: usize) -> Result<()> {
    let mut done = 0usize;
    while done < len {
        let liov = libc::iovec {
            iov_base: (local as usize + done) as *mut libc::c_void,
            iov_len: len - done,
        };
        let riov = libc::iovec {
            iov_base: (remote as usize + done) as *mut libc::c_void,
            iov_len: len - done,
        };
        // SAFETY: the kernel validates both address ranges and fails with
        // EFAULT instead of touching invalid memory; the iovecs live on our
        // stack for the duration of the call.
        let r = unsafe {
            match dir {
                CopyDir::Read => libc::process_vm_readv(pid, &liov, 1, &riov, 1, 0),
                CopyDir::Write => libc::process_vm_writev(pid, &liov, 1, &riov, 1, 0),
            }
        };
        if r < 0 {
            return Err(DvkError::from_errno(Errno::last()));
        }
        if r == 0 {
            return Err(DvkError::Fault);
        }
        done += r as usize;
    }
    Ok(())
}

/// Reads `len` bytes at `remote` in process `pid` into a new buffer,
/// without zeroing it first (a reused 1 MiB heap block would cost a
/// `memset` as long as the copy's network transfer).
pub fn vm_read(pid: i32, remote: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::<u8>::with_capacity(len);
    vm_copy(CopyDir::Read, pid, buf.as_mut_ptr() as u64, remote, len)?;
    // SAFETY: the capacity is at least `len`, and `vm_copy` returned Ok
    // only after the kernel wrote all `len` bytes.
    unsafe { buf.set_len(len) };
    Ok(buf)
}

/// Reads a `/proc` file whole: `open`, two `read`s and `close`.
/// `std::fs::read_to_string` starts with a tiny buffer for files that
/// report size 0 (all of `/proc`), so a `status` file took seven `read`s,
/// and `File::read_to_string` asks for the size and position first
/// (`statx`, `lseek`), which `/proc` does not know.
pub fn read_proc(path: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    loop {
        if n == buf.len() {
            buf.resize(2 * n, 0);
        }
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    String::from_utf8(buf).map_err(|_| std::io::ErrorKind::InvalidData.into())
}

/// Fills `buf` from `fd` at `offset` (`pread`); a file shorter than that
/// is an error.
pub fn pread_all(fd: &OwnedFd, buf: &mut [u8], offset: usize) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match nix::sys::uio::pread(fd, &mut buf[done..], (offset + done) as libc::off_t) {
            Ok(0) => return Err(DvkError::Protocol),
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(DvkError::from_errno(e)),
        }
    }
    Ok(())
}

/// The comm name of a task, for status displays (empty if unknown).
pub fn task_name(pid: i32, tid: i32) -> String {
    let path = if tid > 0 && tid != pid {
        format!("/proc/{pid}/task/{tid}/comm")
    } else {
        format!("/proc/{pid}/comm")
    };
    read_proc(&path)
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::own_pid;

    /// The cached pid is the child's own in a `fork` child, and the
    /// parent's stays right.
    #[test]
    fn own_pid_follows_fork() {
        assert_eq!(own_pid(), std::process::id() as i32);
        // SAFETY: the child only reads atomics, calls getpid and _exit.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            // SAFETY: getpid and _exit are async-signal-safe.
            unsafe { libc::_exit(if own_pid() == libc::getpid() { 0 } else { 1 }) };
        }
        let mut st = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        assert_eq!(unsafe { libc::waitpid(child, &mut st, 0) }, child);
        assert!(
            libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
            "status {st:#x}"
        );
        assert_eq!(own_pid(), std::process::id() as i32);
    }
}
