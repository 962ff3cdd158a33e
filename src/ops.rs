//! Whole-array operations that stream block by block with bounded memory:
//! copying a selection into another array (with a dtype cast), and
//! reductions. Blocks run in parallel on rayon's pool; each holds one
//! block-sized buffer, so memory stays at the cache budget plus a few blocks.

use std::fmt;

use rayon::prelude::*;

use crate::array::ArrayHandle;
use crate::dtype::{DType, Element, cast_bytes, dispatch};
use crate::error::{Error, Result};
use crate::selection::{AxisSel, ResolvedSelection};

/// The output space of a selection cut into blocks, each aligned to about
/// one chunk of an array the selection addresses.
#[derive(Debug, Clone)]
pub struct BlockPlan {
    out_shape: Vec<u64>,
    block: Vec<u64>,
    grid: Vec<u64>,
}

impl BlockPlan {
    /// Plans blocks over `sel`'s output so that each block touches about one
    /// chunk of shape `chunks` (the chunk shape of the array `sel` indexes):
    /// along a kept axis with step `s` and chunk length `c`, blocks are
    /// `max(1, c / s)` long.
    pub fn new(sel: &ResolvedSelection, chunks: &[u64]) -> Self {
        let mut block = Vec::new();
        for (a, &c) in sel.axes().iter().zip(chunks) {
            if let AxisSel::Range { step, count, .. } = *a {
                block.push((c / step).clamp(1, count.max(1)));
            }
        }
        let out_shape = sel.out_shape();
        let grid = out_shape
            .iter()
            .zip(&block)
            .map(|(&n, &b)| n.div_ceil(b))
            .collect();
        BlockPlan {
            out_shape,
            block,
            grid,
        }
    }

    /// Number of blocks.
    pub fn len(&self) -> u64 {
        if self.out_shape.contains(&0) {
            return 0;
        }
        self.grid.iter().product()
    }

    /// Whether there are no blocks (an empty selection).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block number `i` (row-major): its first output position and counts.
    pub fn block(&self, mut i: u64) -> (Vec<u64>, Vec<u64>) {
        let n = self.grid.len();
        let mut lo = vec![0; n];
        let mut cnt = vec![0; n];
        for ax in (0..n).rev() {
            let k = i % self.grid[ax];
            i /= self.grid[ax];
            lo[ax] = k * self.block[ax];
            cnt[ax] = self.block[ax].min(self.out_shape[ax] - lo[ax]);
        }
        (lo, cnt)
    }
}

/// The part of `sel` whose output is the box at `lo` with `counts`
/// (both over the output axes).
pub fn sub_selection(sel: &ResolvedSelection, lo: &[u64], counts: &[u64]) -> ResolvedSelection {
    let mut k = 0;
    let axes = sel
        .axes()
        .iter()
        .map(|a| match *a {
            AxisSel::Index(i) => AxisSel::Index(i),
            AxisSel::Range { start, step, .. } => {
                let r = AxisSel::Range {
                    start: start + lo[k] * step,
                    step,
                    count: counts[k],
                };
                k += 1;
                r
            }
        })
        .collect();
    ResolvedSelection::from_axes(axes)
}

/// Copies `src_sel` of `src` into `dst_sel` of `dst`, casting elements to
/// `dst`'s dtype with NumPy `astype` semantics. Both selections must have
/// the same output shape. Streams block by block in parallel; `progress`
/// is called with the number of blocks done after each.
pub fn copy_selection(
    src: &ArrayHandle,
    src_sel: &ResolvedSelection,
    dst: &ArrayHandle,
    dst_sel: &ResolvedSelection,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    if src_sel.out_shape() != dst_sel.out_shape() {
        return Err(Error::ShapeMismatch {
            message: format!(
                "source selection has shape {:?}, destination {:?}",
                src_sel.out_shape(),
                dst_sel.out_shape()
            ),
        });
    }
    // Blocks follow the destination's chunks so that writes replace whole
    // chunks and never read them.
    let plan = BlockPlan::new(dst_sel, dst.chunks());
    let (sd, dd) = (src.dtype(), dst.dtype());
    // One pair of block buffers per rayon job, reused across its blocks.
    (0..plan.len()).into_par_iter().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(buf, out): &mut (Vec<u8>, Vec<u8>), i| -> Result<()> {
            let (lo, counts) = plan.block(i);
            let n = counts.iter().product::<u64>() as usize;
            let s = sub_selection(src_sel, &lo, &counts);
            let d = sub_selection(dst_sel, &lo, &counts);
            buf.resize(n * sd.size(), 0);
            src.read_bytes(&s, buf)?;
            if sd == dd {
                dst.write_bytes(&d, buf)?;
            } else {
                out.resize(n * dd.size(), 0);
                cast_bytes(sd, buf, dd, out);
                dst.write_bytes(&d, out)?;
            }
            progress(1);
            Ok(())
        },
    )
}

