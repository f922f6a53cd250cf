//! `sendmsg` and `recvmsg` (and through the shim `send`, `sendto`,
//! `recv`, `recvfrom`), with `SCM_RIGHTS` and `SCM_CREDENTIALS`.
//!
//! FS owns every descriptor table, so passing descriptors needs no host
//! help: the sender's descriptions travel in the packet as `Rc<Ofd>`s
//! and are installed in the receiver's table on receipt (sharing the open
//! file description, as Linux does). The shim turns the control messages
//! into a plain descriptor array ([`abi::SendAux`], [`abi::RecvAux`]) and
//! back.
//!
//! Every packet carries its sender's credentials (its DC pid, FS's user
//! and group, or what it sent in `SCM_CREDENTIALS` if Linux would accept
//! it); a reader with `SO_PASSCRED` gets them as an `SCM_CREDENTIALS`
//! message before its `SCM_RIGHTS` one, as on Linux.

use super::super::io::{Attempt, Iov};
use super::super::table::{Kind, Ofd};
use super::super::{Fs, Op, Waiter};
use super::addr::sockaddr;
use super::conn::read_addr;
use super::{recv, send, socket_of, Cred, Pending, RecvOut, SCM_MAX_FD};
use crate::abi::{self, Call, RecvAux, SendAux};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::rc::Rc;

fn words<const N: usize>(raw: &[u8]) -> [u64; N] {
    let mut w = [0u64; N];
    for (i, c) in raw.chunks_exact(8).take(N).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        w[i] = u64::from_ne_bytes(b);
    }
    w
}

/// Size of `struct cmsghdr`.
const CMSG_HDR: usize = 16;
/// Size of `struct ucred`.
const UCRED: usize = 12;

/// The control messages in a raw buffer: level, type and data.
fn cmsgs(raw: &[u8]) -> impl Iterator<Item = (i32, i32, &[u8])> + '_ {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let h = raw.get(off..off + CMSG_HDR)?;
        let len = u64::from_ne_bytes(h[0..8].try_into().ok()?) as usize;
        let level = i32::from_ne_bytes(h[8..12].try_into().ok()?);
        let ty = i32::from_ne_bytes(h[12..16].try_into().ok()?);
        let data = raw
            .get(off + CMSG_HDR..off + len.max(CMSG_HDR))
            .unwrap_or(&[]);
        off += len.max(CMSG_HDR).div_ceil(8) * 8;
        Some((level, ty, data))
    })
}

/// The credentials a `sendmsg` by process `own` carries: its own, or
/// those of its `SCM_CREDENTIALS` message, which Linux takes only with
/// the sender's own pid, user and group (any, for root); besides
/// `SCM_RIGHTS` (decoded by the shim), Linux ignores other levels'
/// messages and refuses other `SOL_SOCKET` ones.
fn sent_cred(raw: &[u8], own: Cred) -> Result<Cred, i32> {
    let mut cred = own;
    for (level, ty, data) in cmsgs(raw) {
        match (level, ty) {
            (libc::SOL_SOCKET, libc::SCM_RIGHTS) => {}
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) => {
                let w = |i: usize| data.get(4 * i..4 * i + 4).map(|b| [b[0], b[1], b[2], b[3]]);
                let (Some(p), Some(u), Some(g), UCRED) = (w(0), w(1), w(2), data.len()) else {
                    return Err(libc::EINVAL);
                };
                let c = Cred {
                    pid: i32::from_ne_bytes(p),
                    uid: u32::from_ne_bytes(u),
                    gid: u32::from_ne_bytes(g),
                };
                let root = own.uid == 0;
                if !(root || c.pid == own.pid && c.uid == own.uid && c.gid == own.gid) {
                    return Err(libc::EPERM);
                }
                cred = c;
            }
            (libc::SOL_SOCKET, _) => return Err(libc::EINVAL),
            _ => {}
        }
    }
    Ok(cred)
}

