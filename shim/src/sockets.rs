//! The socket family: `AF_UNIX`, `AF_INET` and `AF_INET6` sockets, and
//! `AF_NETLINK` route sockets,
//! served by FS.
//!
//! Addresses, option values and data buffers are handed to FS as they
//! are (the program's own memory, [`Mem::direct`]) or through bounce
//! buffers (remote memory). `sendmsg`/`recvmsg` control messages are
//! decoded here: `SCM_RIGHTS` becomes a plain descriptor array
//! ([`abi::SendAux`], [`abi::RecvAux`]) and the received descriptors are
//! written back as one `SCM_RIGHTS` message. Other families are
//! [`Action::Unsupported`] (`ENOSYS` and a one-line report).

use crate::mem::{Buf, Mem};
use crate::{ret, Action, Shim};
use mol_servers::abi::{self, Call, RecvAux, SendAux, FS};

/// Size of `struct cmsghdr` (`CMSG_LEN(0)`).
const CMSG_HDR: usize = 16;
/// Largest address FS accepts (`struct sockaddr_un`); longer is `EINVAL`.
const ADDR_MAX: u64 = 128;
/// Largest option value moved (`TCP_INFO` and the like fit).
const OPT_MAX: u64 = 256;
/// Size of `struct mmsghdr`.
const MMSGHDR_SIZE: u64 = 64;
/// Most entries of one `sendmmsg`/`recvmmsg` (`UIO_MAXIOV`).
const UIO_MAXIOV: u64 = 1024;
/// Largest `iovcnt`.
const IOV_MAX: u64 = 1024;
/// Largest control buffer moved (Linux's `optmem_max` is 20 KiB).
const CTL_MAX: usize = 64 * 1024;

/// A decoded `struct msghdr`.
#[derive(Debug, Default, Clone, Copy)]
struct MsgHdr {
    name: u64,
    namelen: u32,
    iov: u64,
    iovlen: u64,
    control: u64,
    controllen: u64,
}

fn read_msghdr(mem: &dyn Mem, addr: u64) -> Result<MsgHdr, i32> {
    let w: [u64; 7] = mem.read_val(addr)?;
    Ok(MsgHdr {
        name: w[0],
        namelen: w[1] as u32,
        iov: w[2],
        iovlen: w[3],
        control: w[4],
        controllen: w[5],
    })
}

/// The data buffers of a send or receive, as FS will see them.
struct Io {
    /// `struct iovec` array for FS (in the shim's memory when bounced).
    segs: Vec<[u64; 2]>,
    /// The program's own array address (direct memory).
    direct: Option<u64>,
    /// Bounced data and the program's segments it maps to.
    bounce: Option<(Vec<u8>, Vec<[u64; 2]>)>,
    cnt: u64,
}

impl Io {
    /// One buffer.
    fn single(mem: &dyn Mem, addr: u64, len: u64, outgoing: bool) -> Result<Io, i32> {
        if mem.direct() {
            return Ok(Io {
                segs: vec![[addr, len]],
                direct: None,
                bounce: None,
                cnt: 1,
            });
        }
        Io::bounced(mem, vec![[addr, len]], outgoing)
    }

    /// A program `struct iovec` array.
    fn vector(mem: &dyn Mem, iov: u64, cnt: u64, outgoing: bool) -> Result<Io, i32> {
        if cnt > IOV_MAX {
            return Err(libc::EMSGSIZE);
        }
        if mem.direct() {
            return Ok(Io {
                segs: Vec::new(),
                direct: Some(iov),
                bounce: None,
                cnt,
            });
        }
        let mut user = Vec::with_capacity(cnt as usize);
        for i in 0..cnt {
            user.push(mem.read_val::<[u64; 2]>(iov + 16 * i)?);
        }
        Io::bounced(mem, user, outgoing)
    }

    fn bounced(mem: &dyn Mem, user: Vec<[u64; 2]>, outgoing: bool) -> Result<Io, i32> {
        let total = user
            .iter()
            .try_fold(0usize, |t, s| t.checked_add(s[1] as usize))
            .filter(|&t| t <= 1 << 30)
            .ok_or(libc::EINVAL)?;
        let mut data = vec![0u8; total];
        if outgoing {
            let mut o = 0;
            for s in &user {
                mem.read(s[0], &mut data[o..o + s[1] as usize])?;
                o += s[1] as usize;
            }
        }
        let segs = vec![[data.as_ptr() as u64, total as u64]];
        Ok(Io {
            segs,
            direct: None,
            bounce: Some((data, user)),
            cnt: 1,
        })
    }

