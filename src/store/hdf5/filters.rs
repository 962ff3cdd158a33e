//! HDF5 filter pipelines that chunkyard runs itself, in Rust, so that
//! chunks are compressed and decompressed on rayon threads outside HDF5's
//! global lock: shuffle (filter 2), deflate (filter 1, a zlib stream as
//! HDF5's own filter writes it) and LZ4 (filter 32004, the framing of the
//! HDF Group's `H5Zlz4.c` that `hdf5plugin` ships).
//!
//! # The LZ4 framing (filter 32004)
//!
//! ```text
//! u64 BE   total uncompressed size
//! u32 BE   block size (uncompressed bytes per block; the last may be shorter)
//! per block:
//!   u32 BE compressed size
//!   bytes  an LZ4 block, or the raw block when the compressed size equals
//!          the block's uncompressed size (compression did not shrink it)
//! ```
//!
//! `H5Zlz4.c` takes the block size from the first filter parameter, or
//! 1 GiB when it is 0 (what `hdf5plugin.LZ4()` stores); chunkyard writes
//! the same parameter and so one block per chunk below 1 GiB.

use std::io::{Read, Write};

/// HDF5's deflate filter id.
pub const FILTER_DEFLATE: i32 = 1;
/// HDF5's shuffle filter id.
pub const FILTER_SHUFFLE: i32 = 2;
/// The registered id of the HDF5 LZ4 filter.
pub const FILTER_LZ4: i32 = 32004;

/// The LZ4 filter's default block size (`H5Zlz4.c`: 1 GiB).
const LZ4_DEFAULT_BLOCK: usize = 1 << 30;

/// One step of a filter pipeline chunkyard can run itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Byte shuffle with this element size.
    Shuffle(usize),
    /// zlib stream at this level.
    Deflate(u32),
    /// The LZ4 framing with this block size (0: the default).
    Lz4(usize),
}

/// Runs the pipeline forward (as HDF5 does on write), skipping no step.
pub fn encode(steps: &[Step], data: &[u8]) -> Result<Vec<u8>, String> {
    let mut buf = data.to_vec();
    for s in steps {
        buf = match *s {
            Step::Shuffle(n) => shuffle(&buf, n),
            Step::Deflate(level) => deflate(&buf, level)?,
            Step::Lz4(block) => lz4_encode(&buf, block)?,
        };
    }
    Ok(buf)
}

/// Runs the pipeline backwards (as HDF5 does on read). Bit `i` of
/// `mask` set means step `i` was skipped when the chunk was written. No
/// step may produce more than `limit` bytes (the decoded chunk's size), so
/// a corrupt or hostile chunk cannot make us allocate more.
pub fn decode(steps: &[Step], mask: u32, data: Vec<u8>, limit: usize) -> Result<Vec<u8>, String> {
    let mut buf = data;
    for (i, s) in steps.iter().enumerate().rev() {
        if i < 32 && mask & (1 << i) != 0 {
            continue;
        }
        buf = match *s {
            Step::Shuffle(n) => unshuffle(&buf, n),
            Step::Deflate(_) => inflate(&buf, limit)?,
            Step::Lz4(_) => lz4_decode(&buf, limit)?,
        };
    }
    Ok(buf)
}

/// HDF5's shuffle: all first bytes of the elements, then all second
/// bytes, ...; a tail that is not a whole element stays in place.
fn shuffle(data: &[u8], size: usize) -> Vec<u8> {
    if size <= 1 {
        return data.to_vec();
    }
    let n = data.len() / size;
    let mut out = vec![0u8; data.len()];
    for (e, elem) in data.chunks_exact(size).enumerate() {
        for (b, &byte) in elem.iter().enumerate() {
            out[b * n + e] = byte;
        }
    }
    out[n * size..].copy_from_slice(&data[n * size..]);
    out
}

fn unshuffle(data: &[u8], size: usize) -> Vec<u8> {
    if size <= 1 {
        return data.to_vec();
    }
    let n = data.len() / size;
    let mut out = vec![0u8; data.len()];
    for (e, elem) in out.chunks_exact_mut(size).enumerate() {
        for (b, byte) in elem.iter_mut().enumerate() {
            *byte = data[b * n + e];
        }
    }
    out[n * size..].copy_from_slice(&data[n * size..]);
    out
}

fn deflate(data: &[u8], level: u32) -> Result<Vec<u8>, String> {
    let mut enc = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::new(level.min(9)),
    );
    enc.write_all(data).map_err(|e| format!("deflate: {e}"))?;
    enc.finish().map_err(|e| format!("deflate: {e}"))
}

fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("deflate stream is corrupt: {e}"))?;
    if out.len() > limit {
        return Err(format!(
            "deflate stream decompresses to more than the chunk's {limit} bytes"
        ));
    }
    Ok(out)
}

/// The LZ4 framing of filter 32004 (see the module docs).
pub fn lz4_encode(data: &[u8], block: usize) -> Result<Vec<u8>, String> {
    if data.len() > i32::MAX as usize {
        return Err("the HDF5 LZ4 filter takes chunks below 2 GiB".into());
    }
    let block = if block == 0 { LZ4_DEFAULT_BLOCK } else { block }
        .min(data.len())
        .max(1);
    let mut out = Vec::with_capacity(12 + lz4_flex::block::get_maximum_output_size(data.len()));
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(&(block as u32).to_be_bytes());
    for piece in data.chunks(block) {
        let packed = lz4_flex::block::compress(piece);
        if packed.len() < piece.len() {
            out.extend_from_slice(&(packed.len() as u32).to_be_bytes());
            out.extend_from_slice(&packed);
        } else {
            out.extend_from_slice(&(piece.len() as u32).to_be_bytes());
            out.extend_from_slice(piece);
        }
    }
    Ok(out)
}

