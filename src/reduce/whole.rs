//! Whole reductions: a selection to one [`Scalar`], block by block in
//! parallel, each block folded into an accumulator and the accumulators
//! merged.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use crate::array::ArrayHandle;
use crate::buffer::ScratchPool;
use crate::dtype::{DType, Element, dispatch};
use crate::error::{Error, Result};
use crate::ops::{BlockPlan, on_io_threads, sub_selection};
use crate::selection::ResolvedSelection;

use super::sum::{add_compensated, is_nan, pairwise, pairwise_all, total};
use super::{Reduction, Scalar};

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
/// in the CPU's cache: a block as large as a whole 16 MB plane goes
/// through memory twice, once read and once summed; see
/// `docs/benchmarks.md#sum-in-1-mib-blocks`.
///
/// Not on object storage (a store whose requests wait on the network,
/// `concurrent_requests` above rayon's width): there each block is a GET,
/// and a 16 MB plane read as sixteen 1 MiB ranged GETs took 4-5x the time
/// of whole-chunk GETs against the same server
/// (`docs/benchmarks.md#the-article-on-s3-issue-19-item-4`).
fn whole_plan(a: &ArrayHandle, sel: &ResolvedSelection) -> BlockPlan {
    let plan = BlockPlan::new(sel, a.chunks());
    let caps = a.store().capabilities();
    if caps.partial_reads && caps.concurrent_requests <= rayon::current_num_threads() {
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
    stop: &AtomicBool,
) -> Result<Scalar> {
    let plan = whole_plan(a, sel);
    let pool = ScratchPool::<T>::new();
    let block_bytes = plan.max_block_elements() * std::mem::size_of::<T>();
    let acc = on_io_threads(&[a], block_bytes, || {
        (0..plan.len())
            .into_par_iter()
            .map_init(
                || pool.take(),
                |buf, i| -> Result<Acc<T>> {
                    // Checked before each block's I/O: an error ends
                    // `try_reduce` early, so the blocks not yet started
                    // are skipped.
                    if stop.load(Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    let (lo, counts) = plan.block(i);
                    let s = sub_selection(sel, &lo, &counts);
                    let vals = buf.reset(counts.iter().product::<u64>() as usize);
                    T::with_bytes_mut(&mut *vals, |b| a.read_bytes_streaming(&s, b))?;
                    progress(1);
                    Ok(Acc::of_block(vals, op))
                },
            )
            .try_reduce(Acc::empty, |x, y| Ok(x.merge(y)))
    })?;
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
    reduce_interruptible(a, sel, op, progress, &AtomicBool::new(false))
}

/// [`reduce`] that stops with [`Error::Interrupted`] at the next block
/// once `stop` is set (by another thread: a Ctrl-C handler, a timeout).
pub fn reduce_interruptible(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
    stop: &AtomicBool,
) -> Result<Scalar> {
    dispatch!(a.dtype(), T => reduce_typed::<T>(a, sel, op, progress, stop))
}
