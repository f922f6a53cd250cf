//! Starting the tracer process, and the control channel dvs-exec uses to
//! hand it programs.
//!
//! The tracer is a separate process, not a thread of dvs-exec: dvs-exec
//! is the host parent (and subreaper) of DC processes, and a tracer in the
//! same thread group would reap their zombies with its `waitpid` before
//! PM read their exit status. A tracer in a process of its own only
//! detaches an ended tracee; the zombie stays for its real parent.
//!
//! The channel is a socket pair carrying one-line commands, each answered
//! by `ok` or `err ERRNO`:
//!
//! ```text
//! config DCID SOCKET-PATH(hex) [down]
//!                                  the DC and the node daemon to bind in
//!                                  (down: workers take endpoints from the
//!                                  top of their range)
//! adopt HOST-PID ENDPOINT INITIAL  seize a process (INITIAL = 1: its first
//!                                  execve is the start of the program)
//! listen                           answered `ok`; then one byte carrying the
//!                                  seccomp net's listener (SCM_RIGHTS),
//!                                  answered `ok` or `err ERRNO`
//! ```

use crate::Error;
use dvk::Endpoint;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A command on the control channel.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// The DC and daemon.
    Config {
        /// DC id.
        dcid: i32,
        /// Control socket of the node daemon.
        socket: std::ffi::OsString,
        /// Workers take endpoints from the top of the range down.
        down: bool,
    },
    /// Seize a process.
    Adopt {
        /// Host pid.
        host_pid: i32,
        /// Its DC endpoint.
        ep: i32,
        /// Its first exec starts the program.
        initial: bool,
    },
    /// The listener descriptor of the seccomp net follows.
    Listen,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Command {
    /// Parses one line.
    pub(crate) fn parse(line: &str) -> Option<Command> {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["config", dcid, sock, rest @ ..] => Some(Command::Config {
                dcid: dcid.parse().ok()?,
                socket: std::ffi::OsStr::from_bytes(&unhex(sock)?).to_owned(),
                down: rest == ["down"],
            }),
            ["adopt", pid, ep, initial] => Some(Command::Adopt {
                host_pid: pid.parse().ok()?,
                ep: ep.parse().ok()?,
                initial: *initial == "1",
            }),
            ["listen"] => Some(Command::Listen),
            _ => None,
        }
    }

    fn line(&self) -> String {
        match self {
            Command::Config { dcid, socket, down } => format!(
                "config {dcid} {}{}\n",
                hex(socket.as_bytes()),
                if *down { " down" } else { "" }
            ),
            Command::Adopt {
                host_pid,
                ep,
                initial,
            } => format!("adopt {host_pid} {ep} {}\n", u8::from(*initial)),
            Command::Listen => "listen\n".to_string(),
        }
    }
}

/// The descriptor number of the control channel of a tracer started by
/// [`Tracer::start_exec`].
const INHERITED_FD: i32 = 3;

/// The body of a tracer started by [`Tracer::start_exec`]: serves the
/// control channel inherited as descriptor `fd` for process `parent`.
/// Never returns.
pub fn serve_inherited(fd: i32, parent: i32) -> ! {
    // SAFETY: `fd` is the control socket that `start_exec` left open for
    // this program; nothing else owns it.
    let ctl = unsafe { UnixStream::from_raw_fd(fd) };
    crate::run::tracer_main(ctl, parent)
}

/// The tracer process, seen from dvs-exec.
pub struct Tracer {
    ctl: Option<BufReader<UnixStream>>,
    pid: i32,
}

/// In a freshly forked tracer: closes every descriptor the parent had
/// but the standard ones and `ctl` (moved to descriptor 3), so that the
/// tracer holds none of the parent's files (a pipe the parent passes on
/// would not see its end while the tracer lives).
fn only_stdio_and(ctl: UnixStream) -> UnixStream {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let fd = ctl.into_raw_fd();
    // SAFETY: in the single-threaded child; `fd` is ours, moved to 3 (or
    // already there), and every other descriptor above 2 is the parent's
    // copy, which this process does not use.
    unsafe {
        let fd = if fd != 3 && libc::dup2(fd, 3) == 3 {
            libc::close(fd);
            3
        } else {
            fd
        };
        if fd == 3 {
            libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        }
        UnixStream::from_raw_fd(fd)
    }
}

