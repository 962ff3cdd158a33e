//! Summation kernels shared by whole and axis reductions: the NaN test,
//! Neumaier's compensated addition, and pairwise sums in `f64`.

use crate::dtype::Element;

#[inline]
#[allow(clippy::eq_op)]
pub(super) fn is_nan<T: Element>(v: T) -> bool {
    v != v
}

/// Neumaier's compensated addition: adds `x` to `(sum, comp)`. Once the
/// sum is infinite or NaN the compensation stops (it would turn an
/// infinite sum into NaN).
#[inline]
pub(super) fn add_compensated(sum: &mut f64, comp: &mut f64, x: f64) {
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
pub(super) fn total(sum: f64, comp: f64) -> f64 {
    if sum.is_finite() { sum + comp } else { sum }
}

/// Pairwise summation in `f64` of the values that are not NaN (error grows
/// with log n, like NumPy's), and how many were NaN.
pub(super) fn pairwise<T: Element>(v: &[T]) -> (f64, u64) {
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
pub(super) fn pairwise_all<T: Element>(v: &[T]) -> f64 {
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
