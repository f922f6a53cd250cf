//! # tracer — static binaries inside a DC
//!
//! A statically linked program has no dynamic loader, so the preload
//! library cannot serve its system calls. `dvs-exec` runs such a program
//! under this tracer instead:
//!
//! * [`elf`]: a program is static when its ELF image has no `PT_INTERP`.
//! * [`filter`]: the program's process installs a seccomp filter that
//!   returns `SECCOMP_RET_TRACE` for the redirected system calls (the
//!   shim's list, [`shim::redirected`]) and allows everything else, so
//!   only redirected calls stop.
//! * [`spawn`]: the tracer is a process of its own, forked by dvs-exec;
//!   it seizes the program (`PTRACE_SEIZE`, following forks, clones and
//!   execs) before the program's first `execve`.
//! * `run`, `stops`: one ptrace thread owns every tracee. At a seccomp stop
//!   it reads the registers and hands the call to the tracee's worker.
//! * `serve`, `procs`: workers, each bound as a privileged endpoint of
//!   the DC, serve the call through the shim *on behalf of* the tracee's
//!   endpoint, reaching its memory with `process_vm_readv`/`writev`. The
//!   ptrace thread then skips the call with the result in `rax`, or lets
//!   it run natively.
//!
//! * `notify`: the supervisor of the seccomp net of dynamic programs
//!   (`SECCOMP_RET_USER_NOTIF`): redirected calls that bypass the
//!   preload's gate are served by the same workers.
//!
//! Forks are registered with PM (`PmFork` on behalf of the parent; the
//! parent's `fork` returns the child's DC PID), threads get their own
//! endpoint (`PmThread`), execs resolve the program inside the DC root and
//! tell PM (`PmExec`). A traced process that execs a dynamic program stays
//! traced, but its stops run natively: its preload serves its libc calls.

#![warn(missing_docs)]

pub mod elf;
mod error;
pub mod filter;
pub mod net;
mod notify;
mod procs;
mod run;
mod serve;
pub mod spawn;
pub mod stops;
mod tracee;

pub use error::Error;
pub use filter::Filter;
pub use serve::{WORKERS, WORKER_FIRST};
pub use shim::gatepage;
pub use spawn::Tracer;
