//! Write-behind: a small pool of dedicated writer threads that write dirty
//! chunks back while the caller goes on (see *Write-behind* in the module
//! doc of the cache).
//!
//! The queue holds entries, not data: a writer locks the entry's chunk
//! lock and writes whatever the chunk holds then, exactly as an eviction
//! would. So the queue needs no ordering of its own: every write of a
//! chunk to its store runs under that chunk's lock and writes the newest
//! data, and a chunk changed after a write-back began is dirty again (and
//! queued again) when the change is made, after that write-back ended.
//!
//! A writer runs each write inside a small rayon pool of its cache's own
//! (`ThreadPool::install`), not on the caller's thread pool: a store may
//! use rayon inside `write_chunk` (zarrs encodes a shard's inner chunks in
//! parallel), and a writer holds a chunk lock meanwhile, which tasks on
//! the global pool may be waiting for (a parallel flush, a parallel copy
//! evicting). Were the store's nested work queued on the global pool, and
//! every global worker blocked on such a lock, nothing would run it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use parking_lot::{Condvar, Mutex};

use super::entry::Entry;
use super::{CacheInner, ChunkCache};

/// The writer threads of one cache and their queue.
pub(super) struct WriteBehind {
    /// Threads asked for.
    pub(super) writers: usize,
    state: Arc<Shared>,
    /// The process the threads were started in: after a `fork` the child
    /// has none, and starts its own (`ensure_writers`).
    pid: AtomicU32,
    /// Serialises starting threads.
    spawning: Mutex<()>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Writers wait here for jobs.
    work: Condvar,
    /// `forget_owner` waits here for writers to let go of an owner.
    idle: Condvar,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Arc<Entry>>,
    /// The pool the writes (and any rayon work of the store inside them)
    /// run on; `None` if it could not be built (writes then run on the
    /// writer threads themselves).
    pool: Option<Arc<rayon::ThreadPool>>,
    /// Per writer: the owner whose chunk it is handling, so that closing
    /// an array can wait until no writer holds one of its entries.
    busy: Vec<Option<u64>>,
    /// Threads running (0 if none could be started: every chunk is then
    /// written back by eviction and flush, as without write-behind).
    running: usize,
    shutdown: bool,
}

impl WriteBehind {
    pub(super) fn new(writers: usize) -> Self {
        WriteBehind {
            writers,
            state: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
                idle: Condvar::new(),
            }),
            // 0 is no process's id: the first enqueue starts the threads.
            pid: AtomicU32::new(0),
            spawning: Mutex::new(()),
        }
    }

    /// Starts the writer threads unless they run in this process already
    /// (first use, or first use in a child after `fork`, which copies the
    /// parent's queue but none of its threads: the copied jobs are the
    /// parent's and are dropped, not written twice).
    fn ensure_writers(&self, cache: &Weak<CacheInner>) {
        let me = std::process::id();
        if self.pid.load(Relaxed) == me {
            return;
        }
        let _g = self.spawning.lock();
        if self.pid.load(Relaxed) == me {
            return;
        }
        {
            let mut q = self.state.queue.lock();
            q.jobs.clear();
            q.busy = vec![None; self.writers];
            q.running = 0;
            q.pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.writers)
                .thread_name(|i| format!("chunkyard-write-pool-{i}"))
                .build()
                .ok()
                .map(Arc::new);
        }
        for i in 0..self.writers {
            let (state, cache) = (self.state.clone(), cache.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("chunkyard-writer-{i}"))
                .spawn(move || writer(i, &state, &cache));
            if spawned.is_ok() {
                self.state.queue.lock().running += 1;
            }
        }
        self.pid.store(me, Relaxed);
    }

    /// Queues a dirty entry for a background write-back; returns whether
    /// it was queued (not if no writer thread runs).
    pub(super) fn enqueue(&self, cache: &Weak<CacheInner>, e: Arc<Entry>) -> bool {
        self.ensure_writers(cache);
        let mut q = self.state.queue.lock();
        if q.running == 0 {
            return false;
        }
        q.jobs.push_back(e);
        self.state.work.notify_one();
        true
    }

    /// Drops the queued entries of `owner` and waits until no writer
    /// holds one: afterwards no thread of the pool keeps the owner (and
    /// its store) alive. The caller flushed first, so nothing dirty of the
    /// owner is dropped.
    pub(super) fn forget_owner(&self, owner: u64) {
        if self.pid.load(Relaxed) != std::process::id() {
            // No writer started in this process (a child after `fork`
            // holds copies of the parent's queue and busy marks, and none
            // of its threads): none holds anything.
            return;
        }
        let mut q = self.state.queue.lock();
        q.jobs.retain(|e| e.key.owner != owner);
        while q.busy.contains(&Some(owner)) {
            self.state.idle.wait(&mut q);
        }
    }

    /// Jobs queued and not yet taken by a writer.
    pub(super) fn queued(&self) -> usize {
        self.state.queue.lock().jobs.len()
    }

    /// Tells the writers to stop (the cache is gone); does not wait.
    pub(super) fn shutdown(&self) {
        self.state.queue.lock().shutdown = true;
        self.state.work.notify_all();
    }
}

/// One writer thread: takes entries off the queue and writes each back.
fn writer(i: usize, state: &Shared, cache: &Weak<CacheInner>) {
    loop {
        let (job, pool) = {
            let mut q = state.queue.lock();
            loop {
                if q.shutdown {
                    return;
                }
                if let Some(e) = q.jobs.pop_front() {
                    q.busy[i] = Some(e.key.owner);
                    break (e, q.pool.clone());
                }
                state.work.wait(&mut q);
            }
        };
        if let Some(inner) = cache.upgrade() {
            let cache = ChunkCache { inner };
            // A store that panics must not take the writer (and its busy
            // mark, which closing the array waits on) with it: the array
            // is closed instead, as after a failed write.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &pool {
                Some(pool) => pool.install(|| cache.write_behind_one(&job)),
                None => cache.write_behind_one(&job),
            }));
            if run.is_err() {
                job.owner.poison(format!(
                    "background write-back of chunk {:?} panicked",
                    job.coord
                ));
            }
        }
        drop(job);
        state.queue.lock().busy[i] = None;
        state.idle.notify_all();
    }
}

impl ChunkCache {
    /// Queues `e` (just made dirty by a whole-chunk write of an owner with
    /// write-behind) for a background write-back.
    pub(super) fn queue_write_behind(&self, e: &Arc<Entry>) {
        if let Some(wb) = &self.inner.behind {
            wb.enqueue(&Arc::downgrade(&self.inner), e.clone());
        }
    }

    /// A writer's job: writes the entry back if it is still dirty (a
    /// flush, an eviction or another writer may have done it meanwhile),
    /// under its chunk lock, with the write buffer reserved like any
    /// write-back. A failure poisons the owner and strands the chunk, as a
    /// failed eviction does: the next write or flush of the array reports
    /// it.
    fn write_behind_one(&self, e: &Arc<Entry>) {
        let mut slot = e.slot.lock();
        // A stranded chunk's owner is poisoned already; flush retries it.
        if !matches!(slot.unwritten(), Some((_, false))) {
            return;
        }
        let poison = |err: &crate::error::Error| {
            e.owner.poison(format!(
                "background write-back of chunk {:?} failed: {err}",
                e.coord
            ));
        };
        if let Some(Ok(())) = self.write_back_held(e, &mut slot, poison) {
            self.inner.background_writes.fetch_add(1, Relaxed);
        }
    }
}
