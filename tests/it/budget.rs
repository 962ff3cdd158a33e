//! One memory budget covers the cache's resident chunks, dirty or not, and
//! the write buffers (encoded copies) of write-backs under way: a writer
//! faster than its store waits for write-backs instead of growing memory.
//!
//! A slow store wrapper (`common::wrap::SlowStore`, 2 ms per chunk write)
//! records, from inside every `write_chunk`, the cache's accounted bytes
//! (`resident_bytes + in_flight_bytes` of `CacheStats`). These are
//! counters, not timings, so the assertions are deterministic. The
//! resident-memory side is measured by `examples/slow_store_budget.rs`
//! (`docs/reliability.md`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::wrap;
use crate::common::{Backend, TestStore, backends};
use chunkyard::{Array, ChunkCache, DType, s};
use ndarray::Array2;

const CHUNK: [u64; 2] = [64, 256]; // 64 KiB of u32
const CHUNK_BYTES: usize = 64 * 256 * 4;

/// One writer streams 48 chunks (3 MiB) into a cache of 6 chunks through a
/// slow store, then flushes (in parallel where the store allows).
fn writer_outpaces_store(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let shape = [64 * 48, 256];
    let t = TestStore::create(backend, dir.path(), DType::U32, &shape, &CHUNK);
    let slow = wrap::slow(t.store.clone(), Duration::from_millis(2));
    let budget = 6 * CHUNK_BYTES;
    let cache = ChunkCache::new(budget);
    slow.cache.set(cache.clone()).unwrap();
    let a: Array<u32> = Array::from_store(slow.clone(), cache.clone()).unwrap();
    // Rows of 16: every chunk is written in four calls, so chunks are
    // updated in place (partly written chunks are dirty and stay cached).
    for r in (0..shape[0]).step_by(16) {
        let rows =
            Array2::from_shape_fn((16, 256), |(i, j)| (r as u32 + i as u32) * 1000 + j as u32);
        a.write(s![r as isize..r as isize + 16, ..], &rows).unwrap();
        let st = cache.stats();
        assert!(
            st.resident_bytes + st.in_flight_bytes <= budget,
            "{backend:?} after a write: {st:?}"
        );
    }
    let during_writes = slow.writes.load(Ordering::SeqCst);
    a.flush().unwrap();
    let st = cache.stats();
    let max = slow.max_accounted.load(Ordering::SeqCst);
    let in_flight = slow.max_in_flight.load(Ordering::SeqCst);
    eprintln!(
        "{backend:?}: budget {budget}, max accounted {max} (in flight {in_flight}), \
         write buffer {}, writes while writing {during_writes}, max concurrent writes {}",
        t.store.capabilities().write_buffer_bytes,
        slow.max_concurrent.load(Ordering::SeqCst)
    );
    // The writer blocked on write-backs: 48 chunks through a 6-chunk cache.
    assert!(
        during_writes >= 48 - 6,
        "{backend:?}: {during_writes} write-backs"
    );
    assert!(max > 0);
    assert!(
        max <= budget,
        "{backend:?}: {max} accounted bytes > budget {budget}"
    );
    assert!(slow.max_dirty.load(Ordering::SeqCst) <= budget);
    // Stores that copy while writing had that copy counted.
    assert_eq!(
        in_flight > 0,
        t.store.capabilities().write_buffer_bytes > 0,
        "{backend:?}"
    );
    assert_eq!(st.in_flight_bytes, 0, "nothing in flight after the flush");
    drop(a);
    let t = t.reopen();
    let a: Array<u32> = Array::from_store(t.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    let r = (shape[0] - 1) as u32;
    assert_eq!(a.get([shape[0] - 1, 255]).unwrap(), r * 1000 + 255);
}

#[test]
fn one_budget_covers_resident_and_in_flight_bytes() {
    for b in backends() {
        writer_outpaces_store(b);
    }
}

/// The reservation itself: with a store whose write buffer is a whole
/// chunk, a flush of a cache full of dirty chunks runs fewer writes at
/// once rather than exceed the budget.
#[cfg(feature = "zarr")]
#[test]
fn flush_of_a_full_cache_stays_within_budget() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(
        Backend::Zarr,
        dir.path(),
        DType::U32,
        &[64 * 8, 256],
        &CHUNK,
    );
    let wb = t.store.capabilities().write_buffer_bytes;
    assert!(wb >= CHUNK_BYTES, "zarr writes an encoded copy: {wb}");
    let slow = wrap::slow(t.store.clone(), Duration::from_millis(5));
    let budget = 8 * CHUNK_BYTES + wb;
    let cache = ChunkCache::new(budget);
    slow.cache.set(cache.clone()).unwrap();
    let a: Array<u32> = Array::from_store(slow.clone(), cache.clone()).unwrap();
    a.fill(.., 7).unwrap();
    assert_eq!(
        slow.writes.load(Ordering::SeqCst),
        0,
        "8 chunks fit beside the headroom"
    );
    assert_eq!(cache.stats().dirty_bytes, 8 * CHUNK_BYTES);
    a.flush().unwrap();
    let max = slow.max_accounted.load(Ordering::SeqCst);
    assert!(max <= budget, "{max} > {budget}");
    assert_eq!(slow.writes.load(Ordering::SeqCst), 8);
    // Two encoded copies never fit beside the 8 dirty chunks: the
    // reservation made the parallel flush write one chunk at a time.
    assert_eq!(slow.max_concurrent.load(Ordering::SeqCst), 1);
}

