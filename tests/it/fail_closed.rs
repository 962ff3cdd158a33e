//! Fail closed: after a failed write-back or flush, an array refuses every
//! further write (write, fill, writes through views, casts) with
//! `Error::Poisoned` naming the first failure, until it is reopened; reads
//! still work; reopening shows what the last successful flush covered
//! (here, where the store keeps failing, exactly that). Failures are injected by a wrapper store
//! (`common::wrap::FaultyStore`) over every backend, and by
//! `MemoryStore::fail_after`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::common::wrap;
use crate::common::{Backend, TestStore, backends};
use chunkyard::store::{ChunkStore, MemoryStore, StoreMeta};
use chunkyard::{Array, ChunkCache, DType, Error, s};
use ndarray::{Array1, Array2};

const SHAPE: [u64; 2] = [64, 64];
const CHUNK: [u64; 2] = [16, 64]; // 4 chunks of 8 KiB (f64)
const CHUNK_BYTES: usize = 16 * 64 * 8;

fn flushed_values() -> Array2<f64> {
    Array2::from_shape_fn((64, 64), |(i, j)| (i * 64 + j) as f64)
}

/// Every way of writing fails with `Poisoned` that names `why`.
fn assert_refuses_writes(a: &Array<f64>, why: &str) {
    let check = |r: chunkyard::Result<()>, what: &str| match r {
        Err(Error::Poisoned(m)) => assert!(m.contains(why), "{what}: {m}"),
        other => panic!("{what}: expected Poisoned, got {other:?}"),
    };
    check(a.write(s![0, ..], &Array1::from_elem(64, 1.0)), "write");
    check(a.fill(s![1..3, ..], 2.0), "fill");
    check(a.fill(s![63, 63], 2.0), "fill of one element");
    check(
        a.view().write(s![0, 0..4], &Array1::from_elem(4, 1.0)),
        "view write",
    );
    check(
        a.slice(s![10..20, ..]).unwrap().fill(.., 3.0),
        "sliced view fill",
    );
    check(
        a.t().write(s![0, ..], &Array1::from_elem(64, 1.0)),
        "transposed view write",
    );
    check(
        a.cast::<f32>()
            .write(s![0, ..], &Array1::from_elem(64, 1.0f32)),
        "cast view write",
    );
    check(
        a.write_from(s![0, ..], &Array1::from_elem(64, 1i32)),
        "write_from",
    );
    // The handle API too.
    let h = a.handle();
    let sel = h.resolve(s![0, 0]).unwrap();
    check(h.write_bytes(&sel, &1.0f64.to_ne_bytes()), "write_bytes");
    check(h.fill_bytes(&sel, &1.0f64.to_ne_bytes()), "fill_bytes");
    // A flush reports the failure too.
    assert!(a.flush().is_err(), "flush after a failure");
}

/// A failed write-back (eviction) poisons the array.
fn failed_write_back(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F64, &SHAPE, &CHUNK);
    let faulty = wrap::faulty(t.store.clone());
    // Room for two chunks (plus a write buffer's headroom).
    let budget = 2 * CHUNK_BYTES + t.store.capabilities().write_buffer_bytes;
    let a: Array<f64> = Array::from_store(faulty.clone(), ChunkCache::new(budget)).unwrap();
    a.write(.., &flushed_values()).unwrap();
    a.flush().unwrap();
    faulty.fail_writes.store(true, Ordering::SeqCst);
    // Dirty every chunk, one row at a time: the third chunk evicts a
    // dirty one, whose write-back fails. The write that triggered it
    // succeeded (its data is in the cache); the array refuses writes from
    // then on.
    let mut first_error = None;
    for c in 0..8isize {
        if let Err(e) = a.fill(s![c % 4 * 16 + c / 4, ..], -1.0) {
            first_error = Some(e);
            break;
        }
    }
    let err = first_error.unwrap_or_else(|| panic!("{backend:?}: no write failed"));
    let msg = err.to_string();
    assert!(matches!(err, Error::Poisoned(_)), "{backend:?}: {msg}");
    assert!(
        msg.contains("write-back of chunk") && msg.contains("injected write failure"),
        "{msg}"
    );
    assert_refuses_writes(&a, "write-back of chunk");
    // Reads still work and show what was accepted, from the cache.
    assert_eq!(a.get([0, 5]).unwrap(), -1.0);
    assert_eq!(a.get([20, 5]).unwrap(), flushed_values()[[20, 5]]);
    // A store that works again does not reopen the array.
    faulty.fail_writes.store(false, Ordering::SeqCst);
    assert!(matches!(a.fill(s![5, 5], 0.0), Err(Error::Poisoned(_))));
    faulty.fail_writes.store(true, Ordering::SeqCst);
    drop(a); // its flush fails (and says so on stderr)
    // Reopened: exactly what the last successful flush covered, writable.
    let t = t.reopen();
    let a: Array<f64> = Array::from_store(t.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    assert_eq!(
        a.read(..).unwrap(),
        flushed_values().into_dyn(),
        "{backend:?}: reopened after the failure"
    );
    a.fill(s![0, 0], 9.0).unwrap();
    a.flush().unwrap();
}

