//! The chunk cache: one byte budget over decoded chunks of any number of
//! arrays, write-back, parallel flush.
//!
//! # Structure
//!
//! Entries live in `SHARDS` hash-sharded [`LruCache`]s, each behind its own
//! short-lived mutex (the shard lock). The byte budget is global: when the
//! cache holds more than its budget, the entry least recently used across
//! all shards is evicted (each shard's LRU tail is compared by a global
//! use tick), written back first if dirty.
//!
//! Each entry has its own mutex (the chunk lock) around its data. It is the
//! single-flight mechanism: the first thread to lock an unloaded entry loads
//! it from the store while holding the chunk lock; every other thread asking
//! for the same chunk waits on that lock and then finds the data there. So
//! concurrent loads of one chunk collapse into one read.
//!
//! # Invariants
//!
//! - A shard lock is never held across store I/O, and never held while
//!   waiting for a chunk lock (lock order: chunk lock, then shard lock).
//! - An entry is findable (in a shard's `lru` or `evicting` map) for as long
//!   as it may hold data that is not in the store. An evicted dirty entry
//!   stays in `evicting` until its write-back completes; a lookup that finds
//!   it there takes it back (resurrects it) instead of reading stale data
//!   from the store.
//! - Once `detached` is set (under the chunk lock), the entry is in no map
//!   and holds no data; a thread that locks a detached entry looks it up
//!   again.
//! - `resident` counts the bytes of every entry's data, in maps or being
//!   evicted; `dirty` the bytes of entries whose data is newer than the
//!   store's.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lru::LruCache;
use parking_lot::{Condvar, Mutex};
use rayon::prelude::*;

use crate::buffer::{ChunkBuf, fill_with};
use crate::chunk_grid::ChunkGrid;
use crate::error::{Error, Result};
use crate::layout::Small;
use crate::store::ChunkStore;

/// Default cache budget: 256 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

const SHARDS: usize = 16;

/// A byte-budgeted LRU cache of decoded chunks, shareable between arrays.
/// Cloning is cheap and shares the cache.
#[derive(Clone)]
pub struct ChunkCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes the cache tries to stay under.
    budget: usize,
    /// Bytes of chunk data held (see the module invariants).
    resident: AtomicUsize,
    /// Bytes of chunk data newer than the store's.
    dirty: AtomicUsize,
    /// Bytes of store write buffers (encoded copies) reserved by write-backs
    /// and flushes under way, and of decode buffers of loads under way.
    in_flight: AtomicUsize,
    /// The largest write buffer of any array registered: eviction keeps
    /// this much of the budget free, so that the next write-back fits.
    headroom: AtomicUsize,
    /// Guards waiting for `in_flight` to shrink.
    flight: Mutex<()>,
    flight_done: Condvar,
    /// Global use clock; entries record it on every access.
    clock: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    writebacks: AtomicU64,
    write_throughs: AtomicU64,
    next_owner: AtomicU64,
}

struct Shard {
    lru: LruCache<Key, Arc<Entry>, KeyHash>,
    /// Evicted entries whose write-back has not finished.
    evicting: HashMap<Key, Arc<Entry>, KeyHash>,
}

/// Hashes a [`Key`] (two integers, ours, not an attacker's) with one
/// multiply-rotate step per word, as rustc's FxHash does, instead of the
/// default SipHash: the shard maps are looked up on every cached `get`,
/// and SipHash was a good part of the ~60 instructions `LruCache::get`
/// took per call (callgrind, `examples/get_hot`).
#[derive(Clone, Copy, Default)]
struct KeyHash;

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    owner: u64,
    chunk: u64,
}

