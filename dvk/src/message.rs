//! The fixed 64-byte M3-IPC message (one cache line).
//!
//! `m_source` is never trusted from the sender: the DVK overwrites it on
//! delivery with the endpoint that the message really came from (see
//! `ipc.rs`). `m_type` is free for the application. The remaining 56 bytes
//! are a union of the Minix-style layouts `m1`..`m8`, reached through
//! typed accessors (`msg.m1()`, `msg.m1_mut()`), which are plain
//! reinterpretations checked at compile time by `bytemuck`.

use crate::endpoint::Endpoint;
use bytemuck::{Pod, Zeroable};

/// Size of a message in bytes.
pub const MESSAGE_SIZE: usize = 64;
/// Size of the payload union in bytes.
pub const PAYLOAD_SIZE: usize = MESSAGE_SIZE - 8;

/// Base of the `m_type` of notification messages. A notification from the
/// endpoint with slot `p_nr` arrives with `m_source == HARDWARE` and
/// `m_type == NOTIFY_BASE + p_nr`; `m1_i1` holds the full endpoint and
/// `m1_i2` the [`NotifyKind`].
pub const NOTIFY_BASE: i32 = 0x4000_0000;

/// What a notification message reports (in `m1_i2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum NotifyKind {
    /// A `notify()` call by a privileged endpoint.
    Notify = 0,
    /// The endpoint in `m1_i1` ended without unbinding (killed, crashed);
    /// sent by the DVK to the endpoint's warn endpoint.
    Exit = 1,
    /// The endpoint in `m1_i1`, waiting for this endpoint's reply, was
    /// interrupted by a signal (it asked the DVK to say so): the server
    /// may end the call now with `EINTR`.
    Signal = 2,
}

impl NotifyKind {
    /// The kind with this number (unknown numbers are plain notifications).
    pub fn from_u32(k: u32) -> NotifyKind {
        match k {
            1 => NotifyKind::Exit,
            2 => NotifyKind::Signal,
            _ => NotifyKind::Notify,
        }
    }
}

/// An M3-IPC message.
#[derive(Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(8))]
pub struct Message {
    /// The sender, filled in by the DVK.
    pub m_source: i32,
    /// The message type, free for the application.
    pub m_type: i32,
    /// The payload union, see the `mN()` accessors.
    pub payload: [u8; PAYLOAD_SIZE],
}

const _: () = assert!(std::mem::size_of::<Message>() == MESSAGE_SIZE);

impl Default for Message {
    fn default() -> Self {
        Message::zeroed()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.m1();
        write!(
            f,
            "Message {{ source: {}, type: {}, m1_i1: {}, m1_i2: {}, m1_i3: {}, m1_p1: {:#x} }}",
            Endpoint(self.m_source),
            self.m_type,
            m.i1,
            m.i2,
            m.i3,
            m.p1
        )
    }
}