/// Several writers: a thread makes room for its chunk, then loads it, so
/// threads that load at the same moment can each add a chunk beyond what
/// the others made room for. The overshoot is bounded by a chunk and a
/// write buffer per writer thread; the figure is printed.
#[test]
fn several_writers_overshoot_by_at_most_a_chunk_each() {
    const THREADS: usize = 4;
    for backend in [
        Backend::Npy,
        #[cfg(feature = "zarr")]
        Backend::Zarr,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let shape = [64 * 32, 256];
        let t = TestStore::create(backend, dir.path(), DType::U32, &shape, &CHUNK);
        let slow = wrap::slow(t.store.clone(), Duration::from_millis(1));
        let budget = 6 * CHUNK_BYTES;
        let cache = ChunkCache::new(budget);
        slow.cache.set(cache.clone()).unwrap();
        let a: Array<u32> = Array::from_store(slow.clone(), cache.clone()).unwrap();
        std::thread::scope(|sc| {
            for w in 0..THREADS {
                let a = &a;
                sc.spawn(move || {
                    // Thread w writes chunks w, w + 4, ... in rows of 16.
                    for c in (w..32).step_by(THREADS) {
                        for r in (0..64).step_by(16) {
                            let z = (c * 64 + r) as isize;
                            a.fill(s![z..z + 16, ..], c as u32).unwrap();
                        }
                    }
                });
            }
        });
        a.flush().unwrap();
        let max = slow.max_accounted.load(Ordering::SeqCst);
        let bound = budget + THREADS * (CHUNK_BYTES + t.store.capabilities().write_buffer_bytes);
        eprintln!(
            "{backend:?}, {THREADS} writers: budget {budget}, max accounted {max} ({:+} bytes, {:+.2} chunks)",
            max as i64 - budget as i64,
            (max as f64 - budget as f64) / CHUNK_BYTES as f64
        );
        assert!(max <= bound, "{backend:?}: {max} > {bound}");
        drop(a);
        let t = t.reopen();
        let a: Array<u32> = Array::from_store(t.store.clone(), ChunkCache::new(1 << 20)).unwrap();
        for c in 0..32u64 {
            assert_eq!(a.get([c * 64 + 63, 255]).unwrap(), c as u32);
        }
    }
}