/// A failed flush (the store's sync) poisons the array.
fn failed_flush(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F64, &SHAPE, &CHUNK);
    let faulty = wrap::faulty(t.store.clone());
    let a: Array<f64> = Array::from_store(faulty.clone(), ChunkCache::new(1 << 20)).unwrap();
    a.write(.., &flushed_values()).unwrap();
    faulty.fail_flush.store(true, Ordering::SeqCst);
    let err = a.flush().unwrap_err().to_string();
    assert!(err.contains("injected flush failure"), "{backend:?}: {err}");
    assert_refuses_writes(&a, "flush failed");
    assert_eq!(a.get([63, 63]).unwrap(), 4095.0, "reads still work");
    faulty.fail_flush.store(false, Ordering::SeqCst);
    // Even when the store syncs again, the array stays closed for writes.
    let again = a.flush().unwrap_err();
    assert!(matches!(again, Error::Poisoned(_)), "{again}");
    assert!(a.fill(s![0, 0], 1.0).is_err());
}

/// A failed write of a chunk during flush (not eviction) poisons it too.
fn failed_write_during_flush(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(backend, dir.path(), DType::F64, &SHAPE, &CHUNK);
    let faulty = wrap::faulty(t.store.clone());
    let a: Array<f64> = Array::from_store(faulty.clone(), ChunkCache::new(1 << 20)).unwrap();
    a.fill(.., 5.0).unwrap();
    faulty.fail_writes.store(true, Ordering::SeqCst);
    let err = a.flush().unwrap_err().to_string();
    assert!(err.contains("injected write failure"), "{backend:?}: {err}");
    assert_refuses_writes(&a, "flush failed");
    assert_eq!(faulty.writes.load(Ordering::SeqCst), 0);
}

#[test]
fn failed_write_back_closes_the_array_on_every_backend() {
    for b in backends() {
        failed_write_back(b);
    }
}

#[test]
fn failed_flush_closes_the_array_on_every_backend() {
    for b in backends() {
        failed_flush(b);
        failed_write_during_flush(b);
    }
}

