//! Per-process state: where processes come from (`FsNewProc` from
//! dvs-exec, `FsForkProc` from PM), `exec` and exit, and `FsCancel`.
//!
//! These calls are accepted from privileged endpoints only (servers,
//! dvs-exec's helper); an unprivileged caller gets `EPERM`.

use super::path::O_LARGEFILE;
use super::table::{FdEntry, FdTable, Kind, Ofd};
use super::{sys, Fs};
use crate::abi::{self, Call};
use crate::server::{Ctx, Handler, Outcome, Request};
use dvk::Endpoint;
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

/// The default umask of a new process.
pub const DEFAULT_UMASK: u32 = 0o022;

/// What `CLONE_FS` would share: cwd and umask.
pub struct FsInfo {
    /// `O_PATH` descriptor of the working directory.
    pub cwd: Rc<OwnedFd>,
    /// The file-mode creation mask.
    pub umask: u32,
}

/// One DC process (or thread endpoint) as FS sees it.
pub struct Proc {
    /// Its DC pid (0: not told), for the DC's `/proc` listing.
    pub pid: i32,
    /// The descriptor table (shared by `CLONE_FILES` children).
    pub files: Rc<RefCell<FdTable>>,
    /// cwd and umask (shared together with the table).
    pub fs: Rc<RefCell<FsInfo>>,
}

fn privileged(ctx: &Ctx, req: &Request) -> bool {
    ctx.ipc.is_privileged(req.sender)
}

fn endpoint(w: u64) -> Endpoint {
    Endpoint(w as i64 as i32)
}

impl Fs {
    /// Console descriptions for a new process: 0, 1, 2.
    fn console_entries(&mut self) -> Vec<(i32, FdEntry)> {
        let Some(c) = &mut self.console else {
            return Vec::new();
        };
        // The other descriptors go to the first process only, and only its
        // descriptors hold them (their last close is the file's).
        let others = std::mem::take(&mut c.others);
        let std = [
            (0, c.input.clone()),
            (1, c.output.clone()),
            (2, c.error.clone()),
        ];
        let closed = c.closed;
        std.into_iter()
            .filter(|(n, _)| !closed[*n as usize])
            .chain(others)
            .map(|(n, fd)| {
                let acc = sys::fcntl_int(fd.as_fd(), libc::F_GETFL, 0)
                    .map(|f| f & (libc::O_ACCMODE | libc::O_APPEND | O_LARGEFILE))
                    .unwrap_or(libc::O_RDWR);
                let plain = sys::fmode(fd.as_fd()).is_ok_and(|m| m & libc::S_IFMT == libc::S_IFREG);
                let ofd = Ofd::new(
                    Kind::Stream {
                        fd,
                        console: true,
                        plain,
                    },
                    acc,
                );
                (n, FdEntry::new(ofd, false))
            })
            .collect()
    }

    /// Forgets `ep`: its deferred calls are answered (`EINTR`, or the
    /// bytes already written) and its descriptors closed.
    pub(super) fn forget(&mut self, ctx: &Ctx, ep: Endpoint) -> bool {
        self.cancel(ctx, ep);
        self.channels.remove(&ep);
        let gone = self.procs.remove(&ep);
        let found = gone.is_some();
        if let Some(p) = gone {
            // Only this process's reference: a shared table stays with
            // the others.
            if Rc::strong_count(&p.files) == 1 {
                let entries = p.files.borrow_mut().take_all();
                drop(entries);
            }
        }
        self.settle(ctx, false);
        found
    }
}

