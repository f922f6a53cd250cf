//! Moving data: one try of a send or a receive on a socket.
//!
//! Stream sockets move bytes: a send takes what fits in the peer's
//! queue (the rest waits), a receive takes what is there, never crossing
//! into a packet that carries descriptors (so descriptors arrive with the
//! bytes they were sent with), nor, for a reader with `SO_PASSCRED`, into
//! another sender's bytes. Datagram and seqpacket sockets move whole
//! packets: a send needs room for all of it, a receive takes one packet
//! and truncates it to the buffers (`MSG_TRUNC`).

use super::super::io::{Attempt, Iov};
use super::super::table::Ofd;
use super::addr::Name;
use super::{Cred, Packet, Sock, MAX_DGRAM_QLEN};
use crate::server::Ctx;
use dvk::Endpoint;
use std::cell::RefCell;
use std::rc::Rc;

/// What a receive brings besides the bytes.
#[derive(Default)]
pub struct RecvOut {
    /// The sender's name (datagrams from a named socket).
    pub from: Option<Rc<Name>>,
    /// Descriptions passed (`SCM_RIGHTS`).
    pub fds: Vec<Rc<Ofd>>,
    /// `MSG_TRUNC` if a datagram did not fit.
    pub flags: i32,
    /// Who sent the bytes received, for a reader with `SO_PASSCRED`.
    pub cred: Option<Cred>,
}

fn would_block(nonblock: bool) -> Attempt {
    if nonblock {
        Attempt::Done(Err(libc::EAGAIN))
    } else {
        Attempt::Blocked { progressed: false }
    }
}

fn partial(done: usize, e: i32) -> Attempt {
    if done > 0 {
        Attempt::Done(Ok(done as i64))
    } else {
        Attempt::Done(Err(e))
    }
}

/// Tries to receive into `iov` (`MSG_PEEK`, `MSG_TRUNC`, `MSG_WAITALL`
/// in `flags`).
pub fn recv(
    ctx: &Ctx,
    to: Endpoint,
    s: &RefCell<Sock>,
    nonblock: bool,
    iov: &Iov,
    flags: i32,
    out: &mut RecvOut,
) -> Attempt {
    let (ty, rx, rcv_shut, connected, passcred) = {
        let sb = s.borrow();
        if sb.listen.is_some() {
            return Attempt::Done(Err(libc::EINVAL));
        }
        (
            sb.ty,
            sb.rx.clone(),
            sb.rcv_shut(),
            sb.tx.is_some(),
            sb.passcred(),
        )
    };
    let peek = flags & libc::MSG_PEEK != 0;
    let mut q = rx.borrow_mut();
    if q.pkts.is_empty() {
        if q.reset && ty != libc::SOCK_DGRAM {
            q.reset = false;
            return Attempt::Done(Err(libc::ECONNRESET));
        }
        if rcv_shut {
            return Attempt::Done(Ok(0));
        }
        match ty {
            libc::SOCK_STREAM if !connected => return Attempt::Done(Err(libc::EINVAL)),
            libc::SOCK_SEQPACKET if !connected => return Attempt::Done(Err(libc::ENOTCONN)),
            _ => {}
        }
        if iov.total == 0 && ty == libc::SOCK_STREAM {
            return Attempt::Done(Ok(0));
        }
        return would_block(nonblock);
    }
    if ty != libc::SOCK_STREAM {
        let Some(p) = q.pkts.front() else {
            return would_block(nonblock);
        };
        let len = p.data.len();
        let n = len.min(iov.total);
        if let Err(e) = iov.copy_out(ctx, to, 0, &p.data[..n]) {
            return Attempt::Done(Err(e));
        }
        if len > iov.total {
            out.flags |= libc::MSG_TRUNC;
        }
        out.from = p.from.clone();
        if passcred {
            out.cred = Some(p.cred);
        }
        if peek {
            out.fds = p.fds.clone();
        } else if let Some(p) = q.pkts.pop_front() {
            q.bytes -= p.data.len();
            out.fds = p.fds;
        }
        let r = if flags & libc::MSG_TRUNC != 0 { len } else { n };
        return Attempt::Done(Ok(r as i64));
    }
    // Stream. MSG_WAITALL waits until the whole request is there (or
    // the stream ends), as long as it can fit in the queue at all.
    if flags & libc::MSG_WAITALL != 0
        && !nonblock
        && !peek
        && q.bytes < iov.total
        && iov.total <= q.cap
        && !rcv_shut
        && q.pkts.iter().all(|p| p.fds.is_empty())
    {
        return Attempt::Blocked { progressed: false };
    }
    let mut pos = 0usize;
    let mut consumed = 0usize;
    let mut idx = 0usize;
    while pos < iov.total && idx < q.pkts.len() {
        let p = &q.pkts[idx];
        if pos > 0 && !p.fds.is_empty() {
            break;
        }
        // A reader of credentials never gets two writers' bytes at once.
        if passcred {
            if pos > 0 && out.cred != Some(p.cred) {
                break;
            }
            out.cred = Some(p.cred);
        }
        let avail = &p.data[p.off..];
        let n = avail.len().min(iov.total - pos);
        if let Err(e) = iov.copy_out(ctx, to, pos, &avail[..n]) {
            if pos == 0 {
                return Attempt::Done(Err(e));
            }
            break;
        }
        pos += n;
        let carried = !p.fds.is_empty();
        if peek {
            if carried {
                out.fds = p.fds.clone();
            }
            idx += 1;
        } else {
            let p = &mut q.pkts[idx];
            p.off += n;
            consumed += n;
            if carried {
                out.fds = std::mem::take(&mut p.fds);
            }
            if p.off == p.data.len() {
                q.pkts.pop_front();
            } else {
                break;
            }
        }
        if carried {
            break;
        }
    }
    q.bytes -= consumed;
    Attempt::Done(Ok(pos as i64))
}