impl Tracer {
    /// Forks the tracer process. It waits for [`Tracer::configure`].
    ///
    /// # Safety
    /// The calling process must have a single thread: the child goes on
    /// running Rust code (allocating, starting threads) after the fork.
    pub unsafe fn start() -> Result<Tracer, Error> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: plain getpid.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the caller guarantees a single-threaded process, so the
        // child may run arbitrary code.
        match unsafe { libc::fork() } {
            -1 => Err(Error::sys("fork", nix::Error::last())),
            0 => {
                drop(ours);
                crate::run::tracer_main(only_stdio_and(theirs), parent)
            }
            pid => Ok(Tracer {
                ctl: Some(BufReader::new(ours)),
                pid,
            }),
        }
    }

    /// Starts the tracer as a new program: `exe ARG FD PARENT`, where the
    /// program calls [`serve_inherited`] with `FD` and `PARENT`. Unlike
    /// [`Tracer::start`], the calling process may have threads (a node
    /// daemon's SYSTASK starts one per DC); the tracer dies with the
    /// calling thread.
    pub fn start_exec(exe: &Path, arg: &str) -> Result<Tracer, Error> {
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: plain getpid.
        let parent = unsafe { libc::getpid() };
        let c = |b: &[u8]| {
            std::ffi::CString::new(b)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
        };
        let prog = c(exe.as_os_str().as_bytes())?;
        let argv = [
            prog.clone(),
            c(arg.as_bytes())?,
            c(INHERITED_FD.to_string().as_bytes())?,
            c(parent.to_string().as_bytes())?,
        ];
        let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        av.push(std::ptr::null());
        let fd = theirs.as_raw_fd();
        // SAFETY: the child only calls async-signal-safe functions (dup2,
        // fcntl, execv, _exit) on data prepared before the fork.
        match unsafe { libc::fork() } {
            -1 => Err(Error::sys("fork", nix::Error::last())),
            0 => unsafe {
                if fd == INHERITED_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                } else {
                    libc::dup2(fd, INHERITED_FD);
                }
                libc::execv(prog.as_ptr(), av.as_ptr());
                libc::_exit(127)
            },
            pid => {
                drop(theirs);
                Ok(Tracer {
                    ctl: Some(BufReader::new(ours)),
                    pid,
                })
            }
        }
    }

    /// Host pid of the tracer process.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn command(&mut self, what: &'static str, c: &Command) -> Result<(), Error> {
        let ctl = self
            .ctl
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        ctl.get_mut().write_all(c.line().as_bytes())?;
        Self::answer(ctl, what)
    }

    fn answer(ctl: &mut BufReader<UnixStream>, what: &'static str) -> Result<(), Error> {
        let mut line = String::new();
        if ctl.read_line(&mut line)? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        match line.trim().strip_prefix("err ") {
            None if line.trim() == "ok" => Ok(()),
            Some(e) => Err(Error::Refused {
                what,
                errno: nix::Error::from_raw(e.parse().unwrap_or(libc::EIO)),
            }),
            None => Err(std::io::Error::from(std::io::ErrorKind::InvalidData).into()),
        }
    }

    /// Tells the tracer which DC it serves: its workers bind endpoints of
    /// DC `dcid` through the node daemon at `socket`.
    pub fn configure(&mut self, socket: &Path, dcid: i32) -> Result<(), Error> {
        self.configure_as(socket, dcid, false)
    }

    /// [`Tracer::configure`]; with `down`, workers take their endpoints
    /// from the top of their range, so that a second tracer of the DC on
    /// another node (whose endpoints are registered on the first's) does
    /// not meet the first one's.
    pub fn configure_as(&mut self, socket: &Path, dcid: i32, down: bool) -> Result<(), Error> {
        self.command(
            "configure",
            &Command::Config {
                dcid,
                socket: socket.as_os_str().to_owned(),
                down,
            },
        )
    }

    /// Has the tracer seize host process `host_pid` (DC endpoint `ep`).
    /// With `initial`, its first `execve` runs as is (it is the program's
    /// start, by a host path); the process must install the filter
    /// ([`crate::Filter::install_raw`]) after this returns.
    pub fn adopt(&mut self, host_pid: i32, ep: Endpoint, initial: bool) -> Result<(), Error> {
        self.command(
            "adopt the program",
            &Command::Adopt {
                host_pid,
                ep: ep.0,
                initial,
            },
        )
    }
}

impl Tracer {
    /// Hands the tracer the listener descriptor of the seccomp net
    /// ([`shim::seccomp::Filter::install_listener`] in the program's
    /// process): it serves the net's notifications from then on.
    pub fn listen(&mut self, listener: OwnedFd) -> Result<(), Error> {
        self.command("take the seccomp listener", &Command::Listen)?;
        let ctl = self
            .ctl
            .as_mut()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        let fds = [listener.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(b"F")];
        sendmsg::<()>(
            ctl.get_ref().as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| Error::sys("sendmsg", e))?;
        Self::answer(ctl, "take the seccomp listener")
    }
}

/// Receives the descriptor [`Tracer::listen`] sends (tracer side).
pub(crate) fn recv_fd(sock: &UnixStream) -> Result<OwnedFd, nix::Error> {
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: a descriptor the kernel just installed for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(nix::Error::EBADF)
}

impl Drop for Tracer {
    /// Closes the channel (the tracer exits; tracees still alive are
    /// killed by `PTRACE_O_EXITKILL`) and reaps the tracer.
    fn drop(&mut self) {
        self.ctl = None;
        // The run is over: nothing the tracer still holds (its workers'
        // endpoints, tracees) needs an orderly end, and its threads take a
        // while to wind down. End it at once.
        // SAFETY: signalling and waiting for our own child, with a valid
        // status pointer.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut st = 0;
            libc::waitpid(self.pid, &mut st, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        for c in [
            Command::Config {
                dcid: 3,
                socket: "/run/dvs/exec 1.sock".into(),
                down: false,
            },
            Command::Config {
                dcid: 4,
                socket: "/run/dvs/dvkd.sock".into(),
                down: true,
            },
            Command::Adopt {
                host_pid: 42,
                ep: 64,
                initial: true,
            },
            Command::Listen,
        ] {
            assert_eq!(Command::parse(&c.line()), Some(c));
        }
        assert_eq!(Command::parse("adopt x"), None);
    }
}
