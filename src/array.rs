//! The array API: [`ArrayHandle`] (element type known at run time) and the
//! typed [`Array<T>`] over it. Both are cheap to clone, `Send + Sync`, and
//! share one open array; the last clone to go flushes it.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard, RwLock};

use ndarray::{ArrayD, AsArray, Dimension, IxDyn};

use crate::cache::{Access, ChunkCache, Owner, entry_overhead};
use crate::chunk_grid::{ChunkGrid, Piece};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result, SelectionError};
use crate::layout::{Small, Strided, copy_region, fill_region, single_run, small_c_strides};
use crate::selection::{AxisSel, IntoSelection, ResolvedSelection};
use crate::store::{Capabilities, ChunkStore};
use crate::units::format_bytes;

/// An open array whose element type is known at run time (tools such as the
/// CLI). Data crosses this API as native-order bytes; [`Array<T>`] is the
/// typed face of the same thing.
#[derive(Clone)]
pub struct ArrayHandle {
    inner: Arc<ArrayInner>,
}

struct ArrayInner {
    owner: Arc<Owner>,
    cache: ChunkCache,
    path: Option<PathBuf>,
    dtype: DType,
    caps: Capabilities,
    /// The current shape's grid. Calls take a snapshot (an `Arc` clone)
    /// and never hold the lock; [`ArrayHandle::resize`] swaps it.
    grid: RwLock<Arc<ChunkGrid>>,
    /// Length of the first axis, for the bounds check of a single `get`
    /// without touching `grid`. Equal to `grid`'s after every resize.
    len0: AtomicU64,
    /// Serializes resizes and appends.
    resizing: Mutex<()>,
}

impl Drop for ArrayInner {
    fn drop(&mut self) {
        if let Err(e) = self.cache.flush_owner(&self.owner) {
            let name = self
                .path
                .as_ref()
                .map_or_else(|| "array".to_string(), |p| p.display().to_string());
            eprintln!(
                "chunkyard: flushing {name} on drop failed: {e}; \
                 writes since the last successful flush() may be lost"
            );
        }
        self.cache.purge(&self.owner);
    }
}

impl fmt::Debug for ArrayHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayHandle")
            .field("path", &self.inner.path)
            .field("backend", &self.store().backend())
            .field("dtype", &self.dtype())
            .field("shape", &self.shape())
            .field("chunks", &self.chunks())
            .finish()
    }
}

/// Where each element of a piece goes: offsets and strides in elements for
/// the chunk side and the dense output side.
struct PieceLayout {
    counts: Small<usize>,
    chunk_offset: usize,
    chunk_strides: Small<usize>,
    out_offset: usize,
}

impl PieceLayout {
    fn new(piece: &Piece, chunk_c_strides: &[usize], out_strides: &[usize]) -> Self {
        PieceLayout {
            counts: piece.counts(),
            chunk_offset: piece
                .region
                .iter()
                .zip(chunk_c_strides)
                .map(|(r, s)| r.0 as usize * s)
                .sum(),
            chunk_strides: piece
                .region
                .iter()
                .zip(chunk_c_strides)
                .map(|(r, s)| r.1 as usize * s)
                .collect(),
            out_offset: piece
                .out_start
                .iter()
                .zip(out_strides)
                .map(|(&o, s)| o as usize * s)
                .sum(),
        }
    }

    fn chunk(&self) -> Strided<'_> {
        Strided {
            offset: self.chunk_offset,
            strides: &self.chunk_strides,
        }
    }
}

impl ArrayHandle {
    /// Opens an array over any [`ChunkStore`] (custom backends, the
    /// in-memory store), caching its chunks in `cache`.
    pub fn from_store(store: Arc<dyn ChunkStore>, cache: ChunkCache) -> Result<Self> {
        Self::from_store_at(store, cache, None)
    }

