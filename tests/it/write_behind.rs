//! Write-behind (`ChunkCache::with_write_behind`) through the array API,
//! on every backend: whole planes written in the article's loop return
//! before their store writes end (a gated store shows it without timing),
//! stay within the budget, are durable when `flush` returns, and a failed
//! background write closes the array at the next write and at flush.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::common::{Backend, TestStore, backends};
use chunkyard::store::{ChunkStore, Hooks, Wrapped};
use chunkyard::{Array, ChunkCache, DType, Error, Result, s};
use ndarray::{Array2, Array3};

/// Planes of 256 x 256 f32 (256 KiB), one chunk each.
const N: usize = 256;
const PLANE: usize = N * N * 4;

fn plane(z: usize, salt: f32) -> Array2<f32> {
    Array2::from_shape_fn((N, N), |(i, j)| (z * 100_000 + i * 300 + j) as f32 + salt)
}

/// Holds every write while shut; fails writes while `fail` is set;
/// counts the writes that entered and those that failed.
#[derive(Debug, Default)]
struct Gate {
    shut: Mutex<bool>,
    changed: Condvar,
    fail: AtomicBool,
    entered: AtomicUsize,
    failed: AtomicUsize,
}

impl Gate {
    fn set(&self, shut: bool) {
        *self.shut.lock().unwrap() = shut;
        self.changed.notify_all();
    }
}

impl Hooks for Gate {
    fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
        let mut g = self.shut.lock().unwrap();
        self.entered.fetch_add(1, SeqCst);
        self.changed.notify_all();
        while *g {
            g = self.changed.wait(g).unwrap();
        }
        drop(g);
        if self.fail.load(SeqCst) {
            self.failed.fetch_add(1, SeqCst);
            return Err(Error::Store {
                backend: "gate",
                message: "injected write failure".into(),
            });
        }
        inner.write_chunk(chunk, data)
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "waited 30 s in vain for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn planes_are_written_behind_and_durable_after_flush(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let depth = 12;
    let t = TestStore::create(
        backend,
        dir.path(),
        DType::F32,
        &[depth as u64, N as u64, N as u64],
        &[1, N as u64, N as u64],
    );
    let behind = t.store.capabilities().parallel_writes;
    let gated = Wrapped::new(t.store.clone(), Gate::default());
    gated.set(behind);
    // Room for four planes.
    let budget = 4 * PLANE;
    let cache = ChunkCache::with_write_behind(budget, 2);
    let a: Array<f32> = Array::from_store(gated.clone(), cache.clone()).unwrap();
    if behind {
        // With the store shut, the first plane's write still returns.
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| tx.send(a.write(s![0, .., ..], &plane(0, 0.5))).unwrap());
            rx.recv_timeout(Duration::from_secs(30))
                .expect("{backend:?}: a whole-plane write waited for its store write")
                .unwrap();
            wait_until("the writer to enter the store", || {
                gated.entered.load(SeqCst) == 1
            });
            let st = cache.stats();
            assert_eq!(st.dirty_bytes, PLANE, "{backend:?}: {st:?}");
            gated.set(false);
        });
    } else {
        a.write(s![0, .., ..], &plane(0, 0.5)).unwrap();
    }
    for z in 1..depth {
        a.write(s![z as isize, .., ..], &plane(z, 0.5)).unwrap();
        let st = cache.stats();
        assert!(
            st.resident_bytes + st.in_flight_bytes <= budget,
            "{backend:?}: {st:?}"
        );
    }
    // Read back before the flush (from the cache or the store).
    let want = Array3::from_shape_fn((depth, N, N), |(z, i, j)| {
        (z * 100_000 + i * 300 + j) as f32 + 0.5
    });
    assert_eq!(a.read(..).unwrap(), want.clone().into_dyn(), "{backend:?}");
    a.flush().unwrap();
    let st = cache.stats();
    assert_eq!(st.dirty_bytes, 0, "{backend:?}: {st:?}");
    if behind {
        assert_eq!(st.write_throughs, 0, "{backend:?}: {st:?}");
        assert!(st.background_writes >= 1, "{backend:?}: {st:?}");
    } else {
        assert_eq!(st.write_throughs, depth as u64, "{backend:?}: {st:?}");
    }
    // What a crash right after the flush would leave (memory), and a
    // reopen after close (files).
    if let Some(crashed) = t.crash() {
        let b: Array<f32> = Array::from_store(crashed.store, ChunkCache::new(1 << 20)).unwrap();
        assert_eq!(b.read(..).unwrap(), want.clone().into_dyn(), "crash");
    }
    a.close().unwrap();
    drop(gated);
    let t = t.reopen();
    let b: Array<f32> = Array::from_store(t.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    assert_eq!(b.read(..).unwrap(), want.into_dyn(), "{backend:?} reopened");
}

