//! `setlocale` and `newlocale`: loading a locale is glibc opening, reading
//! and mapping its files from inside libc, which the preload serves once it
//! has patched libc ([`crate::libc_internal`]); their first call patches it.

use libc::{c_char, c_int, locale_t};

redhook::hook! {
    unsafe fn setlocale(category: c_int, locale: *const c_char) -> *mut c_char => hk_setlocale {
        crate::libc_internal::install();
        // SAFETY: the real libc function with the caller's arguments.
        unsafe { redhook::real!(setlocale)(category, locale) }
    }
}

redhook::hook! {
    unsafe fn newlocale(mask: c_int, locale: *const c_char, base: locale_t) -> locale_t => hk_newlocale {
        crate::libc_internal::install();
        // SAFETY: the real libc function with the caller's arguments.
        unsafe { redhook::real!(newlocale)(mask, locale, base) }
    }
}
