//! The MoL call protocol: how a system call travels as an M3-IPC message
//! from a DC process (the shim) to the server that owns it, and back.
//!
//! A request is a `sendrec` to the owning server with
//! * `m_type` = the [`Call`] number,
//! * `words()[0..6]` = the arguments, in the order of the Linux system
//!   call unless the call's documentation says otherwise,
//! * `words()[6]` = the endpoint the call is made *for* when a privileged
//!   proxy (SYSTASK's supervisor) calls on behalf of a process; 0 otherwise.
//!
//! Pointers are addresses in the caller's address space; the server moves
//! the data with `vcopy` while the caller is blocked in `sendrec`. A path
//! argument is a pointer and a length (without the terminating NUL).
//!
//! The reply has `m_type` = 0 on success or a negative Linux `errno`, and
//! `words()[0]` = the return value; further words carry extra results.

use dvk::{Endpoint, Message};

/// The process manager.
pub const PM: Endpoint = Endpoint(0);
/// The file-system server.
pub const FS: Endpoint = Endpoint(1);
/// The I/O watcher of FS: a privileged task that turns host-fd readiness
/// into notifications to FS.
pub const FS_WATCH: Endpoint = Endpoint(3);
/// First endpoint (`p_nr`) of user processes, handed out by PM.
pub const FIRST_USER_SLOT: i32 = 64;

/// Where a DC process tells SYSTASK which of its signal handlers restart
/// interrupted calls (`SA_RESTART`): a `u64` mask (bit `sig - 1`) at
/// [`GATE_RESTARTS`] in its gate data page (`shim::gatepage`), valid when
/// the page starts with [`GATE_MAGIC`]. A signal PM sends to a process
/// whose handler restarts calls does not end its blocking call.
pub const GATE_DATA: u64 = 0x6476_7300_1000;
/// First word of an initialised gate data page.
pub const GATE_MAGIC: u64 = u64::from_le_bytes(*b"dvsgate1");
/// Offset of the `SA_RESTART` mask in the gate data page.
pub const GATE_RESTARTS: usize = 96;

/// The PID of the DC's init (PM itself answers for it).
pub const INIT_PID: i32 = 1;

/// In `SysKill`'s reply (word 2): the signal stops the task.
pub const STOPS: u64 = 1;
/// In `SysKill`'s reply (word 2): the signal continues the task.
pub const CONTINUES: u64 = 2;

/// A program to start on a node (`SysSpawn`). Its `DVS_SOCKET` is set to
/// the node's daemon.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SpawnSpec {
    /// Host path of the program.
    pub prog: Vec<u8>,
    /// Its arguments, `argv[0]` first.
    pub argv: Vec<Vec<u8>>,
    /// Its environment (`NAME=value`).
    pub envp: Vec<Vec<u8>>,
    /// Its host working directory.
    pub cwd: Vec<u8>,
    /// The signals it starts with ignored and blocked, as the `execve`
    /// that starts it keeps them.
    pub signals: crate::spawn::SignalState,
}

/// The SYSTASK of node `n`.
pub fn systask(node: i32) -> Endpoint {
    Endpoint::systask(node)
}