/// A reduction over elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum (integers exactly in 128 bits; floats in `f64` with pairwise
    /// summation per block and compensated summation across blocks). NaN
    /// propagates.
    Sum,
    /// Arithmetic mean as `f64`; NaN propagates; NaN for no elements.
    Mean,
    /// Smallest element; NaN propagates.
    Min,
    /// Largest element; NaN propagates.
    Max,
}

impl std::str::FromStr for Reduction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sum" => Ok(Reduction::Sum),
            "mean" => Ok(Reduction::Mean),
            "min" => Ok(Reduction::Min),
            "max" => Ok(Reduction::Max),
            _ => Err(Error::invalid(format!(
                "unknown reduction {s:?} (expected sum, mean, min or max)"
            ))),
        }
    }
}

/// A reduction's result.
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

/// Partial result of one block.
#[derive(Debug, Clone, Copy)]
struct Acc<T> {
    count: u64,
    int_sum: i128,
    float_sum: f64,
    /// Neumaier compensation for `float_sum`.
    comp: f64,
    nan: bool,
    min: Option<T>,
    max: Option<T>,
}

impl<T: Element> Acc<T> {
    fn empty() -> Self {
        Acc {
            count: 0,
            int_sum: 0,
            float_sum: 0.0,
            comp: 0.0,
            nan: false,
            min: None,
            max: None,
        }
    }

    fn add_float(&mut self, x: f64) {
        let t = self.float_sum + x;
        if self.float_sum.abs() >= x.abs() {
            self.comp += (self.float_sum - t) + x;
        } else {
            self.comp += (x - t) + self.float_sum;
        }
        self.float_sum = t;
    }

