//! The inter-node frame: a fixed 128-byte header, then `payload_len` bytes.
//!
//! All integers are little-endian. Header layout (byte offsets):
//!
//! | off | size | field |
//! |---:|---:|---|
//! | 0 | 2 | magic `b"DV"` |
//! | 2 | 1 | version ([`VERSION`]) |
//! | 3 | 1 | command ([`Command`]) |
//! | 4 | 2 | flags ([`FLAG_BATCH_MORE`]) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | DC id |
//! | 12 | 4 | source endpoint |
//! | 16 | 4 | destination endpoint |
//! | 20 | 2 | source node |
//! | 22 | 2 | destination node |
//! | 24 | 4 | return code |
//! | 28 | 4 | payload length |
//! | 32 | 8 | send sequence number |
//! | 40 | 8 | acknowledged sequence number (piggy-backed) |
//! | 48 | 8 | timestamp (ns, sender's monotonic clock) |
//! | 56 | 64 | body: an M3-IPC message, or a [`CopyDesc`] |
//! | 120 | 8 | reserved, zero |
//!
//! The decoder never trusts its input: a frame with a bad magic, version,
//! command, reserved bytes, or a payload that is too long or not allowed for
//! its command is an error (and counted), never a panic.

use crate::message::{Message, MESSAGE_SIZE};
use thiserror::Error;

/// Size of the header in bytes.
pub const HEADER_SIZE: usize = 128;
/// Protocol version carried in every header.
pub const VERSION: u8 = 1;
/// Frame magic.
pub const MAGIC: [u8; 2] = *b"DV";
/// Largest payload a frame may carry (a `vcopy` chunk).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Flag: more frames of the same batch follow in this write.
pub const FLAG_BATCH_MORE: u16 = 1;
/// Flags this version knows.
const KNOWN_FLAGS: u16 = FLAG_BATCH_MORE;

/// What a frame asks for (DESIGN §3 command pairs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Command {
    /// First frame on a connection: the sender's node id and its DVS
    /// parameters' identity (in the body).
    Hello = 1,
    /// A message for `send`; answered by [`Command::SendAck`].
    SendMsg = 2,
    /// The ack that unblocks a remote sender.
    SendAck = 3,
    /// A notification; no delivery guarantee.
    NtfyMsg = 4,
    /// A request for `sendrec`; acknowledged like a send, the reply comes
    /// back as [`Command::ReplyMsg`].
    SndrecMsg = 5,
    /// Data from the local source to a remote destination (payload).
    CopyinData = 6,
    /// The destination wrote the data.
    CopyinAck = 7,
    /// Asks a remote source for data.
    CopyoutRqst = 8,
    /// The data asked for (payload).
    CopyoutData = 9,
    /// Both parties are on the receiving node: copy there.
    CopylclRqst = 10,
    /// That copy is done.
    CopylclAck = 11,
    /// Three nodes: the source node sends COPYIN to the destination node.
    CopyrmtRqst = 12,
    /// The three-node copy is done.
    CopyrmtAck = 13,
    /// Nothing but the piggy-backed ack (when there is no traffic to carry
    /// it); also the idle heartbeat.
    Ack = 14,
    /// The sender withdrew a message (timeout): take it back if the
    /// destination has not received it yet.
    Cancel = 15,
    /// The reply of a `sendrec`; never acknowledged.
    ReplyMsg = 16,
    /// Asks the destination node to take part in a DC (payload: the DC's
    /// parameters and the sender's endpoints in it); answered by
    /// [`Command::DcJoinAck`] with the same sequence number.
    DcJoin = 17,
    /// The DC was joined (payload: the joining node's endpoints in it), or
    /// not (`rcode`).
    DcJoinAck = 18,
    /// The DC ended on the sending node: end it here too.
    DcLeave = 19,
    /// A DVK notification (an `Exit` or `Signal` of endpoint `src`, kind in
    /// `rcode`) for endpoint `dst`, which lives on the destination node.
    Kntf = 20,
    /// System endpoint `src` was bound on the sending node (a DC shared
    /// through `dc_join`): register it there as a remote endpoint.
    Register = 21,
    /// System endpoint `src` was unbound on the sending node.
    Unregister = 22,
}

