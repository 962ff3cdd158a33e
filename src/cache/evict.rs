//! Eviction and the budget: choosing victims, writing them back, and the
//! bytes reserved in flight for write buffers and decodes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::ChunkCache;
use super::entry::{Entry, Slot, shard_of};
use super::owner::Owner;
use crate::buffer::ChunkBuf;
use crate::error::{Error, Result};
use crate::store::Written;

/// What [`ChunkCache::retire`] did with its entry.
pub(super) enum Retired {
    /// The write-back failed; the entry stays, stranded.
    Failed,
    /// Written back if it was dirty, and detached unless it was used
    /// again meanwhile; with its buffer if the caller asked for that size.
    Done(Option<ChunkBuf>),
}

/// The byte counts kept both for the whole cache and for each owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gauge {
    /// Bytes of chunk data held.
    Resident,
    /// Of them, bytes newer than the store's.
    Dirty,
    /// Of those, bytes whose last write-back failed (`Slot::Stranded`).
    Stranded,
}

/// Bytes counted in flight until dropped ([`ChunkCache::reserve`]).
pub(super) struct Reserved<'a> {
    cache: &'a ChunkCache,
    bytes: usize,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        let was = self.cache.inner.in_flight.fetch_sub(self.bytes, Relaxed);
        debug_assert!(was >= self.bytes, "in-flight bytes below 0");
        self.cache.room_freed();
    }
}

