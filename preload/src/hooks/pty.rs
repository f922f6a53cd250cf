//! `openpty`, `login_tty` and `forkpty`: glibc implements them with
//! internal calls (`open` of `/dev/ptmx`, `ioctl`, `setsid`, `dup2`) and
//! an internal fork, which no hook sees; where the seccomp net runs it
//! serves the calls but refuses the fork, and elsewhere (another node,
//! `DVS_NET=off`) the calls would act on host descriptors. Here they are
//! made of the hooked calls, so the terminal is an FS descriptor
//! (`TIOCGPTPEER` installs its other side) and the child is PM's.

use crate::state::enter;
use libc::*;

redhook::hook! {
    unsafe fn openpty(amaster: *mut c_int, aslave: *mut c_int, name: *mut c_char, termp: *const termios, winp: *const winsize) -> c_int => hk_openpty {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(openpty)(amaster, aslave, name, termp, winp) };
        }
        // SAFETY (below): the hooked open, ioctl and tcsetattr with
        // arguments that live across the calls; the caller's pointers as
        // openpty(3) defines them (`name` large enough, or null).
        unsafe {
            let master = libc::open(c"/dev/ptmx".as_ptr(), O_RDWR | O_NOCTTY);
            if master < 0 {
                return -1;
            }
            let unlock: c_int = 0;
            let mut n: c_int = 0;
            let slave = if libc::ioctl(master, TIOCSPTLCK, &unlock) < 0
                || libc::ioctl(master, TIOCGPTN, &mut n) < 0
            {
                -1
            } else {
                libc::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY)
            };
            if slave < 0
                || (!termp.is_null() && libc::tcsetattr(slave, TCSAFLUSH, termp) < 0)
                || (!winp.is_null() && libc::ioctl(slave, TIOCSWINSZ, winp) < 0)
            {
                let e = *__errno_location();
                if slave >= 0 {
                    libc::close(slave);
                }
                libc::close(master);
                *__errno_location() = e;
                return -1;
            }
            if !name.is_null() {
                let path = format!("/dev/pts/{n}\0");
                std::ptr::copy_nonoverlapping(path.as_ptr().cast::<c_char>(), name, path.len());
            }
            *amaster = master;
            *aslave = slave;
            0
        }
    }
}

redhook::hook! {
    unsafe fn login_tty(fd: c_int) -> c_int => hk_login_tty {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's argument.
            return unsafe { redhook::real!(login_tty)(fd) };
        }
        // SAFETY (below): the hooked setsid, ioctl, dup2 and close, with
        // integer arguments.
        unsafe {
            libc::setsid();
            if libc::ioctl(fd, TIOCSCTTY, 0) < 0 {
                return -1;
            }
            for n in 0..3 {
                while libc::dup2(fd, n) < 0 {
                    if *__errno_location() != EBUSY {
                        return -1;
                    }
                }
            }
            if fd > 2 {
                libc::close(fd);
            }
            0
        }
    }
}

redhook::hook! {
    unsafe fn forkpty(amaster: *mut c_int, name: *mut c_char, termp: *const termios, winp: *const winsize) -> pid_t => hk_forkpty {
        if enter().is_none() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(forkpty)(amaster, name, termp, winp) };
        }
        // SAFETY (below): the caller's pointers, as glibc's forkpty uses
        // them; the child leaves with _exit if it cannot take the terminal.
        unsafe {
            let (mut master, mut slave) = (-1, -1);
            if libc::openpty(&mut master, &mut slave, name, termp, winp) < 0 {
                return -1;
            }
            match libc::fork() {
                -1 => {
                    libc::close(master);
                    libc::close(slave);
                    -1
                }
                0 => {
                    libc::close(master);
                    if libc::login_tty(slave) != 0 {
                        _exit(1);
                    }
                    0
                }
                pid => {
                    libc::close(slave);
                    *amaster = master;
                    pid
                }
            }
        }
    }
}
