//! The shim's own gate to the host kernel, used for the host calls the
//! preload must make itself (reaping a host child, raising a signal, the
//! host `execve`...) without going through libc, whose entry points this
//! library interposes. In a DC it is the fixed-address gate page
//! ([`shim::gatepage`], mapped by [`crate::gatepage`]), the one place
//! whose redirected calls the seccomp net lets through; elsewhere a
//! `syscall` instruction in this library.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Issues system call `nr` on the host. Returns the raw result (`-errno`
/// on failure).
///
/// # Safety
/// The caller must pass arguments valid for `nr` (pointers included).
pub unsafe fn syscall6(nr: i64, a: [u64; 6]) -> i64 {
    if shim::gatepage::mapped() {
        // SAFETY: the gate is mapped; the arguments are the caller's
        // contract.
        return unsafe { shim::gatepage::syscall6(nr, a) };
    }
    // SAFETY: the caller's contract.
    unsafe { kernel6(nr, a) }
}

/// Issues system call `nr` from a `syscall` instruction in this library,
/// outside the gate: under the seccomp net, a redirected one is caught and
/// served by the supervisor. Returns the raw result (`-errno` on failure).
///
/// # Safety
/// The caller must pass arguments valid for `nr` (pointers included).
pub unsafe fn kernel6(nr: i64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the Linux x86-64 system call ABI: number in rax, arguments in
    // rdi, rsi, rdx, r10, r8, r9; rcx and r11 are clobbered. Validity of
    // the arguments is the caller's contract.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") nr => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Reaps host child `pid` (blocking until it has ended).
pub fn reap(pid: i32) {
    let mut status = 0i32;
    // SAFETY: wait4 with a valid status pointer and no rusage.
    unsafe {
        syscall6(
            libc::SYS_wait4,
            [
                pid as u64,
                &mut status as *mut i32 as u64,
                libc::__WALL as u64,
                0,
                0,
                0,
            ],
        );
    }
}

/// Sends `sig` to the calling thread.
pub fn raise_in_thread(sig: i32) {
    // SAFETY: plain integer arguments.
    unsafe {
        let pid = syscall6(libc::SYS_getpid, [0; 6]);
        let tid = syscall6(libc::SYS_gettid, [0; 6]);
        syscall6(
            libc::SYS_tgkill,
            [pid as u64, tid as u64, sig as u64, 0, 0, 0],
        );
    }
}

/// `SI_TKILL`: the `si_code` of a signal sent with `tkill`/`tgkill`.
const SI_TKILL: i32 = -6;

/// Sends `sig` to the calling thread as glibc's `raise` does, with the
/// siginfo a native `raise` gives (`SI_TKILL`, the sender's pid and uid as
/// the program sees them: `pid` and `uid`). The application's signals
/// are blocked around the host call, so the signal is delivered as the
/// mask is restored, before this returns. Returns the raw result
/// (`-errno` on failure).
pub fn raise_as(sig: i32, pid: i32, uid: u32) -> i64 {
    // Every signal but glibc's internal SIGCANCEL (32) and SIGSETXID (33).
    let all: u64 = !((1u64 << 31) | (1u64 << 32));
    let mut old: u64 = 0;
    // SAFETY: an all-zero siginfo is a valid value of the plain C struct.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_signo = sig;
    info.si_code = SI_TKILL;
    // si_pid and si_uid follow si_signo, si_errno, si_code and the
    // union's padding: offsets 16 and 20 (the kill member of the union).
    let fields = (&mut info as *mut libc::siginfo_t).cast::<i32>();
    // SAFETY: offsets 16 and 20 lie inside the 128-byte siginfo.
    unsafe {
        *fields.add(4) = pid;
        *fields.add(5) = uid as i32;
    }
    // SAFETY: plain integer arguments, and pointers to the masks and the
    // siginfo, which live across the calls. A process may queue a
    // SI_TKILL siginfo to its own threads.
    unsafe {
        let blocked = syscall6(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_BLOCK as u64,
                &all as *const u64 as u64,
                &mut old as *mut u64 as u64,
                8,
                0,
                0,
            ],
        ) == 0;
        let host_pid = syscall6(libc::SYS_getpid, [0; 6]);
        let tid = syscall6(libc::SYS_gettid, [0; 6]);
        let r = syscall6(
            libc::SYS_rt_tgsigqueueinfo,
            [
                host_pid as u64,
                tid as u64,
                sig as u64,
                &info as *const libc::siginfo_t as u64,
                0,
                0,
            ],
        );
        if blocked {
            syscall6(
                libc::SYS_rt_sigprocmask,
                [
                    libc::SIG_SETMASK as u64,
                    &old as *const u64 as u64,
                    0,
                    8,
                    0,
                    0,
                ],
            );
        }
        r
    }
}

/// Capacity asked for a data channel: the most FS moves per read.
const CHANNEL_BYTES: u64 = 256 * 1024;

/// A new pipe for the calling thread's data channel, `(read, write)`,
/// both close-on-exec; `None` if the host refuses one.
pub fn channel_pipe() -> Option<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two ints into `fds`.
    let r = unsafe {
        syscall6(
            libc::SYS_pipe2,
            [fds.as_mut_ptr() as u64, libc::O_CLOEXEC as u64, 0, 0, 0, 0],
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: the kernel returned two new descriptors that we now own.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Out of the way of the program's own descriptor numbers (the caller
    // is inside the preload: the hooked fcntl goes to the host).
    let (rd, wr) = (dvk::sys::high_fd(rd), dvk::sys::high_fd(wr));
    // A smaller pipe (over the user's pipe-buffer limits) still works,
    // with reads split into smaller parts.
    // SAFETY: F_SETPIPE_SZ with an integer argument on our descriptor.
    unsafe {
        syscall6(
            libc::SYS_fcntl,
            [
                wr.as_raw_fd() as u64,
                libc::F_SETPIPE_SZ as u64,
                CHANNEL_BYTES,
                0,
                0,
                0,
            ],
        );
    }
    Some((rd, wr))
}

/// Reads the `n` bytes waiting in data channel `fd` into `addr`: `n`, or
/// `-errno` (the bytes are then dropped, as a failed copy into the
/// program's buffer loses them in FS).
pub fn from_channel(fd: i32, addr: u64, n: usize) -> i64 {
    let mut got = 0usize;
    while got < n {
        // SAFETY: reading into the program's buffer of `n` bytes (the
        // kernel checks the address); `fd` is this thread's channel.
        let r = unsafe {
            syscall6(
                libc::SYS_read,
                [fd as u64, addr + got as u64, (n - got) as u64, 0, 0, 0],
            )
        };
        match r {
            r if r > 0 => got += r as usize,
            r if r == -(libc::EINTR as i64) => {}
            0 => return -(libc::EIO as i64),
            e => {
                drain(fd, n - got);
                return e;
            }
        }
    }
    n as i64
}

/// Discards `left` bytes of channel `fd`.
fn drain(fd: i32, mut left: usize) {
    let mut buf = [0u8; 4096];
    while left > 0 {
        // SAFETY: reading into a local buffer.
        let r = unsafe {
            syscall6(
                libc::SYS_read,
                [
                    fd as u64,
                    buf.as_mut_ptr() as u64,
                    buf.len().min(left) as u64,
                    0,
                    0,
                    0,
                ],
            )
        };
        if r <= 0 {
            return;
        }
        left -= r as usize;
    }
}
