//! When a signal ends a call the servers are serving.
//!
//! A signal from the host (a timer's `SIGALRM`, a `kill` from outside the
//! DC) runs its handler while the thread waits in `sendrec` for FS or PM.
//! Natively the blocking call would then fail with `EINTR` unless the
//! handler was installed with `SA_RESTART`. So that dvs knows which
//! signal ran, the handlers a DC program installs with `sigaction` run
//! through [`trampoline`], which notes the signal on its thread; a call
//! is ended (FS or PM answers `EINTR`, or the bytes moved) when a noted
//! signal's action lacks `SA_RESTART`. When no noted signal ran (a handler
//! installed by libc's own `signal`), the call is ended when the process
//! has any handler without `SA_RESTART`, and a process whose handlers all
//! restart (shells) keeps waiting, as natively.

use libc::{c_int, c_void, siginfo_t};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Signal numbers are 1..=64.
const NSIG: usize = 65;

/// The program's handler of each signal that runs through [`trampoline`]
/// (its address), and whether it takes a `siginfo_t` (`SA_SIGINFO`).
static HANDLERS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
static SIGINFO: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// Whether the program's handler of each signal was installed with
/// `SA_RESETHAND` (the kernel then resets the disposition at delivery).
static RESETHAND: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];

/// How many signals one call defers at most (see [`redeliver`]).
const DEFERRABLE: usize = 4;

/// The signals [`siginterrupt`] made end calls (bit `sig - 1`), which
/// [`signal`] then installs without `SA_RESTART`, as glibc does.
static INTR: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Signals whose handler ran on this thread (bit `sig - 1`) since
    /// [`policy`] last looked.
    static RAN: Cell<u64> = const { Cell::new(0) };
    /// Handlers run on this thread.
    static RUNS: Cell<u64> = const { Cell::new(0) };
    /// [`RUNS`] when the thread's current call began, and whether the
    /// call set it itself before it entered the preload ([`call_from`]).
    static AT_CALL: Cell<(u64, bool)> = const { Cell::new((0, false)) };
    /// The current call is one Linux never restarts after a handler
    /// (`poll`, `select`, `epoll_wait` and their kin), `SA_RESTART` or not.
    static NO_RESTART: Cell<bool> = const { Cell::new(false) };
    /// Handlers running on this thread that interrupted it inside the
    /// preload, and where the outermost one's frame is (its stack address,
    /// whether on the alternate signal stack): see [`escaped_handler`].
    static IN_CALL_HANDLER: Cell<(u32, usize, bool)> = const { Cell::new((0, 0, false)) };
    /// The served call in progress (see [`in_call`]): its number and the
    /// arguments [`quick`] looks at.
    static CALL: Cell<(i64, u64, u64)> = const { Cell::new((-1, 0, 0)) };
    /// How many signals [`DEFERRED`] holds (what a call's end looks at).
    static DEFERRED_N: Cell<u8> = const { Cell::new(0) };
    /// Signals whose handler waits for the end of the current call (see
    /// [`redeliver`]).
    static DEFERRED: Cell<[Option<(c_int, siginfo_t)>; DEFERRABLE]> =
        const { Cell::new([None; DEFERRABLE]) };
}

/// About where the calling function's frame is on the stack.
#[inline(always)]
fn stack_mark() -> usize {
    let mark = 0u8;
    std::hint::black_box(&mark) as *const u8 as usize
}

/// Whether the thread runs on its alternate signal stack.
fn on_alt_stack() -> bool {
    // SAFETY: sigaltstack with a null new stack only reads the current one
    // into `ss`, a valid out-parameter; async-signal-safe.
    unsafe {
        let mut ss: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut ss) == 0 && ss.ss_flags & libc::SS_ONSTACK != 0
    }
}

/// Whether a handler that interrupted this thread inside the preload
/// (waiting for a server) left without returning, by `longjmp` (bash's
/// `wait` builtin with a trap does): the interrupted call's frames are
/// gone, and the thread, still marked as inside the preload, now makes a
/// call of the program's. A call the handler itself makes runs below the
/// handler's frame, or on the alternate stack the handler runs on; after
/// the jump the thread runs above it, off the alternate stack.
pub fn escaped_handler() -> bool {
    let (depth, sp, alt) = IN_CALL_HANDLER.with(|h| h.get());
    if depth == 0 || on_alt_stack() {
        return false;
    }
    alt || stack_mark() > sp
}

/// The escaped handler's call was cleaned up.
pub fn forget_escaped_handler() {
    IN_CALL_HANDLER.with(|h| h.set((0, 0, false)));
}

/// Handlers run on this thread so far.
pub fn runs() -> u64 {
    RUNS.with(|r| r.get())
}

