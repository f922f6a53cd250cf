//! `fcntl(F_NOTIFY)` (dnotify): a signal to the process when a directory
//! it has open changes.
//!
//! FS keeps one registration per open file description of a directory:
//! a host inotify instance watching that directory (through FS's own
//! descriptor of it), with the `DN_*` events mapped to their `IN_*`
//! counterparts. The watcher polls the instance with FS's other host
//! descriptors; when it is readable FS drains it and sends `SIGIO` to the
//! host task of the process that asked, as the kernel's dnotify does
//! (`F_SETSIG` is not served). Without `DN_MULTISHOT` the registration
//! ends after one signal; a new `F_NOTIFY` on the description replaces it,
//! one without events removes it, and closing the description ends it.

use super::table::{Kind, Ofd};
use super::{sys, Fs};
use dvk::Endpoint;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// One directory watched for a process.
pub struct Registration {
    /// The open file description it belongs to.
    ofd: Weak<Ofd>,
    /// The host inotify instance.
    pub inotify: Arc<OwnedFd>,
    /// The process to signal.
    owner: Endpoint,
    /// `DN_MULTISHOT`: it stays after a signal.
    multishot: bool,
}

/// `fcntl` command `F_NOTIFY` (`<linux/fcntl.h>`; not in the libc crate).
pub const F_NOTIFY: i32 = 1026;
/// `DN_MULTISHOT`: keep the registration after a signal.
const DN_MULTISHOT: u32 = 0x8000_0000;

/// The inotify events of `DN_*` events `arg` (`DN_ACCESS`, `DN_MODIFY`,
/// `DN_CREATE`, `DN_DELETE`, `DN_RENAME`, `DN_ATTRIB`).
fn inotify_mask(arg: u32) -> u32 {
    let map = [
        (0x01, libc::IN_ACCESS),
        (0x02, libc::IN_MODIFY),
        (0x04, libc::IN_CREATE | libc::IN_MOVED_TO),
        (0x08, libc::IN_DELETE | libc::IN_MOVED_FROM),
        (0x10, libc::IN_MOVED_FROM | libc::IN_MOVED_TO),
        (0x20, libc::IN_ATTRIB),
    ];
    map.iter()
        .filter(|&&(dn, _)| arg & dn != 0)
        .fold(0, |m, &(_, i)| m | i)
}

/// A host inotify instance watching the directory `dir` for `mask`.
fn watch(dir: std::os::fd::BorrowedFd<'_>, mask: u32) -> Result<OwnedFd, i32> {
    // SAFETY: inotify_init1 with integer flags; `owned` checks it.
    let fd = sys::owned(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })?;
    let link = sys::proc_fd_path(dir);
    // SAFETY: a valid C string; the kernel checks the rest.
    let wd =
        unsafe { libc::inotify_add_watch(fd.as_raw_fd(), link.as_ptr(), mask | libc::IN_ONLYDIR) };
    sys::check(wd)?;
    Ok(fd)
}

impl Fs {
    /// `fcntl(fd, F_NOTIFY, arg)` of process `caller` on `ofd`.
    pub(super) fn dnotify(
        &mut self,
        caller: Endpoint,
        ofd: &Rc<Ofd>,
        arg: i64,
    ) -> Result<i64, i32> {
        let arg = arg as u32;
        let dir = match &ofd.kind {
            Kind::Path { .. } => return Err(libc::EBADF),
            k => ofd
                .dir_fd()
                .or(match k {
                    Kind::Listing(l) => Some(l.dir()),
                    _ => None,
                })
                .ok_or(libc::ENOTDIR)?,
        };
        let mask = inotify_mask(arg);
        let inotify = if mask == 0 {
            None
        } else {
            Some(Arc::new(watch(dir, mask)?))
        };
        self.dnotify
            .retain(|r| r.ofd.strong_count() > 0 && !std::ptr::eq(r.ofd.as_ptr(), Rc::as_ptr(ofd)));
        if let Some(inotify) = inotify {
            self.dnotify.push(Registration {
                ofd: Rc::downgrade(ofd),
                inotify,
                owner: caller,
                multishot: arg & DN_MULTISHOT != 0,
            });
        }
        Ok(0)
    }

    /// After the watcher's notification: signals the owners of the
    /// directories that changed, and forgets the registrations that are
    /// done (one-shot, or their description closed).
    pub(super) fn dnotify_fire(&mut self, ctx: &crate::server::Ctx) {
        let mut buf = [0u8; 4096];
        self.dnotify.retain(|r| {
            if r.ofd.strong_count() == 0 {
                return false;
            }
            if sys::poll_now(r.inotify.as_fd(), libc::POLLIN) & libc::POLLIN == 0 {
                return true;
            }
            while sys::read(r.inotify.as_fd(), &mut buf).is_ok_and(|n| n > 0) {}
            // The owner's host task is on this node (a process of another
            // node is not signalled: see ARCHITECTURE).
            let host = ctx.ipc.host_pid(r.owner);
            if host > 0 && ctx.ipc.node_of(r.owner) == Some(ctx.ipc.node()) {
                // SAFETY: kill(2) with integer arguments.
                unsafe { libc::kill(host, libc::SIGIO) };
            }
            r.multishot
        });
    }
}
