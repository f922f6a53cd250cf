//! Signal actions: a DC program's handlers run through a trampoline that
//! tells the preload which signal ran, and the preload publishes which of
//! them restart calls (see `interrupts`). `signal` and `siginterrupt`
//! are hooked too: glibc's own call `sigaction` internally. `raise` (and
//! its alias `gsignal`) signals the calling thread on the host directly:
//! glibc's makes raw `getpid` and `tgkill` calls, which the seccomp net
//! would have to serve, leaving the signal pending (and discarded if the
//! handler is meanwhile set to `SIG_IGN`) for the round trip.

use crate::state;
use libc::c_int;

/// libc's own `sigaction`, which the preload's versions call.
fn libc_sigaction() -> impl Fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int {
    |s, a, o| {
        // SAFETY: libc's sigaction with the caller's arguments or actions
        // that live across the call (null or valid, as sigaction(2)
        // requires).
        unsafe { redhook::real!(sigaction)(s, a, o) }
    }
}

redhook::hook! {
    unsafe fn sigaction(sig: libc::c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> libc::c_int => hk_sigaction {
        let real = libc_sigaction();
        if !state::active() {
            return real(sig, act, old);
        }
        // SAFETY: the caller's pointers, null or valid as sigaction(2)
        // requires.
        unsafe { crate::interrupts::sigaction(sig, act, old, real) }
    }
}

redhook::hook! {
    unsafe fn siginterrupt(sig: libc::c_int, flag: libc::c_int) -> libc::c_int => hk_siginterrupt {
        let real = libc_sigaction();
        if !state::active() {
            // SAFETY: libc's siginterrupt with the caller's arguments.
            return unsafe { redhook::real!(siginterrupt)(sig, flag) };
        }
        crate::interrupts::siginterrupt(sig, flag, real)
    }
}

redhook::hook! {
    unsafe fn signal(sig: libc::c_int, handler: libc::sighandler_t) -> libc::sighandler_t => hk_signal {
        let real = libc_sigaction();
        if !state::active() {
            // SAFETY: libc's signal with the caller's arguments.
            return unsafe { redhook::real!(signal)(sig, handler) };
        }
        crate::interrupts::signal(sig, handler, real)
    }
}

/// `raise` in a DC: the host signal to the calling thread, through the
/// gate, with the siginfo of a native `raise`.
fn raise_here(sig: c_int) -> c_int {
    if stops_the_process(sig) {
        // SAFETY: the preload's own kill (PM's): PM stops the process and
        // reports it to the parent's wait; the host group of a DC is
        // orphaned, where the kernel would discard SIGTSTP.
        return unsafe { libc::kill(libc::getpid(), sig) };
    }
    // SAFETY: getpid and getuid have no arguments (getpid is the preload's
    // own hook: the DC pid, cached by the shim).
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let r = crate::gate::raise_as(sig, pid, uid);
    if r < 0 {
        state::set_errno(-r as c_int);
        return -1;
    }
    0
}

/// Whether `sig`, raised, stops the process: `SIGSTOP`, or a terminal
/// stop signal left to its default action.
fn stops_the_process(sig: c_int) -> bool {
    match sig {
        libc::SIGSTOP => true,
        libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {
            // SAFETY: a zeroed sigaction that libc's sigaction fills.
            let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
            libc_sigaction()(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_DFL
        }
        _ => false,
    }
}

redhook::hook! {
    unsafe fn raise(sig: libc::c_int) -> libc::c_int => hk_raise {
        if !state::active() {
            // SAFETY: libc's raise with the caller's argument.
            return unsafe { redhook::real!(raise)(sig) };
        }
        raise_here(sig)
    }
}

redhook::hook! {
    unsafe fn gsignal(sig: libc::c_int) -> libc::c_int => hk_gsignal {
        if !state::active() {
            // SAFETY: libc's gsignal with the caller's argument.
            return unsafe { redhook::real!(gsignal)(sig) };
        }
        raise_here(sig)
    }
}
