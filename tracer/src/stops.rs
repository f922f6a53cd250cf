//! Decoding what `waitpid` reports about a tracee, and the raw ptrace
//! requests that resume it (with any signal number, real-time ones
//! included, which `nix::sys::signal::Signal` cannot name).

use nix::unistd::Pid;

/// One report about a tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It ended (exit or signal): nothing to resume.
    Gone,
    /// A seccomp `RET_TRACE` stop: a redirected system call.
    Seccomp,
    /// It forked, vforked or cloned (`PTRACE_EVENT_FORK/VFORK/CLONE`).
    Clone,
    /// It exec'd (`PTRACE_EVENT_EXEC`).
    Exec,
    /// A group-stop (`PTRACE_EVENT_STOP` with a stopping signal): resume
    /// with `PTRACE_LISTEN`, so it stays stopped until `SIGCONT`.
    GroupStop,
    /// `PTRACE_EVENT_STOP` without a group-stop: the first stop of an
    /// automatically attached child, or an interrupt.
    Trap,
    /// A syscall-exit stop (we asked for it with `PTRACE_SYSCALL`).
    SyscallExit,
    /// A signal-delivery stop: the signal must be re-injected.
    Signal(i32),
    /// Another ptrace event (not requested): just continue.
    Other,
}

/// Decodes a raw `waitpid` status.
pub fn decode(status: i32) -> Stop {
    if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        return Stop::Gone;
    }
    if !libc::WIFSTOPPED(status) {
        return Stop::Other;
    }
    let sig = libc::WSTOPSIG(status);
    match (status >> 16) & 0xff {
        0 if sig == libc::SIGTRAP | 0x80 => Stop::SyscallExit,
        0 => Stop::Signal(sig),
        libc::PTRACE_EVENT_SECCOMP => Stop::Seccomp,
        libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
            Stop::Clone
        }
        libc::PTRACE_EVENT_EXEC => Stop::Exec,
        libc::PTRACE_EVENT_STOP => match sig {
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => Stop::GroupStop,
            _ => Stop::Trap,
        },
        _ => Stop::Other,
    }
}

fn request(req: libc::c_uint, tid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: a resuming ptrace request: addr is ignored and data is a
    // signal number; no memory is passed.
    let r = unsafe { libc::ptrace(req, tid, 0usize, sig as usize) };
    if r < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// `PTRACE_CONT` delivering `sig` (0: none).
pub fn cont(tid: i32, sig: i32) -> nix::Result<()> {
    request(libc::PTRACE_CONT, tid, sig)
}

/// `PTRACE_SYSCALL` (stop again at the syscall exit) delivering `sig`.
pub fn syscall(tid: i32, sig: i32) -> nix::Result<()> {
    request(libc::PTRACE_SYSCALL, tid, sig)
}

/// `PTRACE_LISTEN`: leave a group-stopped tracee stopped, but let it
/// report the next event (`SIGCONT`).
pub fn listen(tid: i32) -> nix::Result<()> {
    request(libc::PTRACE_LISTEN, tid, 0)
}

/// The registers of a stopped tracee.
pub fn regs(tid: i32) -> nix::Result<libc::user_regs_struct> {
    nix::sys::ptrace::getregs(Pid::from_raw(tid))
}

/// Sets the registers of a stopped tracee.
pub fn set_regs(tid: i32, r: libc::user_regs_struct) -> nix::Result<()> {
    nix::sys::ptrace::setregs(Pid::from_raw(tid), r)
}

/// The event message (new child's pid, former tid at exec).
pub fn event_msg(tid: i32) -> nix::Result<i64> {
    nix::sys::ptrace::getevent(Pid::from_raw(tid))
}

/// System call number and arguments at a syscall stop.
pub fn syscall_of(r: &libc::user_regs_struct) -> (i64, [u64; 6]) {
    (r.orig_rax as i64, [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9])
}

/// Signals whose default action is not to end the process (ignore,
/// continue, stop), as a mask of bit `sig - 1`.
const NOT_FATAL: u64 = 1 << (libc::SIGCHLD - 1)
    | 1 << (libc::SIGURG - 1)
    | 1 << (libc::SIGWINCH - 1)
    | 1 << (libc::SIGCONT - 1)
    | 1 << (libc::SIGSTOP - 1)
    | 1 << (libc::SIGTSTP - 1)
    | 1 << (libc::SIGTTIN - 1)
    | 1 << (libc::SIGTTOU - 1);

/// Whether task `tid` has a pending, unblocked signal that will end the
/// process (not caught, not ignored, default action fatal): a blocking
/// call served for it must be given up, or the tracee would never die.
///
/// Caught signals do not count: those sent through PM interrupt the call
/// already (PM and FS cancel the deferred reply with `EINTR`), and giving
/// up a call that is still pending in a server would lose its reply (a
/// `wait4` would lose the child it collects). As with the preload, a
/// caught host signal (`SIGCHLD`, a timer) runs its handler when the call
/// returns.
pub fn fatal_signal_pending(tid: i32) -> bool {
    let Ok(s) = dvk::sys::read_proc(&format!("/proc/{tid}/status")) else {
        return false;
    };
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = (field("SigPnd:") | field("ShdPnd:")) & !field("SigBlk:") & !field("SigIgn:");
    pending & !field("SigCgt:") & !NOT_FATAL != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode(0), Stop::Gone);
        assert_eq!(decode(9), Stop::Gone);
        let stopped = |sig: i32, ev: i32| (ev << 16) | (sig << 8) | 0x7f;
        assert_eq!(
            decode(stopped(libc::SIGTRAP, libc::PTRACE_EVENT_SECCOMP)),
            Stop::Seccomp
        );
        assert_eq!(decode(stopped(libc::SIGTRAP | 0x80, 0)), Stop::SyscallExit);
        assert_eq!(decode(stopped(libc::SIGINT, 0)), Stop::Signal(libc::SIGINT));
        assert_eq!(
            decode(stopped(libc::SIGTSTP, libc::PTRACE_EVENT_STOP)),
            Stop::GroupStop
        );
        assert_eq!(
            decode(stopped(libc::SIGTRAP, libc::PTRACE_EVENT_STOP)),
            Stop::Trap
        );
        assert_eq!(
            decode(stopped(libc::SIGTRAP, libc::PTRACE_EVENT_VFORK)),
            Stop::Clone
        );
    }
}
