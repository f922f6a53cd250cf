//! Worker threads: the M3-IPC side of the tracer.
//!
//! A served call may block for a long time in the servers (a `read` on an
//! empty pipe, a `wait4`: deferred replies), so the ptrace thread never
//! makes IPC calls itself. Each tracee (each traced thread) is assigned a
//! worker thread bound as its own privileged endpoint of the DC
//! ([`WORKER_FIRST`]..); the worker calls the servers *on behalf of* the
//! tracee's endpoint (`words[6]`, [`shim::Shim::on_behalf`]) and reaches
//! its memory with `process_vm_readv`/`writev` ([`shim::mem::Remote`]).
//! Results go back to the ptrace thread over a channel, with an eventfd
//! to wake its `poll`. Idle workers are kept and re-targeted to the next
//! tracee, so a fork does not cost a bind.

use crate::procs;
use dvk::{Dvk, Endpoint};
use shim::mem::Remote;
use shim::{Action, Shim};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// First endpoint (`p_nr`) of the tracer's workers. System slots below
/// `FIRST_USER_SLOT` (64) are privileged by default; 0..=6 are the MoL
/// servers, the launcher and the signal forwarder.
pub const WORKER_FIRST: i32 = 20;
/// Endpoints of the tracer: the first (from the end of the range the pool
/// takes) is the ptrace thread's own, for the calls it serves itself
/// ([`Pool::own_endpoint`]); each of the others is a worker's, hence
/// `WORKERS - 1` threads can be traced at once.
pub const WORKERS: usize = 40;

/// What a worker is asked to do for a tracee.
#[derive(Debug)]
pub(crate) enum JobKind {
    /// Serve the tracee as endpoint `ep` from now on (no reply).
    Target(Endpoint),
    /// Serve a stopped system call.
    Syscall {
        /// Number.
        nr: i64,
        /// Arguments.
        args: [u64; 6],
    },
    /// Resolve the program of an `execve`/`execveat` and place its host
    /// path on the tracee's stack.
    ExecPath(procs::ExecRequest),
    /// Register host child `child` of the tracee with PM (`PmFork`).
    Fork {
        /// Host pid of the child.
        child: i32,
    },
    /// Give new thread `tid` of the tracee an endpoint (`PmThread`).
    Thread {
        /// Host tid of the thread.
        tid: i32,
    },
    /// The tracee exec'd `path` (`PmExec`).
    Execed {
        /// DC path of the new image.
        path: Vec<u8>,
    },
    /// Find the DC PID and endpoint of host process `host_pid` (`PmPs`).
    Lookup {
        /// Host pid.
        host_pid: i32,
    },
    /// Serve and answer a seccomp notification of the net.
    Notify(crate::notify::Job),
}

/// A worker's answer.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The shim's verdict on a system call.
    Action(Action),
    /// Where the host path was written (None: use the path as it is), and
    /// the DC path of the program.
    ExecPath(Result<(Option<u64>, Vec<u8>), i32>),
    /// The child's DC PID and endpoint.
    Forked(Result<(i32, Endpoint), i32>),
    /// The new thread's endpoint.
    Thread(Result<Endpoint, i32>),
    /// PM took the exec.
    Execed,
    /// DC PID and endpoint of a process.
    Lookup(Result<(i32, Endpoint), i32>),
    /// A notification was answered.
    Notified,
}

/// A finished job.
#[derive(Debug)]
pub(crate) struct Done {
    /// The worker.
    pub worker: usize,
    /// The tracee (host tid) the job was for.
    pub tid: i32,
    /// Sequence number of the job.
    pub seq: u64,
    /// The answer.
    pub reply: Reply,
}

struct Job {
    tid: i32,
    seq: u64,
    kind: JobKind,
}

struct Slot {
    tx: Sender<Job>,
    owner: Option<i32>,
    busy: bool,
}

/// The workers and the channel their results come back on.
pub(crate) struct Pool {
    socket: PathBuf,
    dcid: i32,
    /// Endpoints from the top of the range down.
    down: bool,
    slots: Vec<Slot>,
    done_tx: Sender<Done>,
    /// Finished jobs.
    pub done_rx: Receiver<Done>,
    wake: Arc<OwnedFd>,
}

