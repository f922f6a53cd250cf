//! The supervisor of the seccomp net (`SECCOMP_RET_USER_NOTIF`).
//!
//! Dynamic programs run with the net's filter ([`shim::seccomp::Filter::notify`]),
//! installed by dvs-exec's child before its first `execve` and inherited
//! by every descendant. A redirected call that does not come from the
//! preload's gate (a raw `syscall` instruction, a glibc-internal call that
//! bypasses the hooked symbols, a call made before the preload attached)
//! becomes a notification on the listener descriptor, which dvs-exec
//! passed to the tracer process.
//!
//! The ptrace thread receives each notification and triages it without
//! IPC ([`triage`]), from the process's gate data page
//! ([`shim::gatepage::PageData`]):
//!
//! * no gate page yet, or the preload not attached yet, or a call from
//!   the dynamic loader's own code (`dlopen`): the loader is mapping
//!   libraries. Read-only file calls ([`loader_native`]) run natively
//!   (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): **the loader's own library
//!   opens are the one remaining escape**. Any other call is served.
//! * `clone` of a thread that is inside the preload's `fork` (its fork
//!   slot) runs natively: the preload registers the child. Any other fork
//!   (a raw `fork`/`vfork`/`clone` syscall) fails with `ENOSYS`, so that
//!   no unregistered child runs and no host PID is returned. (Clones of
//!   threads run and `clone3` fails with `ENOSYS` without a notification:
//!   the filter decides those.)
//! * `mmap` of a descriptor that is not a loader's library segment (the
//!   filter leaves those alone): during loading it runs natively (the
//!   loader's descriptors are host ones); afterwards it is glibc mapping
//!   a DC descriptor internally (locales, `sem_open`), and the worker
//!   installs the host file as that descriptor number in the caller
//!   ([`mmap_mirror`]) before letting the call run.
//! * `tkill`/`tgkill` are allowed within the caller's own process only
//!   (glibc's `raise` names the process by the DC PID its internal
//!   `getpid` now returns): the tracer sends the signal itself.
//! * a static image a dynamic process exec'd (traced since its preload
//!   asked, [`triage_traced`]): every call is served; forks, clones and
//!   execs run natively and are followed with ptrace.
//! * everything else is served by a worker ([`serve`]) through the shim
//!   on behalf of the process's endpoint (found with `PmPs`, cached per
//!   thread while the thread lives), with [`shim::mem::Remote`] memory.
//!   A deferred reply (a read on an empty pipe) blocks only that worker.

use dvk::Endpoint;
use shim::gatepage::{self, PageData};
use shim::mem::Remote;
use shim::{Action, Shim};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// `PIDFD_THREAD` (not in the libc crate yet): a pidfd for one thread.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

/// One notification.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Notif {
    /// Its id, for the answer.
    pub id: u64,
    /// Host tid of the caller.
    pub tid: i32,
    /// System call number.
    pub nr: i64,
    /// Arguments.
    pub args: [u64; 6],
    /// Instruction pointer after the `syscall` instruction.
    pub ip: u64,
}

/// The answer to a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Run the call natively.
    Continue,
    /// Return this value (`-errno` on failure) without running it.
    Ret(i64),
}

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (not in the libc crate yet).
const FD_SYNC_WAKE_UP: u64 = 1;

/// Asks the kernel to wake the supervisor and the caller on the current
/// CPU (Linux 6.6): a notification round trip then costs two context
/// switches instead of two cross-CPU wake-ups. Older kernels refuse it;
/// the net works the same, only slower.
pub(crate) fn sync_wakeups(listener: &OwnedFd) {
    // SAFETY: SET_FLAGS takes its flags by value.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            FD_SYNC_WAKE_UP,
        )
    };
}

