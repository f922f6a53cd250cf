//! Socket calls: `AF_UNIX` sockets are served by FS; other families fail
//! with `ENOSYS` and a one-line report (the shim decides).

use crate::sys;
use libc::*;

sys!(socket => hk_socket(d: c_int, t: c_int, p: c_int) -> c_int, SYS_socket, [d, t, p]);
sys!(socketpair => hk_socketpair(d: c_int, t: c_int, p: c_int, sv: *mut c_int) -> c_int, SYS_socketpair, [d, t, p, sv]);
sys!(bind => hk_bind(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int, SYS_bind, [fd, a, l]);
sys!(listen => hk_listen(fd: c_int, n: c_int) -> c_int, SYS_listen, [fd, n]);
sys!(accept => hk_accept(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int, SYS_accept, [fd, a, l]);
sys!(accept4 => hk_accept4(fd: c_int, a: *mut sockaddr, l: *mut socklen_t, f: c_int) -> c_int, SYS_accept4, [fd, a, l, f]);
sys!(connect => hk_connect(fd: c_int, a: *const sockaddr, l: socklen_t) -> c_int, SYS_connect, [fd, a, l]);
sys!(getsockname => hk_getsockname(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int, SYS_getsockname, [fd, a, l]);
sys!(getpeername => hk_getpeername(fd: c_int, a: *mut sockaddr, l: *mut socklen_t) -> c_int, SYS_getpeername, [fd, a, l]);
sys!(shutdown => hk_shutdown(fd: c_int, how: c_int) -> c_int, SYS_shutdown, [fd, how]);
sys!(send => hk_send(fd: c_int, b: *const c_void, n: size_t, f: c_int) -> ssize_t, SYS_sendto, [fd, b, n, f, 0, 0]);
sys!(recv => hk_recv(fd: c_int, b: *mut c_void, n: size_t, f: c_int) -> ssize_t, SYS_recvfrom, [fd, b, n, f, 0, 0]);
sys!(__recv_chk => hk_recv_chk(fd: c_int, b: *mut c_void, n: size_t, bl: size_t, f: c_int) -> ssize_t, SYS_recvfrom, [fd, b, n.min(bl), f, 0, 0]);
sys!(sendto => hk_sendto(fd: c_int, b: *const c_void, n: size_t, f: c_int, a: *const sockaddr, l: socklen_t) -> ssize_t, SYS_sendto, [fd, b, n, f, a, l]);
sys!(recvfrom => hk_recvfrom(fd: c_int, b: *mut c_void, n: size_t, f: c_int, a: *mut sockaddr, l: *mut socklen_t) -> ssize_t, SYS_recvfrom, [fd, b, n, f, a, l]);
sys!(__recvfrom_chk => hk_recvfrom_chk(fd: c_int, b: *mut c_void, n: size_t, bl: size_t, f: c_int, a: *mut sockaddr, l: *mut socklen_t) -> ssize_t, SYS_recvfrom, [fd, b, n.min(bl), f, a, l]);
sys!(sendmsg => hk_sendmsg(fd: c_int, m: *const msghdr, f: c_int) -> ssize_t, SYS_sendmsg, [fd, m, f]);
sys!(recvmsg => hk_recvmsg(fd: c_int, m: *mut msghdr, f: c_int) -> ssize_t, SYS_recvmsg, [fd, m, f]);
sys!(getsockopt => hk_getsockopt(fd: c_int, lv: c_int, n: c_int, v: *mut c_void, l: *mut socklen_t) -> c_int, SYS_getsockopt, [fd, lv, n, v, l]);
sys!(setsockopt => hk_setsockopt(fd: c_int, lv: c_int, n: c_int, v: *const c_void, l: socklen_t) -> c_int, SYS_setsockopt, [fd, lv, n, v, l]);
sys!(sendmmsg => hk_sendmmsg(fd: c_int, v: *mut mmsghdr, n: c_uint, f: c_int) -> c_int, SYS_sendmmsg, [fd, v, n, f]);
sys!(recvmmsg => hk_recvmmsg(fd: c_int, v: *mut mmsghdr, n: c_uint, f: c_int, t: *mut timespec) -> c_int, SYS_recvmmsg, [fd, v, n, f, t]);