    pub(crate) fn from_store_at(
        store: Arc<dyn ChunkStore>,
        cache: ChunkCache,
        path: Option<PathBuf>,
    ) -> Result<Self> {
        let meta = store.meta().clone();
        let grid = ChunkGrid::new(&meta.shape, &meta.chunks, meta.dtype.size())?;
        if meta.fill.len() != meta.dtype.size() {
            return Err(Error::invalid(format!(
                "fill value has {} bytes, a {} element has {}",
                meta.fill.len(),
                meta.dtype,
                meta.dtype.size()
            )));
        }
        let caps = store.capabilities();
        let len0 = grid.shape().first().copied().unwrap_or(1);
        let current = Arc::new(grid.clone());
        let owner = cache.register(store, grid, meta.fill);
        Ok(ArrayHandle {
            inner: Arc::new(ArrayInner {
                owner,
                cache,
                path,
                dtype: meta.dtype,
                caps,
                grid: RwLock::new(current),
                len0: AtomicU64::new(len0),
                resizing: Mutex::new(()),
            }),
        })
    }

    /// The grid of the current shape (a snapshot).
    fn grid(&self) -> Arc<ChunkGrid> {
        self.inner.grid.read().clone()
    }

    /// The grid as registered with the cache: chunk shape, rank and the
    /// chunk keys, none of which a resize of the first axis changes.
    fn key_grid(&self) -> &ChunkGrid {
        &self.inner.owner.grid
    }

    /// The backend store.
    pub fn store(&self) -> &Arc<dyn ChunkStore> {
        &self.inner.owner.store
    }

    /// The cache this array uses.
    pub fn cache(&self) -> &ChunkCache {
        &self.inner.cache
    }

