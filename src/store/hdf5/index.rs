//! What chunkyard makes of an entry of HDF5's chunk index (an address
//! and a stored size, looked up through HDF5) before it reads the file
//! there itself: the checks that keep a corrupt entry from making it read
//! or map past the end of the file, or allocate what the entry claims.
//! Pure functions, so that the `hdf5_chunks` fuzz target runs the same
//! checks, and the same decoding, on any entry and any bytes
//! ([`stored_chunk`]).

use super::filters::{self, Step};

/// Filters add at most a few bytes per block: a stored size over this,
/// for a chunk of `expected` decoded bytes, is a corrupt chunk index.
pub(super) fn check_stored_size(size: u64, expected: u64) -> Result<(), String> {
    if size > expected.saturating_mul(2).saturating_add(1 << 16) {
        return Err(format!(
            "the chunk index claims {size} stored bytes for a chunk of {expected}"
        ));
    }
    Ok(())
}

/// Whether `size` bytes at `addr` lie inside a file of `len` bytes.
pub(super) fn within_file(addr: u64, size: u64, len: u64) -> bool {
    addr.checked_add(size).is_some_and(|end| end <= len)
}

/// An unfiltered chunk's entry: exactly the chunk's `want` bytes, inside
/// a file of `len` bytes.
pub(super) fn check_raw(addr: u64, size: u64, want: u64, len: u64) -> Result<(), String> {
    if size != want || !within_file(addr, size, len) {
        return Err(format!(
            "the chunk index places {size} bytes at {addr} \
             (an unfiltered chunk holds {want}; the file holds {len})"
        ));
    }
    Ok(())
}

/// Reads the chunk that the index entry (`addr`, `size`, `mask`) places
/// in `file` into `out` (the chunk's decoded size), as the store does
/// with the file's map: an unfiltered chunk (`steps` empty and `raw`)
/// checked by [`check_raw`]; a filtered one by [`check_stored_size`] and
/// [`within_file`], then decoded through `steps` in Rust. The
/// `hdf5_chunks` fuzz target's entry point. Not part of the API.
#[doc(hidden)]
pub fn stored_chunk(
    file: &[u8],
    addr: u64,
    size: u64,
    mask: u32,
    steps: &[Step],
    raw: bool,
    out: &mut [u8],
) -> Result<(), String> {
    let len = file.len() as u64;
    if raw {
        check_raw(addr, size, out.len() as u64, len)?;
    } else {
        check_stored_size(size, out.len() as u64)?;
        if !within_file(addr, size, len) {
            return Err(format!(
                "its {size} stored bytes at {addr} lie past the end of the file ({len} bytes)"
            ));
        }
    }
    // In bounds: checked above.
    let stored = &file[addr as usize..(addr + size) as usize];
    if raw {
        out.copy_from_slice(stored);
        return Ok(());
    }
    filters::decode(steps, mask, stored, out)
}

/// The LZ4 filter's decoder (HDF5 calls it through the filter chunkyard
/// registers, `ffi`), for the fuzz target. Not part of the API.
#[doc(hidden)]
pub fn lz4_filter_decode(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    filters::lz4_decode(data, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_outside_the_file_are_errors_not_reads() {
        let file = [7u8; 64];
        let mut out = [0u8; 16];
        // Raw: inside, past the end, overflowing the address space, the
        // wrong size.
        assert!(stored_chunk(&file, 48, 16, 0, &[], true, &mut out).is_ok());
        assert_eq!(out, [7u8; 16]);
        for (addr, size) in [(49, 16), (u64::MAX - 8, 16), (0, 15), (0, 17)] {
            let e = stored_chunk(&file, addr, size, 0, &[], true, &mut out).unwrap_err();
            assert!(e.contains("the chunk index places"), "{e}");
        }
        // Filtered: a claimed size no pipeline makes of 16 bytes, and
        // stored bytes past the end (or wrapping around).
        let deflate = [Step::Deflate(6)];
        let e = stored_chunk(&file, 0, 1 << 40, 0, &deflate, false, &mut out).unwrap_err();
        assert!(e.contains("claims 1099511627776 stored bytes"), "{e}");
        for (addr, size) in [(60, 8), (u64::MAX, 2)] {
            let e = stored_chunk(&file, addr, size, 0, &deflate, false, &mut out).unwrap_err();
            assert!(e.contains("past the end of the file"), "{e}");
        }
    }

    #[test]
    fn a_filtered_entry_inside_the_file_decodes() {
        let data: Vec<u8> = (0..16).collect();
        let stored = filters::encode(&[Step::Deflate(6)], &data).unwrap();
        let mut file = vec![0u8; 10];
        file.extend_from_slice(&stored);
        let mut out = [0u8; 16];
        stored_chunk(
            &file,
            10,
            stored.len() as u64,
            0,
            &[Step::Deflate(6)],
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..], &data[..]);
        // Masked off (bit 0: the deflate step skipped): the stored bytes
        // are taken as the chunk, and are not 16 bytes long.
        assert!(
            stored_chunk(
                &file,
                10,
                stored.len() as u64,
                1,
                &[Step::Deflate(6)],
                false,
                &mut out
            )
            .is_err()
        );
    }
}
