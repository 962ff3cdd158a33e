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
//! - An entry's slot is one of five states (`entry::Slot`): unloaded,
//!   clean, dirty (data newer than the store's), stranded (dirty, and its
//!   write-back failed), detached. Once it is detached
//!   (under the chunk lock) the entry is in no map and holds no data; a
//!   thread that locks a detached entry looks it up again.
//! - `resident` counts the bytes of every entry's data, in maps or being
//!   evicted; `dirty` the bytes of entries whose data is newer than the
//!   store's. Each is kept for the cache and for each owner, and changed
//!   for both at once (`grow` / `shrink`): the cache's count is the sum of
//!   its owners'. `stranded <= dirty <= resident`. Only a writable owner
//!   (not opened read-only) has dirty bytes.
//!
//! # Rules
//!
//! - **Budget.** The budget covers resident bytes plus bytes in flight.
//!   Before a new chunk arrives, eviction makes room for it (and for its
//!   load's scratch) beside the bytes in flight and the headroom one more
//!   write-back's buffer needs; after every access it evicts until the
//!   cache is within budget again. An entry is never evicted while in use
//!   (its chunk lock is held), so a budget smaller than one chunk still
//!   works: the chunk is loaded, used and evicted.
//! - **Reservations.** Bytes in flight are the write buffers of write-backs
//!   and write-throughs under way, and the stored bytes a load decodes
//!   from. A write-back waits for its buffer to fit (one always proceeds:
//!   it does not wait when nothing else is in flight), and is woken by
//!   every decrease of resident or in-flight bytes (`room_freed`), never by
//!   a timer. A load's reservation is held only while it reads, never while
//!   waiting for anything (an eviction, a chunk lock): write-backs wait for
//!   in-flight bytes while holding their victim's chunk lock, so a
//!   reservation held while waiting could deadlock.
//! - **Recycled buffers.** A load (or an overwrite's fill) may take the
//!   buffer of the first chunk its eviction dropped, if it has the same
//!   size, instead of a fresh allocation. While held it is not counted as
//!   resident: it stands for the chunk about to arrive, for which room was
//!   just made. It is either filled with the fill value or read into by the
//!   store ([`Capabilities::reads_into`]) before anyone sees it, so no byte
//!   of the old chunk shows.
//! - **Placeholders.** Reads that bypass the cache (`read_or_else`) and
//!   whole-chunk writes (`write_through`) take the chunk lock of an entry,
//!   created empty if needed, so that no write-back of that chunk runs
//!   meanwhile; the creator removes the empty entry afterwards
//!   (`drop_placeholder`), so uncached traffic does not pile up entries.
//! - **Read-only fast path.** A read-only owner's chunks are never dirty,
//!   so no write-back of them can run: its uncached reads look the chunk up
//!   and read from the store without a placeholder.
//! - **Write-through.** A whole chunk written while not in memory goes
//!   straight to the store under its chunk lock, its write buffer reserved
//!   like a write-back's, and is not cached. A chunk in memory is
//!   overwritten there and marked dirty instead.
//! - **Failures.** A failed write-back, write-through or flush poisons the
//!   owner (writes refused from then on). A dirty chunk whose write-back
//!   failed is stranded (`Slot::Stranded`, counted in `stranded`): it stays
//!   in the cache, findable, readable and counted, until a write-back of it
//!   succeeds or its owner is purged. Eviction passes over it to the next
//!   victim. The budget still holds: a chunk that does not fit beside
//!   stranded chunks after eviction is used around the cache, never kept
//!   (`around`): a read loads it into a buffer dropped afterwards, a write
//!   is refused if its owner is poisoned, else written straight to the
//!   store like a write-through.
//! - **Write-behind** (opt-in: [`ChunkCache::with_write_behind`]). For
//!   arrays whose store writes in parallel ([`Capabilities::parallel_writes`];
//!   others are untouched), a whole-chunk write is not written through:
//!   the chunk is cached (into a buffer not filled first, since every
//!   byte is about to be replaced), marked dirty, and its entry queued for
//!   dedicated writer threads (not rayon's global pool, which the caller
//!   may be using; the writes run on a small rayon pool of the cache's
//!   own, so that a store's nested rayon work never waits for the global
//!   pool while a chunk lock is held: `behind.rs`). A writer locks the chunk and writes back whatever it holds
//!   then, exactly like an eviction, so writes of one chunk to its store
//!   stay serialised by its chunk lock and the last one holds the newest
//!   data; a chunk written again while its write-back runs waits for it,
//!   then is dirty and queued again. Nothing else changes: the chunks are
//!   resident and counted like any other, so the budget bounds dirty plus
//!   in-flight bytes, and a writer that needs room while the writers are
//!   behind evicts the oldest chunk, which means waiting for the
//!   write-back under way on it (its chunk lock) or writing it back
//!   itself (back-pressure). `flush` locks every dirty chunk, so it waits
//!   for write-backs under way and writes what is still queued, then
//!   syncs. A failed background write-back poisons the owner and strands
//!   the chunk, as a failed eviction does: the next write or flush
//!   reports it. Closing an array drops its queued jobs and waits until
//!   no writer holds one of its chunks.
//!
//! [`Capabilities::reads_into`]: crate::store::Capabilities::reads_into
//! [`Capabilities::parallel_writes`]: crate::store::Capabilities::parallel_writes

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::{Condvar, Mutex};

