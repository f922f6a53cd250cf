//! Standard I/O on DC descriptors. glibc's `FILE` streams read and write
//! their descriptor with internal calls this library cannot interpose, so
//! streams on DC descriptors are `fopencookie` streams whose functions go
//! through the shim; `stdin`, `stdout` and `stderr` are replaced by such
//! streams at start. `freopen` of such a stream is ours too (glibc's
//! assumes a file stream's wide-character data), and so are the wide
//! functions on them ([`super::wstdio`]).

use crate::state::{enter, hooked, set_errno};
use libc::*;
use std::collections::HashMap;
use std::sync::Mutex;

type ReadFn = unsafe extern "C" fn(*mut c_void, *mut c_char, size_t) -> ssize_t;
type WriteFn = unsafe extern "C" fn(*mut c_void, *const c_char, size_t) -> ssize_t;
type SeekFn = unsafe extern "C" fn(*mut c_void, *mut off64_t, c_int) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// glibc's `cookie_io_functions_t`.
#[repr(C)]
struct CookieIo {
    read: Option<ReadFn>,
    write: Option<WriteFn>,
    seek: Option<SeekFn>,
    close: Option<CloseFn>,
}

extern "C" {
    fn fopencookie(cookie: *mut c_void, mode: *const c_char, io: CookieIo) -> *mut FILE;
}

/// The descriptor behind each of our streams (by `FILE *`).
static STREAMS: Mutex<Option<HashMap<usize, c_int>>> = Mutex::new(None);

/// The cookie of one of our streams.
struct Cookie {
    fd: c_int,
    file: usize,
}