fn a_failed_background_write_closes_the_array(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let t = TestStore::create(
        backend,
        dir.path(),
        DType::F32,
        &[4, N as u64, N as u64],
        &[1, N as u64, N as u64],
    );
    if !t.store.capabilities().parallel_writes {
        return;
    }
    let gated = Wrapped::new(t.store.clone(), Gate::default());
    let a: Array<f32> =
        Array::from_store(gated.clone(), ChunkCache::with_write_behind(16 * PLANE, 1)).unwrap();
    a.write(s![0, .., ..], &plane(0, 0.0)).unwrap();
    a.flush().unwrap();
    gated.fail.store(true, SeqCst);
    // Returns Ok: the failure happens in the background.
    a.write(s![1, .., ..], &plane(1, 0.0)).unwrap();
    wait_until("the background write to fail", || {
        gated.failed.load(SeqCst) >= 1
    });
    gated.fail.store(false, SeqCst);
    // The store counts the failure before the writer thread, which holds
    // chunk 1's lock across its write-back, poisons the array: reading
    // chunk 1 waits for that lock, so the poisoning is done after it
    // (without it the next write could slip in first and succeed).
    assert_eq!(a.get([1, 0, 2]).unwrap(), 100_002.0, "{backend:?}");
    match a.write(s![2, .., ..], &plane(2, 0.0)) {
        Err(Error::Poisoned(m)) => assert!(
            m.contains("background write-back of chunk [1, 0, 0]") && m.contains("injected"),
            "{backend:?}: {m}"
        ),
        other => panic!("{backend:?}: expected Poisoned, got {other:?}"),
    }
    assert!(a.flush().is_err(), "{backend:?}: flush after a failure");
    // The data stays readable.
    assert_eq!(a.get([1, 0, 2]).unwrap(), 100_002.0, "{backend:?}");
    assert!(a.close().is_err(), "{backend:?}: close after a failure");
}

/// Several threads write whole planes (their own, several rounds) while
/// others read; at the end every plane holds its writer's last round.
fn concurrent_planes_lose_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let depth = 8usize;
    let t = TestStore::create(
        backend,
        dir.path(),
        DType::F32,
        &[depth as u64, N as u64, N as u64],
        &[1, N as u64, N as u64],
    );
    let cache = ChunkCache::with_write_behind(3 * PLANE, 2);
    let a: Array<f32> = Array::from_store(t.store.clone(), cache.clone()).unwrap();
    std::thread::scope(|s| {
        for w in 0..4usize {
            let a = &a;
            s.spawn(move || {
                for round in 0..6usize {
                    for z in [w, w + 4] {
                        let v = (z * 10 + round) as f32;
                        a.write(s![z as isize, .., ..], &Array2::from_elem((N, N), v))
                            .unwrap();
                    }
                }
            });
        }
        for r in 0..2usize {
            let a = &a;
            s.spawn(move || {
                for round in 0..12usize {
                    let z = (round + r) % depth;
                    let p = a.read(s![z as isize, .., ..]).unwrap();
                    let first = p[[0, 0]];
                    assert!(p.iter().all(|&x| x == first), "{backend:?}: torn plane");
                }
            });
        }
    });
    a.close().unwrap();
    let t = t.reopen();
    let b: Array<f32> = Array::from_store(t.store.clone(), ChunkCache::new(1 << 20)).unwrap();
    for z in 0..depth {
        let p = b.read(s![z as isize, .., ..]).unwrap();
        let want = (z * 10 + 5) as f32;
        assert!(p.iter().all(|&x| x == want), "{backend:?}: plane {z}");
    }
}

#[test]
fn planes_are_written_behind_and_durable_after_flush_on_every_backend() {
    for b in backends() {
        planes_are_written_behind_and_durable_after_flush(b);
    }
}

#[test]
fn a_failed_background_write_closes_the_array_on_every_backend() {
    for b in backends() {
        a_failed_background_write_closes_the_array(b);
    }
}

#[test]
fn concurrent_planes_lose_nothing_on_every_backend() {
    for b in backends() {
        concurrent_planes_lose_nothing(b);
    }
}