/// Room `struct ucred` takes in a control buffer (`CMSG_SPACE`).
const UCRED_SPACE: usize = CMSG_HDR + 16;

/// How many descriptors fit in a control buffer of `cap` bytes after the
/// credentials, as Linux counts them.
fn fds_after_cred(cap: usize) -> usize {
    cap.saturating_sub(UCRED_SPACE).saturating_sub(CMSG_HDR) / 4
}

/// Appends one control message to `out`, a buffer of `cap` bytes, as
/// Linux's `put_cmsg` does: a message that does not fit is cut (its
/// length says so) and the receive is `MSG_CTRUNC` (the returned
/// `true`); with not even a header's room, nothing is written.
fn put_cmsg(out: &mut Vec<u8>, cap: usize, ty: i32, data: &[u8]) -> bool {
    let room = cap.saturating_sub(out.len());
    if room < CMSG_HDR {
        return true;
    }
    let len = CMSG_HDR + data.len();
    let cmlen = len.min(room);
    let start = out.len();
    out.extend_from_slice(&(cmlen as u64).to_ne_bytes());
    out.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&data[..cmlen - CMSG_HDR]);
    out.resize(start + (len.div_ceil(8) * 8).min(room), 0);
    cmlen < len
}

/// The control messages of a receive with `SO_PASSCRED` (credentials,
/// then the descriptors, which [`fds_after_cred`] made fit) in a buffer
/// of `cap` bytes. Returns the bytes and whether some were cut.
fn cred_control(cred: Cred, fds: &[i32], cap: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut c = Vec::with_capacity(UCRED);
    c.extend_from_slice(&cred.pid.to_ne_bytes());
    c.extend_from_slice(&cred.uid.to_ne_bytes());
    c.extend_from_slice(&cred.gid.to_ne_bytes());
    let mut cut = put_cmsg(&mut out, cap, libc::SCM_CREDENTIALS, &c);
    if !fds.is_empty() {
        let f: Vec<u8> = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
        cut |= put_cmsg(&mut out, cap, libc::SCM_RIGHTS, &f);
    }
    (out, cut)
}

pub(in crate::fs) fn read_send_aux(ctx: &Ctx, from: Endpoint, addr: u64) -> Result<SendAux, i32> {
    if addr == 0 {
        return Ok(SendAux::default());
    }
    let w: [u64; 6] = words(&ctx.copy_in(from, addr, abi::SEND_AUX_SIZE)?);
    Ok(SendAux {
        name: w[0],
        namelen: w[1],
        fds: w[2],
        nfds: w[3],
        ctl: w[4],
        ctllen: w[5],
    })
}

pub(in crate::fs) fn read_recv_aux(ctx: &Ctx, from: Endpoint, addr: u64) -> Result<RecvAux, i32> {
    if addr == 0 {
        return Ok(RecvAux::default());
    }
    let w: [u64; 10] = words(&ctx.copy_in(from, addr, abi::RECV_AUX_SIZE)?);
    Ok(RecvAux {
        name: w[0],
        namecap: w[1],
        fds: w[2],
        fdcap: w[3],
        ctl: w[7],
        ctlcap: w[8],
        ..RecvAux::default()
    })
}