fn streams<R>(f: impl FnOnce(&mut HashMap<usize, c_int>) -> R) -> R {
    let mut g = STREAMS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn raw(nr: i64, a: [u64; 6]) -> i64 {
    hooked(nr, a, || -(ENOSYS as i64))
}

unsafe extern "C" fn ck_read(c: *mut c_void, buf: *mut c_char, n: size_t) -> ssize_t {
    // SAFETY: `c` is the Cookie we registered with this stream.
    let fd = unsafe { (*(c as *const Cookie)).fd };
    raw(SYS_read, [fd as u64, buf as u64, n as u64, 0, 0, 0]) as ssize_t
}

unsafe extern "C" fn ck_write(c: *mut c_void, buf: *const c_char, n: size_t) -> ssize_t {
    // SAFETY: as above.
    let fd = unsafe { (*(c as *const Cookie)).fd };
    let r = raw(SYS_write, [fd as u64, buf as u64, n as u64, 0, 0, 0]);
    // A cookie write of 0 means error to glibc.
    if r == 0 && n > 0 {
        return -1;
    }
    r as ssize_t
}

unsafe extern "C" fn ck_seek(c: *mut c_void, off: *mut off64_t, whence: c_int) -> c_int {
    // SAFETY: as above; `off` is provided by glibc.
    let fd = unsafe { (*(c as *const Cookie)).fd };
    let o = unsafe { *off };
    let r = raw(SYS_lseek, [fd as u64, o as u64, whence as u64, 0, 0, 0]);
    if r < 0 {
        return -1;
    }
    // SAFETY: writing back the new offset for glibc.
    unsafe { *off = r };
    0
}

unsafe extern "C" fn ck_close(c: *mut c_void) -> c_int {
    // SAFETY: the Cookie was leaked by `cookie_stream`; glibc calls close
    // once, so reclaiming it here is the only release.
    let ck = unsafe { Box::from_raw(c as *mut Cookie) };
    streams(|m| m.remove(&ck.file));
    super::wstdio::forget(ck.file);
    raw(SYS_close, [ck.fd as u64, 0, 0, 0, 0, 0]) as c_int
}

/// A stream on DC descriptor `fd` with glibc mode string `mode`.
fn cookie_stream(fd: c_int, mode: *const c_char) -> *mut FILE {
    let ck = Box::into_raw(Box::new(Cookie { fd, file: 0 }));
    let funcs = CookieIo {
        read: Some(ck_read),
        write: Some(ck_write),
        seek: Some(ck_seek),
        close: Some(ck_close),
    };
    // SAFETY: a valid mode string and function table; the cookie lives
    // until ck_close.
    let f = unsafe { fopencookie(ck as *mut c_void, mode, funcs) };
    if f.is_null() {
        // SAFETY: reclaiming the cookie nobody else saw.
        drop(unsafe { Box::from_raw(ck) });
        return f;
    }
    // SAFETY: ck is live (owned by the stream now).
    unsafe { (*ck).file = f as usize };
    streams(|m| m.insert(f as usize, fd));
    f
}

/// Whether `f` is one of our streams.
pub fn ours(f: *mut FILE) -> bool {
    streams(|m| m.contains_key(&(f as usize)))
}

/// A stream on DC descriptor `fd` (for the other hooks).
pub fn stream_on(fd: c_int, mode: *const c_char) -> *mut FILE {
    cookie_stream(fd, mode)
}

/// `open(2)` flags for a stdio mode string.
fn mode_flags(mode: &[u8]) -> Option<c_int> {
    let mut f = match mode.first()? {
        b'r' => O_RDONLY,
        b'w' => O_WRONLY | O_CREAT | O_TRUNC,
        b'a' => O_WRONLY | O_CREAT | O_APPEND,
        _ => return None,
    };
    for &c in &mode[1..] {
        match c {
            b'+' => f = (f & !(O_RDONLY | O_WRONLY)) | O_RDWR,
            b'x' => f |= O_EXCL,
            b'e' => f |= O_CLOEXEC,
            _ => {}
        }
    }
    Some(f)
}

/// `open(2)` flags for the caller's mode string; `None` (errno `EINVAL`)
/// for a missing or bad one.
fn open_flags(mode: *const c_char) -> Option<c_int> {
    let flags = (!mode.is_null())
        // SAFETY: non-null C string from the caller.
        .then(|| unsafe { std::ffi::CStr::from_ptr(mode) }.to_bytes())
        .and_then(mode_flags);
    if flags.is_none() {
        set_errno(EINVAL);
    }
    flags
}

fn open_stream(path: *const c_char, mode: *const c_char) -> *mut FILE {
    let Some(flags) = open_flags(mode) else {
        return std::ptr::null_mut();
    };
    let fd = raw(
        SYS_openat,
        [AT_FDCWD as u64, path as u64, flags as u64, 0o666, 0, 0],
    );
    if fd < 0 {
        return std::ptr::null_mut();
    }
    let f = cookie_stream(fd as c_int, mode);
    if f.is_null() {
        raw(SYS_close, [fd as u64, 0, 0, 0, 0, 0]);
    }
    f
}

redhook::hook! {
    unsafe fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE => hk_fopen {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(fopen)(path, mode) };
        }
        open_stream(path, mode)
    }
}

redhook::hook! {
    unsafe fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE => hk_fopen64 {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(fopen64)(path, mode) };
        }
        open_stream(path, mode)
    }
}

redhook::hook! {
    unsafe fn fdopen(fd: c_int, mode: *const c_char) -> *mut FILE => hk_fdopen {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(fdopen)(fd, mode) };
        }
        // Check the descriptor like glibc does.
        let r = raw(SYS_fcntl, [fd as u64, F_GETFL as u64, 0, 0, 0, 0]);
        if r < 0 {
            return std::ptr::null_mut();
        }
        cookie_stream(fd, mode)
    }
}

redhook::hook! {
    unsafe fn fileno(f: *mut FILE) -> c_int => hk_fileno {
        if let Some(fd) = streams(|m| m.get(&(f as usize)).copied()) {
            return fd;
        }
        // SAFETY: the real libc function with the caller's argument.
        unsafe { redhook::real!(fileno)(f) }
    }
}

