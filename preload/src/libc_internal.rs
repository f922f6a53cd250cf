//! glibc's own file calls, served in-process.
//!
//! Interposition reaches the calls a program makes through libc's exported
//! symbols. Inside libc, code calls its own functions directly: the
//! locale files `setlocale` opens, reads and maps (with `LANG=C.UTF-8`,
//! every coreutils program maps a dozen of them), NSS's `/etc/passwd`,
//! gconv's cache, `pthread_getattr_np`'s `/proc/self/maps`. Those calls
//! reached the kernel, where the seccomp net caught each one and its
//! supervisor served it: a round trip to another process, ~50-100 µs
//! each, and a worker thread started for the first one of a DC.
//!
//! Once attached, the preload points the functions those calls go
//! through (the `*_nocancel` family, `fstatat64`, `lseek64`, `mmap64`,
//! and `socket` and `connect`, with which NSS asks nscd first) at
//! its own entry points: the first instruction of each becomes a jump
//! here. They are then served as hooked calls are, in-process. What this
//! thread cannot serve itself (a call made inside the preload, or by a
//! signal handler while a served call is in progress) is made as the
//! system call it was, which the net serves as before. Outside the net
//! (`DVS_NET=off`, a program on another node than its tracer) nothing is
//! patched: libc's internal calls all reach the host there, as before.
//!
//! This is done once per process image, at its first `setlocale` or
//! `newlocale` (after attaching), and only while the process has a single
//! thread. Each jump is one atomic 8-byte store into its page,
//! made writable (and kept executable: other threads may run it) for the
//! store: the touched pages of libc's text become private copies, about
//! six per process. A function that cannot be patched (another C
//! library, a jump out of reach, a `W^X` policy) is left alone: the net
//! serves its calls.

use crate::state;
use libc::{c_char, c_int, c_void, off_t, size_t, ssize_t};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// System call `nr` made from the preload's text, outside the gate: under
/// the seccomp net, its supervisor serves a redirected one (what every
/// call of this module did before libc was patched). Returns the libc
/// result (`-1` and `errno` on failure).
pub(crate) fn kernel(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: the arguments are the caller's, in the layout of system
    // call `nr`.
    state::libc_ret(unsafe { crate::gate::kernel6(nr, a) })
}

/// The file memory allocators read while they hold their own lock:
/// glibc's malloc (`check_may_shrink_heap`, with an arena locked, the first
/// time it trims a thread's heap), jemalloc (at its initialisation, with
/// `syscall(2)`). Served here, the call would allocate and wait on that
/// lock for ever: it, and what is done with its descriptor, go to the
/// kernel, where the net serves them without touching this process's heap.
const UNDER_MALLOC_LOCK: &std::ffi::CStr = c"/proc/sys/vm/overcommit_memory";

/// Descriptors of [`UNDER_MALLOC_LOCK`] while open (-1: a free slot).
static KERNEL_FDS: [AtomicI32; 4] = [const { AtomicI32::new(-1) }; 4];

/// Whether descriptor `fd` must stay with the kernel (see
/// [`UNDER_MALLOC_LOCK`]); `closing` forgets it.
fn kernel_fd(fd: i32, closing: bool) -> bool {
    let Some(s) = KERNEL_FDS
        .iter()
        .find(|s| fd >= 0 && s.load(Ordering::Acquire) == fd)
    else {
        return false;
    };
    if closing {
        s.store(-1, Ordering::Release);
    }
    true
}

