//! Signal actions: a DC program's handlers run through a trampoline that
//! tells the preload which signal ran, and the preload publishes which of
//! them restart calls (see `interrupts`). `signal` and `siginterrupt`
//! are hooked too: glibc's own call `sigaction` internally.

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