    /// `[iov address, count]` for FS.
    fn args(&self) -> [u64; 2] {
        match self.direct {
            Some(a) => [a, self.cnt],
            None => [self.segs.as_ptr() as u64, self.segs.len() as u64],
        }
    }

    /// After a receive of `n` bytes: copies bounced bytes back.
    fn finish(&self, mem: &dyn Mem, n: usize) -> Result<(), i32> {
        let Some((data, user)) = &self.bounce else {
            return Ok(());
        };
        let mut o = 0usize;
        for s in user {
            let take = (s[1] as usize).min(n.min(data.len()).saturating_sub(o));
            if take == 0 {
                break;
            }
            mem.write(s[0], &data[o..o + take])?;
            o += take;
        }
        Ok(())
    }
}

/// Reads a `socklen_t *` capacity (`EINVAL` if negative).
fn read_len(mem: &dyn Mem, addr: u64) -> Result<u64, i32> {
    let v: i32 = mem.read_val(addr)?;
    if v < 0 {
        return Err(libc::EINVAL);
    }
    Ok(v as u64)
}

/// A decoded control buffer: the descriptors of its `SCM_RIGHTS`
/// messages, and whether it holds other messages (`SCM_CREDENTIALS`,
/// `IPV6_HOPLIMIT`...), which go to FS raw.
struct Control {
    fds: Vec<i32>,
    foreign: bool,
}

/// Decodes a `sendmsg` control buffer.
fn control_fds(mem: &dyn Mem, control: u64, len: u64) -> Result<Control, i32> {
    let mut c = Control {
        fds: Vec::new(),
        foreign: false,
    };
    if control == 0 || len == 0 {
        return Ok(c);
    }
    if len > 1 << 16 {
        return Err(libc::ENOBUFS);
    }
    let mut buf = vec![0u8; len as usize];
    mem.read(control, &mut buf)?;
    let mut off = 0usize;
    while off + CMSG_HDR <= buf.len() {
        let mut l = [0u8; 8];
        l.copy_from_slice(&buf[off..off + 8]);
        let clen = u64::from_ne_bytes(l) as usize;
        if clen < CMSG_HDR || off + clen > buf.len() {
            return Err(libc::EINVAL);
        }
        let level = i32::from_ne_bytes([buf[off + 8], buf[off + 9], buf[off + 10], buf[off + 11]]);
        let ty = i32::from_ne_bytes([buf[off + 12], buf[off + 13], buf[off + 14], buf[off + 15]]);
        match (level, ty) {
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {
                for f in buf[off + CMSG_HDR..off + clen].chunks_exact(4) {
                    c.fds.push(i32::from_ne_bytes([f[0], f[1], f[2], f[3]]));
                }
            }
            // Credentials (FS checks them) and other levels' messages go
            // to FS raw.
            _ => c.foreign = true,
        }
        off += clen.div_ceil(8) * 8;
    }
    Ok(c)
}

impl Shim {
    fn pid_word(&self) -> u64 {
        self.getpid().max(0) as u64
    }

    /// `sendmsg` with the pieces decoded: data, destination, descriptors.
    #[allow(clippy::too_many_arguments)]
    fn send_parts(
        &self,
        mem: &dyn Mem,
        fd: u64,
        io: &Io,
        flags: u64,
        name: u64,
        namelen: u64,
        fds: &[i32],
        ctl: Option<(u64, u64)>,
    ) -> Action {
        let r = (|| {
            let addr = if name != 0 && namelen > 0 {
                Some(Buf::input(mem, name, namelen.min(ADDR_MAX) as usize)?)
            } else {
                None
            };
            let ctl = match ctl {
                Some((a, n)) => Some((Buf::input(mem, a, n as usize)?, n)),
                None => None,
            };
            let aux = SendAux {
                name: addr.as_ref().map_or(0, |b| b.addr()),
                namelen: if addr.is_some() { namelen } else { 0 },
                fds: if fds.is_empty() {
                    0
                } else {
                    fds.as_ptr() as u64
                },
                nfds: fds.len() as u64,
                ctl: ctl.as_ref().map_or(0, |(b, _)| b.addr()),
                ctllen: ctl.as_ref().map_or(0, |&(_, n)| n),
            };
            let [iov, cnt] = io.args();
            self.value(
                FS,
                Call::FsSendmsg,
                &[fd, iov, cnt, flags, &aux as *const SendAux as u64],
            )
        })();
        match r {
            Err(libc::EPIPE) if flags as i32 & libc::MSG_NOSIGNAL == 0 => Action::SigPipe,
            r => Action::Ret(ret(r)),
        }
    }

