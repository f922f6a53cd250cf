//! `vfork` in a DC, without copying the parent.
//!
//! A shell runs a command with `vfork` + `execve`: the child borrows the
//! parent's memory and stack until it execs, and the parent sleeps
//! meanwhile. Run as a `fork` (what the preload did before), every
//! command cost a copy of the parent's page tables, copy-on-write faults
//! in both processes and, at the child's `execve`, the teardown of that
//! copy — with TLB shootdowns to the other CPUs each time.
//!
//! Here `vfork` is the host's, through the gate page's vfork entry
//! ([`shim::gatepage::GATE_VFORK`]; a hook written in Rust could not
//! return twice through one stack frame, so [`vfork`] is assembly that
//! keeps the return address in a register), and the child starts
//! *borrowed*: it has no endpoint of its own yet and acts as its parent,
//! which is exactly right for what a vfork child may do before exec:
//!
//! * the exec family ([`crate::state::enter_exec`]) resolves the path and
//!   reads the parent's state through the parent's endpoint (the child's
//!   descriptors, directory and root are still the parent's), then execs
//!   on the host. When the parent wakes up (the kernel wakes it at the
//!   child's exec), it registers the child with PM (`PmFork`, as after a
//!   `fork`) while the new image waits for its binding;
//! * any other hooked call (`dup2`, `close`, `sigaction`, `chdir`... as a
//!   vfork child of Python's `subprocess` makes) first turns the child
//!   into a real process: it forks for real and ends at once
//!   ([`escape`]); the parent registers the grandchild as its child (its
//!   host parent is now the node's subreaper, which reaps it for PM), and
//!   the grandchild, with memory and an endpoint of its own, goes on with
//!   the call. Such a process's later `vfork`s are run as `fork`s.
//!
//! The child and its sleeping parent share memory, thread-local storage
//! included: the child's outcome waits for the parent in [`STATE`], and
//! whatever the child allocated and still held when it exec'd (its
//! environment, the host path...) is freed by the parent ([`Held`]).

use crate::state;
use libc::pid_t;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};

/// No vfork child on this thread's memory.
const NONE: u8 = 0;
/// A borrowed child is running (set by the child, seen by the parent when
/// it exec'd or ended without a hooked call).
const BORROWED: u8 = 1;
/// The child turned into a real process and ended; [`RESULT`] holds the
/// grandchild's host pid or `-errno`.
const ESCAPED: u8 = 2;

/// Values a borrowed child may hold at once ([`Held`]).
const HELD_MAX: usize = 16;

/// A held value: its address and the drop function of its type.
type HeldSlot = Cell<Option<(usize, unsafe fn(usize))>>;

thread_local! {
    /// The vfork child's state (see the module comment).
    static STATE: Cell<u8> = const { Cell::new(NONE) };
    /// The escaped child's grandchild (host pid), or `-errno`.
    static RESULT: Cell<i64> = const { Cell::new(0) };
    /// What a borrowed child holds: (address, drop function) pairs.
    static HELD: [HeldSlot; HELD_MAX] = const { [const { Cell::new(None) }; HELD_MAX] };
}

/// vfork children that exec'd borrowed, and that had to escape: a process
/// whose children escape (Python's) gets `fork`s.
static BORROWED_EXECS: AtomicU32 = AtomicU32::new(0);
static ESCAPES: AtomicU32 = AtomicU32::new(0);

/// Whether the calling thread is a borrowed vfork child.
pub fn borrowed() -> bool {
    STATE.with(|s| s.get()) == BORROWED
}

/// `vfork`: the host's through the vfork gate when the process is in a DC
/// ([`prepare`] says so), else the preload's `fork` ([`crate::hooks::procs::vfork_as_fork`]).
///
/// # Safety
/// Called by C code as libc's `vfork`, with its contract: the child may
/// only exec or `_exit` (anything else is made safe by [`escape`]).
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vfork() -> pid_t {
    // Entry: rsp is 8 mod 16 (the return address). `prepare` and `finish`
    // are called with rsp 0 mod 16. Between the `pop` and the `push`, the
    // return address is in rdx, which `syscall` preserves in both tasks;
    // the vfork gate jumps back to label 2 (r8) in both.
    core::arch::naked_asm!(
        "sub rsp, 8",
        "call {prepare}",
        "add rsp, 8",
        "test eax, eax",
        "jz {slow}",
        "pop rdx",
        "mov eax, {nr}",
        "lea r8, [rip + 2f]",
        "movabs rcx, {gate}",
        "jmp rcx",
        "2:",
        "push rdx",
        "mov rdi, rax",
        "sub rsp, 8",
        "call {finish}",
        "add rsp, 8",
        "ret",
        prepare = sym prepare,
        slow = sym crate::hooks::procs::vfork_as_fork,
        finish = sym finish,
        nr = const libc::SYS_vfork,
        gate = const shim::gatepage::GATE_VFORK,
    )
}

