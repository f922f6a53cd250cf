//! FS: the file-system server of MoL (endpoint [`abi::FS`]).
//!
//! FS owns the descriptor table of every DC process, keyed by the
//! caller's endpoint: files and directories (real host files inside the
//! DC root, opened by FS, which keeps the host descriptor in the open file
//! description), FS-internal pipes, and the console (dups of dvs-exec's
//! stdio). Data moves between FS and the caller with `vcopy` while the
//! caller waits in `sendrec`.
//!
//! Nothing a client does can block FS: an operation that would block (a
//! read of an empty pipe, a write to a full one, console I/O that is not
//! ready, `poll` with nothing ready, `F_SETLKW` on a held lock) becomes a
//! *deferred* operation (a `Waiter`): FS replies later with
//! [`Ctx::reply`]. Deferred operations are retried in arrival order
//! whenever a pipe changes or a descriptor is closed, and when the watcher
//! thread (`watch`, endpoint [`abi::FS_WATCH`]) notifies FS that a host
//! descriptor FS waits on is ready or a deadline has passed.
//!
//! Modules, one syscall family each: `proc` (process life cycle),
//! `table` (descriptor tables), `path` (confined resolution), `open`,
//! `io`, `meta`, `names`, `fds`, `pipe`, `sockets` (routing by family),
//! `unix` (`AF_UNIX` sockets), `inet` (`AF_INET`/`AF_INET6` sockets),
//! `poll`, `console` (and ioctl), `channel` (stream reads handed over
//! through a pipe), `pidfd` (process descriptors), `eventfd`, `timerfd`, `memfd`, `inotify`,
//! `watch` (the watcher) and `sys` (the host system calls).
//!
//! Host FIFOs are opened non-blocking: a blocking open for writing that
//! finds no reader is deferred until one comes (`open`), and a reader's
//! read waits for a first writer (`io`), so that either side may come
//! first as on Linux, but a reader's `open` itself returns at once.
//!
//! Known limits: record locks
//! are open-file-description locks (see `fds`); `/proc` is the host's as
//! FS sees it, but its listing shows DC pids (`listing`), and its magic
//! links are not followed (`/dev/stdin`,
//! `/dev/fd/N` and `/proc/self/fd/N` duplicate the caller's descriptor when
//! opened, `stat` it, and `readlink` shows its file).

mod channel;
mod console;
mod dnotify;
mod epoll;
mod eventfd;
mod fds;
mod inet;
mod inotify;
mod io;
mod listing;
mod memfd;
mod meta;
mod names;
mod open;
mod path;
mod pidfd;
mod pipe;
mod poll;
mod proc;
mod sockets;
mod sys;
mod table;
mod timerfd;
mod unix;
mod watch;
mod xattr;

use crate::abi::{self, Call};
use crate::server::{self, Ctx, Handler, Service, Starting};
use dvk::{Dvk, Endpoint, Message, NotifyKind};
use io::{Attempt, Iov};
use path::Root;
use proc::Proc;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;
use table::{Kind, Ofd};
use watch::{Interest, WatchShared};

/// The console of a DC run: dups of dvs-exec's descriptors 0, 1 and 2.
pub struct ConsoleFds {
    /// Standard input.
    pub input: OwnedFd,
    /// Standard output.
    pub output: OwnedFd,
    /// Standard error.
    pub error: OwnedFd,
    /// Other descriptors the processes get, at these numbers (what
    /// dvs-exec itself inherited), treated as the console's.
    pub others: Vec<(i32, OwnedFd)>,
    /// Standard descriptors (0, 1, 2) that dvs-exec was started without
    /// (`prog <&-`): the processes get none at that number either.
    pub closed: [bool; 3],
}

/// How FS starts.
pub struct FsConfig {
    /// The host directory that is the DC's `/`.
    pub root: PathBuf,
    /// The console, if processes get one (`FsNewProc` with `console` = 1).
    pub console: Option<ConsoleFds>,
    /// Published ports: a DC socket bound to `dc` is bound to `host` on
    /// the host.
    pub publish: Vec<Publish>,
}

pub use inet::Publish;

impl Default for FsConfig {
    fn default() -> Self {
        FsConfig {
            root: PathBuf::from("/"),
            console: None,
            publish: Vec::new(),
        }
    }
}

