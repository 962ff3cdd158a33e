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

use std::io::{self, Read};

use crate::buffer::ChunkBuf;

/// The registered id of the HDF5 LZ4 filter.
pub(crate) const FILTER_LZ4: i32 = 32004;

/// The LZ4 filter's default block size (`H5Zlz4.c`: 1 GiB).
const LZ4_DEFAULT_BLOCK: usize = 1 << 30;

/// One step of a filter pipeline chunkyard can run itself. (`pub` for
/// the fuzz target, through `internals`; not part of the API.)
#[doc(hidden)]
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
/// Every step writes into a [`ChunkBuf`], whose pages go back to the
/// system when it is dropped: with `Vec`s, glibc would keep freed 16 MB
/// encode buffers in its heaps, which a build and the reads after it
/// would carry (`docs/benchmarks.md#chunk-buffers-as-maps`).
pub(crate) fn encode(steps: &[Step], data: &[u8]) -> Result<ChunkBuf, String> {
    let mut cur: Option<ChunkBuf> = None;
    for s in steps {
        let input: &[u8] = cur.as_deref().unwrap_or(data);
        let next = match *s {
            Step::Shuffle(n) => shuffle(input, n),
            Step::Deflate(level) => deflate(input, level)?,
            Step::Lz4(block) => lz4_encode(input, block)?,
        };
        cur = Some(next);
    }
    Ok(cur.unwrap_or_else(|| ChunkBuf::copy_of(data)))
}

/// Runs the pipeline backwards (as HDF5 does on read) into `out`, which
/// the decoded chunk must fill exactly. Bit `i` of `mask` set means step
/// `i` was skipped when the chunk was written. The last step must make
/// exactly `out.len()` bytes and steps before it at most a little more
/// (a compressed stream may be longer than the chunk), so a corrupt or
/// hostile chunk cannot make us allocate more. The last step writes into `out` itself; steps before it
/// write into buffers of their own that are unmapped when dropped
/// ([`ChunkBuf`]), so that a large chunk leaves no block in malloc's heap.
pub(crate) fn decode(steps: &[Step], mask: u32, data: &[u8], out: &mut [u8]) -> Result<(), String> {
    let active: Vec<Step> = steps
        .iter()
        .enumerate()
        .rev()
        .filter(|&(i, _)| i >= 32 || mask & (1 << i) == 0)
        .map(|(_, &s)| s)
        .collect();
    let Some((&last, before)) = active.split_last() else {
        if data.len() != out.len() {
            return Err(format!(
                "{} stored bytes, no filter applied, for a chunk of {}",
                data.len(),
                out.len()
            ));
        }
        out.copy_from_slice(data);
        return Ok(());
    };
    // A step before the last may make a compressed stream (of a pipeline
    // with two compressors), which can be a little longer than the chunk.
    let most = out.len() + out.len() / 64 + (1 << 16);
    // A step's output: its buffer and how much of it is used.
    let mut held: Option<(ChunkBuf, usize)> = None;
    for &step in before {
        let input = held.as_ref().map_or(data, |(b, n)| &b[..*n]);
        let next = match step {
            Step::Shuffle(n) => {
                let mut b = ChunkBuf::zeroed(input.len());
                unshuffle_into(input, n, &mut b);
                (b, input.len())
            }
            // Not known until inflated: room for the most it may make,
            // of which only the pages written become resident.
            Step::Deflate(_) => {
                let mut b = ChunkBuf::zeroed(most);
                let n = inflate_some(input, &mut b)?;
                (b, n)
            }
            Step::Lz4(_) => {
                let (len, _) = lz4_header(input, most)?;
                let mut b = ChunkBuf::zeroed(len);
                lz4_decode_into(input, &mut b)?;
                (b, len)
            }
        };
        held = Some(next);
    }
    step_into(last, held.as_ref().map_or(data, |(b, n)| &b[..*n]), out)
}

/// One decoding step from `input` into `out`, which it must fill exactly.
fn step_into(step: Step, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    match step {
        Step::Shuffle(n) => {
            if input.len() != out.len() {
                return Err(format!(
                    "shuffled data of {} bytes for {} expected",
                    input.len(),
                    out.len()
                ));
            }
            unshuffle_into(input, n, out);
            Ok(())
        }
        Step::Deflate(_) => inflate_into(input, out),
        Step::Lz4(_) => lz4_decode_into(input, out),
    }
}

