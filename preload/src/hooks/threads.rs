//! Threads: each thread of a DC program gets its own endpoint, so that
//! threads never share an IPC handle or take a lock on the system-call
//! path. An ended thread's endpoint is parked for the process's next
//! thread, which takes it over with one call to the node daemon
//! ([`state::adopt_parked`]). Without a parked endpoint, `pthread_create`
//! starts the thread on a trampoline that reports its host tid; the
//! creating thread asks PM for an endpoint for it (PM binds that tid)
//! while the thread connects to the node daemon, then lets it attach and
//! run.

use crate::state::{self, enter, with_shim};
use libc::{c_int, c_void, pthread_attr_t, pthread_t};
use std::sync::atomic::{AtomicU32, Ordering};

type Start = extern "C" fn(*mut c_void) -> *mut c_void;

struct Trampoline {
    start: Start,
    arg: *mut c_void,
    /// A parked endpoint the thread takes (0: none; the creator asks PM).
    parked: usize,
    /// The new thread's host tid (0 until it is known).
    tid: AtomicU32,
    /// Set by the creator: 1 = attach to the new endpoint, 2 = run without.
    go: AtomicU32,
}

fn futex_wait_while(word: &AtomicU32, v: u32) {
    while word.load(Ordering::Acquire) == v {
        // SAFETY: a private futex wait on a word we own for the duration.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                v,
                0usize,
            );
        }
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: waking waiters of a valid word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Trampoline boxed by the creator, alive until this
    // thread frees it below; the creator stops touching it after `go`.
    let t = unsafe { &*(p as *const Trampoline) };
    let (start, arg) = (t.start, t.arg);
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    if t.parked != 0 {
        let parked = t.parked;
        // SAFETY: reclaiming the box; the creator did not wait for us.
        drop(unsafe { Box::from_raw(p as *mut Trampoline) });
        let g = state::enter_init();
        state::adopt_parked(parked, tid);
        state::park_at_thread_end();
        drop(g);
        return start(arg);
    }
    t.tid.store(tid as u32, Ordering::Release);
    futex_wake(&t.tid);
    // Connect to the node daemon while the creator asks PM for our
    // endpoint; then wait for the answer and attach.
    let g = state::enter_init();
    let pending = state::begin_thread_attach();
    futex_wait_while(&t.go, 0);
    let bound = t.go.load(Ordering::Acquire) == 1;
    // SAFETY: reclaiming the box; the creator no longer uses it.
    drop(unsafe { Box::from_raw(p as *mut Trampoline) });
    if bound {
        state::attach_thread(pending);
        state::park_at_thread_end();
    }
    drop(g);
    start(arg)
}

redhook::hook! {
    unsafe fn pthread_create(thread: *mut pthread_t, attr: *const pthread_attr_t, start: Start, arg: *mut c_void) -> c_int => hk_pthread_create {
        let Some(g) = enter() else {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(pthread_create)(thread, attr, start, arg) };
        };
        state::sweep_ended_threads();
        let parked = state::take_parked();
        let t = Box::into_raw(Box::new(Trampoline {
            start,
            arg,
            parked: parked.unwrap_or(0),
            tid: AtomicU32::new(0),
            go: AtomicU32::new(0),
        }));
        // SAFETY: the real pthread_create with our trampoline and its box.
        let r = unsafe { redhook::real!(pthread_create)(thread, attr, trampoline, t as *mut c_void) };
        if r != 0 {
            // SAFETY: the thread was not created: the box is still ours.
            drop(unsafe { Box::from_raw(t) });
            if let Some(p) = parked {
                state::return_parked(p);
            }
            return r;
        }
        // glibc installed its set*id handler at its first thread.
        crate::setxid::install();
        if parked.is_some() {
            // The thread takes its endpoint itself (and frees the box).
            drop(g);
            return 0;
        }
        // SAFETY: the box lives until the new thread sees `go`.
        let tr = unsafe { &*t };
        futex_wait_while(&tr.tid, 0);
        let tid = tr.tid.load(Ordering::Acquire) as i32;
        let ep = with_shim(|s| s.thread(tid)).unwrap_or(-(libc::ENOSYS as i64));
        // 1: attach to the new endpoint; 2: run without one.
        tr.go.store(if ep >= 0 { 1 } else { 2 }, Ordering::Release);
        futex_wake(&tr.go);
        drop(g);
        0
    }
}
