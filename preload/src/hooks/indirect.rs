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

/// System call `nr` made from this library, as glibc's `syscall` makes
/// it: the libc result (`-1` and `errno` on failure).
fn kernel(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: the arguments are the caller's, for system call `nr`.
    crate::state::libc_ret(unsafe { crate::gate::kernel6(nr, a) })
}

redhook::hook! {
    // C-variadic in C: its arguments arrive where six fixed ones would
    // (the sixth on the stack), and glibc reads six whatever the call.
    unsafe fn syscall(nr: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long => hk_syscall {
        let args = [a as u64, b as u64, c as u64, d as u64, e as u64, f as u64];
        let nr = nr as i64;
        if !served_here(nr) {
            return kernel(nr, args) as c_long;
        }
        // What an allocator reads under its own lock goes to the kernel
        // (see `libc_internal`): jemalloc opens it with syscall(2).
        let path = match nr {
            libc::SYS_open => a,
            libc::SYS_openat => b,
            _ => 0,
        };
        // SAFETY: the path argument of an open, as the caller passed it.
        if path != 0 && unsafe { crate::libc_internal::kernel_path(path as *const libc::c_char) } {
            let fd = kernel(nr, args);
            crate::libc_internal::keep_kernel_fd(fd);
            return fd as c_long;
        }
        let on_fd = matches!(
            nr,
            libc::SYS_read
                | libc::SYS_pread64
                | libc::SYS_write
                | libc::SYS_close
                | libc::SYS_fstat
                | libc::SYS_newfstatat
                | libc::SYS_lseek
        );
        if on_fd && crate::libc_internal::kernel_fd(a as i64, nr == libc::SYS_close) {
            return kernel(nr, args) as c_long;
        }
        crate::state::internal(nr, args, || kernel(nr, args)) as c_long
    }
}
