//! Per-thread shim state, the re-entrancy guard, and what the preload does
//! with each [`Action`] of the shim.

use crate::gate;
use shim::mem::Local;
use shim::{Action, Shim};
use std::cell::Cell;
use std::collections::HashSet;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Whether this process is attached to a DC.
static ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's shim, leaked on purpose: it must outlive every
    /// thread-local destructor and `atexit` handler (stdio flushes at
    /// exit), and dropping it while bound would unbind the endpoint, which
    /// would hide the end from PM. An additional thread's shim is freed
    /// after the thread ended ([`sweep_ended_threads`]).
    static SHIM: Cell<*const Shim> = const { Cell::new(std::ptr::null()) };
    /// Set while the preload itself runs: libc calls made by the preload
    /// (and by the libraries it uses) go straight to libc.
    static BUSY: Cell<bool> = const { Cell::new(false) };
    /// Set from the start of a served call of this thread until its result
    /// is returned (a `write` or `sendto` made meanwhile comes from a signal
    /// handler: the shim and the DVK client never make those).
    static SERVING: Cell<bool> = const { Cell::new(false) };
}

/// Proof that the calling thread entered the preload (clears the busy flag
/// when dropped).
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        // Busy first: a handler that runs between the two stores is
        // served as a call of its own.
        BUSY.with(|b| b.set(false));
        serving(false);
        // Writes a signal handler made while this call waited for a server.
        if crate::handler_writes::pending() {
            // SAFETY: __errno_location returns this thread's errno slot;
            // the call's errno is kept across the writes.
            let e = unsafe { *libc::__errno_location() };
            crate::handler_writes::flush();
            set_errno(e);
        }
    }
}

/// Whether this process is attached to a DC.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Whether the calling thread is inside the preload.
pub fn busy() -> bool {
    BUSY.with(|b| b.get())
}

/// The calling thread's shim, as an address (`None` without one).
pub fn shim_ptr() -> Option<usize> {
    let p = SHIM.with(|c| c.get());
    (!p.is_null()).then_some(p as usize)
}

/// Makes `p` (from [`shim_ptr`]) the calling thread's shim again (a
/// parent whose vfork child attached on this thread's memory).
pub fn set_shim_ptr(p: usize) {
    SHIM.with(|c| c.set(p as *const Shim));
}

/// In a vfork child that registered itself: binds its endpoint and makes
/// it this thread's shim. Returns the shim's address, which the parent
/// frees with [`free_vfork_shim`].
pub fn attach_vfork_child() -> Result<usize, dvk::DvkError> {
    let sock = socket().ok_or(dvk::DvkError::NoDaemon)?;
    // The parent's mappings of its peers are this child's too (one memory).
    let ipc = dvk::Dvk::attach(&sock, Duration::from_secs(30), &[])?;
    Ok(set_shim(Shim::new(ipc)) as usize)
}

/// Frees the shim a vfork child attached with (its mappings and memory;
/// its descriptors were the child's).
///
/// # Safety
/// `p` came from [`attach_vfork_child`] and no thread uses it any more.
pub unsafe fn free_vfork_shim(p: usize) {
    // SAFETY: the caller's contract; `set_shim` leaked it from a box.
    let shim = unsafe { Box::from_raw(p as *mut Shim) };
    shim.forget_foreign();
}

/// Clears the calling thread's busy and serving flags (a parent whose
/// vfork child exec'd in the middle of a hooked call, on this thread's
/// memory).
pub fn reset_thread_flags() {
    BUSY.with(|b| b.set(false));
    SERVING.with(|c| c.set(false));
}

/// Enters the preload for a hooked call. `None`: the process is not in a
/// DC, or the preload itself is calling: use the real function. A
/// borrowed vfork child first gets an endpoint of its own
/// ([`crate::vfork::attach_child`]).
pub fn enter() -> Option<Guard> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    if crate::vfork::borrowed() && !busy() {
        crate::vfork::attach_child();
    }
    enter_exec()
}

