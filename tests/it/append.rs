//! Append and resize along the first axis, on every backend, against a
//! plain `Vec` of rows: random appends, shrinks, growths, flushes, reopens
//! and (in-memory store) crashes, with caches both larger and smaller than
//! one chunk.

use std::sync::Arc;

use crate::common::{Backend, TestStore, backends};
use chunkyard::{Array, ChunkCache, DType, Error, s};
use ndarray::{Array2, ArrayView1};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const COLS: u64 = 5;

/// The model: rows of `COLS` values.
fn model_read(a: &Array<i32>) -> Vec<i32> {
    a.read(..).unwrap().iter().copied().collect()
}

fn run(backend: Backend, seed: u64, budget: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut ts = TestStore::create(backend, dir.path(), DType::I32, &[0, COLS], &[3, 2]);
    let mut cache = ChunkCache::new(budget);
    let mut a: Array<i32> = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
    let mut model: Vec<i32> = Vec::new();
    // What a crash would leave (memory store only): a resize is durable
    // at once (grown rows read as the fill value), a shrink flushes, and
    // data is durable at flush.
    let mut durable: Vec<i32> = Vec::new();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut next = 1i32;
    for step in 0..40 {
        let what = format!("{backend:?} seed {seed} budget {budget} step {step}");
        match rng.random_range(0..10) {
            0..=4 => {
                let rows = rng.random_range(0..7usize);
                let data = Array2::from_shape_fn((rows, COLS as usize), |_| {
                    next += 1;
                    next
                });
                let start = a.append(&data).unwrap();
                assert_eq!(start as usize * COLS as usize, model.len(), "{what}");
                model.extend(data.iter());
                if rows > 0 {
                    durable.resize(model.len(), 0);
                }
            }
            5 => {
                // One row, given with one axis less.
                let row: Vec<i32> = (0..COLS as i32).map(|k| -k - next).collect();
                a.append(ArrayView1::from(&row)).unwrap();
                model.extend(&row);
                durable.resize(model.len(), 0);
            }
            6 => {
                let len = rng.random_range(0..=(model.len() as u64 / COLS + 4));
                let shrinks = len * COLS < model.len() as u64;
                a.resize(len).unwrap();
                model.resize((len * COLS) as usize, 0);
                if shrinks {
                    durable = model.clone();
                } else {
                    durable.resize(model.len(), 0);
                }
            }
            7 => {
                // A write inside, so that edge chunks are dirty at resize.
                let rows = model.len() as u64 / COLS;
                if rows > 0 {
                    let r = rng.random_range(0..rows);
                    a.fill(s![r as isize, ..], 99).unwrap();
                    let at = (r * COLS) as usize;
                    model[at..at + COLS as usize].fill(99);
                }
            }
            8 => {
                a.flush().unwrap();
                durable = model.clone();
            }
            _ if backend == Backend::Memory && rng.random_bool(0.5) => {
                // Lose the handle and its cache unwritten, as a killed
                // process would, and reopen what was durable.
                let survivor = ts.crash().expect("the memory store models crashes");
                std::mem::forget(a);
                std::mem::forget(cache);
                ts = survivor;
                model = durable.clone();
                cache = ChunkCache::new(budget);
                a = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
            }
            _ => {
                durable = model.clone();
                drop(a);
                ts = ts.reopen();
                cache = ChunkCache::new(budget);
                a = Array::from_store(ts.store.clone(), cache.clone()).unwrap();
            }
        }
        assert_eq!(
            a.shape(),
            vec![model.len() as u64 / COLS, COLS],
            "{what}: shape"
        );
        assert_eq!(ts.store.meta().shape[1], COLS, "{what}");
        assert_eq!(model_read(&a), model, "{what}: contents");
    }
    drop(a);
    let r: Array<i32> = Array::from_store(ts.reopen().store, ChunkCache::new(budget)).unwrap();
    assert_eq!(
        model_read(&r),
        model,
        "{backend:?} seed {seed}: reopened at the end"
    );
}

#[test]
fn appends_and_resizes_match_a_vec_of_rows() {
    for backend in backends() {
        for seed in 0..6 {
            // 3 x 2 i32 chunks are 24 bytes: a budget of 16 bytes holds
            // none, so every access writes back.
            for budget in [16, 1 << 20] {
                run(backend, seed, budget);
            }
        }
    }
}

