//! Wide-character standard I/O on the preload's streams. A stream on a DC
//! descriptor is an `fopencookie` stream ([`super::stdio`]), which glibc
//! makes byte-oriented for good: it has no wide-character data, so
//! glibc's `getwc` on it crashed (util-linux's `rev`) and its `putwc` and
//! `wprintf` wrote nothing (`column`, `col`). On such streams the wide
//! functions are the preload's: a wide character goes in and out as the
//! bytes of its multibyte form in the locale's `LC_CTYPE`, which is what
//! glibc's conversion of a wide stream writes and reads. Other streams go
//! to glibc. Not served: the `wscanf` family (it still fails on these
//! streams), and byte orientation (`fwide(f, 0)` says 0 after byte I/O,
//! where glibc says -1).
//!
//! `wprintf`, `fwprintf` and their fortified forms are C-variadic, which
//! Rust cannot define: each is a few instructions that make its list a
//! `va_list`, as the callee of a C `va_start` would (x86-64 System V: the
//! six argument registers and, when `al` says vector registers carry
//! arguments, the eight `xmm` registers in a save area, the stacked
//! arguments above the return address), and pass it to the `v` form.

use super::stdio::ours;
use crate::state::set_errno;
use libc::{c_char, c_int, size_t, wchar_t, FILE};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// glibc's `wint_t`.
type WInt = u32;
const WEOF: WInt = u32::MAX;
/// glibc's `MB_LEN_MAX`.
const MB_LEN_MAX: usize = 16;
/// glibc's `_IO_ERR_SEEN`, the error mark in a `FILE`'s `_flags`.
const IO_ERR_SEEN: c_int = 0x20;
/// The longest output one `wprintf` formats here, in wide characters.
const MAX_FORMATTED: usize = 1 << 22;

/// glibc's `mbstate_t`.
#[repr(C)]
#[derive(Default)]
struct MbState([u32; 2]);

/// A `va_list` of x86-64 System V (`va_list` is an array of one of
/// these, so functions take a pointer to it).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VaList {
    gp_offset: u32,
    fp_offset: u32,
    overflow_arg_area: *mut libc::c_void,
    reg_save_area: *mut libc::c_void,
}

extern "C" {
    fn mbrtowc(pwc: *mut wchar_t, s: *const c_char, n: size_t, ps: *mut MbState) -> size_t;
    fn wcrtomb(s: *mut c_char, wc: wchar_t, ps: *mut MbState) -> size_t;
    fn vswprintf(s: *mut wchar_t, n: size_t, fmt: *const wchar_t, ap: *mut VaList) -> c_int;
    static mut stdin: *mut FILE;
    static mut stdout: *mut FILE;
}

/// Our streams that a wide call made wide-oriented (what `fwide` says).
static WIDE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

fn wide(f: *mut FILE) -> bool {
    WIDE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&(f as usize))
}

fn set_wide(f: *mut FILE) {
    WIDE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(f as usize);
}

/// Stream `f` was closed: a stream opened later at its address starts
/// without an orientation.
pub fn forget(f: usize) {
    WIDE.lock().unwrap_or_else(|e| e.into_inner()).remove(&f);
}

/// Marks an error on `f`, as glibc does when a conversion fails.
fn mark_error(f: *mut FILE) {
    // SAFETY: `f` is one of our live streams; `_flags` is the first field
    // of glibc's public `struct _IO_FILE`.
    unsafe { *(f as *mut c_int) |= IO_ERR_SEEN };
}

/// The next wide character of our stream `f`: the bytes of one multibyte
/// character, read one at a time (the stream buffers them). Bytes that
/// are no character (`EILSEQ`) stay unread, as with glibc, whose next
/// read fails on them again.
fn get(f: *mut FILE) -> WInt {
    set_wide(f);
    let mut st = MbState::default();
    let mut taken = [0u8; MB_LEN_MAX];
    let mut n = 0;
    let fail = |taken: &[u8]| {
        for &b in taken.iter().rev() {
            // SAFETY: `f` is a live stream.
            unsafe { libc::ungetc(c_int::from(b), f) };
        }
        set_errno(libc::EILSEQ);
        mark_error(f);
        WEOF
    };
    loop {
        // SAFETY: `f` is a live stream.
        let c = unsafe { libc::fgetc(f) };
        if c == libc::EOF {
            // A character cut short by the end of the file is no error
            // (glibc's `fgetws` keeps the line before it).
            return WEOF;
        }
        taken[n] = c as u8;
        n += 1;
        let mut wc: wchar_t = 0;
        // SAFETY: one byte, a state of our own.
        let r = unsafe { mbrtowc(&mut wc, taken[n - 1..].as_ptr().cast(), 1, &mut st) };
        match r {
            // Incomplete: one more byte.
            r if r == usize::MAX - 1 && n < MB_LEN_MAX => continue,
            r if r >= usize::MAX - 1 => return fail(&taken[..n]),
            _ => return wc as WInt,
        }
    }
}