/// [`enter`] for the exec family, which a borrowed vfork child runs as
/// its parent (see [`crate::vfork`]).
pub fn enter_exec() -> Option<Guard> {
    if !ACTIVE.load(Ordering::Relaxed) {
        return None;
    }
    if BUSY.with(|b| b.get()) {
        if !crate::interrupts::escaped_handler() {
            return None;
        }
        // The left call's request is ended at its server, and its answer
        // taken, before this call makes one.
        SERVING.with(|c| c.set(false));
        crate::interrupts::forget_escaped_handler();
        with_shim(|s| s.ipc().abandon_call(Duration::from_secs(2)));
    }
    BUSY.with(|b| b.set(true));
    crate::interrupts::begin_call();
    Some(Guard(()))
}

/// Marks the calling thread busy without requiring an attached process
/// (initialisation).
pub fn enter_init() -> Guard {
    BUSY.with(|b| b.set(true));
    Guard(())
}

/// The variables that keep a process in its DC, which dvs-exec (or the
/// exec of a DC parent) sets.
pub const DC_VARS: [&str; 2] = ["LD_PRELOAD", "DVS_SOCKET"];

/// [`DC_VARS`] as the environment had them when the process first asked
/// (at start-up), `LD_PRELOAD` as this library alone (its first entry, as
/// dvs-exec and every exec in a DC put it): a program that clears or
/// edits its environment (`os.environ.clear()`) stays in its DC, and so
/// do its forks and what they exec.
pub fn dc_vars() -> &'static [(&'static str, std::ffi::OsString)] {
    static VARS: std::sync::OnceLock<Vec<(&'static str, std::ffi::OsString)>> =
        std::sync::OnceLock::new();
    VARS.get_or_init(|| {
        DC_VARS
            .iter()
            .filter_map(|&k| {
                let v = std::env::var_os(k)?;
                if k != "LD_PRELOAD" {
                    return Some((k, v));
                }
                let first = preload_entries(v.as_bytes()).next()?.to_vec();
                Some((k, std::ffi::OsString::from_vec(first)))
            })
            .collect()
    })
}

/// The entries of an `LD_PRELOAD` value (separated by colons or spaces,
/// as the loader reads them).
pub fn preload_entries(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b':' || b == b' ')
        .filter(|e| !e.is_empty())
}

/// Takes the DC's own variables out of the program's environment, as
/// native runs do not have them: `DVS_SOCKET` and `DVS_EXEC_PATH`, and
/// this library from `LD_PRELOAD` (the program's own preloads stay).
/// [`dc_vars`] keeps them for the execs. At start-up, while the process
/// has one thread. The `environ` array is edited in place, not through
/// `unsetenv`: a program may define its own (bash's work on its shell
/// variables, which do not exist yet), and `main`'s `envp` is that array.
pub fn hide_dc_vars() {
    let ours = dc_vars();
    if !ours.iter().any(|(k, _)| *k == "DVS_SOCKET") {
        return;
    }
    let own = ours
        .iter()
        .find(|(k, _)| *k == "LD_PRELOAD")
        .map(|(_, v)| v.as_bytes());
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: `environ` is libc's NULL-terminated array of C strings; one
    // thread runs (start-up). Entries are dropped by moving the later
    // ones down, and a replaced entry points to a string leaked for the
    // process's life, as `putenv` would keep it.
    unsafe {
        let env = environ;
        if env.is_null() {
            return;
        }
        let (mut from, mut to) = (0, 0);
        loop {
            let p = *env.add(from);
            if p.is_null() {
                *env.add(to) = p;
                break;
            }
            from += 1;
            let entry = std::ffi::CStr::from_ptr(p).to_bytes();
            let keep = if entry.starts_with(b"DVS_SOCKET=") || entry.starts_with(b"DVS_EXEC_PATH=")
            {
                None
            } else if let Some(v) = entry.strip_prefix(b"LD_PRELOAD=") {
                let rest: Vec<&[u8]> = preload_entries(v).filter(|e| Some(*e) != own).collect();
                match std::ffi::CString::new(
                    [b"LD_PRELOAD=".as_slice(), &rest.join(&b':')].concat(),
                ) {
                    Ok(c) if !rest.is_empty() => Some(c.into_raw()),
                    _ => None,
                }
            } else {
                Some(p)
            };
            if let Some(k) = keep {
                *env.add(to) = k;
                to += 1;
            }
        }
    }
}

