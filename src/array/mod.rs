//! The array API: [`ArrayHandle`] (element type known at run time) and the
//! typed [`Array<T>`] over it. Both are cheap to clone, `Send + Sync`, and
//! share one open array; the last clone to go flushes it.

// This file: the handle, its shared state, opening over a store, the flush
// on drop, and the shape and selection checks that reads and writes share.
// The rest: `read` (selections and single elements out of the array),
// `write` (writes, fills, write-through, flush), `resize` (the first axis:
// resize, row reservation, append), `typed` (`Array<T>`), `report`
// (`MemoryReport`).
mod read;
mod report;
mod resize;
#[cfg(test)]
mod tests;
mod typed;
mod write;

pub use report::MemoryReport;
pub use typed::Array;
pub use write::WRITE_THROUGH_MIN_BYTES;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::cache::{ChunkCache, Owner};
use crate::chunk_grid::{ChunkGrid, Piece};
use crate::dtype::DType;
use crate::error::{Error, Result, SelectionError};
use crate::layout::{Small, Strided, small_c_strides};
use crate::selection::{IntoSelection, ResolvedSelection};
use crate::store::{Capabilities, ChunkStore};

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
    /// Set when [`ArrayHandle::close`] returned a flush error to its
    /// caller: the flush on drop then fails quietly instead of printing
    /// the same failure a second time.
    close_failed: AtomicBool,
    /// Chunks (by linear index) that a read lately took whole, straight
    /// from a store that reads parts of chunks into the caller's buffer
    /// instead of through the cache: the next whole read of one of them
    /// loads it into the cache. See `read_impl`.
    read_once: Mutex<lru::LruCache<u64, ()>>,
}

/// Bounds of how many chunks `ArrayInner::read_once` remembers: as many as
/// the cache's budget holds, within these.
const READ_ONCE_MIN: usize = 16;
const READ_ONCE_MAX: usize = 4096;

impl Drop for ArrayInner {
    fn drop(&mut self) {
        let flushed = self.cache.flush_owner(&self.owner);
        if let Err(e) = flushed
            && !self.close_failed.load(Ordering::Acquire)
        {
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
        let meta = store.meta();
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
        let chunk_bytes = grid.chunk_elements().saturating_mul(meta.dtype.size());
        let remembered = (cache.budget() / chunk_bytes.max(1)).clamp(READ_ONCE_MIN, READ_ONCE_MAX);
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
                close_failed: AtomicBool::new(false),
                // Sparse: an array that never reads a whole chunk
                // allocates no table for up to 4,096 entries.
                read_once: Mutex::new(lru::LruCache::sparse(
                    std::num::NonZeroUsize::new(remembered).expect("at least READ_ONCE_MIN"),
                )),
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

    /// Flushes (see [`flush`](Self::flush)) and releases this handle,
    /// returning the flush's error instead of printing it. When this was
    /// the last handle of the array, its chunks leave the cache. Dropping
    /// a handle without `close` still flushes, but can only print a
    /// failure to stderr.
    pub fn close(self) -> Result<()> {
        let r = self.flush();
        if r.is_err() {
            self.inner.close_failed.store(true, Ordering::Release);
        }
        r
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

    /// The array's attributes: a Zarr array's (v3 `zarr.json`, v2
    /// `.zattrs`), an HDF5 dataset's numbers, booleans and strings; empty
    /// for `.npy` files (Zarr's as read at open; HDF5's read from the
    /// file at each call).
    pub fn attrs(&self) -> crate::Attrs {
        self.store()
            .labels()
            .map(|l| crate::attrs::parse(&l))
            .unwrap_or_default()
    }

    /// Changes the array's attributes: `change` edits them as stored now,
    /// and they are durable when this returns (Zarr's metadata file
    /// replaced atomically, an HDF5 file flushed). Nothing is written if
    /// `change` returns an error or sets a value the format cannot hold
    /// (HDF5: numbers, booleans and strings, alone or in a flat list of
    /// one kind). On object storage `change` may run more than once: it is
    /// applied to the stored version and written on the condition that
    /// no other writer changed it meanwhile, so concurrent changes of
    /// different keys all land ([`ChunkStore::update_attributes`]).
    /// `.npy` files hold none (`Unsupported`); an array opened read-only
    /// refuses.
    ///
    /// ```
    /// # #[cfg(not(feature = "zarr"))]
    /// # fn main() {}
    /// # #[cfg(feature = "zarr")]
    /// # fn main() -> chunkyard::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("v.zarr");
    /// let a = chunkyard::create::<f32>(&path, chunkyard::ArrayOptions::new([4, 4]))?;
    /// a.handle().update_attrs(|attrs| {
    ///     attrs.insert("units".into(), "mV".into());
    ///     attrs.remove("draft");
    ///     Ok(())
    /// })?;
    /// assert_eq!(chunkyard::open::<f32>(&path)?.attrs()["units"], "mV");
    /// # Ok(())
    /// # }
    /// ```
    pub fn update_attrs(&self, change: impl Fn(&mut crate::Attrs) -> Result<()>) -> Result<()> {
        self.store().update_attributes(&change)
    }

    /// One optional name per axis (Zarr v3 `dimension_names`; HDF5
    /// `DIMENSION_LABELS` or attached dimension scales' names), or `None`
    /// when the array names none (always for `.npy`).
    pub fn dimension_names(&self) -> Option<Vec<Option<String>>> {
        self.store().labels().and_then(|l| l.dimension_names)
    }

    /// Checks a selection against this array's shape.
    pub fn resolve(&self, sel: impl IntoSelection) -> Result<ResolvedSelection> {
        Ok(sel.resolve_in(&self.shape())?)
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