/// HDF5's shuffle: all first bytes of the elements, then all second
/// bytes, ...; a tail that is not a whole element stays in place.
fn shuffle(data: &[u8], size: usize) -> ChunkBuf {
    if size <= 1 {
        return ChunkBuf::copy_of(data);
    }
    let n = data.len() / size;
    let mut out = ChunkBuf::zeroed(data.len());
    for (e, elem) in data.chunks_exact(size).enumerate() {
        for (b, &byte) in elem.iter().enumerate() {
            out[b * n + e] = byte;
        }
    }
    out[n * size..].copy_from_slice(&data[n * size..]);
    out
}

#[cfg(test)]
fn unshuffle(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    unshuffle_into(data, size, &mut out);
    out
}

/// Reverses [`shuffle`] into `out` (as long as `data`).
fn unshuffle_into(data: &[u8], size: usize, out: &mut [u8]) {
    debug_assert_eq!(data.len(), out.len());
    if size <= 1 {
        out.copy_from_slice(data);
        return;
    }
    let n = data.len() / size;
    for (e, elem) in out.chunks_exact_mut(size).enumerate() {
        for (b, byte) in elem.iter_mut().enumerate() {
            *byte = data[b * n + e];
        }
    }
    out[n * size..].copy_from_slice(&data[n * size..]);
}

/// zlib's `compressBound`: what zlib makes of `n` bytes at most (stored
/// blocks). flate2's default backend (miniz_oxide) can make a little more
/// of incompressible data, so [`deflate`] grows its buffer if it must.
fn deflate_bound(n: usize) -> usize {
    n + (n >> 12) + (n >> 14) + (n >> 25) + 13
}

fn deflate(data: &[u8], level: u32) -> Result<ChunkBuf, String> {
    let mut out = ChunkBuf::zeroed(deflate_bound(data.len()) + 64);
    let mut enc = flate2::Compress::new(flate2::Compression::new(level.min(9)), true);
    loop {
        let (i, o) = (enc.total_in() as usize, enc.total_out() as usize);
        let status = enc
            .compress(&data[i..], &mut out[o..], flate2::FlushCompress::Finish)
            .map_err(|e| format!("deflate: {e}"))?;
        let now = enc.total_out() as usize;
        if status == flate2::Status::StreamEnd {
            out.truncate(now);
            return Ok(out);
        }
        if now == out.len() {
            let mut bigger = ChunkBuf::zeroed(out.len() + out.len() / 8 + 4096);
            bigger[..now].copy_from_slice(&out);
            out = bigger;
        } else if now == o && enc.total_in() as usize == i {
            return Err(format!(
                "deflate: no progress after {i} of {} bytes",
                data.len()
            ));
        }
    }
}

