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
//! The jumps are written through `/proc/self/mem`, as a debugger sets a
//! breakpoint: the touched pages of libc's text become private copies
//! (a few pages per process), and no page is ever writable and
//! executable. A function that cannot be patched (another C library, a
//! kernel that refuses the write) is left alone: the net serves its calls.

use crate::state;
use libc::{c_char, c_int, c_void, off_t, size_t, ssize_t};

/// System call `nr` made here, outside the gate: under the seccomp net,
/// its supervisor serves a redirected one (what every call of this
/// module did before libc was patched). Returns the libc result.
fn kernel(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: the arguments are the libc caller's, in the layout of
    // system call `nr`.
    state::libc_ret(unsafe { crate::gate::kernel6(nr, a) })
}

/// A libc-internal call: served here when this thread can make a served
/// call, else made as the kernel call it was.
fn internal(nr: i64, a: [u64; 6]) -> i64 {
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
    internal(libc::SYS_openat, a) as c_int
}

unsafe extern "C" fn read_nocancel(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    internal(libc::SYS_read, [fd as u64, buf as u64, n as u64, 0, 0, 0]) as ssize_t
}

unsafe extern "C" fn pread_nocancel(fd: c_int, buf: *mut c_void, n: size_t, off: off_t) -> ssize_t {
    let a = [fd as u64, buf as u64, n as u64, off as u64, 0, 0];
    internal(libc::SYS_pread64, a) as ssize_t
}

unsafe extern "C" fn write_nocancel(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    internal(libc::SYS_write, [fd as u64, buf as u64, n as u64, 0, 0, 0]) as ssize_t
}

unsafe extern "C" fn close_nocancel(fd: c_int) -> c_int {
    internal(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]) as c_int
}

unsafe extern "C" fn fstatat(
    fd: c_int,
    path: *const c_char,
    buf: *mut c_void,
    flag: c_int,
) -> c_int {
    let a = [fd as u64, path as u64, buf as u64, flag as u64, 0, 0];
    internal(libc::SYS_newfstatat, a) as c_int
}

unsafe extern "C" fn lseek(fd: c_int, off: off_t, whence: c_int) -> off_t {
    internal(
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
        // the kernel's, where the net maps a DC descriptor's file.
        // SAFETY: mmap's arguments as the caller gave them.
        let r = unsafe { crate::gate::kernel6(libc::SYS_mmap, a) };
        if (-4095..0).contains(&r) {
            state::set_errno(-r as i32);
            return libc::MAP_FAILED;
        }
        return r as *mut c_void;
    }
    // SAFETY: the preload's own mmap hook, with the caller's arguments.
    unsafe { crate::hooks::files::hk_mmap(addr, len, prot, flags, fd, off) }
}

unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let a = [domain as u64, ty as u64, protocol as u64, 0, 0, 0];
    internal(libc::SYS_socket, a) as c_int
}

unsafe extern "C" fn connect(fd: c_int, addr: *const c_void, len: u32) -> c_int {
    let a = [fd as u64, addr as u64, len as u64, 0, 0, 0];
    internal(libc::SYS_connect, a) as c_int
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

/// `dladdr1`'s request for the symbol table entry (glibc's `dlfcn.h`; not
/// in the libc crate).
const RTLD_DL_SYMENT: c_int = 1;

/// Where libc's function `name` starts, if it is libc's own and long
/// enough to hold a jump.
fn locate(libc_handle: *mut c_void, name: &[u8]) -> Option<usize> {
    // SAFETY: a handle from dlopen and a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc_handle, name.as_ptr().cast()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: zeroed Dl_info and Elf64_Sym are valid values to be filled in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut sym: *const libc::Elf64_Sym = std::ptr::null();
    // SAFETY: dladdr1 fills `info` and points `sym` at the symbol's entry
    // in the object's dynamic symbol table (mapped for its lifetime).
    let ok = unsafe {
        libc::dladdr1(
            f,
            &mut info,
            (&mut sym as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        )
    };
    // SAFETY: `sym`, when set, points into the symbol table (see above).
    let size = (ok != 0 && !sym.is_null()).then(|| unsafe { (*sym).st_size });
    (info.dli_saddr == f && size.is_some_and(|s| s >= 8)).then_some(f as usize)
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

/// Points libc's internal file calls at this module (see the module
/// documentation). Called once the process is attached and the gate
/// mapped; does nothing if any of it cannot be done, and nothing outside
/// the seccomp net: there, libc's other internal calls (its `socket`, for
/// one) reach the host, and the descriptors they return must reach the
/// host too when libc reads or closes them.
pub fn install() {
    if !shim::gatepage::mapped() || !under_net() {
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
        let Some(site) = locate(h, name) else {
            return;
        };
        let Some(j) = jump(site, to) else {
            return;
        };
        patches.push((site, j));
    }
    let mem = c"/proc/self/mem";
    // SAFETY: openat through the gate with a NUL-terminated path.
    let fd = unsafe {
        crate::gate::syscall6(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as u64,
                mem.as_ptr() as u64,
                (libc::O_RDWR | libc::O_CLOEXEC) as u64,
                0,
                0,
                0,
            ],
        )
    };
    if fd < 0 {
        return;
    }
    for (site, j) in patches {
        // SAFETY: pwrite64 of 5 bytes from a local buffer to our own
        // memory file, at the entry of a libc function no other thread is
        // running yet (the program has not started).
        let n = unsafe {
            crate::gate::syscall6(
                libc::SYS_pwrite64,
                [fd as u64, j.as_ptr() as u64, 5, site as u64, 0, 0],
            )
        };
        if n != 5 {
            break;
        }
    }
    // SAFETY: closing the descriptor opened above, through the gate.
    unsafe { crate::gate::syscall6(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_are_relative_to_the_next_instruction() {
        assert_eq!(jump(0x1000, 0x1005), Some([0xe9, 0, 0, 0, 0]));
        assert_eq!(jump(0x1000, 0x1000), Some([0xe9, 0xfb, 0xff, 0xff, 0xff]));
        assert_eq!(jump(0x1000, 0x1_0000_1000), None);
    }
}