/// A redirected call that reached the preload without a hook (a patched
/// libc function's, or one made with `syscall(2)`): served here when this
/// thread can make a served call ([`state::internal`]), else made as the
/// kernel call it was; and always the kernel's when it opens
/// [`UNDER_MALLOC_LOCK`] or works on the descriptor that got.
pub(crate) fn served(nr: i64, a: [u64; 6]) -> i64 {
    let path = match nr {
        libc::SYS_open => a[0],
        libc::SYS_openat => a[1],
        _ => 0,
    } as *const c_char;
    // SAFETY: the path argument of an open, NUL-terminated, as the caller
    // passed it.
    if !path.is_null() && unsafe { std::ffi::CStr::from_ptr(path) } == UNDER_MALLOC_LOCK {
        let fd = kernel(nr, a);
        if let Ok(fd) = i32::try_from(fd) {
            let _ = KERNEL_FDS.iter().find(|s| {
                s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            });
        }
        return fd;
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
    if on_fd && kernel_fd(a[0] as i32, nr == libc::SYS_close) {
        return kernel(nr, a);
    }
    state::internal(nr, a, || kernel(nr, a))
}

unsafe extern "C" fn open_nocancel(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
    let a = [
        libc::AT_FDCWD as u64,
        path as u64,
        flags as u64,
        mode as u64,
        0,
        0,
    ];
    served(libc::SYS_openat, a) as c_int
}

unsafe extern "C" fn read_nocancel(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    served(libc::SYS_read, [fd as u64, buf as u64, n as u64, 0, 0, 0]) as ssize_t
}

unsafe extern "C" fn pread_nocancel(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t {
    let a = [fd as u64, buf as u64, n as u64, off as u64, 0, 0];
    served(libc::SYS_pread64, a) as ssize_t
}

unsafe extern "C" fn write_nocancel(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    served(libc::SYS_write, [fd as u64, buf as u64, n as u64, 0, 0, 0]) as ssize_t
}

unsafe extern "C" fn close_nocancel(fd: c_int) -> c_int {
    served(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]) as c_int
}

unsafe extern "C" fn fstatat(
    fd: c_int,
    path: *const c_char,
    buf: *mut c_void,
    flag: c_int,
) -> c_int {
    let a = [fd as u64, path as u64, buf as u64, flag as u64, 0, 0];
    served(libc::SYS_newfstatat, a) as c_int
}

unsafe extern "C" fn lseek(fd: c_int, off: off_t, whence: c_int) -> off_t {
    served(
        libc::SYS_lseek,
        [fd as u64, off as u64, whence as u64, 0, 0, 0],
    ) as off_t
}

unsafe extern "C" fn mmap(
    addr: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    off: off_t,
) -> *mut c_void {
    let a = [
        addr as u64,
        len as u64,
        prot as u64,
        flags as u64,
        fd as i64 as u64,
        off as u64,
    ];
    if flags & libc::MAP_ANONYMOUS != 0 || fd < 0 || state::busy() {
        // Memory (malloc's), or a mapping this thread cannot serve now:
        // the kernel's, where the net maps a DC descriptor's file (a
        // failure is -1 with errno, which is MAP_FAILED).
        return kernel(libc::SYS_mmap, a) as *mut c_void;
    }
    // SAFETY: the preload's own mmap hook, with the caller's arguments.
    unsafe { crate::hooks::files::hk_mmap(addr, len, prot, flags, fd, off) }
}

unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let a = [domain as u64, ty as u64, protocol as u64, 0, 0, 0];
    served(libc::SYS_socket, a) as c_int
}

unsafe extern "C" fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int {
    let a = [fd as u64, addr as u64, len as u64, 0, 0, 0];
    served(libc::SYS_connect, a) as c_int
}