impl Pool {
    /// A pool for DC `dcid` of the daemon at `socket` (workers' endpoints
    /// from the top of the range down with `down`); workers write to
    /// `wake` (an eventfd) when they finish a job.
    pub fn new(socket: PathBuf, dcid: i32, down: bool, wake: Arc<OwnedFd>) -> Pool {
        let (done_tx, done_rx) = channel();
        Pool {
            socket,
            dcid,
            down,
            slots: Vec::new(),
            done_tx,
            done_rx,
            wake,
        }
    }

    /// A worker for tracee `tid`, serving it as endpoint `ep`; `None` if
    /// all workers are taken.
    pub fn acquire(&mut self, tid: i32, ep: Endpoint) -> Option<usize> {
        let w = match self.slots.iter().position(|s| s.owner.is_none() && !s.busy) {
            Some(w) => w,
            None if self.slots.len() < WORKERS - 1 => self.spawn()?,
            None => return None,
        };
        self.slots[w].owner = Some(tid);
        let _ = self.slots[w].tx.send(Job {
            tid,
            seq: 0,
            kind: JobKind::Target(ep),
        });
        Some(w)
    }

    /// The tracee of worker `w` is gone. A worker still inside a call
    /// (abandoned) becomes free when the call returns.
    pub fn release(&mut self, w: usize) {
        if let Some(s) = self.slots.get_mut(w) {
            s.owner = None;
        }
    }

    /// Sends a job to worker `w`.
    pub fn submit(&mut self, w: usize, tid: i32, seq: u64, kind: JobKind) {
        if let Some(s) = self.slots.get_mut(w) {
            s.busy = true;
            if s.tx.send(Job { tid, seq, kind }).is_err() {
                tracing::error!(worker = w, "tracer worker is gone");
            }
        }
    }

    /// Books a finished job; false if its tracee no longer owns the worker
    /// (the result must be dropped).
    pub fn finished(&mut self, d: &Done) -> bool {
        match self.slots.get_mut(d.worker) {
            Some(s) => {
                s.busy = false;
                s.owner == Some(d.tid)
            }
            None => false,
        }
    }

    /// Endpoint `i` of the pool's range (0: the ptrace thread's).
    fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint(if self.down {
            WORKER_FIRST + (WORKERS - 1 - i) as i32
        } else {
            WORKER_FIRST + i as i32
        })
    }

    /// Binds the calling thread (the ptrace thread) as the pool's first
    /// endpoint, to serve calls on behalf of tracees itself.
    pub fn own_endpoint(&self) -> Option<Shim> {
        bind(&self.socket, self.dcid, self.endpoint(0))
    }

    fn spawn(&mut self) -> Option<usize> {
        let w = self.slots.len();
        let (tx, rx) = channel();
        let socket = self.socket.clone();
        let dcid = self.dcid;
        let done = self.done_tx.clone();
        let wake = self.wake.clone();
        let ep = self.endpoint(w + 1);
        let r = std::thread::Builder::new()
            .name(format!("tracer-w{w}"))
            .spawn(move || worker(socket, dcid, ep, w, rx, done, wake));
        match r {
            Ok(_) => {
                self.slots.push(Slot {
                    tx,
                    owner: None,
                    busy: false,
                });
                Some(w)
            }
            Err(e) => {
                tracing::error!(%e, "cannot start a tracer worker");
                None
            }
        }
    }
}

/// Does for tracee `tid`, as `s`, one of the jobs that are a single call
/// to the servers (a system call, the resolution of an exec's program,
/// `PmExec`); `None` for the others. Workers and the ptrace thread
/// ([`crate::run`]) both do them through here.
pub(crate) fn direct(s: &Shim, tid: i32, kind: &JobKind) -> Option<Reply> {
    let mem = Remote { pid: tid };
    Some(match kind {
        JobKind::Syscall { nr, args } => Reply::Action(s.syscall(&mem, *nr, *args)),
        JobKind::ExecPath(req) => Reply::ExecPath(procs::exec_path(s, &mem, req)),
        JobKind::Execed { path } => {
            if let Err(errno) = s.execed(path) {
                tracing::warn!(errno, "PM did not accept an exec");
            }
            Reply::Execed
        }
        _ => return None,
    })
}

