//! Typed reductions on [`View<T>`] and [`Array<T>`]: `a.sum()`,
//! `a.mean_axis(0)`, ... They translate the view into one selection of
//! the array and run the engine of this module ([`reduce`],
//! [`reduce_axis`]): parallel, memory bounded by the cache budget plus a
//! block per worker. Nothing here sums on its own.

use ndarray::{ArrayD, IxDyn};

use crate::array::Array;
use crate::dtype::{DType, Element, cast_bytes};
use crate::error::{Error, Result};
use crate::view::View;

use super::{Reduced, Reduction, Scalar, reduce, reduce_axis};

/// Whether every value of `from` is exactly a value of `to`: then a
/// reduction of the array's own elements equals the reduction of the
/// elements cast to `to` (sums, extremes and NaN alike), and a view cast to
/// `to` can use the engine, which reduces the array's own type.
fn value_preserving(from: DType, to: DType) -> bool {
    use DType::*;
    let int_bits = |d: DType| match d {
        I8 | U8 => Some(8),
        I16 | U16 => Some(16),
        I32 | U32 => Some(32),
        I64 | U64 => Some(64),
        _ => None,
    };
    let signed = |d: DType| matches!(d, I8 | I16 | I32 | I64);
    match (from, to) {
        _ if from == to => true,
        (Bool, _) => true,
        (_, Bool) => false,
        (F32, F64) => true,
        (F32 | F64, _) => false,
        (_, F64) => int_bits(from).is_some_and(|b| b <= 32),
        (_, F32) => int_bits(from).is_some_and(|b| b <= 16),
        _ => {
            let (a, b) = (int_bits(from).unwrap_or(64), int_bits(to).unwrap_or(0));
            match (signed(from), signed(to)) {
                (false, false) | (true, true) => b >= a,
                (false, true) => b > a,
                (true, false) => false,
            }
        }
    }
}

impl Scalar {
    /// The value as `f64`: `bool` is 0 or 1; integers beyond 2^53 round to
    /// the nearest `f64`.
    pub fn as_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => f64::from(u8::from(b)),
            Scalar::Int(i) => i as f64,
            Scalar::Float(x) => x,
        }
    }

    /// The value as `T` with NumPy `astype` semantics (exact when `T`
    /// holds it).
    fn to_element<T: Element>(self) -> T {
        match self {
            Scalar::Bool(b) => T::from_i128(i128::from(b)),
            Scalar::Int(i) => T::from_i128(i),
            Scalar::Float(x) => T::from_f64(x),
        }
    }
}

/// A reduction's dense result converted to `ArrayD<U>`.
fn to_ndarray<U: Element>(r: Reduced) -> Result<ArrayD<U>> {
    let n = r.data.len() / r.dtype.size();
    let mut out = vec![U::default(); n];
    U::with_bytes_mut(&mut out, |b| cast_bytes(r.dtype, &r.data, U::DTYPE, b));
    let shape: Vec<usize> = r.shape.iter().map(|&d| d as usize).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| Error::ShapeMismatch {
        message: e.to_string(),
    })
}

impl<T: Element> View<T> {
    /// Fails unless the engine's reduction of the array's elements is the
    /// reduction of this view's elements.
    fn check_reducible(&self, op: Reduction) -> Result<()> {
        let d = self.base().dtype();
        if value_preserving(d, T::DTYPE) {
            Ok(())
        } else {
            Err(Error::Unsupported(format!(
                "{op} of a view cast from {d} to {}: the cast does not keep every value; \
                 reduce the {d} array and cast the result",
                T::DTYPE
            )))
        }
    }

    /// Reduces the whole view to one value (any [`Reduction`]).
    pub fn reduce(&self, op: Reduction) -> Result<Scalar> {
        self.reduce_with_progress(op, &|_| ())
    }

