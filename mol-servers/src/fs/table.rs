//! Descriptor tables and open file descriptions.
//!
//! An open file description ([`Ofd`]) is shared by `dup` and `fork` through
//! an `Rc`: the offset lives in its host descriptor (or in the pipe), the
//! status flags in the `Ofd`. `FD_CLOEXEC` belongs to the descriptor
//! ([`FdEntry`]). When the last reference to a pipe end goes away, its
//! `Drop` updates the pipe's reader/writer counts; the server then retries
//! its deferred operations.

use super::pipe::Pipe;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;

/// Descriptor numbers of a process stay below this: Linux's own ceiling
/// on `RLIMIT_NOFILE` (`fs.nr_open`), so that a program that raised its
/// limit (a server with many connections, valgrind's descriptors kept
/// near the hard limit) gets the numbers it asks for. The process's own
/// `RLIMIT_NOFILE` is not applied (see ARCHITECTURE). The table grows
/// only to its highest open descriptor.
pub const MAX_FDS: usize = 1 << 20;

/// What an open file description refers to.
pub enum Kind {
    /// A regular file, directory or block device: I/O goes straight to
    /// the host descriptor and never blocks for long.
    File {
        /// The host descriptor (FS's own open file description).
        fd: OwnedFd,
        /// `S_IFMT` bits of the file.
        ftype: u32,
    },
    /// An `O_PATH` descriptor: no I/O, usable as a directory for `*at`.
    Path {
        /// The host `O_PATH` descriptor.
        fd: OwnedFd,
        /// `S_IFMT` bits of the file.
        ftype: u32,
    },
    /// A host object whose I/O can block: the console, or a FIFO,
    /// character device or socket opened in the DC root. FS only does
    /// I/O on it when `poll` says it will not block, and defers otherwise.
    Stream {
        /// The host descriptor; shared with the watcher while waited on.
        fd: Arc<OwnedFd>,
        /// The descriptor is the console (a dup of dvs-exec's stdio): its
        /// status flags belong to the user's shell and are never changed.
        console: bool,
        /// The host object never blocks (a console redirected to a
        /// regular file): no `poll` before I/O, large chunks.
        plain: bool,
    },
    /// The read end of an FS pipe.
    PipeRead(Rc<RefCell<Pipe>>),
    /// The write end of an FS pipe.
    PipeWrite(Rc<RefCell<Pipe>>),
    /// An epoll instance: its interest list.
    Epoll(Rc<RefCell<super::epoll::Interest>>),
    /// An `AF_UNIX` socket.
    Socket(Rc<RefCell<super::unix::Sock>>),
    /// A directory FS makes up: `/proc/self/fd` lists the caller's DC
    /// descriptors, as they were when it was opened.
    Listing(super::listing::Listing),
}

/// An open file description.
pub struct Ofd {
    /// What it refers to.
    pub kind: Kind,
    /// Access mode and status flags as `F_GETFL` shows them.
    pub flags: Cell<i32>,
    /// For a process pidfd (a host pidfd in a `Stream`): the DC pid of
    /// its process; 0 otherwise.
    pub pidfd_of: i32,
}

impl Ofd {
    /// A new description (counts a pipe end).
    pub fn new(kind: Kind, flags: i32) -> Rc<Ofd> {
        match &kind {
            Kind::PipeRead(p) => p.borrow_mut().readers += 1,
            Kind::PipeWrite(p) => p.borrow_mut().writers += 1,
            _ => {}
        }
        Rc::new(Ofd {
            kind,
            flags: Cell::new(flags),
            pidfd_of: 0,
        })
    }

    /// A description for a host object FS made for the program (a socket,
    /// an eventfd, a timerfd, a terminal): a host stream.
    pub fn host_stream(fd: OwnedFd, flags: i32) -> Rc<Ofd> {
        Ofd::new(
            Kind::Stream {
                fd: Arc::new(fd),
                console: false,
                plain: false,
            },
            flags,
        )
    }

    /// A description for host pidfd `fd` of DC process `pid`.
    pub fn pidfd(fd: OwnedFd, pid: i32, flags: i32) -> Rc<Ofd> {
        Rc::new(Ofd {
            kind: Kind::Stream {
                fd: Arc::new(fd),
                console: false,
                plain: false,
            },
            flags: Cell::new(flags),
            pidfd_of: pid,
        })
    }

