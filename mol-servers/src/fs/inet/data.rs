//! `sendmsg` and `recvmsg` on INET sockets (and through the shim `send`,
//! `sendto`, `recv`, `recvfrom`): the bytes go through a buffer in FS,
//! filled from or copied to the program's buffers by `vcopy`.

use super::super::io::{with_scratch, Iov};
use super::super::table::Ofd;
use super::super::unix::{read_recv_aux, read_send_aux};
use super::{defer, host, publish, read_addr, socket_of, with_host, Pending, Publish};
use crate::abi::{self, RecvAux};
use crate::server::{Ctx, Outcome, Request};
use dvk::{Endpoint, Message};
use std::rc::Rc;

/// Most bytes moved by one host call (a datagram is never larger).
const CHUNK: usize = 256 * 1024;
/// Largest control buffer moved (Linux's `optmem_max` is 20 KiB).
const CTL_MAX: usize = 64 * 1024;

/// Flags passed on to the host (`MSG_DONTWAIT`, `MSG_NOSIGNAL` are FS's
/// own: FS never blocks, and `EPIPE` becomes the caller's `SIGPIPE` in
/// the shim).
const SEND_FLAGS: i32 = libc::MSG_OOB | libc::MSG_DONTROUTE | libc::MSG_EOR | libc::MSG_MORE;
const RECV_FLAGS: i32 = libc::MSG_OOB | libc::MSG_PEEK | libc::MSG_TRUNC;

/// One try of a send of `iov[done..]`: the reply, or `None` when the
/// socket's buffer is full (and the call may wait).
pub(super) fn try_send(
    ctx: &Ctx,
    from: Endpoint,
    ofd: &Ofd,
    iov: &Iov,
    flags: i32,
    (dest, ctl): (Option<&[u8]>, &[u8]),
    done: &mut usize,
) -> Option<Message> {
    let nonblock = ofd.nonblock() || flags & libc::MSG_DONTWAIT != 0;
    let partial = |done: usize, e: i32| {
        Some(if done > 0 {
            abi::ok(done as i64)
        } else {
            abi::err(e)
        })
    };
    loop {
        // A datagram (at most 64 KiB) goes whole or not at all; a
        // stream may take part of a chunk.
        let n = (iov.total - *done).min(CHUNK);
        let sent = with_scratch(n, |buf| {
            iov.copy_in(ctx, from, *done, buf)?;
            with_host(ofd, |fd| host::send(fd, buf, flags & SEND_FLAGS, dest, ctl))
        });
        match sent {
            Ok(k) => {
                *done += k;
                if *done >= iov.total {
                    return Some(abi::ok(*done as i64));
                }
            }
            Err(libc::EAGAIN) if nonblock => return partial(*done, libc::EAGAIN),
            Err(libc::EAGAIN) => return None,
            Err(e) => return partial(*done, e),
        }
    }
}

/// `[fd, iov, iovcnt, flags, aux]`.
pub(super) fn sendmsg(fs: &mut super::Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    let prep = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let iov = Iov::from_client(ctx, req.sender, req.args[1], req.args[2])?;
        let aux = read_send_aux(ctx, req.sender, req.args[4])?;
        // Descriptors travel over AF_UNIX sockets only.
        if aux.nfds > 0 {
            return Err(libc::EINVAL);
        }
        let dest = if aux.name != 0 && aux.namelen > 0 {
            let mut a = read_addr(ctx, req.sender, aux.name, aux.namelen)?;
            publish::to_host(&fs.publish, &mut a, false);
            Some(a)
        } else {
            None
        };
        if aux.ctllen > CTL_MAX as u64 {
            return Err(libc::ENOBUFS);
        }
        let ctl = if aux.ctl != 0 && aux.ctllen > 0 {
            ctx.copy_in(req.sender, aux.ctl, aux.ctllen as usize)?
        } else {
            Vec::new()
        };
        Ok((ofd, iov, dest, ctl))
    })();
    let (ofd, iov, dest, ctl) = match prep {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let mut done = 0;
    match try_send(
        ctx,
        req.sender,
        &ofd,
        &iov,
        flags,
        (dest.as_deref(), &ctl),
        &mut done,
    ) {
        Some(m) => Outcome::Reply(m),
        None => defer(
            fs,
            ctx,
            req,
            Pending::Send {
                ofd,
                iov,
                flags,
                dest,
                ctl,
                done,
            },
        ),
    }
}

