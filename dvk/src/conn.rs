//! Framed messages with attached file descriptors over a UNIX stream socket.

use crate::error::{DvkError, Result};
use crate::proto::MAX_FRAME;
use bincode::Options;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Most descriptors carried by one frame.
const MAX_FDS: usize = 8;

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_limit(MAX_FRAME as u64)
}

/// A framed connection.
pub struct Conn {
    sock: UnixStream,
}

impl Conn {
    /// Wraps a connected socket.
    pub fn new(sock: UnixStream) -> Conn {
        Conn { sock }
    }

    /// Drops the connection without closing its descriptor (which is not
    /// this process's to close any more).
    pub(crate) fn forget(self) {
        use std::os::fd::IntoRawFd;
        let _ = self.sock.into_raw_fd();
    }

    /// The socket.
    pub fn socket(&self) -> &UnixStream {
        &self.sock
    }

    /// Sends one frame with optional descriptors.
    pub fn send<T: Serialize>(&self, v: &T, fds: &[RawFd]) -> Result<()> {
        let body = codec().serialize(v).map_err(|_| DvkError::Protocol)?;
        if body.len() > MAX_FRAME || fds.len() > MAX_FDS {
            return Err(DvkError::TooBig);
        }
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        let mut off = 0;
        while off < frame.len() {
            let iov = [std::io::IoSlice::new(&frame[off..])];
            let cmsg = [ControlMessage::ScmRights(fds)];
            let cm: &[ControlMessage] = if off == 0 && !fds.is_empty() {
                &cmsg
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &iov,
                cm,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => off += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err(DvkError::NoDaemon),
            }
        }
        Ok(())
    }

    fn recv_some(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize> {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        loop {
            let mut iov = [IoSliceMut::new(buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let n = msg.bytes;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(v) = c {
                                for fd in v {
                                    // SAFETY: the kernel just installed this
                                    // descriptor in our table for us.
                                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                                }
                            }
                        }
                    }
                    if n == 0 {
                        return Err(DvkError::NoDaemon);
                    }
                    return Ok(n);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return Err(DvkError::NoDaemon),
            }
        }
    }

    /// Receives one frame and the descriptors that came with it.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<(T, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            got += self.recv_some(&mut len[got..], &mut fds)?;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(DvkError::TooBig);
        }
        let mut body = vec![0u8; len];
        let mut got = 0;
        while got < len {
            got += self.recv_some(&mut body[got..], &mut fds)?;
        }
        let v = codec()
            .deserialize(&body)
            .map_err(|_| DvkError::BadRequest)?;
        Ok((v, fds))
    }
}
