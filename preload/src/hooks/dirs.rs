//! Directory streams (`opendir`, `readdir`...), implemented on DC
//! descriptors: glibc's own would read the host directory directly.

use crate::state::{self, enter, set_errno};
use libc::*;
use std::collections::HashSet;
use std::sync::Mutex;

/// A directory stream on a DC descriptor. Handed out as an opaque `DIR *`.
struct DcDir {
    fd: c_int,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    last_off: i64,
    ent: dirent64,
}

/// The streams this library created (others are glibc's).
static OURS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn register(p: *mut DcDir) {
    let mut g = OURS.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(HashSet::new).insert(p as usize);
}

fn is_ours(d: *mut DIR) -> bool {
    let g = OURS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().is_some_and(|s| s.contains(&(d as usize)))
}

fn unregister(d: *mut DIR) -> bool {
    let mut g = OURS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_mut().is_some_and(|s| s.remove(&(d as usize)))
}

fn raw(nr: i64, a: [u64; 6]) -> i64 {
    match state::syscall(nr, a) {
        shim::Action::Ret(v) => v,
        _ => -(ENOSYS as i64),
    }
}

fn new_dir(fd: c_int) -> *mut DIR {
    // SAFETY: dirent64 is a plain C struct; all-zero is valid.
    let ent: dirent64 = unsafe { std::mem::zeroed() };
    let d = Box::into_raw(Box::new(DcDir {
        fd,
        buf: vec![0u8; 32 * 1024],
        pos: 0,
        len: 0,
        last_off: 0,
        ent,
    }));
    register(d);
    d as *mut DIR
}

redhook::hook! {
    unsafe fn opendir(path: *const c_char) -> *mut DIR => hk_opendir {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's argument.
            return unsafe { redhook::real!(opendir)(path) };
        };
        let fd = raw(SYS_openat, [AT_FDCWD as u64, path as u64, (O_RDONLY | O_DIRECTORY | O_CLOEXEC) as u64, 0, 0, 0]);
        if fd < 0 {
            set_errno((-fd) as i32);
            return std::ptr::null_mut();
        }
        new_dir(fd as c_int)
    }
}

redhook::hook! {
    unsafe fn fdopendir(fd: c_int) -> *mut DIR => hk_fdopendir {
        let Some(_g) = enter() else {
            // SAFETY: the real libc function with the caller's argument.
            return unsafe { redhook::real!(fdopendir)(fd) };
        };
        // SAFETY: a zeroed stat buffer for FS to fill.
        let mut st: stat = unsafe { std::mem::zeroed() };
        let r = raw(SYS_fstat, [fd as u64, &mut st as *mut stat as u64, 0, 0, 0, 0]);
        if r < 0 {
            set_errno((-r) as i32);
            return std::ptr::null_mut();
        }
        if st.st_mode & S_IFMT != S_IFDIR {
            set_errno(ENOTDIR);
            return std::ptr::null_mut();
        }
        new_dir(fd)
    }
}