use crate::buffer::{ChunkBuf, fill_with};
use crate::chunk_grid::ChunkGrid;
use crate::error::{Error, Result};
use crate::store::{ChunkStore, Written};

use behind::WriteBehind;
pub(crate) use entry::entry_overhead;
use entry::{Entry, Key, KeyHash, Shard, Slot, shard_of};
use evict::Gauge;
pub(crate) use owner::Owner;

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
    /// Of them, bytes whose write-back failed (see *Failures* above).
    stranded: AtomicUsize,
    /// Bytes of store write buffers (encoded copies) reserved by write-backs
    /// and flushes under way, and of decode buffers of loads under way.
    in_flight: AtomicUsize,
    /// The largest write buffer of any array registered: eviction keeps
    /// this much of the budget free, so that the next write-back fits.
    headroom: AtomicUsize,
    /// Guards waiting for room in the budget (`resident + in_flight` to
    /// shrink): write-backs wait on `flight_done`, notified by
    /// [`room_freed`](ChunkCache::room_freed).
    flight: Mutex<()>,
    flight_done: Condvar,
    /// Global use clock; entries record it on every access.
    clock: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    writebacks: AtomicU64,
    write_throughs: AtomicU64,
    background_writes: AtomicU64,
    next_owner: AtomicU64,
    /// The writer threads, if write-behind is on.
    behind: Option<WriteBehind>,
}

impl Drop for CacheInner {
    fn drop(&mut self) {
        // The writers hold only a weak reference: they stop here.
        if let Some(wb) = &self.behind {
            wb.shutdown();
        }
    }
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
    /// Replace every byte of the chunk: as `Overwrite`, and the buffer the
    /// caller gets may hold anything (it is not filled first).
    Replace,
}

impl Access {
    /// Whether the chunk's old contents do not matter.
    fn overwrites(self) -> bool {
        matches!(self, Access::Overwrite | Access::Replace)
    }
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
    /// (the array's write-through of large whole chunks, and writes that
    /// find no room beside chunks whose write-back failed).
    pub write_throughs: u64,
    /// Dirty chunks written back by the write-behind threads
    /// ([`ChunkCache::with_write_behind`]).
    pub background_writes: u64,
    /// Chunks queued for the write-behind threads now, not yet taken.
    pub queued_writes: usize,
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

impl ChunkCache {
    /// A cache that keeps at most about `budget_bytes` of decoded chunks.
    /// A budget smaller than one chunk works: each access then loads,
    /// uses and writes back its chunk.
    pub fn new(budget_bytes: usize) -> Self {
        Self::build(budget_bytes, None)
    }