/// Socket of the node daemon, from the environment dvs-exec sets.
pub fn socket() -> Option<std::path::PathBuf> {
    dc_vars()
        .iter()
        .find(|(k, v)| *k == "DVS_SOCKET" && !v.is_empty())
        .map(|(_, v)| std::path::PathBuf::from(v))
}

/// The servers nearly every process calls: a new image maps them when it
/// attaches, in the same round trip to the node daemon (a fork child
/// inherits its parent's mappings).
pub const FIRST_PEERS: &[dvk::Endpoint] = &[mol_servers::abi::PM, mol_servers::abi::FS];

/// Attaches the calling (main) thread to its binding, mapping `peers` on
/// the way. Returns false if the process is not meant to be in a DC.
pub fn attach(timeout: Duration, peers: &[dvk::Endpoint]) -> Result<bool, dvk::DvkError> {
    let Some(sock) = socket() else {
        return Ok(false);
    };
    let ipc = dvk::Dvk::attach(&sock, timeout, peers)?;
    set_shim(Shim::new(ipc));
    ACTIVE.store(true, Ordering::Release);
    // From now on the seccomp net's supervisor serves the calls that
    // bypass the hooks.
    shim::gatepage::set_attached(true);
    Ok(true)
}

/// In a forked child: drops the parent's (inherited) shim and attaches to
/// the child's own binding, which the parent is asking PM for.
pub fn reattach_child() {
    // The parent's shim stays leaked: its mappings are not ours any more.
    SHIM.with(|s| s.set(std::ptr::null()));
    shim::gatepage::fork_clear();
    if let Err(e) = attach(Duration::from_secs(30), &[]) {
        eprintln!("dvs: forked child could not attach to its DC: {e}");
        // SAFETY: terminating the child without running the parent's
        // exit handlers.
        unsafe { libc::_exit(127) };
    }
}

/// In a new thread that PM gave an endpoint: attach to it.
///
/// `pending` is the connection the thread opened (with
/// [`begin_thread_attach`]) while its creator asked PM for the endpoint.
pub fn attach_thread(pending: dvk::Result<dvk::PendingAttach>) {
    let r = pending.and_then(|p| p.finish(Duration::from_secs(30)));
    match r {
        Ok(ipc) => {
            let p = set_shim(Shim::new(ipc));
            THREAD_SHIMS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p as usize);
        }
        Err(e) => eprintln!("dvs: a new thread could not attach to its endpoint: {e}"),
    }
}

/// In a new thread: connects to the node daemon and says hello, the first
/// half of [`attach_thread`].
pub fn begin_thread_attach() -> dvk::Result<dvk::PendingAttach> {
    socket()
        .ok_or(dvk::DvkError::NoDaemon)
        .and_then(|sock| dvk::Dvk::begin_attach(&sock))
}

/// The shims of additional threads (as addresses), freed by
/// [`sweep_ended_threads`] once their threads are gone.
static THREAD_SHIMS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Frees the shims of threads that ended: the node daemon unbound their
/// endpoints (so dropping them unbinds nothing and PM still learns of the
/// end), and their control connections, mappings and memory go. Without
/// this a process that starts thread after thread (a server with a thread
/// per request) would keep a descriptor and a daemon session per thread it
/// ever had.
pub fn sweep_ended_threads() {
    let mut shims = THREAD_SHIMS.lock().unwrap_or_else(|e| e.into_inner());
    shims.retain(|&p| {
        // SAFETY: every address here came from `set_shim` (a leaked box)
        // and is removed from this list before it is freed below.
        let shim = unsafe { &*(p as *const Shim) };
        if !shim.was_unbound() {
            return true;
        }
        // SAFETY: the daemon unbound the endpoint of a thread endpoint
        // (`PIDFD_THREAD`) because the thread ended, or the process forked
        // and the handle is dead: no thread uses the shim any more, and
        // this is its only release.
        drop(unsafe { Box::from_raw(p as *mut Shim) });
        false
    });
}

