//! Reading an array: a selection into dense native-order bytes (from the
//! cache, partially from the store, or streaming past the cache) and single
//! elements on the `get` hot path.

use std::sync::atomic::Ordering;

use crate::cache::Access;
use crate::chunk_grid::{ChunkGrid, Piece};
use crate::error::{Error, Result, SelectionError};
use crate::layout::{Strided, copy_region, fill_region, single_run, small_c_strides};
use crate::selection::ResolvedSelection;

use super::{ArrayHandle, PieceLayout};

impl ArrayHandle {
    /// Reads the selection into `out` (native-order bytes, C order over the
    /// selection's output shape).
    ///
    /// Chunks in the cache are copied from memory. A chunk not in the cache
    /// of which less than half is wanted is read partially, straight from
    /// the store, if the store can; otherwise it is loaded into the cache,
    /// unless it is larger than the cache's whole budget: then it is read
    /// as [`read_bytes_streaming`](Self::read_bytes_streaming) reads.
    ///
    /// A whole chunk of such a store (one that reads parts of chunks:
    /// uncompressed data) that lands as one run of `out` is read straight
    /// into `out` the first time, and loaded into the cache only when it is
    /// read whole again while the array still remembers it (as many chunks
    /// as the cache holds): the file's page cache holds it already, so a
    /// loop over planes read once each costs one copy, not two, and evicts
    /// nothing, while a plane read again is cached for the small reads
    /// that may follow.
    pub fn read_bytes(&self, sel: &ResolvedSelection, out: &mut [u8]) -> Result<()> {
        self.read_impl(sel, out, false)
    }

    /// Like [`read_bytes`](Self::read_bytes), for a scan that will not come
    /// back: chunks not in the cache are not loaded into it. A whole chunk
    /// that lands as one contiguous run of `out` is read by the store
    /// straight into `out`; other parts are read partially (or through a
    /// temporary chunk). Reductions, copies and `blocks()` read this way.
    pub fn read_bytes_streaming(&self, sel: &ResolvedSelection, out: &mut [u8]) -> Result<()> {
        self.read_impl(sel, out, true)
    }

    fn read_impl(&self, sel: &ResolvedSelection, out: &mut [u8], streaming: bool) -> Result<()> {
        self.check_len(sel, out.len(), "the output buffer")?;
        let elem = self.dtype().size();
        let owner = &self.inner.owner;
        let cache = &self.inner.cache;
        let partial = self.inner.caps.partial_reads;
        let grid = self.grid_for(sel)?;
        let chunk_elems = grid.chunk_elements() as u64;
        // A chunk larger than the whole cache cannot stay in it: loading it
        // there would only add a copy (and a buffer to fault in and drop),
        // so it is read like a scan's.
        let oversize = chunk_elems as usize * elem > cache.budget();
        let cstrides = small_c_strides(self.chunks());
        let out_strides = Self::out_strides(sel);
        for piece in grid.pieces(sel) {
            let lay = PieceLayout::new(&piece, &cstrides, &out_strides);
            let out_at = Strided {
                offset: lay.out_offset,
                strides: &out_strides,
            };
            let copy = |chunk: &[u8], out: &mut [u8]| {
                copy_region(&lay.counts, elem, chunk, lay.chunk(), out, out_at)
            };
            let small = piece.num_elements() * 2 < chunk_elems;
            let once = partial
                && !(streaming || oversize || small)
                && self.whole_run(&lay, out_at).is_some()
                && self.first_whole_read(&grid, &piece.chunk);
            if !(streaming || oversize || (partial && small) || once) {
                cache.with_chunk(owner, &piece.chunk, Access::Read, |c| copy(c, out))?;
                continue;
            }
            // Copy from the cache if the chunk is there; else read from the
            // store without caching, under the chunk's lock.
            cache.read_or_else(owner, &piece.chunk, |cached| match cached {
                Some(c) => {
                    copy(c, out);
                    Ok(())
                }
                None => self.read_uncached(&piece, &lay, out, out_at),
            })?;
        }
        Ok(())
    }

    /// Where the piece lands in `out` (first element, elements) if it is
    /// its whole chunk and lands as one run, from the chunk's start: the
    /// store can then read it straight there.
    fn whole_run(&self, lay: &PieceLayout, out_at: Strided<'_>) -> Option<(usize, usize)> {
        let whole = lay.counts.len() == self.ndim()
            && lay
                .counts
                .iter()
                .zip(self.chunks())
                .all(|(&n, &c)| n as u64 == c);
        if !whole {
            return None;
        }
        match single_run(&lay.counts, lay.chunk(), out_at) {
            Some((0, dst, n)) => Some((dst, n)),
            _ => None,
        }
    }

    /// Notes a whole read of `chunk`: true the first time (the chunk is
    /// then remembered), false if it was read whole lately (and forgotten:
    /// this read loads it into the cache).
    fn first_whole_read(&self, grid: &ChunkGrid, chunk: &[u64]) -> bool {
        let key = grid.linear_index(chunk);
        let mut seen = self.inner.read_once.lock();
        if seen.pop(&key).is_some() {
            return false;
        }
        seen.put(key, ());
        true
    }