    /// A cache like [`new`](Self::new) whose whole-chunk writes return as
    /// soon as the data is in the cache: `writers` threads of its own
    /// (at least one) write the dirty chunks back while the caller goes on,
    /// for example computing its next plane.
    ///
    /// - Memory: the chunks waiting to be written are cached chunks like
    ///   any other, inside the budget; when dirty chunks fill it, a writer
    ///   waits for a write-back (or does one itself) before its write goes
    ///   on, so memory stays within the budget however slow the store is.
    ///   Whole chunks now pass through the cache, so it fills up to its
    ///   budget (their buffers are reused by the next ones): expect peak
    ///   resident memory near the budget, where write-through kept whole
    ///   chunks out of it.
    /// - Threads: one or two writers keep up with one stream of chunks;
    ///   each writer has its own allocator arena, which may keep a freed
    ///   encoded copy (`docs/benchmarks.md#write-behind-issue-18-item-4-2026-12-05`).
    /// - Durability: as without write-behind, `flush` (and `close`) return
    ///   only when everything written before is durable; dropping an array
    ///   flushes it.
    /// - Failures: a background write-back that fails poisons its array
    ///   (fail closed): the next write and every flush return the error,
    ///   and the chunk's data stays readable in the cache.
    /// - Order: writes of one chunk reach the store in the order they were
    ///   made; the last one wins.
    /// - Scope: only arrays whose store writes in parallel
    ///   ([`Capabilities::parallel_writes`]: npy, Zarr, HDF5 with direct
    ///   chunk writes, the memory store) use it; others write as before.
    ///   Partial writes of a chunk stay dirty in the cache until evicted
    ///   or flushed, as before: writing them back early would write a
    ///   chunk assembled piece by piece once per piece.
    ///
    /// It is not the default: it starts threads (started on first use,
    /// and again in a child process after `fork`), and the error of a
    /// failed write of a whole chunk arrives at a later call instead of
    /// the one that wrote it.
    ///
    /// [`Capabilities::parallel_writes`]: crate::store::Capabilities::parallel_writes
    pub fn with_write_behind(budget_bytes: usize, writers: usize) -> Self {
        Self::build(budget_bytes, Some(WriteBehind::new(writers.max(1))))
    }

    /// Writer threads of write-behind, or 0 if it is off.
    pub fn write_behind(&self) -> usize {
        self.inner.behind.as_ref().map_or(0, |wb| wb.writers)
    }

