//! The libc entry points interposed by the preload, one file per family.

pub mod dirs;
pub mod execl;
pub mod files;
pub mod indirect;
pub mod locale;
pub mod procs;
pub mod pty;
pub mod signalfd;
pub mod signals;
pub mod sockets;
pub mod spawn;
pub mod stdio;
pub mod threads;
pub mod tmpfiles;
pub mod unsupported;
pub mod wstdio;
pub mod xattrs;

/// Pads an argument list to the six system call registers.
pub fn args(a: &[u64]) -> [u64; 6] {
    let mut r = [0u64; 6];
    for (d, s) in r.iter_mut().zip(a) {
        *d = *s;
    }
    r
}

/// Defines a hook that serves a libc function as system call `$nr` with
/// the given arguments, and falls back to the real function when the
/// process is not in a DC (or the preload itself is calling).
#[macro_export]
macro_rules! sys {
    ($name:ident => $hook:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty, $nr:expr, [$($a:expr),*]) => {
        redhook::hook! {
            unsafe fn $name($($arg: $ty),*) -> $ret => $hook {
                $crate::state::hooked($nr, $crate::hooks::args(&[$($a as u64),*]), || {
                    // SAFETY: the real libc function with the caller's own arguments.
                    unsafe { redhook::real!($name)($($arg),*) as i64 }
                }) as $ret
            }
        }
    };
}
