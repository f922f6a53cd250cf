//! `vfork` in a DC, without copying the parent.
//!
//! A shell runs a command with `vfork` + `execve`, and so does Python's
//! `subprocess`: the child borrows the parent's memory and stack until it
//! execs, and the parent sleeps meanwhile. Run as a `fork` (what the
//! preload did before), every command cost a copy of the parent's page
//! tables, copy-on-write faults in both processes and, at the child's
//! `execve`, the teardown of that copy — with TLB shootdowns to the other
//! CPUs each time.
//!
//! Here `vfork` is the host's, through the gate page's vfork entry
//! ([`shim::gatepage::GATE_VFORK`]; a hook written in Rust could not
//! return twice through one stack frame, so [`vfork`] is assembly that
//! keeps the return address in a register), and the child starts
//! *borrowed*: it has no endpoint of its own and acts as its parent,
//! which is right for the exec family ([`crate::state::enter_exec`]): the
//! path is resolved in the parent's directory and root, which are still
//! the child's. When the kernel wakes the parent at the child's exec, the
//! parent registers the child with PM (`PmFork`, as after a `fork`) while
//! the new image waits for its binding.
//!
//! Any other hooked call (`dup2`, `close`, `chdir`... as Python's child
//! makes), or an exec that needs a process of its own (a static program,
//! another node), first *attaches* the child ([`attach_child`]): it
//! registers itself through its parent's endpoint and binds an endpoint
//! of its own, in the parent's memory. When the parent wakes up it takes
//! its own endpoint back and frees the child's (mappings and memory, not
//! the child's descriptors). Signal dispositions a child changes are its
//! own in the kernel; the preload's table of handlers is the parent's and
//! stays as it is ([`crate::interrupts::sigaction`]).
//!
//! The child and its sleeping parent share memory, thread-local storage
//! included: the child's outcome waits for the parent in [`STATE`], and
//! whatever the child allocated and still held when it exec'd (its
//! environment, the host path...) is freed by the parent ([`Held`]).

use crate::state;
use libc::pid_t;
use std::cell::Cell;

/// No vfork child on this thread's memory.
const NONE: u8 = 0;
/// A borrowed child is running (set by the child; what the parent finds
/// when it exec'd or ended without another hooked call).
const BORROWED: u8 = 1;
/// The child attached: [`RESULT`] is its DC pid, [`CHILD_SHIM`] its shim.
const ATTACHED: u8 = 2;
/// PM refused the child, which ended: [`RESULT`] is `-errno`.
const REFUSED: u8 = 3;

/// Values a borrowed child may hold at once ([`Held`]).
const HELD_MAX: usize = 16;

/// A held value: its address and the drop function of its type.
type HeldSlot = Cell<Option<(usize, unsafe fn(usize))>>;

thread_local! {
    /// The vfork child's state (see the module comment).
    static STATE: Cell<u8> = const { Cell::new(NONE) };
    /// The attached child's DC pid, or `-errno`.
    static RESULT: Cell<i64> = const { Cell::new(0) };
    /// The parent's shim, taken back when it wakes up.
    static PARENT_SHIM: Cell<usize> = const { Cell::new(0) };
    /// The attached child's shim, freed by the parent.
    static CHILD_SHIM: Cell<usize> = const { Cell::new(0) };
    /// What a borrowed child holds: (address, drop function) pairs.
    static HELD: [HeldSlot; HELD_MAX] = const { [const { Cell::new(None) }; HELD_MAX] };
}

/// Whether the calling thread is a borrowed vfork child.
pub fn borrowed() -> bool {
    STATE.with(|s| s.get()) == BORROWED
}

/// Whether the calling thread is a vfork child, borrowed or attached (it
/// runs in its parent's memory).
pub fn in_child() -> bool {
    matches!(STATE.with(|s| s.get()), BORROWED | ATTACHED)
}

/// `vfork`: the host's through the vfork gate when the process is in a DC
/// ([`prepare`] says so), else the preload's `fork` ([`crate::hooks::procs::vfork_as_fork`]).
///
/// # Safety
/// Called by C code as libc's `vfork`, with its contract: the child may
/// only exec or `_exit` (anything else is made safe by [`attach_child`]).
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
        && STATE.with(|s| s.get()) == NONE;
    let Some(shim) = fast.then(state::shim_ptr).flatten() else {
        return 0;
    };
    PARENT_SHIM.with(|c| c.set(shim));
    CHILD_SHIM.with(|c| c.set(0));
    RESULT.with(|r| r.set(0));
    drop_held(false);
    1
}

/// After the host `vfork`, in both tasks: `r` is its raw result.
extern "C" fn finish(r: i64) -> pid_t {
    if r == 0 {
        STATE.with(|s| s.set(BORROWED));
        return 0;
    }
    // The parent, once the child exec'd or ended. The child left the
    // thread's flags and shim as they were at its exec; what it held and
    // its own shim are ours to free.
    state::reset_thread_flags();
    state::set_shim_ptr(PARENT_SHIM.with(|c| c.get()));
    let st = STATE.with(|s| s.replace(NONE));
    drop_held(true);
    let child_shim = CHILD_SHIM.with(|c| c.replace(0));
    if child_shim != 0 {
        // SAFETY: the child's shim, leaked by `state::attach_vfork_child`
        // and used by no one since the child exec'd or ended.
        unsafe { state::free_vfork_shim(child_shim) };
    }
    if r < 0 {
        state::set_errno((-r) as i32);
        return -1;
    }
    let child = r as pid_t;
    let _g = state::enter_init();
    let r = match st {
        ATTACHED => RESULT.with(|c| c.get()),
        REFUSED => {
            crate::gate::reap(child);
            RESULT.with(|c| c.get())
        }
        _ => crate::hooks::procs::register_child(child),
    };
    state::libc_ret(r) as pid_t
}

