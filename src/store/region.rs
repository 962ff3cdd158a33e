//! Regions of a chunk: checking that one fits a chunk and an output
//! buffer, and copying one between a decoded chunk, a dense buffer and a
//! strided output. Stores use these to implement partial reads.

use crate::error::Result;
use crate::layout::{Strided, c_strides, copy_region};
use crate::store::{ChunkRegion, StoreMeta};

/// Fails with `InvalidArgument` unless `chunk` has the store's rank and
/// `region` lies inside a chunk (see [`region_fits`]).
pub fn check_region_fits(meta: &StoreMeta, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
    if chunk.len() != meta.chunks.len() || !region_fits(&meta.chunks, region) {
        return Err(crate::error::Error::invalid(format!(
            "region {region:?} of chunk {chunk:?} does not fit a chunk of shape {:?}",
            meta.chunks
        )));
    }
    Ok(())
}

/// Copies `region` of a decoded chunk into `out` at `at` (both checked by
/// the caller).
pub(crate) fn copy_region_of_chunk(
    meta: &StoreMeta,
    chunk: &[u8],
    region: ChunkRegion<'_>,
    out: &mut [u8],
    at: Strided<'_>,
) {
    let chunk_strides = c_strides(&meta.chunks);
    let counts: Vec<usize> = region.iter().map(|r| r.2 as usize).collect();
    let offset = region
        .iter()
        .zip(&chunk_strides)
        .map(|(r, s)| r.0 as usize * s)
        .sum();
    let strides: Vec<usize> = region
        .iter()
        .zip(&chunk_strides)
        .map(|(r, s)| r.1 as usize * s)
        .collect();
    copy_region(
        &counts,
        meta.dtype.size(),
        chunk,
        Strided {
            offset,
            strides: &strides,
        },
        out,
        at,
    );
}

/// Whether `region` (per axis: start, step, count) lies inside a chunk of
/// shape `chunks`, with positive steps and no overflow.
pub fn region_fits(chunks: &[u64], region: ChunkRegion<'_>) -> bool {
    region.len() == chunks.len()
        && region
            .iter()
            .zip(chunks)
            .all(|(&(start, step, count), &c)| {
                count == 0
                    || (step >= 1
                        && (count - 1)
                            .checked_mul(step)
                            .and_then(|d| d.checked_add(start))
                            .is_some_and(|last| last < c))
            })
}

/// Checks that every position `at` gives for `region`'s elements lies in
/// an `out_len`-byte buffer of `elem`-byte elements.
pub fn check_strided_fits(
    region: ChunkRegion<'_>,
    elem: usize,
    out_len: usize,
    at: Strided<'_>,
) -> Result<()> {
    let bad = || {
        crate::error::Error::invalid(format!(
            "a region of counts {:?} at {at:?} does not fit an output of {out_len} bytes",
            region.iter().map(|r| r.2).collect::<Vec<_>>()
        ))
    };
    if at.strides.len() != region.len() {
        return Err(bad());
    }
    if region.iter().any(|r| r.2 == 0) {
        return Ok(());
    }
    let mut last = at.offset as u128;
    for (r, &s) in region.iter().zip(at.strides) {
        last += (r.2 as u128 - 1) * s as u128;
    }
    if (last + 1) * elem as u128 > out_len as u128 {
        return Err(bad());
    }
    Ok(())
}

/// Copies a region read densely (C order over its counts) into `out` at
/// `at` (checked by the caller with [`check_strided_fits`]).
pub(crate) fn place_region(
    backend: &'static str,
    chunk: &[u64],
    region: ChunkRegion<'_>,
    elem: usize,
    data: &[u8],
    out: &mut [u8],
    at: Strided<'_>,
) -> Result<()> {
    let counts: Vec<usize> = region.iter().map(|r| r.2 as usize).collect();
    let n: usize = counts.iter().product();
    if data.len() != n * elem {
        return Err(crate::error::Error::Store {
            backend,
            message: format!(
                "a region of {n} elements of chunk {chunk:?} read as {} bytes",
                data.len()
            ),
        });
    }
    let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
    let dense = c_strides(&shape);
    copy_region(
        &counts,
        elem,
        data,
        Strided {
            offset: 0,
            strides: &dense,
        },
        out,
        at,
    );
    Ok(())
}

/// Copies `region` out of a decoded chunk into a dense C-order buffer.
pub fn extract_region(meta: &StoreMeta, chunk: &[u8], region: ChunkRegion<'_>) -> Vec<u8> {
    let out_shape: Vec<u64> = region.iter().map(|r| r.2).collect();
    let out_strides = c_strides(&out_shape);
    let mut out = vec![0u8; out_shape.iter().product::<u64>() as usize * meta.dtype.size()];
    copy_region_of_chunk(
        meta,
        chunk,
        region,
        &mut out,
        Strided {
            offset: 0,
            strides: &out_strides,
        },
    );
    out
}
