//! Adaptive waiting on a doorbell: spin briefly, then yield, then sleep on
//! the futex.
//!
//! On the 2-vCPU machines this project targets, waking a sleeping process
//! on the other CPU costs ~25 µs, while a peer that is still spinning sees
//! a change in well under a microsecond. So a waiter first spins (the
//! common case of a quick reply), then spins with `sched_yield` (so that on
//! an oversubscribed machine the peer it waits for can run on this CPU),
//! and finally sleeps. Idle servers always end up asleep.
//!
//! How long the yield-spin lasts depends on what is awaited ([`Spin`]): a
//! peer on this node answers within the default 60 µs or not soon; an
//! answer from another node needs a network round trip, and the proxies'
//! agent relays a message in each direction of every remote call. Those
//! waiters spin longer, so that remote calls do not pay a sleeping
//! wake-up (~25 µs) at each of their hand-offs.

use crate::layout::Doorbell;
use crate::sys::futex_wait;
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a waiter spins before it sleeps: what it waits for decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spin {
    /// A peer on this node: `DVS_SPIN_US` in all (default 60), the first
    /// `DVS_SPIN_PURE_US` (default 4) without yielding.
    Local,
    /// An answer that crosses the network (a round trip is ~90 µs here):
    /// at least [`REMOTE_SPIN`], so that the waiter is still awake when
    /// the proxy rings it.
    Remote,
    /// The proxies' agent, which relays every message between a task and
    /// the network: at least [`RELAY_SPIN`], so that a burst of remote
    /// traffic does not pay a sleeping wake-up per message.
    Relay,
}

/// The yield-spin of a [`Spin::Remote`] waiter.
pub const REMOTE_SPIN: Duration = Duration::from_micros(300);

/// The yield-spin of a [`Spin::Relay`] waiter.
pub const RELAY_SPIN: Duration = Duration::from_micros(1000);

/// Spin budgets of [`Spin::Local`], from `DVS_SPIN_US` and
/// `DVS_SPIN_PURE_US`. `DVS_SPIN_US=0` turns all spinning off.
struct Budget {
    pure: Duration,
    total: Duration,
}

fn local_budget() -> &'static Budget {
    static B: OnceLock<Budget> = OnceLock::new();
    B.get_or_init(|| {
        let env = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(d)
        };
        let total = env("DVS_SPIN_US", 60);
        let pure = env("DVS_SPIN_PURE_US", 4).min(total);
        Budget {
            pure: Duration::from_micros(pure),
            total: Duration::from_micros(total),
        }
    })
}

impl Spin {
    /// (pure spinning, spinning in all) for this kind of wait.
    fn budget(self) -> (Duration, Duration) {
        let b = local_budget();
        let floor = match self {
            Spin::Local => Duration::ZERO,
            Spin::Remote => REMOTE_SPIN,
            Spin::Relay => RELAY_SPIN,
        };
        if b.total.is_zero() {
            return (b.pure, b.total);
        }
        (b.pure, b.total.max(floor))
    }
}

/// Whether a signal handler that ran during a reply wait should end the
/// call (see [`set_signal_policy`]).
static SIGNAL_POLICY: OnceLock<fn() -> bool> = OnceLock::new();

/// Lets a signal handler that runs while a task waits in `sendrec` for a
/// reply end the call, as a signal ends a blocking system call: when
/// `policy()` says so (e.g. a handler without `SA_RESTART` exists), the
/// task asks the DVK to send the server a [`crate::NotifyKind::Signal`]
/// notification, and the server may reply at once (`EINTR`). Set once per
/// process, by the interception layer; servers leave it unset.
pub fn set_signal_policy(policy: fn() -> bool) {
    let _ = SIGNAL_POLICY.set(policy);
}

pub(crate) fn signal_ends_calls() -> bool {
    SIGNAL_POLICY.get().is_some_and(|p| p())
}

/// Whether a signal handler left work that only the end of the current
/// call lets happen (see [`set_handler_pending`]).
static HANDLER_PENDING: OnceLock<fn() -> bool> = OnceLock::new();

/// Tells the DVK how to learn that a signal handler, which ran on the
/// waiting task, left work to do after the call (a write it could not
/// make while the endpoint waited). Such a call is ended as a signal ends
/// it, whatever [`set_signal_policy`] says, and whenever the handler ran
/// (spinning, asleep, or between the two): waiting on would keep the
/// write from the reader that may be what the call waits for (an event
/// loop's wake-up descriptor). Set once per process, by the interception
/// layer; `pending` must be async-signal-safe and cheap.
pub fn set_handler_pending(pending: fn() -> bool) {
    let _ = HANDLER_PENDING.set(pending);
}

fn handler_pending() -> bool {
    HANDLER_PENDING.get().is_some_and(|p| p())
}

/// How to count the signal handlers that ran on the calling thread.
static HANDLER_RUNS: OnceLock<fn() -> HandlerRuns> = OnceLock::new();

/// Signal handlers run on a thread, as the interception layer counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandlerRuns {
    /// Handlers run so far.
    pub now: u64,
    /// Handlers run when the thread's current call began.
    pub at_call: u64,
}

/// Tells the DVK how to count the signal handlers that ran on the calling
/// thread, so that a handler that runs while a call waits ends the call
/// (as [`set_signal_policy`] decides) whenever it ran: before the wait,
/// while the waiter spins, or while it sleeps. Without it only a handler
/// that interrupts the sleep is seen. Set once per process, by the
/// interception layer; `runs` must be async-signal-safe and cheap.
pub fn set_handler_runs(runs: fn() -> HandlerRuns) {
    let _ = HANDLER_RUNS.set(runs);
}