#[test]
fn concurrent_appends_get_disjoint_rows() {
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let ts = TestStore::create(backend, dir.path(), DType::I32, &[0, 3], &[4, 3]);
        let a: Array<i32> = Array::from_store(ts.store.clone(), ChunkCache::new(64)).unwrap();
        std::thread::scope(|sc| {
            for t in 0..4i32 {
                let a = a.clone();
                sc.spawn(move || {
                    for i in 0..25i32 {
                        let v = t * 1000 + i;
                        a.append(ArrayView1::from(&[v, v, v])).unwrap();
                    }
                });
            }
        });
        assert_eq!(a.shape(), vec![100, 3]);
        let all = a.read(..).unwrap();
        let mut firsts: Vec<i32> = all.rows().into_iter().map(|r| r[0]).collect();
        for r in all.rows() {
            assert!(r.iter().all(|&v| v == r[0]), "{backend:?}: torn row {r:?}");
        }
        firsts.sort_unstable();
        let mut want: Vec<i32> = (0..4)
            .flat_map(|t| (0..25).map(move |i| t * 1000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(firsts, want, "{backend:?}: every row exactly once");
    }
}

#[test]
fn clones_see_the_new_shape_and_old_selections_fail_after_a_shrink() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestStore::create(Backend::Npy, dir.path(), DType::F64, &[4, 2], &[2, 2]);
    let a: Array<f64> = Array::from_store(ts.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    a.fill(.., 1.5).unwrap();
    let b = a.clone();
    let old_view = a.slice(s![2..4, ..]).unwrap();
    a.resize(7).unwrap();
    assert_eq!(b.shape(), vec![7, 2]);
    assert_eq!(
        b.get([6, 1]).unwrap(),
        0.0,
        "grown rows read as the fill value"
    );
    assert_eq!(old_view.read(..).unwrap().shape(), &[2, 2]);
    let sel = a.handle().resolve(s![5..7, ..]).unwrap();
    a.resize(3).unwrap();
    let mut out = vec![0u8; 2 * 2 * 8];
    let e = a.handle().read_bytes(&sel, &mut out).unwrap_err();
    assert!(matches!(e, Error::Selection(_)), "{e}");
    assert!(e.to_string().contains("resized"), "{e}");
    assert!(a.get([3, 0]).is_err(), "row 3 is gone");
    // Growing again shows the fill value, not the rows cut off before.
    a.resize(4).unwrap();
    assert_eq!(
        a.read(s![2..4, ..]).unwrap().into_raw_vec_and_offset().0,
        vec![1.5, 1.5, 0.0, 0.0]
    );
}

#[test]
fn append_checks_the_row_shape() {
    let dir = tempfile::tempdir().unwrap();
    let ts = TestStore::create(Backend::Memory, dir.path(), DType::U8, &[1, 4], &[1, 4]);
    let a: Array<u8> = Array::from_store(ts.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    let e = a.append(&Array2::<u8>::zeros((2, 3))).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    assert_eq!(a.shape(), vec![1, 4], "a refused append changes nothing");
}

#[test]
fn stores_that_cannot_grow_say_so() {
    use chunkyard::store::{NpyOptions, NpyStore, Order};
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.npy");
    let opts = NpyOptions {
        order: Order::Fortran,
        ..NpyOptions::default()
    };
    let s = NpyStore::create(&p, DType::F32, &[3, 4], &[3, 4], &opts).unwrap();
    let a: Array<f32> = Array::from_store(Arc::new(s), ChunkCache::new(1 << 20)).unwrap();
    a.fill(.., 2.5).unwrap();
    for len in [5, 1] {
        let e = a.resize(len).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        assert!(e.to_string().contains("Fortran"), "{e}");
        assert_eq!(a.shape(), vec![3, 4]);
    }
    // A refusal changes nothing and does not close the array for writing.
    assert!(a.read(..).unwrap().iter().all(|&v| v == 2.5));
    a.fill(s![0, 0], 1.0).unwrap();
    a.flush().unwrap();
}
