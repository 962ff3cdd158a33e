//! Reductions over an array, a selection, or along one axis: sum, mean,
//! min, max, count, and the NaN-skipping `nan*` variants, computed block by
//! block in parallel with memory bounded by the cache budget plus one block
//! of accumulators per worker.
//!
//! Accuracy and NaN follow NumPy: integer sums are exact (128-bit
//! accumulators; results along an axis wrap to 64 bits like NumPy's
//! `int64`), float sums are `f64`: pairwise within a block for whole
//! reductions, compensated (Neumaier) along an axis and across blocks.
//! `sum`, `mean`, `min`, `max` propagate NaN; `nansum`, `nanmean`,
//! `nanmin`, `nanmax` skip it (all-NaN gives NaN, and `nansum` 0); `count`
//! counts the elements that are not NaN.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::array::ArrayHandle;
use crate::buffer::ScratchPool;
use crate::dtype::{DType, Element, cast, dispatch};
use crate::error::{Error, Result};
use crate::ops::{BlockPlan, sub_selection};
use crate::selection::{AxisSel, ResolvedSelection};

/// A reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Sum; NaN propagates.
    Sum,
    /// Sum skipping NaN.
    NanSum,
    /// Arithmetic mean as `f64`; NaN propagates; NaN for no elements.
    Mean,
    /// Mean of the elements that are not NaN.
    NanMean,
    /// Smallest element; NaN propagates.
    Min,
    /// Smallest element that is not NaN.
    NanMin,
    /// Largest element; NaN propagates.
    Max,
    /// Largest element that is not NaN.
    NanMax,
    /// Number of elements that are not NaN.
    Count,
}

impl Reduction {
    /// Every reduction, in a stable order.
    pub const ALL: [Reduction; 9] = [
        Reduction::Sum,
        Reduction::NanSum,
        Reduction::Mean,
        Reduction::NanMean,
        Reduction::Min,
        Reduction::NanMin,
        Reduction::Max,
        Reduction::NanMax,
        Reduction::Count,
    ];

    /// The name used on the command line (`nansum`).
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::NanSum => "nansum",
            Reduction::Mean => "mean",
            Reduction::NanMean => "nanmean",
            Reduction::Min => "min",
            Reduction::NanMin => "nanmin",
            Reduction::Max => "max",
            Reduction::NanMax => "nanmax",
            Reduction::Count => "count",
        }
    }

    fn skips_nan(self) -> bool {
        matches!(
            self,
            Reduction::NanSum | Reduction::NanMean | Reduction::NanMin | Reduction::NanMax
        )
    }

    /// Element type of the result for input of type `input` (NumPy's:
    /// sums of integers are 64-bit integers, of floats `f64` here; means
    /// `f64`; min and max keep the type; counts `i64`).
    pub fn result_dtype(self, input: DType) -> DType {
        match self {
            Reduction::Sum | Reduction::NanSum => match input {
                DType::F32 | DType::F64 => DType::F64,
                DType::U8 | DType::U16 | DType::U32 | DType::U64 => DType::U64,
                _ => DType::I64,
            },
            Reduction::Mean | Reduction::NanMean => DType::F64,
            Reduction::Min | Reduction::NanMin | Reduction::Max | Reduction::NanMax => input,
            Reduction::Count => DType::I64,
        }
    }
}

impl FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reduction::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown reduction {s:?} (expected one of: {})",
                    Reduction::ALL.map(|r| r.name()).join(", ")
                ))
            })
    }
}

impl fmt::Display for Reduction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole reduction's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// A boolean (min/max of a bool array).
    Bool(bool),
    /// An exact integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) if x.is_nan() => write!(f, "nan"),
            Scalar::Float(x) if x.is_infinite() => {
                write!(f, "{}", if *x > 0.0 { "inf" } else { "-inf" })
            }
            Scalar::Float(x) => write!(f, "{x:?}"),
        }
    }
}

#[inline]
#[allow(clippy::eq_op)]
fn is_nan<T: Element>(v: T) -> bool {
    v != v
}