/// Hands a received packet's extras to the caller: the sender's name,
/// the descriptors (installed in `caller`'s table), the result words.
#[allow(clippy::too_many_arguments)]
fn deliver(
    fs: &mut Fs,
    ctx: &Ctx,
    sender: Endpoint,
    caller: Endpoint,
    n: i64,
    flags: i32,
    aux: &RecvAux,
    aux_addr: u64,
    out: RecvOut,
) -> Message {
    let mut mflags = out.flags;
    if aux_addr == 0 {
        // Plain read: descriptors passed are discarded.
        drop(out.fds);
        return abi::ok(n);
    }
    let mut namelen = 0u64;
    if let Some(from) = &out.from {
        let raw = sockaddr(Some(from));
        namelen = raw.len() as u64;
        if aux.name != 0 {
            let k = raw.len().min(aux.namecap as usize);
            if let Err(e) = ctx.copy_out(sender, aux.name, &raw[..k]) {
                return abi::err(e);
            }
        }
    }
    let with_cred = out.cred.filter(|_| aux.ctl != 0);
    let cap = match with_cred {
        Some(_) => fds_after_cred(aux.ctlcap as usize),
        None if aux.fds == 0 => 0,
        None => aux.fdcap as usize,
    };
    if out.cred.is_some() && aux.ctl == 0 {
        // Credentials and no room for them.
        mflags |= libc::MSG_CTRUNC;
    }
    let cloexec = flags & libc::MSG_CMSG_CLOEXEC != 0;
    let mut placed: Vec<i32> = Vec::new();
    let mut extra: Vec<Rc<Ofd>> = Vec::new();
    for o in out.fds {
        if placed.len() >= cap {
            extra.push(o);
            mflags |= libc::MSG_CTRUNC;
            continue;
        }
        match fs.install(caller, o, cloexec) {
            Ok(fd) => placed.push(fd),
            Err(_) => mflags |= libc::MSG_CTRUNC,
        }
    }
    drop(extra);
    // With credentials, FS writes the whole control buffer.
    if let Some(cred) = with_cred {
        let (ctl, cut) = cred_control(cred, &placed, aux.ctlcap as usize);
        if cut {
            mflags |= libc::MSG_CTRUNC;
        }
        let written = ctx
            .copy_out(sender, aux.ctl, &ctl)
            .and_then(|()| ctx.copy_out(sender, aux_addr + 72, &(ctl.len() as u64).to_ne_bytes()));
        if let Err(e) = written {
            return abi::err(e);
        }
    } else if !placed.is_empty() {
        let raw: Vec<u8> = placed.iter().flat_map(|f| f.to_ne_bytes()).collect();
        if let Err(e) = ctx.copy_out(sender, aux.fds, &raw) {
            return abi::err(e);
        }
    }
    let mut res = Vec::with_capacity(24);
    res.extend_from_slice(&namelen.to_ne_bytes());
    res.extend_from_slice(&(placed.len() as u64).to_ne_bytes());
    res.extend_from_slice(&(mflags as u32 as u64).to_ne_bytes());
    if let Err(e) = ctx.copy_out(sender, aux_addr + 32, &res) {
        return abi::err(e);
    }
    abi::ok(n)
}

/// One try of a `recvmsg`: `Ok(Some(reply))`, or `Err(false)` when it
/// would block.
#[allow(clippy::too_many_arguments)]
pub(super) fn try_recv(
    fs: &mut Fs,
    ctx: &Ctx,
    sender: Endpoint,
    caller: Endpoint,
    ofd: &Rc<Ofd>,
    iov: &Iov,
    flags: i32,
    aux: &RecvAux,
    aux_addr: u64,
) -> Result<Option<Message>, bool> {
    let Kind::Socket(s) = &ofd.kind else {
        return Ok(Some(abi::err(libc::ENOTSOCK)));
    };
    let nb = ofd.nonblock() || flags & libc::MSG_DONTWAIT != 0;
    let mut out = RecvOut::default();
    match recv(ctx, sender, s, nb, iov, flags, &mut out) {
        Attempt::Blocked { .. } => Err(false),
        Attempt::Done(Err(e)) => Ok(Some(abi::err(e))),
        Attempt::Done(Ok(n)) => Ok(Some(deliver(
            fs, ctx, sender, caller, n, flags, aux, aux_addr, out,
        ))),
    }
}

