//! Blosc 1 frames (the spec Zarr `blosc` codec, `src/store/zarr/blosc.rs`):
//! arbitrary bytes decoded as a frame, and arbitrary data encoded with
//! arbitrary parameters and decoded back.
//!
//! Checked:
//! - decoding any bytes into a buffer of the size the caller expects (the
//!   chunk's size, never what the header claims) is a value or an error:
//!   no panic, no read past the frame, no allocation of what it states;
//! - a frame that decodes without error fills the buffer exactly once its
//!   header's size matches;
//! - every frame `encode` makes is at most `encoded_bound` bytes, states
//!   the data's size, and decodes to the data.
#![no_main]

use chunkyard::internals::blosc::{self, Compressor, Shuffle};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// How many bytes the caller expects, for the decode of `bytes`.
    expect: u16,
    typesize: u8,
    shuffle: u8,
    cname: u8,
    clevel: u8,
    /// A forced block size (0: c-blosc's choice).
    blocksize: u16,
    bytes: Vec<u8>,
}

fuzz_target!(|input: Input| {
    // Any bytes as a frame. The caller's buffer has the chunk's size; take
    // the header's own claim only when it is small.
    let want = match blosc::decoded_len(&input.bytes) {
        Ok(n) if n <= 1 << 16 => n,
        _ => usize::from(input.expect),
    };
    let mut out = vec![0u8; want];
    let _ = blosc::decode_into(&input.bytes, &mut out);

    // The same bytes as data, encoded and decoded back.
    let shuffle = match input.shuffle % 3 {
        0 => Shuffle::No,
        1 => Shuffle::Byte,
        _ => Shuffle::Bit,
    };
    let cname = match input.cname % 4 {
        0 => Compressor::Lz4,
        1 => Compressor::Lz4hc,
        2 => Compressor::Zlib,
        _ => Compressor::Zstd,
    };
    let clevel = input.clevel % 10;
    let data = &input.bytes;
    let frame = match blosc::encode(
        data,
        usize::from(input.typesize),
        shuffle,
        cname,
        clevel,
        usize::from(input.blocksize),
    ) {
        Ok(f) => f,
        Err(e) => panic!("encode refused {} bytes ({input:?}): {e}", data.len()),
    };
    assert!(
        frame.len() <= blosc::encoded_bound(data.len()),
        "a frame of {} bytes for {} bytes of data",
        frame.len(),
        data.len()
    );
    assert_eq!(blosc::decoded_len(&frame), Ok(data.len()));
    let mut back = vec![0u8; data.len()];
    blosc::decode_into(&frame, &mut back).expect("a frame encode made decodes");
    assert!(back == *data, "decoded data differs ({input:?})");
});