impl Command {
    fn from_u8(v: u8) -> Option<Command> {
        use Command::*;
        Some(match v {
            1 => Hello,
            2 => SendMsg,
            3 => SendAck,
            4 => NtfyMsg,
            5 => SndrecMsg,
            6 => CopyinData,
            7 => CopyinAck,
            8 => CopyoutRqst,
            9 => CopyoutData,
            10 => CopylclRqst,
            11 => CopylclAck,
            12 => CopyrmtRqst,
            13 => CopyrmtAck,
            14 => Ack,
            15 => Cancel,
            16 => ReplyMsg,
            17 => DcJoin,
            18 => DcJoinAck,
            19 => DcLeave,
            20 => Kntf,
            21 => Register,
            22 => Unregister,
            _ => return None,
        })
    }

    /// Whether frames with this command may carry a payload.
    pub fn carries_data(self) -> bool {
        matches!(
            self,
            Command::CopyinData | Command::CopyoutData | Command::DcJoin | Command::DcJoinAck
        )
    }
}

/// A `vcopy` descriptor (in the body of copy frames).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyDesc {
    /// Source endpoint.
    pub src: i32,
    /// Destination endpoint.
    pub dst: i32,
    /// Requester endpoint.
    pub requester: i32,
    /// Address in the source.
    pub src_addr: u64,
    /// Address in the destination.
    pub dst_addr: u64,
    /// Bytes to copy.
    pub bytes: u64,
}

impl CopyDesc {
    fn encode(&self) -> [u8; MESSAGE_SIZE] {
        let mut b = [0u8; MESSAGE_SIZE];
        b[0..4].copy_from_slice(&self.src.to_le_bytes());
        b[4..8].copy_from_slice(&self.dst.to_le_bytes());
        b[8..12].copy_from_slice(&self.requester.to_le_bytes());
        b[16..24].copy_from_slice(&self.src_addr.to_le_bytes());
        b[24..32].copy_from_slice(&self.dst_addr.to_le_bytes());
        b[32..40].copy_from_slice(&self.bytes.to_le_bytes());
        b
    }

    fn decode(b: &[u8; MESSAGE_SIZE]) -> CopyDesc {
        CopyDesc {
            src: i32_at(b, 0),
            dst: i32_at(b, 4),
            requester: i32_at(b, 8),
            src_addr: u64_at(b, 16),
            dst_addr: u64_at(b, 24),
            bytes: u64_at(b, 32),
        }
    }
}

/// The header of a frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the frame asks for.
    pub cmd: Command,
    /// Flags ([`FLAG_BATCH_MORE`]).
    pub flags: u16,
    /// DC id.
    pub dcid: i32,
    /// Source endpoint.
    pub src: i32,
    /// Destination endpoint.
    pub dst: i32,
    /// Source node.
    pub snode: u16,
    /// Destination node.
    pub dnode: u16,
    /// Return code (0 or a negative `EDVS*` code).
    pub rcode: i32,
    /// Send sequence number.
    pub seq: u64,
    /// Highest sequence number received from the peer (piggy-backed ack).
    pub ack: u64,
    /// Sender's timestamp (ns).
    pub timestamp: u64,
    /// The body: a message, or a [`CopyDesc`] for copy commands.
    pub body: [u8; MESSAGE_SIZE],
}

impl Header {
    /// A header with zeroed fields and body.
    pub fn new(cmd: Command) -> Header {
        Header {
            cmd,
            flags: 0,
            dcid: 0,
            src: 0,
            dst: 0,
            snode: 0,
            dnode: 0,
            rcode: 0,
            seq: 0,
            ack: 0,
            timestamp: 0,
            body: [0; MESSAGE_SIZE],
        }
    }

    /// The body as a message.
    pub fn message(&self) -> Message {
        bytemuck::cast(self.body)
    }

    /// Sets the body to a message.
    pub fn set_message(&mut self, m: &Message) {
        self.body = bytemuck::cast(*m);
    }