/// The console descriptors, shared with the watcher while waited on.
struct Console {
    input: Arc<OwnedFd>,
    output: Arc<OwnedFd>,
    error: Arc<OwnedFd>,
    others: Vec<(i32, Arc<OwnedFd>)>,
    closed: [bool; 3],
}

/// A deferred call: the caller is still blocked in `sendrec`.
pub(crate) struct Waiter {
    /// Where the reply goes (and whose memory the pointers are in).
    sender: Endpoint,
    /// The process the call is for.
    caller: Endpoint,
    /// What it waits to do.
    op: Op,
}

/// The operation of a deferred call.
pub(crate) enum Op {
    /// A read on a pipe or host stream.
    Read {
        /// The description read.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// When an INET socket's `SO_RCVTIMEO` ends the call.
        deadline: Option<Instant>,
    },
    /// A write on a pipe or host stream; `done` bytes are written.
    Write {
        /// The description written.
        ofd: Rc<Ofd>,
        /// The caller's buffers.
        iov: Iov,
        /// Bytes already written.
        done: usize,
        /// When an INET socket's `SO_SNDTIMEO` ends the call.
        deadline: Option<Instant>,
    },
    /// A `poll` with nothing ready yet.
    Poll(poll::PollWait),
    /// An `epoll_wait` with nothing ready yet.
    Epoll(epoll::EpollWait),
    /// An `AF_UNIX` socket call that would block, and when the socket's
    /// timeout ends it.
    Sock(unix::Pending, Option<Instant>),
    /// An INET socket call that would block on its host socket, and when
    /// the socket's timeout ends it.
    Net(inet::Pending, Option<Instant>),
    /// A blocking `open` of a FIFO for writing, waiting for a reader.
    OpenFifo {
        /// Where the path starts.
        base: path::Base,
        /// The path, as the caller gave it.
        path: Vec<u8>,
        /// The caller's open flags.
        flags: i32,
        /// The caller's mode.
        mode: u32,
        /// When to try again (readers outside the DC give no event).
        next: Instant,
    },
    /// An `F_SETLKW` waiting for a lock.
    Lock {
        /// The description locking.
        ofd: Rc<Ofd>,
        /// The lock asked for.
        fl: libc::flock,
        /// When to try again (locks held by host processes give no event).
        next: Instant,
    },
}

impl Op {
    /// When the socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` ends the call.
    fn socket_deadline(&self) -> Option<Instant> {
        match self {
            Op::Read { deadline, .. } | Op::Write { deadline, .. } => *deadline,
            Op::Sock(_, d) | Op::Net(_, d) => *d,
            _ => None,
        }
    }

    /// Whether the socket's timeout ran out.
    fn timed_out(&self) -> bool {
        self.socket_deadline().is_some_and(|d| Instant::now() >= d)
    }

    /// The answer of a call whose socket timeout ran out, as Linux's: the
    /// bytes it moved, or `EAGAIN` (an INET `connect`: `EINPROGRESS`).
    fn timeout_answer(&self) -> Message {
        let moved = match self {
            Op::Write { done, .. } => *done,
            Op::Sock(p, _) => p.sent(),
            Op::Net(p, _) => p.sent(),
            _ => 0,
        };
        match self {
            _ if moved > 0 => abi::ok(moved as i64),
            Op::Net(inet::Pending::Connect { .. }, _) => abi::err(libc::EINPROGRESS),
            _ => abi::err(libc::EAGAIN),
        }
    }
}

/// The result of retrying a deferred call.
enum Step {
    /// Reply with this.
    Done(Message),
    /// Still blocked; `true` if something moved.
    Blocked(bool),
}

/// The FS server state.
pub struct Fs {
    root: Root,
    console: Option<Console>,
    procs: HashMap<Endpoint, Proc>,
    waiters: Vec<Waiter>,
    watch: Arc<WatchShared>,
    published: Interest,
    next_ino: u64,
    unix: unix::Registry,
    publish: Vec<Publish>,
    /// The data channels of client threads (see `channel`).
    channels: HashMap<Endpoint, channel::Channel>,
    /// The pidfd of an ended task, copied for zombies' pidfds (`pidfd`).
    dead_pidfd: Option<std::os::fd::OwnedFd>,
    /// Directories watched with `F_NOTIFY` (`dnotify`).
    dnotify: Vec<dnotify::Registration>,
}

