//! The socket calls, routed by family: `AF_UNIX` sockets are FS objects
//! (`unix`), `AF_INET`/`AF_INET6` sockets and `AF_NETLINK` route sockets
//! (interface and address lists) are host sockets FS owns (`inet`). `socket` and `socketpair` go by their domain argument, every
//! other call by the kind of its descriptor.

use super::{inet, unix, Fs};
use crate::abi::Call;
use crate::server::{Ctx, Handler, Outcome, Request};
use std::sync::OnceLock;
use std::time::Instant;

type Table = Vec<(Call, Handler<Fs>)>;

fn tables() -> &'static (Table, Table) {
    static T: OnceLock<(Table, Table)> = OnceLock::new();
    T.get_or_init(|| (unix::table(), inet::table()))
}

fn find(t: &Table, call: Call) -> Option<Handler<Fs>> {
    t.iter().find(|(c, _)| *c == call).map(|&(_, h)| h)
}

fn is_inet_domain(d: i32) -> bool {
    d == libc::AF_INET || d == libc::AF_INET6 || d == libc::AF_NETLINK
}

fn route(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let (unix, inet) = tables();
    let to_inet = match req.call {
        Call::FsSocketpair if is_inet_domain(req.i32(0)) => {
            return Outcome::err(libc::EOPNOTSUPP);
        }
        Call::FsSocket | Call::FsSocketpair => is_inet_domain(req.i32(0)),
        _ => inet::is_inet(fs, req.caller, req.i32(0)),
    };
    let h = if to_inet {
        find(inet, req.call)
    } else {
        find(unix, req.call)
    };
    match h {
        Some(h) => h(fs, ctx, req),
        None => Outcome::err(libc::ENOSYS),
    }
}

/// Every socket call, each through [`route`].
pub fn table() -> Table {
    tables()
        .0
        .iter()
        .map(|&(c, _)| (c, route as Handler<Fs>))
        .collect()
}

/// When a call that blocks now on `ofd` ends by the socket's timeout
/// `name` (`SO_RCVTIMEO` for reads and `accept`, `SO_SNDTIMEO` for writes
/// and `connect`), if `ofd` is a socket with one set.
pub fn deadline(ofd: &super::table::Ofd, name: i32) -> Option<Instant> {
    let t = unix::timeout(ofd, name).or_else(|| inet::timeout(ofd, name))?;
    Some(Instant::now() + t)
}
