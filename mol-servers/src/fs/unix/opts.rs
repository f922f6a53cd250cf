//! Socket options, `shutdown`, `getsockname` and `getpeername`.

use super::super::Fs;
use super::addr::sockaddr;
use super::{socket_of, Sock};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};

/// Smallest `SO_SNDBUF` (Linux's `SOCK_MIN_SNDBUF`).
const MIN_SNDBUF: usize = 4608;
/// Smallest `SO_RCVBUF` (`SOCK_MIN_RCVBUF`).
const MIN_RCVBUF: usize = 2304;
/// Largest value accepted before doubling (`wmem_max`/`rmem_max`).
const MAX_BUF: usize = 212_992;

/// Integer `SOL_SOCKET` options that are only remembered.
const PLAIN_INT: &[i32] = &[
    libc::SO_REUSEADDR,
    libc::SO_REUSEPORT,
    libc::SO_KEEPALIVE,
    libc::SO_BROADCAST,
    libc::SO_DONTROUTE,
    libc::SO_OOBINLINE,
    libc::SO_PRIORITY,
    libc::SO_PASSCRED,
    libc::SO_PASSSEC,
    libc::SO_TIMESTAMP,
    libc::SO_MARK,
];

fn int(v: i64) -> Vec<u8> {
    (v as i32).to_ne_bytes().to_vec()
}

/// The value of option `name` (`SOL_SOCKET`).
fn get(s: &mut Sock, name: i32) -> Result<Vec<u8>, i32> {
    Ok(match name {
        libc::SO_TYPE => int(s.ty as i64),
        libc::SO_DOMAIN => int(libc::AF_UNIX as i64),
        libc::SO_PROTOCOL => int(0),
        libc::SO_ERROR => {
            let mut rx = s.rx.borrow_mut();
            let e = if rx.reset && rx.pkts.is_empty() {
                rx.reset = false;
                libc::ECONNRESET
            } else {
                0
            };
            int(e as i64)
        }
        libc::SO_ACCEPTCONN => int(s.listen.is_some() as i64),
        libc::SO_SNDBUF => int(s.sndbuf as i64),
        libc::SO_RCVBUF => int(s.rcvbuf as i64),
        libc::SO_RCVLOWAT | libc::SO_SNDLOWAT => int(1),
        libc::SO_PEERCRED => {
            let (pid, uid, gid) = match s.peer_cred {
                Some(c) => (c.pid, c.uid, c.gid),
                None => (0, 65534, 65534),
            };
            let mut v = pid.to_ne_bytes().to_vec();
            v.extend_from_slice(&uid.to_ne_bytes());
            v.extend_from_slice(&gid.to_ne_bytes());
            v
        }
        libc::SO_LINGER => s.opts.get(&name).cloned().unwrap_or_else(|| vec![0; 8]),
        libc::SO_RCVTIMEO | libc::SO_SNDTIMEO => {
            s.opts.get(&name).cloned().unwrap_or_else(|| vec![0; 16])
        }
        n if PLAIN_INT.contains(&n) => s.opts.get(&n).cloned().unwrap_or_else(|| int(0)),
        _ => return Err(libc::ENOPROTOOPT),
    })
}

/// `[fd, level, name, buf, cap]`.
fn getsockopt(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        if req.i32(1) != libc::SOL_SOCKET {
            return Err(libc::EOPNOTSUPP);
        }
        let v = get(&mut s.borrow_mut(), req.i32(2))?;
        let n = v.len().min(req.args[4] as usize);
        ctx.copy_out(req.sender, req.args[3], &v[..n])?;
        Ok(n as i64)
    })();
    Outcome::from(r)
}

/// `[fd, level, name, buf, len]`.
fn setsockopt(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        if req.i32(1) != libc::SOL_SOCKET {
            return Err(libc::EOPNOTSUPP);
        }
        let name = req.i32(2);
        let len = (req.args[4] as usize).min(64);
        let raw = ctx.copy_in(req.sender, req.args[3], len)?;
        let val = || -> Result<i32, i32> {
            if raw.len() < 4 {
                return Err(libc::EINVAL);
            }
            Ok(i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]))
        };
        let mut s = s.borrow_mut();
        match name {
            libc::SO_SNDBUF | libc::SO_SNDBUFFORCE => {
                let v = (val()?.max(0) as usize).min(MAX_BUF) * 2;
                s.sndbuf = v.max(MIN_SNDBUF);
                let cap = s.sndbuf;
                if let Some(tx) = &s.tx {
                    if s.ty == libc::SOCK_STREAM {
                        tx.borrow_mut().cap = cap;
                    }
                }
            }
            libc::SO_RCVBUF | libc::SO_RCVBUFFORCE => {
                let v = (val()?.max(0) as usize).min(MAX_BUF) * 2;
                s.rcvbuf = v.max(MIN_RCVBUF);
            }
            libc::SO_LINGER => {
                if raw.len() < 8 {
                    return Err(libc::EINVAL);
                }
                s.opts.insert(name, raw[..8].to_vec());
            }
            libc::SO_RCVTIMEO | libc::SO_SNDTIMEO => {
                if raw.len() < 16 {
                    return Err(libc::EINVAL);
                }
                s.opts.insert(name, raw[..16].to_vec());
            }
            n if PLAIN_INT.contains(&n) => {
                let v = val()?;
                let stored = if n == libc::SO_PRIORITY || n == libc::SO_MARK {
                    v
                } else {
                    (v != 0) as i32
                };
                s.opts.insert(n, stored.to_ne_bytes().to_vec());
            }
            _ => return Err(libc::ENOPROTOOPT),
        }
        Ok(0)
    })();
    // A larger buffer may let a waiting writer go on.
    fs.settle(ctx, false);
    Outcome::from(r)
}

/// `[fd, how]`.
fn shutdown(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        let how = req.i32(1);
        if !(libc::SHUT_RD..=libc::SHUT_RDWR).contains(&how) {
            return Err(libc::EINVAL);
        }
        let mut s = s.borrow_mut();
        let rd = how != libc::SHUT_WR;
        let wr = how != libc::SHUT_RD;
        s.shut_rd |= rd;
        s.shut_wr |= wr;
        if s.connected_type() {
            if rd {
                s.rx.borrow_mut().rd_shut = true;
            }
            if wr {
                if let Some(tx) = &s.tx {
                    tx.borrow_mut().wr_shut = true;
                }
            }
        }
        Ok(0)
    })();
    fs.settle(ctx, false);
    Outcome::from(r)
}

/// `[fd, buf, cap, peer]`.
fn sockname(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let r = (|| {
        let (_, s) = socket_of(fs, req.caller, req.i32(0))?;
        let s = s.borrow();
        let raw = if req.args[3] == 1 {
            match &s.peer_name {
                Some(n) if s.tx.is_some() => sockaddr(n.as_deref()),
                _ => return Err(libc::ENOTCONN),
            }
        } else {
            sockaddr(s.name.as_deref())
        };
        let n = raw.len().min(req.args[2] as usize);
        ctx.copy_out(req.sender, req.args[1], &raw[..n])?;
        Ok(raw.len() as i64)
    })();
    Outcome::from(r)
}

/// The option and name calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsGetsockopt, getsockopt as Handler<Fs>),
        (Call::FsSetsockopt, setsockopt),
        (Call::FsShutdown, shutdown),
        (Call::FsSockName, sockname),
    ]
}