/// Receives one notification (None: the caller died meanwhile).
pub(crate) fn recv(listener: &OwnedFd) -> Result<Option<Notif>, nix::Error> {
    // SAFETY: the kernel requires a zeroed struct, which is a valid value
    // of this plain C struct.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV fills `n`, a struct of the size the ioctl encodes.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut n as *mut libc::seccomp_notif,
        )
    };
    if r < 0 {
        let e = nix::Error::last();
        return if e == nix::Error::ENOENT || e == nix::Error::EINTR {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let a = n.data.args;
    Ok(Some(Notif {
        id: n.id,
        tid: n.pid as i32,
        nr: n.data.nr as i64,
        args: [a[0], a[1], a[2], a[3], a[4], a[5]],
        ip: n.data.instruction_pointer,
    }))
}

/// Answers notification `id` (a caller that died meanwhile is ignored).
pub(crate) fn answer(listener: &OwnedFd, id: u64, a: Answer) {
    let (val, error, flags) = match a {
        Answer::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Ret(v) if v < 0 => (0, v as i32, 0),
        Answer::Ret(v) => (v, 0, 0),
    };
    let mut resp = libc::seccomp_notif_resp {
        id,
        val,
        error,
        flags,
    };
    // SAFETY: SEND reads `resp`, a struct of the size the ioctl encodes.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp as *mut libc::seccomp_notif_resp,
        )
    };
}

/// Read-only file calls the dynamic loader makes: they run natively while
/// the preload is not attached, and when made by the loader's code.
pub(crate) fn loader_native(nr: i64, a: &[u64; 6]) -> bool {
    let read_only = |flags: u64| {
        let f = flags as i32;
        f & libc::O_ACCMODE == libc::O_RDONLY && f & (libc::O_CREAT | libc::O_TRUNC) == 0
    };
    match nr {
        libc::SYS_open => read_only(a[1]),
        libc::SYS_openat => read_only(a[2]),
        libc::SYS_read
        | libc::SYS_pread64
        | libc::SYS_close
        | libc::SYS_fstat
        | libc::SYS_newfstatat
        | libc::SYS_stat
        | libc::SYS_lstat
        | libc::SYS_statx
        | libc::SYS_lseek
        | libc::SYS_access
        | libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_readlink
        | libc::SYS_readlinkat
        | libc::SYS_getcwd => true,
        _ => false,
    }
}

/// What the ptrace thread does with a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Triage {
    /// Answer at once.
    Answer(Answer),
    /// A signal to one thread: checked and sent by the tracer.
    ThreadSignal,
    /// Served by a worker through the shim.
    Serve,
    /// A fork outside the preload's `fork` (glibc-internal, such as
    /// `wordexp`'s, or a raw `clone`): its child could not join the DC,
    /// so it fails with `ENOSYS` (reported once).
    RawFork,
}

/// Decides what to do with a notification without IPC.
pub(crate) fn triage(n: &Notif) -> Triage {
    let page = gatepage::read_remote(&Remote { pid: n.tid });
    let in_loader = match &page {
        None => true,
        Some(p) => p.attached == 0 || (p.loader[0] <= n.ip && n.ip < p.loader[1]),
    };
    if in_loader && (loader_native(n.nr, &n.args) || n.nr == libc::SYS_mmap) {
        return Triage::Answer(Answer::Continue);
    }
    match n.nr {
        libc::SYS_clone => {
            let flags = n.args[0];
            if flags & libc::CLONE_THREAD as u64 != 0 || forking(&page, n.tid) {
                Triage::Answer(Answer::Continue)
            } else {
                Triage::RawFork
            }
        }
        libc::SYS_fork | libc::SYS_vfork => Triage::RawFork,
        // glibc falls back to clone.
        libc::SYS_clone3 => Triage::Answer(Answer::Ret(-(libc::ENOSYS as i64))),
        libc::SYS_tkill | libc::SYS_tgkill => Triage::ThreadSignal,
        _ => Triage::Serve,
    }
}

/// Triage for a traced static image under the net (a dynamic process
/// exec'd it): every call is served (there is no loader), and forks,
/// clones and execs run natively, followed by the ptrace thread, which
/// registers children with PM and tells PM about execs (`flags` gets the
/// `clone` flags, as at a tracer stop).
pub(crate) fn triage_traced(n: &Notif, flags: &mut Option<u64>) -> Triage {
    match n.nr {
        libc::SYS_clone => {
            *flags = Some(n.args[0]);
            Triage::Answer(Answer::Continue)
        }
        libc::SYS_fork | libc::SYS_vfork => {
            *flags = Some(0);
            Triage::Answer(Answer::Continue)
        }
        libc::SYS_clone3 => Triage::Answer(Answer::Ret(-(libc::ENOSYS as i64))),
        libc::SYS_tkill | libc::SYS_tgkill => Triage::ThreadSignal,
        _ => Triage::Serve,
    }
}

