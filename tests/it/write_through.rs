//! Whole chunks of at least `WRITE_THROUGH_MIN_BYTES`, written from one
//! contiguous run of the caller's data and not in the cache, go straight to
//! the store: they take no cache memory, count as `write_throughs`, read
//! back right, survive a flush and reopen, and fail closed. Everything else
//! still goes through the cache. On every backend.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::common::wrap;
use crate::common::{Backend, TestStore, backends};
use chunkyard::{Array, ChunkCache, DType, Error, WRITE_THROUGH_MIN_BYTES, s};
use ndarray::{Array2, Array3};

/// Planes of 512 x 512 f32: exactly 1 MiB, the smallest chunk written
/// through.
const N: u64 = 512;
const PLANE: [u64; 3] = [1, N, N];
const PLANE_BYTES: usize = (N * N * 4) as usize;

fn plane(z: usize, salt: f32) -> Array2<f32> {
    Array2::from_shape_fn((N as usize, N as usize), |(i, j)| {
        (z * 1_000_000 + i * 1000 + j) as f32 + salt
    })
}

fn volume(depth: usize, salt: f32) -> Array3<f32> {
    Array3::from_shape_fn((depth, N as usize, N as usize), |(z, i, j)| {
        (z * 1_000_000 + i * 1000 + j) as f32 + salt
    })
}

fn open(t: &TestStore, budget: usize) -> (Array<f32>, ChunkCache) {
    let cache = ChunkCache::new(budget);
    let a = Array::from_store(t.store.clone(), cache.clone()).unwrap();
    (a, cache)
}

fn whole_chunks_skip_the_cache(backend: Backend) {
    assert_eq!(PLANE_BYTES, WRITE_THROUGH_MIN_BYTES);
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F32, &[6, N, N], &PLANE);
    let (a, cache) = open(&t, 64 << 20);
    // One plane per call, then three planes in one call (each its own
    // contiguous run of the data).
    for z in 0..3 {
        a.write(s![z as isize, .., ..], &plane(z, 0.5)).unwrap();
    }
    a.write(s![3..6, .., ..], &volume(6, 0.5).slice(s![3..6, .., ..]))
        .unwrap();
    let st = cache.stats();
    assert_eq!(st.write_throughs, 6, "{backend:?}: {st:?}");
    assert_eq!(
        (st.resident_bytes, st.dirty_bytes, st.entries),
        (0, 0, 0),
        "{backend:?}: nothing cached: {st:?}"
    );
    // Read back before the flush (from the store), then after a reopen.
    assert_eq!(
        a.read(..).unwrap(),
        volume(6, 0.5).into_dyn(),
        "{backend:?}"
    );
    a.flush().unwrap();
    drop(a);
    let t = t.reopen();
    let (a, _) = open(&t, 1 << 20);
    assert_eq!(
        a.read(..).unwrap(),
        volume(6, 0.5).into_dyn(),
        "{backend:?} reopened"
    );
}

fn cached_chunks_are_overwritten_in_the_cache(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F32, &[4, N, N], &PLANE);
    let (a, cache) = open(&t, 64 << 20);
    a.write(.., &volume(4, 0.0)).unwrap();
    a.flush().unwrap();
    // Plane 2 into the cache, then replaced by a whole-plane write: the
    // cached copy takes the new data (a stale cached chunk would shadow a
    // write that went to the store), and is dirty until the flush.
    assert_eq!(a.get([2, 7, 9]).unwrap(), 2_007_009.0);
    // Read whole twice: stores that read parts of chunks hand a whole
    // chunk read once straight to the caller, and load it on the second.
    a.read(s![2, .., ..]).unwrap();
    a.read(s![2, .., ..]).unwrap();
    let before = cache.stats();
    assert_eq!(
        before.resident_bytes, PLANE_BYTES,
        "{backend:?}: {before:?}"
    );
    a.write(s![2, .., ..], &plane(2, 0.5)).unwrap();
    let st = cache.stats();
    assert_eq!(st.write_throughs, before.write_throughs, "{backend:?}");
    assert_eq!(st.dirty_bytes, PLANE_BYTES, "{backend:?}: {st:?}");
    assert_eq!(a.get([2, 7, 9]).unwrap(), 2_007_009.5);
    a.flush().unwrap();
    assert_eq!(cache.stats().dirty_bytes, 0);
    drop(a);
    let t = t.reopen();
    let (a, _) = open(&t, 1 << 20);
    let mut want = volume(4, 0.0);
    want.slice_mut(s![2, .., ..]).assign(&plane(2, 0.5));
    assert_eq!(a.read(..).unwrap(), want.into_dyn(), "{backend:?}");
}

