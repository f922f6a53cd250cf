//! `ioctl`, mostly for the console.
//!
//! Console descriptors wrap dups of dvs-exec's stdio. Their reads and
//! writes are in `io` (tried only when `poll` says they will not block,
//! deferred otherwise; the host descriptors stay blocking, since they are
//! shared with the user's shell). Terminal requests are done on the host
//! descriptor with the structure copied to or from the caller; objects
//! that are not terminals answer `ENOTTY`, so `isatty()` (a `TCGETS`)
//! works. `TIOCGPGRP`/`TIOCSPGRP` only check that the descriptor is a
//! terminal: the foreground process group is PM's (`PmGetFg`/`PmSetFg`).
//! `TIOCSCTTY`/`TIOCNOTTY` are accepted on a terminal without effect.
//! `TCSETSW`/`TCSETSF` apply at once instead of waiting for the output to
//! drain, which could block FS.

use super::fds::setfl;
use super::table::{Kind, Ofd};
use super::{sys, Fs};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Size of the kernel's `struct termios` (what `TCGETS` copies).
const TERMIOS_SIZE: usize = 36;
/// Size of `struct winsize`.
const WINSIZE_SIZE: usize = 8;
/// `struct ifreq`.
const IFREQ_SIZE: usize = 40;

/// Checks that `fd` is a terminal.
fn is_tty(fd: BorrowedFd<'_>) -> Result<(), i32> {
    let mut t = [0u8; 64];
    sys::ioctl_buf(fd, libc::TCGETS, &mut t).map(drop)
}

/// Whether an open file is a terminal (`isatty`).
pub(super) fn is_terminal(ofd: &Ofd) -> bool {
    !ofd.is_path() && ofd.host_fd().is_some_and(|fd| is_tty(fd).is_ok())
}

