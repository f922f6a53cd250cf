//! # shim — from a system call to MoL requests
//!
//! A pure library: given a decoded Linux x86-64 system call (number and
//! six arguments) of a DC process, it sends the request to the server that
//! owns the call (PM or FS) over M3-IPC and turns the reply into the
//! system call's return value (or `-errno`). It is used in-process by the
//! preload library ([`mem::Local`]) and on behalf of a process by a
//! supervisor ([`mem::Remote`]).
//!
//! Some calls need the embedding to act in the process itself (a host
//! `fork`, an `exec`, reaping a host child, raising `SIGPIPE`); those come
//! back as an [`Action`] other than [`Action::Ret`].

#![warn(missing_docs)]

pub mod elf;
pub mod errno;
mod files;
pub mod gatepage;
pub mod mem;
mod procfs;
mod procs;
pub mod redirected;
pub mod seccomp;
mod sockets;
pub mod sysnames;
mod transfer;
mod xattrs;

use dvk::{Endpoint, Ipc, Message};
use mem::Mem;
use mol_servers::abi::{self, Call};
use std::os::fd::{AsRawFd, OwnedFd};

/// What the embedding must do with a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Return this value (a negative value is `-errno`).
    Ret(i64),
    /// Not redirected: let the host run it.
    Native,
    /// Fork on the host (`vfork`: the program asked for vfork), then call
    /// [`Shim::forked`] in the parent.
    Fork {
        /// `vfork` semantics were requested.
        vfork: bool,
    },
    /// `execve` of a DC path: the embedding runs it on the host (with the
    /// dvs environment kept) and reports success with [`Shim::execed`].
    Exec,
    /// A write hit a pipe without readers: raise `SIGPIPE` in the calling
    /// thread, then return `-EPIPE`.
    SigPipe,
    /// `wait*` collected child `ret`: return `ret` after reaping host task
    /// `host_pid` (the host parent is the calling process).
    Reap {
        /// Value to return.
        ret: i64,
        /// Host pid of the child to reap.
        host_pid: i32,
    },
    /// A redirected call that dvs does not implement yet: report it once
    /// and fail with `ENOSYS`.
    Unsupported(i64),
    /// A `read` whose `n` bytes FS put in the thread's data channel:
    /// read them from host descriptor `fd` (the channel's read end) into
    /// `addr`, then return `n`.
    FromChannel {
        /// The channel's read end.
        fd: i32,
        /// The program's buffer.
        addr: u64,
        /// Bytes waiting in the channel.
        n: usize,
    },
}

/// Smallest `read` that asks FS for the data channel: below it the
/// pipe's extra system call costs about what the copy it saves does.
pub const CHANNEL_MIN: u64 = 16 * 1024;

/// The shim of one thread of a DC process.
pub struct Shim {
    ipc: Ipc,
    /// The process served, when calling on its behalf (supervisor);
    /// `NONE` when the caller is the process itself.
    behalf: Endpoint,
    pid_cache: std::cell::Cell<i32>,
    /// The read end of this thread's data channel (see FS's `channel`):
    /// unset until the first large `read`, then the pipe or none.
    channel: std::cell::OnceCell<Option<OwnedFd>>,
}

impl Shim {
    /// Whether its endpoint was unbound for good (see [`Ipc::was_unbound`]).
    pub fn was_unbound(&self) -> bool {
        self.ipc.was_unbound()
    }

    /// A shim calling as `ipc` itself (in-process).
    pub fn new(ipc: Ipc) -> Shim {
        Shim {
            ipc,
            behalf: Endpoint::NONE,
            pid_cache: std::cell::Cell::new(0),
            channel: std::cell::OnceCell::new(),
        }
    }

    /// A shim calling as privileged `ipc` on behalf of endpoint `ep`.
    pub fn on_behalf(ipc: Ipc, ep: Endpoint) -> Shim {
        Shim {
            ipc,
            behalf: ep,
            pid_cache: std::cell::Cell::new(0),
            // A supervisor cannot read into the program's memory itself.
            channel: std::cell::OnceCell::from(None),
        }
    }

    /// Whether system call `nr` with arguments `a` is a `read` (or a
    /// `recv` without flags or address) large enough for the data channel, which this thread has not tried to
    /// open yet (the embedding then calls [`Shim::open_channel`]).
    pub fn wants_channel(&self, nr: i64, a: &[u64; 6]) -> bool {
        let plain_recv = nr == libc::SYS_recvfrom && a[3] == 0 && a[4] == 0;
        (nr == libc::SYS_read || plain_recv) && a[2] >= CHANNEL_MIN && self.channel.get().is_none()
    }

    /// Opens the data channel with a new pipe (`None`: the embedding could
    /// not make one): FS takes a copy of the write end, this thread keeps
    /// the read end. Without FS's consent reads go on without a channel.
    pub fn open_channel(&self, pipe: Option<(OwnedFd, OwnedFd)>) {
        let chan = pipe.and_then(|(r, w)| {
            let ok = self.value(abi::FS, Call::FsChannel, &[w.as_raw_fd() as u64]);
            ok.is_ok().then_some(r)
        });
        let _ = self.channel.set(chan);
    }

