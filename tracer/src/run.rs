//! The tracer process: one ptrace thread that owns every tracee (ptrace
//! requests must come from the tracer thread), a pool of IPC workers
//! ([`crate::serve`]), and the control channel from dvs-exec.
//!
//! The ptrace thread `poll`s a signalfd (`SIGCHLD`: a tracee stopped or
//! ended), the workers' eventfd and the control socket. It never waits
//! for a call that the servers may defer, so a call that waits in the
//! servers (a read on an empty pipe) stops only its own tracee; what they
//! always answer at once (the calls of [`SERVED_HERE`]: `stat`,
//! `readlink`, `getpid`...; an exec's program and its `PmExec`) it does
//! itself, as its own endpoint on behalf of the tracee's, without the two
//! hand-offs to a worker and back.

use crate::notify::{self, Endpoints, Notif, Triage};
use crate::serve::{Done, JobKind, Pool, Reply};
use crate::stops::{self, Stop};
use crate::tracee::{Tracee, Waiting};
use crate::{elf, filter, procs};
use dvk::Endpoint;
use nix::sys::ptrace::Options;
use nix::unistd::Pid;
use shim::{Action, Shim};
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a blocked served call is checked for a pending fatal signal
/// (seen at two checks, the tracer gives up on the call and returns
/// `EINTR`, so that the tracee dies).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Calls that PM and FS answer at once, never with a deferred reply: the
/// ptrace thread serves them itself ([`Engine::serve_here`]). Path
/// lookups, metadata and identity; nothing that reads, writes or waits.
const SERVED_HERE: &[i64] = &[
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getcwd,
    libc::SYS_lseek,
    libc::SYS_umask,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpgrp,
    libc::SYS_getpgid,
    libc::SYS_getsid,
];

/// The ptrace options of every tracee.
pub fn options() -> Options {
    Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_EXITKILL
        | Options::PTRACE_O_TRACESYSGOOD
}

struct Engine {
    ctl: BufReader<UnixStream>,
    sigfd: OwnedFd,
    wake: Arc<OwnedFd>,
    pool: Option<Pool>,
    tracees: HashMap<i32, Tracee>,
    seq: u64,
    reported: HashSet<i64>,
    /// The seccomp net's listener, once dvs-exec handed it over.
    listener: Option<Arc<OwnedFd>>,
    /// Endpoints of the threads the net serves.
    endpoints: Arc<Endpoints>,
    /// Notifications waiting for a free worker.
    queued: VecDeque<Notif>,
    /// This thread's own endpoint, for the jobs it does itself
    /// ([`Engine::serve_here`]), and the tracee endpoint its shim last
    /// served; bound at the first such job.
    own: Option<(Shim, Endpoint)>,
    /// Whether binding it was tried (it is not retried).
    own_tried: bool,
}

/// Entry point of the tracer process (after the fork in
/// [`crate::Tracer::start`]). Never returns.
pub(crate) fn tracer_main(ctl: UnixStream, parent: i32) -> ! {
    let code = match setup(ctl, parent).and_then(|mut e| e.run()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dvs tracer: {e}");
            1
        }
    };
    // SAFETY: leaving the process without running the parent's exit
    // handlers (this process is a fork of dvs-exec).
    unsafe { libc::_exit(code) }
}

