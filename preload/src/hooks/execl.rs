//! `execl`, `execle` and `execlp`: the exec calls that take their
//! arguments as a variadic list. glibc builds an array from the list and
//! calls its internal `execve`, which no hook sees, so without these the
//! exec reached the seccomp net (or the host) unserved and failed.
//!
//! Rust cannot define a C-variadic function, so each entry point is a few
//! instructions that make the list an array in place: on x86-64 the first
//! five list items arrive in `rsi rdx rcx r8 r9` and the rest on the stack
//! right above the return address. The trampoline takes the return address
//! off, pushes the five registers below the stacked items (the list is now
//! one contiguous `NULL`-terminated array, the `argv` the exec needs, with
//! `execle`'s `envp` right after its `NULL`), calls [`list_exec`] with
//! `(path, array, kind)`, then restores the stack and returns its value.

use super::procs::{hk_execve, hk_execvp};
use libc::{c_char, c_int};

const EXECL: c_int = 0;
const EXECLE: c_int = 1;
const EXECLP: c_int = 2;

/// Defines variadic exec entry point `$name` passing `$kind` to
/// [`list_exec`].
macro_rules! list_trampoline {
    ($name:ident, $kind:expr) => {
        /// The libc function of the same name (see the module comment).
        ///
        /// # Safety
        /// The C contract of the function: a `NULL`-terminated list of C
        /// strings after `path` (and, for `execle`, an environment array).
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name(path: *const c_char, arg0: *const c_char) -> c_int {
            core::arch::naked_asm!(
                // Entry: rsp = return address, rsp+8.. = list items 5...
                "pop rax",
                "push r9",
                "push r8",
                "push rcx",
                "push rdx",
                "push rsi",
                // rsp = the whole list as an array; rdi is still path.
                "mov rsi, rsp",
                "mov edx, {kind}",
                // Keep the return address below the array; rsp is 16-byte
                // aligned again for the call.
                "push rax",
                "call {f}",
                "pop rcx",
                "add rsp, 40",
                "push rcx",
                "ret",
                kind = const $kind,
                f = sym list_exec,
            )
        }
    };
}

list_trampoline!(execl, EXECL);
list_trampoline!(execle, EXECLE);
list_trampoline!(execlp, EXECLP);

/// Runs the exec of the list-form call `kind` with argument array `argv`
/// (the caller's list, `NULL`-terminated, still on its stack) through the
/// hooks of the array forms.
///
/// # Safety
/// `argv` is the array the trampoline built from a list that follows the
/// C contract.
unsafe extern "C" fn list_exec(
    path: *const c_char,
    argv: *const *const c_char,
    kind: c_int,
) -> c_int {
    match kind {
        EXECLE => {
            let mut n = 0;
            // SAFETY: the list is NULL-terminated (the C contract), and
            // execle's environment pointer follows that NULL.
            let envp = unsafe {
                while !(*argv.add(n)).is_null() {
                    n += 1;
                }
                *argv.add(n + 1) as *const *const c_char
            };
            // SAFETY: the caller's own path, argument and environment arrays.
            unsafe { hk_execve(path, argv, envp) }
        }
        // SAFETY: the caller's own file name and argument array.
        EXECLP => unsafe { hk_execvp(path, argv) },
        // SAFETY: the caller's own path and argument array, with the
        // process's environment (what execl uses).
        _ => unsafe { hk_execve(path, argv, super::procs::current_env()) },
    }
}
