//! An HDF5 chunk index entry (address, stored size, filter mask), a
//! filter pipeline and the bytes of a file, through the code that turns
//! the entry into a read of the file: `internals::hdf5_stored_chunk`,
//! which runs the store's own checks (`store/hdf5/index.rs`: a stored
//! size no pipeline makes of the chunk, bytes past the end of the file,
//! an unfiltered chunk of the wrong size) and then decodes the stored
//! bytes with `filters::decode` (shuffle, deflate, LZ4) into a buffer of
//! the chunk's size; and the LZ4 filter chunkyard registers with HDF5
//! (`hdf5_lz4_filter_decode`) on the same bytes.
//!
//! Why not whole corrupt files through libhdf5: HDF5 itself (1.10, C,
//! not instrumented) crashed on mutated files within about 3,500 inputs
//! (a SEGV in `H5F__accum_read` under `H5Dopen`'s group lookup; a 412 GB
//! allocation in `H5C_protect`), so such a target tests HDF5 and fails
//! every run; see fuzz/README.md.
//!
//! Input: a 32-byte header, then the file's bytes:
//! - 0: number of filter steps (0-3, low two bits);
//! - 1-3: each step's kind (mod 3: shuffle, deflate, LZ4); 4-6: its
//!   parameter (the shuffle's element size, 1-16);
//! - 7-10: the filter mask (u32 LE; bit i: step i skipped);
//! - 11-14: the chunk's decoded size (u32 LE, at most 4 MiB here);
//! - 15: bit 0: an unfiltered (raw) chunk;
//! - 16-23, 24-31: the entry's address and stored size (u64 LE).
//!
//! Checked: a value or a typed error, never a panic, a read past the
//! file's bytes (ASan: an out-of-bounds slice panics), or an allocation of
//! what the entry or the stored bytes claim (run.sh's `-malloc_limit_mb`).
#![no_main]

use chunkyard::internals::{Hdf5Step, hdf5_lz4_filter_decode, hdf5_stored_chunk};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 32;

fn u32_at(d: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(d[i..i + 4].try_into().unwrap())
}

fn u64_at(d: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(d[i..i + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, file) = data.split_at(HEADER);
    let steps: Vec<Hdf5Step> = (0..usize::from(head[0] & 3))
        .map(|i| match head[1 + i] % 3 {
            0 => Hdf5Step::Shuffle(usize::from(head[4 + i] % 16) + 1),
            1 => Hdf5Step::Deflate(6),
            _ => Hdf5Step::Lz4(0),
        })
        .collect();
    let mask = u32_at(head, 7);
    let chunk = (u32_at(head, 11) as usize).min(4 << 20);
    let raw = head[15] & 1 == 1;
    let (addr, size) = (u64_at(head, 16), u64_at(head, 24));
    let mut out = vec![0u8; chunk];
    let got = hdf5_stored_chunk(file, addr, size, mask, &steps, raw, &mut out);
    if got.is_ok() && raw {
        let at = addr as usize;
        assert_eq!(&out[..], &file[at..at + chunk], "a raw chunk is its bytes");
    }
    if let Ok(d) = hdf5_lz4_filter_decode(file, chunk) {
        assert!(
            d.len() <= chunk,
            "LZ4 made {} bytes, limit {chunk}",
            d.len()
        );
    }
});