/// What the cache knows of one open array: its store, grid and fill value,
/// and its share of the cache.
pub(crate) struct Owner {
    pub(crate) id: u64,
    pub(crate) store: Arc<dyn ChunkStore>,
    pub(crate) grid: ChunkGrid,
    /// One element, native order.
    pub(crate) fill: Vec<u8>,
    /// Set after a failed write-back or flush: further writes are refused.
    poison: Mutex<Option<String>>,
    /// Bytes the store allocates while writing one chunk
    /// ([`Capabilities::write_buffer_bytes`](crate::store::Capabilities::write_buffer_bytes)).
    write_buffer: usize,
    resident: AtomicUsize,
    dirty: AtomicUsize,
    entries: AtomicUsize,
    /// Chunks were written to the store since its last successful flush.
    unsynced: AtomicBool,
    /// The store refuses writes ([`Capabilities::read_only`]): nothing of
    /// this owner is ever dirty or written back.
    ///
    /// [`Capabilities::read_only`]: crate::store::Capabilities::read_only
    read_only: bool,
    /// Bytes a load holds beside the chunk while it decodes
    /// ([`Capabilities::decodes`]): a chunk's size, or 0.
    ///
    /// [`Capabilities::decodes`]: crate::store::Capabilities::decodes
    load_scratch: usize,
    /// Loads may go into a recycled buffer
    /// ([`Capabilities::reads_into`]).
    ///
    /// [`Capabilities::reads_into`]: crate::store::Capabilities::reads_into
    reads_into: bool,
}

impl Owner {
    /// Refuses a write to a store opened read-only, or after a failed
    /// write-back ([`check_writable`](Self::check_writable)).
    pub(crate) fn check_can_write(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::Store {
                backend: self.store.backend(),
                message: "cannot write: the array was opened read-only".into(),
            });
        }
        self.check_writable()
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match &*self.poison.lock() {
            Some(why) => Err(Error::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn poison(&self, why: String) {
        let mut p = self.poison.lock();
        if p.is_none() {
            *p = Some(why);
        }
    }

    fn chunk_bytes(&self) -> usize {
        self.grid.chunk_elements() * self.fill.len()
    }

    /// A chunk buffer holding the fill value everywhere: `spare` refilled
    /// if there is one (a buffer just evicted, of this chunk's size).
    fn fill_buffer(&self, spare: Option<ChunkBuf>) -> ChunkBuf {
        match spare {
            Some(mut b) if b.len() == self.chunk_bytes() => {
                fill_with(&mut b, &self.fill);
                b
            }
            _ => ChunkBuf::filled(self.chunk_bytes(), &self.fill),
        }
    }
}

/// What [`ChunkCache::retire`] did with its entry.
enum Retired {
    /// The write-back failed; the entry stays.
    Failed,
    /// Written back if it was dirty, and detached unless it was used
    /// again meanwhile; with its buffer if the caller asked for that size.
    Done(Option<ChunkBuf>),
}

/// Bytes counted in flight until dropped ([`ChunkCache::reserve`]).
struct Reserved<'a> {
    cache: &'a ChunkCache,
    bytes: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let i = &self.cache.inner;
        let _g = i.flight.lock();
        i.in_flight.fetch_sub(self.bytes, Relaxed);
        i.flight_done.notify_all();
    }
}

struct Entry {
    key: Key,
    owner: Arc<Owner>,
    coord: Small<u64>,
    last_use: AtomicU64,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// Decoded chunk (full chunk shape); `None` until loaded.
    data: Option<ChunkBuf>,
    /// `data` is newer than the store's copy.
    dirty: bool,
    /// Removed from the cache; look the chunk up again.
    detached: bool,
}

/// How a caller uses a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only.
    Read,
    /// Modify part of the chunk: load it first, mark it dirty.
    Update,
    /// Replace every element inside the array: never read it from the store.
    Overwrite,
}