/// One try of a `recvmsg`: the reply, or `None` when nothing is queued
/// (and the call may wait). `done` counts the bytes a blocking
/// `MSG_WAITALL` receive on a stream already moved: such a call goes on
/// until its buffers are full, the stream ends or an error comes, and
/// returns what it has then (a signal ends it with that count too).
#[allow(clippy::too_many_arguments)]
pub(super) fn try_recv(
    ctx: &Ctx,
    to: Endpoint,
    ofd: &Rc<Ofd>,
    iov: &Iov,
    flags: i32,
    (aux, aux_addr): (&RecvAux, u64),
    publish: &[Publish],
    done: &mut usize,
) -> Option<Message> {
    let nonblock = ofd.nonblock() || flags & libc::MSG_DONTWAIT != 0;
    let waitall = flags & libc::MSG_WAITALL != 0
        && flags & (libc::MSG_PEEK | libc::MSG_OOB) == 0
        && !nonblock
        && with_host(ofd, |fd| Ok(host::is_stream(fd))).unwrap_or(false);
    loop {
        let at = *done;
        let got = with_scratch((iov.total - at).min(CHUNK), |buf| {
            let ctlcap = (aux.ctlcap as usize).min(CTL_MAX);
            let got = with_host(ofd, |fd| host::recv(fd, buf, flags & RECV_FLAGS, ctlcap))?;
            let k = got.n.min(buf.len());
            iov.copy_out(ctx, to, at, &buf[..k])?;
            Ok(got)
        });
        let mut got = match got {
            Ok(g) => g,
            Err(libc::EAGAIN) if !nonblock => return None,
            Err(_) if at > 0 => return Some(abi::ok(at as i64)),
            Err(e) => return Some(abi::err(e)),
        };
        *done += got.n;
        if waitall && got.n > 0 && *done < iov.total {
            continue;
        }
        publish::to_dc(publish, &mut got.from, false);
        if aux_addr != 0 {
            if let Err(e) = write_aux(ctx, to, aux, aux_addr, &got) {
                return Some(abi::err(e));
            }
        }
        return Some(abi::ok(*done as i64));
    }
}

/// Writes what a `recvmsg` returns beside the data (the sender's address,
/// control messages, flags) into the caller's [`RecvAux`] at `aux_addr`.
fn write_aux(
    ctx: &Ctx,
    to: Endpoint,
    aux: &RecvAux,
    aux_addr: u64,
    got: &host::Received,
) -> Result<(), i32> {
    if aux.name != 0 && !got.from.is_empty() {
        let m = got.from.len().min(aux.namecap as usize);
        ctx.copy_out(to, aux.name, &got.from[..m])?;
    }
    if aux.ctl != 0 && !got.ctl.is_empty() {
        ctx.copy_out(to, aux.ctl, &got.ctl)?;
    }
    let mut res = Vec::with_capacity(24);
    res.extend_from_slice(&(got.from.len() as u64).to_ne_bytes());
    res.extend_from_slice(&0u64.to_ne_bytes());
    res.extend_from_slice(&(got.flags as u32 as u64).to_ne_bytes());
    let ctllen = (got.ctl.len() as u64).to_ne_bytes();
    ctx.copy_out(to, aux_addr + 32, &res)?;
    ctx.copy_out(to, aux_addr + 72, &ctllen)
}

/// `[fd, iov, iovcnt, flags, aux]`.
pub(super) fn recvmsg(fs: &mut super::Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(3);
    let prep = (|| {
        let ofd = socket_of(fs, req.caller, req.i32(0))?;
        let iov = Iov::from_client(ctx, req.sender, req.args[1], req.args[2])?;
        let aux = read_recv_aux(ctx, req.sender, req.args[4])?;
        Ok((ofd, iov, aux))
    })();
    let (ofd, iov, aux) = match prep {
        Ok(x) => x,
        Err(e) => return Outcome::err(e),
    };
    let aux_addr = req.args[4];
    let mut done = 0;
    match try_recv(
        ctx,
        req.sender,
        &ofd,
        &iov,
        flags,
        (&aux, aux_addr),
        &fs.publish,
        &mut done,
    ) {
        Some(m) => Outcome::Reply(m),
        None => defer(
            fs,
            ctx,
            req,
            Pending::Recv {
                ofd,
                iov,
                flags,
                aux,
                aux_addr,
                done,
            },
        ),
    }
}