    /// `recvmsg` with the pieces decoded; returns the byte count and the
    /// results (sender's name length, descriptors, `msg_flags`).
    #[allow(clippy::too_many_arguments)]
    fn recv_parts(
        &self,
        mem: &dyn Mem,
        fd: u64,
        io: &Io,
        flags: u64,
        name: Option<&Buf>,
        namecap: u64,
        fdbuf: &mut [i32],
        ctl: Option<(&Buf, u64)>,
    ) -> Result<(i64, RecvAux), i32> {
        let mut aux = RecvAux {
            ctl: ctl.map_or(0, |(b, _)| b.addr()),
            ctlcap: ctl.map_or(0, |(_, n)| n),
            name: name.map_or(0, |b| b.addr()),
            namecap: if name.is_some() { namecap } else { 0 },
            fds: if fdbuf.is_empty() {
                0
            } else {
                fdbuf.as_mut_ptr() as u64
            },
            fdcap: fdbuf.len() as u64,
            ..RecvAux::default()
        };
        let [iov, cnt] = io.args();
        let n = self.value(
            FS,
            Call::FsRecvmsg,
            &[fd, iov, cnt, flags, &mut aux as *mut RecvAux as u64],
        )?;
        io.finish(mem, n as usize)?;
        if let Some(b) = name {
            b.finish(mem, aux.namelen.min(namecap) as usize)?;
        }
        Ok((n, aux))
    }

    fn sendmsg(&self, mem: &dyn Mem, fd: u64, msg: u64, flags: u64) -> Action {
        let r = (|| -> Result<(MsgHdr, Control, Io), i32> {
            let h = read_msghdr(mem, msg)?;
            let c = control_fds(mem, h.control, h.controllen)?;
            let io = Io::vector(mem, h.iov, h.iovlen, true)?;
            Ok((h, c, io))
        })();
        match r {
            Ok((h, c, io)) => {
                let raw = c.foreign.then_some((h.control, h.controllen));
                self.send_parts(mem, fd, &io, flags, h.name, h.namelen as u64, &c.fds, raw)
            }
            Err(e) => Action::Ret(-(e as i64)),
        }
    }

    fn recvmsg(&self, mem: &dyn Mem, fd: u64, msg: u64, flags: u64) -> Result<i64, i32> {
        let h = read_msghdr(mem, msg)?;
        let io = Io::vector(mem, h.iov, h.iovlen, false)?;
        let name = (h.name != 0).then(|| Buf::output(mem, h.name, h.namelen as usize));
        let fdcap = if h.control == 0 {
            0
        } else {
            (h.controllen as usize).saturating_sub(CMSG_HDR) / 4
        };
        let mut fdbuf = vec![0i32; fdcap.min(SCM_MAX)];
        // Raw control messages from the host (INET) go straight there.
        let ctlcap = (h.controllen as usize).min(CTL_MAX);
        let ctl = (h.control != 0 && ctlcap > 0).then(|| Buf::output(mem, h.control, ctlcap));
        let (n, aux) = self.recv_parts(
            mem,
            fd,
            &io,
            flags,
            name.as_ref(),
            h.namelen as u64,
            &mut fdbuf,
            ctl.as_ref().map(|b| (b, ctlcap as u64)),
        )?;
        let nfds = aux.nfds as usize;
        let mut controllen = 0u64;
        if let (Some(b), true) = (&ctl, aux.ctllen > 0) {
            b.finish(mem, aux.ctllen as usize)?;
            controllen = aux.ctllen;
        } else if nfds > 0 {
            let mut c = Vec::with_capacity(CMSG_HDR + 4 * nfds);
            c.extend_from_slice(&((CMSG_HDR + 4 * nfds) as u64).to_ne_bytes());
            c.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
            c.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
            for f in &fdbuf[..nfds] {
                c.extend_from_slice(&f.to_ne_bytes());
            }
            mem.write(h.control, &c)?;
            controllen = ((c.len().div_ceil(8) * 8) as u64).min(h.controllen);
        }
        let namelen = if h.name != 0 { aux.namelen as u32 } else { 0 };
        mem.write_val(msg + 8, &namelen)?;
        mem.write_val(msg + 40, &controllen)?;
        mem.write_val(msg + 48, &(aux.flags as i32))?;
        Ok(n)
    }

