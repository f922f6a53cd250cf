//! The shim's own gate to the host kernel, used for the host calls the
//! preload must make itself (reaping a host child, raising a signal, the
//! host `execve`...) without going through libc, whose entry points this
//! library interposes. In a DC it is the fixed-address gate page
//! ([`shim::gatepage`], mapped by [`crate::gatepage`]), the one place
//! whose redirected calls the seccomp net lets through; elsewhere a
//! `syscall` instruction in this library.

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