/// In a borrowed child about to do what needs a process of its own:
/// registers it with PM through the parent's endpoint (`PmFork`, as the
/// parent would after a `fork`) and binds its own endpoint. A child PM
/// refuses, or that cannot bind, ends.
pub fn attach_child() {
    let _g = state::enter_init();
    // SAFETY: getpid has no arguments.
    let me = unsafe { crate::gate::syscall6(libc::SYS_getpid, [0; 6]) } as pid_t;
    let r = state::with_shim(|s| s.forked(me)).unwrap_or(-(libc::ENOSYS as i64));
    RESULT.with(|c| c.set(r));
    if r < 0 {
        STATE.with(|s| s.set(REFUSED));
        // SAFETY: ending this task at once, running nothing of the
        // parent's (whose memory this is).
        unsafe { crate::gate::syscall6(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]) };
    }
    match state::attach_vfork_child() {
        Ok(p) => {
            CHILD_SHIM.with(|c| c.set(p));
            STATE.with(|s| s.set(ATTACHED));
        }
        Err(e) => {
            eprintln!("dvs: vfork child could not attach to its DC: {e}");
            // Registered: PM sees it end.
            STATE.with(|s| s.set(ATTACHED));
            // SAFETY: as above.
            unsafe { crate::gate::syscall6(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]) };
        }
    }
}

/// Stack of a child started by [`spawn`].
const SPAWN_STACK: usize = 256 * 1024;

/// What [`spawn_entry`] runs in the child.
struct SpawnArgs<'a> {
    child: &'a mut dyn FnMut(),
    /// The caller's signal mask, which the child gets back.
    mask: libc::sigset_t,
}

/// Runs `child` in a new process that borrows this one's memory until it
/// execs or ends, on a stack of its own, as glibc's `posix_spawn` does
/// (a Rust function cannot return twice through `vfork`): the child runs
/// borrowed as a [`vfork`] child does, with no handler of the caller's
/// (dispositions set to a handler become the default), and must exec or
/// `_exit` (if `child` returns, the child exits 127). Returns the child's
/// DC pid, or -1 with `errno`; `None` when this process cannot (the
/// caller forks instead).
pub fn spawn(child: &mut dyn FnMut()) -> Option<pid_t> {
    if prepare() == 0 {
        return None;
    }
    // SAFETY: an anonymous private mapping of our own.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SPAWN_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        PARENT_SHIM.with(|c| c.set(0));
        return None;
    }
    // SAFETY: zeroed sigsets are valid; filling and swapping this thread's
    // mask: no handler of ours may run in the child before it resets them.
    let mut args = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut mask);
        SpawnArgs { child, mask }
    };
    // SAFETY: gettid has no arguments.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    // The net lets this thread's clone run while it holds a fork slot.
    let slot = shim::gatepage::fork_enter(tid);
    // SAFETY: glibc's clone runs `spawn_entry(&mut args)` in the child on
    // the top of `stack`, which stays mapped until the child exec'd or
    // ended (CLONE_VFORK: the call returns then); `args` lives on this
    // frame across the call.
    let r = unsafe {
        libc::clone(
            spawn_entry,
            stack.cast::<u8>().add(SPAWN_STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut SpawnArgs<'_>).cast(),
        )
    };
    // SAFETY: reading this thread's errno right after the call.
    let e = unsafe { *libc::__errno_location() };
    if let Some(s) = slot {
        shim::gatepage::fork_leave(s);
    }
    // SAFETY: the child is gone from the stack; back to the caller's mask.
    unsafe {
        libc::munmap(stack, SPAWN_STACK);
        libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
    }
    Some(finish(if r < 0 { -(e as i64) } else { r as i64 }))
}

/// The child of [`spawn`], on its own stack.
extern "C" fn spawn_entry(arg: *mut libc::c_void) -> libc::c_int {
    STATE.with(|s| s.set(BORROWED));
    // SAFETY: `arg` is the parent's `SpawnArgs`, alive while it waits for
    // this child.
    let args = unsafe { &mut *arg.cast::<SpawnArgs<'_>>() };
    for sig in 1..=64 {
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying, then resetting, this child's own disposition
        // (the kernel's table is the child's; the preload's is not touched).
        unsafe {
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
    }
    // SAFETY: restoring the caller's mask in this child.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut()) };
    (args.child)();
    // SAFETY: ending the child, running nothing of the parent's.
    unsafe { libc::_exit(127) }
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

/// A value the exec path needs up to the host `execve`. In a vfork child
/// (borrowed or attached), whose successful exec never returns, its
/// memory would be lost to the parent: it is registered so that the
/// parent frees it.
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
        let slot = if in_child() {
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
