//! glibc's `set*id` broadcast under the seccomp net.
//!
//! When a multithreaded program calls `setuid`, `setgroups`..., glibc
//! sends its internal signal `SIGSETXID` (33) to every other thread with
//! `tgkill(getpid(), tid, 33)` and waits until each has made the same call
//! in the signal handler. The handler ignores the signal unless
//! `si_code == SI_TKILL` and `si_pid == getpid()`.
//!
//! Under the net, glibc's internal `getpid` is served (it is the DC PID)
//! and its `tgkill` is sent by the supervisor, so the signal arrives with
//! the supervisor's host PID in `si_pid`; glibc's handler would drop it
//! and the caller would wait for ever. The kernel lets only the sending
//! process itself forge `SI_TKILL`, so the supervisor cannot fix it.
//! Instead, [`install`] puts a wrapper in front of glibc's handler that
//! rewrites `si_pid` of a `SI_TKILL` signal sent by another process to
//! what the process's own `getpid` returns, then calls glibc's handler.
//! Without the net glibc's `tgkill` runs natively, `si_pid` is the host
//! PID that glibc's `getpid` returns, and the wrapper changes nothing.
//!
//! glibc installs the `SIGCANCEL` (32) handler only at the first
//! `pthread_cancel`, through an internal call the preload does not see, so
//! `pthread_cancel` of another thread still does nothing under the net.

use crate::gate;
use std::sync::atomic::{AtomicUsize, Ordering};

/// glibc's internal signal for the `set*id` broadcast.
const SIGSETXID: i32 = 33;

/// `SI_TKILL`: the signal came from `tkill`/`tgkill`.
const SI_TKILL: i32 = -6;

/// The kernel's `struct sigaction` (the layout `rt_sigaction` takes, which
/// differs from glibc's).
#[repr(C)]
#[derive(Clone, Copy)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// glibc's handler, called by the wrapper (0 until installed).
static GLIBC_HANDLER: AtomicUsize = AtomicUsize::new(0);

type Handler = extern "C" fn(i32, *mut libc::siginfo_t, *mut libc::c_void);

extern "C" fn wrapper(sig: i32, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    if let Some(si) = unsafe { info.as_mut() } {
        // SAFETY: reading and writing the kill fields of a signal that
        // came from tgkill (si_code SI_TKILL), which carries them.
        // getpid through the gate is the host PID.
        unsafe {
            let host = gate::syscall6(libc::SYS_getpid, [0; 6]) as i32;
            if si.si_code == SI_TKILL && si.si_pid() != host {
                // What glibc's own getpid returns (a `syscall` instruction
                // outside the gate: the DC PID under the net).
                let own = libc::syscall(libc::SYS_getpid) as i32;
                let fields = info.cast::<i32>();
                // si_pid is the first field after si_signo, si_errno,
                // si_code and the padding of the union: offset 16.
                *fields.add(4) = own;
            }
        }
    }
    let h = GLIBC_HANDLER.load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: `h` is the SA_SIGINFO handler glibc installed, saved by
        // `install` before the wrapper replaced it.
        let f: Handler = unsafe { std::mem::transmute::<usize, Handler>(h) };
        f(sig, info, ctx);
    }
}

/// Puts the wrapper in front of glibc's `SIGSETXID` handler, which glibc
/// installs at the first `pthread_create` (`fork` keeps the wrapper,
/// `execve` resets it). Does nothing when the wrapper is there already.
pub fn install() {
    let mut old = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction reading the current action into `old`, with
    // the kernel's sigset size (8).
    let r = unsafe {
        gate::syscall6(
            libc::SYS_rt_sigaction,
            [
                SIGSETXID as u64,
                0,
                &mut old as *mut KernelSigaction as u64,
                8,
                0,
                0,
            ],
        )
    };
    let is_siginfo = old.flags & libc::SA_SIGINFO as u64 != 0;
    if r < 0
        || !is_siginfo
        || old.handler <= libc::SIG_IGN
        || old.handler == wrapper as Handler as usize
    {
        return;
    }
    GLIBC_HANDLER.store(old.handler, Ordering::Release);
    let new = KernelSigaction {
        handler: wrapper as Handler as usize,
        ..old
    };
    // SAFETY: rt_sigaction installing `new`, which keeps glibc's flags,
    // restorer and mask.
    unsafe {
        gate::syscall6(
            libc::SYS_rt_sigaction,
            [
                SIGSETXID as u64,
                &new as *const KernelSigaction as u64,
                0,
                8,
                0,
                0,
            ],
        )
    };
}