#[cfg(test)]
fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; limit];
    let n = inflate_some(data, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Inflates a zlib stream into the start of `out`; returns how many bytes
/// it made. A stream that would make more than `out.len()` is an error.
fn inflate_some(data: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let corrupt = |e: io::Error| format!("deflate stream is corrupt: {e}");
    let mut dec = flate2::read::ZlibDecoder::new(data);
    let mut done = 0;
    while done < out.len() {
        match dec.read(&mut out[done..]).map_err(corrupt)? {
            0 => return Ok(done),
            k => done += k,
        }
    }
    if dec.read(&mut [0u8; 1]).map_err(corrupt)? != 0 {
        return Err(format!(
            "deflate stream decompresses to more than the chunk's {} bytes",
            out.len()
        ));
    }
    Ok(done)
}

/// Inflates a zlib stream into `out`, which it must fill exactly.
fn inflate_into(data: &[u8], out: &mut [u8]) -> Result<(), String> {
    let n = inflate_some(data, out)?;
    if n != out.len() {
        return Err(format!(
            "deflate stream decompresses to {n} bytes, the chunk holds {}",
            out.len()
        ));
    }
    Ok(())
}

/// The LZ4 framing of filter 32004 (see the module docs).
pub(crate) fn lz4_encode(data: &[u8], block: usize) -> Result<ChunkBuf, String> {
    if data.len() > i32::MAX as usize {
        return Err("the HDF5 LZ4 filter takes chunks below 2 GiB".into());
    }
    let block = if block == 0 { LZ4_DEFAULT_BLOCK } else { block }
        .min(data.len())
        .max(1);
    // Each block is compressed straight into the output, which has room
    // for LZ4's worst case, then replaced by the raw block if that is not
    // longer. Pages past what is finally written are never touched.
    let room = |n: usize| 4 + lz4_flex::block::get_maximum_output_size(n);
    let bound = 12 + data.chunks(block).map(|p| room(p.len())).sum::<usize>();
    let mut out = ChunkBuf::zeroed(bound);
    out[..8].copy_from_slice(&(data.len() as u64).to_be_bytes());
    out[8..12].copy_from_slice(&(block as u32).to_be_bytes());
    let mut at = 12;
    for piece in data.chunks(block) {
        let body = &mut out[at + 4..at + room(piece.len())];
        let mut n = lz4_flex::block::compress_into(piece, body).map_err(|e| format!("lz4: {e}"))?;
        if n >= piece.len() {
            body[..piece.len()].copy_from_slice(piece);
            n = piece.len();
        }
        out[at..at + 4].copy_from_slice(&(n as u32).to_be_bytes());
        at += 4 + n;
    }
    out.truncate(at);
    Ok(out)
}

/// Reverses [`lz4_encode`] (and `H5Zlz4.c`), checking every length;
/// the result is at most `limit` bytes.
pub(crate) fn lz4_decode(data: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    let (total, _) = lz4_header(data, limit)?;
    let mut out = vec![0u8; total];
    lz4_decode_into(data, &mut out)?;
    Ok(out)
}

fn lz4_bad(what: &str) -> String {
    format!("LZ4 chunk is corrupt: {what}")
}

/// The decoded size and block size an LZ4 chunk's 12-byte header states;
/// a decoded size over `limit` is an error.
fn lz4_header(data: &[u8], limit: usize) -> Result<(usize, usize), String> {
    let head = data
        .first_chunk::<12>()
        .ok_or_else(|| lz4_bad("shorter than its 12-byte header"))?;
    let total = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
    let block = u32::from_be_bytes(head[8..].try_into().expect("4 bytes")) as u64;
    if total > i32::MAX as u64 || total > limit as u64 {
        return Err(lz4_bad(&format!(
            "claims {total} uncompressed bytes, more than the {} expected",
            limit.min(i32::MAX as usize)
        )));
    }
    if block == 0 && total > 0 {
        return Err(lz4_bad("block size 0"));
    }
    Ok((total as usize, block.min(total) as usize))
}

/// Decodes an LZ4 chunk into `out`, which it must fill exactly.
fn lz4_decode_into(data: &[u8], out: &mut [u8]) -> Result<(), String> {
    let (total, block) = lz4_header(data, out.len())?;
    if total != out.len() {
        return Err(lz4_bad(&format!(
            "claims {total} uncompressed bytes, the chunk holds {}",
            out.len()
        )));
    }
    let mut rest = &data[12..];
    let mut done = 0usize;
    while done < out.len() {
        let len = block.min(out.len() - done);
        let (size, tail) = rest
            .split_at_checked(4)
            .ok_or_else(|| lz4_bad("truncated block header"))?;
        let size = u32::from_be_bytes(size.try_into().expect("4 bytes")) as usize;
        let (payload, tail) = tail
            .split_at_checked(size)
            .ok_or_else(|| lz4_bad("truncated block"))?;
        let dst = &mut out[done..done + len];
        if size == len {
            dst.copy_from_slice(payload);
        } else {
            let n = lz4_flex::block::decompress_into(payload, dst)
                .map_err(|e| lz4_bad(&e.to_string()))?;
            if n != len {
                return Err(lz4_bad("a block decompressed to the wrong size"));
            }
        }
        done += len;
        rest = tail;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((i / 7) % 13) as u8).collect()
    }

    #[test]
    fn every_pipeline_round_trips() {
        // Noise, so that the first compressor of two makes more bytes
        // than the chunk holds.
        let data: Vec<u8> = (0..1003u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for steps in [
            vec![],
            vec![Step::Shuffle(4)],
            vec![Step::Deflate(6)],
            vec![Step::Lz4(0)],
            vec![Step::Lz4(100)],
            vec![Step::Shuffle(8), Step::Deflate(1)],
            vec![Step::Shuffle(2), Step::Lz4(0)],
            vec![Step::Deflate(1), Step::Lz4(64)],
            vec![Step::Lz4(0), Step::Deflate(1)],
            vec![Step::Shuffle(4), Step::Lz4(0), Step::Deflate(1)],
        ] {
            let enc = encode(&steps, &data).unwrap();
            let mut out = vec![0u8; data.len()];
            decode(&steps, 0, &enc, &mut out).unwrap();
            assert_eq!(out, data, "{steps:?}");
            // One byte too few or too many for the chunk is an error.
            let mut short = vec![0u8; data.len() - 1];
            assert!(decode(&steps, 0, &enc, &mut short).is_err(), "{steps:?}");
            let mut long = vec![0u8; data.len() + 1];
            assert!(decode(&steps, 0, &enc, &mut long).is_err(), "{steps:?}");
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
        let mut out = vec![0u8; data.len()];
        decode(&steps, 1, &only_deflate, &mut out).unwrap();
        assert_eq!(out, data);
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