/// The answer when the worker could not bind its endpoint.
fn failed(kind: &JobKind, e: i32) -> Reply {
    match kind {
        JobKind::Syscall { .. } | JobKind::Target(_) => Reply::Action(Action::Ret(-(e as i64))),
        JobKind::ExecPath(_) => Reply::ExecPath(Err(e)),
        JobKind::Fork { .. } => Reply::Forked(Err(e)),
        JobKind::Thread { .. } => Reply::Thread(Err(e)),
        JobKind::Execed { .. } => Reply::Execed,
        JobKind::Lookup { .. } => Reply::Lookup(Err(e)),
        JobKind::Notify(j) => {
            crate::notify::answer(&j.listener, j.n.id, crate::notify::Answer::Ret(-(e as i64)));
            Reply::Notified
        }
    }
}

/// The next job: looked for without sleeping for [`crate::run::SPIN`]
/// first (a traced program's next call is usually that close), then
/// waited for. `None` once the pool is gone.
fn next_job(rx: &Receiver<Job>) -> Option<Job> {
    let start = std::time::Instant::now();
    while start.elapsed() < crate::run::SPIN {
        match rx.try_recv() {
            Ok(job) => return Some(job),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
    rx.recv().ok()
}

/// Binds the calling thread as tracer endpoint `ep` of DC `dcid`: a shim
/// to be pointed at a tracee's endpoint. PM and FS, which every served
/// call reaches, are mapped in the same round trip.
fn bind(socket: &std::path::Path, dcid: i32, ep: Endpoint) -> Option<Shim> {
    let servers = [mol_servers::abi::PM, mol_servers::abi::FS];
    match Dvk::tbind_at_with_peers(socket, dcid, ep, &servers) {
        Ok(ipc) => Some(Shim::on_behalf(ipc, Endpoint::NONE)),
        Err(e) => {
            tracing::error!(endpoint = %ep, %e, "a tracer thread cannot bind");
            None
        }
    }
}

fn worker(
    socket: PathBuf,
    dcid: i32,
    me: Endpoint,
    index: usize,
    rx: Receiver<Job>,
    done: Sender<Done>,
    wake: Arc<OwnedFd>,
) {
    let mut shim = bind(&socket, dcid, me);
    let mut behalf = Endpoint::NONE;
    while let Some(job) = next_job(&rx) {
        let reply = match (&mut shim, job.kind) {
            (s, JobKind::Target(ep)) => {
                behalf = ep;
                if let Some(old) = s.take() {
                    *s = Some(Shim::on_behalf(old.into_ipc(), ep));
                }
                continue;
            }
            (None, kind) => failed(&kind, libc::ENOSYS),
            (s, JobKind::Notify(j)) => {
                // Booked as done before the answer lets the caller run:
                // its next call, at once, then finds this worker free
                // (the ptrace thread takes finished jobs before new
                // notifications) instead of starting another.
                let a = crate::notify::serve_call(s, &mut behalf, &j);
                let finished = done.send(Done {
                    worker: index,
                    tid: job.tid,
                    seq: job.seq,
                    reply: Reply::Notified,
                });
                crate::notify::answer(&j.listener, j.n.id, a);
                if finished.is_err() {
                    break;
                }
                ring(&wake);
                continue;
            }
            (Some(s), JobKind::Fork { child }) => Reply::Forked(procs::fork(s, behalf, child)),
            (Some(s), JobKind::Thread { tid }) => {
                let r = s.thread(tid);
                Reply::Thread(if r < 0 {
                    Err(-r as i32)
                } else {
                    Ok(Endpoint(r as i32))
                })
            }
            (Some(s), JobKind::Lookup { host_pid }) => Reply::Lookup(procs::lookup(s, host_pid)),
            (Some(s), kind) => {
                direct(s, job.tid, &kind).unwrap_or_else(|| failed(&kind, libc::ENOSYS))
            }
        };
        if done
            .send(Done {
                worker: index,
                tid: job.tid,
                seq: job.seq,
                reply,
            })
            .is_err()
        {
            break;
        }
        ring(&wake);
    }
}

/// Wakes the ptrace thread's `poll`: a job finished.
fn ring(wake: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writing 8 bytes from a local buffer to our eventfd.
    unsafe { libc::write(wake.as_raw_fd(), one.as_ptr().cast(), 8) };
}
