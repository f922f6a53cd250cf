//! `signalfd` in a DC. A host signalfd reads the signals of the task that
//! reads it, so FS can neither read nor poll one for the program; instead
//! the descriptor is the read end of an FS pipe, and a thread of the
//! process (a DC thread like any other) takes the signals of the masks
//! with `sigtimedwait` and writes one `signalfd_siginfo` record per
//! signal into the pipe. `read`, `poll`, `epoll` and `select` then work
//! on it as on any DC descriptor.
//!
//! As with a real signalfd, the program blocks the signals it reads this
//! way. Limits: signals sent to one thread (`pthread_kill`, `tgkill`)
//! are not seen (the helper takes process signals); a child made by
//! `fork` has the descriptor but no helper; a signal in the masks of two
//! signalfds goes to the one created first; a read smaller than a record
//! waits or fails as on a pipe (not `EINVAL`).

use crate::state::{self, enter, set_errno};
use libc::*;
use std::sync::Mutex;

/// One signalfd: its pipe and its mask (kernel layout, bit `n - 1` for
/// signal `n`).
struct Sfd {
    read: c_int,
    write: c_int,
    mask: u64,
}

/// The process's signalfds, and whether the helper thread runs.
static SFDS: Mutex<(Vec<Sfd>, bool)> = Mutex::new((Vec::new(), false));

/// Signals a signalfd may take: not SIGKILL and SIGSTOP (as the kernel
/// ignores them in the mask), nor glibc's internal SIGCANCEL and
/// SIGSETXID.
const NEVER: u64 = (1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)) | (1 << 31) | (1 << 32);

fn lock() -> std::sync::MutexGuard<'static, (Vec<Sfd>, bool)> {
    SFDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `sizeof(struct signalfd_siginfo)`.
const RECORD: usize = 128;

/// The record a signalfd gives for `si` (`struct signalfd_siginfo`):
/// the fields the kernel fills for this kind of signal.
fn record(si: &siginfo_t) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    let mut put = |at: usize, b: &[u8]| r[at..at + b.len()].copy_from_slice(b);
    put(0, &(si.si_signo as u32).to_ne_bytes());
    put(4, &si.si_errno.to_ne_bytes());
    put(8, &si.si_code.to_ne_bytes());
    // SAFETY: each union member is read only for the kinds of signal the
    // kernel fills it for (a child's status for SIGCHLD, the value for
    // queued and timer signals); the sender's ids are in every kind that
    // reaches a signalfd here.
    unsafe {
        put(12, &(si.si_pid() as u32).to_ne_bytes());
        put(16, &si.si_uid().to_ne_bytes());
        if si.si_signo == SIGCHLD && si.si_code > 0 {
            put(40, &si.si_status().to_ne_bytes());
            put(56, &(si.si_utime() as u64).to_ne_bytes());
            put(64, &(si.si_stime() as u64).to_ne_bytes());
        }
        // SI_QUEUE, SI_TIMER, SI_MESGQ.
        if (-3..=-1).contains(&si.si_code) {
            let v = si.si_value().sival_ptr as u64;
            put(44, &(v as u32).to_ne_bytes());
            put(48, &v.to_ne_bytes());
        }
    }
    r
}

/// The helper thread: waits for the signals of every mask and hands each
/// to the first signalfd whose mask has it.
extern "C" fn helper(_: *mut c_void) -> *mut c_void {
    // SAFETY: a full set; blocking everything in this thread keeps the
    // kernel from handing it any signal outside `sigtimedwait`.
    unsafe {
        let mut all: sigset_t = std::mem::zeroed();
        sigfillset(&mut all);
        pthread_sigmask(SIG_BLOCK, &all, std::ptr::null_mut());
    }
    loop {
        let union = lock().0.iter().fold(0u64, |m, s| m | s.mask);
        // SAFETY: an empty set filled bit by bit from `union`.
        let mut set: sigset_t = unsafe { std::mem::zeroed() };
        for sig in 1..=64 {
            if union & (1 << (sig - 1)) != 0 {
                // SAFETY: a valid signal number and our set.
                unsafe { sigaddset(&mut set, sig) };
            }
        }
        // A short timeout picks up masks changed meanwhile.
        let wait = timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        // SAFETY: zeroed siginfo and the set above; sigtimedwait fills `si`.
        let mut si: siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { sigtimedwait(&set, &mut si, &wait) };
        if sig <= 0 {
            continue;
        }
        let bit = 1u64 << (sig - 1);
        let fd = lock().0.iter().find(|s| s.mask & bit != 0).map(|s| s.write);
        if let Some(fd) = fd {
            let rec = record(&si);
            // SAFETY: writing our record to the DC pipe (the hooked write,
            // served by FS for this DC thread).
            unsafe { write(fd, rec.as_ptr() as *const c_void, RECORD) };
        }
    }
}

/// Reads the caller's mask (`sizemask` bytes).
fn read_mask(m: *const sigset_t) -> Option<u64> {
    if m.is_null() {
        return None;
    }
    // SAFETY: the caller passes a sigset_t, whose first 8 bytes are the
    // kernel's mask on x86-64.
    Some(unsafe { *(m as *const u64) } & !NEVER)
}

redhook::hook! {
    unsafe fn signalfd(fd: c_int, m: *const sigset_t, flags: c_int) -> c_int => hk_signalfd {
        if !state::active() {
            // SAFETY: the real libc function with the caller's arguments.
            return unsafe { redhook::real!(signalfd)(fd, m, flags) };
        }
        let Some(mask) = read_mask(m) else {
            set_errno(EFAULT);
            return -1;
        };
        if flags & !(SFD_CLOEXEC | SFD_NONBLOCK) != 0 {
            set_errno(EINVAL);
            return -1;
        }
        if fd != -1 {
            let mut g = lock();
            return match g.0.iter_mut().find(|s| s.read == fd) {
                Some(s) => {
                    s.mask = mask;
                    fd
                }
                None => {
                    set_errno(EINVAL);
                    -1
                }
            };
        }
        // A handler that interrupted a served call: the thread's endpoint
        // is busy.
        if enter().is_none() {
            set_errno(EINTR);
            return -1;
        }
        let mut p = [0 as c_int; 2];
        // SAFETY: the hooked pipe2 (an FS pipe) with our array; then the
        // hooked fcntl on its descriptors.
        unsafe {
            if pipe2(p.as_mut_ptr(), O_CLOEXEC) != 0 {
                return -1;
            }
            let keep = if flags & SFD_CLOEXEC != 0 { FD_CLOEXEC } else { 0 };
            fcntl(p[0], F_SETFD, keep);
            if flags & SFD_NONBLOCK != 0 {
                fcntl(p[0], F_SETFL, O_NONBLOCK);
            }
        }
        let start = {
            let mut g = lock();
            g.0.push(Sfd {
                read: p[0],
                write: p[1],
                mask,
            });
            !std::mem::replace(&mut g.1, true)
        };
        if start {
            let mut t: pthread_t = 0;
            // SAFETY: the hooked pthread_create (the helper is a DC thread
            // with an endpoint of its own), detached: it runs for the
            // process's life.
            unsafe {
                if pthread_create(&mut t, std::ptr::null(), helper, std::ptr::null_mut()) == 0 {
                    pthread_detach(t);
                } else {
                    lock().1 = false;
                }
            }
        }
        p[0]
    }
}
