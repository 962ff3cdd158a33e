//! Unit tests of the chunk cache.

use super::*;
use crate::DType;
use crate::store::{MemoryStore, StoreMeta};

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
