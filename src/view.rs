//! Lazy views: a slice, an axis permutation or an element-type cast of an
//! array, costing no I/O until read or written. Views compose (a slice of a
//! permuted slice of a cast...); a read or write through one resolves to a
//! single selection on the underlying array, so it touches only the chunks
//! it needs.

use std::fmt;
use std::marker::PhantomData;

use ndarray::{ArrayD, ArrayViewMut, AsArray, Dimension, IxDyn};

use crate::array::{Array, ArrayHandle};
use crate::dims::Dims;
use crate::dtype::{DType, Element, cast_bytes};
use crate::error::{Error, Result, SelectionError};
use crate::layout::{Strided, c_strides, copy_region};
use crate::selection::{AxisSel, IntoSelection, ResolvedSelection};

/// One axis of a view: which axis of the array it walks, from where, with
/// what step, how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ViewAxis {
    base: usize,
    start: u64,
    step: u64,
    len: u64,
}

/// A lazy view of an array presenting elements of type `T` (the array's
/// own type, or another one it is cast to with NumPy `astype` semantics).
/// Cheap to clone.
pub struct View<T: Element> {
    base: ArrayHandle,
    /// Per axis of the array: the position it is fixed at, if a view
    /// dropped it with an integer index.
    fixed: Vec<Option<u64>>,
    /// The view's axes, in the view's order.
    axes: Vec<ViewAxis>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Clone for View<T> {
    fn clone(&self) -> Self {
        View {
            base: self.base.clone(),
            fixed: self.fixed.clone(),
            axes: self.axes.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Element> fmt::Debug for View<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("dtype", &T::DTYPE)
            .field("shape", &self.shape())
            .field("base", &self.base)
            .finish()
    }
}

impl<T: Element> View<T> {
    /// The whole array, as itself (any element type: reads cast).
    pub fn of(base: &ArrayHandle) -> Self {
        View {
            base: base.clone(),
            fixed: vec![None; base.ndim()],
            axes: base
                .shape()
                .iter()
                .enumerate()
                .map(|(i, &n)| ViewAxis {
                    base: i,
                    start: 0,
                    step: 1,
                    len: n,
                })
                .collect(),
            _t: PhantomData,
        }
    }

    /// The array the view looks into.
    pub fn base(&self) -> &ArrayHandle {
        &self.base
    }

    /// The view's shape.
    pub fn shape(&self) -> Vec<u64> {
        self.axes.iter().map(|a| a.len).collect()
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.axes.len()
    }

    /// Number of elements.
    pub fn len(&self) -> u64 {
        self.axes.iter().map(|a| a.len).product()
    }

    /// Whether the view has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type the view presents.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// A view of part of this view (NumPy slicing; integer indices drop
    /// axes). No I/O.
    pub fn slice(&self, sel: impl IntoSelection) -> Result<View<T>> {
        let sel = sel.resolve_in(&self.shape())?;
        let mut fixed = self.fixed.clone();
        let mut axes = Vec::new();
        for (a, s) in self.axes.iter().zip(sel.axes()) {
            match *s {
                AxisSel::Index(i) => fixed[a.base] = Some(a.start + i * a.step),
                AxisSel::Range { start, step, count } => axes.push(ViewAxis {
                    base: a.base,
                    start: a.start + start * a.step,
                    step: a.step * step,
                    len: count,
                }),
            }
        }
        Ok(View {
            base: self.base.clone(),
            fixed,
            axes,
            _t: PhantomData,
        })
    }

    /// The view with its axes reordered: axis `i` of the result is axis
    /// `order[i]` of this view (NumPy's `transpose(order)`). No I/O.
    pub fn permuted_axes(&self, order: &[usize]) -> Result<View<T>> {
        let n = self.ndim();
        let mut seen = vec![false; n];
        if order.len() != n
            || order
                .iter()
                .any(|&i| i >= n || std::mem::replace(&mut seen[i], true))
        {
            return Err(Error::invalid(format!(
                "{order:?} is not a permutation of the view's {n} axes"
            )));
        }
        Ok(View {
            base: self.base.clone(),
            fixed: self.fixed.clone(),
            axes: order.iter().map(|&i| self.axes[i]).collect(),
            _t: PhantomData,
        })
    }

    /// The view with its axes reversed (NumPy's `.T`). No I/O.
    pub fn t(&self) -> View<T> {
        let mut v = self.clone();
        v.axes.reverse();
        v
    }

    /// The same view presenting elements as `U` (NumPy `astype`
    /// semantics on read, the reverse cast on write). No I/O.
    pub fn cast<U: Element>(&self) -> View<U> {
        View {
            base: self.base.clone(),
            fixed: self.fixed.clone(),
            axes: self.axes.clone(),
            _t: PhantomData,
        }
    }

    /// Translates a selection of this view into one selection of the
    /// array, plus, for each output axis of the view's result, the position
    /// of that axis in the array read's result.
    fn to_base(&self, sel: &ResolvedSelection) -> (ResolvedSelection, Vec<usize>) {
        let mut base: Vec<AxisSel> = self
            .fixed
            .iter()
            .map(|f| AxisSel::Index(f.unwrap_or(0)))
            .collect();
        // (view output position, base axis) of kept axes.
        let mut kept = Vec::new();
        for (a, s) in self.axes.iter().zip(sel.axes()) {
            base[a.base] = match *s {
                AxisSel::Index(i) => AxisSel::Index(a.start + i * a.step),
                AxisSel::Range { start, step, count } => {
                    kept.push(a.base);
                    AxisSel::Range {
                        start: a.start + start * a.step,
                        step: a.step * step,
                        count,
                    }
                }
            };
        }
        // The array read yields kept axes in array order.
        let mut sorted = kept.clone();
        sorted.sort_unstable();
        let perm = kept
            .iter()
            .map(|b| sorted.binary_search(b).expect("kept axis"))
            .collect();
        (ResolvedSelection::from_axes(base), perm)
    }

    /// The selection of the array this whole view covers, and how the
    /// view's axes map onto that selection's output axes.
    pub fn as_base_selection(&self) -> (ResolvedSelection, Vec<usize>) {
        self.to_base(&ResolvedSelection::full(&self.shape()))
    }

    /// One element (index into the view).
    pub fn get(&self, index: impl Dims) -> Result<T> {
        index.with_u64(|index| self.get_u64(index))
    }

    fn get_u64(&self, index: &[u64]) -> Result<T> {
        let shape = self.shape();
        if index.len() != shape.len() {
            return Err(SelectionError::IndexRank {
                index: format!("{index:?}"),
                given: index.len(),
                ndim: shape.len(),
            }
            .into());
        }
        for (axis, (&i, &n)) in index.iter().zip(&shape).enumerate() {
            if i >= n {
                return Err(SelectionError::OutOfBounds {
                    axis,
                    index: i.min(i64::MAX as u64) as i64,
                    size: n,
                }
                .into());
            }
        }
        let mut base: Vec<u64> = self.fixed.iter().map(|f| f.unwrap_or(0)).collect();
        for (a, &i) in self.axes.iter().zip(index) {
            base[a.base] = a.start + i * a.step;
        }
        let d = self.base.dtype();
        let mut raw = [0u8; 8];
        self.base.get_bytes(&base, &mut raw[..d.size()])?;
        let mut out = [0u8; 8];
        cast_bytes(d, &raw[..d.size()], T::DTYPE, &mut out[..T::DTYPE.size()]);
        Ok(T::from_ne_slice(&out[..T::DTYPE.size()]))
    }

    /// Reads a selection of the view into a new array.
    pub fn read(&self, sel: impl IntoSelection) -> Result<ArrayD<T>> {
        self.read_with(sel, false)
    }

    /// Reads a selection of the view into `out`, an ndarray view of the
    /// selection's shape (any layout).
    pub fn read_into_view<D: Dimension>(
        &self,
        sel: impl IntoSelection,
        mut out: ArrayViewMut<'_, T, D>,
    ) -> Result<()> {
        let got = self.read(sel)?;
        if got.shape() != out.shape() {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "the output has shape {:?}, the selection {:?}",
                    out.shape(),
                    got.shape()
                ),
            });
        }
        let got = got
            .into_dimensionality::<D>()
            .map_err(|e| Error::ShapeMismatch {
                message: e.to_string(),
            })?;
        out.assign(&got);
        Ok(())
    }

    /// Reads a selection without loading uncached chunks into the cache
    /// (for scans; see [`ArrayHandle::read_bytes_streaming`]).
    pub fn read_streaming(&self, sel: impl IntoSelection) -> Result<ArrayD<T>> {
        self.read_with(sel, true)
    }

    fn read_with(&self, sel: impl IntoSelection, streaming: bool) -> Result<ArrayD<T>> {
        let sel = sel.resolve_in(&self.shape())?;
        let (base_sel, perm) = self.to_base(&sel);
        let out_shape = sel.out_shape();
        let n = crate::array::result_len(&sel, self.base.dtype().size().max(T::DTYPE.size()))?;
        let d = self.base.dtype();
        let shape: Vec<usize> = out_shape.iter().map(|&x| x as usize).collect();
        let read = |b: &mut [u8]| {
            if streaming {
                self.base.read_bytes_streaming(&base_sel, b)
            } else {
                self.base.read_bytes(&base_sel, b)
            }
        };
        if d == T::DTYPE && perm.iter().enumerate().all(|(k, &p)| k == p) {
            // No cast, no permutation: read straight into the result.
            let mut data = vec![T::default(); n];
            T::with_bytes_mut(&mut data, read)?;
            return ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::ShapeMismatch {
                message: e.to_string(),
            });
        }
        let mut raw = vec![0u8; n * d.size()];
        if streaming {
            self.base.read_bytes_streaming(&base_sel, &mut raw)?;
        } else {
            self.base.read_bytes(&base_sel, &mut raw)?;
        }
        // Array order -> view order.
        let raw = permute(&raw, d.size(), &base_sel.out_shape(), &perm, true);
        let mut data = vec![T::default(); n];
        T::with_bytes_mut(&mut data, |b| cast_bytes(d, &raw, T::DTYPE, b));
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| Error::ShapeMismatch {
            message: e.to_string(),
        })
    }

    /// Writes `data` (the selection's shape, or broadcastable to it) into a
    /// selection of the view, casting to the array's type.
    pub fn write<'a, V, D>(&self, sel: impl IntoSelection, data: V) -> Result<()>
    where
        V: AsArray<'a, T, D>,
        D: Dimension,
        T: 'a,
    {
        let sel = sel.resolve_in(&self.shape())?;
        let (base_sel, perm) = self.to_base(&sel);
        let shape: Vec<usize> = sel.out_shape().iter().map(|&x| x as usize).collect();
        let view = data.into().into_dyn();
        let b = view
            .broadcast(IxDyn(&shape))
            .ok_or_else(|| Error::ShapeMismatch {
                message: format!(
                    "data of shape {:?} does not fit the selection of shape {shape:?}",
                    view.shape()
                ),
            })?;
        let std = b.as_standard_layout();
        let src = T::as_bytes(std.as_slice().expect("standard layout"));
        let d = self.base.dtype();
        if d == T::DTYPE && perm.iter().enumerate().all(|(k, &p)| k == p) {
            // Same type, same axis order: the data's bytes as they are.
            return self.base.write_bytes(&base_sel, src);
        }
        let mut cast = vec![0u8; src.len() / T::DTYPE.size() * d.size()];
        cast_bytes(T::DTYPE, src, d, &mut cast);
        // View order -> array order.
        let raw = permute(&cast, d.size(), &sel.out_shape(), &perm, false);
        self.base.write_bytes(&base_sel, &raw)
    }

    /// Sets every element of a selection of the view to `value`.
    pub fn fill(&self, sel: impl IntoSelection, value: T) -> Result<()> {
        let sel = sel.resolve_in(&self.shape())?;
        let (base_sel, _) = self.to_base(&sel);
        let d = self.base.dtype();
        let mut v = vec![0u8; d.size()];
        cast_bytes(T::DTYPE, T::as_bytes(&[value]), d, &mut v);
        self.base.fill_bytes(&base_sel, &v)
    }
}

