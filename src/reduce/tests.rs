//! Unit tests of reductions against direct computation and ndarray.

use super::sum::pairwise;
use super::*;
use crate::Array;
use crate::dtype::Element;
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

fn axis<T: Element, R: Element>(a: &Array<T>, sel: &str, ax: usize, op: Reduction) -> ArrayD<R> {
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

#[test]
fn a_set_stop_flag_interrupts_reductions_early() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let a = mem_array::<f32>(&[64, 8], &[1, 8], 1 << 16);
    let all = a.handle().resolve("...").unwrap();
    let total = reduce_steps(a.handle(), &all);
    assert_eq!(total, 64);
    // Set before: no block runs.
    let stop = AtomicBool::new(true);
    let done = AtomicU64::new(0);
    let count = |n| {
        done.fetch_add(n, Relaxed);
    };
    let err = reduce_interruptible(a.handle(), &all, Reduction::Sum, &count, &stop).unwrap_err();
    assert!(matches!(err, crate::Error::Interrupted), "{err}");
    assert_eq!(done.load(Relaxed), 0);
    // Set by the progress callback after the first block (as another
    // thread would): the reduction stops before the last block.
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let stop_after_one = |n| {
        done.fetch_add(n, Relaxed);
        stop.store(true, Relaxed);
    };
    // (Along axis 0 there is one block, whose progress comes after its
    // last segment: the flag set before covers that path below.)
    for axis in [None, Some(1)] {
        stop.store(false, Relaxed);
        done.store(0, Relaxed);
        let err = match axis {
            None => reduce_interruptible(a.handle(), &all, Reduction::Mean, &stop_after_one, &stop)
                .map(|_| ()),
            Some(k) => reduce_axis_interruptible(
                a.handle(),
                &all,
                k,
                Reduction::Max,
                &stop_after_one,
                &stop,
            )
            .map(|_| ()),
        }
        .unwrap_err();
        assert!(matches!(err, crate::Error::Interrupted), "{err}");
        // At most one block per worker was under way when the flag went up.
        let ran = done.load(Relaxed);
        assert!(
            ran >= 1 && ran <= rayon::current_num_threads() as u64,
            "{ran} of {total}"
        );
    }
    let stop = AtomicBool::new(true);
    let err = reduce_axis_interruptible(a.handle(), &all, 0, Reduction::Sum, &|_| (), &stop);
    assert!(matches!(err, Err(crate::Error::Interrupted)));
    // Never set: the result is the plain one.
    let quiet = AtomicBool::new(false);
    assert!(matches!(
        reduce_interruptible(a.handle(), &all, Reduction::Sum, &|_| (), &quiet).unwrap(),
        Scalar::Float(x) if x == 0.0
    ));
}
