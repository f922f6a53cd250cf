//! What the tracer knows about one traced thread.

use dvk::Endpoint;
use std::time::Instant;

/// What a stopped tracee waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A served system call (may block; given up if a fatal signal comes).
    Syscall,
    /// Resolving the program of an exec.
    ExecPath,
    /// Registering a child (`child` is its host tid) with PM.
    Child(i32),
    /// PM learning about an exec (or finding the process first).
    Exec,
}

/// One traced thread.
#[derive(Debug)]
pub(crate) struct Tracee {
    /// Host thread id.
    pub tid: i32,
    /// Host process id.
    pub tgid: i32,
    /// Its DC endpoint (`NONE` while unknown).
    pub ep: Endpoint,
    /// Its worker.
    pub worker: Option<usize>,
    /// Known to the DC (a new child is held stopped until it is).
    pub registered: bool,
    /// Stopped by its first stop (or a signal) while not registered.
    pub held: Option<i32>,
    /// Its first `execve` is dvs-exec's start of the program: it runs as is.
    pub initial_exec: bool,
    /// The current image is dynamic: the preload serves its libc calls,
    /// so its stops run natively.
    pub dynamic: bool,
    /// DC path of the exec in progress (for `PmExec`).
    pub exec_path: Option<Vec<u8>>,
    /// Value to put in `rax` at the next syscall-exit stop.
    pub at_exit: Option<i64>,
    /// Registers at the current seccomp stop.
    pub regs: Option<libc::user_regs_struct>,
    /// A job in progress: its kind, sequence number and start.
    pub waiting: Option<(Waiting, u64, Instant)>,
    /// A fatal signal was seen pending at the previous check.
    pub signal_seen: bool,
    /// The `clone` flags of its last stopped `fork`/`vfork`/`clone`.
    pub clone_flags: Option<u64>,
}

impl Tracee {
    /// A tracee that is not known to the DC yet.
    pub fn new(tid: i32, tgid: i32) -> Tracee {
        Tracee {
            tid,
            tgid,
            ep: Endpoint::NONE,
            worker: None,
            registered: false,
            held: None,
            initial_exec: false,
            dynamic: false,
            exec_path: None,
            at_exit: None,
            regs: None,
            waiting: None,
            signal_seen: false,
            clone_flags: None,
        }
    }
}
