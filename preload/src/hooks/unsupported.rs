//! Calls on DC descriptors that dvs does not serve yet: they fail with
//! `ENOSYS` and a one-line report, instead of acting on host descriptors
//! that happen to have the same numbers.

use crate::sys;
use libc::*;

sys!(chroot => hk_chroot(p: *const c_char) -> c_int, SYS_chroot, [p]);

redhook::hook! {
    unsafe fn posix_fadvise(fd: c_int, o: off_t, l: off_t, a: c_int) -> c_int => hk_posix_fadvise {
        // Advice is only a hint: accepting it without effect is correct.
        let _ = (fd, o, l, a);
        0
    }
}

redhook::hook! {
    unsafe fn posix_fadvise64(fd: c_int, o: off_t, l: off_t, a: c_int) -> c_int => hk_posix_fadvise64 {
        let _ = (fd, o, l, a);
        0
    }
}