/// Endpoints of this process's ended threads, parked with the node daemon
/// (`Dvk::retask`) for its next threads (as addresses of their shims):
/// a thread that takes one costs one daemon round trip instead of asking
/// PM for an endpoint and connecting. A server that starts a thread per
/// request reuses a few endpoints over and over.
static PARKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Most endpoints kept parked; the ends of further threads unbind theirs.
const PARKED_MAX: usize = 16;

/// Parks the endpoint of the thread it belongs to when that thread ends
/// (a thread-local destructor: it runs whether the start routine returns
/// or the thread calls `pthread_exit`).
struct ParkAtEnd;

impl Drop for ParkAtEnd {
    fn drop(&mut self) {
        park_thread();
    }
}

thread_local! {
    static PARK_AT_END: ParkAtEnd = const { ParkAtEnd };
}

/// In a new thread, before its start routine: its endpoint is parked for
/// the next thread when it ends. Registered first, the destructor runs
/// after those the thread's own code registers (which may still make
/// calls); a call made later still (a `pthread_key` destructor) fails with
/// `ENOSYS`.
pub fn park_at_thread_end() {
    PARK_AT_END.with(|_| ());
}

fn park_thread() {
    let p = SHIM.with(|c| c.get());
    if p.is_null() {
        return;
    }
    let _g = enter_init();
    // SAFETY: a non-null SHIM is a leaked box that only this thread uses.
    let shim = unsafe { &*p };
    let full = PARKED.lock().unwrap_or_else(|e| e.into_inner()).len() >= PARKED_MAX;
    // Otherwise the thread ends with its endpoint and the daemon unbinds it.
    if full || shim.was_unbound() || shim.ipc().dvk().retask(0).is_err() {
        return;
    }
    SHIM.with(|c| c.set(std::ptr::null()));
    THREAD_SHIMS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&q| q != p as usize);
    PARKED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(p as usize);
}

/// A parked endpoint for a new thread, if there is one (see
/// [`adopt_parked`]). Those inherited from a parent process are dropped.
pub fn take_parked() -> Option<usize> {
    let mut parked = PARKED.lock().unwrap_or_else(|e| e.into_inner());
    while let Some(p) = parked.pop() {
        // SAFETY: addresses in PARKED are leaked shims no thread uses.
        if unsafe { &*(p as *const Shim) }.was_unbound() {
            // SAFETY: a fork child's copy: nothing else refers to it, and
            // dropping it only closes this process's descriptors.
            drop(unsafe { Box::from_raw(p as *mut Shim) });
            continue;
        }
        return Some(p);
    }
    None
}

/// Gives back an endpoint [`take_parked`] returned and nobody used.
pub fn return_parked(p: usize) {
    PARKED.lock().unwrap_or_else(|e| e.into_inner()).push(p);
}

/// In a new thread (host tid `tid`): takes parked endpoint `p` (from
/// [`take_parked`]) as its own.
pub fn adopt_parked(p: usize, tid: i32) {
    // SAFETY: `p` came from take_parked: a leaked shim that no other
    // thread uses.
    let shim = unsafe { &*(p as *const Shim) };
    match shim.ipc().dvk().retask(tid) {
        Ok(()) => {
            SHIM.with(|c| c.set(p as *const Shim));
            THREAD_SHIMS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(p);
        }
        Err(e) => {
            eprintln!("dvs: a new thread could not take a parked endpoint: {e}");
            // SAFETY: unused by anyone else; dropping it unbinds it.
            drop(unsafe { Box::from_raw(p as *mut Shim) });
        }
    }
}

/// Unbinds the parked endpoints (before an `execve`: the new image would
/// not know them).
pub fn drop_parked() {
    let parked = std::mem::take(&mut *PARKED.lock().unwrap_or_else(|e| e.into_inner()));
    for p in parked {
        // SAFETY: leaked shims that no thread uses; dropping one unbinds
        // its endpoint (or, in a fork child, only closes descriptors).
        drop(unsafe { Box::from_raw(p as *mut Shim) });
    }
}

fn set_shim(s: Shim) -> *const Shim {
    let p: &'static Shim = Box::leak(Box::new(s));
    SHIM.with(|c| c.set(p));
    p
}