    /// The body as a copy descriptor.
    pub fn copy_desc(&self) -> CopyDesc {
        CopyDesc::decode(&self.body)
    }

    /// Sets the body to a copy descriptor.
    pub fn set_copy_desc(&mut self, d: &CopyDesc) {
        self.body = d.encode();
    }
}

/// A frame: a header and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The payload (`vcopy` data), empty for most commands.
    pub payload: Vec<u8>,
}

/// Why bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame does not start with the magic: not a dvs peer, or the
    /// stream lost its framing.
    #[error("bad frame magic {0:02x?}")]
    BadMagic([u8; 2]),
    /// A protocol version this node does not speak.
    #[error("unsupported protocol version {0} (this node speaks {VERSION})")]
    BadVersion(u8),
    /// An unknown command.
    #[error("unknown command {0}")]
    BadCommand(u8),
    /// Unknown flags or non-zero reserved bytes.
    #[error("malformed header ({0})")]
    Malformed(&'static str),
    /// A payload longer than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds the limit of {MAX_PAYLOAD}")]
    Oversized(u32),
    /// A payload on a command that carries none.
    #[error("command {0:?} cannot carry a payload")]
    UnexpectedPayload(Command),
}

fn i32_at(b: &[u8], off: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    i32::from_le_bytes(a)
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Appends the encoding of `header` with `payload` to `out`.
///
/// Panics never; a payload longer than [`MAX_PAYLOAD`] or on a command that
/// carries none is refused with the error the decoder would give.
pub fn encode(header: &Header, payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    out.extend_from_slice(&encode_header(header, payload.len())?);
    out.extend_from_slice(payload);
    Ok(())
}

/// The encoded header of a frame whose payload is `payload_len` bytes
/// (the payload follows it on the wire).
pub fn encode_header(header: &Header, payload_len: usize) -> Result<[u8; HEADER_SIZE], FrameError> {
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::Oversized(payload_len as u32));
    }
    if payload_len != 0 && !header.cmd.carries_data() {
        return Err(FrameError::UnexpectedPayload(header.cmd));
    }
    let mut h = [0u8; HEADER_SIZE];
    h[0..2].copy_from_slice(&MAGIC);
    h[2] = VERSION;
    h[3] = header.cmd as u8;
    h[4..6].copy_from_slice(&header.flags.to_le_bytes());
    h[8..12].copy_from_slice(&header.dcid.to_le_bytes());
    h[12..16].copy_from_slice(&header.src.to_le_bytes());
    h[16..20].copy_from_slice(&header.dst.to_le_bytes());
    h[20..22].copy_from_slice(&header.snode.to_le_bytes());
    h[22..24].copy_from_slice(&header.dnode.to_le_bytes());
    h[24..28].copy_from_slice(&header.rcode.to_le_bytes());
    h[28..32].copy_from_slice(&(payload_len as u32).to_le_bytes());
    h[32..40].copy_from_slice(&header.seq.to_le_bytes());
    h[40..48].copy_from_slice(&header.ack.to_le_bytes());
    h[48..56].copy_from_slice(&header.timestamp.to_le_bytes());
    h[56..120].copy_from_slice(&header.body);
    Ok(h)
}

/// Decodes one header; `Ok` also gives the payload length that follows.
pub fn decode_header(h: &[u8; HEADER_SIZE]) -> Result<(Header, usize), FrameError> {
    if h[0..2] != MAGIC {
        return Err(FrameError::BadMagic([h[0], h[1]]));
    }
    if h[2] != VERSION {
        return Err(FrameError::BadVersion(h[2]));
    }
    let cmd = Command::from_u8(h[3]).ok_or(FrameError::BadCommand(h[3]))?;
    let flags = u16_at(h, 4);
    if flags & !KNOWN_FLAGS != 0 {
        return Err(FrameError::Malformed("unknown flags"));
    }
    if h[6..8] != [0, 0] || h[120..128] != [0u8; 8] {
        return Err(FrameError::Malformed("reserved bytes are not zero"));
    }
    let len = u32_at(h, 28);
    if len as usize > MAX_PAYLOAD {
        return Err(FrameError::Oversized(len));
    }
    if len > 0 && !cmd.carries_data() {
        return Err(FrameError::UnexpectedPayload(cmd));
    }
    let mut body = [0u8; MESSAGE_SIZE];
    body.copy_from_slice(&h[56..120]);
    Ok((
        Header {
            cmd,
            flags,
            dcid: i32_at(h, 8),
            src: i32_at(h, 12),
            dst: i32_at(h, 16),
            snode: u16_at(h, 20),
            dnode: u16_at(h, 22),
            rcode: i32_at(h, 24),
            seq: u64_at(h, 32),
            ack: u64_at(h, 40),
            timestamp: u64_at(h, 48),
            body,
        },
        len as usize,
    ))
}