/// A served call begins: handlers that ran before it are not its (unless
/// [`call_from`] moved its beginning earlier).
pub fn begin_call() {
    AT_CALL.with(|a| {
        let (mark, preset) = a.get();
        a.set((if preset { mark } else { runs() }, false));
    });
}

/// The next served call began when [`runs`] was `mark`: a handler that
/// ran since (a `pselect` mask let a pending signal in) ends it.
pub fn call_from(mark: u64) {
    AT_CALL.with(|a| a.set((mark, true)));
}

/// The count given to [`dvk::set_handler_runs`].
pub fn handler_runs() -> dvk::HandlerRuns {
    dvk::HandlerRuns {
        now: runs(),
        at_call: AT_CALL.with(|a| a.get().0),
    }
}

/// Runs `f`, a served wait of `ppoll`, `pselect` or `epoll_pwait`, with
/// the thread's signal mask set to `*m` (when `m` is not null), as Linux
/// does atomically: a signal the mask lets in that is pending already
/// runs its handler at once and the call fails with `EINTR`; one that
/// comes while the call waits ends it as any handler ends a poll. The
/// mask is restored afterwards.
pub fn with_mask(m: *const libc::sigset_t, f: impl FnOnce() -> i64) -> i64 {
    if m.is_null() || !crate::state::active() || crate::state::busy() {
        return f();
    }
    let mark = runs();
    // SAFETY: a zeroed sigset_t is a valid value to receive into.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: the caller's mask (valid, as for the libc call) and ours.
    if unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, m, &mut old) } != 0 {
        return f();
    }
    let r = if runs() != mark {
        crate::state::set_errno(libc::EINTR);
        -1
    } else {
        call_from(mark);
        let r = f();
        AT_CALL.with(|a| a.set((a.get().0, false)));
        r
    };
    // SAFETY: restoring the mask read above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    r
}

/// Served calls that never wait at their server (no pipe, socket,
/// terminal or child to wait for): a handler that comes during one can
/// wait for its end (see [`defer`]). Calls that can wait (`read`,
/// `write`, `wait4` without `WNOHANG`...) run a handler at once, as
/// before: with `SA_RESTART` they would go on waiting after it.
const QUICK: &[i64] = &[
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_eventfd2,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpgid,
    libc::SYS_getsid,
    libc::SYS_kill,
];

/// Whether served call `nr` with arguments `a` never waits at its server:
/// one of [`QUICK`], or a `wait` with `WNOHANG`.
fn quick((nr, a2, a3): (i64, u64, u64)) -> bool {
    let nohang = |flags: u64| flags as i32 & libc::WNOHANG != 0;
    QUICK.contains(&nr)
        || (nr == libc::SYS_wait4 && nohang(a2))
        || (nr == libc::SYS_waitid && nohang(a3))
}

/// Runs `f`, served call `nr` with arguments `a`, noting the call for
/// [`defer`] (which alone, on the rare signal, works out whether it is
/// quick: nothing more on the path of every call).
pub fn in_call<R>(nr: i64, a: &[u64; 6], f: impl FnOnce() -> R) -> R {
    let was = CALL.with(|c| c.replace((nr, a[2], a[3])));
    let r = f();
    CALL.with(|c| c.set(was));
    r
}

/// Marks the calls Linux never restarts while `f` runs.
pub fn never_restarted<R>(f: impl FnOnce() -> R) -> R {
    let was = NO_RESTART.with(|n| n.replace(true));
    let r = f();
    NO_RESTART.with(|n| n.set(was));
    r
}

/// Keeps signal `sig` (`info`) for [`redeliver`] instead of running its
/// handler now, when the thread is inside a served call Linux ends for
/// any handler (`poll`, `epoll_wait`...), or one that never waits
/// ([`QUICK`]): the first ends with `EINTR` anyway (the handler's run,
/// counted, ends it), the second in microseconds, and the handler then
/// runs right before the call returns, outside the preload, where its own
/// calls are served. Run now, its calls could not be (the thread's endpoint is
/// busy): libuv's handler reads its lock pipe first and dropped the
/// signal when that failed, so Node's `spawnSync` never saw its child
/// end. Not for a handler with `SA_RESETHAND`, which the kernel has
/// already uninstalled. Async-signal-safe.
fn defer(sig: c_int, info: *mut siginfo_t) -> bool {
    let Some(i) = index(sig) else { return false };
    let ends_soon = NO_RESTART.with(|n| n.get()) || quick(CALL.with(|c| c.get()));
    if info.is_null() || RESETHAND[i].load(Ordering::Acquire) || !ends_soon {
        return false;
    }
    DEFERRED.with(|d| {
        let mut list = d.get();
        let Some(free) = list.iter_mut().find(|e| e.is_none()) else {
            return false;
        };
        // SAFETY: the kernel's siginfo for this delivery.
        *free = Some((sig, unsafe { *info }));
        d.set(list);
        DEFERRED_N.with(|n| n.set(n.get() + 1));
        true
    })
}