fn setup(ctl: UnixStream, parent: i32) -> Result<Engine, crate::Error> {
    // SAFETY: prctl with integer arguments; getppid has no arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
    // Terminal signals are for the DC (dvs-exec forwards them), not for us.
    for s in [
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGPIPE,
    ] {
        // SAFETY: setting a signal to be ignored.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
    // SAFETY: a zeroed sigset, then filled by sigemptyset/sigaddset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: manipulating a local sigset and this thread's mask (the
    // workers, started later, inherit it).
    let sigfd = unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    if sigfd < 0 {
        return Err(crate::Error::sys("signalfd", nix::Error::last()));
    }
    // SAFETY: an eventfd with flags only.
    let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if wake < 0 {
        return Err(crate::Error::sys("eventfd", nix::Error::last()));
    }
    Ok(Engine {
        ctl: BufReader::new(ctl),
        // SAFETY: fresh descriptors we own.
        sigfd: unsafe { OwnedFd::from_raw_fd(sigfd) },
        // SAFETY: as above.
        wake: Arc::new(unsafe { OwnedFd::from_raw_fd(wake) }),
        pool: None,
        tracees: HashMap::new(),
        seq: 0,
        reported: HashSet::new(),
        listener: None,
        endpoints: Arc::new(Endpoints::default()),
        queued: VecDeque::new(),
        own: None,
        own_tried: false,
    })
}

/// How long the ptrace thread, and a worker, look for their next event
/// without sleeping after they had one: a traced program's calls follow
/// each other within microseconds, and waking a sleeping thread on this
/// 2-vCPU VM costs 15–50 µs at each of the hand-offs of a served call
/// (tracee, ptrace thread, worker, back).
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// `poll(fds, timeout)`, first polling without sleeping (yielding the
/// CPU in between) for up to [`SPIN`] when `busy`.
fn poll_spinning(fds: &mut [libc::pollfd], timeout: i32, busy: bool) -> i32 {
    let poll = |fds: &mut [libc::pollfd], t: i32| {
        // SAFETY: polling an array of pollfds we own (a negative
        // descriptor is ignored).
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, t) }
    };
    if busy {
        let start = Instant::now();
        while start.elapsed() < SPIN {
            let n = poll(fds, 0);
            if n != 0 {
                return n;
            }
            std::thread::yield_now();
        }
    }
    poll(fds, timeout)
}

fn drain(fd: &OwnedFd, size: usize) {
    let mut buf = [0u8; 128];
    // SAFETY: reading into a local buffer from our non-blocking descriptor.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), size) } > 0 {}
}

impl Engine {
    fn run(&mut self) -> Result<(), crate::Error> {
        // Whether the last round had something to do: the next event (the
        // tracee's next call, a worker's answer) is then likely within
        // microseconds.
        let mut busy = false;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.ctl.get_ref().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.wake.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.listener.as_ref().map_or(-1, |l| l.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let timeout = if self.tracees.values().any(|t| t.waiting.is_some()) {
                SIGNAL_CHECK.as_millis() as i32
            } else {
                -1
            };
            let n = poll_spinning(&mut fds, timeout, busy);
            if n < 0 {
                let e = nix::Error::last();
                if e == nix::Error::EINTR {
                    continue;
                }
                return Err(crate::Error::sys("poll", e));
            }
            // Answering a notification wakes its caller on this CPU
            // (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`): spinning here would
            // keep it from running (a `sched_yield` does not hand over the
            // CPU to a task just woken), for up to SPIN at every call the
            // net catches. Its next notification wakes this thread at once.
            let notification_only = fds[3].revents != 0 && fds[..3].iter().all(|f| f.revents == 0);
            busy = n > 0 && !notification_only;
            if fds[0].revents != 0 && !self.control()? {
                return Ok(());
            }
            if fds[1].revents != 0 {
                // Every tracee report comes with a SIGCHLD (blocked, so it
                // waits on the signalfd until drained): without one there
                // is nothing to reap. Drained first, so that a report
                // arriving meanwhile leaves the signal for the next round.
                drain(&self.sigfd, std::mem::size_of::<libc::signalfd_siginfo>());
                self.reap_events();
            }
            if fds[2].revents != 0 {
                drain(&self.wake, 8);
            }
            self.finished_jobs();
            if fds[3].revents & libc::POLLIN != 0 {
                self.notification();
            } else if fds[3].revents != 0 {
                // Every process of the net has ended.
                self.listener = None;
            }
            self.check_signals();
        }
    }