/// The functions patched: libc's symbol and the entry point it jumps to.
fn targets() -> [(&'static [u8], usize); 10] {
    [
        (b"__open64_nocancel\0", open_nocancel as *const () as usize),
        (b"__read_nocancel\0", read_nocancel as *const () as usize),
        (
            b"__pread64_nocancel\0",
            pread_nocancel as *const () as usize,
        ),
        (b"__write_nocancel\0", write_nocancel as *const () as usize),
        (b"__close_nocancel\0", close_nocancel as *const () as usize),
        (b"fstatat64\0", fstatat as *const () as usize),
        (b"lseek64\0", lseek as *const () as usize),
        (b"mmap64\0", mmap as *const () as usize),
        // NSS asks nscd first: a socket and a connect per lookup.
        (b"socket\0", socket as *const () as usize),
        (b"connect\0", connect as *const () as usize),
    ]
}

/// The `jmp rel32` at `site` to `to`, if `to` is within its reach.
fn jump(site: usize, to: usize) -> Option<[u8; 5]> {
    let rel = i32::try_from(to as i64 - (site as i64 + 5)).ok()?;
    let mut j = [0xe9, 0, 0, 0, 0];
    j[1..].copy_from_slice(&rel.to_le_bytes());
    Some(j)
}

/// Where libc's function `name` starts (libc's own definition: looked up
/// in libc's handle, not in the global scope, where the preload's hooks
/// come first).
fn locate(libc_handle: *mut c_void, name: &[u8]) -> Option<usize> {
    // SAFETY: a handle from dlopen and a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc_handle, name.as_ptr().cast()) };
    (!f.is_null()).then_some(f as usize)
}

/// Whether this process is under the seccomp net (its filter answers
/// the net's probe, [`shim::seccomp::NET_PROBE`], without a notification).
fn under_net() -> bool {
    let probe = [0, shim::seccomp::NET_PROBE as u64, 0, 0, 0, 0];
    // SAFETY: a clone3 that cannot create anything: its size argument is
    // larger than the kernel accepts (E2BIG) and its struct pointer null.
    let r = unsafe { crate::gate::kernel6(libc::SYS_clone3, probe) };
    r == -(shim::seccomp::NET_PROBE_ERRNO as i64)
}

/// Whether [`install`] ran (it runs once per process image).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Points libc's internal file calls at this module (see the module
/// documentation), once per process image: at the program's first
/// `setlocale` or `newlocale` (which load the locale's files, and come
/// first in `main`), so that a program that never asks for a locale
/// (`/bin/true`) pays nothing (~30 µs). Does
/// nothing before the process is attached (the gate mapped), outside the
/// seccomp net (there libc's other internal calls, its `socket` for one,
/// reach the host, and the descriptors they return must reach the host
/// too when libc reads or closes them), or if any of it cannot be done.
pub fn install() {
    if INSTALLED.load(Ordering::Relaxed) || !state::active() || !shim::gatepage::mapped() {
        return;
    }
    if INSTALLED.swap(true, Ordering::AcqRel) || !under_net() || !single_threaded() {
        return;
    }
    // SAFETY: dlopen of a NUL-terminated name; RTLD_NOLOAD only looks up
    // the libc already loaded (the handle is never closed: libc stays).
    let h = unsafe { libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if h.is_null() {
        return;
    }
    let mut patches = Vec::with_capacity(10);
    for (name, to) in targets() {
        // Each jump must fit in one aligned 8-byte word, written at once:
        // another thread may be running libc (functions start 16-byte
        // aligned).
        match locate(h, name).and_then(|site| Some((site, jump(site, to)?))) {
            Some((site, j)) if site % 8 <= 3 => patches.push((site, j)),
            _ => return,
        }
    }
    patches.sort_unstable_by_key(|&(site, _)| site);
    for page in patches.chunk_by(|a, b| a.0 / PAGE == b.0 / PAGE) {
        let start = page[0].0 / PAGE * PAGE;
        // The page stays executable while it is writable: other threads
        // may run its code. Refused (a W^X policy): left to the net.
        if protect(start, libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) != 0 {
            return;
        }
        for &(site, j) in page {
            let word = (site & !7) as *const AtomicU64;
            let shift = (site % 8) * 8;
            let mask = 0xff_ffff_ffff_u64 << shift;
            let mut bytes = [0u8; 8];
            bytes[..5].copy_from_slice(&j);
            let new = u64::from_le_bytes(bytes) << shift;
            // SAFETY: the aligned word holding the function's first 5
            // bytes, in a page of libc's text made writable above; one
            // atomic store, so that a thread running the function sees
            // the old instructions or the jump, never a mix.
            let w = unsafe { &*word };
            let old = w.load(Ordering::Relaxed);
            w.store(old & !mask | new, Ordering::Release);
        }
        protect(start, libc::PROT_READ | libc::PROT_EXEC);
    }
}

/// Whether this process has one thread. A jump replaces more than one
/// instruction at some entries (`__read_nocancel` starts with a 2-byte
/// `xor` and its `syscall`): a thread stopped between them, or inside
/// that `syscall`, would resume in the middle of the jump. With other
/// threads running libc is left alone (the net serves its calls).
fn single_threaded() -> bool {
    let path = c"/proc/self/stat";
    // SAFETY: openat through the gate with a NUL-terminated path.
    let fd = unsafe {
        crate::gate::syscall6(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as u64,
                path.as_ptr() as u64,
                libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
                0,
                0,
                0,
            ],
        )
    };
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 1024];
    // SAFETY: read into a local buffer, then close, through the gate.
    let n = unsafe {
        let n = crate::gate::syscall6(
            libc::SYS_read,
            [
                fd as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                0,
                0,
                0,
            ],
        );
        crate::gate::syscall6(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
        n
    };
    let Ok(n) = usize::try_from(n) else {
        return false;
    };
    threads_in_stat(&buf[..n]) == Some(1)
}

/// The thread count of a `/proc/PID/stat` line (its 20th field; the
/// command name, second, may hold spaces and parentheses).
fn threads_in_stat(stat: &[u8]) -> Option<u64> {
    let after = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[after + 1..]).ok()?;
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}

/// Size of a page.
const PAGE: usize = 4096;

/// `mprotect` of one page through the gate; the raw result.
fn protect(page: usize, prot: c_int) -> i64 {
    // SAFETY: mprotect of a page of libc's text, mapped for the life of
    // the process.
    unsafe {
        crate::gate::syscall6(
            libc::SYS_mprotect,
            [page as u64, PAGE as u64, prot as u64, 0, 0, 0],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_count_from_stat() {
        let line = b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 7 0 99 1000 50";
        assert_eq!(threads_in_stat(line), Some(7));
        let own = std::fs::read("/proc/self/stat").unwrap();
        assert!(threads_in_stat(&own).is_some_and(|n| n >= 1));
    }

    #[test]
    fn jumps_are_relative_to_the_next_instruction() {
        assert_eq!(jump(0x1000, 0x1005), Some([0xe9, 0, 0, 0, 0]));
        assert_eq!(jump(0x1000, 0x1000), Some([0xe9, 0xfb, 0xff, 0xff, 0xff]));
        assert_eq!(jump(0x1000, 0x1_0000_1000), None);
    }
}
