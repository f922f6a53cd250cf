//! Endpoints: DC-wide process identifiers.
//!
//! An endpoint combines a slot number `p_nr` with a generation, so that a
//! slot reused by a new process gets a new endpoint and stale references
//! fail with `EDVSDSTDIED`/`EDVSSRCDIED` instead of reaching the newcomer.
//!
//! Encoding: `endpoint = generation * GEN_SIZE + p_nr`, with
//! `GEN_SIZE = 0x10000`. The slot number is recovered with a signed 16-bit
//! wrap, so `p_nr` must stay inside `-0x7fff..0x6ace` (tasks are negative;
//! user processes positive), which is far above the configurable limits.
//! The special values are the prototype's: `ANY` = 0x7ace, `NONE` = 0x6ace,
//! `SELF` = 0x8ace, `HARDWARE` = -1 (the source of notifications),
//! `SYSTEM` = -2 and `SYSTASK(n)` = `SYSTEM - n`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of endpoints per generation.
pub const GEN_SIZE: i32 = 0x10000;

/// A DC-wide endpoint number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[repr(transparent)]
pub struct Endpoint(pub i32);

impl Endpoint {
    /// Receive from anyone.
    pub const ANY: Endpoint = Endpoint(0x7ace);
    /// No endpoint.
    pub const NONE: Endpoint = Endpoint(0x6ace);
    /// The caller itself.
    pub const SELF: Endpoint = Endpoint(0x8ace);
    /// The source of notifications (`notify` and DVK events).
    pub const HARDWARE: Endpoint = Endpoint(-1);
    /// Alias of `HARDWARE`, as in Minix.
    pub const KERNEL: Endpoint = Endpoint(-1);
    /// The base of the per-node SYSTASK endpoints.
    pub const SYSTEM: Endpoint = Endpoint(-2);

    /// Builds an endpoint from a generation and a slot number.
    pub const fn new(generation: i32, p_nr: i32) -> Endpoint {
        Endpoint(generation * GEN_SIZE + p_nr)
    }

    /// The SYSTASK endpoint of node `n` (node 0 -> -2, node 1 -> -3, ...).
    pub const fn systask(node: i32) -> Endpoint {
        Endpoint(Self::SYSTEM.0 - node)
    }

    /// The slot number of this endpoint.
    pub const fn p_nr(self) -> i32 {
        let low = self.0.rem_euclid(GEN_SIZE);
        if low >= GEN_SIZE / 2 {
            low - GEN_SIZE
        } else {
            low
        }
    }

    /// The generation of this endpoint.
    pub const fn generation(self) -> i32 {
        (self.0 - self.p_nr()) / GEN_SIZE
    }

    /// The same slot with the next generation (wraps back to 0).
    pub fn next_generation(self) -> Endpoint {
        let g = self.generation() + 1;
        let g = if g > i32::MAX / GEN_SIZE - 1 { 0 } else { g };
        Endpoint::new(g, self.p_nr())
    }

    /// True for `ANY`, `NONE`, `SELF` and `HARDWARE`.
    pub const fn is_special(self) -> bool {
        matches!(self.0, 0x7ace | 0x6ace | 0x8ace | -1)
    }

    /// The raw number.
    pub const fn raw(self) -> i32 {
        self.0
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Endpoint::ANY => f.pad("ANY"),
            Endpoint::NONE => f.pad("NONE"),
            Endpoint::SELF => f.pad("SELF"),
            Endpoint::HARDWARE => f.pad("HARDWARE"),
            Endpoint(n) => f.pad(&n.to_string()),
        }
    }
}

impl From<i32> for Endpoint {
    fn from(v: i32) -> Self {
        Endpoint(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode() {
        for g in [0, 1, 7, 1000] {
            for p in [-35, -2, 0, 1, 63, 220, 5000] {
                let e = Endpoint::new(g, p);
                assert_eq!(e.p_nr(), p, "{e}");
                assert_eq!(e.generation(), g, "{e}");
                assert!(!e.is_special() || (g == 0 && p == -1));
            }
        }
    }

    #[test]
    fn next_generation_keeps_slot_and_changes_number() {
        let e = Endpoint::new(0, 12);
        let n = e.next_generation();
        assert_eq!(n.p_nr(), 12);
        assert_ne!(n, e);
        let last = Endpoint::new(i32::MAX / GEN_SIZE - 1, -3);
        assert_eq!(last.next_generation(), Endpoint::new(0, -3));
    }

    #[test]
    fn specials_do_not_collide_with_generation_zero_slots() {
        assert_eq!(Endpoint::systask(0), Endpoint(-2));
        assert_eq!(Endpoint::systask(1), Endpoint(-3));
        assert_eq!(format!("{}", Endpoint::ANY), "ANY");
        assert_eq!(format!("{:>5}", Endpoint(7)), "    7");
        assert_eq!(Endpoint::SELF.p_nr(), 0x8ace - GEN_SIZE);
    }
}