/// The multibyte form of `wc`, or `None` (`EILSEQ`).
fn encode(wc: wchar_t, out: &mut Vec<u8>) -> bool {
    let mut buf = [0 as c_char; MB_LEN_MAX];
    let mut st = MbState::default();
    // SAFETY: `buf` holds MB_LEN_MAX bytes, the most one character takes.
    let n = unsafe { wcrtomb(buf.as_mut_ptr(), wc, &mut st) };
    if n == usize::MAX {
        set_errno(libc::EILSEQ);
        return false;
    }
    out.extend(buf[..n].iter().map(|&b| b as u8));
    true
}

/// Writes the multibyte form of `ws` (`n` wide characters) to our stream
/// `f`; false on an unencodable character or a write error.
fn put(f: *mut FILE, ws: &[wchar_t]) -> bool {
    set_wide(f);
    let mut bytes = Vec::with_capacity(ws.len());
    if !ws.iter().all(|&wc| encode(wc, &mut bytes)) {
        mark_error(f);
        return false;
    }
    // SAFETY: `bytes` is ours; `f` is a live stream.
    unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), f) == bytes.len() }
}

/// The wide string at `ws` (up to its NUL).
///
/// # Safety
/// `ws` is a NUL-terminated wide string (the C contract of the caller).
unsafe fn wide_str<'a>(ws: *const wchar_t) -> &'a [wchar_t] {
    let mut n = 0;
    // SAFETY: the caller's string is NUL-terminated.
    while unsafe { *ws.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` characters before the NUL.
    unsafe { std::slice::from_raw_parts(ws, n) }
}

fn getws(ws: *mut wchar_t, n: c_int, f: *mut FILE) -> *mut wchar_t {
    if n <= 0 || ws.is_null() {
        set_errno(libc::EINVAL);
        return std::ptr::null_mut();
    }
    let mut i = 0;
    let mut failed = false;
    while i + 1 < n as usize {
        let w = get(f);
        if w == WEOF {
            // SAFETY: `f` is a live stream.
            failed = unsafe { libc::ferror(f) } != 0;
            break;
        }
        // SAFETY: `i < n - 1`, within the caller's array.
        unsafe { *ws.add(i) = w as wchar_t };
        i += 1;
        if w == '\n' as WInt {
            break;
        }
    }
    if failed || (i == 0 && n > 1) {
        return std::ptr::null_mut();
    }
    // SAFETY: `i < n`.
    unsafe { *ws.add(i) = 0 };
    ws
}

fn ungetw(wc: WInt, f: *mut FILE) -> WInt {
    let mut bytes = Vec::new();
    if wc == WEOF || !encode(wc as wchar_t, &mut bytes) {
        return WEOF;
    }
    set_wide(f);
    for &b in bytes.iter().rev() {
        // SAFETY: `f` is a live stream.
        if unsafe { libc::ungetc(c_int::from(b), f) } == libc::EOF {
            return WEOF;
        }
    }
    wc
}

fn putw(wc: wchar_t, f: *mut FILE) -> WInt {
    if put(f, &[wc]) {
        wc as WInt
    } else {
        WEOF
    }
}

/// `vfwprintf` to our stream `f`: formatted in wide characters here, then
/// written in multibyte form. Returns the number of wide characters.
fn printw(f: *mut FILE, fmt: *const wchar_t, ap: *mut VaList) -> c_int {
    let mut size = 256;
    loop {
        let mut buf: Vec<wchar_t> = vec![0; size];
        // A copy for each try (`va_copy` is a copy of the structure).
        // SAFETY: `ap` is the caller's `va_list`.
        let mut copy = unsafe { *ap };
        // SAFETY: `buf` holds `size` wide characters; the format and list
        // are the caller's.
        let n = unsafe { vswprintf(buf.as_mut_ptr(), size, fmt, &mut copy) };
        if n >= 0 {
            return if put(f, &buf[..n as usize]) { n } else { -1 };
        }
        // -1: the output did not fit, or it cannot be formatted.
        if size >= MAX_FORMATTED {
            set_errno(libc::EOVERFLOW);
            return -1;
        }
        size *= 16;
    }
}

/// The standard input and output streams.
fn std_in() -> *mut FILE {
    // SAFETY: reading libc's stream pointer.
    unsafe { stdin }
}

fn std_out() -> *mut FILE {
    // SAFETY: as above.
    unsafe { stdout }
}

/// Defines a hook of a wide `get`-like function of one stream argument.
macro_rules! get_hook {
    ($($name:ident => $hook:ident),*) => {$(
        redhook::hook! {
            unsafe fn $name(f: *mut FILE) -> WInt => $hook {
                if ours(f) {
                    return get(f);
                }
                // SAFETY: the real libc function with the caller's argument.
                unsafe { redhook::real!($name)(f) }
            }
        }
    )*};
}

get_hook!(fgetwc => hk_fgetwc, getwc => hk_getwc, fgetwc_unlocked => hk_fgetwc_unlocked,
    getwc_unlocked => hk_getwc_unlocked);

/// Defines a hook of a wide `put`-like function (`wc`, stream).
macro_rules! put_hook {
    ($($name:ident => $hook:ident),*) => {$(
        redhook::hook! {
            unsafe fn $name(wc: wchar_t, f: *mut FILE) -> WInt => $hook {
                if ours(f) {
                    return putw(wc, f);
                }
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!($name)(wc, f) }
            }
        }
    )*};
}

put_hook!(fputwc => hk_fputwc, putwc => hk_putwc, fputwc_unlocked => hk_fputwc_unlocked,
    putwc_unlocked => hk_putwc_unlocked);

redhook::hook! {
    unsafe fn getwchar() -> WInt => hk_getwchar {
        // SAFETY: fgetwc's hook with the standard input.
        unsafe { hk_fgetwc(std_in()) }
    }
}

redhook::hook! {
    unsafe fn getwchar_unlocked() -> WInt => hk_getwchar_unlocked {
        // SAFETY: as above.
        unsafe { hk_fgetwc(std_in()) }
    }
}

redhook::hook! {
    unsafe fn putwchar(wc: wchar_t) -> WInt => hk_putwchar {
        // SAFETY: fputwc's hook with the standard output.
        unsafe { hk_fputwc(wc, std_out()) }
    }
}

redhook::hook! {
    unsafe fn putwchar_unlocked(wc: wchar_t) -> WInt => hk_putwchar_unlocked {
        // SAFETY: as above.
        unsafe { hk_fputwc(wc, std_out()) }
    }
}

redhook::hook! {
    unsafe fn ungetwc(wc: WInt, f: *mut FILE) -> WInt => hk_ungetwc {
        if ours(f) {
            return ungetw(wc, f);
        }
        // SAFETY: the real libc function with the caller's arguments.
        unsafe { redhook::real!(ungetwc)(wc, f) }
    }
}

/// Defines a hook of `fgetws` or its unlocked form.
macro_rules! getws_hook {
    ($($name:ident => $hook:ident),*) => {$(
        redhook::hook! {
            unsafe fn $name(ws: *mut wchar_t, n: c_int, f: *mut FILE) -> *mut wchar_t => $hook {
                if ours(f) {
                    return getws(ws, n, f);
                }
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!($name)(ws, n, f) }
            }
        }
    )*};
}

getws_hook!(fgetws => hk_fgetws, fgetws_unlocked => hk_fgetws_unlocked);

/// Defines a hook of `fputws` or its unlocked form.
macro_rules! putws_hook {
    ($($name:ident => $hook:ident),*) => {$(
        redhook::hook! {
            unsafe fn $name(ws: *const wchar_t, f: *mut FILE) -> c_int => $hook {
                if ours(f) {
                    // SAFETY: the caller's NUL-terminated string.
                    return if put(f, unsafe { wide_str(ws) }) { 1 } else { -1 };
                }
                // SAFETY: the real libc function with the caller's arguments.
                unsafe { redhook::real!($name)(ws, f) }
            }
        }
    )*};
}

putws_hook!(fputws => hk_fputws, fputws_unlocked => hk_fputws_unlocked);

redhook::hook! {
    unsafe fn fwide(f: *mut FILE, mode: c_int) -> c_int => hk_fwide {
        if !ours(f) {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(fwide)(f, mode) };
        }
        if mode > 0 {
            set_wide(f);
        }
        c_int::from(wide(f))
    }
}

redhook::hook! {
    unsafe fn vfwprintf(f: *mut FILE, fmt: *const wchar_t, ap: *mut VaList) -> c_int => hk_vfwprintf {
        if ours(f) {
            return printw(f, fmt, ap);
        }
        // SAFETY: the real libc function with the caller's arguments.
        unsafe { redhook::real!(vfwprintf)(f, fmt, ap) }
    }
}

redhook::hook! {
    unsafe fn vwprintf(fmt: *const wchar_t, ap: *mut VaList) -> c_int => hk_vwprintf {
        // SAFETY: vfwprintf's hook with the standard output.
        unsafe { hk_vfwprintf(std_out(), fmt, ap) }
    }
}

redhook::hook! {
    unsafe fn __vfwprintf_chk(f: *mut FILE, flag: c_int, fmt: *const wchar_t, ap: *mut VaList) -> c_int => hk_vfwprintf_chk {
        if ours(f) {
            return printw(f, fmt, ap);
        }
        // SAFETY: the real libc function with the caller's arguments.
        unsafe { redhook::real!(__vfwprintf_chk)(f, flag, fmt, ap) }
    }
}

redhook::hook! {
    unsafe fn __vwprintf_chk(flag: c_int, fmt: *const wchar_t, ap: *mut VaList) -> c_int => hk_vwprintf_chk {
        // SAFETY: the fortified vfwprintf's hook with the standard output.
        unsafe { hk_vfwprintf_chk(std_out(), flag, fmt, ap) }
    }
}

/// The `v` forms as the variadic entry points call them (C ABI).
unsafe extern "C" fn va_fwprintf(f: *mut FILE, fmt: *const wchar_t, ap: *mut VaList) -> c_int {
    // SAFETY: the entry point's arguments and the list it built.
    unsafe { hk_vfwprintf(f, fmt, ap) }
}

unsafe extern "C" fn va_wprintf(fmt: *const wchar_t, ap: *mut VaList) -> c_int {
    // SAFETY: as above.
    unsafe { hk_vwprintf(fmt, ap) }
}

unsafe extern "C" fn va_fwprintf_chk(
    f: *mut FILE,
    flag: c_int,
    fmt: *const wchar_t,
    ap: *mut VaList,
) -> c_int {
    // SAFETY: as above.
    unsafe { hk_vfwprintf_chk(f, flag, fmt, ap) }
}

unsafe extern "C" fn va_wprintf_chk(flag: c_int, fmt: *const wchar_t, ap: *mut VaList) -> c_int {
    // SAFETY: as above.
    unsafe { hk_vwprintf_chk(flag, fmt, ap) }
}

/// Defines C-variadic entry point `$name`, whose `$named` named arguments
/// are integers or pointers, as a call of `$target(named..., ap)` (see the
/// module comment). Stack: a 176-byte register save area at `rsp`, the
/// `va_list` above it, and 16 bytes of padding that keep `rsp` 16-byte
/// aligned at the call.
macro_rules! variadic {
    ($name:ident ( $($arg:ident : $ty:ty),* ), $named:expr, $ap:literal, $target:path) => {
        /// The libc function of the same name (see the module comment).
        ///
        /// # Safety
        /// The C contract of the function: a format and the arguments it
        /// names.
        #[unsafe(naked)]
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            core::arch::naked_asm!(
                "sub rsp, 216",
                "mov [rsp], rdi",
                "mov [rsp + 8], rsi",
                "mov [rsp + 16], rdx",
                "mov [rsp + 24], rcx",
                "mov [rsp + 32], r8",
                "mov [rsp + 40], r9",
                "test al, al",
                "je 2f",
                "movaps [rsp + 48], xmm0",
                "movaps [rsp + 64], xmm1",
                "movaps [rsp + 80], xmm2",
                "movaps [rsp + 96], xmm3",
                "movaps [rsp + 112], xmm4",
                "movaps [rsp + 128], xmm5",
                "movaps [rsp + 144], xmm6",
                "movaps [rsp + 160], xmm7",
                "2:",
                // gp_offset past the named arguments, fp_offset at the
                // first vector register.
                "mov dword ptr [rsp + 176], {gp}",
                "mov dword ptr [rsp + 180], 48",
                // The stacked arguments: above the return address.
                "lea rax, [rsp + 224]",
                "mov [rsp + 184], rax",
                "mov [rsp + 192], rsp",
                concat!("lea ", $ap, ", [rsp + 176]"),
                "call {f}",
                "add rsp, 216",
                "ret",
                gp = const $named * 8,
                f = sym $target,
            )
        }
    };
}

variadic!(fwprintf(f: *mut FILE, fmt: *const wchar_t), 2, "rdx", va_fwprintf);
variadic!(wprintf(fmt: *const wchar_t), 1, "rsi", va_wprintf);
variadic!(__fwprintf_chk(f: *mut FILE, flag: c_int, fmt: *const wchar_t), 3, "rcx", va_fwprintf_chk);
variadic!(__wprintf_chk(flag: c_int, fmt: *const wchar_t), 2, "rdx", va_wprintf_chk);