/// Neumaier's compensated addition: adds `x` to `(sum, comp)`. Once the
/// sum is infinite or NaN the compensation stops (it would turn an
/// infinite sum into NaN).
#[inline]
fn add_compensated(sum: &mut f64, comp: &mut f64, x: f64) {
    let t = *sum + x;
    if t.is_finite() {
        if sum.abs() >= x.abs() {
            *comp += (*sum - t) + x;
        } else {
            *comp += (x - t) + *sum;
        }
    }
    *sum = t;
}

/// The compensated sum's value.
#[inline]
fn total(sum: f64, comp: f64) -> f64 {
    if sum.is_finite() { sum + comp } else { sum }
}

/// Pairwise summation in `f64` of the values that are not NaN (error grows
/// with log n, like NumPy's), and how many were NaN.
fn pairwise<T: Element>(v: &[T]) -> (f64, u64) {
    if v.len() <= 128 {
        // Eight independent lanes, branch-free, so the loop vectorises.
        let mut acc = [0.0f64; 8];
        let mut nans = [0u64; 8];
        let mut lanes = v.chunks_exact(8);
        for c in &mut lanes {
            for k in 0..8 {
                let x = c[k].to_f64();
                let nan = x.is_nan();
                acc[k] += if nan { 0.0 } else { x };
                nans[k] += nan as u64;
            }
        }
        let mut rest = 0.0;
        let mut rest_nans = 0u64;
        for &x in lanes.remainder() {
            let x = x.to_f64();
            if x.is_nan() {
                rest_nans += 1;
            } else {
                rest += x;
            }
        }
        let s = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
            + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
            + rest;
        (s, nans.iter().sum::<u64>() + rest_nans)
    } else {
        let mid = v.len() / 2;
        let (a, n) = pairwise(&v[..mid]);
        let (b, m) = pairwise(&v[mid..]);
        (a + b, n + m)
    }
}

/// Pairwise summation in `f64` of every value, NaN included (a NaN makes
/// the sum NaN, as it should for `sum` and `mean`): `pairwise` without the
/// NaN test per element, which cost `reduce sum` about half its time.
fn pairwise_all<T: Element>(v: &[T]) -> f64 {
    if v.len() <= 256 {
        let mut acc = [0.0f64; 8];
        let mut lanes = v.chunks_exact(8);
        for c in &mut lanes {
            for k in 0..8 {
                acc[k] += c[k].to_f64();
            }
        }
        let rest: f64 = lanes.remainder().iter().map(|x| x.to_f64()).sum();
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + rest
    } else {
        let mid = v.len() / 2;
        pairwise_all(&v[..mid]) + pairwise_all(&v[mid..])
    }
}

/// Partial result of a whole reduction over some elements.
#[derive(Debug, Clone, Copy)]
struct Acc<T> {
    count: u64,
    nans: u64,
    int_sum: i128,
    float_sum: f64,
    comp: f64,
    /// Extremes of the elements that are not NaN.
    min: Option<T>,
    max: Option<T>,
}

impl<T: Element> Acc<T> {
    fn empty() -> Self {
        Acc {
            count: 0,
            nans: 0,
            int_sum: 0,
            float_sum: 0.0,
            comp: 0.0,
            min: None,
            max: None,
        }
    }

    fn of_block(values: &[T], op: Reduction) -> Self {
        let mut a = Self::empty();
        a.count = values.len() as u64;
        let sums = matches!(
            op,
            Reduction::Sum | Reduction::NanSum | Reduction::Mean | Reduction::NanMean
        );
        if T::DTYPE.is_float() {
            if sums && !op.skips_nan() {
                add_compensated(&mut a.float_sum, &mut a.comp, pairwise_all(values));
            } else if sums {
                let (s, nans) = pairwise(values);
                a.nans = nans;
                add_compensated(&mut a.float_sum, &mut a.comp, s);
            } else {
                a.nans = values.iter().filter(|&&v| is_nan(v)).count() as u64;
            }
        } else if sums {
            a.int_sum = values.iter().map(|v| v.to_i128()).sum();
        }
        if !matches!(
            op,
            Reduction::Min | Reduction::NanMin | Reduction::Max | Reduction::NanMax
        ) {
            return a;
        }
        for &v in values {
            if is_nan(v) {
                continue;
            }
            if a.min.is_none_or(|m| v < m) {
                a.min = Some(v);
            }
            if a.max.is_none_or(|m| v > m) {
                a.max = Some(v);
            }
        }
        a
    }

