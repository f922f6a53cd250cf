//! The seccomp filter of traced programs: `SECCOMP_RET_TRACE` for every
//! redirected system call (the shim's list, [`shim::redirected`]), plus
//! the few the tracer handles itself; every other call runs at full speed
//! without a stop.

use crate::Error;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use std::collections::BTreeMap;

/// Calls the tracer handles itself on top of the shim's list: signals to
/// single threads, which name host ids.
pub const TRACER_ONLY: &[i64] = &[libc::SYS_tkill, libc::SYS_tgkill];

/// The x32 ABI bit of a system call number: such calls would bypass the
/// x86-64 rules, so they stop too (and fail with `ENOSYS`).
pub const X32_BIT: i64 = 0x4000_0000;

/// A compiled filter, ready to be installed in a child after `fork`.
pub struct Filter {
    prog: BpfProgram,
}

/// Every system call number that stops.
pub fn traced() -> Vec<i64> {
    let mut v = shim::redirected::redirected();
    v.extend_from_slice(TRACER_ONLY);
    v.sort_unstable();
    v.dedup();
    v
}

impl Filter {
    /// Builds the filter.
    pub fn new() -> Result<Filter, Error> {
        let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
            traced().into_iter().map(|nr| (nr, Vec::new())).collect();
        let f = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Trace(0),
            TargetArch::x86_64,
        )
        .map_err(|e| Error::Filter(e.to_string()))?;
        let body: BpfProgram = f
            .try_into()
            .map_err(|e: seccompiler::BackendError| Error::Filter(e.to_string()))?;
        // Prologue: x32 calls (number with bit 30) stop as well. seccompiler
        // checks the architecture (i386 `int 0x80` calls kill the process)
        // but not the x32 bit.
        let ld_nr = seccompiler::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        };
        let jge = seccompiler::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: X32_BIT as u32,
        };
        let trace = seccompiler::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_TRACE,
        };
        let mut prog = vec![ld_nr, jge, trace];
        prog.extend(body);
        Ok(Filter { prog })
    }

    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    /// Whether the program is empty (never: it always has its prologue).
    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }

    /// Installs the filter in the calling thread (`PR_SET_NO_NEW_PRIVS`,
    /// then `seccomp(SECCOMP_SET_MODE_FILTER)`). Returns 0, or an errno.
    /// Async-signal-safe: meant for a child between `fork` and `execve`
    /// (it allocates nothing).
    ///
    /// The calling process must already be traced: a `RET_TRACE` call with
    /// no tracer fails with `ENOSYS`.
    pub fn install_raw(&self) -> i32 {
        let fprog = libc::sock_fprog {
            len: self.prog.len() as u16,
            filter: self.prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            // SAFETY: reading this thread's errno.
            return unsafe { *libc::__errno_location() };
        }
        // SAFETY: `fprog` points to `self.prog`, whose layout is the
        // kernel's `struct sock_filter` (seccompiler's type is repr(C) with
        // the same fields); the kernel copies it before returning.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if r != 0 {
            // SAFETY: reading this thread's errno.
            return unsafe { *libc::__errno_location() };
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds() {
        let f = Filter::new().unwrap();
        assert!(f.len() > traced().len());
        assert!(traced().contains(&libc::SYS_openat));
        assert!(!traced().contains(&libc::SYS_mmap));
    }
}