macro_rules! calls {
    ($( $(#[$doc:meta])* $name:ident = $num:expr, )*) => {
        /// A MoL call number (`m_type` of a request).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum Call { $( $(#[$doc])* $name = $num, )* }

        impl Call {
            /// Decodes an `m_type`.
            pub fn from_i32(v: i32) -> Option<Call> {
                match v { $( $num => Some(Call::$name), )* _ => None }
            }
            /// Name for diagnostics.
            pub fn name(self) -> &'static str {
                match self { $( Call::$name => stringify!($name), )* }
            }
        }
    };
}

calls! {
    // ------------------------------------------------------------ PM
    /// `[host_pid, parent_pid, node, name, len]` from dvs-exec: registers
    /// the first process of a run, which runs on `node` (named `name` in
    /// the process table when that is another node); returns its PID and
    /// (word 1) its endpoint.
    PmSpawn = 0x100,
    /// `[child_host_pid, flags]`: the caller has forked; returns the
    /// child's PID. `flags` bit 0: the child is a thread sharing the fd
    /// table (`CLONE_FILES`).
    PmFork = 0x101,
    /// `[path, len]`: the caller has successfully exec'd `path`. Word 1
    /// of the reply is 1 if its descriptor 1 is a terminal.
    PmExec = 0x102,
    /// `[pid, options]` (`wait4`): returns the PID; `words[1]` the wait
    /// status, `words[2]` the host pid to reap.
    PmWait4 = 0x103,
    /// Returns the caller's PID.
    PmGetpid = 0x104,
    /// Returns the caller's parent PID.
    PmGetppid = 0x105,
    /// `[pid, sig]` (`kill`).
    PmKill = 0x106,
    /// `[pid, pgid]` (`setpgid`).
    PmSetpgid = 0x107,
    /// `[pid]` (`getpgid`).
    PmGetpgid = 0x108,
    /// `setsid`.
    PmSetsid = 0x109,
    /// `[pid]` (`getsid`).
    PmGetsid = 0x10a,
    /// `[buf, len]`: writes the process table (JSON) into `buf`; returns
    /// its full length (call again with a larger buffer if it did not fit).
    PmPs = 0x10b,
    /// `[pid]`: the status of a process that ended, for dvs-exec (deferred
    /// until it ends); returns the wait status.
    PmWaitExit = 0x10c,
    /// `[pgid]`: sets the foreground process group of the console.
    PmSetFg = 0x10d,
    /// `[sig]`: signals the foreground process group (Ctrl-C at the console).
    PmSignalFg = 0x10e,
    /// Returns the foreground process group.
    PmGetFg = 0x10f,
    /// `[host_tid]`: a new thread of the caller's process needs its own
    /// endpoint (it shares the process's PID and descriptor table).
    PmThread = 0x110,
    /// `[node, spec, len]`: the caller execs a program on `node` (a bincode
    /// [`SpawnSpec`] in the caller). The process moves there, keeping its
    /// PID and descriptors: once PM answers, the caller exits at once
    /// (`_exit(0)`), and the move completes when its task is gone.
    PmRexec = 0x111,
    /// `[pid]`: the endpoint of DC process `pid`, for `pidfd_open`;
    /// `words[1]` is 1 if the process is a zombie.
    PmEndpointOf = 0x112,
    /// `[host_pid]`: the PID of the live DC process whose task on the
    /// caller's node is host task `host_pid` (a `/proc/<pid>` directory
    /// given to `pidfd_send_signal`); `ESRCH` if there is none.
    PmPidOfHost = 0x113,

    // ------------------------------------------------------- SYSTASK
    /// From PM: `[host_tid, ep]` binds a local task to `ep` (a thread id
    /// binds that thread only).
    SysBind = 0x300,
    /// From PM: `[host_pid, sig]` sends a host signal; word 1 of the reply
    /// is 1 if the task has a handler for it that does not restart calls
    /// (see [`GATE_DATA`]): its blocking call is to end.
    SysKill = 0x301,
    /// From PM: `[host_pid]` the wait status of a task that ended (read
    /// before it is reaped); error `ESRCH` if it is gone.
    SysExitStatus = 0x302,
    /// From PM: `[host_pid]` reaps a task whose host parent is this node's
    /// subreaper.
    SysReap = 0x303,
    /// From a launcher: `[spec, len]` forks a program on this node, held
    /// before its `execve` until `SysGo`; `spec` is a bincode
    /// [`SpawnSpec`] in the caller. Returns the host pid.
    SysSpawn = 0x304,
    /// From a launcher: `[host_pid]` lets a program held by `SysSpawn` run.
    SysGo = 0x305,
    /// From PM: `[host_pid]` the host state of a task: word 0 its CPU
    /// ticks, word 1 its state letter.
    SysStat = 0x306,
    /// From PM: a free process slot of this node (SLOTS), as the endpoint
    /// to bind a new task of this node to; `EAGAIN` if none comes in time.
    SysSlot = 0x307,
    /// From PM: `[ep]` the task bound as `ep` on this node is gone: its
    /// slot is free again.
    SysRelease = 0x308,
    /// `[buf, len]`: this node's SLOTS view as JSON
    /// ([`crate::slots_group::SlotsStatus`]); returns the full length.
    SysSlots = 0x309,

    // ------------------------------------------------------------ FS
    /// `[dirfd, path, len, flags, mode]`: returns the new descriptor.
    FsOpenat = 0x200,
    /// `[fd]`.
    FsClose = 0x201,
    /// `[fd, buf, count, channel]`: returns the bytes read. With `channel`
    /// [`READ_CHANNEL`] or [`RECV_CHANNEL`] FS may put them in the caller's
    /// data channel ([`Call::FsChannel`]) instead of its buffer: the
    /// result then has [`VIA_CHANNEL`] set.
    FsRead = 0x202,
    /// `[fd, buf, count]`: returns the bytes written.
    FsWrite = 0x203,
    /// `[fd, buf, count, offset]`.
    FsPread = 0x204,
    /// `[fd, buf, count, offset]`.
    FsPwrite = 0x205,
    /// `[fd, iov, iovcnt, offset or -1]`.
    FsReadv = 0x206,
    /// `[fd, iov, iovcnt, offset or -1]`.
    FsWritev = 0x207,
    /// `[fd, offset, whence]`: returns the new offset.
    FsLseek = 0x208,
    /// `[dirfd, path, len, statbuf, flags]` (`newfstatat`; `fstat` is an
    /// empty path with `AT_EMPTY_PATH`).
    FsFstatat = 0x209,
    /// `[dirfd, path, len, flags, mask, statxbuf]`.
    FsStatx = 0x20a,
    /// `[dirfd, path, len, mode, flags]`.
    FsFaccessat = 0x20b,
    /// `[path, len, length]`.
    FsTruncate = 0x20c,
    /// `[fd, length]`.
    FsFtruncate = 0x20d,
    /// `[fd, datasync]`.
    FsFsync = 0x20e,
    /// `[dirfd, path, len, mode, flags]` (`fchmod` is an empty path with `AT_EMPTY_PATH`).
    FsFchmodat = 0x20f,
    /// `[dirfd, path, len, uid, gid, flags]`.
    FsFchownat = 0x210,
    /// `[mask]`: returns the previous mask.
    FsUmask = 0x211,
    /// `[dirfd, path, len, times (2 timespecs) or 0, flags]`. An empty
    /// path means `dirfd` itself (`futimens`, i.e. `utimensat(fd, NULL, ..)`).
    FsUtimensat = 0x212,
    /// `[dirfd, path, len, mode]`.
    FsMkdirat = 0x213,
    /// `[dirfd, path, len, flags]`.
    FsUnlinkat = 0x214,
    /// `[olddirfd, oldpath, oldlen | newlen << 32, newdirfd, newpath, flags]`.
    FsRenameat2 = 0x215,
    /// `[olddirfd, oldpath, oldlen | newlen << 32, newdirfd, newpath, flags]`.
    FsLinkat = 0x216,
    /// `[target, targetlen | pathlen << 32, newdirfd, path]`.
    FsSymlinkat = 0x217,
    /// `[dirfd, path, len, buf, bufsize]`: returns the bytes placed.
    FsReadlinkat = 0x218,
    /// `[fd, buf, count]`: returns the bytes placed.
    FsGetdents64 = 0x219,
    /// `[path, len]`.
    FsChdir = 0x21a,
    /// `[fd]`.
    FsFchdir = 0x21b,
    /// `[buf, size]`: returns the length including the NUL.
    FsGetcwd = 0x21c,
    /// `[fd]`: returns the new descriptor.
    FsDup = 0x21d,
    /// `[oldfd, newfd, flags]` (`dup2` is `dup3` with the `EINVAL` check skipped: flags bit 31).
    FsDup3 = 0x21e,
    /// `[fd, cmd, arg]`.
    FsFcntl = 0x21f,
    /// `[flags]`: returns the read end; `words[1]` the write end.
    FsPipe2 = 0x220,
    /// `[fds (struct pollfd array), nfds, timeout_ms or -1]`: returns the
    /// number of ready descriptors; the `revents` are written back.
    FsPoll = 0x221,
    /// `[fd, request, arg]`: `TCGETS`, `TCSETS[WF]`, `TIOCGWINSZ`,
    /// `TIOCSWINSZ`, `FIONREAD`, `FIONBIO`, `FIOCLEX`, `FIONCLEX`;
    /// `TIOCGPGRP`/`TIOCSPGRP` only check that `fd` is a terminal (the
    /// foreground group is PM's: `PmGetFg`/`PmSetFg`). `ENOTTY` otherwise.
    FsIoctl = 0x222,
    /// `[fd, buf, len]`: the host path the descriptor refers to (for
    /// `mmap` of a DC file and for `exec` of a descriptor), without NUL;
    /// returns its full length (only the first `len` bytes are written:
    /// call again with a larger buffer if it did not fit). `EINVAL` for
    /// descriptors without a host file (pipes).
    FsHostPath = 0x223,
    /// `[dirfd, path, len, buf, bufsize, flags]`: the host path of a DC
    /// path (resolved in the DC root, following a final symlink unless
    /// `AT_SYMLINK_NOFOLLOW`), as [`Call::FsHostPath`].
    FsHostPathAt = 0x224,
    /// `[fd_in, off_in or -1, fd_out, off_out or -1, len, flags]`
    /// (`copy_file_range` between files; the shim updates the offsets).
    FsCopyFileRange = 0x225,
    /// `[flags]` (`epoll_create1`): returns the new descriptor.
    FsEpollCreate = 0x226,
    /// `[epfd, op, fd, events, data]` (`epoll_ctl`).
    FsEpollCtl = 0x227,
    /// `[epfd, events (struct epoll_event array), maxevents, timeout_ms or
    /// -1]` (`epoll_wait`): returns the number of events written.
    FsEpollWait = 0x228,
    /// `[first, last, flags]` (`close_range`; `CLOSE_RANGE_CLOEXEC` marks
    /// instead of closing).
    FsCloseRange = 0x229,
    /// `[dirfd, path, len, mode, dev]` (`mknodat`: FIFOs, sockets and
    /// regular files; device nodes need privileges the DC does not have).
    FsMknodat = 0x22a,
    /// `[fd, mode, offset, len]` (`fallocate`).
    FsFallocate = 0x22b,
    /// `[fd, operation]` (`flock`).
    FsFlock = 0x22c,
    /// `[domain, type, protocol, pid]` (`socket`, `AF_UNIX` only; `pid` is
    /// the caller's DC PID, for `SO_PEERCRED`): returns the descriptor.
    FsSocket = 0x22d,
    /// `[domain, type, protocol, pid]` (`socketpair`): returns the first
    /// descriptor; `words[1]` the second.
    FsSocketpair = 0x22e,
    /// `[fd, addr, addrlen]` (`bind`; `addr` a `struct sockaddr_un`).
    FsBind = 0x22f,
    /// `[fd, backlog, pid]` (`listen`).
    FsListen = 0x230,
    /// `[fd, addr or 0, addrcap, flags]` (`accept4`): returns the new
    /// descriptor; `words[1]` the full length of the peer's address (only
    /// the first `addrcap` bytes are written).
    FsAccept = 0x231,
    /// `[fd, addr, addrlen, pid]` (`connect`).
    FsConnect = 0x232,
    /// `[fd, buf, cap, peer]` (`getsockname`, or `getpeername` with
    /// `peer` = 1): returns the full address length.
    FsSockName = 0x233,
    /// `[fd, how]` (`shutdown`).
    FsShutdown = 0x234,
    /// `[fd, level, name, buf, cap]` (`getsockopt`): returns the length
    /// written.
    FsGetsockopt = 0x235,
    /// `[fd, level, name, buf, len]` (`setsockopt`).
    FsSetsockopt = 0x236,
    /// `[fd, iov, iovcnt, flags, aux]` (`sendmsg`): `aux` points to
    /// [`SendAux`] in the sender's memory. Returns the bytes sent.
    FsSendmsg = 0x237,
    /// `[fd, iov, iovcnt, flags, aux]` (`recvmsg`): `aux` points to
    /// [`RecvAux`] in the sender's memory, whose result words FS fills.
    /// Returns the bytes received (the datagram's full length with
    /// `MSG_TRUNC`).
    FsRecvmsg = 0x238,
    /// `[dirfd, path, len, statfsbuf, flags]` (`statfs`; `fstatfs` is an
    /// empty path with `AT_EMPTY_PATH`): the host file system's `struct
    /// statfs`.
    FsStatfs = 0x239,
    /// `[fd]`: host descriptor `fd` of the caller (a thread's endpoint of
    /// a process on FS's node) is the write end of a pipe, its data
    /// channel: FS takes a copy (`pidfd_getfd`) and may splice the data
    /// of a stream read into it, for the caller to read on its own, one
    /// copy fewer than `vcopy` from a buffer of FS.
    FsChannel = 0x23a,
    /// `[pid, ep, flags, zombie]` (`pidfd_open`): a descriptor for DC
    /// process `pid`, bound as `ep` on FS's node, or ended (`zombie` = 1;
    /// both from PM's [`Call::PmEndpointOf`]), readable once the process
    /// ends. `EREMOTE` for a process of another node.
    FsPidfdOpen = 0x23b,
    /// `[fd]`: the DC pid of the process pidfd `fd` refers to
    /// (`pidfd_send_signal`, `waitid(P_PIDFD)`).
    FsPidfdPid = 0x23c,
    /// `[initval, flags]` (`eventfd2`): returns the new descriptor.
    FsEventfd = 0x23d,
    /// `[clockid, flags]` (`timerfd_create`): returns the new descriptor.
    FsTimerfdCreate = 0x23e,
    /// `[fd, flags, new, old or 0]` (`timerfd_settime`; `struct
    /// itimerspec` in the caller).
    FsTimerfdSettime = 0x23f,
    /// `[fd, cur]` (`timerfd_gettime`).
    FsTimerfdGettime = 0x240,
    /// `[name, len, flags]` (`memfd_create`): returns the new descriptor.
    FsMemfdCreate = 0x241,
    /// `[flags]` (`inotify_init1`): returns the new descriptor.
    FsInotifyInit = 0x242,
    /// `[fd, path, len, mask]` (`inotify_add_watch`): returns the watch.
    FsInotifyAddWatch = 0x243,
    /// `[fd, wd]` (`inotify_rm_watch`).
    FsInotifyRmWatch = 0x244,
    /// `[dirfd, names, len, flags, value, size]` (`getxattr`, `lgetxattr`,
    /// `fgetxattr`): `names` is the path, a NUL and the attribute name
    /// (`len` bytes in all; an empty path with `AT_EMPTY_PATH` in `flags`
    /// names descriptor `dirfd`, `AT_SYMLINK_NOFOLLOW` does not follow a
    /// final symlink). Returns the value's size; with `size` 0 nothing is
    /// written.
    FsGetxattr = 0x245,
    /// `[dirfd, names, len, flags, value, size]` (`setxattr` and its
    /// forms), as [`Call::FsGetxattr`]; the high 32 bits of `flags` are
    /// the call's own (`XATTR_CREATE`, `XATTR_REPLACE`).
    FsSetxattr = 0x246,
    /// `[dirfd, path, len, flags, list, size]` (`listxattr` and its
    /// forms): the NUL-separated names, as [`Call::FsGetxattr`] without a
    /// name.
    FsListxattr = 0x247,
    /// `[dirfd, names, len, flags]` (`removexattr` and its forms), as
    /// [`Call::FsGetxattr`].
    FsRemovexattr = 0x248,
    /// From PM: `[parent_ep, child_ep, share, child_pid]` the child (DC
    /// pid `child_pid`) gets a copy of the parent's descriptors, cwd and
    /// umask (`share` = 1: the same table, cwd and umask, as threads share
    /// them; a thread has its process's pid).
    FsForkProc = 0x280,
    /// From PM: `[ep]` the process exec'd: close its `O_CLOEXEC` descriptors.
    /// Word 1 of the reply is 1 if its descriptor 1 is a terminal.
    FsExecProc = 0x281,
    /// From PM: `[ep]` the process ended: close all its descriptors.
    FsExitProc = 0x282,
    /// From dvs-exec: `[ep, console, cwd, cwdlen, pid]` the process (DC
    /// pid `pid`) starts with descriptors 0, 1, 2 on the console
    /// (`console` = 1) or with none, in the working directory `cwd` (an
    /// absolute DC path; empty: `/`), with umask 022.
    FsNewProc = 0x283,
    /// From PM (or SYSTASK): `[ep]` a signal interrupts the deferred FS call
    /// of `ep`, if any: it returns `EINTR` now (a write that already moved
    /// bytes returns their count). Returns how many calls were ended.
    FsCancel = 0x284,
}

/// Builds a request.
pub fn request(call: Call, args: &[u64]) -> Message {
    let mut m = Message::new(call as i32);
    for (w, a) in m.words_mut().iter_mut().zip(args.iter()) {
        *w = *a;
    }
    m
}

/// Builds a successful reply with value `v`.
pub fn ok(v: i64) -> Message {
    let mut m = Message::new(0);
    m.words_mut()[0] = v as u64;
    m
}

/// Set in the result of an `FsRead` whose bytes wait in the caller's data
/// channel (a count never reaches it).
pub const VIA_CHANNEL: i64 = 1 << 48;
/// `FsRead`'s `channel` word: a `read` that may use the data channel.
pub const READ_CHANNEL: u64 = 1;
/// `FsRead`'s `channel` word: a `recv` without flags or address (a `read`
/// of a socket, `ENOTSOCK` on anything else) that may use the channel.
pub const RECV_CHANNEL: u64 = 2;

/// Builds an error reply (`errno` positive, e.g. `libc::ENOENT`).
pub fn err(errno: i32) -> Message {
    Message::new(-errno)
}

/// Decodes a reply: the value, or the positive `errno`.
pub fn result(m: &Message) -> Result<i64, i32> {
    if m.m_type < 0 {
        Err(-m.m_type)
    } else {
        Ok(m.words()[0] as i64)
    }
}

/// The path-length pair of two-path calls.
pub fn pack_lens(a: usize, b: usize) -> u64 {
    a as u64 | ((b as u64) << 32)
}

/// Unpacks [`pack_lens`].
pub fn unpack_lens(w: u64) -> (usize, usize) {
    ((w & 0xffff_ffff) as usize, (w >> 32) as usize)
}

/// The extra arguments of [`Call::FsSendmsg`], as 64-bit words in the
/// sender's memory.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SendAux {
    /// Destination address (`struct sockaddr_un`) or 0.
    pub name: u64,
    /// Its length.
    pub namelen: u64,
    /// Descriptors to pass (`SCM_RIGHTS`): an `int` array, or 0.
    pub fds: u64,
    /// How many.
    pub nfds: u64,
    /// Other control messages (not `SCM_RIGHTS`/`SCM_CREDENTIALS`), raw
    /// `cmsghdr`s for the host (INET sockets), or 0.
    pub ctl: u64,
    /// Their length in bytes.
    pub ctllen: u64,
}