    fn merge(mut self, o: Self) -> Self {
        self.count += o.count;
        self.nans += o.nans;
        self.int_sum += o.int_sum;
        add_compensated(&mut self.float_sum, &mut self.comp, o.float_sum);
        if o.comp.is_finite() {
            self.comp += o.comp;
        }
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(if b < a { b } else { a }),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(if b > a { b } else { a }),
            (a, b) => a.or(b),
        };
        self
    }

    fn finish(&self, op: Reduction) -> Result<Scalar> {
        let float = T::DTYPE.is_float();
        let propagate = self.nans > 0 && !op.skips_nan();
        let sum = if float {
            total(self.float_sum, self.comp)
        } else {
            self.int_sum as f64
        };
        let elem = |v: T| {
            if T::DTYPE == DType::Bool {
                Scalar::Bool(v.to_i128() != 0)
            } else if float {
                Scalar::Float(v.to_f64())
            } else {
                Scalar::Int(v.to_i128())
            }
        };
        let valid = self.count - self.nans;
        Ok(match op {
            Reduction::Sum | Reduction::NanSum => {
                if !float {
                    Scalar::Int(self.int_sum)
                } else if propagate {
                    Scalar::Float(f64::NAN)
                } else {
                    Scalar::Float(sum)
                }
            }
            Reduction::Mean | Reduction::NanMean => {
                if propagate || valid == 0 {
                    Scalar::Float(f64::NAN)
                } else {
                    Scalar::Float(sum / valid as f64)
                }
            }
            Reduction::Count => Scalar::Int(valid as i128),
            _ if self.count == 0 => {
                return Err(Error::invalid(format!(
                    "zero-size selection: {op} has no identity"
                )));
            }
            _ if propagate => Scalar::Float(f64::NAN),
            Reduction::Min | Reduction::NanMin => self.min.map_or(Scalar::Float(f64::NAN), elem),
            Reduction::Max | Reduction::NanMax => self.max.map_or(Scalar::Float(f64::NAN), elem),
        })
    }
}

/// Bytes per block of a whole reduction over a store with partial reads.
const SCAN_BLOCK_BYTES: usize = 1 << 20;

/// The blocks a whole reduction reads: about a chunk each, or for stores
/// with partial reads (whose blocks of a chunk are read straight from the
/// store) at most [`SCAN_BLOCK_BYTES`], so that each is summed while it is
/// in the CPU's cache. Reading whole 16 MB planes, the bench's sum went
/// through memory twice: `chunkyard reduce FILE sum` on its 1.6 GB npy took
/// 0.61-0.70 s that way, 0.41-0.44 s in 1 MiB blocks.
fn whole_plan(a: &ArrayHandle, sel: &ResolvedSelection) -> BlockPlan {
    let plan = BlockPlan::new(sel, a.chunks());
    if a.store().capabilities().partial_reads {
        plan.split_outer_to((SCAN_BLOCK_BYTES / a.dtype().size()) as u64)
    } else {
        plan
    }
}

/// How many progress steps [`reduce`] reports for `sel`.
pub fn reduce_steps(a: &ArrayHandle, sel: &ResolvedSelection) -> u64 {
    whole_plan(a, sel).len()
}