/// `[fd, request, arg]`.
fn ioctl(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let fd = req.i32(0);
        let request = req.args[1] as u32 as libc::Ioctl;
        let arg = req.args[2];
        let p = fs.procs.get(&req.caller).ok_or(libc::EBADF)?;
        let mut t = p.files.borrow_mut();
        let entry = t.get_mut(fd)?;
        match request {
            libc::FIOCLEX => {
                entry.cloexec = true;
                return Ok(0);
            }
            libc::FIONCLEX => {
                entry.cloexec = false;
                return Ok(0);
            }
            _ => {}
        }
        let ofd = entry.ofd.clone();
        drop(t);
        if ofd.is_path() {
            return Err(libc::EBADF);
        }
        if request == libc::FIONBIO {
            let v = ctx.copy_in(req.sender, arg, 4)?;
            let on = i32::from_ne_bytes([v[0], v[1], v[2], v[3]]) != 0;
            let fl = ofd.flags.get();
            let fl = if on {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            };
            return setfl(&ofd, fl);
        }
        let host = match &ofd.kind {
            Kind::PipeRead(p) | Kind::PipeWrite(p) => {
                if request == libc::FIONREAD {
                    let n = p.borrow().buf.len() as i32;
                    ctx.copy_out(req.sender, arg, &n.to_ne_bytes())?;
                    return Ok(0);
                }
                return Err(libc::ENOTTY);
            }
            Kind::Socket(s) => {
                if request == libc::FIONREAD {
                    let n = super::unix::inq(s)?;
                    ctx.copy_out(req.sender, arg, &n.to_ne_bytes())?;
                    return Ok(0);
                }
                if matches!(request, libc::SIOCGIFINDEX | libc::SIOCGIFNAME) {
                    // Questions about the network, not the socket (glibc
                    // asks them on an AF_UNIX socket): any host socket of
                    // FS can answer.
                    // SAFETY: socket with integer arguments; `owned`
                    // checks the result.
                    let fd = unsafe {
                        libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
                    };
                    let probe = sys::owned(fd)?;
                    interface_ioctl(ctx, req, probe.as_fd(), request, arg)?;
                    return Ok(0);
                }
                return Err(libc::ENOTTY);
            }
            _ => ofd.host_fd().ok_or(libc::EBADF)?,
        };
        match request {
            libc::TCGETS => {
                let mut t = [0u8; 64];
                sys::ioctl_buf(host, request, &mut t)?;
                ctx.copy_out(req.sender, arg, &t[..TERMIOS_SIZE])?;
            }
            libc::TCSETS | libc::TCSETSW | libc::TCSETSF => {
                is_tty(host)?;
                let mut t = [0u8; 64];
                ctx.copy_in_to(req.sender, arg, &mut t[..TERMIOS_SIZE])?;
                // TCSETSW/TCSETSF would wait for pending output to drain,
                // which can block FS (a terminal stopped by ^S). The
                // output queue holds characters already processed under
                // the old settings, so setting at once is equivalent
                // except for timing; TCSETSF also discards pending input.
                if request == libc::TCSETSF {
                    sys::tty_flush_input(host)?;
                }
                sys::ioctl_buf(host, libc::TCSETS, &mut t)?;
            }
            libc::TIOCGWINSZ => {
                let mut w = [0u8; WINSIZE_SIZE];
                sys::ioctl_buf(host, request, &mut w)?;
                ctx.copy_out(req.sender, arg, &w)?;
            }
            libc::TIOCSWINSZ => {
                is_tty(host)?;
                let mut w = [0u8; WINSIZE_SIZE];
                ctx.copy_in_to(req.sender, arg, &mut w)?;
                sys::ioctl_buf(host, request, &mut w)?;
            }
            libc::TIOCGPGRP | libc::TIOCSPGRP => is_tty(host)?,
            // A DC process has no host controlling terminal (the host
            // one would be FS's own process's): taking or dropping one
            // (`login_tty`, `forkpty`, daemons) is accepted on a terminal
            // without effect; the foreground group is PM's.
            libc::TIOCSCTTY | libc::TIOCNOTTY => is_tty(host)?,
            libc::FIONREAD | libc::TIOCGPTN => {
                let mut n = [0u8; 8];
                sys::ioctl_buf(host, request, &mut n)?;
                ctx.copy_out(req.sender, arg, &n[..4])?;
            }
            libc::SIOCGIFINDEX | libc::SIOCGIFNAME => {
                interface_ioctl(ctx, req, host, request, arg)?;
            }
            libc::TIOCSPTLCK => {
                let mut n = [0u8; 8];
                ctx.copy_in_to(req.sender, arg, &mut n[..4])?;
                sys::ioctl_buf(host, request, &mut n)?;
            }
            // The terminal of a pseudo-terminal master (`openpty`): a new
            // descriptor, like an open of its /dev/pts path.
            libc::TIOCGPTPEER => {
                let flags = arg as i32 & (libc::O_ACCMODE | libc::O_NOCTTY | libc::O_CLOEXEC);
                // SAFETY: TIOCGPTPEER takes its flags as an integer and
                // returns a new descriptor, owned at once.
                let peer = unsafe { libc::ioctl(host.as_raw_fd(), libc::TIOCGPTPEER, flags) };
                if peer < 0 {
                    return Err(sys::errno());
                }
                // SAFETY: a new descriptor the kernel gave us.
                let peer = unsafe { OwnedFd::from_raw_fd(peer) };
                // FS never blocks on a host stream (reads wait for poll).
                let fl = sys::fcntl_int(peer.as_fd(), libc::F_GETFL, 0)?;
                sys::fcntl_int(peer.as_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK)?;
                let ofd = Ofd::host_stream(peer, flags & libc::O_ACCMODE);
                let n = fs.install(req.caller, ofd, flags & libc::O_CLOEXEC != 0)?;
                return Ok(n as i64);
            }
            _ => return Err(libc::ENOTTY),
        }
        Ok(0)
    })();
    Outcome::from(r)
}

/// `SIOCGIFINDEX`/`SIOCGIFNAME` on host socket `host`: the program's
/// `struct ifreq` at `arg`, read and written back.
fn interface_ioctl(
    ctx: &Ctx,
    req: &Request,
    host: BorrowedFd<'_>,
    request: libc::Ioctl,
    arg: u64,
) -> Result<(), i32> {
    let mut ifr = [0u8; IFREQ_SIZE];
    ctx.copy_in_to(req.sender, arg, &mut ifr)?;
    sys::ioctl_buf(host, request, &mut ifr)?;
    ctx.copy_out(req.sender, arg, &ifr)
}

/// The ioctl call.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![(Call::FsIoctl, ioctl as Handler<Fs>)]
}
