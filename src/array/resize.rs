//! Changing the first axis: resize (grow or shrink), row reservation for
//! concurrent appends, and the typed `append`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::MutexGuard;

use ndarray::{AsArray, Dimension};

use crate::chunk_grid::ChunkGrid;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layout::{fill_region, region_holds};
use crate::selection::{AxisSel, ResolvedSelection};

use super::{Array, ArrayHandle};

impl ArrayHandle {
    /// Changes the length of the first axis to `len`, like h5py's
    /// `resize(len, axis=0)` or zarr's `resize`. Rows added read as the
    /// fill value; rows removed are gone (cached ones are dropped, dirty or
    /// not). Every clone of this array sees the new shape; views made
    /// before keep the region they were made over.
    ///
    /// The new shape is durable when this returns. A shrink flushes the
    /// array (before cutting, and again after clearing the part of the new
    /// last chunk past the end). A grow checks that part of the old last
    /// chunk first, since a shrink cut short (a failure, a crash) leaves
    /// old rows there, and clears and flushes it if it must. Reads and writes running on other threads
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
            if tail_end > old_len {
                let mut axes = ResolvedSelection::full(grid.shape()).axes().to_vec();
                axes[0] = AxisSel::Range {
                    start: old_len,
                    step: 1,
                    count: tail_end.min(len) - old_len,
                };
                let fill = owner.fill.clone();
                let no_strides = vec![0; self.ndim()];
                let stale = AtomicBool::new(false);
                self.for_each_chunk_mut_in(
                    &grid,
                    &ResolvedSelection::from_axes(axes),
                    &no_strides,
                    None,
                    |lay, chunk, _| {
                        if !region_holds(&lay.counts, &fill, chunk, lay.chunk()) {
                            fill_region(&lay.counts, &fill, chunk, lay.chunk());
                            stale.store(true, Ordering::Relaxed);
                        }
                    },
                )
                .map_err(poison)?;
                if stale.load(Ordering::Relaxed) {
                    self.flush().map_err(poison)?;
                }
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
        if len < cut_end {
            let mut axes = ResolvedSelection::full(old.shape()).axes().to_vec();
            axes[0] = AxisSel::Range {
                start: len,
                step: 1,
                count: cut_end - len,
            };
            let fill = owner.fill.clone();
            let no_strides = vec![0; self.ndim()];
            self.for_each_chunk_mut_in(
                &old,
                &ResolvedSelection::from_axes(axes),
                &no_strides,
                None,
                |lay, chunk, _| fill_region(&lay.counts, &fill, chunk, lay.chunk()),
            )
            .map_err(halfway)?;
            self.flush().map_err(halfway)?;
        }
        Ok(())
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