impl Fs {
    /// Installs `ofd` as the lowest free descriptor of `ep`.
    pub(crate) fn install(&self, ep: Endpoint, ofd: Rc<Ofd>, cloexec: bool) -> Result<i32, i32> {
        let p = self.procs.get(&ep).ok_or(libc::EBADF)?;
        let mut t = p.files.borrow_mut();
        t.alloc(0, table::FdEntry::new(ofd, cloexec))
    }

    fn new(
        root: Root,
        console: Option<Console>,
        watch: Arc<WatchShared>,
        publish: Vec<Publish>,
    ) -> Fs {
        Fs {
            root,
            console,
            procs: HashMap::new(),
            waiters: Vec::new(),
            watch,
            published: Interest::default(),
            next_ino: 0,
            unix: unix::Registry::default(),
            publish,
            channels: HashMap::new(),
            dead_pidfd: None,
            dnotify: Vec::new(),
        }
    }

    /// The DC pid of `caller` when it writes into `ofd`: an `AF_UNIX`
    /// socket records its senders; for anything else it is not needed.
    fn sender_pid(&self, ofd: &Ofd, caller: Endpoint) -> i32 {
        match ofd.kind {
            Kind::Socket(_) => self.procs.get(&caller).map_or(0, |p| p.pid),
            _ => 0,
        }
    }

    /// Keeps a call to answer later, then settles (what it holds may
    /// matter to others) and tells the watcher. A sender waits for one
    /// reply only: an older deferred call of the same sender was
    /// abandoned, and is dropped without a reply.
    fn defer(&mut self, ctx: &Ctx, w: Waiter) {
        self.waiters.retain(|old| old.sender != w.sender);
        self.waiters.push(w);
        self.settle(ctx, false);
    }

    /// Retries the deferred calls until none can progress, then tells the
    /// watcher what is left to wait for. With `host` (after a watcher
    /// notification) calls waiting on host descriptors are retried too,
    /// and the watcher is always answered.
    fn settle(&mut self, ctx: &Ctx, host: bool) {
        if !self.waiters.is_empty() {
            loop {
                let list = std::mem::take(&mut self.waiters);
                let mut progressed = false;
                for mut w in list {
                    match self.retry(ctx, &mut w, host) {
                        Step::Done(m) => {
                            ctx.reply(w.sender, &m);
                            progressed = true;
                        }
                        Step::Blocked(_) if w.op.timed_out() => {
                            ctx.reply(w.sender, &w.op.timeout_answer());
                            progressed = true;
                        }
                        Step::Blocked(p) => {
                            progressed |= p;
                            self.waiters.push(w);
                        }
                    }
                }
                if !progressed {
                    break;
                }
            }
        }
        self.publish_watch(host);
    }