/// `[ep, console, cwd, cwdlen, pid]` from dvs-exec.
fn new_proc(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    if !privileged(ctx, req) {
        return Outcome::err(libc::EPERM);
    }
    let ep = endpoint(req.args[0]);
    let cwd_path = match ctx.path(req.sender, req.args[2], req.args[3]) {
        Ok(p) if p.is_empty() => b"/".to_vec(),
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    let flags = (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64;
    let base = if cwd_path.starts_with(b"/") {
        super::path::Base::Root
    } else {
        return Outcome::err(libc::EINVAL);
    };
    let cwd = match fs.open_from(&base, &cwd_path, flags, 0) {
        Ok(fd) => fd,
        Err(e) => return Outcome::err(e),
    };
    if fs.procs.contains_key(&ep) {
        fs.forget(ctx, ep);
    }
    let mut table = FdTable::default();
    if req.args[1] == 1 {
        for (n, e) in fs.console_entries() {
            if let Ok(Some(old)) = table.place(n, e) {
                drop(old);
            }
        }
    }
    fs.procs.insert(
        ep,
        Proc {
            pid: req.args[4] as i32,
            files: Rc::new(RefCell::new(table)),
            fs: Rc::new(RefCell::new(FsInfo {
                cwd: Rc::new(cwd),
                umask: DEFAULT_UMASK,
            })),
        },
    );
    Outcome::ok(0)
}

/// `[parent_ep, child_ep, share, child_pid]` from PM.
fn fork_proc(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    if !privileged(ctx, req) {
        return Outcome::err(libc::EPERM);
    }
    let parent = endpoint(req.args[0]);
    let child = endpoint(req.args[1]);
    let share = req.args[2] & 1 == 1;
    let Some(p) = fs.procs.get(&parent) else {
        return Outcome::err(libc::EBADF);
    };
    let proc = if share {
        Proc {
            pid: p.pid,
            files: p.files.clone(),
            fs: p.fs.clone(),
        }
    } else {
        let info = p.fs.borrow();
        Proc {
            pid: req.args[3] as i32,
            files: Rc::new(RefCell::new(p.files.borrow().clone())),
            fs: Rc::new(RefCell::new(FsInfo {
                cwd: info.cwd.clone(),
                umask: info.umask,
            })),
        }
    };
    if fs.procs.contains_key(&child) {
        fs.forget(ctx, child);
    }
    fs.procs.insert(child, proc);
    Outcome::ok(0)
}

/// `[ep]` from PM: the process exec'd. Word 1 of the reply is 1 if its
/// descriptor 1 is a terminal (the new image's stdio buffering depends on
/// it, and asking here saves it a call).
fn exec_proc(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    if !privileged(ctx, req) {
        return Outcome::err(libc::EPERM);
    }
    let ep = endpoint(req.args[0]);
    let Some(p) = fs.procs.get_mut(&ep) else {
        return Outcome::err(libc::EBADF);
    };
    // exec unshares a table shared with other processes.
    if Rc::strong_count(&p.files) > 1 {
        let copy = p.files.borrow().clone();
        p.files = Rc::new(RefCell::new(copy));
    }
    let closed = p.files.borrow_mut().take_cloexec();
    let tty = p
        .files
        .borrow()
        .get(1)
        .is_ok_and(|e| super::console::is_terminal(&e.ofd));
    drop(closed);
    fs.settle(ctx, false);
    let mut m = abi::ok(0);
    m.words_mut()[1] = tty as u64;
    Outcome::Reply(m)
}

/// `[ep]` from PM: the process ended.
fn exit_proc(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    if !privileged(ctx, req) {
        return Outcome::err(libc::EPERM);
    }
    fs.forget(ctx, endpoint(req.args[0]));
    Outcome::ok(0)
}

/// `[ep]`: ends the deferred call of `ep` (a signal arrived).
fn cancel(fs: &mut Fs, ctx: &Ctx, req: &Request) -> Outcome {
    if !privileged(ctx, req) {
        return Outcome::err(libc::EPERM);
    }
    let n = fs.cancel(ctx, endpoint(req.args[0]));
    fs.settle(ctx, false);
    Outcome::ok(n as i64)
}

/// The process-management calls.
pub fn table() -> Vec<(Call, Handler<Fs>)> {
    vec![
        (Call::FsNewProc, new_proc as Handler<Fs>),
        (Call::FsForkProc, fork_proc),
        (Call::FsExecProc, exec_proc),
        (Call::FsExitProc, exit_proc),
        (Call::FsCancel, cancel),
    ]
}
