//! Detects `fork`: children do not inherit DC registration, so handles
//! created before a fork must refuse to work in the child.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static EPOCH: AtomicU64 = AtomicU64::new(0);

extern "C" fn in_child() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Registers the `pthread_atfork` child handler (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a handler that only does an atomic add, which
        // is async-signal-safe and valid in a freshly forked child.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

/// Number of forks this process image has gone through (changes in the child).
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}
