//! The seccomp net of a dynamic program (see `notify`): the program's
//! process installs the net's filter right before its first `execve` and
//! sends the listener descriptor back to its starter (dvs-exec, or a
//! node's SYSTASK), which hands it to the tracer process (the supervisor).
//!
//! After the filter is installed, the child's own redirected calls (the
//! `sendmsg` of the descriptor, the `execve`) would wait for a supervisor
//! that does not have the listener yet: they go through the gate page,
//! which the starter maps before forking (the child inherits it; `execve`
//! drops it, and the new image's preload maps its own).

use crate::Error;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Whether the net is wanted: on unless `DVS_NET` is `off` (or `0`,
/// `no`), which lets raw system calls of dynamic programs reach the host
/// (for comparisons and debugging).
pub fn enabled() -> bool {
    !std::env::var("DVS_NET").is_ok_and(|v| is_off(&v))
}

/// Whether a `DVS_NET` value turns the net off.
pub fn is_off(v: &str) -> bool {
    matches!(v, "off" | "0" | "no")
}

/// Everything the child needs, prepared before the fork (the child must
/// not allocate).
pub struct NetChild {
    filter: crate::Filter,
    ours: UnixStream,
    theirs: UnixStream,
    /// `SCM_RIGHTS` control buffer (header filled in, descriptor slot at
    /// `data`).
    cmsg: Vec<u8>,
    data: usize,
}

impl NetChild {
    /// Builds the filter, maps the gate in the starter (inherited by the
    /// child) and makes the socket pair the listener comes back on.
    pub fn new() -> Result<NetChild, Error> {
        crate::gatepage::map()
            .map_err(|e| Error::Filter(format!("cannot map the gate page: {e}")))?;
        let filter = crate::Filter::notify().map_err(|e| Error::Filter(e.to_string()))?;
        let (ours, theirs) = UnixStream::pair()?;
        // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic on sizes.
        let (space, len) = unsafe {
            (
                libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize,
                libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize,
            )
        };
        let mut cmsg = vec![0u8; space];
        let hdr = libc::cmsghdr {
            cmsg_len: len,
            cmsg_level: libc::SOL_SOCKET,
            cmsg_type: libc::SCM_RIGHTS,
        };
        // SAFETY: the buffer is CMSG_SPACE bytes, room for one header; it
        // may be unaligned, hence write_unaligned.
        unsafe { std::ptr::write_unaligned(cmsg.as_mut_ptr().cast::<libc::cmsghdr>(), hdr) };
        let data = std::mem::size_of::<libc::cmsghdr>();
        Ok(NetChild {
            filter,
            ours,
            theirs,
            cmsg,
            data,
        })
    }

    /// In the child, right before `execve`: installs the filter and sends
    /// the listener to dvs-exec through the gate. Returns 0, or an errno.
    /// Async-signal-safe.
    pub fn install(&self) -> i32 {
        let fd = self.filter.install_listener();
        if fd < 0 {
            return (-fd) as i32;
        }
        let mut byte = [b'L'];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cmsg = [0u8; 64];
        let n = self.cmsg.len().min(cmsg.len());
        cmsg[..n].copy_from_slice(&self.cmsg[..n]);
        cmsg[self.data..self.data + 4].copy_from_slice(&(fd as i32).to_ne_bytes());
        // SAFETY: a zeroed msghdr is valid; the fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = n;
        // SAFETY: sendmsg through the gate (mapped in this process) with
        // a msghdr whose buffers live on this stack frame.
        let r = unsafe {
            crate::gatepage::syscall6(
                libc::SYS_sendmsg,
                [
                    self.theirs.as_raw_fd() as u64,
                    &msg as *const libc::msghdr as u64,
                    0,
                    0,
                    0,
                    0,
                ],
            )
        };
        if r < 0 {
            return (-r) as i32;
        }
        // SAFETY: closing our copy of the listener through the gate.
        unsafe { crate::gatepage::syscall6(libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0]) };
        0
    }

    /// `execve` through the gate (after [`NetChild::install`]). Returns
    /// only on failure, with the errno.
    ///
    /// # Safety
    /// `prog`, `argv` and `envp` must be valid for `execve`.
    pub unsafe fn exec(
        prog: *const libc::c_char,
        argv: *const *const libc::c_char,
        envp: *const *const libc::c_char,
    ) -> i32 {
        // SAFETY: the caller's contract.
        let r = unsafe {
            crate::gatepage::syscall6(
                libc::SYS_execve,
                [prog as u64, argv as u64, envp as u64, 0, 0, 0],
            )
        };
        (-r) as i32
    }

    /// In the starter, after the fork: receives the listener (the child
    /// sends it once it is let go).
    pub fn receive(&self) -> Result<OwnedFd, Error> {
        self.ours.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut byte = [0u8; 1];
        let mut iov = [std::io::IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            self.ours.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| Error::sys("cannot receive the seccomp listener", e))?;
        for c in msg
            .cmsgs()
            .map_err(|e| Error::sys("cannot read the control message", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                if let Some(&fd) = fds.first() {
                    // SAFETY: a descriptor the kernel just installed for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(Error::Refused {
            what: "install the seccomp net",
            errno: nix::Error::EPERM,
        })
    }
}