redhook::hook! {
    unsafe fn fileno_unlocked(f: *mut FILE) -> c_int => hk_fileno_unlocked {
        if let Some(fd) = streams(|m| m.get(&(f as usize)).copied()) {
            return fd;
        }
        // SAFETY: the real libc function with the caller's argument.
        unsafe { redhook::real!(fileno_unlocked)(f) }
    }
}

/// `freopen` of one of our streams. glibc's own would write through the
/// wide-character data of the stream, which a cookie stream does not have,
/// and crash. The stream keeps its descriptor number, as with glibc: the
/// new file is opened and moved onto it. Buffered data of the old file is
/// dropped, and the error and end-of-file marks are cleared. Without a
/// path (a change of mode) the stream stays as it is. The stream reads
/// or writes as its first mode allowed.
fn reopen(path: *const c_char, mode: *const c_char, f: *mut FILE, fd: c_int) -> *mut FILE {
    let Some(flags) = open_flags(mode) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `f` is one of our live streams.
    unsafe { fflush(f) };
    if !path.is_null() {
        let nfd = raw(
            SYS_openat,
            [AT_FDCWD as u64, path as u64, flags as u64, 0o666, 0, 0],
        );
        if nfd < 0 {
            return std::ptr::null_mut();
        }
        if nfd != i64::from(fd) {
            let cloexec = (flags & O_CLOEXEC) as u64;
            let r = raw(SYS_dup3, [nfd as u64, fd as u64, cloexec, 0, 0, 0]);
            raw(SYS_close, [nfd as u64, 0, 0, 0, 0, 0]);
            if r < 0 {
                return std::ptr::null_mut();
            }
        }
    }
    // SAFETY: as above; `__fpurge` drops what the buffer holds.
    unsafe {
        __fpurge(f);
        clearerr(f);
    }
    f
}

extern "C" {
    fn __fpurge(f: *mut FILE);
}

redhook::hook! {
    unsafe fn freopen(path: *const c_char, mode: *const c_char, f: *mut FILE) -> *mut FILE => hk_freopen {
        match streams(|m| m.get(&(f as usize)).copied()) {
            Some(fd) => reopen(path, mode, f, fd),
            // SAFETY: the real libc function with the caller's arguments.
            None => unsafe { redhook::real!(freopen)(path, mode, f) },
        }
    }
}

redhook::hook! {
    unsafe fn freopen64(path: *const c_char, mode: *const c_char, f: *mut FILE) -> *mut FILE => hk_freopen64 {
        match streams(|m| m.get(&(f as usize)).copied()) {
            Some(fd) => reopen(path, mode, f, fd),
            // SAFETY: the real libc function with the caller's arguments.
            None => unsafe { redhook::real!(freopen64)(path, mode, f) },
        }
    }
}

extern "C" {
    static mut stdin: *mut FILE;
    static mut stdout: *mut FILE;
    static mut stderr: *mut FILE;
}

/// Replaces the standard streams with streams on DC descriptors 0, 1, 2;
/// stdout is line-buffered if descriptor 1 is a terminal (`tty`, if
/// known, else asked).
pub fn install(tty: Option<bool>) {
    let out_mode = if tty.unwrap_or_else(|| crate::hooks::files::tty(1)) {
        _IOLBF
    } else {
        _IOFBF
    };
    let i = cookie_stream(0, c"r".as_ptr());
    let o = cookie_stream(1, c"w".as_ptr());
    let e = cookie_stream(2, c"w".as_ptr());
    // SAFETY: replacing the process's standard stream pointers before the
    // program's main runs; nothing holds the old values yet. setvbuf on a
    // fresh stream with no I/O done is valid.
    unsafe {
        if !i.is_null() {
            stdin = i;
        }
        if !o.is_null() {
            setvbuf(o, std::ptr::null_mut(), out_mode, BUFSIZ as size_t);
            stdout = o;
        }
        if !e.is_null() {
            setvbuf(e, std::ptr::null_mut(), _IONBF, 0);
            stderr = e;
        }
    }
}
