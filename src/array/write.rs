//! Writing an array: data and fill values into a selection, whole chunks
//! written through past the cache, and flush.

use crate::cache::Access;
use crate::chunk_grid::ChunkGrid;
use crate::error::{Error, Result};
use crate::layout::{Strided, copy_region, fill_region, single_run, small_c_strides};
use crate::selection::ResolvedSelection;

use super::{ArrayHandle, PieceLayout};

/// Whole chunks at least this large, written from one contiguous run of
/// the caller's data and not in the cache, go straight to the store
/// instead of through a cache buffer: the
/// copy into the cache and the later write-back cost more than the cache
/// saves on chunks this size (`docs/benchmarks.md#write-through`). h5py
/// likewise writes chunks larger than its chunk cache directly.
pub const WRITE_THROUGH_MIN_BYTES: usize = 1 << 20;

impl ArrayHandle {
    /// Writes `data` (native-order bytes, C order over the selection's
    /// output shape) into the selection. Chunks the selection covers
    /// completely are never read from the store.
    pub fn write_bytes(&self, sel: &ResolvedSelection, data: &[u8]) -> Result<()> {
        self.check_len(sel, data.len(), "the data")?;
        let data_strides = Self::out_strides(sel);
        self.for_each_chunk_mut(sel, &data_strides, Some(data), |lay, chunk, elem| {
            let src = Strided {
                offset: lay.out_offset,
                strides: &data_strides,
            };
            copy_region(&lay.counts, elem, data, src, chunk, lay.chunk());
        })
    }

    /// Sets every element of the selection to `value` (one element's
    /// native-order bytes).
    pub fn fill_bytes(&self, sel: &ResolvedSelection, value: &[u8]) -> Result<()> {
        if value.len() != self.dtype().size() {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "a {} value is {} bytes, {} given",
                    self.dtype(),
                    self.dtype().size(),
                    value.len()
                ),
            });
        }
        let no_strides = vec![0; self.ndim()];
        self.for_each_chunk_mut(sel, &no_strides, None, |lay, chunk, _| {
            fill_region(&lay.counts, value, chunk, lay.chunk());
        })
    }

    /// Runs `f` on every chunk the selection touches, with the piece's
    /// layout, the chunk's bytes and the element size. If `source` is the
    /// data being written (laid out by `out_strides`), a piece that is a
    /// whole chunk of at least [`WRITE_THROUGH_MIN_BYTES`] (of any size
    /// with write-behind), held as one contiguous run of `source`, skips
    /// `f` and is written through (with write-behind: copied into the
    /// cache and queued, see [`ChunkCache::with_write_behind`](crate::ChunkCache::with_write_behind)).
    fn for_each_chunk_mut(
        &self,
        sel: &ResolvedSelection,
        out_strides: &[usize],
        source: Option<&[u8]>,
        f: impl Fn(&PieceLayout, &mut [u8], usize),
    ) -> Result<()> {
        let grid = self.grid_for(sel)?;
        self.for_each_chunk_mut_in(&grid, sel, out_strides, source, f)
    }

    /// [`for_each_chunk_mut`](Self::for_each_chunk_mut) over the chunks of
    /// `grid`, which may differ from the current one (a shrink clears the
    /// part of its last chunk past the new end).
    pub(super) fn for_each_chunk_mut_in(
        &self,
        grid: &ChunkGrid,
        sel: &ResolvedSelection,
        out_strides: &[usize],
        source: Option<&[u8]>,
        f: impl Fn(&PieceLayout, &mut [u8], usize),
    ) -> Result<()> {
        self.inner.owner.check_can_write()?;
        let elem = self.dtype().size();
        let cstrides = small_c_strides(self.chunks());
        let chunk_elems = grid.chunk_elements();
        // With write-behind, a whole chunk of any size takes this path too:
        // it is copied into the cache once, with no fill first.
        let through = source
            .filter(|_| self.inner.owner.behind || chunk_elems * elem >= WRITE_THROUGH_MIN_BYTES);
        for piece in grid.pieces(sel) {
            let lay = PieceLayout::new(&piece, &cstrides, out_strides);
            if let Some(src) = through
                && lay.counts.iter().product::<usize>() == chunk_elems
            {
                let from = Strided {
                    offset: lay.out_offset,
                    strides: out_strides,
                };
                if let Some((s, 0, n)) = single_run(&lay.counts, from, lay.chunk())
                    && n == chunk_elems
                {
                    let bytes = &src[s * elem..(s + n) * elem];
                    self.inner
                        .cache
                        .write_through(&self.inner.owner, &piece.chunk, bytes)?;
                    continue;
                }
            }
            // A piece replaces the chunk, and need not read it, only if it
            // covers the whole chunk along the first axis: rows past the
            // end are not ours to assume fill, since a concurrent append
            // may have grown the array and written them meanwhile.
            let extent = grid.chunk_extent(&piece.chunk);
            let covers =
                piece.covers(&extent) && extent.first().is_none_or(|&n| n == grid.chunk_shape()[0]);
            let access = if covers {
                Access::Overwrite
            } else {
                Access::Update
            };
            // The box written, for a store that merges writes.
            let region = (lay.chunk_offset, &lay.counts[..], &lay.chunk_strides[..]);
            self.inner.cache.with_chunk_at(
                &self.inner.owner,
                &piece.chunk,
                access,
                Some(region),
                |c| f(&lay, c, elem),
            )?;
        }
        Ok(())
    }

    /// Writes every dirty chunk to the store and makes it durable: when
    /// this returns `Ok`, the data written before it survives a crash.
    pub fn flush(&self) -> Result<()> {
        self.inner.cache.flush_owner(&self.inner.owner)
    }
}