/// Counters and gauges of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Accesses served from memory.
    pub hits: u64,
    /// Accesses that read a chunk from its store.
    pub misses: u64,
    /// Chunks dropped to stay within the budget.
    pub evictions: u64,
    /// Dirty chunks written back on eviction.
    pub writebacks: u64,
    /// Whole chunks written straight to their store, never cached
    /// (the array's write-through of large whole chunks).
    pub write_throughs: u64,
    /// Bytes of decoded chunks held now.
    pub resident_bytes: usize,
    /// Bytes of held chunks not yet written to their store.
    pub dirty_bytes: usize,
    /// Bytes of store write buffers (encoded copies) of write-backs under
    /// way, and of stored bytes that loads under way decode from.
    /// `resident_bytes + in_flight_bytes` is what the budget covers.
    pub in_flight_bytes: usize,
    /// The byte budget.
    pub budget_bytes: usize,
    /// Chunks held now.
    pub entries: usize,
}

impl fmt::Debug for ChunkCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for ChunkCache {
    fn default() -> Self {
        ChunkCache::new(DEFAULT_CACHE_BYTES)
    }
}

fn shard_of(key: &Key) -> usize {
    // splitmix64 finaliser over both halves of the key.
    let mut z = key
        .owner
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key.chunk);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % SHARDS as u64) as usize
}