/// Reorders the axes of a dense C-order buffer. `perm[k]` is the position,
/// in the array-order buffer, of the `k`-th view-order axis. With
/// `to_view`, `src` is in array order (shape `base_shape`) and the result in
/// view order; otherwise `src` is in view order and the result in array
/// order (`base_shape` is then the view-order shape).
fn permute(src: &[u8], elem: usize, shape: &[u64], perm: &[usize], to_view: bool) -> Vec<u8> {
    if perm.iter().enumerate().all(|(k, &p)| k == p) {
        return src.to_vec();
    }
    let counts: Vec<usize>;
    let src_strides: Vec<usize>;
    let dst_strides: Vec<usize>;
    if to_view {
        // Iterate in view order over the array-order source.
        let st = c_strides(shape);
        counts = perm.iter().map(|&p| shape[p] as usize).collect();
        src_strides = perm.iter().map(|&p| st[p]).collect();
        let view_shape: Vec<u64> = counts.iter().map(|&c| c as u64).collect();
        dst_strides = c_strides(&view_shape);
    } else {
        // `shape` is the view-order shape; write into array order.
        let mut base_shape = vec![0u64; shape.len()];
        for (k, &p) in perm.iter().enumerate() {
            base_shape[p] = shape[k];
        }
        let bst = c_strides(&base_shape);
        counts = shape.iter().map(|&c| c as usize).collect();
        src_strides = c_strides(shape);
        dst_strides = perm.iter().map(|&p| bst[p]).collect();
    }
    let mut out = vec![0u8; src.len()];
    copy_region(
        &counts,
        elem,
        src,
        Strided {
            offset: 0,
            strides: &src_strides,
        },
        &mut out,
        Strided {
            offset: 0,
            strides: &dst_strides,
        },
    );
    out
}

