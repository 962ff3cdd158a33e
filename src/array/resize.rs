//! Changing the first axis: resize (grow or shrink), row reservation for
//! concurrent appends, and the typed `append`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;

use ndarray::{AsArray, Dimension};

use crate::cache::Access;
use crate::chunk_grid::{ChunkGrid, Piece};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layout::{Small, Strided, fill_region, region_holds, small_c_strides};
use crate::selection::{AxisSel, ResolvedSelection};

use super::{Array, ArrayHandle, PieceLayout};

impl ArrayHandle {
    /// Changes the length of the first axis to `len`, like h5py's
    /// `resize(len, axis=0)` or zarr's `resize`. Rows added read as the
    /// fill value; rows removed are gone (cached ones are dropped, dirty or
    /// not). Every clone of this array sees the new shape; views made
    /// before keep the region they were made over.
    ///
    /// The new shape is durable when this returns. A shrink flushes the
    /// array before cutting, then clears the part of the new last chunk
    /// row past the end where it holds data, and flushes again if it did.
    /// A grow checks that part of the old last chunk row first, since a
    /// shrink cut short (a failure, a crash) leaves old rows there, and
    /// clears and flushes it if it must. Reads and writes running on other threads
    /// meanwhile see the old shape or the new one; one that touches rows a
    /// shrink removes may fail.
    ///
    /// Fails for stores that cannot change shape (a Fortran-order `.npy`
    /// file, an HDF5 dataset created without an unlimited first axis, a
    /// `.npy` header without room for the new shape) and poisons the array
    /// if the store fails halfway.
    pub fn resize(&self, len: u64) -> Result<()> {
        let guard = self.inner.resizing.lock();
        self.resize_locked(&guard, len)
    }

    fn resize_locked(&self, _guard: &MutexGuard<'_, ()>, len: u64) -> Result<()> {
        let owner = &self.inner.owner;
        owner.check_can_write()?;
        let old = self.grid();
        if old.ndim() == 0 {
            return Err(Error::invalid("a 0-d array has no axis to resize"));
        }
        let old_len = old.shape()[0];
        if len == old_len {
            return Ok(());
        }
        let mut shape = old.shape().to_vec();
        shape[0] = len;
        let grid = Arc::new(ChunkGrid::new(
            &shape,
            old.chunk_shape(),
            self.dtype().size(),
        )?);
        let publish = |g: Arc<ChunkGrid>| {
            let mut cur = self.inner.grid.write();
            self.inner.len0.store(len, Ordering::Release);
            *cur = g;
        };
        // A store refuses what it cannot do before changing anything; any
        // other failure may have left it halfway, and the array fails
        // closed.
        let poison = |e: Error| {
            if !matches!(e, Error::Unsupported(_) | Error::InvalidArgument(_)) {
                owner.poison(format!("resize to {len} failed: {e}"));
            }
            e
        };
        if len > old_len {
            // The rows of the old last chunk past the old end become
            // visible: they must hold the fill value. A shrink writes it
            // there, but one cut short by a failure or a crash (after the
            // store's cut, before the fill reached it) leaves old rows, so
            // a grow checks, and clears and flushes them before the store
            // grows if they are not. A failure here closes the array, as
            // any resize the store fails does (simpler to state than
            // which failures left the store unchanged).
            let c0 = old.chunk_shape()[0];
            let tail_end = old_len.div_ceil(c0) * c0;
            if tail_end > old_len
                && self
                    .clear_rows(&grid, old_len, tail_end.min(len) - old_len)
                    .map_err(poison)?
            {
                self.flush().map_err(poison)?;
            }
            self.store().resize(len).map_err(poison)?;
            publish(grid);
            return Ok(());
        }
        // Shrink: write everything back under the old shape, let the store
        // cut (it refuses before changing anything if it cannot), then
        // drop the cached chunks past the end and overwrite the part of
        // the new last chunk past the end with the fill value, so that a
        // later growth shows the fill value there, not the old rows.
        self.flush()?;
        self.store().resize(len).map_err(poison)?;
        publish(grid);
        // From here the store has cut: any failure leaves the part of the
        // new last chunk past the end holding old rows, which a later
        // growth would show instead of the fill value, so every failure
        // closes the array (a failed load does not poison by itself).
        let halfway = |e: Error| {
            owner.poison(format!("resize to {len} failed: {e}"));
            e
        };
        let c0 = old.chunk_shape()[0];
        let kept = len.div_ceil(c0);
        self.inner
            .cache
            .purge_where(owner, |coord| coord.first().is_some_and(|&k| k >= kept));
        let cut_end = (kept * c0).min(old_len);
        if len < cut_end && self.clear_rows(&old, len, cut_end - len).map_err(halfway)? {
            self.flush().map_err(halfway)?;
        }
        Ok(())
    }

