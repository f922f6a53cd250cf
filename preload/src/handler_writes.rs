//! Writes made by signal handlers while their thread waits for a server.
//!
//! Such a handler cannot use the thread's endpoint (it is waiting for a
//! reply). Small writes are what handlers do (CPython and asyncio write a
//! byte to their wake-up descriptor, which is how an event loop learns of
//! a signal), so a `write` or `send` of at most [`BYTES`] bytes is kept
//! here, reported as done, and made right after the served call returns
//! (which the signal itself usually ends early, see `interrupts`).
//!
//! The queue is per thread and written only by a handler running while
//! the thread waits in IPC ([`dvk::in_ipc_wait`]); [`flush`] takes it
//! while the thread is not waiting, so the two never overlap.

use std::cell::UnsafeCell;

/// Largest write kept.
pub const BYTES: usize = 32;
/// Writes kept at most.
const SLOTS: usize = 32;

#[derive(Clone, Copy)]
struct Write {
    nr: i64,
    fd: i32,
    flags: i32,
    len: usize,
    data: [u8; BYTES],
}

struct Queue {
    n: usize,
    items: [Write; SLOTS],
}

const EMPTY: Write = Write {
    nr: 0,
    fd: -1,
    flags: 0,
    len: 0,
    data: [0; BYTES],
};

thread_local! {
    static QUEUE: UnsafeCell<Queue> = const {
        UnsafeCell::new(Queue {
            n: 0,
            items: [EMPTY; SLOTS],
        })
    };
}

/// Keeps a handler's `write(fd, buf, len)` (`SYS_write`) or
/// `send(fd, buf, len, flags)` (`SYS_sendto` without an address). Returns
/// the byte count, or `None` when it cannot be kept (too large, queue
/// full, another call). Async-signal-safe.
pub fn keep(nr: i64, a: [u64; 6]) -> Option<i64> {
    let (fd, buf, len) = (a[0] as i32, a[1] as *const u8, a[2] as usize);
    let flags = match nr {
        libc::SYS_write => 0,
        libc::SYS_sendto if a[4] == 0 => a[3] as i32,
        _ => return None,
    };
    if len > BYTES || (len > 0 && buf.is_null()) {
        return None;
    }
    QUEUE.with(|q| {
        // SAFETY: only this thread touches its queue, and `flush` never
        // runs while a handler can (see the module comment).
        let q = unsafe { &mut *q.get() };
        if q.n == SLOTS {
            return None;
        }
        let mut w = Write {
            nr,
            fd,
            flags,
            len,
            data: [0; BYTES],
        };
        if len > 0 {
            // SAFETY: the caller's buffer of `len` bytes (at most BYTES).
            unsafe { std::ptr::copy_nonoverlapping(buf, w.data.as_mut_ptr(), len) };
        }
        q.items[q.n] = w;
        q.n += 1;
        Some(len as i64)
    })
}

thread_local! {
    /// Set while [`flush`] makes its writes: a write a handler keeps
    /// meanwhile waits for the next call's end rather than being made
    /// from inside this flush's own write (on a remote node, where a
    /// served write can outlast a fast timer's period, flushes nested
    /// without end and overflowed the stack).
    static FLUSHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the kept writes (through the hooks, so they are served).
pub fn flush() {
    if FLUSHING.with(|f| f.replace(true)) {
        return;
    }
    let taken = QUEUE.with(|q| {
        // SAFETY: see `keep`; the thread is not waiting in IPC here.
        let q = unsafe { &mut *q.get() };
        let t = (q.n, q.items);
        q.n = 0;
        t
    });
    for w in &taken.1[..taken.0] {
        let p = w.data.as_ptr().cast::<libc::c_void>();
        // SAFETY: a buffer of `len` bytes on this frame.
        unsafe {
            if w.nr == libc::SYS_write {
                libc::write(w.fd, p, w.len);
            } else {
                libc::send(w.fd, p, w.len, w.flags);
            }
        }
    }
    FLUSHING.with(|f| f.set(false));
}

/// Whether writes are waiting (cheap: checked after every served call).
pub fn pending() -> bool {
    // SAFETY: reading this thread's own counter.
    QUEUE.with(|q| unsafe { (*q.get()).n > 0 })
}
