//! Dynamic → static exec: a static program has no dynamic loader, so no
//! preload. Before the preload's exec hook runs one, it asks the seccomp
//! net's supervisor (the tracer process) to trace this process: the
//! static image's redirected calls are then served by the net, and its
//! forks and execs are followed with ptrace, like those of a static
//! program dvs-exec started.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;

/// Whether host file `host` is a static ELF program (shared check:
/// [`shim::elf`]).
pub fn is_static(host: &CStr) -> bool {
    let p = std::path::Path::new(std::ffi::OsStr::from_bytes(host.to_bytes()));
    matches!(shim::elf::kind(p), Ok(shim::elf::Kind::Static))
}

/// Asks the supervisor to trace the calling process; true once it does.
/// The request is a redirected call made outside the gate, so that the
/// net hands it to the supervisor.
pub fn request() -> bool {
    if !shim::gatepage::mapped() {
        return false;
    }
    let m = shim::gatepage::ADOPT_MAGIC;
    let ret: i64;
    // SAFETY: kill(0, 0) with two extra argument registers: harmless if
    // it reaches the kernel (a signal-0 check of our own group). The x86-64
    // system call ABI: number in rax, arguments in rdi, rsi, rdx, r10;
    // rcx and r11 clobbered.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") libc::SYS_kill => ret,
            in("rdi") 0u64,
            in("rsi") 0u64,
            in("rdx") m,
            in("r10") m,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == shim::gatepage::ADOPTED
}