/// Reverses [`lz4_encode`] (and `H5Zlz4.c`), checking every length.
pub fn lz4_decode(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let bad = |what: &str| format!("LZ4 chunk is corrupt: {what}");
    let (head, mut rest) = data
        .split_at_checked(12)
        .ok_or_else(|| bad("shorter than its 12-byte header"))?;
    let total = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let mut block = u32::from_be_bytes(head[8..].try_into().expect("4 bytes")) as u64;
    if total > i32::MAX as u64 || total > limit as u64 {
        return Err(bad(&format!(
            "claims {total} uncompressed bytes, more than the {} expected",
            limit.min(i32::MAX as usize)
        )));
    }
    if block > total {
        block = total;
    }
    if block == 0 && total > 0 {
        return Err(bad("block size 0"));
    }
    let mut out = vec![0u8; total as usize];
    let mut done = 0usize;
    while done < out.len() {
        let len = (block as usize).min(out.len() - done);
        let (size, tail) = rest
            .split_at_checked(4)
            .ok_or_else(|| bad("truncated block header"))?;
        let size = u32::from_be_bytes(size.try_into().expect("4 bytes")) as usize;
        let (payload, tail) = tail
            .split_at_checked(size)
            .ok_or_else(|| bad("truncated block"))?;
        let dst = &mut out[done..done + len];
        if size == len {
            dst.copy_from_slice(payload);
        } else {
            let n =
                lz4_flex::block::decompress_into(payload, dst).map_err(|e| bad(&e.to_string()))?;
            if n != len {
                return Err(bad("a block decompressed to the wrong size"));
            }
        }
        done += len;
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i / 7) % 13) as u8).collect()
    }

    #[test]
    fn every_pipeline_round_trips() {
        let data = sample(1003);
        for steps in [
            vec![],
            vec![Step::Shuffle(4)],
            vec![Step::Deflate(6)],
            vec![Step::Lz4(0)],
            vec![Step::Lz4(100)],
            vec![Step::Shuffle(8), Step::Deflate(1)],
            vec![Step::Shuffle(2), Step::Lz4(0)],
        ] {
            let enc = encode(&steps, &data).unwrap();
            assert_eq!(
                decode(&steps, 0, enc, data.len()).unwrap(),
                data,
                "{steps:?}"
            );
        }
    }

    #[test]
    fn shuffle_matches_hdf5_layout() {
        let data = [1, 2, 3, 4, 5, 6, 7];
        assert_eq!(shuffle(&data, 2), vec![1, 3, 5, 2, 4, 6, 7]);
        assert_eq!(unshuffle(&shuffle(&data, 3), 3), data);
    }

    #[test]
    fn masked_steps_are_skipped() {
        let data = sample(500);
        let only_deflate = deflate(&data, 6).unwrap();
        // Step 0 (shuffle) was skipped when written: bit 0 set.
        let steps = [Step::Shuffle(4), Step::Deflate(6)];
        assert_eq!(decode(&steps, 1, only_deflate, data.len()).unwrap(), data);
    }

    #[test]
    fn lz4_layout_is_h5zlz4s() {
        // What hdf5plugin 7.1 wrote for a 2000-byte chunk of zeros with a 7
        // in its first five i32s: one block, 24 compressed bytes.
        let mut chunk = vec![0u8; 2000];
        for i in 0..5 {
            chunk[i * 4] = 7;
        }
        let written =
            hex("00000000000007d0000007d0000000184c0700000004000f0200ffffffffffffffab500000000000");
        assert_eq!(lz4_decode(&written, usize::MAX).unwrap(), chunk);
        let ours = lz4_encode(&chunk, 0).unwrap();
        assert_eq!(&ours[..12], &written[..12]);
        assert_eq!(lz4_decode(&ours, usize::MAX).unwrap(), chunk);
        // Incompressible blocks are stored raw with their own length.
        let noise: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let raw = lz4_encode(&noise, 0).unwrap();
        assert_eq!(raw.len(), 12 + 4 + 64);
        assert_eq!(&raw[12..16], &64u32.to_be_bytes());
        assert_eq!(&raw[16..], &noise[..]);
    }

    #[test]
    fn corrupt_lz4_is_an_error() {
        let good = lz4_encode(&sample(4000), 1000).unwrap();
        for cut in [0, 5, 12, 15, 20, good.len() - 1] {
            assert!(
                lz4_decode(&good[..cut], usize::MAX).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge = good.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(lz4_decode(&huge, usize::MAX).is_err());
        let mut garbage = good;
        for b in &mut garbage[16..40] {
            *b = 0xff;
        }
        assert!(lz4_decode(&garbage, usize::MAX).is_err());
        assert!(inflate(b"not zlib", 100).is_err());
        // A stream that inflates past the limit is refused, not allocated.
        let bomb = deflate(&vec![0u8; 1 << 20], 9).unwrap();
        assert!(bomb.len() < 4096);
        assert!(inflate(&bomb, 1 << 20).is_ok());
        let err = inflate(&bomb, 1000).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let small = lz4_encode(&sample(4000), 1000).unwrap();
        assert!(
            lz4_decode(&small, 3999).is_err(),
            "declared size over the limit"
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
