//! Fuzzes the inter-node frame decoder: arbitrary bytes, fed in arbitrary
//! chunks, must never panic; every frame it accepts must re-encode to
//! exactly the bytes it consumed.
//!
//! Run: `cd dvk/fuzz && cargo +nightly fuzz run frame_decoder -- -runs=1000000`

#![no_main]

use dvk::proxy::frame::{encode, Decoder, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the chunk size, so that split headers and
    // payloads are exercised too.
    let Some((&chunk, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut d = Decoder::new();
    let mut consumed = 0usize;
    for piece in bytes.chunks(chunk) {
        d.feed(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    let mut again = Vec::new();
                    encode(&f.header, &f.payload, &mut again)
                        .expect("an accepted frame re-encodes");
                    let len = HEADER_SIZE + f.payload.len();
                    assert_eq!(&again[..], &bytes[consumed..consumed + len]);
                    consumed += len;
                }
                Ok(None) => break,
                Err(_) => {
                    assert_eq!(d.rejected, 1);
                    return;
                }
            }
        }
    }
    assert_eq!(consumed + d.pending(), bytes.len());
});