    /// The host descriptor, for every kind but pipes.
    pub fn host_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.kind {
            Kind::File { fd, .. } | Kind::Path { fd, .. } => Some(fd.as_fd()),
            Kind::Stream { fd, .. } => Some(fd.as_fd()),
            Kind::Listing(l) => Some(l.dir()),
            Kind::PipeRead(_) | Kind::PipeWrite(_) | Kind::Epoll(_) | Kind::Socket(_) => None,
        }
    }

    /// The host descriptor of a regular file or a directory, which an open
    /// of its descriptor's link (`/dev/fd/N`, `/proc/self/fd/N`) opens anew,
    /// as Linux does: an offset and status flags of its own.
    pub fn reopenable(&self) -> Option<BorrowedFd<'_>> {
        match &self.kind {
            Kind::File { fd, ftype } | Kind::Path { fd, ftype }
                if matches!(*ftype, libc::S_IFREG | libc::S_IFDIR) =>
            {
                Some(fd.as_fd())
            }
            _ => None,
        }
    }

    /// The host directory descriptor when this is a directory (`*at` base).
    pub fn dir_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.kind {
            Kind::File { fd, ftype } | Kind::Path { fd, ftype } if *ftype == libc::S_IFDIR => {
                Some(fd.as_fd())
            }
            _ => None,
        }
    }

    /// `O_NONBLOCK` is set.
    pub fn nonblock(&self) -> bool {
        self.flags.get() & libc::O_NONBLOCK != 0
    }

    /// `O_PATH` description.
    pub fn is_path(&self) -> bool {
        matches!(self.kind, Kind::Path { .. })
    }
}

impl Drop for Ofd {
    fn drop(&mut self) {
        match &self.kind {
            Kind::PipeRead(p) => {
                let mut p = p.borrow_mut();
                p.readers = p.readers.saturating_sub(1);
            }
            Kind::PipeWrite(p) => {
                let mut p = p.borrow_mut();
                p.writers = p.writers.saturating_sub(1);
            }
            _ => {}
        }
    }
}

/// One descriptor.
#[derive(Clone)]
pub struct FdEntry {
    /// The open file description.
    pub ofd: Rc<Ofd>,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

impl FdEntry {
    /// A descriptor for `ofd`.
    pub fn new(ofd: Rc<Ofd>, cloexec: bool) -> FdEntry {
        FdEntry { ofd, cloexec }
    }
}

/// A process's descriptor table.
#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
}

fn index(fd: i32) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)
}

impl FdTable {
    /// The entry of `fd` (`EBADF` if not open).
    pub fn get(&self, fd: i32) -> Result<&FdEntry, i32> {
        index(fd)
            .and_then(|i| self.slots.get(i))
            .and_then(|s| s.as_ref())
            .ok_or(libc::EBADF)
    }

    /// The mutable entry of `fd` (`EBADF` if not open).
    pub fn get_mut(&mut self, fd: i32) -> Result<&mut FdEntry, i32> {
        index(fd)
            .and_then(|i| self.slots.get_mut(i))
            .and_then(|s| s.as_mut())
            .ok_or(libc::EBADF)
    }

    /// Installs `e` at the lowest free descriptor `>= min` (`EMFILE` if
    /// none below [`MAX_FDS`]).
    pub fn alloc(&mut self, min: usize, e: FdEntry) -> Result<i32, i32> {
        let start = min.min(MAX_FDS);
        let free = (start..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(|s| s.is_none()));
        let i = free.ok_or(libc::EMFILE)?;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        self.slots[i] = Some(e);
        Ok(i as i32)
    }

    /// One past the highest descriptor the table has room for (every open
    /// descriptor is below it).
    pub fn span(&self) -> usize {
        self.slots.len()
    }

    /// The open descriptors, in order, and the lowest free one (what
    /// [`FdTable::alloc`] from 0 would give).
    pub fn numbers(&self) -> (Vec<i32>, Option<i32>) {
        let open = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .map(|i| i as i32)
            .collect();
        let free = (0..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(|s| s.is_none()));
        (open, free.map(|i| i as i32))
    }

    /// Installs `e` at `fd`, returning what was there (`EBADF` if `fd` is
    /// out of range). The caller drops the old entry after the change.
    pub fn place(&mut self, fd: i32, e: FdEntry) -> Result<Option<FdEntry>, i32> {
        let i = index(fd).ok_or(libc::EBADF)?;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        Ok(self.slots[i].replace(e))
    }

    /// Removes `fd` (`EBADF` if not open).
    pub fn remove(&mut self, fd: i32) -> Result<FdEntry, i32> {
        let i = index(fd).ok_or(libc::EBADF)?;
        let e = self
            .slots
            .get_mut(i)
            .and_then(|s| s.take())
            .ok_or(libc::EBADF)?;
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        Ok(e)
    }

    /// Removes the close-on-exec descriptors and returns them.
    pub fn take_cloexec(&mut self) -> Vec<FdEntry> {
        let mut out = Vec::new();
        for s in self.slots.iter_mut() {
            if s.as_ref().is_some_and(|e| e.cloexec) {
                out.extend(s.take());
            }
        }
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        out
    }

    /// Removes every descriptor and returns them.
    pub fn take_all(&mut self) -> Vec<FdEntry> {
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }
}