/// Next entry of one of our streams. `errno` changes only on failure:
/// callers tell the end of the stream from an error by it, and waiting for
/// FS may leave a stale value (a futex `EAGAIN`).
fn next(d: &mut DcDir) -> *mut dirent64 {
    if d.pos >= d.len {
        let saved = state::errno();
        let n = raw(
            SYS_getdents64,
            [
                d.fd as u64,
                d.buf.as_mut_ptr() as u64,
                d.buf.len() as u64,
                0,
                0,
                0,
            ],
        );
        if n < 0 {
            set_errno((-n) as i32);
            return std::ptr::null_mut();
        }
        set_errno(saved);
        if n == 0 {
            return std::ptr::null_mut();
        }
        d.len = n as usize;
        d.pos = 0;
    }
    // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name.
    let b = &d.buf[d.pos..d.len];
    if b.len() < 19 {
        d.pos = d.len;
        return std::ptr::null_mut();
    }
    let ino = u64::from_ne_bytes(b[0..8].try_into().unwrap_or_default());
    let off = i64::from_ne_bytes(b[8..16].try_into().unwrap_or_default());
    let reclen = u16::from_ne_bytes([b[16], b[17]]) as usize;
    if reclen < 19 || reclen > b.len() {
        d.pos = d.len;
        return std::ptr::null_mut();
    }
    let name = &b[19..reclen];
    let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
    d.ent.d_ino = ino;
    d.ent.d_off = off;
    d.ent.d_reclen = std::mem::size_of::<dirent64>() as u16;
    d.ent.d_type = b[18];
    let n = name.len().min(255);
    for (dst, &src) in d.ent.d_name.iter_mut().zip(&name[..n]) {
        *dst = src as c_char;
    }
    d.ent.d_name[n] = 0;
    d.pos += reclen;
    d.last_off = off;
    &mut d.ent
}

redhook::hook! {
    unsafe fn readdir64(dir: *mut DIR) -> *mut dirent64 => hk_readdir64 {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(readdir64)(dir) };
        }
        let _g = enter();
        // SAFETY: `dir` is one of our live streams (registered, not closed).
        next(unsafe { &mut *(dir as *mut DcDir) })
    }
}

redhook::hook! {
    unsafe fn readdir(dir: *mut DIR) -> *mut dirent => hk_readdir {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(readdir)(dir) };
        }
        let _g = enter();
        // SAFETY: as above; on x86-64 dirent and dirent64 have one layout.
        next(unsafe { &mut *(dir as *mut DcDir) }) as *mut dirent
    }
}

redhook::hook! {
    unsafe fn closedir(dir: *mut DIR) -> c_int => hk_closedir {
        if !unregister(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(closedir)(dir) };
        }
        // SAFETY: it was created by Box::into_raw in new_dir and is now
        // out of the registry, so this is the only release.
        let d = unsafe { Box::from_raw(dir as *mut DcDir) };
        let _g = enter();
        let r = raw(SYS_close, [d.fd as u64, 0, 0, 0, 0, 0]);
        if r < 0 {
            set_errno((-r) as i32);
            return -1;
        }
        0
    }
}

redhook::hook! {
    unsafe fn dirfd(dir: *mut DIR) -> c_int => hk_dirfd {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(dirfd)(dir) };
        }
        // SAFETY: one of our live streams.
        unsafe { (*(dir as *mut DcDir)).fd }
    }
}

redhook::hook! {
    unsafe fn rewinddir(dir: *mut DIR) => hk_rewinddir {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(rewinddir)(dir) };
        }
        let _g = enter();
        // SAFETY: one of our live streams.
        let d = unsafe { &mut *(dir as *mut DcDir) };
        raw(SYS_lseek, [d.fd as u64, 0, SEEK_SET as u64, 0, 0, 0]);
        d.pos = 0;
        d.len = 0;
        d.last_off = 0;
    }
}

redhook::hook! {
    unsafe fn telldir(dir: *mut DIR) -> c_long => hk_telldir {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(telldir)(dir) };
        }
        // SAFETY: one of our live streams.
        unsafe { (*(dir as *mut DcDir)).last_off as c_long }
    }
}

redhook::hook! {
    unsafe fn seekdir(dir: *mut DIR, off: c_long) => hk_seekdir {
        if !is_ours(dir) {
            // SAFETY: a glibc stream, given back to glibc.
            return unsafe { redhook::real!(seekdir)(dir, off) };
        }
        let _g = enter();
        // SAFETY: one of our live streams.
        let d = unsafe { &mut *(dir as *mut DcDir) };
        raw(SYS_lseek, [d.fd as u64, off as u64, SEEK_SET as u64, 0, 0, 0]);
        d.pos = 0;
        d.len = 0;
        d.last_off = off as i64;
    }
}