    /// The file the array lives in, if any.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.inner.dtype
    }

    /// Shape, as of now: [`resize`](Self::resize) and
    /// [`append`](Array::append) change the first axis.
    pub fn shape(&self) -> Vec<u64> {
        self.grid().shape().to_vec()
    }

    /// Chunk shape.
    pub fn chunks(&self) -> &[u64] {
        self.key_grid().chunk_shape()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.key_grid().ndim()
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.grid().num_elements()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logical size in bytes (NumPy's `nbytes`).
    pub fn nbytes(&self) -> u64 {
        self.len() * self.dtype().size() as u64
    }

    /// The fill value, one element in native order.
    pub fn fill_value(&self) -> &[u8] {
        &self.inner.owner.fill
    }

    /// Checks a selection against this array's shape.
    pub fn resolve(&self, sel: impl IntoSelection) -> Result<ResolvedSelection> {
        Ok(sel.into_selection()?.resolve(&self.shape())?)
    }

    /// The current grid, after checking that `sel` (resolved earlier) still
    /// lies inside the array: a shrink in between is an error, not a read
    /// past the end.
    fn grid_for(&self, sel: &ResolvedSelection) -> Result<Arc<ChunkGrid>> {
        let grid = self.grid();
        let inside = sel.axes().len() == grid.ndim()
            && sel.axes().iter().zip(grid.shape()).all(|(a, &n)| {
                let (start, step, count) = a.as_range();
                count == 0 || start + (count - 1) * step < n
            });
        if inside {
            Ok(grid)
        } else {
            Err(Error::Selection(SelectionError::Parse {
                text: format!("{:?}", sel.out_shape()),
                reason: format!(
                    "the selection does not fit the array's shape {:?} (was it resized since?)",
                    grid.shape()
                ),
            }))
        }
    }

    /// C-order strides of the selection's output with full rank
    /// (integer-indexed axes have length 1).
    fn out_strides(sel: &ResolvedSelection) -> Small<usize> {
        let counts: Small<u64> = sel.axes().iter().map(|a| a.as_range().2).collect();
        small_c_strides(&counts)
    }

    fn check_len(&self, sel: &ResolvedSelection, len: usize, what: &str) -> Result<()> {
        let want = sel.num_elements() as u128 * self.dtype().size() as u128;
        if want != len as u128 {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "{what} holds {len} bytes, the selection of shape {:?} needs {want}",
                    sel.out_shape()
                ),
            });
        }
        Ok(())
    }

    /// Reads the selection into `out` (native-order bytes, C order over the
    /// selection's output shape).
    ///
    /// Chunks in the cache are copied from memory. A chunk not in the cache
    /// of which less than half is wanted is read partially, straight from
    /// the store, if the store can; otherwise it is loaded into the cache,
    /// unless it is larger than the cache's whole budget: then it is read
    /// as [`read_bytes_streaming`](Self::read_bytes_streaming) reads.
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
            if !(streaming || oversize || (partial && small)) {
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

    /// Reads one piece from the store into `out` without the cache.
    fn read_uncached(
        &self,
        piece: &Piece,
        lay: &PieceLayout,
        out: &mut [u8],
        out_at: Strided<'_>,
    ) -> Result<()> {
        let elem = self.dtype().size();
        let whole = lay.counts.len() == self.ndim()
            && lay
                .counts
                .iter()
                .zip(self.chunks())
                .all(|(&n, &c)| n as u64 == c);
        if whole && let Some((0, dst, n)) = single_run(&lay.counts, lay.chunk(), out_at) {
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
            return Err(Error::Selection(if index.len() > shape.len() {
                SelectionError::TooManyIndices {
                    given: index.len(),
                    ndim: shape.len(),
                }
            } else {
                SelectionError::Parse {
                    text: format!("{index:?}"),
                    reason: format!("an element index needs {} integers", shape.len()),
                }
            }));
        }
        let chunks = self.chunks();
        // The chunk coordinate lives on the stack for up to 8 axes: this is
        // the hot path of random element reads, and a heap allocation was a
        // fifth of its instructions (callgrind, examples/get_hot.rs).
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
    /// whole chunk of at least [`WRITE_THROUGH_MIN_BYTES`], held as one
    /// contiguous run of `source`, skips `f` and is written through.
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
    fn for_each_chunk_mut_in(
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
        let through = source.filter(|_| chunk_elems * elem >= WRITE_THROUGH_MIN_BYTES);
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
            self.inner
                .cache
                .with_chunk(&self.inner.owner, &piece.chunk, access, |c| {
                    f(&lay, c, elem)
                })?;
        }
        Ok(())
    }

    /// Writes every dirty chunk to the store and makes it durable: when
    /// this returns `Ok`, the data written before it survives a crash.
    pub fn flush(&self) -> Result<()> {
        self.inner.cache.flush_owner(&self.inner.owner)
    }

    /// Changes the length of the first axis to `len`, like h5py's
    /// `resize(len, axis=0)` or zarr's `resize`. Rows added read as the
    /// fill value; rows removed are gone (cached ones are dropped, dirty or
    /// not). Every clone of this array sees the new shape; views made
    /// before keep the region they were made over.
    ///
    /// The new shape is durable when this returns. A shrink flushes the
    /// array (before cutting, and again after clearing the part of the new
    /// last chunk past the end). Reads and writes running on other threads
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
            )?;
            self.flush()?;
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

    /// How much memory the array costs: logical size vs cached vs on disk.
    pub fn memory_report(&self) -> MemoryReport {
        let (resident, dirty, entries) = self.inner.cache.usage_of(&self.inner.owner);
        let stats = self.inner.cache.stats();
        MemoryReport {
            logical_bytes: self.nbytes(),
            resident_bytes: resident as u64,
            dirty_bytes: dirty as u64,
            overhead_bytes: (entries * entry_overhead(self.ndim())) as u64,
            stored_bytes: self.store().stored_bytes().ok(),
            cache_budget_bytes: stats.budget_bytes as u64,
            cache_resident_bytes: stats.resident_bytes as u64,
        }
    }

    /// The typed face of this array; fails if `T` is not its dtype.
    pub fn typed<T: Element>(&self) -> Result<Array<T>> {
        if T::DTYPE != self.dtype() {
            return Err(Error::DTypeMismatch {
                expected: T::DTYPE,
                actual: self.dtype(),
            });
        }
        Ok(Array {
            handle: self.clone(),
            _t: PhantomData,
        })
    }
}

/// Whole chunks at least this large, written from one contiguous run of
/// the caller's data and not in the cache, go straight to the store
/// instead of through a cache buffer: the
/// copy into the cache and the later write-back cost more than the cache
/// saves on chunks this size. h5py likewise writes chunks larger than its
/// chunk cache directly.
pub const WRITE_THROUGH_MIN_BYTES: usize = 1 << 20;

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