    fn of_block(values: &[T]) -> Self {
        let mut a = Self::empty();
        a.count = values.len() as u64;
        if T::DTYPE.is_float() {
            a.add_float(pairwise(values));
        } else {
            a.int_sum = values.iter().map(|v| v.to_i128()).sum();
        }
        for &v in values {
            #[allow(clippy::eq_op)]
            let is_nan = v != v;
            if is_nan {
                a.nan = true;
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
        self.int_sum += o.int_sum;
        self.add_float(o.float_sum);
        self.comp += o.comp;
        self.nan |= o.nan;
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
        let sum = if float {
            Scalar::Float(self.float_sum + self.comp)
        } else {
            Scalar::Int(self.int_sum)
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
        Ok(match op {
            Reduction::Sum => sum,
            Reduction::Mean => {
                if self.nan {
                    Scalar::Float(f64::NAN)
                } else {
                    let s = match sum {
                        Scalar::Int(i) => i as f64,
                        Scalar::Float(f) => f,
                        Scalar::Bool(_) => unreachable!("sums are numbers"),
                    };
                    Scalar::Float(s / self.count as f64)
                }
            }
            Reduction::Min | Reduction::Max if self.count == 0 => {
                return Err(Error::invalid(format!(
                    "zero-size selection: {op:?} has no identity"
                )));
            }
            Reduction::Min | Reduction::Max if self.nan => Scalar::Float(f64::NAN),
            Reduction::Min => elem(self.min.expect("non-empty, not all NaN")),
            Reduction::Max => elem(self.max.expect("non-empty, not all NaN")),
        })
    }
}

/// Pairwise summation in `f64` (error grows with log n, like NumPy's).
fn pairwise<T: Element>(v: &[T]) -> f64 {
    if v.len() <= 128 {
        let mut acc = [0.0f64; 8];
        let mut chunks = v.chunks_exact(8);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x.to_f64();
            }
        }
        let rest: f64 = chunks.remainder().iter().map(|x| x.to_f64()).sum();
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + rest
    } else {
        let mid = v.len() / 2;
        pairwise(&v[..mid]) + pairwise(&v[mid..])
    }
}

fn reduce_typed<T: Element>(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Scalar> {
    let plan = BlockPlan::new(sel, a.chunks());
    let acc = (0..plan.len())
        .into_par_iter()
        .map_init(Vec::new, |buf: &mut Vec<T>, i| -> Result<Acc<T>> {
            let (lo, counts) = plan.block(i);
            let s = sub_selection(sel, &lo, &counts);
            buf.resize(counts.iter().product::<u64>() as usize, T::default());
            T::with_bytes_mut(buf, |b| a.read_bytes(&s, b))?;
            progress(1);
            Ok(Acc::of_block(buf))
        })
        .try_reduce(Acc::empty, |x, y| Ok(x.merge(y)))?;
    acc.finish(op)
}

/// Reduces a selection of `a` in parallel, block by block.
pub fn reduce(
    a: &ArrayHandle,
    sel: &ResolvedSelection,
    op: Reduction,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Scalar> {
    dispatch!(a.dtype(), T => reduce_typed::<T>(a, sel, op, progress))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, StoreMeta};
    use crate::{Array, ChunkCache};
    use ndarray::{ArrayD, IxDyn};
    use std::sync::Arc;

    fn mem<T: Element>(shape: &[u64], chunks: &[u64]) -> Array<T> {
        let meta = StoreMeta {
            dtype: T::DTYPE,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            fill: vec![0; T::DTYPE.size()],
        };
        Array::from_store(Arc::new(MemoryStore::new(meta)), ChunkCache::new(1 << 16)).unwrap()
    }

    #[test]
    fn copy_with_cast_and_steps() {
        let a = mem::<f64>(&[9, 10], &[4, 3]);
        let data = ArrayD::from_shape_fn(IxDyn(&[9, 10]), |i| (i[0] * 10 + i[1]) as f64 + 0.7);
        a.write(.., &data).unwrap();
        let b = mem::<i16>(&[3, 5], &[2, 2]);
        let ssel = a.handle().resolve("1::3,::2").unwrap();
        let dsel = b.handle().resolve(..).unwrap();
        copy_selection(a.handle(), &ssel, b.handle(), &dsel, &|_| ()).unwrap();
        let got = b.read(..).unwrap();
        let want = data.slice(ndarray::s![1..;3, ..;2]).mapv(|v| v as i16);
        assert_eq!(got, want.into_dyn());
        let bad = b.handle().resolve("0").unwrap();
        assert!(copy_selection(a.handle(), &ssel, b.handle(), &bad, &|_| ()).is_err());
    }

    #[test]
    fn reductions_match_direct_computation() {
        let a = mem::<f32>(&[50, 40], &[7, 9]);
        let data = ArrayD::from_shape_fn(IxDyn(&[50, 40]), |i| {
            ((i[0] * 40 + i[1]) as f32 * 0.37).sin() * 100.0
        });
        a.write(.., &data).unwrap();
        let sel = a.handle().resolve("3:45:2, 1:").unwrap();
        let part = data.slice(ndarray::s![3..45;2, 1..]);
        let want_sum: f64 = part.iter().map(|&v| v as f64).sum();
        let got = |op| reduce(a.handle(), &sel, op, &|_| ()).unwrap();
        match got(Reduction::Sum) {
            Scalar::Float(s) => assert!((s - want_sum).abs() < 1e-6 * want_sum.abs().max(1.0)),
            other => panic!("{other:?}"),
        }
        let min = part.iter().copied().fold(f32::INFINITY, f32::min) as f64;
        let max = part.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        assert_eq!(got(Reduction::Min), Scalar::Float(min));
        assert_eq!(got(Reduction::Max), Scalar::Float(max));
        a.fill("10,10", f32::NAN).unwrap();
        let all = a.handle().resolve(..).unwrap();
        for op in [
            Reduction::Sum,
            Reduction::Mean,
            Reduction::Min,
            Reduction::Max,
        ] {
            match reduce(a.handle(), &all, op, &|_| ()).unwrap() {
                Scalar::Float(x) => assert!(x.is_nan(), "{op:?} propagates NaN"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn integer_sums_are_exact_and_empty_min_errors() {
        let a = mem::<i64>(&[4], &[3]);
        a.write(.., &ndarray::arr1(&[i64::MAX, i64::MAX, -5, 1]))
            .unwrap();
        let all = a.handle().resolve(..).unwrap();
        assert_eq!(
            reduce(a.handle(), &all, Reduction::Sum, &|_| ()).unwrap(),
            Scalar::Int(2 * i64::MAX as i128 - 4)
        );
        assert_eq!(
            reduce(a.handle(), &all, Reduction::Min, &|_| ()).unwrap(),
            Scalar::Int(-5)
        );
        let empty = a.handle().resolve("2:2").unwrap();
        assert_eq!(
            reduce(a.handle(), &empty, Reduction::Sum, &|_| ()).unwrap(),
            Scalar::Int(0)
        );
        assert!(reduce(a.handle(), &empty, Reduction::Max, &|_| ()).is_err());
        let b = mem::<bool>(&[3], &[2]);
        b.fill("1", true).unwrap();
        let all = b.handle().resolve(..).unwrap();
        assert_eq!(
            reduce(b.handle(), &all, Reduction::Sum, &|_| ()).unwrap(),
            Scalar::Int(1)
        );
        assert_eq!(
            reduce(b.handle(), &all, Reduction::Max, &|_| ()).unwrap(),
            Scalar::Bool(true)
        );
    }

    #[test]
    fn pairwise_is_accurate() {
        // 10 million 0.1f32: naive f32 accumulation drifts by percents.
        let v = vec![0.1f32; 10_000_000];
        let s = pairwise(&v);
        assert!((s - 1_000_000.0 * 0.1f32 as f64 * 10.0).abs() < 1e-3, "{s}");
    }
}
