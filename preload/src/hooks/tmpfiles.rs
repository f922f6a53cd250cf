//! Temporary files (`mkstemp` and friends, `mkdtemp`, `tmpfile`): glibc
//! creates them with internal calls, which would make host files with host
//! descriptors; here they are created through FS.

use crate::state::{enter, hooked, set_errno};
use libc::*;
use std::sync::atomic::{AtomicU64, Ordering};

static SEED: AtomicU64 = AtomicU64::new(0);

/// Six fresh name characters.
fn letters() -> [u8; 6] {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ t
        ^ (std::process::id() as u64) << 32;
    let mut out = [0u8; 6];
    for c in out.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *c = CHARS[(x % CHARS.len() as u64) as usize];
    }
    out
}

/// Fills the `XXXXXX` before a `suffix`-byte suffix of `template` and
/// runs `make` until it does not fail with `EEXIST`.
fn fill(template: *mut c_char, suffix: c_int, mut make: impl FnMut(*const c_char) -> i64) -> i64 {
    if template.is_null() || suffix < 0 {
        set_errno(EINVAL);
        return -1;
    }
    // SAFETY: a NUL-terminated, writable template from the caller.
    let len = unsafe { strlen(template) };
    let suffix = suffix as usize;
    if len < 6 + suffix {
        set_errno(EINVAL);
        return -1;
    }
    let start = len - 6 - suffix;
    // SAFETY: `start..start+6` lies inside the template (checked above).
    let xs = unsafe { std::slice::from_raw_parts_mut(template.add(start) as *mut u8, 6) };
    if xs != b"XXXXXX" {
        set_errno(EINVAL);
        return -1;
    }
    for _ in 0..1000 {
        xs.copy_from_slice(&letters());
        let r = make(template);
        // SAFETY: reading this thread's errno.
        if r >= 0 || unsafe { *__errno_location() } != EEXIST {
            return r;
        }
    }
    set_errno(EEXIST);
    -1
}

fn open_excl(path: *const c_char, flags: c_int) -> i64 {
    let f = (flags & !O_ACCMODE) | O_RDWR | O_CREAT | O_EXCL;
    hooked(
        SYS_openat,
        [AT_FDCWD as u64, path as u64, f as u64, 0o600, 0, 0],
        || -(ENOSYS as i64),
    )
}

fn mkostemps_impl(t: *mut c_char, suffix: c_int, flags: c_int) -> c_int {
    fill(t, suffix, |p| open_excl(p, flags)) as c_int
}

macro_rules! tmp_hook {
    ($name:ident => $hook:ident ( $($arg:ident : $ty:ty),* ), $t:expr, $suffix:expr, $flags:expr) => {
        redhook::hook! {
            unsafe fn $name($($arg: $ty),*) -> c_int => $hook {
                if enter().is_none() {
                    // SAFETY: the real libc function with the caller's arguments.
                    return unsafe { redhook::real!($name)($($arg),*) };
                }
                mkostemps_impl($t, $suffix, $flags)
            }
        }
    };
}

tmp_hook!(mkstemp => hk_mkstemp(t: *mut c_char), t, 0, 0);
tmp_hook!(mkstemp64 => hk_mkstemp64(t: *mut c_char), t, 0, 0);
tmp_hook!(mkostemp => hk_mkostemp(t: *mut c_char, f: c_int), t, 0, f);
tmp_hook!(mkostemp64 => hk_mkostemp64(t: *mut c_char, f: c_int), t, 0, f);
tmp_hook!(mkstemps => hk_mkstemps(t: *mut c_char, s: c_int), t, s, 0);
tmp_hook!(mkstemps64 => hk_mkstemps64(t: *mut c_char, s: c_int), t, s, 0);
tmp_hook!(mkostemps => hk_mkostemps(t: *mut c_char, s: c_int, f: c_int), t, s, f);
tmp_hook!(mkostemps64 => hk_mkostemps64(t: *mut c_char, s: c_int, f: c_int), t, s, f);

redhook::hook! {
    unsafe fn mkdtemp(t: *mut c_char) -> *mut c_char => hk_mkdtemp {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's argument.
            return unsafe { redhook::real!(mkdtemp)(t) };
        }
        let r = fill(t, 0, |p| {
            hooked(SYS_mkdir, [p as u64, 0o700, 0, 0, 0, 0], || -(ENOSYS as i64))
        });
        if r < 0 { std::ptr::null_mut() } else { t }
    }
}

fn tmpfile_impl() -> *mut FILE {
    let dir = std::env::var("TMPDIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/tmp".into());
    let Ok(mut t) =
        std::ffi::CString::new(format!("{dir}/tmpfXXXXXX")).map(|c| c.into_bytes_with_nul())
    else {
        set_errno(EINVAL);
        return std::ptr::null_mut();
    };
    let fd = mkostemps_impl(t.as_mut_ptr() as *mut c_char, 0, O_CLOEXEC);
    if fd < 0 {
        return std::ptr::null_mut();
    }
    hooked(SYS_unlink, [t.as_ptr() as u64, 0, 0, 0, 0, 0], || 0);
    crate::hooks::stdio::stream_on(fd, c"w+".as_ptr())
}

redhook::hook! {
    unsafe fn tmpfile() -> *mut FILE => hk_tmpfile {
        if enter().is_none() {
            // SAFETY: the real libc function.
            return unsafe { redhook::real!(tmpfile)() };
        }
        tmpfile_impl()
    }
}

redhook::hook! {
    unsafe fn tmpfile64() -> *mut FILE => hk_tmpfile64 {
        if enter().is_none() {
            // SAFETY: the real libc function.
            return unsafe { redhook::real!(tmpfile64)() };
        }
        tmpfile_impl()
    }
}
