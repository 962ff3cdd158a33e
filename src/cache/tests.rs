//! Unit tests of the chunk cache.

use super::*;
use crate::DType;
use crate::store::{MemoryStore, StoreMeta};
use std::sync::atomic::AtomicBool;

fn owner(cache: &ChunkCache, n: u64, chunk: u64) -> (Arc<Owner>, Arc<MemoryStore>) {
    let meta = StoreMeta {
        dtype: DType::U8,
        shape: vec![n],
        chunks: vec![chunk],
        fill: vec![9],
    };
    let store = Arc::new(MemoryStore::new(meta));
    let grid = ChunkGrid::new(&[n], &[chunk], 1).unwrap();
    (cache.register(store.clone(), grid, vec![9]), store)
}

/// Checks the counts against the entries, when nothing runs: the cache's
/// resident, dirty and stranded bytes are the sums of its slots' and of
/// `owners'` (all the owners with entries), and each owner's are its
/// slots'.
fn check_counts(cache: &ChunkCache, owners: &[&Owner]) {
    let entries: Vec<Arc<Entry>> = cache
        .inner
        .shards
        .iter()
        .flat_map(|s| {
            let g = s.lock();
            g.lru
                .iter()
                .map(|(_, e)| e.clone())
                .chain(g.evicting.values().cloned())
                .collect::<Vec<_>>()
        })
        .collect();
    let (mut resident, mut dirty, mut stranded) = (0, 0, 0);
    for o in owners {
        let (mut own, mut own_stranded) = ((0, 0, 0), 0);
        for e in entries.iter().filter(|e| e.key.owner == o.id) {
            let slot = e.slot.lock();
            assert!(!slot.is_detached(), "a detached entry in a map");
            own.0 += slot.data().map_or(0, |d| d.len());
            own.1 += slot.unwritten().map_or(0, |(d, _)| d.len());
            own.2 += 1;
            if let Slot::Stranded(d) = &*slot {
                own_stranded += d.len();
            }
        }
        assert_eq!(cache.usage_of(o), own, "owner {}", o.id);
        assert_eq!(o.stranded.load(Relaxed), own_stranded, "owner {}", o.id);
        resident += own.0;
        dirty += own.1;
        stranded += own_stranded;
    }
    let s = cache.stats();
    assert_eq!((s.resident_bytes, s.dirty_bytes), (resident, dirty));
    assert_eq!(cache.inner.stranded.load(Relaxed), stranded);
    assert_eq!(s.entries, entries.len());
    assert_eq!(s.in_flight_bytes, 0);
}

#[test]
fn fill_hit_miss_and_dirty_accounting() {
    let cache = ChunkCache::new(1 << 20);
    let (o, store) = owner(&cache, 100, 10);
    let v = cache.with_chunk(&o, &[3], Access::Read, |d| d[0]).unwrap();
    assert_eq!(v, 9, "never-written chunk reads as fill");
    cache
        .with_chunk(&o, &[3], Access::Update, |d| d[1] = 1)
        .unwrap();
    let s = cache.stats();
    assert_eq!((s.hits, s.misses), (1, 1));
    assert_eq!(s.resident_bytes, 10);
    assert_eq!(s.dirty_bytes, 10);
    assert_eq!(store.chunk_count(), 0, "nothing written before flush");
    cache.flush_owner(&o).unwrap();
    assert_eq!(cache.stats().dirty_bytes, 0);
    assert_eq!(
        store.reopen().read_chunk(&[3]).unwrap().unwrap()[..2],
        [9, 1]
    );
    check_counts(&cache, &[&o]);
}

#[test]
fn overwrite_never_reads_the_store() {
    let cache = ChunkCache::new(1 << 20);
    let (o, store) = owner(&cache, 100, 10);
    store.fail_after(0); // any store read would fail
    cache
        .with_chunk(&o, &[0], Access::Overwrite, |d| d.fill(4))
        .unwrap();
    assert_eq!(cache.stats().misses, 0);
}

#[test]
fn eviction_writes_back_and_stays_within_budget() {
    let cache = ChunkCache::new(35);
    let (o, store) = owner(&cache, 100, 10);
    for c in 0..10u64 {
        cache
            .with_chunk(&o, &[c], Access::Overwrite, |d| d.fill(c as u8))
            .unwrap();
        assert!(cache.stats().resident_bytes <= 35);
    }
    let s = cache.stats();
    assert_eq!(s.evictions, 7);
    assert_eq!(s.writebacks, 7);
    assert_eq!(store.chunk_count(), 7);
    // Evicted chunks read back from the store with their data.
    for c in 0..10u64 {
        let v = cache.with_chunk(&o, &[c], Access::Read, |d| d[5]).unwrap();
        assert_eq!(v, c as u8);
    }
    check_counts(&cache, &[&o]);
}

/// A memory store with capabilities of the test's choosing, which
/// records what the cache counted (resident + in flight) whenever it
/// reads a chunk into a buffer of its own, and the buffers it is asked
/// to read into.
#[derive(Debug)]
struct Probe {
    inner: MemoryStore,
    cache: ChunkCache,
    caps: crate::store::Capabilities,
    seen: Mutex<Vec<usize>>,
    into: Mutex<Vec<usize>>,
}