impl ChunkCache {
    /// A cache that keeps at most about `budget_bytes` of decoded chunks.
    /// A budget smaller than one chunk works: each access then loads,
    /// uses and writes back its chunk.
    pub fn new(budget_bytes: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    lru: LruCache::unbounded_with_hasher(KeyHash),
                    evicting: HashMap::with_hasher(KeyHash),
                })
            })
            .collect();
        ChunkCache {
            inner: Arc::new(CacheInner {
                shards,
                budget: budget_bytes,
                resident: AtomicUsize::new(0),
                dirty: AtomicUsize::new(0),
                in_flight: AtomicUsize::new(0),
                headroom: AtomicUsize::new(0),
                flight: Mutex::new(()),
                flight_done: Condvar::new(),
                clock: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
                writebacks: AtomicU64::new(0),
                write_throughs: AtomicU64::new(0),
                next_owner: AtomicU64::new(1),
            }),
        }
    }

    /// The process-wide cache arrays share when none is given
    /// ([`DEFAULT_CACHE_BYTES`]).
    pub fn global() -> ChunkCache {
        static GLOBAL: OnceLock<ChunkCache> = OnceLock::new();
        GLOBAL.get_or_init(ChunkCache::default).clone()
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.inner.budget
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        let i = &self.inner;
        CacheStats {
            hits: i.hits.load(Relaxed),
            misses: i.misses.load(Relaxed),
            evictions: i.evictions.load(Relaxed),
            writebacks: i.writebacks.load(Relaxed),
            write_throughs: i.write_throughs.load(Relaxed),
            resident_bytes: i.resident.load(Relaxed),
            dirty_bytes: i.dirty.load(Relaxed),
            in_flight_bytes: i.in_flight.load(Relaxed),
            budget_bytes: i.budget,
            entries: i
                .shards
                .iter()
                .map(|s| {
                    let g = s.lock();
                    g.lru.len() + g.evicting.len()
                })
                .sum(),
        }
    }

    /// Whether two handles share one cache.
    pub fn same_as(&self, other: &ChunkCache) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn register(
        &self,
        store: Arc<dyn ChunkStore>,
        grid: ChunkGrid,
        fill: Vec<u8>,
    ) -> Arc<Owner> {
        let write_buffer = store.capabilities().write_buffer_bytes;
        self.inner.headroom.fetch_max(write_buffer, Relaxed);
        let caps = store.capabilities();
        let load_scratch = if caps.decodes {
            grid.chunk_elements() * fill.len()
        } else {
            0
        };
        Arc::new(Owner {
            id: self.inner.next_owner.fetch_add(1, Relaxed),
            store,
            grid,
            fill,
            poison: Mutex::new(None),
            write_buffer,
            resident: AtomicUsize::new(0),
            dirty: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            unsynced: AtomicBool::new(false),
            read_only: caps.read_only,
            load_scratch,
            reads_into: caps.reads_into,
        })
    }

    fn key(owner: &Owner, coord: &[u64]) -> Key {
        Key {
            owner: owner.id,
            chunk: owner.grid.linear_index(coord),
        }
    }

    fn tick(&self, e: &Entry) {
        e.last_use
            .store(self.inner.clock.fetch_add(1, Relaxed), Relaxed);
    }

    /// Finds or creates the entry for a chunk (creating it unloaded); the
    /// flag says whether it was created.
    fn entry(&self, owner: &Arc<Owner>, coord: &[u64]) -> (Arc<Entry>, bool) {
        let key = Self::key(owner, coord);
        let mut g = self.inner.shards[shard_of(&key)].lock();
        if let Some(e) = g.lru.get(&key) {
            return (e.clone(), false);
        }
        if let Some(e) = g.evicting.remove(&key) {
            // Resurrect: its write-back (if any) completes under the chunk
            // lock before we can use it, and it stays attached.
            g.lru.put(key, e.clone());
            return (e, false);
        }
        let e = Arc::new(Entry {
            key,
            owner: owner.clone(),
            coord: coord.into(),
            last_use: AtomicU64::new(self.inner.clock.fetch_add(1, Relaxed)),
            slot: Mutex::new(Slot::default()),
        });
        owner.entries.fetch_add(1, Relaxed);
        g.lru.put(key, e.clone());
        (e, true)
    }

    /// Runs `f` on the decoded chunk, loading it first unless `access` is
    /// [`Access::Overwrite`]; marks it dirty unless `access` is
    /// [`Access::Read`]. Evicts afterwards if over budget.
    pub(crate) fn with_chunk<R>(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        access: Access,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        if access != Access::Read {
            owner.check_can_write()?;
        }
        // The buffer of a chunk evicted to make room for this one, if it
        // has this chunk's size: the load or the fill reuses it instead of
        // mapping (and faulting in) a fresh one: perf on random tiles of a
        // 20-plane lz4 array put a third of their time in those faults.
        let mut spare = None;
        let r = loop {
            let (e, created) = self.entry(owner, coord);
            // A load that decodes holds the stored bytes beside the chunk
            // until it is done.
            let scratch = if access == Access::Overwrite {
                0
            } else {
                owner.load_scratch
            };
            if created {
                // Evict before the new chunk's bytes arrive, so that
                // streaming work does not overshoot the budget by a chunk
                // per thread. No lock is held here.
                let need = owner.chunk_bytes() + scratch;
                spare = self.make_room_recycling(need, Some(&e), owner.chunk_bytes());
            }
            let mut slot = e.slot.lock();
            if slot.detached {
                continue;
            }
            self.tick(&e);
            if slot.data.is_none() {
                let data = if access == Access::Overwrite {
                    owner.fill_buffer(spare.take())
                } else {
                    self.inner.misses.fetch_add(1, Relaxed);
                    // Counted in flight for the load only: write-backs wait
                    // for the bytes in flight to shrink, holding their
                    // victim's slot, so this must be held while nothing
                    // else is waited for (not while evicting above, nor
                    // while waiting for this slot).
                    let _scratch = self.reserve(owner.load_scratch);
                    self.load(owner, coord, spare.take())?
                };
                self.inner.resident.fetch_add(data.len(), Relaxed);
                owner.resident.fetch_add(data.len(), Relaxed);
                slot.data = Some(data);
            } else {
                self.inner.hits.fetch_add(1, Relaxed);
            }
            let data = slot.data.as_mut().expect("loaded above");
            let len = data.len();
            let r = f(data);
            if access != Access::Read && !slot.dirty {
                slot.dirty = true;
                self.inner.dirty.fetch_add(len, Relaxed);
                owner.dirty.fetch_add(len, Relaxed);
            }
            break r;
        };
        self.make_room();
        Ok(r)
    }

    /// Runs `f(Some(chunk))` if the chunk is in memory; otherwise runs
    /// `f(None)` (which reads what it needs from the store itself) while
    /// holding the chunk's lock, so that no write-back of this chunk runs
    /// at the same time. The chunk is not loaded into the cache.
    pub(crate) fn read_or_else<R>(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        f: impl FnOnce(Option<&[u8]>) -> Result<R>,
    ) -> Result<R> {
        if owner.read_only {
            // No write-back of this owner's chunks can ever run, so there
            // is nothing to keep out: look the chunk up, and read from the
            // store without a placeholder entry (its allocation, LRU
            // insertion and removal were a tenth of a warm tile's
            // instructions).
            let key = Self::key(owner, coord);
            let e = self.inner.shards[shard_of(&key)]
                .lock()
                .lru
                .get(&key)
                .cloned();
            if let Some(e) = e {
                let slot = e.slot.lock();
                if let Some(d) = slot.data.as_deref().filter(|_| !slot.detached) {
                    self.tick(&e);
                    self.inner.hits.fetch_add(1, Relaxed);
                    return f(Some(d));
                }
            }
            return f(None);
        }
        loop {
            let (e, created) = self.entry(owner, coord);
            let mut slot = e.slot.lock();
            if slot.detached {
                continue;
            }
            if let Some(d) = &slot.data {
                self.tick(&e);
                self.inner.hits.fetch_add(1, Relaxed);
                return f(Some(d));
            }
            let r = f(None);
            if created {
                self.drop_placeholder(&e, &mut slot);
            }
            return r;
        }
    }

    /// Replaces a whole chunk with `data` (the chunk's decoded bytes, C
    /// order over the full chunk shape). A chunk in memory is overwritten
    /// there and marked dirty, as [`with_chunk`](Self::with_chunk) would.
    /// Otherwise `data` goes straight to the store, under the chunk's lock
    /// and with the store's write buffer counted in the budget like any
    /// write-back, and is not cached: one copy instead of two (caller to
    /// cache buffer, then cache buffer to store), no fresh buffer to
    /// fault in, and nothing else evicted to make room. A failed write
    /// poisons the owner, like a failed write-back.
    pub(crate) fn write_through(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        data: &[u8],
    ) -> Result<()> {
        owner.check_can_write()?;
        if data.len() != owner.chunk_bytes() {
            return Err(Error::invalid(format!(
                "a whole chunk is {} bytes, {} given",
                owner.chunk_bytes(),
                data.len()
            )));
        }
        loop {
            let (e, created) = self.entry(owner, coord);
            let mut slot = e.slot.lock();
            if slot.detached {
                continue;
            }
            if let Some(d) = slot.data.as_mut() {
                self.tick(&e);
                self.inner.hits.fetch_add(1, Relaxed);
                d.copy_from_slice(data);
                if !slot.dirty {
                    slot.dirty = true;
                    self.inner.dirty.fetch_add(data.len(), Relaxed);
                    owner.dirty.fetch_add(data.len(), Relaxed);
                }
                return Ok(());
            }
            let r = self.write_back(owner, coord, data);
            match &r {
                Ok(()) => {
                    owner.unsynced.store(true, Relaxed);
                    self.inner.write_throughs.fetch_add(1, Relaxed);
                }
                Err(err) => owner.poison(format!("write of chunk {coord:?} failed: {err}")),
            }
            if created {
                self.drop_placeholder(&e, &mut slot);
            }
            return r;
        }
    }

    /// Removes an entry this thread created and left empty, so that
    /// uncached reads and writes do not pile up entries (lock order:
    /// chunk, then shard).
    fn drop_placeholder(&self, e: &Arc<Entry>, slot: &mut Slot) {
        if slot.data.is_some() {
            return;
        }
        let mut g = self.inner.shards[shard_of(&e.key)].lock();
        if g.lru.peek(&e.key).is_some_and(|x| Arc::ptr_eq(x, e)) {
            g.lru.pop(&e.key);
            drop(g);
            self.detach(e, slot);
        }
    }

    /// Runs `f` on the chunk if it is in memory; never loads it.
    #[cfg(test)]
    pub(crate) fn peek<R>(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let key = Self::key(owner, coord);
        let e = {
            let mut g = self.inner.shards[shard_of(&key)].lock();
            match g.lru.get(&key) {
                Some(e) => e.clone(),
                None => g.evicting.get(&key)?.clone(),
            }
        };
        let slot = e.slot.lock();
        if slot.detached {
            return None;
        }
        let data = slot.data.as_ref()?;
        self.tick(&e);
        self.inner.hits.fetch_add(1, Relaxed);
        Some(f(data))
    }

    /// Reads a chunk from its store: into `spare` if the store reads
    /// straight into a buffer, else into one of the store's own (`spare`
    /// is then dropped first).
    fn load(&self, owner: &Owner, coord: &[u64], spare: Option<ChunkBuf>) -> Result<ChunkBuf> {
        if let Some(mut buf) = spare.filter(|b| owner.reads_into && b.len() == owner.chunk_bytes())
        {
            if !owner.store.read_chunk_into(coord, &mut buf)? {
                fill_with(&mut buf, &owner.fill);
            }
            return Ok(buf);
        }
        match owner.store.read_chunk(coord)? {
            None => Ok(owner.fill_buffer(None)),
            Some(d) if d.len() == owner.chunk_bytes() => Ok(d),
            Some(d) => Err(Error::Store {
                backend: owner.store.backend(),
                message: format!(
                    "chunk {coord:?} decoded to {} bytes, {} expected",
                    d.len(),
                    owner.chunk_bytes()
                ),
            }),
        }
    }

    /// Evicts least recently used entries until the cache is within budget.
    fn make_room(&self) {
        self.make_room_for(0, None);
    }

    /// Evicts least recently used entries until `need` more bytes fit in
    /// the budget (or nothing is left to evict), never evicting `keep`.
    ///
    /// The budget covers chunk data and the write buffers of write-backs
    /// under way: eviction stops only when `need` bytes fit beside the
    /// resident data, the buffers in flight, and the headroom one more
    /// write-back's buffer needs (so a write-back that starts when the
    /// cache is full still fits).
    fn make_room_for(&self, need: usize, keep: Option<&Arc<Entry>>) {
        self.make_room_recycling(need, keep, usize::MAX);
    }

    /// [`make_room_for`](Self::make_room_for), returning the buffer of the
    /// first chunk it evicts that is `len` bytes long instead of dropping
    /// it. While the caller holds it, the buffer is not counted as
    /// resident: it stands for the chunk about to be loaded, for which
    /// room was just made.
    fn make_room_recycling(
        &self,
        need: usize,
        keep: Option<&Arc<Entry>>,
        len: usize,
    ) -> Option<ChunkBuf> {
        let mut spare = None;
        loop {
            let resident = self.inner.resident.load(Relaxed);
            let in_flight = self.inner.in_flight.load(Relaxed);
            let headroom = self.inner.headroom.load(Relaxed);
            if resident + in_flight + need + headroom <= self.inner.budget || resident == 0 {
                return spare;
            }
            let Some(victim) = self.pop_victim(keep) else {
                return spare;
            };
            let want = if spare.is_none() { len } else { usize::MAX };
            match self.retire(&victim, want) {
                Retired::Failed => return spare,
                Retired::Done(None) => {}
                Retired::Done(b) => spare = b,
            }
        }
    }

    /// Moves the globally least recently used entry (other than `keep`) to
    /// its shard's `evicting` map and returns it.
    fn pop_victim(&self, keep: Option<&Arc<Entry>>) -> Option<Arc<Entry>> {
        let is_kept = |e: &Arc<Entry>| keep.is_some_and(|k| Arc::ptr_eq(k, e));
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in self.inner.shards.iter().enumerate() {
            let g = s.lock();
            if let Some((_, e)) = g.lru.peek_lru() {
                let t = e.last_use.load(Relaxed);
                if !is_kept(e) && best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((i, t));
                }
            }
        }
        let (i, _) = best?;
        let mut g = self.inner.shards[i].lock();
        let (k, e) = g.lru.pop_lru()?;
        if is_kept(&e) {
            // It became the shard's tail since we looked; put it back.
            g.lru.put(k, e);
            return None;
        }
        g.evicting.insert(k, e.clone());
        Some(e)
    }

    /// Writes an evicted entry back if dirty, then detaches it unless it was
    /// resurrected meanwhile, handing back its buffer if that is `want`
    /// bytes long. Fails if the write-back failed (the entry then stays
    /// findable and dirty, and its owner is poisoned).
    fn retire(&self, e: &Arc<Entry>, want: usize) -> Retired {
        let mut slot = e.slot.lock();
        if slot.dirty {
            let data = slot.data.as_ref().expect("dirty entries hold data");
            match self.write_back(&e.owner, &e.coord, data) {
                Ok(()) => {
                    e.owner.unsynced.store(true, Relaxed);
                    let len = data.len();
                    slot.dirty = false;
                    self.inner.dirty.fetch_sub(len, Relaxed);
                    e.owner.dirty.fetch_sub(len, Relaxed);
                    self.inner.writebacks.fetch_add(1, Relaxed);
                }
                Err(err) => {
                    e.owner
                        .poison(format!("write-back of chunk {:?} failed: {err}", e.coord));
                    return Retired::Failed;
                }
            }
        }
        let mut g = self.inner.shards[shard_of(&e.key)].lock();
        let still_evicting = g.evicting.get(&e.key).is_some_and(|x| Arc::ptr_eq(x, e));
        if still_evicting {
            g.evicting.remove(&e.key);
            drop(g);
            let data = self.detach(e, &mut slot);
            self.inner.evictions.fetch_add(1, Relaxed);
            return Retired::Done(data.filter(|d| d.len() == want));
        }
        Retired::Done(None)
    }

    /// Writes one chunk to its store, with the store's write buffer
    /// reserved in the budget for the duration: waits while other write
    /// buffers in flight leave no room for it (one write always proceeds).
    fn write_back(&self, owner: &Owner, coord: &[u64], data: &[u8]) -> Result<()> {
        let r = owner.write_buffer;
        if r > 0 {
            let i = &self.inner;
            let mut g = i.flight.lock();
            loop {
                let in_flight = i.in_flight.load(Relaxed);
                if in_flight == 0 || i.resident.load(Relaxed) + in_flight + r <= i.budget {
                    i.in_flight.fetch_add(r, Relaxed);
                    break;
                }
                // Evictions elsewhere free room without a notification:
                // look again now and then.
                i.flight_done.wait_for(&mut g, Duration::from_millis(5));
            }
        }
        // Released (and waiters woken) however the write ends.
        let _reserved = Reserved {
            cache: self,
            bytes: r,
        };
        owner.store.write_chunk(coord, data)
    }

    /// Counts `bytes` in flight until the returned guard drops (a load's
    /// decode buffers; unlike a write-back it does not wait for room: the
    /// caller evicted before).
    fn reserve(&self, bytes: usize) -> Reserved<'_> {
        if bytes > 0 {
            self.inner.in_flight.fetch_add(bytes, Relaxed);
        }
        Reserved { cache: self, bytes }
    }

    /// Takes an entry's data out of the cache's count and returns it (the
    /// caller drops it, or reuses the buffer); the entry must be in no map.
    fn detach(&self, e: &Entry, slot: &mut Slot) -> Option<ChunkBuf> {
        slot.detached = true;
        let data = slot.data.take();
        if let Some(d) = &data {
            self.inner.resident.fetch_sub(d.len(), Relaxed);
            e.owner.resident.fetch_sub(d.len(), Relaxed);
            if slot.dirty {
                self.inner.dirty.fetch_sub(d.len(), Relaxed);
                e.owner.dirty.fetch_sub(d.len(), Relaxed);
            }
        }
        slot.dirty = false;
        e.owner.entries.fetch_sub(1, Relaxed);
        data
    }

    fn entries_of(&self, owner: &Owner) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        for s in self.inner.shards.iter() {
            let g = s.lock();
            out.extend(
                g.lru
                    .iter()
                    .map(|(_, e)| e)
                    .chain(g.evicting.values())
                    .filter(|e| e.key.owner == owner.id)
                    .cloned(),
            );
        }
        out
    }

    /// Writes every dirty chunk of `owner` to its store (in parallel when
    /// the store allows), then makes the store durable.
    pub(crate) fn flush_owner(&self, owner: &Arc<Owner>) -> Result<()> {
        let entries = self.entries_of(owner);
        let write = |e: &Arc<Entry>| -> Result<()> {
            let mut slot = e.slot.lock();
            if slot.detached || !slot.dirty {
                return Ok(());
            }
            let data = slot.data.as_ref().expect("dirty entries hold data");
            self.write_back(owner, &e.coord, data)?;
            owner.unsynced.store(true, Relaxed);
            let len = data.len();
            slot.dirty = false;
            self.inner.dirty.fetch_sub(len, Relaxed);
            owner.dirty.fetch_sub(len, Relaxed);
            Ok(())
        };
        let results: Vec<Result<()>> = if owner.store.capabilities().parallel_writes {
            entries.par_iter().map(write).collect()
        } else {
            entries.iter().map(write).collect()
        };
        // Sync only if something reached the store since the last sync, so
        // that dropping a read-only array costs no fsync.
        let result = results.into_iter().collect::<Result<()>>().and_then(|()| {
            if owner.unsynced.swap(false, Relaxed) {
                owner
                    .store
                    .flush()
                    .inspect_err(|_| owner.unsynced.store(true, Relaxed))
            } else {
                Ok(())
            }
        });
        if let Err(e) = &result {
            owner.poison(format!("flush failed: {e}"));
            return result;
        }
        owner.check_writable()
    }

    /// Removes every entry of `owner` (dirty data is dropped: flush first).
    pub(crate) fn purge(&self, owner: &Owner) {
        self.purge_where(owner, |_| true);
    }

    /// Removes the entries of `owner` whose chunk coordinate matches
    /// `pred`, dirty or not (a shrink drops the chunks past the new end).
    pub(crate) fn purge_where(&self, owner: &Owner, pred: impl Fn(&[u64]) -> bool) {
        let mut removed = Vec::new();
        for s in self.inner.shards.iter() {
            let mut g = s.lock();
            let keys: Vec<Key> = g
                .lru
                .iter()
                .filter(|(k, e)| k.owner == owner.id && pred(&e.coord))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                removed.extend(g.lru.pop(&k));
            }
            g.evicting.retain(|k, e| {
                if k.owner == owner.id && pred(&e.coord) {
                    removed.push(e.clone());
                    false
                } else {
                    true
                }
            });
        }
        for e in removed {
            let mut slot = e.slot.lock();
            if !slot.detached {
                self.detach(&e, &mut slot);
            }
        }
    }

    /// Bytes of `owner`'s chunks in memory, of them dirty, and entries.
    pub(crate) fn usage_of(&self, owner: &Owner) -> (usize, usize, usize) {
        (
            owner.resident.load(Relaxed),
            owner.dirty.load(Relaxed),
            owner.entries.load(Relaxed),
        )
    }
}

/// Bookkeeping bytes per cached chunk (entry, key, coordinate, LRU node),
/// an estimate for the memory report.
pub(crate) fn entry_overhead(ndim: usize) -> usize {
    std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Key>() + 8 * ndim + 64
}

#[cfg(test)]
mod tests {
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
    }
}