    /// `sendmmsg`: `sendmsg` per entry, stopping at the first error (which
    /// is only reported when nothing was sent).
    fn sendmmsg(&self, mem: &dyn Mem, fd: u64, vec: u64, vlen: u64, flags: u64) -> Action {
        let vlen = vlen.min(UIO_MAXIOV);
        let mut sent = 0u64;
        for i in 0..vlen {
            let h = vec + MMSGHDR_SIZE * i;
            match self.sendmsg(mem, fd, h, flags) {
                Action::Ret(n) if n >= 0 => {
                    if let Err(e) = mem.write_val(h + 56, &(n as u32)) {
                        return Action::Ret(if sent > 0 { sent as i64 } else { -(e as i64) });
                    }
                    sent += 1;
                }
                other if sent == 0 => return other,
                _ => break,
            }
        }
        Action::Ret(sent as i64)
    }

    /// `recvmmsg`: `recvmsg` per entry; after the first message, only
    /// what is already there with `MSG_WAITFORONE` (the timeout is not
    /// served).
    fn recvmmsg(
        &self,
        mem: &dyn Mem,
        fd: u64,
        vec: u64,
        vlen: u64,
        flags: u64,
    ) -> Result<i64, i32> {
        let vlen = vlen.min(UIO_MAXIOV);
        let mut got = 0u64;
        let mut fl = flags & !(libc::MSG_WAITFORONE as u64);
        for i in 0..vlen {
            let h = vec + MMSGHDR_SIZE * i;
            match self.recvmsg(mem, fd, h, fl) {
                Ok(n) => {
                    mem.write_val(h + 56, &(n as u32))?;
                    got += 1;
                    if flags as i32 & libc::MSG_WAITFORONE != 0 {
                        fl |= libc::MSG_DONTWAIT as u64;
                    }
                }
                Err(e) if got == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(got as i64)
    }

    /// `accept4`, `getsockname`, `getpeername`: an address result with a
    /// `socklen_t *` in and out.
    fn addr_out(
        &self,
        mem: &dyn Mem,
        call: Call,
        fd: u64,
        addr: u64,
        lenp: u64,
        extra: u64,
    ) -> Result<i64, i32> {
        let cap = if addr == 0 { 0 } else { read_len(mem, lenp)? };
        let buf = Buf::output(mem, addr, cap as usize);
        let a = if addr == 0 { 0 } else { buf.addr() };
        let m = self.call(FS, call, &[fd, a, cap, extra])?;
        let v = abi::result(&m)?;
        let full = if call == Call::FsAccept {
            m.words()[1]
        } else {
            v as u64
        };
        if addr != 0 {
            buf.finish(mem, full.min(cap) as usize)?;
            mem.write_val(lenp, &(full as u32))?;
        }
        Ok(if call == Call::FsAccept { v } else { 0 })
    }
    /// `recvfrom` through FS's `recvmsg`.
    fn recvfrom(&self, mem: &dyn Mem, a: [u64; 6]) -> Result<i64, i32> {
        let io = Io::single(mem, a[1], a[2], false)?;
        let cap = if a[4] == 0 || a[5] == 0 {
            0
        } else {
            read_len(mem, a[5])?
        };
        let name = (a[4] != 0).then(|| Buf::output(mem, a[4], cap as usize));
        let (n, aux) = self.recv_parts(mem, a[0], &io, a[3], name.as_ref(), cap, &mut [], None)?;
        if a[4] != 0 && a[5] != 0 {
            mem.write_val(a[5], &(aux.namelen as u32))?;
        }
        Ok(n)
    }

    /// Serves the call if it belongs to the socket family.
    #[allow(non_upper_case_globals)]
    pub(crate) fn socket_call(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Option<Action> {
        use libc::*;
        use mol_servers::abi::FS;
        let r = |x: Result<i64, i32>| Some(Action::Ret(ret(x)));
        match nr {
            SYS_socket | SYS_socketpair => {
                let route = a[0] as i32 == AF_NETLINK && a[2] as i32 == NETLINK_ROUTE;
                if ![AF_UNIX, AF_INET, AF_INET6].contains(&(a[0] as i32)) && !route {
                    return Some(Action::Unsupported(nr));
                }
                let args = [a[0], a[1], a[2], self.pid_word()];
                if nr == SYS_socket {
                    return r(self.value(FS, Call::FsSocket, &args));
                }
                r((|| {
                    let m = self.call(FS, Call::FsSocketpair, &args)?;
                    let fa = abi::result(&m)? as i32;
                    let fb = m.words()[1] as i32;
                    if let Err(e) = mem.write_val(a[3], &[fa, fb]) {
                        let _ = self.value(FS, Call::FsClose, &[fa as u64]);
                        let _ = self.value(FS, Call::FsClose, &[fb as u64]);
                        return Err(e);
                    }
                    Ok(0)
                })())
            }
            SYS_bind | SYS_connect => r((|| {
                if a[2] > ADDR_MAX {
                    return Err(EINVAL);
                }
                let b = Buf::input(mem, a[1], a[2] as usize)?;
                if nr == SYS_bind {
                    self.value(FS, Call::FsBind, &[a[0], b.addr(), a[2]])
                } else {
                    self.value(
                        FS,
                        Call::FsConnect,
                        &[a[0], b.addr(), a[2], self.pid_word()],
                    )
                }
            })()),
            SYS_listen => r(self.value(FS, Call::FsListen, &[a[0], a[1], self.pid_word()])),
            SYS_accept => r(self.addr_out(mem, Call::FsAccept, a[0], a[1], a[2], 0)),
            SYS_accept4 => r(self.addr_out(mem, Call::FsAccept, a[0], a[1], a[2], a[3])),
            SYS_getsockname => r(self.addr_out(mem, Call::FsSockName, a[0], a[1], a[2], 0)),
            SYS_getpeername => r(self.addr_out(mem, Call::FsSockName, a[0], a[1], a[2], 1)),
            SYS_shutdown => r(self.value(FS, Call::FsShutdown, &[a[0], a[1]])),
            SYS_getsockopt => r((|| {
                let cap = read_len(mem, a[4])?.min(OPT_MAX);
                let b = Buf::output(mem, a[3], cap as usize);
                let n = self.value(FS, Call::FsGetsockopt, &[a[0], a[1], a[2], b.addr(), cap])?;
                b.finish(mem, n as usize)?;
                mem.write_val(a[4], &(n as u32))?;
                Ok(0)
            })()),
            SYS_setsockopt => r((|| {
                let len = (a[4] as u32 as u64).min(OPT_MAX);
                let b = Buf::input(mem, a[3], len as usize)?;
                self.value(FS, Call::FsSetsockopt, &[a[0], a[1], a[2], b.addr(), len])
            })()),
            SYS_sendto => Some(match Io::single(mem, a[1], a[2], true) {
                Ok(io) => self.send_parts(mem, a[0], &io, a[3], a[4], a[5], &[], None),
                Err(e) => Action::Ret(-(e as i64)),
            }),
            // recv(fd, buf, n, 0) without an address is read(fd, buf, n)
            // on a socket: large ones may use the data channel.
            SYS_recvfrom if a[3] == 0 && a[4] == 0 => self
                .read_via_channel(mem, a[0], a[1], a[2], abi::RECV_CHANNEL)
                .or_else(|| r(self.recvfrom(mem, a))),
            SYS_recvfrom => r(self.recvfrom(mem, a)),
            SYS_sendmsg => Some(self.sendmsg(mem, a[0], a[1], a[2])),
            SYS_recvmsg => r(self.recvmsg(mem, a[0], a[1], a[2])),
            SYS_sendmmsg => Some(self.sendmmsg(mem, a[0], a[1], a[2], a[3])),
            SYS_recvmmsg => r(self.recvmmsg(mem, a[0], a[1], a[2], a[3])),
            _ => None,
        }
    }
}

/// Most descriptors received in one message (`SCM_MAX_FD`).
pub(crate) const SCM_MAX: usize = 253;