    fn retry(&mut self, ctx: &Ctx, w: &mut Waiter, host: bool) -> Step {
        // Progress on a host stream changes nothing other waiters depend
        // on: it does not make the loop go round again (a long write
        // resumes when the watcher sees the stream still ready).
        let (attempt, stream) = match &mut w.op {
            Op::Read { ofd, iov, .. } => {
                let stream = matches!(ofd.kind, Kind::Stream { .. });
                if stream && !host {
                    return Step::Blocked(false);
                }
                (io::try_read(ctx, w.sender, ofd, iov), stream)
            }
            Op::Write { ofd, iov, done, .. } => {
                let stream = matches!(ofd.kind, Kind::Stream { .. });
                if stream && !host {
                    return Step::Blocked(false);
                }
                let pid = self.sender_pid(ofd, w.caller);
                (io::try_write(ctx, w.sender, pid, ofd, iov, done), stream)
            }
            Op::Poll(pw) => {
                return match self.poll_retry(ctx, w.caller, w.sender, pw) {
                    Some(m) => Step::Done(m),
                    None => Step::Blocked(false),
                };
            }
            Op::Epoll(ew) => {
                return match self.epoll_retry(ctx, w.caller, w.sender, ew) {
                    Some(m) => Step::Done(m),
                    None => Step::Blocked(false),
                };
            }
            Op::Sock(p, _) => {
                return match unix::retry(self, ctx, w.sender, w.caller, p) {
                    Ok(m) => Step::Done(m),
                    Err(progressed) => Step::Blocked(progressed),
                };
            }
            Op::Net(p, _) => {
                // Only the watcher knows when a host socket is ready.
                if !host {
                    return Step::Blocked(false);
                }
                return match inet::retry(self, ctx, w.sender, w.caller, p) {
                    Some(m) => Step::Done(m),
                    None => Step::Blocked(false),
                };
            }
            Op::OpenFifo {
                base,
                path,
                flags,
                mode,
                next,
            } => {
                // Tried after a watcher notification (its deadline, or a
                // FIFO opened in the DC), not on every change of FS.
                if !host && Instant::now() < *next {
                    return Step::Blocked(false);
                }
                return match self.open_at(w.caller, base, path, *flags, *mode) {
                    Ok(fd) => Step::Done(abi::ok(fd)),
                    Err(libc::ENXIO) => {
                        if Instant::now() >= *next {
                            *next = Instant::now() + open::FIFO_RETRY;
                        }
                        Step::Blocked(false)
                    }
                    Err(e) => Step::Done(abi::err(e)),
                };
            }
            Op::Lock { ofd, fl, next } => {
                return match fds::try_lock(ofd, fl) {
                    Ok(true) => Step::Done(abi::ok(0)),
                    Ok(false) => {
                        if Instant::now() >= *next {
                            *next = Instant::now() + fds::LOCK_RETRY;
                        }
                        Step::Blocked(false)
                    }
                    Err(e) => Step::Done(abi::err(e)),
                };
            }
        };
        match attempt {
            Attempt::Done(r) => Step::Done(match r {
                Ok(v) => abi::ok(v),
                Err(e) => abi::err(e),
            }),
            Attempt::Blocked { progressed } => Step::Blocked(progressed && !stream),
        }
    }

    /// Publishes what the deferred calls wait for on the host, if it
    /// changed (or always, with `force`, which acknowledges a
    /// notification).
    fn publish_watch(&mut self, force: bool) {
        let mut interest = Interest::default();
        let mut deadline: Option<Instant> = None;
        let mut near = |d: Instant| {
            deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
        };
        for w in &self.waiters {
            if let Some(d) = w.op.socket_deadline() {
                near(d);
            }
            match &w.op {
                Op::Read { ofd, .. } | Op::Write { ofd, .. } => {
                    if let Kind::Stream { fd, .. } = &ofd.kind {
                        let ev = if matches!(w.op, Op::Read { .. }) {
                            libc::POLLIN
                        } else {
                            libc::POLLOUT
                        };
                        interest.fds.push((fd.clone(), ev));
                    }
                }
                Op::Poll(pw) => {
                    self.poll_interest(w.caller, &pw.fds, &mut interest.fds);
                    if let Some(d) = pw.deadline {
                        near(d);
                    }
                }
                Op::Epoll(ew) => {
                    self.poll_interest(w.caller, &self.epoll_fds(ew), &mut interest.fds);
                    if let Some(d) = ew.deadline {
                        near(d);
                    }
                }
                Op::Lock { next, .. } | Op::OpenFifo { next, .. } => near(*next),
                Op::Net(p, _) => interest.fds.extend(p.interest()),
                Op::Sock(..) => {}
            }
        }
        for r in &self.dnotify {
            interest.fds.push((r.inotify.clone(), libc::POLLIN));
        }
        interest.deadline = deadline;
        if force || !interest.same(&self.published) {
            self.published = Interest {
                fds: interest.fds.clone(),
                deadline: interest.deadline,
            };
            self.watch.publish(interest);
        }
    }

    /// Answers the deferred calls of `ep` now: `EINTR`, or the bytes a
    /// write already moved. Returns how many there were.
    fn cancel(&mut self, ctx: &Ctx, ep: Endpoint) -> usize {
        let (gone, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| w.caller == ep || w.sender == ep);
        self.waiters = keep;
        let n = gone.len();
        for w in gone {
            let m = match w.op {
                Op::Write { done, .. } if done > 0 => abi::ok(done as i64),
                Op::Sock(p, _) if p.sent() > 0 => abi::ok(p.sent() as i64),
                Op::Net(p, _) if p.sent() > 0 => abi::ok(p.sent() as i64),
                _ => abi::err(libc::EINTR),
            };
            ctx.reply(w.sender, &m);
        }
        n
    }
}

