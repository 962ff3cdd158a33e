//! A chunk larger than the whole cache budget cannot stay in the cache, so
//! reads of whole such chunks go straight from the store to the caller:
//! they read right, load nothing into the cache (no miss counted), and
//! evict nothing another array keeps there. On every backend.

use crate::common::{Backend, TestStore, backends};
use chunkyard::{Array, ChunkCache, DType, s};
use ndarray::{Array1, Array3};

/// Planes of 512 x 512 f32: 1 MiB chunks, under a 768 KiB cache.
const N: u64 = 512;
const BUDGET: usize = 768 << 10;

fn volume(depth: usize) -> Array3<f32> {
    Array3::from_shape_fn((depth, N as usize, N as usize), |(z, i, j)| {
        (z * 1_000_000 + i * 1000 + j) as f32
    })
}

fn oversize_chunks_bypass_the_cache(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F32, &[3, N, N], &[1, N, N]);
    {
        let a = Array::<f32>::from_store(t.store.clone(), ChunkCache::new(64 << 20)).unwrap();
        a.write(.., &volume(3)).unwrap();
        a.flush().unwrap();
    }
    // Read-only: a store that cannot write reserves no write buffers in
    // the cache (a writable Zarr store's would exceed this budget).
    let t = t.reopen_as(false);
    let cache = ChunkCache::new(BUDGET);
    let a = Array::<f32>::from_store(t.store.clone(), cache.clone()).unwrap();
    // Another array's small chunks, cached first.
    let small_dir = tempfile::tempdir().unwrap();
    let small = TestStore::create(Backend::Memory, small_dir.path(), DType::F32, &[64], &[16]);
    let b = Array::<f32>::from_store(small.store.clone(), cache.clone()).unwrap();
    let values = Array1::from_shape_fn(64, |i| i as f32);
    b.write(.., &values).unwrap();
    assert_eq!(b.read(..).unwrap(), values.clone().into_dyn());
    let before = cache.stats();
    assert_eq!(before.entries, 4, "{backend:?}: {before:?}");

    assert_eq!(a.read(..).unwrap(), volume(3).into_dyn(), "{backend:?}");
    assert_eq!(
        a.read(s![1, .., ..]).unwrap(),
        volume(3).slice(s![1, .., ..]).into_dyn(),
        "{backend:?}"
    );
    let after = cache.stats();
    assert_eq!(
        after.misses, before.misses,
        "{backend:?}: nothing loaded: {after:?}"
    );
    assert_eq!(after.entries, 4, "{backend:?}: nothing evicted: {after:?}");
    assert_eq!(b.read(..).unwrap(), values.into_dyn());
}

#[test]
fn oversize_chunks_bypass_the_cache_on_every_backend() {
    for backend in backends() {
        oversize_chunks_bypass_the_cache(backend);
    }
}