impl Probe {
    fn new(
        cache: &ChunkCache,
        shape: u64,
        caps: impl Fn(crate::store::Capabilities) -> crate::store::Capabilities,
    ) -> Arc<Probe> {
        let inner = MemoryStore::new(StoreMeta {
            dtype: DType::U8,
            shape: vec![shape],
            chunks: vec![10],
            fill: vec![9],
        });
        Arc::new(Probe {
            caps: caps(inner.capabilities()),
            inner,
            cache: cache.clone(),
            seen: Mutex::new(Vec::new()),
            into: Mutex::new(Vec::new()),
        })
    }
}

impl ChunkStore for Probe {
    fn backend(&self) -> &'static str {
        "probe"
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.caps
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        let s = self.cache.stats();
        self.seen.lock().push(s.resident_bytes + s.in_flight_bytes);
        self.inner.read_chunk(chunk)
    }
    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.into.lock().push(out.as_ptr() as usize);
        self.inner.read_chunk_into(chunk, out)
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.inner.write_chunk(chunk, data)
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.inner.erase_chunk(chunk)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
}

#[test]
fn loads_that_decode_reserve_their_stored_bytes() {
    // Room for three chunks of 10: a load that decodes needs room for
    // two (the chunk and its stored bytes), so two stay cached.
    let cache = ChunkCache::new(30);
    let store = Probe::new(&cache, 100, |c| crate::store::Capabilities {
        decodes: true,
        ..c
    });
    let grid = ChunkGrid::new(&[100], &[10], 1).unwrap();
    let o = cache.register(store.clone(), grid, vec![9]);
    for c in 0..6u64 {
        let v = cache.with_chunk(&o, &[c], Access::Read, |d| d[0]).unwrap();
        assert_eq!(v, 9);
        let s = cache.stats();
        assert_eq!(s.in_flight_bytes, 0, "released after the load");
        assert!(s.resident_bytes <= 20, "chunk {c}: {s:?}");
    }
    assert_eq!(cache.stats().resident_bytes, 20);
    // During each load: the scratch reserved, and the chunk's room.
    let seen = store.seen.lock().clone();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|&b| (10..=20).contains(&b)), "{seen:?}");
    // Overwrites load nothing and reserve nothing.
    cache
        .with_chunk(&o, &[7], Access::Overwrite, |d| d.fill(1))
        .unwrap();
    assert_eq!(store.seen.lock().len(), 6);
}

#[test]
fn loads_reuse_the_buffers_they_evict_and_never_show_their_old_bytes() {
    // Room for two chunks of 10 bytes.
    let cache = ChunkCache::new(20);
    let store = Probe::new(&cache, 60, |c| crate::store::Capabilities {
        reads_into: true,
        ..c
    });
    for c in [0u8, 1, 3] {
        store.write_chunk(&[c as u64], &[c + 1; 10]).unwrap();
    }
    let grid = ChunkGrid::new(&[60], &[10], 1).unwrap();
    let o = cache.register(store.clone(), grid, vec![9]);
    let at = |c: u64| {
        cache
            .with_chunk(&o, &[c], Access::Read, |d| {
                (d.as_ptr() as usize, d.to_vec())
            })
            .unwrap()
    };
    // Two loads fill the cache, each into a buffer of the store's.
    let (p0, d0) = at(0);
    let (p1, d1) = at(1);
    assert_eq!((d0, d1), (vec![1; 10], vec![2; 10]));
    assert_eq!(store.seen.lock().len(), 2);
    assert!(store.into.lock().is_empty());
    // Chunk 2 was never written: it evicts chunk 0 and reads as the
    // fill value in chunk 0's old buffer, none of whose bytes remain.
    let (p2, d2) = at(2);
    assert_eq!(d2, vec![9; 10]);
    assert_eq!(p2, p0);
    // Chunk 3 evicts chunk 1 and is read into its buffer.
    let (p3, d3) = at(3);
    assert_eq!(d3, vec![4; 10]);
    assert_eq!(p3, p1);
    assert_eq!(*store.into.lock(), vec![p0, p1]);
    assert_eq!(store.seen.lock().len(), 2, "no buffer of the store's since");
    // An overwrite takes an evicted buffer too, refilled first.
    let (p5, d5) = cache
        .with_chunk(&o, &[5], Access::Overwrite, |d| {
            d[0] = 7;
            (d.as_ptr() as usize, d.to_vec())
        })
        .unwrap();
    assert_eq!(p5, p0);
    assert_eq!(d5, [vec![7], vec![9; 9]].concat());
    let s = cache.stats();
    assert_eq!((s.misses, s.evictions, s.resident_bytes), (4, 3, 20));
    assert_eq!(s.in_flight_bytes, 0);
}

#[test]
fn budget_smaller_than_a_chunk() {
    let cache = ChunkCache::new(3);
    let (o, store) = owner(&cache, 20, 10);
    cache
        .with_chunk(&o, &[1], Access::Update, |d| d[0] = 7)
        .unwrap();
    assert_eq!(cache.stats().resident_bytes, 0);
    assert_eq!(store.read_chunk(&[1]).unwrap().unwrap()[0], 7);
    let v = cache.with_chunk(&o, &[1], Access::Read, |d| d[0]).unwrap();
    assert_eq!(v, 7);
}

