//! The host socket calls of INET, as small safe wrappers over raw
//! socket addresses (the bytes the program passed, handed on unchanged:
//! the kernel validates them). Every wrapper returns the positive `errno`
//! on failure.

use super::super::sys::{check, check_size, owned, SysResult};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// Room for any socket address (`struct sockaddr_storage`).
pub const ADDR_CAP: usize = 128;

/// `socket(2)`, always non-blocking and close-on-exec on the host.
pub fn socket(domain: i32, ty: i32, protocol: i32) -> SysResult<OwnedFd> {
    // SAFETY: integer arguments.
    owned(unsafe {
        libc::socket(
            domain,
            ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })
}

/// `bind(2)` to the raw address `addr`.
pub fn bind(fd: BorrowedFd<'_>, addr: &[u8]) -> SysResult<()> {
    // SAFETY: `addr` is valid for `addr.len()` bytes; the kernel copies it.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `connect(2)` to the raw address `addr`.
pub fn connect(fd: BorrowedFd<'_>, addr: &[u8]) -> SysResult<()> {
    // SAFETY: as for bind.
    check(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            addr.as_ptr().cast(),
            addr.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> SysResult<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// `accept4(2)` (non-blocking, close-on-exec): the new socket and the
/// peer's raw address (its full length may exceed what is returned).
pub fn accept(fd: BorrowedFd<'_>) -> SysResult<(OwnedFd, Vec<u8>)> {
    let mut buf = [0u8; ADDR_CAP];
    let mut len = ADDR_CAP as libc::socklen_t;
    // SAFETY: `buf` has room for `len` bytes; the kernel updates `len`.
    let s = owned(unsafe {
        libc::accept4(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?;
    Ok((s, buf[..(len as usize).min(ADDR_CAP)].to_vec()))
}

/// `getsockname(2)`, or `getpeername(2)` with `peer`.
pub fn name(fd: BorrowedFd<'_>, peer: bool) -> SysResult<Vec<u8>> {
    let mut buf = [0u8; ADDR_CAP];
    let mut len = ADDR_CAP as libc::socklen_t;
    let f = if peer {
        libc::getpeername
    } else {
        libc::getsockname
    };
    // SAFETY: `buf` has room for `len` bytes; the kernel updates `len`.
    check(unsafe { f(fd.as_raw_fd(), buf.as_mut_ptr().cast(), &mut len) })?;
    Ok(buf[..(len as usize).min(ADDR_CAP)].to_vec())
}

/// `shutdown(2)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> SysResult<()> {
    // SAFETY: integer arguments.
    check(unsafe { libc::shutdown(fd.as_raw_fd(), how) }).map(drop)
}

/// `getsockopt(2)` into a buffer of `cap` bytes.
pub fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, cap: usize) -> SysResult<Vec<u8>> {
    let mut buf = vec![0u8; cap];
    let mut len = cap as libc::socklen_t;
    // SAFETY: `buf` has room for `len` bytes; the kernel updates `len`.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    buf.truncate((len as usize).min(cap));
    Ok(buf)
}

/// `setsockopt(2)` with the raw value `val`.
pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, val: &[u8]) -> SysResult<()> {
    // SAFETY: `val` is valid for its length; the kernel copies it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val.as_ptr().cast(),
            val.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// The pending error of a socket (`SO_ERROR`), cleared by reading it.
pub fn take_error(fd: BorrowedFd<'_>) -> SysResult<i32> {
    let v = getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, 4)?;
    Ok(v.get(..4)
        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])))
}

/// `sendmsg(2)` without waiting and without `SIGPIPE`, to `dest` if
/// given, with the raw control messages `ctl`.
pub fn send(
    fd: BorrowedFd<'_>,
    data: &[u8],
    flags: i32,
    dest: Option<&[u8]>,
    ctl: &[u8],
) -> SysResult<usize> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is a valid value; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(d) = dest {
        msg.msg_name = d.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = d.len() as libc::socklen_t;
    }
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !ctl.is_empty() {
        msg.msg_control = ctl.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = ctl.len();
    }
    // SAFETY: every buffer `msg` points to is valid for its length and
    // only read by the kernel.
    check_size(unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            flags | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// A socket timeout (`SO_RCVTIMEO`, `SO_SNDTIMEO`), if one is set.
pub fn timeout(fd: BorrowedFd<'_>, name: i32) -> Option<Duration> {
    let v = getsockopt(
        fd,
        libc::SOL_SOCKET,
        name,
        std::mem::size_of::<libc::timeval>(),
    )
    .ok()?;
    if v.len() != std::mem::size_of::<libc::timeval>() {
        return None;
    }
    let (sec, usec) = v.split_at(8);
    let sec = u64::from_ne_bytes(sec.try_into().ok()?);
    let usec = u64::from_ne_bytes(usec.try_into().ok()?);
    let t = Duration::from_secs(sec) + Duration::from_micros(usec);
    (!t.is_zero()).then_some(t)
}

/// Whether `fd` is a stream socket (`SO_TYPE`).
pub fn is_stream(fd: BorrowedFd<'_>) -> bool {
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_TYPE, 4).is_ok_and(|v| {
        v.len() == 4 && i32::from_ne_bytes([v[0], v[1], v[2], v[3]]) == libc::SOCK_STREAM
    })
}

/// What one `recvmsg` returned.
pub struct Received {
    /// Bytes received (a datagram's full length with `MSG_TRUNC`).
    pub n: usize,
    /// The sender's raw address (datagrams).
    pub from: Vec<u8>,
    /// `msg_flags`.
    pub flags: i32,
    /// Raw control messages.
    pub ctl: Vec<u8>,
}

/// `recvmsg(2)` into `buf` without waiting, with room for `ctlcap` bytes
/// of control messages.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: i32, ctlcap: usize) -> SysResult<Received> {
    let mut from = [0u8; ADDR_CAP];
    let mut ctl = vec![0u8; ctlcap];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is a valid value; the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = from.as_mut_ptr().cast();
    msg.msg_namelen = ADDR_CAP as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if ctlcap > 0 {
        msg.msg_control = ctl.as_mut_ptr().cast();
        msg.msg_controllen = ctlcap;
    }
    // SAFETY: every buffer `msg` points to lives on this frame (or in
    // `ctl`) with the lengths given.
    let n =
        check_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags | libc::MSG_DONTWAIT) })?;
    let len = (msg.msg_namelen as usize).min(ADDR_CAP);
    ctl.truncate(msg.msg_controllen.min(ctlcap));
    Ok(Received {
        n,
        from: from[..len].to_vec(),
        flags: msg.msg_flags,
        ctl,
    })
}