fn forking(page: &Option<PageData>, tid: i32) -> bool {
    page.as_ref()
        .is_some_and(|p| p.forking.contains(&(tid as u32)))
}

/// Host process id of task `tid`.
pub(crate) fn tgid_of(tid: i32) -> Option<i32> {
    let s = dvk::sys::read_proc(&format!("/proc/{tid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `tkill`/`tgkill` from a DC thread: allowed within its own process only
/// (the target tid is a host tid of that process), sent by the tracer.
pub(crate) fn thread_signal(n: &Notif) -> Answer {
    let (target, sig) = if n.nr == libc::SYS_tkill {
        (n.args[0] as i32, n.args[1] as i32)
    } else {
        (n.args[1] as i32, n.args[2] as i32)
    };
    let Some(tgid) = tgid_of(n.tid) else {
        return Answer::Ret(-(libc::ESRCH as i64));
    };
    if tgid_of(target) != Some(tgid) {
        return Answer::Ret(-(libc::ESRCH as i64));
    }
    // SAFETY: tgkill with integer arguments, to a thread of the caller's
    // own process.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, tgid, target, sig) };
    if r < 0 {
        Answer::Ret(-(nix::Error::last() as i64))
    } else {
        Answer::Ret(0)
    }
}

/// How long a process that made a call may take to be registered with PM
/// (see [`registered`]).
const REGISTRATION: std::time::Duration = std::time::Duration::from_secs(1);

/// DC PID and endpoint of host process `tgid` (thread `tid` called),
/// waiting for PM to register a new image: a vfork child's new image runs
/// the constructors of its libraries (libselinux's `statfs`, under `id`
/// and `ls`) before the preload's, which waits for the binding, and maybe
/// before its parent, woken by the exec, has registered it (`PmFork`).
/// Their calls failed with `ENOSYS` and a report when the machine was
/// busy. A task whose preload is attached (a vfork child still running in
/// its parent's memory, which its parent registers only after its exec)
/// is not waited for.
fn registered(shim: &Shim, tid: i32, tgid: i32) -> Result<(i32, Endpoint), i32> {
    let start = std::time::Instant::now();
    loop {
        match crate::procs::lookup(shim, tgid) {
            Err(libc::ESRCH) if start.elapsed() < REGISTRATION && new_image(tid) => {
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            r => return r,
        }
    }
}

/// Whether thread `tid` lives and runs an image whose preload has not
/// attached yet.
fn new_image(tid: i32) -> bool {
    tgid_of(tid).is_some()
        && gatepage::read_remote(&Remote { pid: tid }).is_none_or(|p| p.attached == 0)
}

/// Endpoints of the threads that made notifications, each valid while the
/// thread lives (checked with a pidfd, so a reused tid is looked up again).
#[derive(Default)]
pub(crate) struct Endpoints {
    map: Mutex<HashMap<i32, (Endpoint, OwnedFd)>>,
    reported: Mutex<HashSet<String>>,
}

fn alive(pidfd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: polling one pollfd on our stack without waiting.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 0
}

impl Endpoints {
    /// The endpoint thread `tid` is served as: its process's, from PM.
    fn get(&self, shim: &Shim, tid: i32) -> Result<Endpoint, i32> {
        if let Ok(mut m) = self.map.lock() {
            match m.get(&tid) {
                Some((ep, fd)) if alive(fd) => return Ok(*ep),
                Some(_) => {
                    m.remove(&tid);
                }
                None => {}
            }
        }
        let tgid = tgid_of(tid).ok_or(libc::ESRCH)?;
        let (_, ep) = registered(shim, tid, tgid)?;
        // SAFETY: pidfd_open with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor we own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            if let Ok(mut m) = self.map.lock() {
                m.insert(tid, (ep, fd));
            }
        }
        Ok(ep)
    }

    fn report_once(&self, key: String, msg: impl FnOnce() -> String) {
        if let Ok(mut r) = self.reported.lock() {
            if r.insert(key) {
                eprintln!("{}", msg());
            }
        }
    }
}

/// A notification for a worker.
pub(crate) struct Job {
    /// The notification.
    pub n: Notif,
    /// The listener to answer on.
    pub listener: Arc<OwnedFd>,
    /// The endpoint cache.
    pub endpoints: Arc<Endpoints>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.n.fmt(f)
    }
}

/// Serves a notification in a worker whose shim is `slot` (re-targeted
/// to the caller's endpoint): the answer to give it.
pub(crate) fn serve_call(slot: &mut Option<Shim>, behalf: &mut Endpoint, job: &Job) -> Answer {
    let n = &job.n;
    let Some(s) = slot.as_ref() else {
        return Answer::Ret(-(libc::ENOSYS as i64));
    };
    let ep = match job.endpoints.get(s, n.tid) {
        Ok(ep) => ep,
        Err(e) => {
            job.endpoints
                .report_once(format!("unregistered {}", n.tid), || {
                    format!(
                        "dvs: task {} is not registered in its DC ({e}); its {} fails",
                        n.tid,
                        shim::sysnames::name(n.nr)
                    )
                });
            return Answer::Ret(-(libc::ENOSYS as i64));
        }
    };
    if *behalf != ep {
        if let Some(old) = slot.take() {
            *slot = Some(Shim::on_behalf(old.into_ipc(), ep));
        }
        *behalf = ep;
    }
    let Some(s) = slot.as_ref() else {
        return Answer::Ret(-(libc::ENOSYS as i64));
    };
    let mem = Remote { pid: n.tid };
    if n.nr == libc::SYS_execve || n.nr == libc::SYS_execveat {
        return exec_check(s, &mem, n, &job.endpoints);
    }
    if n.nr == libc::SYS_mmap {
        return mmap_mirror(s, n, job);
    }
    match s.syscall(&mem, n.nr, n.args) {
        Action::Ret(v) => Answer::Ret(v),
        Action::Native => Answer::Continue,
        Action::SigPipe => {
            if let Some(tgid) = tgid_of(n.tid) {
                // SAFETY: signalling the calling thread of a DC process.
                unsafe { libc::syscall(libc::SYS_tgkill, tgid, n.tid, libc::SIGPIPE) };
            }
            Answer::Ret(-(libc::EPIPE as i64))
        }
        // The host zombie stays until its parent ends (only the parent
        // can reap it); PM has its status already.
        Action::Reap { ret, .. } => Answer::Ret(ret),
        Action::Unsupported(nr) => {
            let name = shim::sysnames::name(nr);
            job.endpoints.report_once(name.clone(), || {
                format!("dvs: unsupported syscall {name} in task {}", n.tid)
            });
            Answer::Ret(-(libc::ENOSYS as i64))
        }
        // FromChannel: a shim acting on behalf of a process has no channel.
        Action::Fork { .. } | Action::Exec | Action::FromChannel { .. } => {
            Answer::Ret(-(libc::ENOSYS as i64))
        }
    }
}

/// An `mmap` of DC descriptor `fd` that bypassed the preload (glibc's
/// internal mappings: locale files, `sem_open`, `catopen`): the host file
/// FS resolves it to is opened here and installed in the caller as host
/// descriptor `fd` (close-on-exec), and the call then runs natively on
/// it. The mirror stays open in the caller (one per descriptor number, a
/// later mirror replaces it) unless that number holds one of the
/// preload's own host descriptors, which is never replaced.
fn mmap_mirror(s: &Shim, n: &Notif, job: &Job) -> Answer {
    let fd = n.args[4] as i32;
    let (prot, flags) = (n.args[2] as i32, n.args[3] as i32);
    let err = |e: i32| Answer::Ret(-(e as i64));
    let path = match s.host_path(fd) {
        Ok(p) => p,
        Err(libc::EBADF) => return err(libc::EBADF),
        Err(_) => return err(libc::ENODEV),
    };
    let write = prot & libc::PROT_WRITE != 0 && flags & libc::MAP_SHARED != 0;
    if !mirror_slot_free(n.tid, fd, write) {
        job.endpoints.report_once(format!("mmap {fd}"), || {
            format!(
                "dvs: task {} maps DC descriptor {fd} bypassing libc, but its host descriptor {fd} is dvs's own",
                n.tid
            )
        });
        return err(libc::ENODEV);
    }
    let mode = if write { libc::O_RDWR } else { libc::O_RDONLY };
    let Ok(cpath) = std::ffi::CString::new(path) else {
        return err(libc::ENODEV);
    };
    // SAFETY: open with a NUL-terminated path; the descriptor is owned
    // below.
    let raw = unsafe { libc::open(cpath.as_ptr(), mode | libc::O_CLOEXEC) };
    if raw < 0 {
        return err(nix::Error::last() as i32);
    }
    // SAFETY: a descriptor we just opened.
    let host = unsafe { OwnedFd::from_raw_fd(raw) };
    match add_fd(&job.listener, n.id, &host, fd) {
        Ok(()) => Answer::Continue,
        Err(e) => err(e as i32),
    }
}

/// Whether host descriptor `fd` of task `tid` may receive a mirror
/// (`write`: a writable one): it is not open, or it is a mirror of a file
/// (a path), not one of the preload's sockets, pipes or memfds. The
/// host's 0, 1 and 2, where the loader's and dvs's own messages go, take
/// a read-only mirror only (the program closed its DC descriptor of that
/// number, `prog <&-`, and glibc opened a locale file there): a message
/// then fails instead of landing in a file.
fn mirror_slot_free(tid: i32, fd: i32, write: bool) -> bool {
    if fd < 3 {
        return !write;
    }
    match std::fs::read_link(format!("/proc/{tid}/fd/{fd}")) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(l) => {
            let l = l.as_os_str().as_encoded_bytes();
            l.starts_with(b"/") && !l.starts_with(b"/memfd:")
        }
    }
}