#[test]
fn failed_write_back_poisons_and_keeps_data() {
    let cache = ChunkCache::new(10);
    let (o, store) = owner(&cache, 100, 10);
    cache
        .with_chunk(&o, &[0], Access::Overwrite, |d| d.fill(1))
        .unwrap();
    store.fail_after(0);
    // Making room for chunk 1 evicts chunk 0, whose write-back fails:
    // the array is poisoned; the load of chunk 1 fails too.
    assert!(cache.with_chunk(&o, &[1], Access::Read, |_| ()).is_err());
    let err = cache
        .with_chunk(&o, &[2], Access::Overwrite, |_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(err.to_string().contains("chunk [0]"), "{err}");
    assert!(cache.flush_owner(&o).is_err());
    // The dirty data is still readable from the cache.
    let v = cache.peek(&o, &[0], |d| d[0]);
    assert_eq!(v, Some(1));
    check_counts(&cache, &[&o]);
}

#[test]
fn misses_served_elsewhere_leave_no_entries() {
    let cache = ChunkCache::new(1 << 20);
    let (o, _store) = owner(&cache, 100, 10);
    for c in 0..10u64 {
        let r = cache
            .read_or_else(&o, &[c], |d| Ok(if d.is_some() { "hit" } else { "miss" }))
            .unwrap();
        assert_eq!(r, "miss");
    }
    assert_eq!(cache.stats().entries, 0);
    assert_eq!(cache.usage_of(&o), (0, 0, 0));
    cache.with_chunk(&o, &[4], Access::Read, |_| ()).unwrap();
    let r = cache
        .read_or_else(&o, &[4], |d| Ok(d.map_or(0, |d| d[0])))
        .unwrap();
    assert_eq!(r, 9, "a cached chunk is a hit");
}

#[test]
fn concurrent_loads_collapse() {
    let cache = ChunkCache::new(1 << 20);
    let (o, _store) = owner(&cache, 100, 10);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..100 {
                    cache.with_chunk(&o, &[5], Access::Read, |_| ()).unwrap();
                }
            });
        }
    });
    assert_eq!(cache.stats().misses, 1);
    assert_eq!(cache.stats().hits, 799);
}

#[test]
fn concurrent_updates_lose_nothing_under_eviction() {
    // 8 threads increment interleaved elements of the same chunks with
    // a cache that holds 2 of 10 chunks.
    let cache = ChunkCache::new(25);
    let (o, _store) = owner(&cache, 100, 10);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (cache, o) = (&cache, &o);
            s.spawn(move || {
                for round in 0..50u64 {
                    let c = (round + t) % 10;
                    cache
                        .with_chunk(o, &[c], Access::Update, |d| {
                            d[t as usize] = d[t as usize].wrapping_add(1)
                        })
                        .unwrap();
                }
            });
        }
    });
    cache.flush_owner(&o).unwrap();
    for c in 0..10u64 {
        let d = cache
            .with_chunk(&o, &[c], Access::Read, |d| d.to_vec())
            .unwrap();
        // Each thread visits each chunk 5 times; fill is 9.
        assert_eq!(d[..8], [9 + 5; 8], "chunk {c}");
    }
    check_counts(&cache, &[&o]);
}

#[test]
fn purge_releases_everything() {
    let cache = ChunkCache::new(1 << 20);
    let (a, _) = owner(&cache, 100, 10);
    let (b, _) = owner(&cache, 100, 10);
    for c in 0..5u64 {
        cache.with_chunk(&a, &[c], Access::Read, |_| ()).unwrap();
        cache.with_chunk(&b, &[c], Access::Read, |_| ()).unwrap();
    }
    assert_eq!(cache.stats().resident_bytes, 100);
    cache.purge(&a);
    assert_eq!(cache.stats().resident_bytes, 50);
    assert_eq!(cache.usage_of(&a), (0, 0, 0));
    assert_eq!(cache.usage_of(&b), (50, 0, 5));
    check_counts(&cache, &[&a, &b]);
}