macro_rules! layout {
    ($(#[$doc:meta])* $name:ident, $get:ident, $get_mut:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
        #[repr(C)]
        pub struct $name { $( #[allow(missing_docs)] pub $field: $ty, )* }
        const _: () = assert!(std::mem::size_of::<$name>() == PAYLOAD_SIZE);
        impl Message {
            #[doc = concat!("The payload seen as `", stringify!($name), "`.")]
            pub fn $get(&self) -> &$name {
                bytemuck::from_bytes(&self.payload)
            }
            #[doc = concat!("The payload seen as a mutable `", stringify!($name), "`.")]
            pub fn $get_mut(&mut self) -> &mut $name {
                bytemuck::from_bytes_mut(&mut self.payload)
            }
        }
    };
}

// `Message` is 8-aligned and the payload starts at offset 8, so viewing the
// payload as any of these 8-aligned, padding-free layouts is always aligned.
layout!(
    /// Three ints and three pointers.
    M1, m1, m1_mut { i1: i32, i2: i32, i3: i32, pad: u32, p1: u64, p2: u64, p3: u64, tail: [u64; 2] });
layout!(
    /// Three ints, two longs and a pointer.
    M2, m2, m2_mut { i1: i32, i2: i32, i3: i32, pad: u32, l1: i64, l2: i64, p1: u64, tail: [u64; 2] });
layout!(
    /// Two ints, a pointer and a 40-byte string.
    M3, m3, m3_mut { i1: i32, i2: i32, p1: u64, ca1: [u8; 40] });
layout!(
    /// Five longs.
    M4, m4, m4_mut { l1: i64, l2: i64, l3: i64, l4: i64, l5: i64, tail: u64, tail2: u64 });
layout!(
    /// Two chars, two shorts and three longs.
    M5, m5, m5_mut { c1: u8, c2: u8, i1: i16, i2: i16, pad: u16, l1: i64, l2: i64, l3: i64, tail: [u64; 3] });
layout!(
    /// Three longs, three shorts, two chars and a pointer.
    M6, m6, m6_mut { l1: i64, l2: i64, l3: i64, i1: i16, i2: i16, i3: i16, c1: u8, c2: u8, p1: u64, tail: [u64; 2] });
layout!(
    /// Five ints and a pointer.
    M7, m7, m7_mut { i1: i32, i2: i32, i3: i32, i4: i32, i5: i32, pad: u32, p1: u64, tail: [u64; 3] });
layout!(
    /// Two ints and four pointers.
    M8, m8, m8_mut { i1: i32, i2: i32, p1: u64, p2: u64, p3: u64, p4: u64, tail: [u64; 2] });

impl Message {
    /// The payload as seven machine words (a syscall-like argument vector,
    /// used by the MoL call protocol).
    pub fn words(&self) -> &[u64; 7] {
        bytemuck::from_bytes(&self.payload)
    }

    /// The payload as seven mutable machine words.
    pub fn words_mut(&mut self) -> &mut [u64; 7] {
        bytemuck::from_bytes_mut(&mut self.payload)
    }

    /// A zeroed message of the given type.
    pub fn new(m_type: i32) -> Message {
        Message {
            m_type,
            ..Message::zeroed()
        }
    }

    /// The sender as an [`Endpoint`].
    pub fn source(&self) -> Endpoint {
        Endpoint(self.m_source)
    }

    /// Builds the notification message that `receive` delivers.
    pub fn notification(from: Endpoint, kind: NotifyKind) -> Message {
        let mut m = Message::new(NOTIFY_BASE + from.p_nr());
        m.m_source = Endpoint::HARDWARE.0;
        m.m1_mut().i1 = from.0;
        m.m1_mut().i2 = kind as i32;
        m
    }

    /// If this is a notification, the notifying endpoint and the kind.
    pub fn as_notification(&self) -> Option<(Endpoint, NotifyKind)> {
        if self.m_source != Endpoint::HARDWARE.0 {
            return None;
        }
        let kind = match self.m1().i2 {
            0 => NotifyKind::Notify,
            1 => NotifyKind::Exit,
            2 => NotifyKind::Signal,
            _ => return None,
        };
        Some((Endpoint(self.m1().i1), kind))
    }

    /// The message as eight machine words (the shared-memory wire form).
    pub fn to_words(&self) -> [u64; 8] {
        bytemuck::cast(*self)
    }

    /// Rebuilds a message from eight machine words.
    pub fn from_words(w: [u64; 8]) -> Message {
        bytemuck::cast(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_alias_the_same_bytes() {
        let mut m = Message::new(7);
        m.m1_mut().i1 = 11;
        m.m1_mut().p1 = 0xdead_beef;
        assert_eq!(m.m2().i1, 11);
        assert_eq!(m.m4().l3, 0xdead_beef);
        assert_eq!(m.m8().i1, 11);
        let w = m.to_words();
        assert_eq!(Message::from_words(w), m);
        assert_eq!(m.words()[2], 0xdead_beef);
        m.words_mut()[6] = 9;
        assert_eq!(m.m1().tail[1], 9);
    }

    #[test]
    fn notification_round_trip() {
        let m = Message::notification(Endpoint::new(3, 5), NotifyKind::Exit);
        assert_eq!(m.source(), Endpoint::HARDWARE);
        assert_eq!(m.m_type, NOTIFY_BASE + 5);
        assert_eq!(
            m.as_notification(),
            Some((Endpoint::new(3, 5), NotifyKind::Exit))
        );
        assert_eq!(Message::new(1).as_notification(), None);
    }
}