/// Runs `f` with this thread's shim.
pub fn with_shim<R>(f: impl FnOnce(&Shim) -> R) -> Option<R> {
    let p = SHIM.with(|c| c.get());
    // SAFETY: a non-null pointer here comes from `Box::leak` in `set_shim`
    // and is never freed, and only this thread uses it.
    (!p.is_null()).then(|| f(unsafe { &*p }))
}

/// Serves a system call through the shim of the calling thread.
pub fn syscall(nr: i64, a: [u64; 6]) -> Action {
    serving(true);
    with_shim(|s| {
        if s.wants_channel(nr, &a) {
            s.open_channel(gate::channel_pipe());
        }
        let r = s.syscall(&Local, nr, a);
        if matches!(r, Action::Ret(v) if v == -(libc::EIO as i64)) && s.ipc().dvk().daemon_gone() {
            dc_gone();
        }
        r
    })
    .unwrap_or_else(|| {
        serving(false);
        report_once(
            "threads",
            "dvs: system calls from additional threads are not supported yet",
        );
        Action::Ret(-(libc::ENOSYS as i64))
    })
}

/// The node daemon that holds this process's DC is gone (killed, as a
/// `dvs-exec` whose embedded node went with it): the DC's servers with
/// it. The process ends as the processes of a dead node do, by SIGKILL,
/// rather than see every call fail (`EIO`) and maybe retry forever.
fn dc_gone() -> ! {
    // SAFETY: kill through the gate (no supervisor may be left to serve
    // a trapped one) of our own process; SIGKILL does not return.
    unsafe {
        let pid = gate::syscall6(libc::SYS_getpid, [0; 6]);
        gate::syscall6(
            libc::SYS_kill,
            [pid as u64, libc::SIGKILL as u64, 0, 0, 0, 0],
        );
        libc::_exit(128 + libc::SIGKILL)
    }
}

/// Marks the calling thread as serving a call (or not), in the order a
/// signal handler on this thread sees.
fn serving(on: bool) {
    SERVING.with(|c| c.set(on));
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// This thread's `errno`.
pub fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's `errno`.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Converts a raw result (`-errno` on failure) into the libc convention.
pub fn libc_ret(v: i64) -> i64 {
    if v < 0 {
        set_errno((-v) as i32);
        -1
    } else {
        v
    }
}

/// Prints `msg` once per process for `key`.
pub fn report_once(key: &str, msg: &str) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut g = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if g.get_or_insert_with(HashSet::new).insert(key.to_string()) {
        eprintln!("{msg}");
    }
}

/// A hooked function run on the host: through the gate when it is mapped
/// (under the seccomp net only the gate's calls reach the kernel; every
/// hook's system call number and arguments are those of the libc
/// function), else the real libc function `native`.
pub fn host(nr: i64, a: [u64; 6], native: impl FnOnce() -> i64) -> i64 {
    if shim::gatepage::mapped() {
        // SAFETY: the hook's arguments are the caller's, in the layout of
        // system call `nr`.
        libc_ret(unsafe { shim::gatepage::syscall6(nr, a) })
    } else {
        native()
    }
}