/// A memory store whose writes reserve `write_buffer` bytes in the cache,
/// and which, if given a gate, holds every write until the gate opens
/// (`opens`: its own writes open the gate).
#[derive(Debug)]
struct Gated {
    inner: MemoryStore,
    gate: Arc<(Mutex<bool>, parking_lot::Condvar)>,
    waits: bool,
    entered: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

impl ChunkStore for Gated {
    fn backend(&self) -> &'static str {
        "gated"
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        crate::store::Capabilities {
            write_buffer_bytes: 10,
            ..self.inner.capabilities()
        }
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.inner.read_chunk(chunk)
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let (open, cv) = &*self.gate;
        if self.waits {
            if let Some(tx) = self.entered.lock().take() {
                tx.send(()).unwrap();
            }
            let mut g = open.lock();
            while !*g {
                cv.wait(&mut g);
            }
        } else {
            *open.lock() = true;
            cv.notify_all();
        }
        self.inner.write_chunk(chunk, data)
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.inner.erase_chunk(chunk)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
}

#[test]
fn a_waiting_write_back_wakes_when_resident_bytes_drop() {
    // Budget 40; chunks and write buffers of 10. Chunk a0 (dirty), b0
    // (dirty) and c0 (clean) are resident: 30. Flushing `a` writes a0 with
    // its buffer in flight (40), and its store holds the write until b0 is
    // written. Flushing `b` must wait (30 + 10 + 10 > 40) until purging `c`
    // frees 10: only a notification on that drop lets it go on, since the
    // write in flight does not end before it.
    let cache = ChunkCache::new(40);
    let gate = Arc::new((Mutex::new(false), parking_lot::Condvar::new()));
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let gated = |waits: bool, tx: Option<std::sync::mpsc::Sender<()>>| {
        let inner = MemoryStore::new(StoreMeta {
            dtype: DType::U8,
            shape: vec![10],
            chunks: vec![10],
            fill: vec![9],
        });
        let store: Arc<dyn ChunkStore> = Arc::new(Gated {
            inner,
            gate: gate.clone(),
            waits,
            entered: Mutex::new(tx),
        });
        let grid = ChunkGrid::new(&[10], &[10], 1).unwrap();
        cache.register(store, grid, vec![9])
    };
    let a = gated(true, Some(entered_tx));
    let b = gated(false, None);
    let (c, _) = owner(&cache, 10, 10);
    cache
        .with_chunk(&a, &[0], Access::Overwrite, |d| d.fill(1))
        .unwrap();
    cache
        .with_chunk(&b, &[0], Access::Overwrite, |d| d.fill(2))
        .unwrap();
    cache.with_chunk(&c, &[0], Access::Read, |_| ()).unwrap();
    assert_eq!(cache.stats().resident_bytes, 30);

    let (done_tx, done) = std::sync::mpsc::channel();
    for (i, o) in [a, b].into_iter().enumerate() {
        let (cache, done_tx) = (cache.clone(), done_tx.clone());
        std::thread::spawn(move || {
            done_tx.send(cache.flush_owner(&o).is_ok()).unwrap();
        });
        if i == 0 {
            // a0's write is under way (and held) before b flushes.
            entered.recv().unwrap();
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(cache.stats().dirty_bytes, 20, "both writes still pending");
    cache.purge(&c);
    for _ in 0..2 {
        let ok = done
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("a write-back waiting for room was never woken");
        assert!(ok);
    }
    assert_eq!(cache.stats().dirty_bytes, 0);
}

/// Issue 23 (fuzz target store_ops): after a failed flush, the dirty chunk
/// that cannot be written back stays in the cache; loads of another array
/// sharing the cache must not push resident bytes past the budget. The
/// fuzzer's sequence: a chunk made dirty, the store failing, a failed
/// flush, reads of another array (`Op::Evict`), a read of the dirty chunk
/// (which takes it back from eviction), more reads of the other array.
#[test]
fn loads_stay_within_budget_beside_chunks_that_cannot_be_written_back() {
    let cache = ChunkCache::new(10);
    let (a, store) = owner(&cache, 100, 10);
    let (other, _) = owner(&cache, 100, 10);
    cache
        .with_chunk(&a, &[0], Access::Update, |d| d[0] = 1)
        .unwrap();
    store.fail_after(0);
    assert!(cache.flush_owner(&a).is_err());
    let within = |what: &str| {
        let s = cache.stats();
        assert!(s.resident_bytes <= s.budget_bytes, "{what}: {s:?}");
    };
    for c in 0..3u64 {
        let v = cache
            .with_chunk(&other, &[c], Access::Read, |d| d[0])
            .unwrap();
        assert_eq!(v, 9);
        within("read of the other array");
        // The dirty chunk is still there, readable, and taken back from
        // eviction by the read.
        let v = cache.with_chunk(&a, &[0], Access::Read, |d| d[0]).unwrap();
        assert_eq!(v, 1);
        within("read of the dirty chunk");
    }
    // The other array's writes go to its store; the failed one refuses.
    cache
        .with_chunk(&other, &[5], Access::Update, |d| d[0] = 3)
        .unwrap();
    within("write of the other array");
    let v = cache
        .with_chunk(&other, &[5], Access::Read, |d| d[0])
        .unwrap();
    assert_eq!(v, 3, "a write around the cache reached the store");
    let err = cache
        .with_chunk(&a, &[1], Access::Overwrite, |_| ())
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    within("refused write");
    assert_eq!(cache.stats().dirty_bytes, 10, "the dirty chunk is kept");
    check_counts(&cache, &[&a, &other]);
}

/// The same without a flush: a write-back fails while making room for a
/// new chunk of the same array, which would then be cached dirty beside
/// the one that failed.
#[test]
fn a_write_that_finds_no_room_beside_a_failed_write_back_is_refused() {
    let cache = ChunkCache::new(10);
    let (a, store) = owner(&cache, 100, 10);
    cache
        .with_chunk(&a, &[0], Access::Overwrite, |d| d.fill(1))
        .unwrap();
    store.fail_after(0);
    let err = cache
        .with_chunk(&a, &[1], Access::Overwrite, |d| d.fill(2))
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    let s = cache.stats();
    assert!(s.resident_bytes <= s.budget_bytes, "{s:?}");
    assert_eq!(cache.peek(&a, &[0], |d| d[0]), Some(1));
    check_counts(&cache, &[&a]);
}

/// A memory store whose writes all fail, and whose next read fails if
/// `fail_read` is set (a disk that is full, with a read error once).
#[derive(Debug)]
struct WritesFail {
    inner: MemoryStore,
    fail_read: std::sync::atomic::AtomicBool,
}

impl ChunkStore for WritesFail {
    fn backend(&self) -> &'static str {
        "writes-fail"
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.inner.capabilities()
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        if self.fail_read.swap(false, Relaxed) {
            return Err(Error::invalid("injected read failure"));
        }
        self.inner.read_chunk(chunk)
    }
    fn write_chunk(&self, _: &[u64], _: &[u8]) -> Result<()> {
        Err(Error::invalid("injected write failure"))
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.inner.erase_chunk(chunk)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
}

/// Eviction after an access must not stop at a chunk whose write-back
/// fails: the chunk just loaded is still evictable, and is evicted.
#[test]
fn eviction_passes_over_a_chunk_that_cannot_be_written_back() {
    let cache = ChunkCache::new(10);
    let store = Arc::new(WritesFail {
        inner: MemoryStore::new(StoreMeta {
            dtype: DType::U8,
            shape: vec![100],
            chunks: vec![10],
            fill: vec![9],
        }),
        fail_read: false.into(),
    });
    let grid = ChunkGrid::new(&[100], &[10], 1).unwrap();
    let a = cache.register(store.clone(), grid, vec![9]);
    cache
        .with_chunk(&a, &[0], Access::Update, |d| d[0] = 1)
        .unwrap();
    // Making room for chunk 1 fails to write chunk 0 back, and chunk 1's
    // load fails too. Then chunk 0 is read (taken back from eviction) and
    // chunk 1 loaded. Before the fix, the failed load left chunk 1's entry
    // behind, unloaded: its second load made no room first, and the
    // eviction after it met chunk 0, failed, and stopped, leaving 20 bytes
    // resident in a budget of 10, one chunk dirty (the fuzzer's stats).
    store.fail_read.store(true, Relaxed);
    assert!(cache.with_chunk(&a, &[1], Access::Read, |_| ()).is_err());
    assert_eq!(
        cache.with_chunk(&a, &[0], Access::Read, |d| d[0]).unwrap(),
        1
    );
    assert_eq!(
        cache.with_chunk(&a, &[1], Access::Read, |d| d[0]).unwrap(),
        9
    );
    let s = cache.stats();
    assert!(s.resident_bytes <= s.budget_bytes, "{s:?}");
    assert_eq!(s.dirty_bytes, 10, "the dirty chunk is kept");
    check_counts(&cache, &[&a]);
}

/// An entry left unloaded by a failed load is found, not created, by the
/// next access: in the failed state it too gets room made first, and is
/// used around the cache if none is left.
#[test]
fn an_entry_left_by_a_failed_load_gets_no_room_beside_stranded_chunks() {
    let cache = ChunkCache::new(20);
    let writes_fail = || {
        let store = Arc::new(WritesFail {
            inner: MemoryStore::new(StoreMeta {
                dtype: DType::U8,
                shape: vec![100],
                chunks: vec![10],
                fill: vec![9],
            }),
            fail_read: false.into(),
        });
        let grid = ChunkGrid::new(&[100], &[10], 1).unwrap();
        (cache.register(store.clone(), grid, vec![9]), store)
    };
    let (a, _) = writes_fail();
    let (b, b_store) = writes_fail();
    b_store.fail_read.store(true, Relaxed);
    assert!(cache.with_chunk(&b, &[1], Access::Read, |_| ()).is_err());
    assert_eq!(cache.usage_of(&b), (0, 0, 1), "left unloaded");
    for c in [0, 3] {
        cache
            .with_chunk(&a, &[c], Access::Update, |d| d[0] = 1)
            .unwrap();
    }
    assert!(cache.flush_owner(&a).is_err(), "both chunks stranded");
    assert_eq!(cache.stats().dirty_bytes, 20);
    // b's write cannot be kept beside them: it goes to b's store, which
    // fails it.
    assert!(
        cache
            .with_chunk(&b, &[1], Access::Update, |d| d[0] = 2)
            .is_err()
    );
    let s = cache.stats();
    assert!(s.resident_bytes <= s.budget_bytes, "{s:?}");
    assert_eq!(s.dirty_bytes, 20);
    check_counts(&cache, &[&a, &b]);
}

/// A memory store for the write-behind tests: writes wait while its gate
/// is shut; it counts the writes that entered, records per write the
/// cache's dirty and resident + in-flight bytes and the chunk's first
/// eight bytes (a version number), and fails writes while `fail` is set.
#[derive(Debug)]
struct Held {
    inner: MemoryStore,
    cache: ChunkCache,
    shut: Mutex<bool>,
    changed: parking_lot::Condvar,
    entered: AtomicUsize,
    fail: AtomicBool,
    panics: AtomicBool,
    /// Writes do rayon work (as zarrs does for a shard) after the gate.
    nested: AtomicBool,
    /// Per write: (chunk, version, dirty bytes, resident + in flight).
    log: Mutex<Vec<(u64, u64, usize, usize)>>,
}

impl Held {
    /// A store of `n` chunks of 10 bytes, registered with `cache`.
    fn new(cache: &ChunkCache, n: u64, shut: bool) -> (Arc<Held>, Arc<Owner>) {
        let inner = MemoryStore::new(StoreMeta {
            dtype: DType::U8,
            shape: vec![n * 10],
            chunks: vec![10],
            fill: vec![0],
        });
        let held = Arc::new(Held {
            inner,
            cache: cache.clone(),
            shut: Mutex::new(shut),
            changed: parking_lot::Condvar::new(),
            entered: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            panics: AtomicBool::new(false),
            nested: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        });
        let grid = ChunkGrid::new(&[n * 10], &[10], 1).unwrap();
        let owner = cache.register(held.clone(), grid, vec![0]);
        (held, owner)
    }

    fn open(&self) {
        *self.shut.lock() = false;
        self.changed.notify_all();
    }

    /// Waits until `n` writes have entered the store.
    fn wait_entered(&self, n: usize) {
        let mut g = self.shut.lock();
        while self.entered.load(Relaxed) < n {
            self.changed.wait(&mut g);
        }
    }
}

impl ChunkStore for Held {
    fn backend(&self) -> &'static str {
        "held"
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }
    fn capabilities(&self) -> crate::store::Capabilities {
        self.inner.capabilities()
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.inner.read_chunk(chunk)
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        {
            let mut g = self.shut.lock();
            self.entered.fetch_add(1, Relaxed);
            self.changed.notify_all();
            while *g {
                self.changed.wait(&mut g);
            }
        }
        let s = self.cache.stats();
        let version = u64::from_le_bytes(data[..8].try_into().unwrap());
        self.log.lock().push((
            chunk[0],
            version,
            s.dirty_bytes,
            s.resident_bytes + s.in_flight_bytes,
        ));
        if self.fail.load(Relaxed) {
            return Err(Error::invalid("injected write failure"));
        }
        assert!(
            !self.panics.load(Relaxed),
            "injected panic in a store write"
        );
        if self.nested.load(Relaxed) {
            let (a, b) = rayon::join(|| data.len(), || chunk.len());
            assert_eq!((a, b), (10, 1));
        }
        self.inner.write_chunk(chunk, data)
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.inner.erase_chunk(chunk)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
}

/// A whole chunk of 10 bytes: `version` in the first eight, `tag` after.
fn versioned(version: u64, tag: u8) -> [u8; 10] {
    let mut d = [tag; 10];
    d[..8].copy_from_slice(&version.to_le_bytes());
    d
}

/// Waits until `done()` holds, failing the test after 20 s.
fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "waited 20 s in vain");
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

/// Runs `f` on another thread and returns its result, failing the test
/// (instead of hanging it) if it has not returned after 20 s.
fn returns<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the call did not return")
}

#[test]
fn a_whole_chunk_write_returns_before_its_store_write_ends() {
    let cache = ChunkCache::with_write_behind(1 << 20, 1);
    assert_eq!(cache.write_behind(), 1);
    let (store, o) = Held::new(&cache, 4, true);
    // The store holds every write until it is opened: the write returns
    // anyway, with the chunk cached dirty.
    let (c, o2) = (cache.clone(), o.clone());
    returns(move || c.write_through(&o2, &[1], &versioned(7, 1))).unwrap();
    assert_eq!(cache.stats().dirty_bytes, 10);
    // A writer thread took it and is held inside the store's write.
    store.wait_entered(1);
    assert_eq!(
        store.inner.chunk_count(),
        0,
        "the store write has not ended"
    );
    assert_eq!(cache.stats().queued_writes, 0);
    // Reads see the new data meanwhile (from the cache, after the
    // write-back under way: it holds the chunk lock).
    store.open();
    assert_eq!(
        cache
            .with_chunk(&o, &[1], Access::Read, |d| d.to_vec())
            .unwrap(),
        versioned(7, 1)
    );
    cache.flush_owner(&o).unwrap();
    let s = cache.stats();
    assert_eq!(
        (s.background_writes, s.write_throughs, s.dirty_bytes),
        (1, 0, 0)
    );
    assert_eq!(
        store.inner.reopen().read_chunk(&[1]).unwrap().unwrap()[..],
        versioned(7, 1)
    );
    check_counts(&cache, &[&o]);
}

#[test]
fn write_behind_is_off_for_stores_without_parallel_writes() {
    let cache = ChunkCache::with_write_behind(1 << 20, 1);
    let store = Probe::new(&cache, 40, |c| crate::store::Capabilities {
        parallel_writes: false,
        ..c
    });
    let grid = ChunkGrid::new(&[40], &[10], 1).unwrap();
    let o = cache.register(store.clone(), grid, vec![9]);
    assert!(!o.behind);
    cache.write_through(&o, &[0], &[5; 10]).unwrap();
    let s = cache.stats();
    assert_eq!((s.write_throughs, s.resident_bytes), (1, 0), "{s:?}");
    assert_eq!(store.inner.chunk_count(), 1, "written before returning");
    // And off in a cache made without it.
    let plain = ChunkCache::new(1 << 20);
    let (o, _) = owner(&plain, 40, 10);
    assert!(!o.behind);
    assert_eq!(plain.write_behind(), 0);
}

#[test]
fn writers_wait_when_dirty_chunks_fill_the_budget() {
    // Room for three chunks; the store holds every write.
    let cache = ChunkCache::with_write_behind(30, 1);
    let (store, o) = Held::new(&cache, 8, true);
    for c in 0..3u64 {
        let (cache, o) = (cache.clone(), o.clone());
        returns(move || cache.write_through(&o, &[c], &versioned(c, 1))).unwrap();
    }
    store.wait_entered(1);
    let s = cache.stats();
    assert_eq!((s.dirty_bytes, s.resident_bytes), (30, 30), "{s:?}");
    // A fourth chunk needs room: the oldest is being written back (its
    // chunk lock is held), the others are dirty; the write must wait for
    // a write-back to end, and none can while the store is shut.
    let (done_tx, done) = std::sync::mpsc::channel();
    let (c, o2) = (cache.clone(), o.clone());
    std::thread::spawn(move || {
        done_tx
            .send(c.write_through(&o2, &[3], &versioned(3, 1)))
            .unwrap();
    });
    // Not a timing assertion: with the store shut the write cannot have
    // returned, however long we look.
    assert!(
        done.recv_timeout(std::time::Duration::from_millis(100))
            .is_err(),
        "a write returned with the budget full of dirty chunks"
    );
    let s = cache.stats();
    assert!(s.dirty_bytes <= 30 && s.resident_bytes <= 30, "{s:?}");
    store.open();
    done.recv_timeout(std::time::Duration::from_secs(20))
        .expect("the waiting write was never let go")
        .unwrap();
    // More writes, then everything is durable after the flush.
    for c in 4..8u64 {
        cache.write_through(&o, &[c], &versioned(c, 1)).unwrap();
        let s = cache.stats();
        assert!(s.resident_bytes <= 30, "{s:?}");
    }
    cache.flush_owner(&o).unwrap();
    // Inside every store write, dirty and resident + in-flight bytes were
    // within the budget.
    let log = store.log.lock().clone();
    assert!(
        log.iter()
            .all(|&(_, _, dirty, used)| dirty <= 30 && used <= 30),
        "{log:?}"
    );
    let back = store.inner.reopen();
    for c in 0..8u64 {
        assert_eq!(back.read_chunk(&[c]).unwrap().unwrap()[..], versioned(c, 1));
    }
    check_counts(&cache, &[&o]);
}

#[test]
fn a_failed_background_write_poisons_and_surfaces_at_the_next_write_and_flush() {
    let cache = ChunkCache::with_write_behind(1 << 20, 2);
    let (store, o) = Held::new(&cache, 4, false);
    store.fail.store(true, Relaxed);
    // The write returns Ok: its store write runs later.
    cache.write_through(&o, &[2], &versioned(1, 2)).unwrap();
    // Wait (not a timing assertion) until the background write failed.
    wait_until(|| o.check_writable().is_err());
    let err = cache.write_through(&o, &[3], &versioned(1, 3)).unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    assert!(
        err.to_string()
            .contains("background write-back of chunk [2] failed"),
        "{err}"
    );
    let err = cache
        .with_chunk(&o, &[0], Access::Update, |d| d[0] = 1)
        .unwrap_err();
    assert!(matches!(err, Error::Poisoned(_)), "{err}");
    // Flush fails even once the store works again (fail closed), and the
    // data stays readable from the cache.
    assert!(cache.flush_owner(&o).is_err());
    store.fail.store(false, Relaxed);
    assert!(cache.flush_owner(&o).is_err());
    assert_eq!(
        cache.peek(&o, &[2], |d| d.to_vec()),
        Some(versioned(1, 2).to_vec())
    );
    check_counts(&cache, &[&o]);
}

#[test]
fn rewrites_of_one_chunk_reach_the_store_in_order_and_the_last_wins() {
    // Two writer threads, rewrites of one chunk while its write-backs run:
    // the store must never see a version older than one it saw before,
    // and the durable value must be the last.
    let cache = ChunkCache::with_write_behind(1 << 20, 2);
    let (store, o) = Held::new(&cache, 4, false);
    for v in 1..=2000u64 {
        cache.write_through(&o, &[1], &versioned(v, 1)).unwrap();
        if v % 50 == 0 {
            // Let the writers catch up now and then, so that rewrites
            // meet write-backs under way (a wait, not a timing assertion).
            wait_until(|| cache.stats().background_writes >= v / 50);
        }
        if v % 7 == 0 {
            // Whole-chunk writes through the closure path too.
            cache
                .with_chunk(&o, &[1], Access::Overwrite, |d| {
                    d.copy_from_slice(&versioned(v, 1))
                })
                .unwrap();
        }
    }
    cache.flush_owner(&o).unwrap();
    let log = store.log.lock().clone();
    let versions: Vec<u64> = log.iter().filter(|w| w.0 == 1).map(|w| w.1).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{versions:?}");
    assert_eq!(versions.last(), Some(&2000));
    assert!(cache.stats().background_writes > 0);
    assert_eq!(
        store.inner.reopen().read_chunk(&[1]).unwrap().unwrap()[..],
        versioned(2000, 1)
    );
    check_counts(&cache, &[&o]);
}

#[test]
fn write_behind_under_several_threads_loses_nothing_and_keeps_the_budget() {
    // 4 threads rewrite their own 4 chunks each (of 16) 200 times, whole,
    // while 2 writer threads write back and a reader reads; the budget
    // holds 5 chunks, so writers wait and evict constantly.
    const THREADS: u64 = 4;
    let cache = ChunkCache::with_write_behind(50, 2);
    let (store, o) = Held::new(&cache, 16, false);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (cache, o) = (&cache, &o);
            s.spawn(move || {
                for round in 1..=200u64 {
                    let c = t * 4 + round % 4;
                    cache
                        .write_through(o, &[c], &versioned(round, t as u8))
                        .unwrap();
                }
            });
        }
        let (cache, o) = (&cache, &o);
        s.spawn(move || {
            for round in 0..400u64 {
                let d = cache
                    .with_chunk(o, &[round % 16], Access::Read, |d| d.to_vec())
                    .unwrap();
                // Whole: the fill value, or one write's tag throughout.
                assert!(d[8..].iter().all(|&x| x == d[9]), "{d:?}");
            }
        });
    });
    cache.flush_owner(&o).unwrap();
    let back = store.inner.reopen();
    for c in 0..16u64 {
        let t = (c / 4) as u8;
        // The last round that wrote chunk c: round % 4 == c % 4.
        let last = (1..=200u64).filter(|r| r % 4 == c % 4).max().unwrap();
        assert_eq!(
            back.read_chunk(&[c]).unwrap().unwrap()[..],
            versioned(last, t),
            "chunk {c}"
        );
    }
    // Known slack of several writers (docs/reliability.md): each thread may
    // add one chunk the others did not make room for.
    let log = store.log.lock().clone();
    let bound = 50 + THREADS as usize * 10;
    assert!(log.iter().all(|w| w.3 <= bound), "{log:?}");
    check_counts(&cache, &[&o]);
}