/// Delivers the signals [`defer`] kept during the call that just ended,
/// again and with the same `siginfo` (a process may queue any to its own
/// threads): their handlers run now, as the call returns, with their own
/// masks. `errno` (the call's) is kept.
pub fn redeliver() {
    if DEFERRED_N.with(|n| n.replace(0)) == 0 {
        return;
    }
    let list = DEFERRED.with(|d| d.replace([None; DEFERRABLE]));
    let errno = crate::state::errno();
    // SAFETY: plain ids, and a siginfo that lives across the call.
    unsafe {
        let pid = crate::gate::syscall6(libc::SYS_getpid, [0; 6]);
        let tid = crate::gate::syscall6(libc::SYS_gettid, [0; 6]);
        for (sig, info) in list.into_iter().flatten() {
            crate::gate::syscall6(
                libc::SYS_rt_tgsigqueueinfo,
                [
                    pid as u64,
                    tid as u64,
                    sig as u64,
                    &info as *const siginfo_t as u64,
                    0,
                    0,
                ],
            );
        }
    }
    crate::state::set_errno(errno);
}

fn index(sig: c_int) -> Option<usize> {
    (1..NSIG as c_int).contains(&sig).then_some(sig as usize)
}

/// What the kernel runs for a signal the program handles: notes that the
/// signal ran on this thread, then runs the program's handler with the
/// arguments it asked for. Async-signal-safe.
extern "C" fn trampoline(sig: c_int, info: *mut siginfo_t, uc: *mut c_void) {
    let Some(i) = index(sig) else { return };
    RAN.with(|r| r.set(r.get() | 1 << (i - 1)));
    RUNS.with(|r| r.set(r.get().wrapping_add(1)));
    let h = HANDLERS[i].load(Ordering::Acquire);
    if h == 0 {
        return;
    }
    // A handler that interrupted a call of the preload: noted, in case it
    // never returns (see `escaped_handler`).
    let in_call = crate::state::busy();
    if in_call && defer(sig, info) {
        return;
    }
    if in_call {
        IN_CALL_HANDLER.with(|c| {
            let (depth, sp, alt) = c.get();
            c.set(if depth == 0 {
                (1, stack_mark(), on_alt_stack())
            } else {
                (depth + 1, sp, alt)
            });
        });
    }
    // SAFETY: `h` is the handler the program gave `sigaction` for this
    // signal, with the signature its `SA_SIGINFO` flag names.
    unsafe {
        if SIGINFO[i].load(Ordering::Acquire) {
            let f: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = std::mem::transmute(h);
            f(sig, info, uc)
        } else {
            let f: extern "C" fn(c_int) = std::mem::transmute(h);
            f(sig)
        }
    }
    if in_call {
        IN_CALL_HANDLER.with(|c| {
            let (depth, sp, alt) = c.get();
            c.set((depth.saturating_sub(1), sp, alt));
        });
    }
}