/// Finishes a hooked call: applies the shim's action and returns the libc
/// result. `native` runs the real libc function.
pub fn finish(act: Action, native: impl FnOnce() -> i64) -> i64 {
    if !matches!(act, Action::Ret(_)) {
        // What follows may write for itself (reports).
        serving(false);
    }
    match act {
        Action::Ret(v) => libc_ret(v),
        Action::Native => native(),
        Action::SigPipe => {
            gate::raise_in_thread(libc::SIGPIPE);
            set_errno(libc::EPIPE);
            -1
        }
        Action::Reap { ret, host_pid } => {
            gate::reap(host_pid);
            ret
        }
        Action::Unsupported(nr) => {
            let name = shim::sysnames::name(nr);
            let pid = with_shim(|s| s.getpid()).unwrap_or(0);
            report_once(
                &name,
                &format!("dvs: unsupported syscall {name} in PID {pid}"),
            );
            set_errno(libc::ENOSYS);
            -1
        }
        Action::FromChannel { fd, addr, n } => libc_ret(gate::from_channel(fd, addr, n)),
        Action::Fork { .. } | Action::Exec => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// A hooked call: serve `nr` through the shim, or run the real function.
pub fn hooked(nr: i64, a: [u64; 6], native: impl FnOnce() -> i64) -> i64 {
    as_call(nr, a, || serve_or_host(nr, a, native))
}

/// Runs `f`, which serves call `nr` with arguments `a`, as the signal
/// machinery expects a served call to run (see [`crate::interrupts`]):
/// the calls Linux never restarts marked so, the others noted for
/// deferral; signals kept meanwhile are delivered after it.
fn as_call(nr: i64, a: [u64; 6], f: impl FnOnce() -> i64) -> i64 {
    let never_restarted = [
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
    ];
    let r = if never_restarted.contains(&nr) {
        crate::interrupts::never_restarted(f)
    } else {
        crate::interrupts::in_call(nr, &a, f)
    };
    if !busy() {
        crate::interrupts::redeliver();
    }
    r
}

/// A redirected call that reached the preload without a hook: one glibc
/// makes inside itself, through a function the preload pointed at its own
/// entry points (see [`crate::libc_internal`]), or one made with glibc's
/// `syscall` function ([`crate::hooks::indirect`]). Served as a hooked
/// call when this thread can make one; otherwise (before attaching, inside
/// the preload, in a signal handler during a served call) made as the
/// kernel call it was, `kernel`, which the seccomp net serves.
pub fn internal(nr: i64, a: [u64; 6], kernel: impl FnOnce() -> i64) -> i64 {
    as_call(nr, a, || {
        let was = SERVING.with(|c| c.get());
        serving(true);
        match enter() {
            Some(_g) => finish(syscall(nr, a), kernel),
            None => {
                serving(was);
                kernel()
            }
        }
    })
}

fn serve_or_host(nr: i64, a: [u64; 6], native: impl FnOnce() -> i64) -> i64 {
    // Serving before busy (see `Guard::drop`).
    let was = SERVING.with(|c| c.get());
    serving(true);
    match enter() {
        Some(_g) => finish(syscall(nr, a), || host(nr, a, native)),
        None if ACTIVE.load(Ordering::Relaxed) => {
            serving(was);
            reentered(nr, a, native)
        }
        None => {
            serving(was);
            host(nr, a, native)
        }
    }
}

/// A handler's small write, kept for after the served call, or `EAGAIN`.
fn kept_or_eagain(nr: i64, a: [u64; 6]) -> i64 {
    if let Some(n) = crate::handler_writes::keep(nr, a) {
        return n;
    }
    set_errno(libc::EAGAIN);
    -1
}

/// A hooked call made while this thread is already inside the preload:
/// by the preload itself (its own host descriptors), or by a signal
/// handler that interrupted a call in progress. The thread's endpoint is
/// busy, so the call cannot be served: a handler's call fails (while the
/// thread waits for a server, when handlers run), and waits must not
/// reach the host either (a host reap would hide the child's end from PM), so they report
/// nothing ready, which handlers that reap in a `WNOHANG` loop expect.
fn reentered(nr: i64, a: [u64; 6], native: impl FnOnce() -> i64) -> i64 {
    let options = match nr {
        libc::SYS_wait4 => a[2] as i32,
        libc::SYS_waitid => a[3] as i32,
        // A handler that interrupted an IPC wait: its descriptor numbers
        // are the DC's, not the host's, and the endpoint is busy. A small
        // write is kept and made after the served call; anything else
        // fails as on a full or empty non-blocking descriptor (`EINTR`
        // would make callers such as CPython's signal wake-up write retry
        // for ever).
        _ if dvk::in_ipc_wait() => return kept_or_eagain(nr, a),
        // A handler that ran while the call was being served but not
        // waited for (the request being posted, the reply being read):
        // the same, for the writes; the shim's and the DVK's own calls
        // there (daemon requests) are never `write` or `sendto`.
        libc::SYS_write | libc::SYS_sendto if SERVING.with(|c| c.get()) => {
            return kept_or_eagain(nr, a)
        }
        _ => return host(nr, a, native),
    };
    if options & libc::WNOHANG != 0 {
        0
    } else {
        set_errno(libc::EINTR);
        -1
    }
}