    /// Reads one piece from the store into `out` without the cache.
    fn read_uncached(
        &self,
        piece: &Piece,
        lay: &PieceLayout,
        out: &mut [u8],
        out_at: Strided<'_>,
    ) -> Result<()> {
        let elem = self.dtype().size();
        if let Some((dst, n)) = self.whole_run(lay, out_at) {
            let dst = &mut out[dst * elem..(dst + n) * elem];
            if !self.store().read_chunk_into(&piece.chunk, dst)? {
                fill_region(
                    &[n],
                    self.fill_value(),
                    dst,
                    Strided {
                        offset: 0,
                        strides: &[1],
                    },
                );
            }
            return Ok(());
        }
        if self.inner.caps.partial_reads {
            if !self
                .store()
                .read_region_into(&piece.chunk, &piece.region, out, out_at)?
            {
                fill_region(&lay.counts, self.fill_value(), out, out_at);
            }
            return Ok(());
        }
        match self.store().read_chunk(&piece.chunk)? {
            Some(c) => copy_region(&lay.counts, elem, &c, lay.chunk(), out, out_at),
            None => fill_region(&lay.counts, self.fill_value(), out, out_at),
        }
        Ok(())
    }

    /// Reads one element at `index` into `out` (one element's bytes).
    pub fn get_bytes(&self, index: &[u64], out: &mut [u8]) -> Result<()> {
        let elem = self.dtype().size();
        if out.len() != elem {
            return Err(Error::ShapeMismatch {
                message: format!("an element is {elem} bytes, the buffer {}", out.len()),
            });
        }
        // The shape from the grid the cache keys with, and the first axis
        // from its atomic: no lock and no allocation on this hot path.
        let len0 = self.inner.len0.load(Ordering::Acquire);
        let shape = self.key_grid().shape();
        if index.len() != shape.len() {
            return Err(Error::Selection(SelectionError::IndexRank {
                index: format!("{index:?}"),
                given: index.len(),
                ndim: shape.len(),
            }));
        }
        let chunks = self.chunks();
        // The chunk coordinate lives on the stack for up to 8 axes: this is
        // the hot path of random element reads, where a heap allocation is a
        // large share of the work; see docs/benchmarks.md#stack-bookkeeping.
        let mut small = [0u64; 8];
        let mut heap = Vec::new();
        let coord: &mut [u64] = if shape.len() <= small.len() {
            &mut small[..shape.len()]
        } else {
            heap.resize(shape.len(), 0);
            &mut heap
        };
        let mut offset = 0usize;
        for (axis, ((&i, &n), &c)) in index.iter().zip(shape).zip(chunks).enumerate() {
            let n = if axis == 0 { len0 } else { n };
            if i >= n {
                return Err(SelectionError::OutOfBounds {
                    axis,
                    index: i.min(i64::MAX as u64) as i64,
                    size: n,
                }
                .into());
            }
            let k = i / c;
            coord[axis] = k;
            offset = offset * c as usize + (i - k * c) as usize;
        }
        let coord: &[u64] = coord;
        let byte = offset * elem;
        let owner = &self.inner.owner;
        let copy = |c: &[u8], out: &mut [u8]| copy_elem(out, &c[byte..byte + elem]);
        if self.inner.caps.partial_reads {
            // The cached chunk if there is one, else just this element from
            // the store, straight into `out`.
            let written = self
                .inner
                .cache
                .read_or_else(owner, coord, |cached| match cached {
                    Some(c) => {
                        copy(c, out);
                        Ok(true)
                    }
                    None => {
                        let mut small = [(0u64, 1u64, 1u64); 8];
                        let mut heap = Vec::new();
                        let region: &mut [(u64, u64, u64)] = if index.len() <= small.len() {
                            &mut small[..index.len()]
                        } else {
                            heap.resize(index.len(), (0, 1, 1));
                            &mut heap
                        };
                        for ((r, &i), &c) in region.iter_mut().zip(index).zip(chunks) {
                            r.0 = i % c;
                        }
                        let zeros = [0usize; 8];
                        let heap_zeros;
                        let strides: &[usize] = if index.len() <= zeros.len() {
                            &zeros[..index.len()]
                        } else {
                            heap_zeros = vec![0usize; index.len()];
                            &heap_zeros
                        };
                        let at = Strided { offset: 0, strides };
                        self.store().read_region_into(coord, region, out, at)
                    }
                })?;
            if !written {
                out.copy_from_slice(self.fill_value());
            }
            return Ok(());
        }
        self.inner
            .cache
            .with_chunk(owner, coord, Access::Read, |c| copy(c, out))
    }
}

/// Copies one element with a fixed-size move for the usual sizes (a
/// `copy_from_slice` of run-time length is a `memcpy` call, most of the
/// cost of a cached `get`).
#[inline]
fn copy_elem(dst: &mut [u8], src: &[u8]) {
    match dst.len() {
        1 => dst[0] = src[0],
        2 => dst[..2].copy_from_slice(&src[..2]),
        4 => dst[..4].copy_from_slice(&src[..4]),
        8 => dst[..8].copy_from_slice(&src[..8]),
        _ => dst.copy_from_slice(src),
    }
}