/// Installs `src` in the caller of notification `id` as its descriptor
/// `at` (replacing what was there), close-on-exec.
fn add_fd(listener: &OwnedFd, id: u64, src: &OwnedFd, at: i32) -> Result<(), nix::Error> {
    let mut a = libc::seccomp_notif_addfd {
        id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: src.as_raw_fd() as u32,
        newfd: at as u32,
        newfd_flags: libc::O_CLOEXEC as u32,
    };
    // SAFETY: ADDFD reads `a`, a struct of the size the ioctl encodes.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ADDFD,
            &mut a as *mut libc::seccomp_notif_addfd,
        )
    };
    if r < 0 {
        Err(nix::Error::last())
    } else {
        Ok(())
    }
}

/// An `execve` that bypassed the preload: it runs natively when its DC
/// path leads the host to the same file (a DC rooted at `/`); otherwise (a
/// `--root` DC, or `execveat`) it fails with `ENOSYS`, as the host path
/// cannot be substituted in the caller's registers.
fn exec_check(s: &Shim, mem: &Remote, n: &Notif, endpoints: &Endpoints) -> Answer {
    let refuse = || {
        endpoints.report_once("exec".into(), || {
            format!(
                "dvs: an exec that bypassed libc in task {} cannot be served in this DC",
                n.tid
            )
        });
        Answer::Ret(-(libc::ENOSYS as i64))
    };
    if n.nr != libc::SYS_execve {
        return refuse();
    }
    let Ok(p) = shim::mem::Mem::read_cstr(mem, n.args[0], mol_servers::abi::PATH_MAX) else {
        return Answer::Ret(-(libc::EFAULT as i64));
    };
    // The same file: the path itself, or one whose symlinks (`/bin` on a
    // merged-/usr system) lead the host where FS's resolution led.
    use std::os::unix::ffi::OsStrExt;
    let same = |h: &[u8]| {
        h == p.as_slice()
            || std::fs::canonicalize(std::ffi::OsStr::from_bytes(&p))
                .is_ok_and(|c| c.as_os_str().as_bytes() == h)
    };
    match s.host_path_at(libc::AT_FDCWD, &p, 0) {
        Ok(h) if p.starts_with(b"/") && same(&h) => Answer::Continue,
        Ok(_) => refuse(),
        Err(e) => Answer::Ret(-(e as i64)),
    }
}