    fn build(budget_bytes: usize, behind: Option<WriteBehind>) -> Self {
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
                stranded: AtomicUsize::new(0),
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
                background_writes: AtomicU64::new(0),
                next_owner: AtomicU64::new(1),
                behind,
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
            background_writes: i.background_writes.load(Relaxed),
            queued_writes: i.behind.as_ref().map_or(0, WriteBehind::queued),
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
            merges: store.merges_writes(),
            store,
            grid,
            fill,
            poison: Mutex::new(None),
            write_buffer,
            resident: AtomicUsize::new(0),
            dirty: AtomicUsize::new(0),
            stranded: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            unsynced: AtomicBool::new(false),
            read_only: caps.read_only,
            behind: self.inner.behind.is_some() && caps.parallel_writes && !caps.read_only,
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
            written: Mutex::new(Written::default()),
        });
        owner.entries.fetch_add(1, Relaxed);
        g.lru.put(key, e.clone());
        (e, true)
    }

    /// Runs `f` on the decoded chunk, loading it first unless `access`
    /// [overwrites](Access::overwrites) it; marks it dirty unless `access`
    /// is [`Access::Read`], and queues it for write-behind if that is on
    /// for `owner` and `access` overwrites. Evicts afterwards if over
    /// budget.
    pub(crate) fn with_chunk<R>(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        access: Access,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        self.with_chunk_at(owner, coord, access, None, f)
    }

    /// [`with_chunk`](Self::with_chunk) for a write of the strided box
    /// `region` of the chunk (`(offset, counts, strides)` in elements),
    /// which a store that merges writes gets told about at write-back;
    /// `None` is the whole chunk.
    pub(crate) fn with_chunk_at<R>(
        &self,
        owner: &Arc<Owner>,
        coord: &[u64],
        access: Access,
        region: Option<(usize, &[usize], &[usize])>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        if access != Access::Read {
            owner.check_can_write()?;
        }
        // Recycled buffers (module doc): mapping and faulting in a fresh
        // one for every load costs page faults the evicted buffer saves
        // (`docs/benchmarks.md#reusing-the-evicted-buffer`).
        let mut spare = None;
        // Failures (module doc): no room beside stranded chunks, so the
        // chunk is used without being kept.
        let mut around = false;
        // An entry found unloaded (left by a failed load) gets room made
        // for it too (then set, and the entry looked up again): loaded
        // without, it would overshoot the budget until the eviction after
        // the access, which cannot undo it if write-backs fail.
        let mut make_room_first = false;
        let r = loop {
            let (e, created) = self.entry(owner, coord);
            // A load that decodes holds the stored bytes beside the chunk
            // until it is done.
            let scratch = if access.overwrites() {
                0
            } else {
                owner.load_scratch
            };
            if created || make_room_first {
                // Evict before the new chunk's bytes arrive, so that
                // streaming work does not overshoot the budget by a chunk
                // per thread. No lock is held here.
                let need = owner.chunk_bytes() + scratch;
                spare = self.make_room_recycling(need, Some(&e), owner.chunk_bytes());
                debug_assert!(
                    spare
                        .as_ref()
                        .is_none_or(|b| b.len() == owner.chunk_bytes())
                );
                around = !self.room_for(need) && self.inner.stranded.load(Relaxed) > 0;
            }
            let mut slot = e.slot.lock();
            if slot.is_detached() {
                continue;
            }
            self.tick(&e);
            let r = if let Some(data) = slot.data_mut() {
                self.inner.hits.fetch_add(1, Relaxed);
                f(data)
            } else if !created && !make_room_first {
                // No lock may be held while evicting.
                drop(slot);
                make_room_first = true;
                continue;
            } else if around {
                let r = self.around(owner, coord, access, region, spare.take(), f);
                self.drop_placeholder(&e, &mut slot);
                break r?;
            } else {
                let mut data = if access == Access::Replace {
                    // `f` writes every byte before anyone else sees them.
                    spare
                        .take()
                        .unwrap_or_else(|| ChunkBuf::zeroed(owner.chunk_bytes()))
                } else if access == Access::Overwrite {
                    owner.fill_buffer(spare.take())
                } else {
                    self.inner.misses.fetch_add(1, Relaxed);
                    // Reservations (module doc): for the load only, not
                    // while evicting above nor waiting for this slot.
                    let _scratch = self.reserve(owner.load_scratch);
                    self.load(owner, coord, spare.take())?
                };
                debug_assert_eq!(data.len(), owner.chunk_bytes());
                let r = f(&mut data);
                self.grow(owner, Gauge::Resident, data.len());
                *slot = Slot::Clean(data);
                r
            };
            if access != Access::Read {
                if owner.merges {
                    self.note_written(owner, &e, access, region);
                }
                if let Some(len) = slot.mark_dirty() {
                    self.grow(owner, Gauge::Dirty, len);
                    if owner.behind && access.overwrites() {
                        self.queue_write_behind(&e);
                    }
                }
            }
            break r;
        };
        self.make_room();
        Ok(r)
    }

    /// [`with_chunk`](Self::with_chunk) for a chunk that is not kept (see
    /// *Failures* in the module doc): loaded (or filled) into a buffer
    /// dropped afterwards and, if changed, written straight to the store
    /// like a write-through. The caller holds the chunk lock of an empty
    /// placeholder, so no write-back of the chunk runs meanwhile.
    fn around<R>(
        &self,
        owner: &Owner,
        coord: &[u64],
        access: Access,
        region: Option<(usize, &[usize], &[usize])>,
        spare: Option<ChunkBuf>,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        if access != Access::Read {
            // The eviction just tried may have failed to write back one
            // of this owner's chunks.
            owner.check_can_write()?;
        }
        let mut data = if access == Access::Replace {
            spare.unwrap_or_else(|| ChunkBuf::zeroed(owner.chunk_bytes()))
        } else if access == Access::Overwrite {
            owner.fill_buffer(spare)
        } else {
            self.inner.misses.fetch_add(1, Relaxed);
            let _scratch = self.reserve(owner.load_scratch);
            self.load(owner, coord, spare)?
        };
        let r = f(&mut data);
        if access != Access::Read {
            let mut written = Written::default();
            match region {
                Some((o, c, s)) if access == Access::Update => {
                    written.push(o, c, s, owner.grid.chunk_elements());
                }
                _ => written.mark_all(),
            }
            if let Err(err) = self.write_back(owner, coord, &data, Some(&written)) {
                owner.poison(format!("write of chunk {coord:?} failed: {err}"));
                return Err(err);
            }
            owner.unsynced.store(true, Relaxed);
            self.inner.write_throughs.fetch_add(1, Relaxed);
        }
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
            // Read-only fast path (module doc): a placeholder's allocation,
            // LRU insertion and removal are a visible share of a warm
            // tile's work (`docs/benchmarks.md#read-only-partial-reads`).
            let key = Self::key(owner, coord);
            let e = self.inner.shards[shard_of(&key)]
                .lock()
                .lru
                .get(&key)
                .cloned();
            if let Some(e) = e {
                let slot = e.slot.lock();
                debug_assert!(!matches!(*slot, Slot::Dirty(_)), "read-only yet dirty");
                if let Some(d) = slot.data() {
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
            if slot.is_detached() {
                continue;
            }
            if let Some(d) = slot.data() {
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
    ///
    /// With write-behind on for `owner`, the chunk is cached instead,
    /// dirty, and queued for the writer threads (*Write-behind* in the
    /// module doc): the copy is the caller's only work.
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
        if owner.behind {
            return self.with_chunk(owner, coord, Access::Replace, |d| d.copy_from_slice(data));
        }
        loop {
            let (e, created) = self.entry(owner, coord);
            let mut slot = e.slot.lock();
            if slot.is_detached() {
                continue;
            }
            if let Some(d) = slot.data_mut() {
                self.tick(&e);
                self.inner.hits.fetch_add(1, Relaxed);
                d.copy_from_slice(data);
                if let Some(len) = slot.mark_dirty() {
                    self.grow(owner, Gauge::Dirty, len);
                }
                return Ok(());
            }
            let r = self.write_back(owner, coord, data, None);
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
    /// Adds a write to the entry's record of written elements (the whole
    /// chunk for an overwrite or an unknown region), counting the record's
    /// growth as resident. The caller holds the entry's slot lock.
    fn note_written(
        &self,
        owner: &Owner,
        e: &Entry,
        access: Access,
        region: Option<(usize, &[usize], &[usize])>,
    ) {
        let mut w = e.written.lock();
        let before = w.bytes();
        match region {
            Some((o, c, s)) if access == Access::Update => {
                w.push(o, c, s, owner.grid.chunk_elements());
            }
            _ => w.mark_all(),
        }
        let after = w.bytes();
        if after > before {
            self.grow(owner, Gauge::Resident, after - before);
        } else if before > after {
            self.shrink(owner, Gauge::Resident, before - after);
        }
    }

    /// Drops the entry's record of written elements (its chunk was written
    /// back, or it leaves the cache). The caller holds the slot lock.
    fn forget_written(&self, e: &Entry) {
        let mut w = e.written.lock();
        let bytes = w.bytes();
        w.clear();
        if bytes > 0 {
            self.shrink(&e.owner, Gauge::Resident, bytes);
        }
    }

    fn drop_placeholder(&self, e: &Arc<Entry>, slot: &mut Slot) {
        if slot.data().is_some() {
            return;
        }
        let mut g = self.inner.shards[shard_of(&e.key)].lock();
        if g.lru.peek(&e.key).is_some_and(|x| Arc::ptr_eq(x, e)) {
            g.lru.pop(&e.key);
            drop(g);
            debug_assert!(matches!(slot, Slot::Unloaded), "a placeholder holds data");
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
        let data = slot.data()?;
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
    /// Bytes of `owner`'s chunks in memory, of them dirty, and entries.
    pub(crate) fn usage_of(&self, owner: &Owner) -> (usize, usize, usize) {
        (
            owner.resident.load(Relaxed),
            owner.dirty.load(Relaxed),
            owner.entries.load(Relaxed),
        )
    }
}

mod behind;
mod entry;
mod evict;
mod flush;
mod owner;
#[cfg(test)]
mod tests;