/// `sigaction` for a program in a DC: a handler (not `SIG_DFL` or
/// `SIG_IGN`) is installed as [`trampoline`], and the old action reads as
/// the program's own. `real` is libc's `sigaction`.
///
/// A vfork child changes only its own (kernel) dispositions, as given:
/// the tables here are in the memory it shares with its parent, whose
/// handlers they keep.
///
/// # Safety
/// `act` and `old` are null or valid, as for `sigaction(2)`.
pub unsafe fn sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
    real: impl Fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int,
) -> c_int {
    let Some(i) = index(sig) else {
        return real(sig, act, old);
    };
    let before = (
        HANDLERS[i].load(Ordering::Acquire),
        SIGINFO[i].load(Ordering::Acquire),
    );
    let child = crate::vfork::in_child();
    // SAFETY: the caller's `act`, null or valid.
    let mine = unsafe { act.as_ref() }.filter(|_| !child).map(|a| {
        let mut k = *a;
        // A handler being replaced by SIG_DFL or SIG_IGN stays callable
        // until the kernel no longer runs the trampoline (it is forgotten
        // below): a signal that arrives meanwhile runs it, as natively.
        if a.sa_sigaction != libc::SIG_DFL && a.sa_sigaction != libc::SIG_IGN {
            SIGINFO[i].store(a.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
            RESETHAND[i].store(a.sa_flags & libc::SA_RESETHAND != 0, Ordering::Release);
            HANDLERS[i].store(a.sa_sigaction, Ordering::Release);
            k.sa_sigaction = trampoline as *const () as usize;
            k.sa_flags |= libc::SA_SIGINFO;
        }
        k
    });
    let given = if child { act } else { std::ptr::null() };
    let r = real(sig, mine.as_ref().map_or(given, |k| k as *const _), old);
    if let (0, Some(k)) = (r, &mine) {
        if k.sa_sigaction == libc::SIG_DFL || k.sa_sigaction == libc::SIG_IGN {
            HANDLERS[i].store(0, Ordering::Release);
        }
        // What SYSTASK reads when PM sends this signal.
        let restarts = k.sa_sigaction == trampoline as *const () as usize
            && k.sa_flags & libc::SA_RESTART != 0;
        shim::gatepage::set_restarts(sig, restarts);
    }
    // SAFETY: the caller's `old`, null or valid (and filled by libc).
    if let Some(o) = unsafe { old.as_mut() } {
        let ours = o.sa_sigaction == trampoline as *const () as usize;
        // `SA_RESETHAND` made the kernel reset our trampoline to SIG_DFL
        // (keeping the flags, ours included).
        let reset = o.sa_sigaction == libc::SIG_DFL
            && before.0 != 0
            && o.sa_flags & libc::SA_RESETHAND != 0;
        if r == 0 && ours {
            o.sa_sigaction = before.0;
        }
        if r == 0 && (ours || reset) && !before.1 {
            o.sa_flags &= !libc::SA_SIGINFO;
        }
    }
    r
}

/// `siginterrupt(sig, flag)`: the handler of `sig` ends interrupted calls
/// (`flag` != 0) or restarts them, through [`sigaction`] so that SYSTASK
/// learns it too. `real` is libc's `sigaction`.
pub fn siginterrupt(
    sig: c_int,
    flag: c_int,
    real: impl Fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int,
) -> c_int {
    // SAFETY: a zeroed sigaction is a valid value to receive into.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reading the action into `act`, then installing it changed.
    unsafe {
        if sigaction(sig, std::ptr::null(), &mut act, &real) != 0 {
            return -1;
        }
        let bit = 1u64 << (sig - 1);
        // A vfork child's choice is not its parent's.
        let child = crate::vfork::in_child();
        if flag != 0 {
            if !child {
                INTR.fetch_or(bit, Ordering::AcqRel);
            }
            act.sa_flags &= !libc::SA_RESTART;
        } else {
            if !child {
                INTR.fetch_and(!bit, Ordering::AcqRel);
            }
            act.sa_flags |= libc::SA_RESTART;
        }
        sigaction(sig, &act, std::ptr::null_mut(), &real)
    }
}

/// `signal(sig, handler)` as glibc's (BSD semantics): `sig` blocked while
/// its handler runs, and calls restarted unless [`siginterrupt`] said
/// otherwise; through [`sigaction`]. Returns the old handler, or
/// `SIG_ERR`.
pub fn signal(
    sig: c_int,
    handler: libc::sighandler_t,
    real: impl Fn(c_int, *const libc::sigaction, *mut libc::sigaction) -> c_int,
) -> libc::sighandler_t {
    if handler == libc::SIG_ERR || index(sig).is_none() {
        // SAFETY: __errno_location returns this thread's errno slot.
        unsafe { *libc::__errno_location() = libc::EINVAL };
        return libc::SIG_ERR;
    }
    // SAFETY: zeroed sigactions are valid values; the sigset calls get
    // a valid set.
    let (mut act, mut old): (libc::sigaction, libc::sigaction) =
        unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    act.sa_sigaction = handler;
    // SAFETY: `act.sa_mask` is a valid set to fill.
    unsafe {
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaddset(&mut act.sa_mask, sig);
    }
    if INTR.load(Ordering::Acquire) & 1u64 << (sig - 1) == 0 {
        act.sa_flags = libc::SA_RESTART;
    }
    // SAFETY: both actions live across the call.
    if unsafe { sigaction(sig, &act, &mut old, &real) } != 0 {
        return libc::SIG_ERR;
    }
    old.sa_sigaction
}

/// The current action of `sig`: whether it has a handler, and whether
/// that handler restarts calls.
fn action(sig: c_int) -> Option<(bool, bool)> {
    // SAFETY: a zeroed sigaction is a valid value to receive into.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the action of `sig` (no new action).
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    (r == 0).then_some((
        old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN,
        old.sa_flags & libc::SA_RESTART != 0,
    ))
}

/// The policy given to [`dvk::set_signal_policy`]: whether the signal
/// handlers that ran while this thread waited end its call.
pub fn policy() -> bool {
    let ran = RAN.with(|r| r.replace(0));
    if ran != 0 && NO_RESTART.with(|n| n.get()) {
        return true;
    }
    if ran != 0 {
        return (1..NSIG as c_int)
            .filter(|&s| ran & 1 << (s - 1) != 0)
            .any(|s| action(s).is_some_and(|(_, restarts)| !restarts));
    }
    (1..NSIG as c_int).any(|s| action(s).is_some_and(|(handled, restarts)| handled && !restarts))
}