#[test]
fn closing_forgets_queued_jobs_and_the_writers_let_go_of_the_store() {
    let cache = ChunkCache::with_write_behind(1 << 20, 1);
    let (store, o) = Held::new(&cache, 4, true);
    for c in 0..4u64 {
        cache.write_through(&o, &[c], &versioned(c, 1)).unwrap();
    }
    store.wait_entered(1);
    store.open();
    cache.flush_owner(&o).unwrap();
    cache.purge(&o);
    // Only this test, the owner and the registration hold the store now:
    // no job or writer thread does.
    drop(o);
    assert_eq!(Arc::strong_count(&store), 1);
    assert_eq!(cache.stats().queued_writes, 0);
}

#[test]
fn a_store_that_panics_in_a_background_write_closes_the_array_and_keeps_the_writer() {
    let cache = ChunkCache::with_write_behind(1 << 20, 1);
    let (store, o) = Held::new(&cache, 4, false);
    store.panics.store(true, Relaxed);
    cache.write_through(&o, &[0], &versioned(1, 1)).unwrap();
    wait_until(|| o.check_writable().is_err());
    let err = cache.write_through(&o, &[1], &versioned(1, 1)).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    // The writer thread survived: another array's chunk is written back.
    store.panics.store(false, Relaxed);
    let (other, b) = Held::new(&cache, 4, false);
    cache.write_through(&b, &[2], &versioned(5, 2)).unwrap();
    wait_until(|| cache.stats().background_writes == 1);
    assert_eq!(other.inner.chunk_count(), 1);
    // Closing does not wait for a writer that is gone.
    assert!(cache.flush_owner(&o).is_err());
    cache.purge(&o);
}