/// `[fd, iov, iovcnt, flags, aux]`.
fn sendmsg(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    let prep = (|| {
        let (ofd, s) = socket_of(fs, req.caller, req.i32(0))?;
        if flags & libc::MSG_OOB != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let iov = Iov::from_client(ctx, req.sender, req.args[1], req.args[2])?;
        let aux = read_send_aux(ctx, req.sender, req.args[4])?;
        let own = Cred::of(fs.procs.get(&req.caller).map_or(0, |p| p.pid));
        let cred = if aux.ctl != 0 && aux.ctllen > 0 {
            let raw = ctx.copy_in(req.sender, aux.ctl, (aux.ctllen as usize).min(1 << 16))?;
            sent_cred(&raw, own)?
        } else {
            own
        };
        let dest = if aux.name != 0 && aux.namelen > 0 {
            let sb = s.borrow();
            if sb.connected_type() {
                return Err(if sb.tx.is_some() {
                    libc::EISCONN
                } else {
                    libc::EOPNOTSUPP
                });
            }
            drop(sb);
            let a = read_addr(ctx, req.sender, aux.name, aux.namelen)?;
            let t = fs.unix_find(req.caller, &a)?;
            if t.borrow().ty != libc::SOCK_DGRAM {
                return Err(libc::EPROTOTYPE);
            }
            Some(t)
        } else {
            None
        };
        let n = aux.nfds as usize;
        if n > SCM_MAX_FD {
            return Err(libc::EINVAL);
        }
        let mut fds = Vec::with_capacity(n);
        if n > 0 {
            let raw = ctx.copy_in(req.sender, aux.fds, 4 * n)?;
            for c in raw.chunks_exact(4) {
                let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                fds.push(fs.ofd(req.caller, fd)?);
            }
        }
        Ok((ofd, s, iov, dest, fds, cred))
    })();
    let (ofd, s, iov, dest, mut fds, cred) = match prep {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let nb = ofd.nonblock() || flags & libc::MSG_DONTWAIT != 0;
    let mut done = 0;
    match send(
        ctx,
        req.sender,
        &s,
        nb,
        &iov,
        dest.as_ref(),
        &mut fds,
        &mut done,
        cred,
    ) {
        Attempt::Done(r) => {
            drop(fds);
            fs.settle(ctx, false);
            Outcome::from(r)
        }
        Attempt::Blocked { .. } => {
            let deadline = super::super::sockets::deadline(&ofd, libc::SO_SNDTIMEO);
            fs.defer(
                ctx,
                Waiter {
                    sender: req.sender,
                    caller: req.caller,
                    op: Op::Sock(
                        Pending::Send {
                            ofd,
                            iov,
                            flags,
                            dest: dest.as_ref().map(Rc::downgrade),
                            fds,
                            done,
                            cred,
                        },
                        deadline,
                    ),
                },
            );
            Outcome::Deferred
        }
    }
}

/// `[fd, iov, iovcnt, flags, aux]`.
fn recvmsg(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    let prep = (|| {
        let (ofd, _) = socket_of(fs, req.caller, req.i32(0))?;
        if flags & libc::MSG_OOB != 0 {
            return Err(libc::EOPNOTSUPP);
        }
        let iov = Iov::from_client(ctx, req.sender, req.args[1], req.args[2])?;
        let aux = read_recv_aux(ctx, req.sender, req.args[4])?;
        Ok((ofd, iov, aux))
    })();
    let (ofd, iov, aux) = match prep {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let aux_addr = req.args[4];
    match try_recv(
        fs, ctx, req.sender, req.caller, &ofd, &iov, flags, &aux, aux_addr,
    ) {
        Ok(Some(m)) => {
            fs.settle(ctx, false);
            Outcome::Reply(m)
        }
        _ => {
            let deadline = super::super::sockets::deadline(&ofd, libc::SO_RCVTIMEO);
            fs.defer(
                ctx,
                Waiter {
                    sender: req.sender,
                    caller: req.caller,
                    op: Op::Sock(
                        Pending::Recv {
                            ofd,
                            iov,
                            flags,
                            aux,
                            aux_addr,
                        },
                        deadline,
                    ),
                },
            );
            Outcome::Deferred
        }
    }
}

/// The message calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsSendmsg, sendmsg as Handler<Fs>),
        (Call::FsRecvmsg, recvmsg),
    ]
}