/// Tries to send `iov[done..]` (to `dest` for an unconnected datagram
/// socket); `fds` go with the first packet; `done` advances.
#[allow(clippy::too_many_arguments)]
pub fn send(
    ctx: &Ctx,
    from: Endpoint,
    s: &RefCell<Sock>,
    nonblock: bool,
    iov: &Iov,
    dest: Option<&Rc<RefCell<Sock>>>,
    fds: &mut Vec<Rc<Ofd>>,
    done: &mut usize,
    cred: Cred,
) -> Attempt {
    let (ty, tx, name, shut_wr) = {
        let sb = s.borrow();
        let tx = match dest {
            Some(d) => Some(d.borrow().rx.clone()),
            None => sb.tx.clone(),
        };
        (sb.ty, tx, sb.name.clone(), sb.shut_wr)
    };
    if shut_wr {
        return partial(*done, libc::EPIPE);
    }
    let Some(tx) = tx else {
        return Attempt::Done(Err(libc::ENOTCONN));
    };
    let total = iov.total;
    let mut q = tx.borrow_mut();
    if q.rd_shut {
        return partial(
            *done,
            if ty == libc::SOCK_DGRAM {
                libc::ECONNREFUSED
            } else {
                libc::EPIPE
            },
        );
    }
    if ty != libc::SOCK_STREAM {
        if total > q.cap {
            return Attempt::Done(Err(libc::EMSGSIZE));
        }
        if q.bytes + total > q.cap || q.pkts.len() >= MAX_DGRAM_QLEN {
            return would_block(nonblock);
        }
        let mut data = vec![0u8; total];
        if let Err(e) = iov.copy_in(ctx, from, 0, &mut data) {
            return Attempt::Done(Err(e));
        }
        q.bytes += total;
        q.pkts.push_back(Packet {
            data,
            off: 0,
            fds: std::mem::take(fds),
            from: name,
            cred,
        });
        *done = total;
        return Attempt::Done(Ok(total as i64));
    }
    if total == 0 {
        return Attempt::Done(Ok(0));
    }
    let free = q.cap.saturating_sub(q.bytes);
    if free == 0 {
        return if nonblock {
            partial(*done, libc::EAGAIN)
        } else {
            Attempt::Blocked { progressed: false }
        };
    }
    let n = (total - *done).min(free);
    let mut data = vec![0u8; n];
    if let Err(e) = iov.copy_in(ctx, from, *done, &mut data) {
        return partial(*done, e);
    }
    q.bytes += n;
    q.pkts.push_back(Packet {
        data,
        off: 0,
        fds: std::mem::take(fds),
        from: None,
        cred,
    });
    *done += n;
    if *done == total {
        Attempt::Done(Ok(total as i64))
    } else if nonblock {
        Attempt::Done(Ok(*done as i64))
    } else {
        Attempt::Blocked { progressed: true }
    }
}
