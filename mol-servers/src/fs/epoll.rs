//! `epoll`: an epoll instance is an FS descriptor holding an interest list
//! of the caller's FS descriptors; `epoll_wait` evaluates it with the same
//! readiness rules as `poll`, and defers like `poll` when nothing is
//! ready. Interest is level-triggered: `EPOLLET` is accepted and served as
//! level-triggered (a waiter may see an event again that it did not
//! drain); `EPOLLONESHOT` disables an entry after it fired.

use super::poll::evaluate;
use super::table::{FdEntry, FdTable, Kind, Ofd};
use super::{Fs, Op, Waiter};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::{Endpoint, Message};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The interest list of an epoll instance: descriptor → (events, data).
#[derive(Default)]
pub struct Interest {
    items: BTreeMap<i32, (u32, u64)>,
}

/// A deferred `epoll_wait`.
pub struct EpollWait {
    /// The instance.
    pub set: Rc<RefCell<Interest>>,
    /// The caller's `struct epoll_event` array.
    pub addr: u64,
    /// Its capacity.
    pub max: usize,
    /// When it times out (`None`: never).
    pub deadline: Option<Instant>,
}

/// Size of `struct epoll_event` on x86-64 (packed: u32 events, u64 data).
const EVENT_SIZE: usize = 12;
/// Largest `maxevents`.
const MAX_EVENTS: usize = 4096;

fn instance(t: &FdTable, epfd: i32) -> Result<Rc<RefCell<Interest>>, i32> {
    match &t.get(epfd)?.ofd.kind {
        Kind::Epoll(set) => Ok(set.clone()),
        _ => Err(libc::EINVAL),
    }
}

/// Ready entries of `set` for a process with table `t`: (events, data).
fn ready(t: Option<&FdTable>, set: &Rc<RefCell<Interest>>, max: usize) -> Vec<(u32, u64)> {
    let mut s = set.borrow_mut();
    // Entries whose descriptor was closed leave the set.
    if let Some(t) = t {
        s.items.retain(|fd, _| t.get(*fd).is_ok());
    }
    let fds: Vec<(i32, i16)> = s
        .items
        .iter()
        .map(|(&fd, &(ev, _))| (fd, (ev & 0xffff) as i16))
        .collect();
    let (rev, _) = evaluate(t, &fds);
    let mut out = Vec::new();
    for ((fd, _), r) in fds.iter().zip(rev) {
        if r == 0 || r & libc::POLLNVAL != 0 || out.len() >= max {
            continue;
        }
        if let Some(e) = s.items.get_mut(fd) {
            out.push((r as u16 as u32, e.1));
            if e.0 & libc::EPOLLONESHOT as u32 != 0 {
                e.0 &= !0xffff; // disabled until EPOLL_CTL_MOD
            }
        }
    }
    out
}

fn write_events(ctx: &Ctx, to: Endpoint, addr: u64, evs: &[(u32, u64)]) -> Message {
    let mut raw = Vec::with_capacity(evs.len() * EVENT_SIZE);
    for (ev, data) in evs {
        raw.extend_from_slice(&ev.to_ne_bytes());
        raw.extend_from_slice(&data.to_ne_bytes());
    }
    match ctx.copy_out(to, addr, &raw) {
        Ok(()) => abi::ok(evs.len() as i64),
        Err(e) => abi::err(e),
    }
}

impl Fs {
    /// Re-evaluates a deferred `epoll_wait`.
    pub(super) fn epoll_retry(
        &mut self,
        ctx: &Ctx,
        caller: Endpoint,
        sender: Endpoint,
        ew: &EpollWait,
    ) -> Option<Message> {
        let evs = match self.procs.get(&caller) {
            Some(p) => ready(Some(&p.files.borrow()), &ew.set, ew.max),
            None => Vec::new(),
        };
        if !evs.is_empty() || ew.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(write_events(ctx, sender, ew.addr, &evs));
        }
        None
    }

    /// The host streams a deferred `epoll_wait` waits on, as poll entries.
    pub(super) fn epoll_fds(&self, ew: &EpollWait) -> Vec<(i32, i16)> {
        ew.set
            .borrow()
            .items
            .iter()
            .map(|(&fd, &(ev, _))| (fd, (ev & 0xffff) as i16))
            .collect()
    }
}

/// `[flags]`.
fn create(fs: &mut Fs, _ctx: &Ctx, req: &Request) -> Outcome {
    let flags = req.i32(0);
    if flags & !libc::EPOLL_CLOEXEC != 0 {
        return Outcome::err(libc::EINVAL);
    }
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let ofd = Ofd::new(Kind::Epoll(Rc::default()), libc::O_RDWR);
    let r = p
        .files
        .borrow_mut()
        .alloc(0, FdEntry::new(ofd, flags & libc::EPOLL_CLOEXEC != 0));
    Outcome::from(r.map(i64::from))
}

/// `[epfd, op, fd, events, data]`.
fn ctl(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let (epfd, op, fd) = (req.i32(0), req.i32(1), req.i32(2));
    let r = (|| {
        let t = p.files.borrow();
        let set = instance(&t, epfd)?;
        let target = t.get(fd)?;
        if fd == epfd {
            return Err(libc::EINVAL);
        }
        match &target.ofd.kind {
            // Like Linux: regular files and directories cannot be watched.
            Kind::File { .. } | Kind::Path { .. } | Kind::Listing(_) => return Err(libc::EPERM),
            Kind::Epoll(_) => return Err(libc::EINVAL),
            _ => {}
        }
        let events = req.args[3] as u32 | (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let mut s = set.borrow_mut();
        match op {
            libc::EPOLL_CTL_ADD => {
                if s.items.contains_key(&fd) {
                    return Err(libc::EEXIST);
                }
                s.items.insert(fd, (events, req.args[4]));
            }
            libc::EPOLL_CTL_MOD => match s.items.get_mut(&fd) {
                Some(e) => *e = (events, req.args[4]),
                None => return Err(libc::ENOENT),
            },
            libc::EPOLL_CTL_DEL => {
                if s.items.remove(&fd).is_none() {
                    return Err(libc::ENOENT);
                }
            }
            _ => return Err(libc::EINVAL),
        }
        Ok(0)
    })();
    // A change of interest may satisfy a deferred wait at once.
    fs.settle(ctx, false);
    Outcome::from(r)
}

/// `[epfd, events, maxevents, timeout_ms or -1]`.
fn wait(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    let Some(p) = fs.procs.get(&req.caller) else {
        return Outcome::err(libc::EBADF);
    };
    let max = req.i32(2);
    if max <= 0 || max as usize > MAX_EVENTS {
        return Outcome::err(libc::EINVAL);
    }
    let set = match instance(&p.files.borrow(), req.i32(0)) {
        Ok(s) => s,
        Err(e) => return Outcome::err(e),
    };
    let evs = ready(Some(&p.files.borrow()), &set, max as usize);
    let timeout = req.i32(3);
    if !evs.is_empty() || timeout == 0 {
        return Outcome::Reply(write_events(ctx, req.sender, req.args[1], &evs));
    }
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout as u64));
    fs.defer(
        ctx,
        Waiter {
            sender: req.sender,
            caller: req.caller,
            op: Op::Epoll(EpollWait {
                set,
                addr: req.args[1],
                max: max as usize,
                deadline,
            }),
        },
    );
    Outcome::Deferred
}

/// The epoll calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsEpollCreate, create as Handler<Fs>),
        (Call::FsEpollCtl, ctl),
        (Call::FsEpollWait, wait),
    ]
}