/// Before the host `vfork`: 1 to take it, 0 for the preload's `fork`.
extern "C" fn prepare() -> u32 {
    let fast = state::active()
        && !state::busy()
        && shim::gatepage::mapped()
        && state::has_shim()
        && STATE.with(|s| s.get()) == NONE
        && ESCAPES.load(Ordering::Relaxed) <= BORROWED_EXECS.load(Ordering::Relaxed);
    if fast {
        RESULT.with(|r| r.set(0));
        drop_held(false);
    }
    u32::from(fast)
}

/// After the host `vfork`, in both tasks: `r` is its raw result.
extern "C" fn finish(r: i64) -> pid_t {
    if r == 0 {
        STATE.with(|s| s.set(BORROWED));
        return 0;
    }
    // The parent, once the child exec'd or ended. It left the thread's
    // flags as they were at its exec; what it held is ours to free.
    state::reset_thread_flags();
    let st = STATE.with(|s| s.replace(NONE));
    drop_held(true);
    if r < 0 {
        state::set_errno((-r) as i32);
        return -1;
    }
    let child = r as pid_t;
    let _g = state::enter_init();
    let r = if st == ESCAPED {
        // The child forked the real one and ended: once it is reaped, its
        // own child is the subreaper's, and waits for its binding.
        ESCAPES.fetch_add(1, Ordering::Relaxed);
        crate::gate::reap(child);
        match RESULT.with(|c| c.get()) {
            e if e < 0 => e,
            task => crate::hooks::procs::register_child(task as pid_t, true),
        }
    } else {
        BORROWED_EXECS.fetch_add(1, Ordering::Relaxed);
        crate::hooks::procs::register_child(child, false)
    };
    state::libc_ret(r) as pid_t
}

/// In a borrowed child about to do something other than exec: fork for
/// real. The grandchild, once its grandparent registered it as its child
/// (with an endpoint of its own), returns and goes on; this child hands
/// the grandchild's host pid to the parent and ends.
pub fn escape() {
    let r = crate::hooks::procs::fork_unregistered();
    if r == 0 {
        // The grandchild: its memory is its own; what the borrowed child
        // held is on its stack and will be dropped there.
        STATE.with(|s| s.set(NONE));
        drop_held(false);
        return;
    }
    let v = if r < 0 {
        // SAFETY: reading this thread's errno.
        -(unsafe { *libc::__errno_location() } as i64)
    } else {
        r as i64
    };
    RESULT.with(|c| c.set(v));
    STATE.with(|s| s.set(ESCAPED));
    // SAFETY: ending this task at once, running nothing of the parent's
    // (whose memory this is).
    unsafe { crate::gate::syscall6(libc::SYS_exit_group, [0; 6]) };
    unreachable!("exit_group returned");
}

/// Runs (`run`) or forgets the drops of what a borrowed child held.
fn drop_held(run: bool) {
    HELD.with(|h| {
        for c in h {
            if let (true, Some((p, f))) = (run, c.take()) {
                // SAFETY: registered by `Held::new` with the drop function
                // of its type; the child that held it is gone.
                unsafe { f(p) };
            }
        }
    });
}

/// A value the exec path needs up to the host `execve`. In a borrowed
/// child, whose successful exec never returns, its memory would be lost
/// to the parent: it is registered so that the parent frees it.
pub struct Held<T: 'static> {
    value: Box<T>,
    slot: Option<usize>,
}

/// Drops a `Box<T>` from its address.
///
/// # Safety
/// `p` came from `Box::<T>::into_raw` (or its equivalent) and is dropped once.
unsafe fn drop_box<T>(p: usize) {
    // SAFETY: the caller's contract.
    drop(unsafe { Box::from_raw(p as *mut T) });
}

impl<T: 'static> Held<T> {
    /// Holds `x`.
    pub fn new(x: T) -> Held<T> {
        let value = Box::new(x);
        let slot = if borrowed() {
            let p = &*value as *const T as usize;
            HELD.with(|h| {
                let i = h.iter().position(|c| c.get().is_none())?;
                h[i].set(Some((p, drop_box::<T> as unsafe fn(usize))));
                Some(i)
            })
        } else {
            None
        };
        Held { value, slot }
    }
}

impl<T> std::ops::Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            HELD.with(|h| {
                if let Some(c) = h.get(i) {
                    c.set(None);
                }
            });
        }
    }
}