impl ChunkCache {
    /// Evicts least recently used entries until the cache is within budget.
    pub(super) fn make_room(&self) {
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
    pub(super) fn make_room_for(&self, need: usize, keep: Option<&Arc<Entry>>) {
        self.make_room_recycling(need, keep, usize::MAX);
    }

    /// [`make_room_for`](Self::make_room_for), returning the buffer of the
    /// first chunk it evicts that is `len` bytes long instead of dropping
    /// it. While the caller holds it, the buffer is not counted as
    /// resident: it stands for the chunk about to be loaded, for which
    /// room was just made.
    pub(super) fn make_room_recycling(
        &self,
        need: usize,
        keep: Option<&Arc<Entry>>,
        len: usize,
    ) -> Option<ChunkBuf> {
        let mut spare = None;
        loop {
            if self.room_for(need) {
                return spare;
            }
            let Some(victim) = self.pop_victim(keep) else {
                return spare;
            };
            let want = if spare.is_none() { len } else { usize::MAX };
            match self.retire(&victim, want) {
                // Stranded: passed over (it stays in `evicting`, so the
                // next victim is another entry).
                Retired::Failed | Retired::Done(None) => {}
                Retired::Done(b) => spare = b,
            }
        }
    }

    /// Moves the globally least recently used entry (other than `keep`) to
    /// its shard's `evicting` map and returns it.
    pub(super) fn pop_victim(&self, keep: Option<&Arc<Entry>>) -> Option<Arc<Entry>> {
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
    /// findable, in `evicting`, stranded, and its owner is poisoned).
    pub(super) fn retire(&self, e: &Arc<Entry>, want: usize) -> Retired {
        let mut slot = e.slot.lock();
        let poison = |err: &Error| {
            e.owner
                .poison(format!("write-back of chunk {:?} failed: {err}", e.coord));
        };
        match self.write_back_held(e, &mut slot, poison) {
            Some(Ok(())) => {
                self.inner.writebacks.fetch_add(1, Relaxed);
            }
            Some(Err(_)) => return Retired::Failed,
            None => {}
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

    /// Writes back the chunk of `e` that `slot` (its chunk lock, held by
    /// the caller) holds, if it is dirty or stranded, with the record of
    /// the elements this process wrote, and marks it clean; if the write
    /// fails, calls `failed` (to poison the owner, or not) and strands it.
    /// `None`: nothing to write. The one write-back sequence of eviction,
    /// flush and the write-behind writers.
    pub(super) fn write_back_held(
        &self,
        e: &Entry,
        slot: &mut Slot,
        failed: impl FnOnce(&Error),
    ) -> Option<Result<()>> {
        let (data, stranded) = slot.unwritten()?;
        let len = data.len();
        // The record's lock is released before `forget_written` takes it
        // again.
        let result = {
            let written = e.written.lock();
            self.write_back(&e.owner, &e.coord, data, Some(&written))
        };
        match &result {
            Ok(()) => {
                self.forget_written(e);
                e.owner.unsynced.store(true, Relaxed);
                slot.mark_clean();
                self.written(&e.owner, len, stranded);
            }
            Err(err) => {
                failed(err);
                if let Some(len) = slot.mark_stranded() {
                    self.grow(&e.owner, Gauge::Stranded, len);
                }
            }
        }
        Some(result)
    }

    /// Writes one chunk to its store, with the store's write buffer
    /// reserved in the budget for the duration: waits while other write
    /// buffers in flight leave no room for it (one write always proceeds).
    /// `written` is what of the chunk this process changed, for a store
    /// that merges writes (`None`: a whole chunk, written as it is).
    pub(super) fn write_back(
        &self,
        owner: &Owner,
        coord: &[u64],
        data: &[u8],
        written: Option<&Written>,
    ) -> Result<()> {
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
                // Woken by `room_freed`, called after every change that
                // can make this true (in-flight bytes released, resident
                // bytes dropped); the loop looks again under the lock.
                i.flight_done.wait(&mut g);
            }
        }
        // Released (and waiters woken) however the write ends.
        let _reserved = Reserved {
            cache: self,
            bytes: r,
        };
        match written {
            Some(w) if owner.merges && !w.is_empty() && !w.is_all() => {
                owner.store.write_chunk_merging(coord, data, w)
            }
            _ => owner.store.write_chunk(coord, data),
        }
    }

    /// Adds `bytes` to one gauge of the cache and the same gauge of
    /// `owner`. With [`shrink`](Self::shrink), the only place either
    /// changes, so the cache's count is always the sum of its owners'.
    pub(super) fn grow(&self, owner: &Owner, gauge: Gauge, bytes: usize) {
        debug_assert!(
            gauge != Gauge::Dirty || !owner.read_only,
            "a read-only owner's chunk made dirty"
        );
        let (all, own) = self.gauges(owner, gauge);
        all.fetch_add(bytes, Relaxed);
        own.fetch_add(bytes, Relaxed);
    }

    /// Takes `bytes` off one gauge of the cache and of `owner`; fewer
    /// resident bytes may let a waiting write-back proceed, so those wake
    /// it ([`room_freed`](Self::room_freed)).
    pub(super) fn shrink(&self, owner: &Owner, gauge: Gauge, bytes: usize) {
        let (all, own) = self.gauges(owner, gauge);
        let was = (all.fetch_sub(bytes, Relaxed), own.fetch_sub(bytes, Relaxed));
        debug_assert!(was.0 >= bytes && was.1 >= bytes, "{gauge:?} below 0");
        if gauge == Gauge::Resident && bytes > 0 {
            self.room_freed();
        }
    }

    /// Counts a dirty (or stranded) chunk of `len` bytes written back.
    pub(super) fn written(&self, owner: &Owner, len: usize, stranded: bool) {
        if stranded {
            self.shrink(owner, Gauge::Stranded, len);
        }
        self.shrink(owner, Gauge::Dirty, len);
    }

    /// Whether `need` more bytes fit in the budget beside the resident
    /// bytes, the bytes in flight and the headroom of one write-back (or
    /// nothing is resident: one chunk always fits).
    pub(super) fn room_for(&self, need: usize) -> bool {
        let resident = self.inner.resident.load(Relaxed);
        let in_flight = self.inner.in_flight.load(Relaxed);
        let headroom = self.inner.headroom.load(Relaxed);
        resident + in_flight + need + headroom <= self.inner.budget || resident == 0
    }

    fn gauges<'a>(&'a self, owner: &'a Owner, gauge: Gauge) -> (&'a AtomicUsize, &'a AtomicUsize) {
        match gauge {
            Gauge::Resident => (&self.inner.resident, &owner.resident),
            Gauge::Dirty => (&self.inner.dirty, &owner.dirty),
            Gauge::Stranded => (&self.inner.stranded, &owner.stranded),
        }
    }

    /// Wakes the write-backs waiting for room in the budget; called after
    /// every decrease of `resident` or `in_flight`, the only changes that
    /// can let one proceed. Taking the lock after the decrease is what
    /// makes the wake-up impossible to miss: a waiter reads the counters
    /// and starts waiting under this lock, so it either sees the decrease
    /// or is already waiting when the notification comes.
    pub(super) fn room_freed(&self) {
        let _g = self.inner.flight.lock();
        self.inner.flight_done.notify_all();
    }

    /// Counts `bytes` in flight until the returned guard drops (a load's
    /// decode buffers; unlike a write-back it does not wait for room: the
    /// caller evicted before).
    pub(super) fn reserve(&self, bytes: usize) -> Reserved<'_> {
        if bytes > 0 {
            self.inner.in_flight.fetch_add(bytes, Relaxed);
        }
        Reserved { cache: self, bytes }
    }

    /// Takes an entry's data out of the cache's count and returns it (the
    /// caller drops it, or reuses the buffer); the entry must be in no map.
    pub(super) fn detach(&self, e: &Entry, slot: &mut Slot) -> Option<ChunkBuf> {
        debug_assert!(!slot.is_detached(), "entry detached twice");
        self.forget_written(e);
        let data = match std::mem::replace(slot, Slot::Detached) {
            Slot::Clean(d) => {
                self.shrink(&e.owner, Gauge::Resident, d.len());
                Some(d)
            }
            Slot::Dirty(d) => {
                self.shrink(&e.owner, Gauge::Dirty, d.len());
                self.shrink(&e.owner, Gauge::Resident, d.len());
                Some(d)
            }
            Slot::Stranded(d) => {
                self.shrink(&e.owner, Gauge::Stranded, d.len());
                self.shrink(&e.owner, Gauge::Dirty, d.len());
                self.shrink(&e.owner, Gauge::Resident, d.len());
                Some(d)
            }
            Slot::Unloaded | Slot::Detached => None,
        };
        e.owner.entries.fetch_sub(1, Relaxed);
        data
    }
}