    /// Makes rows `start..start + count` of the first axis, within one
    /// chunk row of `grid`, hold the fill value in every chunk, and says
    /// whether any chunk had to change (the caller then flushes). Each
    /// chunk is read first and updated only if that part is not all fill
    /// already: marking every chunk of the row dirty would write each back
    /// (storing never-written chunks as fill chunks) on every resize that
    /// does not end on a chunk boundary, such as each `append` of a row
    /// into chunks of several rows.
    fn clear_rows(&self, grid: &ChunkGrid, start: u64, count: u64) -> Result<bool> {
        let owner = &self.inner.owner;
        let mut axes = ResolvedSelection::full(grid.shape()).axes().to_vec();
        axes[0] = AxisSel::Range {
            start,
            step: 1,
            count,
        };
        let rows = ResolvedSelection::from_axes(axes);
        let fill = &owner.fill;
        let no_strides = vec![0; self.ndim()];
        let cstrides = small_c_strides(self.chunks());
        let cache = &self.inner.cache;
        let mut changed = false;
        for piece in grid.pieces(&rows) {
            let lay = PieceLayout::new(&piece, &cstrides, &no_strides);
            if !self.holds_fill(&piece, &lay, fill)? {
                let region = (lay.chunk_offset, &lay.counts[..], &lay.chunk_strides[..]);
                cache.with_chunk_at(
                    owner,
                    &piece.chunk,
                    Access::Update,
                    Some(region),
                    |chunk| fill_region(&lay.counts, fill, chunk, lay.chunk()),
                )?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Whether the region `lay` of the chunk `piece` holds the fill value,
    /// checked without loading the chunk into the cache (a row of chunks
    /// loaded only to be looked at would evict what the caller works on):
    /// in the cache if the chunk is there, else read from the store, the
    /// region alone where the store reads parts of chunks. A chunk never
    /// written holds the fill value. Like a streaming read's, the bytes
    /// read from the store (at most a chunk) live outside the cache's
    /// budget for the check.
    fn holds_fill(&self, piece: &Piece, lay: &PieceLayout, fill: &[u8]) -> Result<bool> {
        let owner = &self.inner.owner;
        self.inner
            .cache
            .read_or_else(owner, &piece.chunk, |cached| match cached {
                Some(c) => Ok(region_holds(&lay.counts, fill, c, lay.chunk())),
                None if self.inner.caps.partial_reads => {
                    let counts: Small<u64> = lay.counts.iter().map(|&n| n as u64).collect();
                    let strides = small_c_strides(&counts);
                    let at = Strided {
                        offset: 0,
                        strides: &strides,
                    };
                    let mut buf = vec![0u8; piece.num_elements() as usize * fill.len()];
                    Ok(!self
                        .store()
                        .read_region_into(&piece.chunk, &piece.region, &mut buf, at)?
                        || region_holds(&lay.counts, fill, &buf, at))
                }
                None => Ok(match self.store().read_chunk(&piece.chunk)? {
                    Some(c) => region_holds(&lay.counts, fill, &c, lay.chunk()),
                    None => true,
                }),
            })
    }

    /// Grows the first axis by `rows` and returns where the new rows start
    /// (for appends: concurrent callers get disjoint rows).
    pub fn reserve_rows(&self, rows: u64) -> Result<u64> {
        let guard = self.inner.resizing.lock();
        let start = self.inner.len0.load(Ordering::Acquire);
        let end = start.checked_add(rows).ok_or_else(|| {
            Error::invalid(format!("{start} + {rows} rows overflow the first axis"))
        })?;
        if self.ndim() == 0 {
            return Err(Error::invalid("a 0-d array has no axis to append along"));
        }
        self.resize_locked(&guard, end)?;
        Ok(start)
    }
}

impl<T: Element> Array<T> {
    /// Appends `data` along the first axis: the array grows by `data`'s
    /// first axis and `data` is written into the new rows. `data` has the
    /// array's rank, or one axis less for a single row. Returns the index
    /// of the first new row. Appends from several threads get disjoint
    /// rows (in the order they reserve them); the rows read as the fill
    /// value until each writer's data lands.
    ///
    /// ```
    /// # fn main() -> chunkyard::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("rec.npy");
    /// use chunkyard::ArrayOptions;
    /// use ndarray::{Array1, Array2};
    /// let a = chunkyard::create::<f32>(&path, ArrayOptions::new([0, 3]))?;
    /// assert_eq!(a.append(&Array2::<f32>::ones((2, 3)))?, 0);
    /// assert_eq!(a.append(&Array1::from(vec![7.0f32, 8.0, 9.0]))?, 2);
    /// assert_eq!(a.shape(), vec![3, 3]);
    /// assert_eq!(a.get([2, 1])?, 8.0);
    /// # Ok(()) }
    /// ```
    pub fn append<'a, V, D>(&self, data: V) -> Result<u64>
    where
        V: AsArray<'a, T, D>,
        D: Dimension,
        T: 'a,
    {
        let data = data.into().into_dyn();
        // The shape as the caller passed it, for the error message.
        let given = data.shape().to_vec();
        let data = if data.ndim() + 1 == self.ndim() {
            data.insert_axis(ndarray::Axis(0))
        } else {
            data
        };
        let shape = self.shape();
        let fits = data.ndim() == shape.len()
            && data
                .shape()
                .iter()
                .zip(&shape)
                .skip(1)
                .all(|(&d, &n)| d as u64 == n);
        if !fits {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "cannot append data of shape {given:?} to an array of shape {shape:?}: \
                     the data needs the array's trailing axes {:?} (one row) or all its axes \
                     with any first length",
                    shape.get(1..).unwrap_or(&[])
                ),
            });
        }
        let rows = data.shape()[0] as u64;
        let start = self.handle.reserve_rows(rows)?;
        let mut sel = ResolvedSelection::full(&self.shape()).axes().to_vec();
        sel[0] = AxisSel::Range {
            start,
            step: 1,
            count: rows,
        };
        let sel = ResolvedSelection::from_axes(sel);
        let data = data.as_standard_layout();
        let slice = data.as_slice().expect("standard layout");
        self.handle.write_bytes(&sel, T::as_bytes(slice))?;
        Ok(start)
    }
}
