//! Adaptive waiting on a doorbell: spin briefly, then yield, then sleep on
//! the futex.
//!
//! On the 2-vCPU machines this project targets, waking a sleeping process
//! on the other CPU costs ~25 µs, while a peer that is still spinning sees
//! a change in well under a microsecond. So a waiter first spins (the
//! common case of a quick reply), then spins with `sched_yield` (so that on
//! an oversubscribed machine the peer it waits for can run on this CPU),
//! and finally sleeps. Idle servers always end up asleep.

use crate::layout::Doorbell;
use crate::sys::futex_wait;
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Spin budgets, from `DVS_SPIN_US` (total, default 60) and
/// `DVS_SPIN_PURE_US` (pure spinning part, default 4).
struct Budget {
    pure: Duration,
    total: Duration,
}

fn budget() -> &'static Budget {
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
/// attempts, or until `deadline` passes (then one last check is made).
/// A waiter that sleeps calls `idle` too, at most once per [`IDLE_CHECK`]:
/// what nobody would ring the doorbell for (the daemon died) ends the wait
/// there.
pub fn wait_until<R>(
    bell: &Doorbell,
    deadline: Option<Instant>,
    check: impl FnMut() -> Option<R>,
    idle: impl FnMut() -> Option<R>,
) -> Result<R, Expired> {
    wait_until_intr(bell, deadline, check, idle, || {})
}

/// [`wait_until`], calling `on_signal` each time a signal handler ran
/// while the waiter slept.
pub fn wait_until_intr<R>(
    bell: &Doorbell,
    deadline: Option<Instant>,
    mut check: impl FnMut() -> Option<R>,
    mut idle: impl FnMut() -> Option<R>,
    mut on_signal: impl FnMut(),
) -> Result<R, Expired> {
    let futex = bell.futex();
    let b = budget();
    let start = Instant::now();
    let mut spins: u32 = 0;
    loop {
        let seen = futex.load(Ordering::Acquire);
        if let Some(r) = check() {
            return Ok(r);
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
            let now = Instant::now();
            if let Some(d) = deadline {
                if now >= d {
                    return check().ok_or(Expired);
                }
            }
            let spent = now - start;
            if spent >= b.total {
                break;
            }
            if spent >= b.pure {
                std::thread::yield_now();
            }
        }
        drop(spinning);
        if changed {
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
        if interrupted {
            on_signal();
        }
        bell.sleepers().fetch_sub(1, Ordering::SeqCst);
        if futex.load(Ordering::Acquire) == seen && now.elapsed() >= IDLE_CHECK {
            if let Some(r) = idle() {
                return Ok(r);
            }
        }
    }
}