    /// The read end of the data channel, if it is open.
    pub(crate) fn channel_fd(&self) -> Option<i32> {
        self.channel.get()?.as_ref().map(|f| f.as_raw_fd())
    }

    /// The IPC handle the shim calls through.
    pub fn ipc(&self) -> &Ipc {
        &self.ipc
    }

    /// Frees a shim that a vfork child made in its parent's memory: its
    /// mappings and memory go, its descriptors (the child's) are not
    /// closed ([`Ipc::forget_foreign`]).
    pub fn forget_foreign(self) {
        let Shim { ipc, channel, .. } = self;
        ipc.forget_foreign();
        if let Some(Some(fd)) = channel.into_inner() {
            use std::os::fd::IntoRawFd;
            let _ = fd.into_raw_fd();
        }
    }

    /// Gives the IPC handle back (a supervisor re-targets it to another
    /// process with [`Shim::on_behalf`]).
    pub fn into_ipc(self) -> Ipc {
        self.ipc
    }

    /// Sends a request and returns the reply (`Err(errno)` on IPC failure).
    pub(crate) fn call(&self, to: Endpoint, call: Call, args: &[u64]) -> Result<Message, i32> {
        let mut m = abi::request(call, args);
        if self.behalf != Endpoint::NONE {
            m.words_mut()[6] = self.behalf.0 as u32 as u64;
        }
        self.ipc.sendrec(to, &mut m).map_err(errno::of_ipc)?;
        Ok(m)
    }

    /// Sends a request and returns its value.
    pub(crate) fn value(&self, to: Endpoint, call: Call, args: &[u64]) -> Result<i64, i32> {
        abi::result(&self.call(to, call, args)?)
    }

    /// Serves system call `nr` with arguments `a`.
    pub fn syscall(&self, mem: &dyn Mem, nr: i64, a: [u64; 6]) -> Action {
        if let Some(r) = self.file_call(mem, nr, a) {
            return r;
        }
        if let Some(r) = self.proc_call(mem, nr, a) {
            return r;
        }
        if let Some(r) = self.socket_call(mem, nr, a) {
            return r;
        }
        if let Some(r) = self.transfer_call(mem, nr, a) {
            return r;
        }
        if let Some(r) = self.xattr_call(mem, nr, a) {
            return r;
        }
        if sysnames::redirected_unsupported(nr) {
            return Action::Unsupported(nr);
        }
        Action::Native
    }

    /// The parent's half of a host fork: registers child host task
    /// `child_host_pid` with PM; returns the child's PID (or `-errno`).
    pub fn forked(&self, child_host_pid: i32) -> i64 {
        ret(self.value(abi::PM, Call::PmFork, &[child_host_pid as u64, 0]))
    }

    /// Asks PM for an endpoint for new thread `tid` of this process
    /// (bound to it by SYSTASK); returns the endpoint or `-errno`.
    pub fn thread(&self, tid: i32) -> i64 {
        ret(self.value(abi::PM, Call::PmThread, &[tid as u64]))
    }

    /// After a successful `exec` of `path` (the new image calls this): PM
    /// records the command and FS closes the `O_CLOEXEC` descriptors.
    /// Returns whether descriptor 1 is a terminal, or `-errno`.
    pub fn execed(&self, path: &[u8]) -> Result<bool, i32> {
        let m = self.call(
            abi::PM,
            Call::PmExec,
            &[path.as_ptr() as u64, path.len() as u64],
        )?;
        abi::result(&m).map(|_| m.words()[1] == 1)
    }

    /// Execs the program that `spec` (a bincode [`abi::SpawnSpec`]) names
    /// on `node` instead of here: PM moves this process there. On success
    /// the caller must exit at once, without running anything else.
    pub fn rexec(&self, node: i32, spec: &[u8]) -> Result<(), i32> {
        self.value(
            abi::PM,
            Call::PmRexec,
            &[node as u64, spec.as_ptr() as u64, spec.len() as u64],
        )
        .map(|_| ())
    }

    /// The host path of DC path `path` relative to descriptor `dirfd` (for
    /// `execve`): resolved by FS inside the DC root.
    pub fn host_path_at(&self, dirfd: i32, path: &[u8], flags: i32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; abi::PATH_MAX + 1];
        let n = self.value(
            abi::FS,
            Call::FsHostPathAt,
            &[
                dirfd as u64,
                path.as_ptr() as u64,
                path.len() as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                flags as u64,
            ],
        )? as usize;
        if n > buf.len() {
            return Err(libc::ENAMETOOLONG);
        }
        buf.truncate(n);
        Ok(buf)
    }

    /// The host path of DC descriptor `fd` (for `mmap` and `fexecve`).
    pub fn host_path(&self, fd: i32) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; abi::PATH_MAX + 1];
        let n = self.value(
            abi::FS,
            Call::FsHostPath,
            &[fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64],
        )? as usize;
        if n > buf.len() {
            return Err(libc::ENAMETOOLONG);
        }
        buf.truncate(n);
        Ok(buf)
    }
}

/// Turns a result into a system call return value.
pub fn ret(r: Result<i64, i32>) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => -(e as i64),
    }
}