/// A store that uses rayon inside `write_chunk`, while every thread of the
/// global pool waits for the chunk lock the background write holds: the
/// store's rayon work must not need the global pool (it runs on the
/// writers' own), or nothing would ever run it.
#[test]
fn rayon_work_inside_a_background_write_does_not_need_the_global_pool() {
    let cache = ChunkCache::with_write_behind(1 << 20, 1);
    let (store, o) = Held::new(&cache, 4, true);
    store.nested.store(true, Relaxed);
    cache.write_through(&o, &[0], &versioned(1, 1)).unwrap();
    store.wait_entered(1);
    // Every global worker blocks on chunk 0's lock, held by the writer.
    let n = rayon::current_num_threads();
    let (tx, done) = std::sync::mpsc::channel();
    for _ in 0..n {
        let (cache, o, tx) = (cache.clone(), o.clone(), tx.clone());
        rayon::spawn(move || {
            let r = cache.with_chunk(&o, &[0], Access::Update, |d| d[9] = 2);
            tx.send(r.is_ok()).unwrap();
        });
    }
    // Time for them to block (a setup delay: too short only makes the
    // test weaker, never fail wrongly).
    std::thread::sleep(std::time::Duration::from_millis(100));
    store.open();
    for _ in 0..n {
        let ok = done
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the global pool deadlocked behind a background write");
        assert!(ok);
    }
    cache.flush_owner(&o).unwrap();
    assert_eq!(
        store.inner.reopen().read_chunk(&[0]).unwrap().unwrap()[9],
        2
    );
}