fn other_writes_go_through_the_cache(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    // 2-D chunks of 512 x 512 f32 (1 MiB) in a 512 x 1024 array: a write
    // of the whole array holds each chunk as 512 strided rows, not one run.
    let t = TestStore::create(backend, dir.path(), DType::F32, &[N, 2 * N], &[N, N]);
    let (a, cache) = open(&t, 64 << 20);
    let wide = Array2::from_shape_fn((N as usize, 2 * N as usize), |(i, j)| (i * 2048 + j) as f32);
    a.write(.., &wide).unwrap();
    // Part of a chunk, and a fill, are cached too.
    a.write(
        s![0..4, 0..N as isize],
        &Array2::from_elem((4, N as usize), -1.0),
    )
    .unwrap();
    a.fill(s![.., N as isize..], 3.0).unwrap();
    let st = cache.stats();
    assert_eq!(st.write_throughs, 0, "{backend:?}: {st:?}");
    assert_eq!(st.dirty_bytes, 2 * PLANE_BYTES, "{backend:?}: {st:?}");
    // Chunks under the threshold are cached.
    let small_dir = tempfile::tempdir().unwrap();
    let small = TestStore::create(
        backend,
        small_dir.path(),
        DType::F32,
        &[4, 256, 256],
        &[1, 256, 256],
    );
    let (b, small_cache) = open(&small, 64 << 20);
    b.write(s![1, .., ..], &Array2::from_elem((256, 256), 1.0))
        .unwrap();
    assert_eq!(small_cache.stats().write_throughs, 0, "{backend:?}");
    assert_eq!(small_cache.stats().dirty_bytes, 256 * 256 * 4);
    a.flush().unwrap();
    drop(a);
    let t = t.reopen();
    let (a, _) = open(&t, 1 << 20);
    let mut want = wide;
    want.slice_mut(s![0..4, 0..N as isize]).fill(-1.0);
    want.slice_mut(s![.., N as isize..]).fill(3.0);
    assert_eq!(a.read(..).unwrap(), want.into_dyn(), "{backend:?}");
}

fn failed_write_through_closes_the_array(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F32, &[3, N, N], &PLANE);
    let faulty = wrap::faulty(t.store.clone());
    let a: Array<f32> = Array::from_store(faulty.clone(), ChunkCache::new(64 << 20)).unwrap();
    a.write(s![0, .., ..], &plane(0, 0.0)).unwrap();
    a.flush().unwrap();
    faulty.fail_writes.store(true, Ordering::SeqCst);
    let err = a.write(s![1, .., ..], &plane(1, 0.0)).unwrap_err();
    assert!(
        err.to_string().contains("injected write failure"),
        "{backend:?}: {err}"
    );
    faulty.fail_writes.store(false, Ordering::SeqCst);
    match a.write(s![2, .., ..], &plane(2, 0.0)) {
        Err(Error::Poisoned(m)) => assert!(m.contains("write of chunk [1, 0, 0]"), "{m}"),
        other => panic!("{backend:?}: expected Poisoned, got {other:?}"),
    }
    assert!(a.flush().is_err(), "{backend:?}: flush after a failure");
    assert_eq!(a.get([0, 1, 2]).unwrap(), 1002.0, "reads still work");
}

/// Writers replace whole planes with one value each while readers read
/// whole planes and single elements: every read sees one write's value
/// across the plane (the chunk lock is held across the store write).
fn concurrent_whole_chunk_writes_are_atomic(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F32, &[2, N, N], &PLANE);
    // A budget under one plane: planes the readers load are dropped again.
    let (a, cache) = open(&t, 512 << 10);
    let a = Arc::new(a);
    std::thread::scope(|scope| {
        for w in 0..2u32 {
            let a = a.clone();
            scope.spawn(move || {
                for round in 0..12u32 {
                    let v = (w * 100 + round) as f32;
                    let z = (round % 2) as isize;
                    a.write(
                        s![z, .., ..],
                        &Array2::from_elem((N as usize, N as usize), v),
                    )
                    .unwrap();
                }
            });
        }
        for _ in 0..2 {
            let a = a.clone();
            scope.spawn(move || {
                for round in 0..12 {
                    let p = a.read(s![round % 2, .., ..]).unwrap();
                    let first = p[[0, 0]];
                    assert!(p.iter().all(|&x| x == first), "{backend:?}: torn plane");
                    a.get([(round % 2) as u64, 100, 100]).unwrap();
                }
            });
        }
    });
    assert!(cache.stats().write_throughs > 0, "{backend:?}");
    a.flush().unwrap();
}

#[test]
fn whole_chunks_skip_the_cache_on_every_backend() {
    for b in backends() {
        whole_chunks_skip_the_cache(b);
    }
}

#[test]
fn cached_chunks_are_overwritten_in_the_cache_on_every_backend() {
    for b in backends() {
        cached_chunks_are_overwritten_in_the_cache(b);
    }
}

#[test]
fn other_writes_go_through_the_cache_on_every_backend() {
    for b in backends() {
        other_writes_go_through_the_cache(b);
    }
}

#[test]
fn failed_write_through_closes_the_array_on_every_backend() {
    for b in backends() {
        failed_write_through_closes_the_array(b);
    }
}

#[test]
fn concurrent_whole_chunk_writes_are_atomic_on_every_backend() {
    for b in backends() {
        concurrent_whole_chunk_writes_are_atomic(b);
    }
}
