//! The typed face of an array: [`Array<T>`], an [`ArrayHandle`] whose
//! element type is known at compile time.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use ndarray::{ArrayD, ArrayViewMut, AsArray, Dimension, IxDyn};

use crate::cache::ChunkCache;
use crate::dims::Dims;
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::selection::{IntoSelection, ResolvedSelection};
use crate::store::ChunkStore;

use super::{ArrayHandle, MemoryReport, result_len};

/// A typed array of `T` on disk. Cheap to clone; clones share the array.
pub struct Array<T: Element> {
    pub(super) handle: ArrayHandle,
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

impl ArrayHandle {
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

    /// The array's attributes ([`ArrayHandle::attrs`]).
    pub fn attrs(&self) -> crate::Attrs {
        self.handle.attrs()
    }

    /// Changes the array's attributes ([`ArrayHandle::update_attrs`]).
    pub fn update_attrs(&self, change: impl Fn(&mut crate::Attrs) -> Result<()>) -> Result<()> {
        self.handle.update_attrs(change)
    }

    /// One optional name per axis ([`ArrayHandle::dimension_names`]).
    pub fn dimension_names(&self) -> Option<Vec<Option<String>>> {
        self.handle.dimension_names()
    }

    /// One element. An element of a chunk that is not cached is read on
    /// its own (a few bytes), not with its chunk, when the store allows.
    pub fn get(&self, index: impl Dims) -> Result<T> {
        let mut buf = [0u8; 8];
        let elem = T::DTYPE.size();
        index.with_u64(|i| self.handle.get_bytes(i, &mut buf[..elem]))?;
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

    /// Reads a selection into `out`, an ndarray view of the selection's
    /// shape (any layout: a C-contiguous view is filled in place, others
    /// through one temporary of the selection's size).
    ///
    /// ```
    /// # fn main() -> chunkyard::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use chunkyard::{ArrayOptions, s};
    /// let a = chunkyard::create::<i32>(dir.path().join("a.npy"), ArrayOptions::new([4, 5]))?;
    /// a.fill(s![1, ..], 7)?;
    /// let mut out = ndarray::Array2::<i32>::zeros((5, 2));
    /// a.read_into_view(s![0..2, ..], out.view_mut().reversed_axes())?; // a transposed target
    /// assert_eq!(out[[3, 1]], 7);
    /// # Ok(()) }
    /// ```
    pub fn read_into_view<D: Dimension>(
        &self,
        sel: impl IntoSelection,
        mut out: ArrayViewMut<'_, T, D>,
    ) -> Result<()> {
        let sel = self.handle.resolve(sel)?;
        let shape: Vec<usize> = sel.out_shape().iter().map(|&d| d as usize).collect();
        if out.shape() != shape.as_slice() {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "the output has shape {:?}, the selection {shape:?}",
                    out.shape()
                ),
            });
        }
        if let Some(slice) = out.as_slice_mut() {
            return T::with_bytes_mut(slice, |b| self.handle.read_bytes(&sel, b));
        }
        let tmp = self.read(&sel)?;
        out.assign(
            &tmp.into_dimensionality::<D>()
                .map_err(|e| Error::ShapeMismatch {
                    message: e.to_string(),
                })?,
        );
        Ok(())
    }

    /// Checks a selection against the array's shape, once, for reuse
    /// (reads and writes take a [`ResolvedSelection`] as they take `s![]`).
    pub fn resolve(&self, sel: impl IntoSelection) -> Result<ResolvedSelection> {
        self.handle.resolve(sel)
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

    /// Flushes and releases this handle, returning the flush's error; see
    /// [`ArrayHandle::close`].
    pub fn close(self) -> Result<()> {
        self.handle.close()
    }

    /// Logical size vs cached vs on disk.
    pub fn memory_report(&self) -> MemoryReport {
        self.handle.memory_report()
    }

    /// Changes the length of the first axis; see [`ArrayHandle::resize`].
    pub fn resize(&self, len: u64) -> Result<()> {
        self.handle.resize(len)
    }
}