impl<T: Element> Array<T> {
    /// The whole array as a lazy view.
    pub fn view(&self) -> View<T> {
        View::of(self.handle())
    }

    /// A lazy view of part of the array (`a.slice(s![..;2, 10.., 3])`).
    pub fn slice(&self, sel: impl IntoSelection) -> Result<View<T>> {
        self.view().slice(sel)
    }

    /// A lazy view with the axes reversed (`.T`).
    pub fn t(&self) -> View<T> {
        self.view().t()
    }

    /// A lazy view with the axes reordered.
    pub fn permuted_axes(&self, order: &[usize]) -> Result<View<T>> {
        self.view().permuted_axes(order)
    }

    /// A lazy view presenting the elements as `U` (NumPy `astype`).
    pub fn cast<U: Element>(&self) -> View<U> {
        self.view().cast()
    }

    /// Reads a selection converted to `U` (NumPy `astype` semantics).
    pub fn read_as<U: Element>(&self, sel: impl IntoSelection) -> Result<ArrayD<U>> {
        self.cast::<U>().read(sel)
    }

    /// Writes data of another element type, converting it to `T`.
    pub fn write_from<'a, U, V, D>(&self, sel: impl IntoSelection, data: V) -> Result<()>
    where
        U: Element + 'a,
        V: AsArray<'a, U, D>,
        D: Dimension,
    {
        self.cast::<U>().write(sel, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChunkCache;
    use crate::store::{MemoryStore, StoreMeta};
    use ndarray::s;
    use std::sync::Arc;

    fn arr(shape: &[u64], chunks: &[u64]) -> (Array<i32>, ArrayD<i32>) {
        let meta = StoreMeta {
            dtype: DType::I32,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            fill: vec![0; 4],
        };
        let a: Array<i32> =
            Array::from_store(Arc::new(MemoryStore::new(meta)), ChunkCache::new(1 << 20)).unwrap();
        let sh: Vec<usize> = shape.iter().map(|&x| x as usize).collect();
        let data = ArrayD::from_shape_fn(IxDyn(&sh), |i| {
            i.slice().iter().fold(0i32, |acc, &x| acc * 100 + x as i32)
        });
        a.write(.., &data).unwrap();
        (a, data)
    }

    #[test]
    fn slices_compose_like_ndarray() {
        let (a, data) = arr(&[6, 9, 7], &[4, 4, 3]);
        let v = a.slice(s![..;2, 1.., 3]).unwrap();
        assert_eq!(v.shape(), vec![3, 8]);
        let want = data.slice(s![..;2, 1.., 3]).to_owned();
        assert_eq!(v.read(..).unwrap(), want.clone().into_dyn());
        let vv = v.slice("1:, ::3").unwrap();
        assert_eq!(
            vv.read(..).unwrap(),
            want.slice(s![1.., ..;3]).to_owned().into_dyn()
        );
        assert_eq!(vv.get([1, 2]).unwrap(), want[[2usize, 6]]);
        assert!(vv.get([2, 0]).is_err());
    }

    #[test]
    fn permutations_and_transpose() {
        let (a, data) = arr(&[4, 5, 6], &[3, 2, 4]);
        let t = a.t();
        assert_eq!(t.shape(), vec![6, 5, 4]);
        let want = data.t().to_owned();
        assert_eq!(t.read(..).unwrap(), want);
        let p = a.permuted_axes(&[1, 2, 0]).unwrap();
        let want = data.clone().permuted_axes(IxDyn(&[1, 2, 0]));
        assert_eq!(p.read(..).unwrap(), want.to_owned());
        // A slice of a permutation, with an integer index.
        let sp = p.slice("1:4, 2, ::2").unwrap();
        let want = data
            .clone()
            .permuted_axes(IxDyn(&[1, 2, 0]))
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap()
            .slice(s![1..4, 2, ..;2])
            .to_owned();
        assert_eq!(sp.read(..).unwrap(), want.into_dyn());
        assert!(a.permuted_axes(&[0, 0, 1]).is_err());
        assert!(a.permuted_axes(&[0, 1]).is_err());
    }

    #[test]
    fn writes_through_views_land_in_place() {
        let (a, mut data) = arr(&[4, 5, 6], &[3, 2, 4]);
        let v = a.t().slice("1:5, 2").unwrap(); // shape (4, 4): axes (2, 0) of a
        let block = ndarray::Array2::from_shape_fn((4, 4), |(i, j)| -((i * 10 + j) as i32));
        v.write(.., &block).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                data[[j, 2, i + 1]] = block[[i, j]];
            }
        }
        assert_eq!(a.read(..).unwrap(), data);
        v.fill("0", 7).unwrap();
        assert_eq!(a.get([2, 2, 1]).unwrap(), 7);
    }

    #[test]
    fn casts_follow_numpy_astype() {
        let (a, data) = arr(&[3, 4, 5], &[2, 2, 2]);
        let f: ArrayD<f64> = a.read_as::<f64>("1").unwrap();
        assert_eq!(f, data.slice(s![1, .., ..]).mapv(|v| v as f64).into_dyn());
        let u8s = a.cast::<u8>().read("2, 3").unwrap();
        assert_eq!(u8s, data.slice(s![2, 3, ..]).mapv(|v| v as u8).into_dyn());
        // Writing floats into an i32 array truncates toward zero.
        a.write_from("0, 0, 0:3", &ndarray::arr1(&[1.9f64, -1.9, 2.5]))
            .unwrap();
        assert_eq!(
            a.read("0, 0, 0:3").unwrap(),
            ndarray::arr1(&[1, -1, 2]).into_dyn()
        );
        assert_eq!(a.cast::<f32>().t().get([0, 0, 0]).unwrap(), 1.0);
    }
}
