//! glibc's `syscall(2)` function, through which programs make system
//! calls that have no wrapper or whose wrapper they avoid: libuv closes
//! descriptors and calls `statx` that way, Rust's standard library calls
//! `statx`. It bypasses the hooks, so a redirected call made with it was
//! caught by the seccomp net and served by its supervisor, a round trip to
//! another process (`node -e 0` made 14 such `close`s). It is served here
//! now, as a hooked call is; process creation and `execve` still go to the
//! kernel, where the net decides them, and so does every call that is not
//! redirected (the preload's own `futex` calls among them).

use libc::c_long;

/// Whether system call `nr`, made through `syscall(2)`, is served here.
fn served_here(nr: i64) -> bool {
    shim::redirected::is_redirected(nr)
        && !matches!(
            nr,
            libc::SYS_execve
                | libc::SYS_execveat
                | libc::SYS_fork
                | libc::SYS_vfork
                | libc::SYS_clone
                | libc::SYS_clone3
        )
}

redhook::hook! {
    // C-variadic in C: its arguments arrive where six fixed ones would
    // (the sixth on the stack), and glibc reads six whatever the call.
    unsafe fn syscall(nr: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long => hk_syscall {
        let args = [a as u64, b as u64, c as u64, d as u64, e as u64, f as u64];
        let nr = nr as i64;
        if served_here(nr) {
            crate::libc_internal::served(nr, args) as c_long
        } else {
            crate::libc_internal::kernel(nr, args) as c_long
        }
    }
}