    /// One notification of the seccomp net.
    fn notification(&mut self) {
        let Some(l) = self.listener.clone() else {
            return;
        };
        let n = match notify::recv(&l) {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                eprintln!("dvs tracer: seccomp listener: {e}");
                self.listener = None;
                return;
            }
        };
        tracing::debug!(?n, "notification");
        if n.nr == libc::SYS_kill
            && n.args[2] == shim::gatepage::ADOPT_MAGIC
            && n.args[3] == shim::gatepage::ADOPT_MAGIC
        {
            let a = match self.adopt_exec(n.tid) {
                Ok(()) => notify::Answer::Ret(shim::gatepage::ADOPTED),
                Err(e) => notify::Answer::Ret(-(e as i64)),
            };
            notify::answer(&l, n.id, a);
            return;
        }
        let triage = match self.tracees.get_mut(&n.tid) {
            Some(t) if !t.dynamic => notify::triage_traced(&n, &mut t.clone_flags),
            _ => notify::triage(&n),
        };
        match triage {
            Triage::Answer(a) => notify::answer(&l, n.id, a),
            Triage::ThreadSignal => notify::answer(&l, n.id, notify::thread_signal(&n)),
            Triage::RawFork => {
                if self.reported.insert(-n.nr) {
                    eprintln!(
                        "dvs: task {} forked without libc's fork (a raw {} or one inside libc, \
                         such as wordexp's): the child could not join the DC; it fails with ENOSYS",
                        n.tid,
                        if n.nr == libc::SYS_clone {
                            "clone"
                        } else {
                            "fork"
                        }
                    );
                }
                notify::answer(&l, n.id, notify::Answer::Ret(-(libc::ENOSYS as i64)));
            }
            Triage::Serve => {
                self.queued.push_back(n);
                self.dispatch();
            }
        }
    }

    /// Hands queued notifications to free workers.
    fn dispatch(&mut self) {
        // Without workers yet (dvs-exec hands over the listener of a
        // program it lets go while it still makes the DC), the calls wait
        // for the configuration.
        let (Some(l), Some(pool)) = (self.listener.clone(), self.pool.as_mut()) else {
            return;
        };
        while let Some(n) = self.queued.pop_front() {
            let Some(w) = pool.acquire(n.tid, Endpoint::NONE) else {
                self.queued.push_front(n);
                return;
            };
            self.seq += 1;
            let job = notify::Job {
                n,
                listener: l.clone(),
                endpoints: self.endpoints.clone(),
            };
            pool.submit(w, n.tid, self.seq, JobKind::Notify(job));
        }
    }

    /// One command from dvs-exec; false at the end of the channel.
    fn control(&mut self) -> Result<bool, crate::Error> {
        let mut line = String::new();
        if self.ctl.read_line(&mut line)? == 0 {
            return Ok(false);
        }
        let reply = match crate::spawn::Command::parse(&line) {
            Some(crate::spawn::Command::Config { dcid, socket, down }) => {
                self.pool = Some(Pool::new(
                    PathBuf::from(socket),
                    dcid,
                    down,
                    self.wake.clone(),
                ));
                self.dispatch();
                Ok(())
            }
            Some(crate::spawn::Command::Adopt {
                host_pid,
                ep,
                initial,
            }) => self.adopt(host_pid, Endpoint(ep), initial),
            Some(crate::spawn::Command::Listen) => {
                self.ctl.get_mut().write_all(b"ok\n")?;
                match crate::spawn::recv_fd(self.ctl.get_ref()) {
                    Ok(fd) => {
                        notify::sync_wakeups(&fd);
                        self.listener = Some(Arc::new(fd));
                        Ok(())
                    }
                    Err(e) => Err(e as i32),
                }
            }
            None => Err(libc::EINVAL),
        };
        let out = match reply {
            Ok(()) => "ok\n".to_string(),
            Err(e) => format!("err {e}\n"),
        };
        self.ctl.get_mut().write_all(out.as_bytes())?;
        Ok(true)
    }

    /// Seizes host process `pid`, which is DC endpoint `ep`.
    fn adopt(&mut self, pid: i32, ep: Endpoint, initial: bool) -> Result<(), i32> {
        let pool = self.pool.as_mut().ok_or(libc::EINVAL)?;
        nix::sys::ptrace::seize(Pid::from_raw(pid), options()).map_err(|e| e as i32)?;
        let mut t = Tracee::new(pid, pid);
        t.ep = ep;
        t.registered = true;
        t.initial_exec = initial;
        t.worker = pool.acquire(pid, ep);
        if t.worker.is_none() {
            // SAFETY: killing the process we could not serve.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(libc::EAGAIN);
        }
        self.tracees.insert(pid, t);
        Ok(())
    }

    /// A process of the net is about to exec a static program (its
    /// preload asked): trace it from now on. At the exec event its
    /// endpoint is looked up (`PmPs`) and PM told about the exec.
    fn adopt_exec(&mut self, tid: i32) -> Result<(), i32> {
        let pool = self.pool.as_mut().ok_or(libc::EINVAL)?;
        if self.tracees.contains_key(&tid) {
            return Ok(());
        }
        nix::sys::ptrace::seize(Pid::from_raw(tid), options()).map_err(|e| e as i32)?;
        let mut t = Tracee::new(tid, tgid_of(tid).unwrap_or(tid));
        t.registered = true;
        t.worker = pool.acquire(tid, Endpoint::NONE);
        self.tracees.insert(tid, t);
        Ok(())
    }

    /// Collects every pending report of the tracees.
    fn reap_events(&mut self) {
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer. Only tracees
            // are reported: this process has no children of its own.
            let tid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL | libc::WNOHANG) };
            if tid <= 0 {
                return;
            }
            self.event(tid, status);
        }
    }

    fn event(&mut self, tid: i32, status: i32) {
        let stop = stops::decode(status);
        tracing::debug!(tid, ?stop, status, "tracee report");
        if stop == Stop::Gone {
            self.gone(tid);
            return;
        }
        // A new child may report before its parent's fork event.
        self.tracees
            .entry(tid)
            .or_insert_with(|| Tracee::new(tid, tgid_of(tid).unwrap_or(tid)));
        match stop {
            Stop::Gone => {}
            Stop::Seccomp => self.seccomp(tid),
            Stop::Clone => self.cloned(tid),
            Stop::Exec => self.execed(tid),
            Stop::GroupStop => {
                let _ = stops::listen(tid);
            }
            Stop::Trap => self.hold_or_resume(tid, 0),
            Stop::Signal(sig) => self.hold_or_resume(tid, sig),
            Stop::SyscallExit => {
                let v = self.tracees.get_mut(&tid).and_then(|t| t.at_exit.take());
                if let Some(v) = v {
                    if let Ok(mut r) = stops::regs(tid) {
                        r.rax = v as u64;
                        let _ = stops::set_regs(tid, r);
                    }
                }
                self.resume(tid, 0);
            }
            Stop::Other => self.resume(tid, 0),
        }
    }

    /// A stop of a child that is not registered yet keeps it stopped.
    fn hold_or_resume(&mut self, tid: i32, sig: i32) {
        if let Some(t) = self.tracees.get_mut(&tid) {
            if !t.registered {
                t.held = Some(sig);
                return;
            }
        }
        self.resume(tid, sig);
    }

    fn resume(&mut self, tid: i32, sig: i32) {
        let exit_stop = self.tracees.get(&tid).is_some_and(|t| t.at_exit.is_some());
        let _ = if exit_stop {
            stops::syscall(tid, sig)
        } else {
            stops::cont(tid, sig)
        };
    }

    fn gone(&mut self, tid: i32) {
        if let Some(t) = self.tracees.remove(&tid) {
            if let (Some(w), Some(pool)) = (t.worker, self.pool.as_mut()) {
                pool.release(w);
            }
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Sends a job for tracee `tid` to its worker; false if it has none.
    fn submit(&mut self, tid: i32, what: Waiting, kind: JobKind) -> bool {
        if let Some(reply) = self.serve_here(tid, &kind) {
            self.answered(tid, what, reply);
            return true;
        }
        let seq = self.next_seq();
        let Some(t) = self.tracees.get_mut(&tid) else {
            return false;
        };
        let (Some(w), Some(pool)) = (t.worker, self.pool.as_mut()) else {
            return false;
        };
        tracing::debug!(tid, seq, ?what, ?kind, "job");
        t.waiting = Some((what, seq, Instant::now()));
        t.signal_seen = false;
        pool.submit(w, tid, seq, kind);
        true
    }

    /// Makes the stopped call return `v` without running it.
    fn skip(&mut self, tid: i32, v: i64) {
        let regs = self.tracees.get_mut(&tid).and_then(|t| t.regs.take());
        if let Some(mut r) = regs.or_else(|| stops::regs(tid).ok()) {
            r.orig_rax = u64::MAX;
            r.rax = v as u64;
            let _ = stops::set_regs(tid, r);
        }
        self.resume(tid, 0);
    }

    fn report_once(&mut self, nr: i64, tid: i32) {
        if self.reported.insert(nr) {
            eprintln!(
                "dvs: unsupported syscall {} in traced task {tid}",
                shim::sysnames::name(nr)
            );
        }
    }

    fn seccomp(&mut self, tid: i32) {
        let Ok(regs) = stops::regs(tid) else {
            return;
        };
        let (nr, args) = stops::syscall_of(&regs);
        let Some(t) = self.tracees.get_mut(&tid) else {
            return;
        };
        t.regs = Some(regs);
        if nr & filter::X32_BIT != 0 {
            self.skip(tid, -(libc::ENOSYS as i64));
            return;
        }
        if t.initial_exec && nr == libc::SYS_execve {
            self.resume(tid, 0);
            return;
        }
        if t.dynamic {
            // The preload serves this image's libc calls; what reaches
            // the kernel is the loader's and the preload's own work.
            self.resume(tid, 0);
            return;
        }
        if t.ep == Endpoint::NONE {
            self.skip(tid, -(libc::ENOSYS as i64));
            return;
        }
        match nr {
            libc::SYS_fork | libc::SYS_vfork => {
                t.clone_flags = Some(0);
                self.resume(tid, 0);
            }
            libc::SYS_clone => {
                let flags = args[0];
                let thread = flags & libc::CLONE_THREAD as u64 != 0;
                let vm = flags & libc::CLONE_VM as u64 != 0;
                let vfork = flags & libc::CLONE_VFORK as u64 != 0;
                if vm && !thread && !vfork {
                    self.report_once(nr, tid);
                    self.skip(tid, -(libc::ENOSYS as i64));
                } else {
                    t.clone_flags = Some(flags);
                    self.resume(tid, 0);
                }
            }
            // Its flags are in a struct in the task's memory: it fails
            // quietly, and the C library falls back to `clone`, whose
            // flags the stop shows.
            libc::SYS_clone3 => self.skip(tid, -(libc::ENOSYS as i64)),
            libc::SYS_execve | libc::SYS_execveat => {
                let at = nr == libc::SYS_execveat;
                let req = procs::ExecRequest {
                    dirfd: if at { args[0] as i32 } else { libc::AT_FDCWD },
                    path: if at { args[1] } else { args[0] },
                    flags: if at { args[4] as i32 } else { 0 },
                    at,
                    sp: regs.rsp,
                    tgid: t.tgid,
                };
                if !self.submit(tid, Waiting::ExecPath, JobKind::ExecPath(req)) {
                    self.skip(tid, -(libc::ENOSYS as i64));
                }
            }
            libc::SYS_tkill | libc::SYS_tgkill => self.thread_kill(tid, nr, args),
            _ => {
                if !self.submit(tid, Waiting::Syscall, JobKind::Syscall { nr, args }) {
                    self.skip(tid, -(libc::ENOSYS as i64));
                }
            }
        }
    }

    /// Does job `kind` for tracee `tid` on this thread, if the servers
    /// answer it at once (a [`SERVED_HERE`] call, the resolution of an
    /// exec's program, `PmExec`), run on this node, and this thread has
    /// its endpoint.
    fn serve_here(&mut self, tid: i32, kind: &JobKind) -> Option<Reply> {
        let here = match kind {
            JobKind::Syscall { nr, .. } => SERVED_HERE.contains(nr),
            JobKind::ExecPath(_) | JobKind::Execed { .. } => true,
            _ => false,
        };
        let ep = self.tracees.get(&tid)?.ep;
        if !here || ep == Endpoint::NONE {
            return None;
        }
        if !self.own_tried {
            let pool = self.pool.as_ref()?;
            self.own_tried = true;
            self.own = pool.own_endpoint().map(|s| (s, Endpoint::NONE));
        }
        // Only with PM and FS on this node: a call that crosses the
        // network would hold every other tracee for its round trip.
        let ipc = self.own.as_ref()?.0.ipc();
        let local = |e: Endpoint| ipc.node_of(e) == Some(ipc.node());
        if !local(mol_servers::abi::PM) || !local(mol_servers::abi::FS) {
            return None;
        }
        let (shim, behalf) = self.own.take()?;
        let shim = if behalf == ep {
            shim
        } else {
            Shim::on_behalf(shim.into_ipc(), ep)
        };
        let reply = crate::serve::direct(&shim, tid, kind);
        self.own = Some((shim, ep));
        reply
    }

    /// `tkill`/`tgkill` name host thread ids: allowed within the caller's
    /// own process only (glibc's `raise` and `abort` use them), with the
    /// DC PID a traced process believes in mapped to its host pid.
    fn thread_kill(&mut self, tid: i32, nr: i64, args: [u64; 6]) {
        let Some(t) = self.tracees.get(&tid) else {
            return;
        };
        let tgid = t.tgid;
        let target = if nr == libc::SYS_tkill {
            args[0] as i32
        } else {
            args[1] as i32
        };
        if tgid_of(target) != Some(tgid) {
            self.skip(tid, -(libc::ESRCH as i64));
            return;
        }
        if nr == libc::SYS_tgkill {
            if let Some(mut r) = self.tracees.get_mut(&tid).and_then(|t| t.regs.take()) {
                r.rdi = tgid as u64;
                let _ = stops::set_regs(tid, r);
            }
        }
        self.resume(tid, 0);
    }

    /// A fork/vfork/clone event of `tid`.
    fn cloned(&mut self, tid: i32) {
        let Ok(child) = stops::event_msg(tid).map(|c| c as i32) else {
            self.resume(tid, 0);
            return;
        };
        let Some(parent) = self.tracees.get_mut(&tid) else {
            return;
        };
        // The flags seen at the call; the net's filter lets clones of
        // threads run without a notification, and then the child's
        // process tells.
        let thread = match parent.clone_flags.take() {
            Some(flags) => flags & libc::CLONE_THREAD as u64 != 0,
            None => notify::tgid_of(child).is_some_and(|g| g != child),
        };
        let dynamic = parent.dynamic;
        let tgid = if thread { parent.tgid } else { child };
        let c = self
            .tracees
            .entry(child)
            .or_insert_with(|| Tracee::new(child, tgid));
        c.tgid = tgid;
        c.dynamic = dynamic;
        if dynamic {
            // The preload registers its own children and threads.
            c.registered = true;
            if let Some(sig) = c.held.take() {
                self.resume(child, sig);
            }
            self.resume(tid, 0);
            return;
        }
        let kind = if thread {
            JobKind::Thread { tid: child }
        } else {
            JobKind::Fork { child }
        };
        if !self.submit(tid, Waiting::Child(child), kind) {
            self.child_failed(tid, child, libc::ENOSYS);
        }
    }

    /// A child could not join the DC: it must not run outside it.
    fn child_failed(&mut self, parent: i32, child: i32, errno: i32) {
        // SAFETY: killing a fresh child of our tracee.
        unsafe { libc::kill(child, libc::SIGKILL) };
        if let Some(c) = self.tracees.get_mut(&child) {
            c.registered = true;
            if c.held.take().is_some() {
                let _ = stops::cont(child, 0);
            }
        }
        if let Some(p) = self.tracees.get_mut(&parent) {
            p.at_exit = Some(-(errno as i64));
        }
        self.resume(parent, 0);
    }

    /// The child `child` of `parent` is now DC process/thread `pid`/`ep`.
    fn child_ready(&mut self, parent: i32, child: i32, ep: Endpoint, ret: Option<i64>) {
        let worker = self.pool.as_mut().and_then(|p| p.acquire(child, ep));
        if worker.is_none() {
            self.child_failed(parent, child, libc::EAGAIN);
            return;
        }
        let c = self
            .tracees
            .entry(child)
            .or_insert_with(|| Tracee::new(child, child));
        c.ep = ep;
        c.worker = worker;
        c.registered = true;
        if let Some(sig) = c.held.take() {
            self.resume(child, sig);
        }
        if let Some(p) = self.tracees.get_mut(&parent) {
            p.at_exit = ret;
        }
        self.resume(parent, 0);
    }

    /// An exec event: a new image in `tid`.
    fn execed(&mut self, tid: i32) {
        let former = stops::event_msg(tid).map(|f| f as i32).unwrap_or(tid);
        if former != tid {
            // A non-leader thread exec'd: it takes the leader's place (and
            // its endpoint, the process's).
            if let Some(old) = self.tracees.remove(&former) {
                if let (Some(w), Some(pool)) = (old.worker, self.pool.as_mut()) {
                    pool.release(w);
                }
                if let Some(t) = self.tracees.get_mut(&tid) {
                    t.exec_path = old.exec_path;
                }
            }
        }
        let kind = elf::kind(std::path::Path::new(&format!("/proc/{tid}/exe")))
            .unwrap_or(elf::Kind::Other);
        let Some(t) = self.tracees.get_mut(&tid) else {
            return;
        };
        t.dynamic = kind == elf::Kind::Dynamic;
        if std::mem::take(&mut t.initial_exec) {
            self.resume(tid, 0);
            return;
        }
        if t.ep == Endpoint::NONE {
            // A dynamic process (served by its preload) exec'd: find its
            // endpoint first.
            if t.worker.is_none() {
                t.worker = self
                    .pool
                    .as_mut()
                    .and_then(|p| p.acquire(tid, Endpoint::NONE));
            }
            if !self.submit(tid, Waiting::Exec, JobKind::Lookup { host_pid: tid }) {
                self.resume(tid, 0);
            }
            return;
        }
        let path = t
            .exec_path
            .take()
            .unwrap_or_else(|| exe_of(tid).unwrap_or_default());
        if !self.submit(tid, Waiting::Exec, JobKind::Execed { path }) {
            self.resume(tid, 0);
        }
    }

    fn finished_jobs(&mut self) {
        loop {
            let Some(d) = self.pool.as_ref().and_then(|p| p.done_rx.try_recv().ok()) else {
                return;
            };
            self.job_done(d);
        }
    }

    fn job_done(&mut self, d: Done) {
        tracing::debug!(tid = d.tid, seq = d.seq, reply = ?d.reply, "job done");
        if matches!(d.reply, Reply::Notified) {
            if let Some(pool) = self.pool.as_mut() {
                pool.finished(&d);
                pool.release(d.worker);
            }
            self.dispatch();
            return;
        }
        let current = self.pool.as_mut().is_some_and(|p| p.finished(&d));
        if !current {
            return;
        }
        let tid = d.tid;
        let Some(t) = self.tracees.get_mut(&tid) else {
            return;
        };
        let what = match t.waiting {
            Some((w, seq, _)) if seq == d.seq => {
                t.waiting = None;
                w
            }
            _ => return,
        };
        self.answered(tid, what, d.reply);
    }

    /// Acts on `reply`, the answer to tracee `tid`'s job (`what` it was
    /// waiting for).
    fn answered(&mut self, tid: i32, what: Waiting, reply: Reply) {
        let Some(t) = self.tracees.get_mut(&tid) else {
            return;
        };
        match reply {
            Reply::Action(a) => self.apply(tid, a),
            Reply::ExecPath(Err(e)) => self.skip(tid, -(e as i64)),
            Reply::ExecPath(Ok((addr, dc))) => {
                let Some(mut r) = t.regs.take() else {
                    self.resume(tid, 0);
                    return;
                };
                t.exec_path = Some(dc);
                if r.orig_rax as i64 == libc::SYS_execveat {
                    // execveat(dirfd, path, argv, envp, flags) becomes
                    // execve(host path, argv, envp).
                    r.orig_rax = libc::SYS_execve as u64;
                    r.rsi = r.rdx;
                    r.rdx = r.r10;
                }
                if let Some(a) = addr {
                    r.rdi = a;
                }
                let _ = stops::set_regs(tid, r);
                self.resume(tid, 0);
            }
            Reply::Forked(r) => {
                self.fork_done(tid, what, r.map(|(pid, ep)| (ep, Some(pid as i64))))
            }
            Reply::Thread(r) => self.fork_done(tid, what, r.map(|ep| (ep, None))),
            Reply::Execed => self.resume(tid, 0),
            Reply::Notified => {}
            Reply::Lookup(r) => match r {
                Ok((_, ep)) => {
                    t.ep = ep;
                    if let (Some(w), Some(pool)) = (t.worker, self.pool.as_mut()) {
                        // Re-target the worker to the process's endpoint.
                        pool.release(w);
                        t.worker = pool.acquire(tid, ep);
                    }
                    let path = t
                        .exec_path
                        .take()
                        .unwrap_or_else(|| exe_of(tid).unwrap_or_default());
                    if !self.submit(tid, Waiting::Exec, JobKind::Execed { path }) {
                        self.resume(tid, 0);
                    }
                }
                Err(e) => {
                    eprintln!(
                        "dvs: traced task {tid} exec'd but is not registered in its DC ({e}); ending it"
                    );
                    // SAFETY: ending a task that would escape the DC.
                    unsafe { libc::kill(tid, libc::SIGKILL) };
                    self.resume(tid, 0);
                }
            },
        }
    }

    fn fork_done(&mut self, parent: i32, what: Waiting, r: Result<(Endpoint, Option<i64>), i32>) {
        let Waiting::Child(child) = what else {
            self.resume(parent, 0);
            return;
        };
        match r {
            Ok((ep, ret)) => self.child_ready(parent, child, ep, ret),
            Err(e) => self.child_failed(parent, child, e),
        }
    }

    /// Applies the shim's verdict on a stopped call.
    fn apply(&mut self, tid: i32, a: Action) {
        match a {
            Action::Ret(v) => self.skip(tid, v),
            Action::Native => {
                if let Some(t) = self.tracees.get_mut(&tid) {
                    t.regs = None;
                }
                self.resume(tid, 0);
            }
            Action::SigPipe => {
                let tgid = self.tracees.get(&tid).map_or(tid, |t| t.tgid);
                // SAFETY: signalling our tracee's thread.
                unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, libc::SIGPIPE) };
                self.skip(tid, -(libc::EPIPE as i64));
            }
            Action::Reap { ret, host_pid } => {
                // The tracee reaps its host child itself: its call becomes
                // wait4(host_pid, NULL, __WALL, NULL), returning `ret`.
                let regs = self.tracees.get_mut(&tid).and_then(|t| t.regs.take());
                let Some(mut r) = regs else {
                    self.resume(tid, 0);
                    return;
                };
                r.orig_rax = libc::SYS_wait4 as u64;
                r.rdi = host_pid as u64;
                r.rsi = 0;
                r.rdx = libc::__WALL as u64;
                r.r10 = 0;
                let _ = stops::set_regs(tid, r);
                if let Some(t) = self.tracees.get_mut(&tid) {
                    t.at_exit = Some(ret);
                }
                self.resume(tid, 0);
            }
            Action::Unsupported(nr) => {
                self.report_once(nr, tid);
                self.skip(tid, -(libc::ENOSYS as i64));
            }
            // FromChannel: a shim on behalf of a tracee has no channel.
            Action::Fork { .. } | Action::Exec | Action::FromChannel { .. } => {
                self.skip(tid, -(libc::ENOSYS as i64))
            }
        }
    }

    /// A served call that blocks while a fatal signal is pending (the
    /// tracee, in its seccomp stop, cannot die of it) is given up: the
    /// tracee gets `EINTR` (and dies of the signal), and a fresh worker.
    fn check_signals(&mut self) {
        let now = Instant::now();
        let stuck: Vec<i32> = self
            .tracees
            .values()
            .filter(|t| {
                matches!(t.waiting, Some((Waiting::Syscall, _, since)) if now.duration_since(since) >= SIGNAL_CHECK)
            })
            .map(|t| t.tid)
            .collect();
        for tid in stuck {
            let pending = stops::fatal_signal_pending(tid);
            let Some(t) = self.tracees.get_mut(&tid) else {
                continue;
            };
            if !pending {
                t.signal_seen = false;
                continue;
            }
            if !std::mem::replace(&mut t.signal_seen, true) {
                continue;
            }
            t.waiting = None;
            let ep = t.ep;
            if let (Some(w), Some(pool)) = (t.worker.take(), self.pool.as_mut()) {
                pool.release(w);
                t.worker = pool.acquire(tid, ep);
            }
            self.skip(tid, -(libc::EINTR as i64));
        }
    }
}

/// Host process id of task `tid`.
fn tgid_of(tid: i32) -> Option<i32> {
    let s = dvk::sys::read_proc(&format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The host path of the image task `tid` runs.
fn exe_of(tid: i32) -> Option<Vec<u8>> {
    let p = std::fs::read_link(format!("/proc/{tid}/exe")).ok()?;
    Some(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
}