impl Service for Fs {
    const NAME: &'static str = "FS";

    fn table() -> Vec<(Call, Handler<Self>)> {
        let mut t = Vec::new();
        t.extend(proc::table());
        t.extend(open::table());
        t.extend(io::table());
        t.extend(channel::table());
        t.extend(pidfd::table());
        t.extend(eventfd::table());
        t.extend(timerfd::table());
        t.extend(memfd::table());
        t.extend(inotify::table());
        t.extend(meta::table());
        t.extend(xattr::table());
        t.extend(names::table());
        t.extend(fds::table());
        t.extend(pipe::table());
        t.extend(poll::table());
        t.extend(epoll::table());
        t.extend(console::table());
        t.extend(sockets::table());
        t
    }

    fn notified(&mut self, ctx: &Ctx, from: Endpoint, kind: NotifyKind) {
        match kind {
            NotifyKind::Exit => {
                // A process died without PM telling us yet: nobody is
                // waiting for its deferred calls any more.
                self.cancel(ctx, from);
                self.settle(ctx, false);
            }
            NotifyKind::Notify => {
                self.dnotify_fire(ctx);
                self.settle(ctx, true)
            }
            // A signal handler ran while `from` waited: its deferred call
            // ends as a blocking call a signal interrupts.
            NotifyKind::Signal => {
                self.cancel(ctx, from);
                self.settle(ctx, false);
            }
        }
    }
}

/// FS and its watcher, binding ([`spawn`]).
pub struct FsStarting {
    server: Starting,
    watcher: Starting,
    watch: Arc<WatchShared>,
}

impl FsStarting {
    /// Waits until both are bound; returns their handles.
    pub fn ready(self) -> std::io::Result<Vec<JoinHandle<()>>> {
        let r = self
            .server
            .ready()
            .and_then(|s| Ok(vec![s, self.watcher.ready()?]));
        if r.is_err() {
            // The one that did bind must not serve alone.
            self.watch.stop();
        }
        r
    }
}

/// Starts FS ([`abi::FS`]) in DC `dcid` of the daemon at `socket`, plus
/// the watcher thread ([`abi::FS_WATCH`]), binding both at once; they
/// serve until the DC ends.
pub fn spawn(socket: &Path, dcid: i32, cfg: FsConfig) -> std::io::Result<FsStarting> {
    let root = Root::open(&cfg.root)?;
    sys::raise_nofile();
    let console = cfg.console.map(|c| Console {
        input: Arc::new(c.input),
        output: Arc::new(c.output),
        error: Arc::new(c.error),
        others: c
            .others
            .into_iter()
            .map(|(n, fd)| (n, Arc::new(fd)))
            .collect(),
        closed: c.closed,
    });
    let watch = WatchShared::new()?;
    let publish = cfg.publish;

    let sock = socket.to_path_buf();
    let shared = watch.clone();
    let watcher = Starting::spawn(
        "mol-fs-watch",
        move || Dvk::tbind_at(&sock, dcid, abi::FS_WATCH).map_err(server::dvk_io),
        move |ipc| watch::run(ipc, shared),
    )?;
    let sock = socket.to_path_buf();
    let shared = watch.clone();
    let server = Starting::spawn(
        "mol-fs",
        move || {
            sys::block_sigpipe();
            sys::private_fs_umask0().map_err(std::io::Error::from_raw_os_error)?;
            Dvk::tbind_at(&sock, dcid, abi::FS).map_err(server::dvk_io)
        },
        move |ipc| {
            server::run(ipc, Fs::new(root, console, shared.clone(), publish));
            shared.stop();
        },
    );
    match server {
        Ok(server) => Ok(FsStarting {
            server,
            watcher,
            watch,
        }),
        Err(e) => {
            watch.stop();
            Err(e)
        }
    }
}

/// [`spawn`], then waits until FS and its watcher are bound.
pub fn start(socket: &Path, dcid: i32, cfg: FsConfig) -> std::io::Result<Vec<JoinHandle<()>>> {
    spawn(socket, dcid, cfg)?.ready()
}
