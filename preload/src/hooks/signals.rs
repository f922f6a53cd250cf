//! Signal actions: a DC program's handlers run through a trampoline that
//! tells the preload which signal ran (see `interrupts`).

use crate::state;

redhook::hook! {
    unsafe fn sigaction(sig: libc::c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> libc::c_int => hk_sigaction {
        let real = |s, a, o| {
            // SAFETY: libc's sigaction with the caller's arguments (or
            // the translated action, which lives across the call).
            unsafe { redhook::real!(sigaction)(s, a, o) }
        };
        if !state::active() {
            return real(sig, act, old);
        }
        // SAFETY: the caller's pointers, null or valid as sigaction(2)
        // requires.
        unsafe { crate::interrupts::sigaction(sig, act, old, real) }
    }
}