/// The in-memory store's own failure injection: an I/O failure after N
/// operations, at whichever operation it falls on.
#[test]
fn memory_store_fail_after_any_operation() {
    for n in 0..12u64 {
        let meta = StoreMeta {
            dtype: DType::U8,
            shape: vec![40],
            chunks: vec![10],
            fill: vec![0],
        };
        let store = Arc::new(MemoryStore::new(meta));
        let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(20)).unwrap();
        a.fill(.., 1).unwrap();
        a.flush().unwrap();
        store.fail_after(n);
        let (mut failed, mut last_ok) = (None, 1u8);
        for round in 2..6u8 {
            match a.fill(.., round).and_then(|()| a.flush()) {
                Ok(()) => last_ok = round,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let Some(e) = failed else {
            panic!("fail_after({n}): nothing failed")
        };
        assert!(e.to_string().contains("injected I/O failure"), "{n}: {e}");
        let w = a.fill(s![0], 9).unwrap_err();
        assert!(matches!(w, Error::Poisoned(_)), "fail_after({n}): {w}");
        assert!(w.to_string().contains("injected I/O failure"), "{w}");
        // The reopened store holds the round the last successful flush
        // covered, whole.
        let r = store.reopen();
        let chunks: Vec<Vec<u8>> = (0..4)
            .map(|c| r.read_chunk(&[c]).unwrap().unwrap().to_vec())
            .collect();
        assert!(
            chunks.iter().all(|c| c.iter().all(|&x| x == last_ok)),
            "fail_after({n}): round {last_ok} was flushed last: {chunks:?}"
        );
    }
}

/// A memory store of six u8 rows in chunks of three, every row 7 and
/// flushed, with no array open on it.
fn six_sevens_flushed() -> Arc<MemoryStore> {
    let meta = StoreMeta {
        dtype: DType::U8,
        shape: vec![6],
        chunks: vec![3],
        fill: vec![0],
    };
    let store = Arc::new(MemoryStore::new(meta));
    let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(3)).unwrap();
    a.fill(.., 7).unwrap();
    a.flush().unwrap();
    store
}

/// A shrink that fails after the store has cut (here: loading the new last
/// chunk to clear its rows past the new end) closes the array, as any
/// resize the store fails halfway does. The store still holds the old rows
/// past the end in that chunk, so an array left writable would show them,
/// not the fill value, after a later grow (fuzz target `store_ops`: "after
/// resize to N, element i is durable as X").
#[test]
fn shrink_failing_after_the_cut_closes_the_array() {
    let store = six_sevens_flushed();
    // A fresh array: chunk 0 is not cached, the shrink must load it.
    let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(3)).unwrap();
    // Nothing is dirty, so the shrink's first flush costs no store
    // operation; the cut is the one allowed, the load of chunk 0 fails.
    store.fail_after(1);
    let e = a.resize(1).unwrap_err();
    assert!(e.to_string().contains("injected I/O failure"), "{e}");
    store.fail_after(u64::MAX);
    match a.resize(3) {
        Err(Error::Poisoned(m)) => assert!(m.contains("resize to 1 failed"), "{m}"),
        Ok(()) => panic!(
            "grew after a failed shrink; element 2 reads {} (fill is 0)",
            a.get([2]).unwrap()
        ),
        Err(other) => panic!("expected Poisoned, got {other:?}"),
    }
    assert!(matches!(a.fill(.., 1), Err(Error::Poisoned(_))));
    // What the store holds is the cut it made: one row.
    assert_eq!(store.reopen().meta().shape, vec![1]);
}

/// A shrink cut short after the store's cut leaves old rows past the new
/// end in the last chunk; a crash there does the same. Reopened, the
/// array must not show them when it grows again: a grow clears those rows
/// first (fuzz target `store_ops`, the same message as above, after a
/// failed shrink and a reopen).
#[test]
fn grow_after_a_shrink_cut_short_shows_the_fill_value() {
    let store = six_sevens_flushed();
    let a: Array<u8> = Array::from_store(store.clone(), ChunkCache::new(3)).unwrap();
    store.fail_after(1);
    a.resize(1).unwrap_err();
    drop(a);
    // What a crash right now leaves: one row, chunk 0 still [7, 7, 7].
    let reopened = Arc::new(store.reopen());
    assert_eq!(reopened.meta().shape, vec![1]);
    let a: Array<u8> = Array::from_store(reopened.clone(), ChunkCache::new(3)).unwrap();
    a.resize(5).unwrap();
    let got: Vec<u8> = (0..5).map(|i| a.get([i]).unwrap()).collect();
    assert_eq!(got, vec![7, 0, 0, 0, 0]);
    // Durable at once, as every resize.
    let b: Array<u8> = Array::from_store(Arc::new(reopened.reopen()), ChunkCache::new(3)).unwrap();
    let got: Vec<u8> = (0..5).map(|i| b.get([i]).unwrap()).collect();
    assert_eq!(got, vec![7, 0, 0, 0, 0]);
}