fn handler_runs() -> Option<HandlerRuns> {
    HANDLER_RUNS.get().map(|f| f())
}

/// Whether handlers ran since `seen` (which then catches up).
fn new_handler(seen: &mut Option<u64>) -> bool {
    let now = handler_runs().map(|r| r.now);
    let ran = now != *seen;
    *seen = now;
    ran
}

/// How long a sleeping waiter goes between calls of its `idle` check (the
/// checks that cost a system call, such as "is the node daemon still
/// there?"). Not a whole second: a signal handler that runs while the
/// waiter is between two sleeps goes unnoticed (see
/// [`set_signal_policy`]), and timers of whole seconds (`alarm`) would
/// then often fire right as a sleep ends.
const IDLE_CHECK: Duration = Duration::from_millis(1300);

thread_local! {
    /// The thread is spinning or asleep in an IPC wait (not in one of the
    /// wait's own checks, which may call libc).
    static IN_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is spinning or asleep in an IPC wait: a
/// signal handler that asks this interrupted the wait, and cannot make an
/// IPC call of its own on the thread's endpoint.
pub fn in_ipc_wait() -> bool {
    IN_WAIT.with(|w| w.get())
}

/// Forgets a wait the calling thread left without returning (a signal
/// handler `longjmp`ed out of it): see [`crate::Ipc::abandon_call`].
pub(crate) fn forget_wait() {
    IN_WAIT.with(|w| w.set(false));
}

/// Marks the thread as waiting while alive.
struct Waiting;

impl Waiting {
    fn new() -> Waiting {
        IN_WAIT.with(|w| w.set(true));
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        IN_WAIT.with(|w| w.set(false));
    }
}

/// Outcome of a wait that did not produce a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired;

/// Calls `check` until it returns `Some`, waiting on `bell` between
/// attempts (spinning as `spin` says, then asleep), or until `deadline`
/// passes (then one last check is made).
/// A waiter that sleeps calls `idle` too, at most once per [`IDLE_CHECK`]:
/// what nobody would ring the doorbell for (the daemon died) ends the wait
/// there.
pub fn wait_until<R>(
    bell: &Doorbell,
    spin: Spin,
    deadline: Option<Instant>,
    check: impl FnMut() -> Option<R>,
    idle: impl FnMut() -> Option<R>,
) -> Result<R, Expired> {
    wait_until_intr(bell, spin, deadline, check, idle, |_| {})
}

/// [`wait_until`], calling `on_signal(false)` each time a signal handler
/// ran while the waiter slept, and `on_signal(true)` while a handler's
/// work waits for the end of the call (see [`set_handler_pending`]).
pub fn wait_until_intr<R>(
    bell: &Doorbell,
    spin: Spin,
    deadline: Option<Instant>,
    mut check: impl FnMut() -> Option<R>,
    mut idle: impl FnMut() -> Option<R>,
    mut on_signal: impl FnMut(bool),
) -> Result<R, Expired> {
    let futex = bell.futex();
    let (pure, total) = spin.budget();
    let start = Instant::now();
    let mut spins: u32 = 0;
    let mut ended_for_handler = false;
    // Handlers seen so far: those before the call began are not its.
    let mut seen_runs = handler_runs().map(|r| r.at_call);
    loop {
        let seen = futex.load(Ordering::Acquire);
        if let Some(r) = check() {
            return Ok(r);
        }
        // Once per wait: the call is being ended.
        if !ended_for_handler && handler_pending() {
            ended_for_handler = true;
            on_signal(true);
        }
        // A handler that ran before the wait, or while it spun.
        if new_handler(&mut seen_runs) {
            on_signal(false);
        }
        // Spin phase: wait for the futex word to change.
        let mut changed = false;
        let spinning = Waiting::new();
        loop {
            if futex.load(Ordering::Acquire) != seen {
                changed = true;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            if !ended_for_handler && handler_pending() {
                break;
            }
            if handler_runs().map(|r| r.now) != seen_runs {
                break;
            }
            let now = Instant::now();
            if let Some(d) = deadline {
                if now >= d {
                    return check().ok_or(Expired);
                }
            }
            let spent = now - start;
            if spent >= total {
                break;
            }
            if spent >= pure {
                std::thread::yield_now();
            }
        }
        drop(spinning);
        if changed
            || (!ended_for_handler && handler_pending())
            || handler_runs().map(|r| r.now) != seen_runs
        {
            continue;
        }
        // Sleep phase.
        let now = Instant::now();
        let timeout = match deadline {
            Some(d) => {
                if now >= d {
                    return check().ok_or(Expired);
                }
                (d - now).min(IDLE_CHECK)
            }
            None => IDLE_CHECK,
        };
        bell.sleepers().fetch_add(1, Ordering::SeqCst);
        let sleeping = Waiting::new();
        let interrupted =
            futex.load(Ordering::SeqCst) == seen && futex_wait(futex, seen, Some(timeout));
        drop(sleeping);
        if new_handler(&mut seen_runs) || interrupted {
            on_signal(false);
        }
        bell.sleepers().fetch_sub(1, Ordering::SeqCst);
        if futex.load(Ordering::Acquire) == seen && now.elapsed() >= IDLE_CHECK {
            if let Some(r) = idle() {
                return Ok(r);
            }
        }
    }
}
