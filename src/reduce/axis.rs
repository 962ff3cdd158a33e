//! Reductions along one axis: a selection to a dense array without that
//! axis, its output cut into blocks reduced in parallel with per-element
//! accumulators, read one chunk-deep segment of the axis at a time.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use crate::array::ArrayHandle;
use crate::buffer::ScratchPool;
use crate::dtype::{DType, Element, cast, dispatch};
use crate::error::{Error, Result};
use crate::ops::{BlockPlan, sub_selection};
use crate::selection::{AxisSel, ResolvedSelection};

use super::Reduction;
use super::sum::{add_compensated, is_nan, total};

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
    stop: &AtomicBool,
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
                    // Checked before each segment's I/O; the error ends
                    // the collect early.
                    if stop.load(Relaxed) {
                        return Err(Error::Interrupted);
                    }
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
    reduce_axis_interruptible(a, sel, axis, op, progress, &AtomicBool::new(false))
}

/// [`reduce_axis`] that stops with [`Error::Interrupted`] at the next
/// block once `stop` is set (by another thread).
pub fn reduce_axis_interruptible(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    axis: usize,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> Result<Reduced> {
    let r = op.result_dtype(a.dtype());
    dispatch!(a.dtype(), T => dispatch!(r, R => reduce_axis_typed::<T, R>(a, sel, axis, op, progress, stop)))
}

/// Number of progress steps [`reduce_axis`] reports for these arguments.
pub fn reduce_axis_steps(a: &ArrayHandle, sel: &ResolvedSelection, axis: usize) -> u64 {
    axis_plan(a, sel, axis).map_or(0, |p| p.plan.len())
}