/// Memory accounting for one array, the question "how much memory does this
/// array really use?" answered in five numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReport {
    /// Elements times element size (NumPy's `nbytes`).
    pub logical_bytes: u64,
    /// Bytes of this array's chunks held in the cache.
    pub resident_bytes: u64,
    /// Of those, bytes not yet written to the store.
    pub dirty_bytes: u64,
    /// Estimated bookkeeping for the cached chunks.
    pub overhead_bytes: u64,
    /// Bytes the store occupies on disk (`None` if it could not be told).
    pub stored_bytes: Option<u64>,
    /// The shared cache's budget.
    pub cache_budget_bytes: u64,
    /// Bytes held by the shared cache for all arrays.
    pub cache_resident_bytes: u64,
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "logical size (nbytes): {}",
            format_bytes(self.logical_bytes)
        )?;
        writeln!(
            f,
            "resident in cache:     {} ({} dirty)",
            format_bytes(self.resident_bytes),
            format_bytes(self.dirty_bytes)
        )?;
        writeln!(
            f,
            "bookkeeping overhead:  {}",
            format_bytes(self.overhead_bytes)
        )?;
        match self.stored_bytes {
            Some(b) => writeln!(f, "stored on disk:        {}", format_bytes(b))?,
            None => writeln!(f, "stored on disk:        unknown")?,
        }
        write!(
            f,
            "shared cache:          {} of {} budget",
            format_bytes(self.cache_resident_bytes),
            format_bytes(self.cache_budget_bytes)
        )
    }
}

/// A typed array of `T` on disk. Cheap to clone; clones share the array.
pub struct Array<T: Element> {
    handle: ArrayHandle,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            handle: self.handle.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

/// Number of elements as `usize`, or an error if a result that large could
/// not be held in memory at all.
pub(crate) fn result_len(sel: &ResolvedSelection, elem: usize) -> Result<usize> {
    let n = sel.num_elements();
    match (n as u128).checked_mul(elem as u128) {
        Some(b) if b <= isize::MAX as u128 => Ok(n as usize),
        _ => Err(Error::invalid(format!(
            "a selection of shape {:?} does not fit in memory",
            sel.out_shape()
        ))),
    }
}

impl<T: Element> Array<T> {
    /// Opens a typed array over any store; see [`ArrayHandle::from_store`].
    pub fn from_store(store: Arc<dyn ChunkStore>, cache: ChunkCache) -> Result<Self> {
        ArrayHandle::from_store(store, cache)?.typed()
    }

    /// The untyped handle of the same array.
    pub fn handle(&self) -> &ArrayHandle {
        &self.handle
    }

    /// Shape, as of now (see [`ArrayHandle::resize`]).
    pub fn shape(&self) -> Vec<u64> {
        self.handle.shape()
    }

    /// Chunk shape.
    pub fn chunks(&self) -> &[u64] {
        self.handle.chunks()
    }

    /// Element type (always `T::DTYPE`).
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.handle.ndim()
    }

    /// Logical size in bytes (NumPy's `nbytes`).
    pub fn nbytes(&self) -> u64 {
        self.handle.nbytes()
    }

    /// The fill value.
    pub fn fill_value(&self) -> T {
        T::from_ne_slice(self.handle.fill_value())
    }

    /// One element. An element of a chunk that is not cached is read on
    /// its own (a few bytes), not with its chunk, when the store allows.
    pub fn get(&self, index: impl AsRef<[u64]>) -> Result<T> {
        let mut buf = [0u8; 8];
        let elem = T::DTYPE.size();
        self.handle.get_bytes(index.as_ref(), &mut buf[..elem])?;
        Ok(T::from_ne_slice(&buf[..elem]))
    }

    /// Reads a selection (`s![..]`, NumPy text, `..`) into a new array.
    pub fn read(&self, sel: impl IntoSelection) -> Result<ArrayD<T>> {
        let sel = self.handle.resolve(sel)?;
        let n = result_len(&sel, T::DTYPE.size())?;
        let mut data = vec![T::default(); n];
        T::with_bytes_mut(&mut data, |b| self.handle.read_bytes(&sel, b))?;
        let shape: Vec<usize> = sel.out_shape().iter().map(|&d| d as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::ShapeMismatch {
            message: e.to_string(),
        })
    }