fn reduce_typed<T: Element>(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Scalar> {
    let plan = whole_plan(a, sel);
    let pool = ScratchPool::<T>::new();
    let acc = (0..plan.len())
        .into_par_iter()
        .map_init(
            || pool.take(),
            |buf, i| -> Result<Acc<T>> {
                let (lo, counts) = plan.block(i);
                let s = sub_selection(sel, &lo, &counts);
                let vals = buf.reset(counts.iter().product::<u64>() as usize);
                T::with_bytes_mut(&mut *vals, |b| a.read_bytes_streaming(&s, b))?;
                progress(1);
                Ok(Acc::of_block(vals, op))
            },
        )
        .try_reduce(Acc::empty, |x, y| Ok(x.merge(y)))?;
    acc.finish(op)
}

/// Reduces a selection of `a` to one value, block by block in parallel.
/// `progress` is called once per block done.
pub fn reduce(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Scalar> {
    dispatch!(a.dtype(), T => reduce_typed::<T>(a, sel, op, progress))
}

/// The result of a reduction along an axis: a dense C-order array.
#[derive(Debug, Clone, PartialEq)]
pub struct Reduced {
    /// Element type (see [`Reduction::result_dtype`]).
    pub dtype: DType,
    /// Shape: the selection's shape without the reduced axis.
    pub shape: Vec<u64>,
    /// Native-order bytes, C order.
    pub data: Vec<u8>,
}

/// Per-element accumulators for one block of an axis reduction.
struct AxisAcc<T> {
    sum: Vec<f64>,
    comp: Vec<f64>,
    isum: Vec<i128>,
    nans: Vec<u64>,
    best: Vec<Option<T>>,
}

impl<T: Element> AxisAcc<T> {
    fn new(op: Reduction, m: usize) -> Self {
        let float = T::DTYPE.is_float();
        let sums = matches!(
            op,
            Reduction::Sum | Reduction::NanSum | Reduction::Mean | Reduction::NanMean
        );
        let extremes = matches!(
            op,
            Reduction::Min | Reduction::NanMin | Reduction::Max | Reduction::NanMax
        );
        AxisAcc {
            sum: if sums && float {
                vec![0.0; m]
            } else {
                Vec::new()
            },
            comp: if sums && float {
                vec![0.0; m]
            } else {
                Vec::new()
            },
            isum: if sums && !float {
                vec![0; m]
            } else {
                Vec::new()
            },
            nans: if float { vec![0; m] } else { Vec::new() },
            best: if extremes { vec![None; m] } else { Vec::new() },
        }
    }

    /// Folds a `[outer, seg, inner]` C-order buffer into accumulators
    /// indexed `[outer, inner]`.
    fn add(&mut self, op: Reduction, buf: &[T], outer: usize, seg: usize, inner: usize) {
        let float = T::DTYPE.is_float();
        let take_min = matches!(op, Reduction::Min | Reduction::NanMin);
        for o in 0..outer {
            for j in 0..seg {
                let row = &buf[(o * seg + j) * inner..(o * seg + j + 1) * inner];
                let base = o * inner;
                for (i, &v) in row.iter().enumerate() {
                    let k = base + i;
                    if float && is_nan(v) {
                        self.nans[k] += 1;
                        continue;
                    }
                    if !self.sum.is_empty() {
                        add_compensated(&mut self.sum[k], &mut self.comp[k], v.to_f64());
                    } else if !self.isum.is_empty() {
                        self.isum[k] += v.to_i128();
                    } else if !self.best.is_empty() {
                        let b = &mut self.best[k];
                        let better = match b {
                            None => true,
                            Some(x) => (take_min && v < *x) || (!take_min && v > *x),
                        };
                        if better {
                            *b = Some(v);
                        }
                    }
                }
            }
        }
    }

    /// The block's results as values of type `R`.
    fn finish<R: Element>(&self, op: Reduction, n: u64, m: usize) -> Vec<R> {
        let float = T::DTYPE.is_float();
        (0..m)
            .map(|k| {
                let nans = if float { self.nans[k] } else { 0 };
                let propagate = nans > 0 && !op.skips_nan();
                let valid = n - nans;
                match op {
                    Reduction::Count => R::from_i128(valid as i128),
                    Reduction::Sum | Reduction::NanSum if !float => R::from_i128(self.isum[k]),
                    _ if propagate => R::from_f64(f64::NAN),
                    Reduction::Sum | Reduction::NanSum => {
                        R::from_f64(total(self.sum[k], self.comp[k]))
                    }
                    Reduction::Mean | Reduction::NanMean => {
                        let s = if float {
                            total(self.sum[k], self.comp[k])
                        } else {
                            self.isum[k] as f64
                        };
                        R::from_f64(if valid == 0 {
                            f64::NAN
                        } else {
                            s / valid as f64
                        })
                    }
                    _ => match self.best[k] {
                        Some(v) => cast::<T, R>(v),
                        None => R::from_f64(f64::NAN),
                    },
                }
            })
            .collect()
    }
}

/// How an axis reduction cuts its work: the array axis behind output axis
/// `axis`, that axis' step, the output space (the selection with the axis
/// pinned) and the block plan over it.
struct AxisPlan {
    arr_axis: usize,
    step: u64,
    shape: Vec<u64>,
    plan: BlockPlan,
}

fn axis_plan(a: &ArrayHandle, sel: &ResolvedSelection, axis: usize) -> Result<AxisPlan> {
    let arr_axis = sel
        .axes()
        .iter()
        .enumerate()
        .filter(|(_, a)| a.is_kept())
        .nth(axis)
        .map(|(i, _)| i)
        .ok_or_else(|| {
            Error::invalid(format!(
                "axis {axis} is out of bounds for a result with {} axes",
                sel.out_shape().len()
            ))
        })?;
    let (start, step, _) = sel.axes()[arr_axis].as_range();
    let mut pinned: Vec<AxisSel> = sel.axes().to_vec();
    pinned[arr_axis] = AxisSel::Index(start);
    let pinned = ResolvedSelection::from_axes(pinned);
    let shape = pinned.out_shape();
    let m_total: u64 = shape.iter().product();
    // Enough blocks for every worker, none larger than 1 Mi elements.
    let threads = rayon::current_num_threads() as u64;
    let max_block = (m_total / (4 * threads)).clamp(1024, 1 << 20);
    let plan = BlockPlan::new(&pinned, a.chunks()).split_to(max_block);
    Ok(AxisPlan {
        arr_axis,
        step,
        shape,
        plan,
    })
}

fn reduce_axis_typed<T: Element, R: Element>(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    axis: usize,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Reduced> {
    let AxisPlan {
        arr_axis,
        step,
        shape,
        plan,
    } = axis_plan(a, sel, axis)?;
    let full = sel.out_shape();
    let n = full[axis];
    if n == 0
        && matches!(
            op,
            Reduction::Min | Reduction::Max | Reduction::NanMin | Reduction::NanMax
        )
    {
        return Err(Error::invalid(format!(
            "zero-size axis {axis}: {op} has no identity"
        )));
    }
    let m_total: u64 = shape.iter().product();
    let seg_len = (a.chunks()[arr_axis] / step).max(1);
    let rsize = R::DTYPE.size();

    let pool = ScratchPool::<T>::new();
    let blocks: Vec<(Vec<u64>, Vec<u64>, Vec<u8>)> = (0..plan.len())
        .into_par_iter()
        .map_init(
            || pool.take(),
            |buf, b| -> Result<_> {
                let (lo, counts) = plan.block(b);
                let m = counts.iter().product::<u64>() as usize;
                let outer: usize = counts[..axis].iter().product::<u64>() as usize;
                let inner: usize = counts[axis..].iter().product::<u64>() as usize;
                let mut acc = AxisAcc::<T>::new(op, m);
                let mut j = 0;
                while j < n {
                    let seg = seg_len.min(n - j);
                    let mut lo_full = lo.clone();
                    lo_full.insert(axis, j);
                    let mut counts_full = counts.clone();
                    counts_full.insert(axis, seg);
                    let s = sub_selection(sel, &lo_full, &counts_full);
                    let vals = buf.reset(m * seg as usize);
                    T::with_bytes_mut(&mut *vals, |bytes| a.read_bytes_streaming(&s, bytes))?;
                    acc.add(op, vals, outer, seg as usize, inner);
                    j += seg;
                }
                progress(1);
                let vals = acc.finish::<R>(op, n, m);
                Ok((lo, counts, R::as_bytes(&vals).to_vec()))
            },
        )
        .collect::<Result<_>>()?;

    let mut data = vec![0u8; m_total as usize * rsize];
    let st = crate::layout::c_strides(&shape);
    for (lo, counts, bytes) in blocks {
        let cs: Vec<usize> = counts.iter().map(|&c| c as usize).collect();
        let cshape: Vec<u64> = counts.clone();
        let bst = crate::layout::c_strides(&cshape);
        let offset = lo.iter().zip(&st).map(|(&l, &s)| l as usize * s).sum();
        crate::layout::copy_region(
            &cs,
            rsize,
            &bytes,
            crate::layout::Strided {
                offset: 0,
                strides: &bst,
            },
            &mut data,
            crate::layout::Strided {
                offset,
                strides: &st,
            },
        );
    }
    Ok(Reduced {
        dtype: R::DTYPE,
        shape,
        data,
    })
}

/// Reduces a selection of `a` along output axis `axis` of the selection
/// (an axis of `sel.out_shape()`), block by block in parallel. The result
/// is held in memory: it is the selection's size divided by the axis'
/// length.
pub fn reduce_axis(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    axis: usize,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Reduced> {
    let r = op.result_dtype(a.dtype());
    dispatch!(a.dtype(), T => dispatch!(r, R => reduce_axis_typed::<T, R>(a, sel, axis, op, progress)))
}

/// Number of progress steps [`reduce_axis`] reports for these arguments.
pub fn reduce_axis_steps(a: &ArrayHandle, sel: &ResolvedSelection, axis: usize) -> u64 {
    axis_plan(a, sel, axis).map_or(0, |p| p.plan.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Array;
    use crate::testutil::mem_array;
    use ndarray::{ArrayD, Axis, Dimension, IxDyn, s};

    fn whole<T: Element>(a: &Array<T>, sel: &str, op: Reduction) -> Scalar {
        let s = a.handle().resolve(sel).unwrap();
        reduce(a.handle(), &s, op, &|_| ()).unwrap()
    }

    #[test]
    fn large_chunks_are_reduced_in_cache_sized_blocks() {
        // Chunks of 1.44 MB on a store with partial reads (npy): two
        // blocks per chunk, same results, NaN still propagating through
        // sum and mean and skipped by nansum.
        let dir = tempfile::tempdir().unwrap();
        let a = crate::create::<f32>(
            dir.path().join("a.npy"),
            crate::ArrayOptions::new([3, 600, 600])
                .chunks([1, 600, 600])
                .cache(crate::ChunkCache::new(64 << 20)),
        )
        .unwrap();
        assert!(a.handle().store().capabilities().partial_reads);
        let mut data = ArrayD::from_shape_fn(IxDyn(&[3, 600, 600]), |i| {
            ((i[0] * 360_000 + i[1] * 600 + i[2]) as f32 * 0.01).cos()
        });
        a.write(.., &data).unwrap();
        a.flush().unwrap();
        // Reopened with a cache of its own: the blocks come from the file.
        let reopen = || {
            crate::open_with::<f32>(
                dir.path().join("a.npy"),
                &crate::OpenOptions::new()
                    .read_only(true)
                    .cache(crate::ChunkCache::new(64 << 20)),
            )
            .unwrap()
        };
        let a = reopen();
        let all = a.handle().resolve("...").unwrap();
        assert_eq!(reduce_steps(a.handle(), &all), 6);
        let sub = a.handle().resolve("1:, 10:590").unwrap();
        assert_eq!(reduce_steps(a.handle(), &sub), 4);
        let want: f64 = data.iter().map(|&v| v as f64).sum();
        match whole(&a, "...", Reduction::Sum) {
            Scalar::Float(s) => {
                assert!((s - want).abs() < 1e-9 * want.abs().max(1.0), "{s} {want}")
            }
            other => panic!("{other:?}"),
        }
        let part = data.slice(s![1.., 10..590, ..]);
        let want_mean = part.iter().map(|&v| v as f64).sum::<f64>() / part.len() as f64;
        match whole(&a, "1:, 10:590", Reduction::Mean) {
            Scalar::Float(m) => assert!((m - want_mean).abs() < 1e-12, "{m} {want_mean}"),
            other => panic!("{other:?}"),
        }
        data[[2, 599, 599]] = f32::NAN;
        drop(a);
        let w = crate::open::<f32>(dir.path().join("a.npy")).unwrap();
        w.write(.., &data).unwrap();
        w.flush().unwrap();
        let a = reopen();
        assert!(matches!(whole(&a, "...", Reduction::Sum), Scalar::Float(x) if x.is_nan()));
        assert!(matches!(whole(&a, "...", Reduction::Mean), Scalar::Float(x) if x.is_nan()));
        let want_nan: f64 = data.iter().filter(|v| !v.is_nan()).map(|&v| v as f64).sum();
        match whole(&a, "...", Reduction::NanSum) {
            Scalar::Float(s) => assert!((s - want_nan).abs() < 1e-9 * want_nan.abs().max(1.0)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_reductions_match_direct_computation() {
        let a = mem_array::<f32>(&[50, 40], &[7, 9], 1 << 16);
        let data = ArrayD::from_shape_fn(IxDyn(&[50, 40]), |i| {
            ((i[0] * 40 + i[1]) as f32 * 0.37).sin() * 100.0
        });
        a.write(.., &data).unwrap();
        let part = data.slice(s![3..45;2, 1..]);
        let want_sum: f64 = part.iter().map(|&v| v as f64).sum();
        match whole(&a, "3:45:2, 1:", Reduction::Sum) {
            Scalar::Float(s) => assert!((s - want_sum).abs() < 1e-6 * want_sum.abs().max(1.0)),
            other => panic!("{other:?}"),
        }
        let min = part.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let max = part.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        assert_eq!(whole(&a, "3:45:2, 1:", Reduction::Min), Scalar::Float(min));
        assert_eq!(whole(&a, "3:45:2, 1:", Reduction::Max), Scalar::Float(max));
        assert_eq!(
            whole(&a, "3:45:2, 1:", Reduction::Count),
            Scalar::Int(part.len() as i128)
        );
        a.fill("10,10", f32::NAN).unwrap();
        for op in [
            Reduction::Sum,
            Reduction::Mean,
            Reduction::Min,
            Reduction::Max,
        ] {
            match whole(&a, "...", op) {
                Scalar::Float(x) => assert!(x.is_nan(), "{op} propagates NaN"),
                other => panic!("{other:?}"),
            }
        }
        let all_but: f64 = data
            .indexed_iter()
            .filter(|(i, _)| i.slice() != [10, 10])
            .map(|(_, &v)| v as f64)
            .sum();
        match whole(&a, "...", Reduction::NanSum) {
            Scalar::Float(s) => assert!((s - all_but).abs() < 1e-6 * all_but.abs().max(1.0)),
            other => panic!("{other:?}"),
        }
        match whole(&a, "...", Reduction::NanMean) {
            Scalar::Float(m) => assert!((m - all_but / 1999.0).abs() < 1e-9),
            other => panic!("{other:?}"),
        }
        assert_eq!(whole(&a, "...", Reduction::Count), Scalar::Int(1999));
        assert!(matches!(whole(&a, "...", Reduction::NanMin), Scalar::Float(x) if !x.is_nan()));
        a.fill("10", f32::NAN).unwrap();
        match whole(&a, "10", Reduction::NanMax) {
            Scalar::Float(x) => assert!(x.is_nan(), "all-NaN nanmax is NaN"),
            other => panic!("{other:?}"),
        }
        assert_eq!(whole(&a, "10", Reduction::NanSum), Scalar::Float(0.0));
    }

    #[test]
    fn integer_sums_are_exact_and_empty_min_errors() {
        let a = mem_array::<i64>(&[4], &[3], 1 << 16);
        a.write(.., &ndarray::arr1(&[i64::MAX, i64::MAX, -5, 1]))
            .unwrap();
        assert_eq!(
            whole(&a, "...", Reduction::Sum),
            Scalar::Int(2 * i64::MAX as i128 - 4)
        );
        assert_eq!(whole(&a, "...", Reduction::Min), Scalar::Int(-5));
        assert_eq!(whole(&a, "2:2", Reduction::Sum), Scalar::Int(0));
        let s = a.handle().resolve("2:2").unwrap();
        assert!(reduce(a.handle(), &s, Reduction::Max, &|_| ()).is_err());
        let b = mem_array::<bool>(&[3], &[2], 1 << 16);
        b.fill("1", true).unwrap();
        assert_eq!(whole(&b, "...", Reduction::Sum), Scalar::Int(1));
        assert_eq!(whole(&b, "...", Reduction::Max), Scalar::Bool(true));
    }

    #[test]
    fn infinities_stay_infinite() {
        let a = mem_array::<f64>(&[300], &[7], 1 << 16);
        a.fill("...", 1.5).unwrap();
        a.fill("100", f64::INFINITY).unwrap();
        assert_eq!(
            whole(&a, "...", Reduction::Sum),
            Scalar::Float(f64::INFINITY)
        );
        assert_eq!(
            whole(&a, "...", Reduction::Mean),
            Scalar::Float(f64::INFINITY)
        );
        a.fill("200", f64::NEG_INFINITY).unwrap();
        assert!(matches!(whole(&a, "...", Reduction::Sum), Scalar::Float(x) if x.is_nan()));
    }

    #[test]
    fn pairwise_is_accurate() {
        // 10 million 0.1f32: naive f32 accumulation drifts by percents.
        let v = vec![0.1f32; 10_000_000];
        let (s, n) = pairwise(&v);
        assert_eq!(n, 0);
        assert!((s - 1_000_000.0 * 0.1f32 as f64 * 10.0).abs() < 1e-3, "{s}");
    }

    fn axis<T: Element, R: Element>(
        a: &Array<T>,
        sel: &str,
        ax: usize,
        op: Reduction,
    ) -> ArrayD<R> {
        let s = a.handle().resolve(sel).unwrap();
        let r = reduce_axis(a.handle(), &s, ax, op, &|_| ()).unwrap();
        assert_eq!(r.dtype, R::DTYPE);
        let vals: Vec<R> = r
            .data
            .chunks(R::DTYPE.size())
            .map(R::from_ne_slice)
            .collect();
        let sh: Vec<usize> = r.shape.iter().map(|&x| x as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&sh), vals).unwrap()
    }

    #[test]
    fn axis_reductions_match_ndarray() {
        let a = mem_array::<f64>(&[9, 11, 13], &[4, 3, 5], 1 << 16);
        let mut data = ArrayD::from_shape_fn(IxDyn(&[9, 11, 13]), |i| {
            ((i[0] * 143 + i[1] * 13 + i[2]) as f64 * 0.7).cos() * 1e3
        });
        data[[2, 3, 4]] = f64::NAN;
        data[[5, 0, 12]] = f64::INFINITY;
        a.write(.., &data).unwrap();
        let close = |x: f64, y: f64| {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() < 1e-9 * y.abs().max(1.0)
        };
        for (sel, view) in [
            ("...", data.view()),
            (
                "1:8:2, ::3, 2:",
                data.slice(s![1..8;2, ..;3, 2..]).into_dyn(),
            ),
        ] {
            for ax in 0..3 {
                let got: ArrayD<f64> = axis(&a, sel, ax, Reduction::Sum);
                let want = view.sum_axis(Axis(ax));
                assert_eq!(got.shape(), want.shape(), "{sel} axis {ax}");
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(close(*g, *w), "sum {sel} axis {ax}: {g} vs {w}");
                }
                let got: ArrayD<f64> = axis(&a, sel, ax, Reduction::NanMax);
                let want = view.map_axis(Axis(ax), |l| {
                    l.iter()
                        .copied()
                        .filter(|v| !v.is_nan())
                        .fold(f64::NAN, f64::max)
                });
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(close(*g, *w), "nanmax {sel} axis {ax}: {g} vs {w}");
                }
                let got: ArrayD<i64> = axis(&a, sel, ax, Reduction::Count);
                let want = view.map_axis(Axis(ax), |l| {
                    l.iter().filter(|v| !v.is_nan()).count() as i64
                });
                assert_eq!(got, want, "count {sel} axis {ax}");
                let got: ArrayD<f64> = axis(&a, sel, ax, Reduction::Mean);
                let want = view.mean_axis(Axis(ax)).unwrap();
                for (g, w) in got.iter().zip(want.iter()) {
                    assert!(close(*g, *w), "mean {sel} axis {ax}: {g} vs {w}");
                }
            }
        }
        let i = mem_array::<u8>(&[5, 300], &[2, 128], 1 << 16);
        i.fill("...", 200).unwrap();
        let got: ArrayD<u64> = axis(&i, "...", 1, Reduction::Sum);
        assert!(
            got.iter().all(|&v| v == 60_000),
            "u8 sums do not wrap at 8 bits"
        );
        let got: ArrayD<u8> = axis(&i, "...", 0, Reduction::Min);
        assert!(got.iter().all(|&v| v == 200));
        let s = i.handle().resolve("...").unwrap();
        let err = reduce_axis(i.handle(), &s, 2, Reduction::Sum, &|_| ()).unwrap_err();
        assert!(err.to_string().contains("axis 2"), "{err}");
    }
}