/// Size of [`SendAux`] in bytes.
pub const SEND_AUX_SIZE: usize = 48;

/// The extra arguments and results of [`Call::FsRecvmsg`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RecvAux {
    /// Where the sender's address goes, or 0.
    pub name: u64,
    /// Its capacity.
    pub namecap: u64,
    /// Where the received descriptor numbers go (`int` array), or 0.
    pub fds: u64,
    /// Its capacity (more descriptors are closed and `MSG_CTRUNC` set).
    pub fdcap: u64,
    /// Result: the full length of the sender's address (0: unnamed).
    pub namelen: u64,
    /// Result: descriptors placed.
    pub nfds: u64,
    /// Result: `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`).
    pub flags: u64,
    /// Where raw control messages from the host go (INET sockets), or 0.
    pub ctl: u64,
    /// Its capacity.
    pub ctlcap: u64,
    /// Result: the length of the raw control messages written there.
    pub ctllen: u64,
}

/// Size of [`RecvAux`] in bytes.
pub const RECV_AUX_SIZE: usize = 80;

/// `dup3` flag bit that asks for `dup2` semantics (no `EINVAL` when
/// `oldfd == newfd`).
pub const DUP2: u64 = 1 << 31;

/// Largest path accepted.
pub const PATH_MAX: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip() {
        for c in [Call::PmFork, Call::FsOpenat, Call::FsNewProc] {
            assert_eq!(Call::from_i32(c as i32), Some(c));
        }
        assert_eq!(Call::from_i32(7), None);
    }

    #[test]
    fn replies() {
        assert_eq!(result(&ok(42)), Ok(42));
        assert_eq!(result(&ok(-1)), Ok(-1));
        assert_eq!(result(&err(libc::ENOENT)), Err(libc::ENOENT));
        assert_eq!(unpack_lens(pack_lens(7, 300)), (7, 300));
    }
}