    /// Reads a selection into `out`, which must hold exactly its elements
    /// (C order over the selection's shape).
    pub fn read_into(&self, sel: impl IntoSelection, out: &mut [T]) -> Result<()> {
        let sel = self.handle.resolve(sel)?;
        T::with_bytes_mut(out, |b| self.handle.read_bytes(&sel, b))
    }

    /// Writes `data` into the selection. `data` must have the selection's
    /// shape or broadcast to it (NumPy rules: missing leading axes and
    /// length-1 axes stretch).
    pub fn write<'a, V, D>(&self, sel: impl IntoSelection, data: V) -> Result<()>
    where
        V: AsArray<'a, T, D>,
        D: Dimension,
        T: 'a,
    {
        self.view().write(sel, data)
    }

    /// Sets every element of the selection to `value`.
    pub fn fill(&self, sel: impl IntoSelection, value: T) -> Result<()> {
        let sel = self.handle.resolve(sel)?;
        self.handle.fill_bytes(&sel, T::as_bytes(&[value]))
    }

    /// Writes dirty chunks and makes them durable; see
    /// [`ArrayHandle::flush`].
    pub fn flush(&self) -> Result<()> {
        self.handle.flush()
    }

    /// Logical size vs cached vs on disk.
    pub fn memory_report(&self) -> MemoryReport {
        self.handle.memory_report()
    }