    /// [`reduce`](Self::reduce), calling `progress` with the number of
    /// blocks done after each (out of [`reduce_steps`](crate::reduce_steps)
    /// for [`as_base_selection`](Self::as_base_selection)).
    pub fn reduce_with_progress(
        &self,
        op: Reduction,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Scalar> {
        self.check_reducible(op)?;
        let (sel, _) = self.as_base_selection();
        reduce(self.base(), &sel, op, progress)
    }

    /// Reduces the view along `axis` (an axis of the view), into an array
    /// of the view's shape without that axis, as `f64` (integer sums wrap
    /// to 64 bits first, like NumPy's `int64`).
    pub fn reduce_axis(&self, axis: usize, op: Reduction) -> Result<ArrayD<f64>> {
        self.reduce_axis_with_progress(axis, op, &|_| ())
    }

    /// [`reduce_axis`](Self::reduce_axis), calling `progress` with the
    /// number of blocks done after each.
    pub fn reduce_axis_with_progress(
        &self,
        axis: usize,
        op: Reduction,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<ArrayD<f64>> {
        to_ndarray(self.reduced_axis(axis, op, progress)?)
    }

    /// The engine's result along `axis`, its axes in the view's order.
    fn reduced_axis(
        &self,
        axis: usize,
        op: Reduction,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Reduced> {
        self.check_reducible(op)?;
        let n = self.ndim();
        if axis >= n {
            return Err(Error::invalid(format!(
                "axis {axis} is out of bounds for a view with {n} axes (shape {:?})",
                self.shape()
            )));
        }
        let (sel, perm) = self.as_base_selection();
        // `perm[k]`: where view axis `k` is among the selection's output
        // axes, which the engine's result keeps in the array's order.
        let engine_axis = perm[axis];
        let r = reduce_axis(self.base(), &sel, engine_axis, op, progress)?;
        let order: Vec<usize> = (0..n)
            .filter(|&k| k != axis)
            .map(|k| perm[k] - usize::from(perm[k] > engine_axis))
            .collect();
        if order.iter().enumerate().all(|(i, &o)| i == o) {
            return Ok(r);
        }
        // Reorder the (small, in-memory) result into the view's order.
        let bytes = ArrayD::from_shape_vec(
            IxDyn(&r.shape.iter().map(|&d| d as usize).collect::<Vec<_>>()),
            r.data
                .chunks_exact(r.dtype.size())
                .map(<[u8]>::to_vec)
                .collect(),
        )
        .map_err(|e| Error::ShapeMismatch {
            message: e.to_string(),
        })?
        .permuted_axes(IxDyn(&order));
        let shape = bytes.shape().iter().map(|&d| d as u64).collect();
        Ok(Reduced {
            dtype: r.dtype,
            shape,
            data: bytes.iter().flatten().copied().collect(),
        })
    }

    /// Sum of the elements as `f64` (NaN propagates). Parallel, memory
    /// bounded by the cache budget; integers are summed exactly, then
    /// converted.
    pub fn sum(&self) -> Result<f64> {
        Ok(self.reduce(Reduction::Sum)?.as_f64())
    }

    /// Sum of the elements that are not NaN.
    pub fn nansum(&self) -> Result<f64> {
        Ok(self.reduce(Reduction::NanSum)?.as_f64())
    }

    /// Arithmetic mean (NaN propagates; NaN for no elements).
    pub fn mean(&self) -> Result<f64> {
        Ok(self.reduce(Reduction::Mean)?.as_f64())
    }

    /// Mean of the elements that are not NaN.
    pub fn nanmean(&self) -> Result<f64> {
        Ok(self.reduce(Reduction::NanMean)?.as_f64())
    }

    /// Smallest element (NaN propagates); an error for no elements.
    pub fn min(&self) -> Result<T> {
        Ok(self.reduce(Reduction::Min)?.to_element())
    }

    /// Smallest element that is not NaN (NaN if all are).
    pub fn nanmin(&self) -> Result<T> {
        Ok(self.reduce(Reduction::NanMin)?.to_element())
    }

    /// Largest element (NaN propagates); an error for no elements.
    pub fn max(&self) -> Result<T> {
        Ok(self.reduce(Reduction::Max)?.to_element())
    }

    /// Largest element that is not NaN (NaN if all are).
    pub fn nanmax(&self) -> Result<T> {
        Ok(self.reduce(Reduction::NanMax)?.to_element())
    }

    /// Number of elements that are not NaN.
    pub fn count(&self) -> Result<u64> {
        match self.reduce(Reduction::Count)? {
            Scalar::Int(n) => Ok(n as u64),
            other => Ok(other.as_f64() as u64),
        }
    }

    /// Sums along `axis` (see [`reduce_axis`](Self::reduce_axis)).
    pub fn sum_axis(&self, axis: usize) -> Result<ArrayD<f64>> {
        self.reduce_axis(axis, Reduction::Sum)
    }

    /// NaN-skipping sums along `axis`.
    pub fn nansum_axis(&self, axis: usize) -> Result<ArrayD<f64>> {
        self.reduce_axis(axis, Reduction::NanSum)
    }

    /// Means along `axis`.
    pub fn mean_axis(&self, axis: usize) -> Result<ArrayD<f64>> {
        self.reduce_axis(axis, Reduction::Mean)
    }

    /// NaN-skipping means along `axis`.
    pub fn nanmean_axis(&self, axis: usize) -> Result<ArrayD<f64>> {
        self.reduce_axis(axis, Reduction::NanMean)
    }

    /// Smallest elements along `axis`.
    pub fn min_axis(&self, axis: usize) -> Result<ArrayD<T>> {
        to_ndarray(self.reduced_axis(axis, Reduction::Min, &|_| ())?)
    }

    /// Smallest elements along `axis` that are not NaN.
    pub fn nanmin_axis(&self, axis: usize) -> Result<ArrayD<T>> {
        to_ndarray(self.reduced_axis(axis, Reduction::NanMin, &|_| ())?)
    }

    /// Largest elements along `axis`.
    pub fn max_axis(&self, axis: usize) -> Result<ArrayD<T>> {
        to_ndarray(self.reduced_axis(axis, Reduction::Max, &|_| ())?)
    }

    /// Largest elements along `axis` that are not NaN.
    pub fn nanmax_axis(&self, axis: usize) -> Result<ArrayD<T>> {
        to_ndarray(self.reduced_axis(axis, Reduction::NanMax, &|_| ())?)
    }

    /// Counts of elements that are not NaN along `axis`.
    pub fn count_axis(&self, axis: usize) -> Result<ArrayD<u64>> {
        to_ndarray(self.reduced_axis(axis, Reduction::Count, &|_| ())?)
    }
}

/// `Array<T>` forwards each reduction to its whole view.
macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl<T: Element> Array<T> {
            $(
                $(#[$doc])*
                pub fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                    self.view().$name($($arg),*)
                }
            )*
        }
    };
}

forward! {
    /// Reduces the whole array to one value; see [`View::reduce`].
    reduce(op: Reduction) -> Scalar;
    /// See [`View::reduce_with_progress`].
    reduce_with_progress(op: Reduction, progress: &(dyn Fn(u64) + Sync)) -> Scalar;
    /// Reduces along `axis`, as `f64`; see [`View::reduce_axis`].
    reduce_axis(axis: usize, op: Reduction) -> ArrayD<f64>;
    /// See [`View::reduce_axis_with_progress`].
    reduce_axis_with_progress(axis: usize, op: Reduction, progress: &(dyn Fn(u64) + Sync)) -> ArrayD<f64>;
    /// Sum as `f64`; see [`View::sum`].
    sum() -> f64;
    /// Sum of the elements that are not NaN.
    nansum() -> f64;
    /// Arithmetic mean; see [`View::mean`].
    mean() -> f64;
    /// Mean of the elements that are not NaN.
    nanmean() -> f64;
    /// Smallest element; see [`View::min`].
    min() -> T;
    /// Smallest element that is not NaN.
    nanmin() -> T;
    /// Largest element; see [`View::max`].
    max() -> T;
    /// Largest element that is not NaN.
    nanmax() -> T;
    /// Number of elements that are not NaN.
    count() -> u64;
    /// Sums along `axis`.
    sum_axis(axis: usize) -> ArrayD<f64>;
    /// NaN-skipping sums along `axis`.
    nansum_axis(axis: usize) -> ArrayD<f64>;
    /// Means along `axis`.
    mean_axis(axis: usize) -> ArrayD<f64>;
    /// NaN-skipping means along `axis`.
    nanmean_axis(axis: usize) -> ArrayD<f64>;
    /// Smallest elements along `axis`.
    min_axis(axis: usize) -> ArrayD<T>;
    /// Smallest elements along `axis` that are not NaN.
    nanmin_axis(axis: usize) -> ArrayD<T>;
    /// Largest elements along `axis`.
    max_axis(axis: usize) -> ArrayD<T>;
    /// Largest elements along `axis` that are not NaN.
    nanmax_axis(axis: usize) -> ArrayD<T>;
    /// Counts of elements that are not NaN along `axis`.
    count_axis(axis: usize) -> ArrayD<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::mem_array;
    use ndarray::{Axis, s};

    /// A 3-D f32 array of known values with a few NaN, and the same data
    /// in memory.
    fn data() -> (Array<f32>, ArrayD<f32>) {
        let a = mem_array::<f32>(&[5, 6, 7], &[2, 4, 3], 1 << 16);
        let d = ArrayD::from_shape_fn(IxDyn(&[5, 6, 7]), |i| {
            (i[0] * 100 + i[1] * 10 + i[2]) as f32 - 250.0
        });
        a.write(.., &d).unwrap();
        (a, d)
    }

    #[test]
    fn whole_reductions_match_plain_loops() {
        let (a, d) = data();
        let sum: f64 = d.iter().map(|&v| v as f64).sum();
        assert_eq!(a.sum().unwrap(), sum);
        assert_eq!(a.mean().unwrap(), sum / 210.0);
        assert_eq!(a.min().unwrap(), -250.0f32);
        assert_eq!(a.max().unwrap(), 206.0f32);
        assert_eq!(a.count().unwrap(), 210);
        // The same on a view, and through a widening cast.
        let v = a.slice(s![3, .., ..]).unwrap();
        let plane = d.slice(s![3, .., ..]);
        let psum: f64 = plane.iter().map(|&v| v as f64).sum();
        assert_eq!(v.sum().unwrap(), psum);
        assert_eq!(v.mean().unwrap(), psum / 42.0);
        assert_eq!(v.cast::<f64>().max().unwrap(), 106.0f64);
        assert_eq!(a.t().slice(s![..;2, 1, ..]).unwrap().min().unwrap(), -240.0);
    }

    #[test]
    fn nan_variants_skip_nan_and_plain_ones_propagate_it() {
        let (a, d) = data();
        a.fill(s![0, 0, 0], f32::NAN).unwrap();
        a.fill(s![4, 5, 6], f32::NAN).unwrap();
        let kept: Vec<f64> = d
            .iter()
            .map(|&v| v as f64)
            .filter(|&v| v != -250.0 && v != 206.0)
            .collect();
        assert!(a.sum().unwrap().is_nan());
        assert!(a.min().unwrap().is_nan());
        assert_eq!(a.nansum().unwrap(), kept.iter().sum::<f64>());
        assert_eq!(a.nanmean().unwrap(), kept.iter().sum::<f64>() / 208.0);
        assert_eq!(a.nanmin().unwrap(), -249.0);
        assert_eq!(a.nanmax().unwrap(), 205.0);
        assert_eq!(a.count().unwrap(), 208);
        let c = a.count_axis(0).unwrap();
        assert_eq!(c[[0, 0]], 4);
        assert_eq!(c[[1, 1]], 5);
        let m = a.nanmax_axis(2).unwrap();
        assert_eq!(m[[4, 5]], 205.0);
        assert!(a.max_axis(2).unwrap()[[4, 5]].is_nan());
    }

    #[test]
    fn axis_reductions_match_ndarray_in_the_views_order() {
        let (a, d) = data();
        let d64 = d.mapv(|v| v as f64);
        for axis in 0..3 {
            assert_eq!(a.sum_axis(axis).unwrap(), d64.sum_axis(Axis(axis)));
            assert_eq!(
                a.mean_axis(axis).unwrap(),
                d64.mean_axis(Axis(axis)).unwrap()
            );
            let min = d.map_axis(Axis(axis), |l| l.iter().copied().fold(f32::MAX, f32::min));
            let max = d.map_axis(Axis(axis), |l| l.iter().copied().fold(f32::MIN, f32::max));
            assert_eq!(a.min_axis(axis).unwrap(), min);
            assert_eq!(a.max_axis(axis).unwrap(), max);
        }
        // A permuted, sliced view: the result's axes follow the view.
        let v = a
            .permuted_axes(&[2, 0, 1])
            .unwrap()
            .slice(s![1.., .., ..;2])
            .unwrap();
        let want = d64
            .view()
            .permuted_axes(IxDyn(&[2, 0, 1]))
            .slice_move(s![1.., .., ..;2]);
        for axis in 0..3 {
            assert_eq!(
                v.cast::<f64>().sum_axis(axis).unwrap(),
                want.sum_axis(Axis(axis)).into_dyn()
            );
        }
        assert!(a.sum_axis(3).unwrap_err().to_string().contains("axis 3"));
    }

    #[test]
    fn integer_arrays_and_casts() {
        let a = mem_array::<i16>(&[4, 5], &[3, 2], 1 << 16);
        let d = ArrayD::from_shape_fn(IxDyn(&[4, 5]), |i| (i[0] as i16 - 2) * 1000 + i[1] as i16);
        a.write(.., &d).unwrap();
        let sum: i64 = d.iter().map(|&v| v as i64).sum();
        assert_eq!(a.sum().unwrap(), sum as f64);
        assert_eq!(a.min().unwrap(), -2000i16);
        assert_eq!(a.cast::<i32>().max().unwrap(), 1004i32);
        assert_eq!(a.cast::<f32>().min().unwrap(), -2000.0f32);
        assert_eq!(
            a.sum_axis(1).unwrap(),
            d.mapv(|v| v as f64).sum_axis(Axis(1))
        );
        // A cast that loses values is refused rather than reduced wrongly.
        let e = a.cast::<u8>().max().unwrap_err().to_string();
        assert!(e.contains("i16") && e.contains("u8"), "{e}");
        assert_eq!(Scalar::Int(-3).as_f64(), -3.0);
        assert_eq!(Scalar::Bool(true).as_f64(), 1.0);
        assert_eq!(a.reduce(Reduction::Count).unwrap(), Scalar::Int(20));
    }

    #[test]
    fn empty_views() {
        let (a, _) = data();
        let v = a.slice(s![0..0, .., ..]).unwrap();
        assert_eq!(v.sum().unwrap(), 0.0);
        assert!(v.mean().unwrap().is_nan());
        assert!(v.min().is_err());
    }

    #[test]
    fn value_preserving_casts() {
        use DType::*;
        assert!(value_preserving(F32, F64));
        assert!(value_preserving(U8, I16));
        assert!(value_preserving(I32, F64));
        assert!(value_preserving(Bool, U8));
        assert!(!value_preserving(F64, F32));
        assert!(!value_preserving(I32, F32));
        assert!(!value_preserving(I8, U64));
        assert!(!value_preserving(U16, I16));
        assert!(!value_preserving(I64, F64));
    }

    #[test]
    fn nan_axis_variants_and_progress() {
        let (a, d) = data();
        a.fill(s![.., 2, 3], f32::NAN).unwrap();
        let d64 = d.mapv(|v| v as f64);
        // Along axis 0 every (2, 3) column is all NaN; elsewhere none.
        let ns = a.nansum_axis(0).unwrap();
        assert_eq!(ns[[2, 3]], 0.0);
        assert_eq!(ns[[1, 4]], d64.sum_axis(Axis(0))[[1, 4]]);
        let nm = a.nanmean_axis(0).unwrap();
        assert!(nm[[2, 3]].is_nan());
        assert_eq!(nm[[5, 6]], d64.mean_axis(Axis(0)).unwrap()[[5, 6]]);
        let mn = a.nanmin_axis(1).unwrap();
        // Along axis 1 the NaN is skipped: row 2 is gone from column 3.
        assert_eq!(mn[[4, 3]], d[[4, 0, 3]]);
        let mx = a.nanmax_axis(1).unwrap();
        assert_eq!(mx[[4, 3]], d[[4, 5, 3]]);

        use std::sync::atomic::{AtomicU64, Ordering};
        let done = AtomicU64::new(0);
        let count = |n: u64| {
            done.fetch_add(n, Ordering::Relaxed);
        };
        let (sel, _) = a.view().as_base_selection();
        let steps = crate::reduce_steps(a.handle(), &sel);
        let r = a.reduce_with_progress(Reduction::NanMax, &count).unwrap();
        assert_eq!(r, Scalar::Float(f64::from(d[[4, 5, 6]])));
        assert_eq!(done.load(Ordering::Relaxed), steps);
        done.store(0, Ordering::Relaxed);
        let steps = crate::reduce_axis_steps(a.handle(), &sel, 2);
        let r = a
            .reduce_axis_with_progress(2, Reduction::Count, &count)
            .unwrap();
        assert_eq!(r[[0, 2]], 6.0);
        assert_eq!(r[[0, 1]], 7.0);
        assert_eq!(done.load(Ordering::Relaxed), steps);
        assert!(steps > 0);
    }
}
