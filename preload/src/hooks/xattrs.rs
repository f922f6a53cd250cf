//! Extended attributes: glibc makes these system calls inline, so each
//! entry point is hooked.

use crate::sys;
use libc::*;

sys!(getxattr => hk_getxattr(p: *const c_char, n: *const c_char, v: *mut c_void, s: size_t) -> ssize_t, SYS_getxattr, [p, n, v, s]);
sys!(lgetxattr => hk_lgetxattr(p: *const c_char, n: *const c_char, v: *mut c_void, s: size_t) -> ssize_t, SYS_lgetxattr, [p, n, v, s]);
sys!(fgetxattr => hk_fgetxattr(fd: c_int, n: *const c_char, v: *mut c_void, s: size_t) -> ssize_t, SYS_fgetxattr, [fd, n, v, s]);
sys!(setxattr => hk_setxattr(p: *const c_char, n: *const c_char, v: *const c_void, s: size_t, f: c_int) -> c_int, SYS_setxattr, [p, n, v, s, f]);
sys!(lsetxattr => hk_lsetxattr(p: *const c_char, n: *const c_char, v: *const c_void, s: size_t, f: c_int) -> c_int, SYS_lsetxattr, [p, n, v, s, f]);
sys!(fsetxattr => hk_fsetxattr(fd: c_int, n: *const c_char, v: *const c_void, s: size_t, f: c_int) -> c_int, SYS_fsetxattr, [fd, n, v, s, f]);
sys!(listxattr => hk_listxattr(p: *const c_char, l: *mut c_char, s: size_t) -> ssize_t, SYS_listxattr, [p, l, s]);
sys!(llistxattr => hk_llistxattr(p: *const c_char, l: *mut c_char, s: size_t) -> ssize_t, SYS_llistxattr, [p, l, s]);
sys!(flistxattr => hk_flistxattr(fd: c_int, l: *mut c_char, s: size_t) -> ssize_t, SYS_flistxattr, [fd, l, s]);
sys!(removexattr => hk_removexattr(p: *const c_char, n: *const c_char) -> c_int, SYS_removexattr, [p, n]);
sys!(lremovexattr => hk_lremovexattr(p: *const c_char, n: *const c_char) -> c_int, SYS_lremovexattr, [p, n]);
sys!(fremovexattr => hk_fremovexattr(fd: c_int, n: *const c_char) -> c_int, SYS_fremovexattr, [fd, n]);