    /// Changes the length of the first axis; see [`ArrayHandle::resize`].
    pub fn resize(&self, len: u64) -> Result<()> {
        self.handle.resize(len)
    }

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
                    "cannot append data of shape {:?} to an array of shape {shape:?}: \
                     every axis but the first must match",
                    data.shape()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreMeta};
    use crate::testutil::mem_array;
    use ndarray::{Array2, arr1, s};

    #[test]
    fn write_read_round_trip_with_steps() {
        let a = mem_array::<i32>(&[7, 9], &[3, 4], 1 << 20);
        let data = Array2::from_shape_fn((7, 9), |(i, j)| (i * 100 + j) as i32);
        a.write(.., &data).unwrap();
        assert_eq!(a.read(..).unwrap(), data.clone().into_dyn());
        let got = a.read(s![1..;2, 3]).unwrap();
        assert_eq!(got, data.slice(s![1..;2, 3]).to_owned().into_dyn());
        assert_eq!(
            a.read("-1,::4").unwrap(),
            data.slice(s![6, ..;4]).to_owned().into_dyn()
        );
        assert_eq!(a.get([6, 8]).unwrap(), 608);
        let mut buf = vec![0i32; 4];
        a.read_into("2:4,7:9", &mut buf).unwrap();
        assert_eq!(buf, vec![207, 208, 307, 308]);
    }

    /// An array over a store opened read-only refuses writes before they
    /// reach the cache (nothing dirty, flush succeeds), and its partial
    /// reads still find chunks the cache holds.
    #[test]
    fn read_only_arrays_refuse_writes_up_front() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.npy", "a.zarr"] {
            let p = dir.path().join(name);
            let shape = [3u64, 40, 50];
            let w = crate::create::<i32>(&p, crate::ArrayOptions::new(shape).chunks([1, 40, 50]))
                .unwrap();
            let data = ndarray::Array3::from_shape_fn((3, 40, 50), |(z, y, x)| {
                (z * 10_000 + y * 100 + x) as i32
            });
            w.write(.., &data).unwrap();
            w.flush().unwrap();
            drop(w);
            let cache = ChunkCache::new(1 << 20);
            let r = crate::open_with::<i32>(
                &p,
                &crate::OpenOptions::new()
                    .read_only(true)
                    .chunks([1, 40, 50])
                    .cache(cache.clone()),
            )
            .unwrap();
            assert!(r.handle().store().capabilities().read_only, "{name}");
            for err in [
                r.write(s![0, 0, 0], &ndarray::arr0(1)).unwrap_err(),
                r.fill(.., 7).unwrap_err(),
                r.resize(5).unwrap_err(),
            ] {
                assert!(
                    err.to_string().contains("opened read-only"),
                    "{name}: {err}"
                );
            }
            assert_eq!(r.memory_report().dirty_bytes, 0, "{name}");
            r.flush().unwrap();
            // A whole plane goes through the cache; a tile of it is then
            // copied from there (a hit), a tile of another plane is read
            // from the file (no hit).
            assert_eq!(
                r.read(s![1, .., ..]).unwrap(),
                data.slice(s![1, .., ..]).into_dyn()
            );
            let hits = cache.stats().hits;
            let tile = s![1, 3..9, 4..20];
            assert_eq!(r.read(tile).unwrap(), data.slice(tile).into_dyn());
            assert_eq!(cache.stats().hits, hits + 1, "{name}");
            let tile = s![2, 30..40, 0..5];
            assert_eq!(r.read(tile).unwrap(), data.slice(tile).into_dyn());
            assert_eq!(cache.stats().hits, hits + 1, "{name}");
            assert_eq!(r.get([2, 39, 49]).unwrap(), 23_949);
            // Writable again, the same file takes writes.
            drop(r);
            let w = crate::open::<i32>(&p).unwrap();
            assert!(!w.handle().store().capabilities().read_only);
            w.write(s![0, 0, 0], &ndarray::arr0(-1)).unwrap();
            w.flush().unwrap();
            assert_eq!(crate::open::<i32>(&p).unwrap().get([0, 0, 0]).unwrap(), -1);
        }
    }

    #[test]
    fn fill_broadcast_and_errors() {
        let a = mem_array::<f64>(&[4, 5], &[2, 2], 64);
        a.fill("1:3, ::2", 2.5).unwrap();
        a.write("0", &arr1(&[1.0, 2.0, 3.0, 4.0, 5.0])).unwrap();
        a.write("3, 1:4", &ndarray::arr0(7.0)).unwrap();
        let r = a.read(..).unwrap();
        assert_eq!(r[[1, 2]], 2.5);
        assert_eq!(r[[1, 1]], 0.0);
        assert_eq!(r[[0, 4]], 5.0);
        assert_eq!(r[[3, 2]], 7.0);
        let err = a.write("0", &arr1(&[1.0, 2.0])).unwrap_err();
        assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
        let err = a.get([4, 0]).unwrap_err().to_string();
        assert!(err.contains("axis 0"), "{err}");
        assert!(a.get([1]).is_err());
        assert!(a.read("0,0,0").is_err());
        let h = a.handle().clone();
        assert!(matches!(h.typed::<f32>(), Err(Error::DTypeMismatch { .. })));
    }

    #[test]
    fn memory_report_counts_the_cache() {
        let a = mem_array::<u16>(&[100, 100], &[10, 10], 1 << 20);
        a.fill("0:20, 0:10", 3).unwrap();
        let r = a.memory_report();
        assert_eq!(r.logical_bytes, 20_000);
        assert_eq!(r.resident_bytes, 2 * 200);
        assert_eq!(r.dirty_bytes, 400);
        assert!(r.overhead_bytes > 0);
        a.flush().unwrap();
        assert_eq!(a.memory_report().dirty_bytes, 0);
        let text = r.to_string();
        assert!(text.contains("logical size"), "{text}");
    }

    #[test]
    fn drop_flushes() {
        let meta = StoreMeta {
            dtype: DType::U8,
            shape: vec![10],
            chunks: vec![5],
            fill: vec![0],
        };
        let store = Arc::new(MemoryStore::new(meta));
        {
            let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(1 << 20)).unwrap();
            a.fill("3:7", 1).unwrap();
        }
        let r = store.reopen();
        assert_eq!(r.read_chunk(&[0]).unwrap().unwrap(), vec![0, 0, 0, 1, 1]);
        assert_eq!(r.read_chunk(&[1]).unwrap().unwrap(), vec![1, 1, 0, 0, 0]);
    }

    #[test]
    fn bool_arrays() {
        let a = mem_array::<bool>(&[6], &[4], 1 << 20);
        a.write("1:4", &arr1(&[true, false, true])).unwrap();
        assert_eq!(
            a.read(..).unwrap().into_raw_vec_and_offset().0,
            vec![false, true, false, true, false, false]
        );
    }
}