/// Incremental decoder for a byte stream (one TCP connection).
///
/// Feed it what `read` returned, then take frames until it has none. After
/// an error the stream's framing is lost: the connection must be dropped
/// (every later call returns the same error).
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    start: usize,
    failed: Option<FrameError>,
    /// Frames decoded so far.
    pub frames: u64,
    /// Frames rejected so far (0 or 1 per connection, see above).
    pub rejected: u64,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends bytes received from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The header and payload length of the next frame, if its header is
    /// here. A bad header fails the stream (see [`Decoder`]).
    fn peek_header(&mut self) -> Result<Option<(Header, usize)>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(head) = self.buf[self.start..].first_chunk::<HEADER_SIZE>() else {
            return Ok(None);
        };
        match decode_header(head) {
            Ok(x) => Ok(Some(x)),
            Err(e) => {
                self.rejected += 1;
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some((header, len)) = self.peek_header()? else {
            return Ok(None);
        };
        let avail = &self.buf[self.start..];
        if avail.len() < HEADER_SIZE + len {
            return Ok(None);
        }
        let payload = avail[HEADER_SIZE..HEADER_SIZE + len].to_vec();
        self.start += HEADER_SIZE + len;
        self.frames += 1;
        Ok(Some(Frame { header, payload }))
    }

    /// The next frame, when its header is here, its payload is at least
    /// `min` bytes long and not all here yet: its header, the part of its
    /// payload received so far (with room for the rest) and the payload's
    /// length. The caller reads the rest of the payload from the stream
    /// straight into the vector; the decoder is empty afterwards. A large
    /// payload is copied once, not gathered here and copied out again.
    pub fn begin_large(
        &mut self,
        min: usize,
    ) -> Result<Option<(Header, Vec<u8>, usize)>, FrameError> {
        let Some((header, len)) = self.peek_header()? else {
            return Ok(None);
        };
        let avail = &self.buf[self.start..];
        if len < min || avail.len() >= HEADER_SIZE + len {
            return Ok(None);
        }
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&avail[HEADER_SIZE..]);
        self.buf.clear();
        self.start = 0;
        self.frames += 1;
        Ok(Some((header, payload, len)))
    }

    /// Bytes received but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cmd: Command) -> Header {
        let mut h = Header::new(cmd);
        h.dcid = 3;
        h.src = 70000;
        h.dst = -2;
        h.snode = 1;
        h.dnode = 2;
        h.rcode = -301;
        h.seq = 42;
        h.ack = 41;
        h.timestamp = 123_456_789;
        h
    }

    #[test]
    fn a_large_payload_is_handed_over_unfinished() {
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut copy = sample(Command::CopyinData);
        copy.set_copy_desc(&CopyDesc {
            src: 1,
            dst: 2,
            requester: 3,
            src_addr: 0,
            dst_addr: 0,
            bytes: big.len() as u64,
        });
        let mut wire = Vec::new();
        encode(&copy, &big, &mut wire).unwrap();
        let mut small = copy;
        small.set_copy_desc(&CopyDesc {
            src: 1,
            dst: 2,
            requester: 3,
            src_addr: 0,
            dst_addr: 0,
            bytes: 5,
        });
        encode(&small, b"after", &mut wire).unwrap();
        let mut d = Decoder::new();
        // Not even a header yet, then a header and part of the payload.
        d.feed(&wire[..10]);
        assert!(d.begin_large(64 * 1024).unwrap().is_none());
        let cut = HEADER_SIZE + 70_000;
        d.feed(&wire[10..cut]);
        // Small frames are not taken this way.
        assert!(d.begin_large(300_000).unwrap().is_none());
        let (h, mut payload, len) = d.begin_large(64 * 1024).unwrap().expect("large frame");
        assert_eq!((h, len, payload.len()), (copy, big.len(), 70_000));
        assert_eq!(d.pending(), 0);
        // The caller reads the rest of the payload; the next frame follows.
        payload.extend_from_slice(&wire[cut..HEADER_SIZE + big.len()]);
        assert!(payload == big);
        d.feed(&wire[HEADER_SIZE + big.len()..]);
        let next = d.next_frame().unwrap().expect("next frame");
        assert_eq!(next.payload, b"after");
        // A large frame that is all here is an ordinary frame.
        let mut d = Decoder::new();
        d.feed(&wire);
        assert!(d.begin_large(64 * 1024).unwrap().is_none());
        assert!(d.next_frame().unwrap().unwrap().payload == big);
    }

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let mut m = Message::new(7);
        m.m1_mut().i1 = 99;
        let mut send = sample(Command::SndrecMsg);
        send.set_message(&m);
        let mut copy = sample(Command::CopyinData);
        let desc = CopyDesc {
            src: 1,
            dst: 2,
            requester: 3,
            src_addr: 0x1000,
            dst_addr: 0x2000,
            bytes: 5,
        };
        copy.set_copy_desc(&desc);
        let mut wire = Vec::new();
        encode(&send, &[], &mut wire).unwrap();
        encode(&copy, b"hello", &mut wire).unwrap();

        let mut d = Decoder::new();
        d.feed(&wire);
        let f1 = d.next_frame().unwrap().unwrap();
        let f2 = d.next_frame().unwrap().unwrap();
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(f1.header, send);
        assert_eq!(f1.header.message(), m);
        assert_eq!(f2.header.copy_desc(), desc);
        assert_eq!(f2.payload, b"hello");

        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &wire {
            d.feed(std::slice::from_ref(b));
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![f1, f2]);
        assert_eq!(d.frames, 2);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn malformed_frames_are_rejected_and_counted() {
        let mut good = Vec::new();
        encode(&sample(Command::SendMsg), &[], &mut good).unwrap();
        // (offset, bytes written there, expected error)
        let cases: Vec<(usize, Vec<u8>, FrameError)> = vec![
            (0, vec![b'X'], FrameError::BadMagic([b'X', b'V'])),
            (2, vec![9], FrameError::BadVersion(9)),
            (3, vec![200], FrameError::BadCommand(200)),
            (4, vec![0x80], FrameError::Malformed("unknown flags")),
            (
                125,
                vec![1],
                FrameError::Malformed("reserved bytes are not zero"),
            ),
            (
                28,
                u32::MAX.to_le_bytes().to_vec(),
                FrameError::Oversized(u32::MAX),
            ),
            (
                28,
                4u32.to_le_bytes().to_vec(),
                FrameError::UnexpectedPayload(Command::SendMsg),
            ),
        ];
        for (off, bytes, want) in cases {
            let mut w = good.clone();
            w[off..off + bytes.len()].copy_from_slice(&bytes);
            let mut d = Decoder::new();
            d.feed(&w);
            assert_eq!(d.next_frame(), Err(want.clone()));
            assert_eq!(d.rejected, 1);
            // The connection stays failed.
            d.feed(&good);
            assert_eq!(d.next_frame(), Err(want));
        }
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut out = Vec::new();
        assert_eq!(
            encode(&sample(Command::SendMsg), b"x", &mut out),
            Err(FrameError::UnexpectedPayload(Command::SendMsg))
        );
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            encode(&sample(Command::CopyinData), &big, &mut out),
            Err(FrameError::Oversized(_))
        ));
        assert!(out.is_empty());
    }
}
