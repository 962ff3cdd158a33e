//! Flushing and purging an array's chunks: parallel write-back of every
//! dirty chunk, then the store's sync; dropping entries on close or shrink.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use rayon::prelude::*;

use super::ChunkCache;
use super::entry::{Entry, Key};
use super::owner::Owner;
use crate::error::Result;

/// `f` of every entry, on up to `threads` scoped threads taking entries
/// in turn: for stores whose writes wait on the network, where rayon's
/// pool (one thread per core) would keep only that many requests in
/// flight. The cache's write-buffer reservation in `write_back` still
/// bounds the memory of the writes under way.
fn on_threads<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Vec<Result<()>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = parking_lot::Mutex::new(Vec::with_capacity(items.len()));
    let work = || {
        loop {
            let i = next.fetch_add(1, Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = f(item);
            results.lock().push(r);
        }
    };
    std::thread::scope(|s| {
        // This thread is one of the workers; a thread that cannot be
        // started only lowers the concurrency.
        for _ in 1..threads.min(items.len()) {
            let spawned = std::thread::Builder::new()
                .name("chunkyard-flush".into())
                .spawn_scoped(s, work);
            if spawned.is_err() {
                break;
            }
        }
        work();
    });
    results.into_inner()
}

impl ChunkCache {
    pub(super) fn entries_of(&self, owner: &Owner) -> Vec<Arc<Entry>> {
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
        // (The caller poisons the owner if the flush fails.)
        let write = |e: &Arc<Entry>| -> Result<()> {
            let mut slot = e.slot.lock();
            self.write_back_held(e, &mut slot, |_| {}).unwrap_or(Ok(()))
        };
        let caps = owner.store.capabilities();
        // (A read-only array has nothing to write: no threads for it.)
        let results: Vec<Result<()>> =
            if caps.parallel_writes && caps.concurrent_requests > 1 && !caps.read_only {
                on_threads(&entries, caps.concurrent_requests, write)
            } else if caps.parallel_writes {
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
        // No writer thread may keep the owner (and its open store) alive
        // past its array's close.
        if let Some(wb) = &self.inner.behind {
            wb.forget_owner(owner.id);
        }
        // Called when the array's last handle drops: nothing else uses the
        // owner, so nothing of it is left.
        debug_assert_eq!(
            self.usage_of(owner),
            (0, 0, 0),
            "purged owner still counted"
        );
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
            if !slot.is_detached() {
                self.detach(&e, &mut slot);
            }
        }
    }
}
