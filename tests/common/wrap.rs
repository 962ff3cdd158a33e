//! Store wrappers for reliability tests: one that fails on command, one
//! that is slow to write. Both are `chunkyard::store::Wrapped`
//! stores, which delegate everything else to a real store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chunkyard::store::ChunkStore;
use chunkyard::store::{Hooks, Wrapped};
use chunkyard::{ChunkCache, Error, Result};

fn injected(what: &str) -> Error {
    Error::Store {
        backend: "faulty",
        message: format!("injected {what} failure"),
    }
}

/// `write_chunk`/`erase_chunk` and `flush` fail while their switch is on.
#[derive(Debug, Default)]
pub struct Faulty {
    pub fail_writes: AtomicBool,
    pub fail_flush: AtomicBool,
    /// Writes that reached the inner store.
    pub writes: AtomicUsize,
}

pub type FaultyStore = Wrapped<Faulty>;

/// `inner`, failing on command.
pub fn faulty(inner: Arc<dyn ChunkStore>) -> Arc<FaultyStore> {
    Wrapped::new(inner, Faulty::default())
}

impl Hooks for Faulty {
    fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        inner.write_chunk(chunk, data)
    }
    fn erase(&self, inner: &dyn ChunkStore, chunk: &[u64]) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("erase"));
        }
        inner.erase_chunk(chunk)
    }
    fn flush(&self, inner: &dyn ChunkStore) -> Result<()> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(injected("flush"));
        }
        inner.flush()
    }
}

/// Sleeps `delay` in every `write_chunk`: a store slower than its writer.
/// Inside each write it records the cache's accounted bytes (`resident +
/// in_flight`, see `CacheStats`), so a test can check the budget held
/// while write-backs were under way.
#[derive(Debug, Default)]
pub struct Slow {
    pub delay: Duration,
    /// The cache to watch, set once the array is open.
    pub cache: OnceLock<ChunkCache>,
    /// Highest accounted bytes seen inside `write_chunk`.
    pub max_accounted: AtomicUsize,
    /// Highest dirty bytes seen inside `write_chunk`.
    pub max_dirty: AtomicUsize,
    /// Highest write-buffer bytes in flight seen inside `write_chunk`.
    pub max_in_flight: AtomicUsize,
    /// Writes seen.
    pub writes: AtomicUsize,
    /// Most writes under way at once.
    pub max_concurrent: AtomicUsize,
    active: AtomicUsize,
}

pub type SlowStore = Wrapped<Slow>;

/// `inner`, sleeping `delay` in every chunk write.
pub fn slow(inner: Arc<dyn ChunkStore>, delay: Duration) -> Arc<SlowStore> {
    Wrapped::new(
        inner,
        Slow {
            delay,
            ..Slow::default()
        },
    )
}

impl Slow {
    fn observe(&self) {
        if let Some(c) = self.cache.get() {
            let s = c.stats();
            self.max_accounted
                .fetch_max(s.resident_bytes + s.in_flight_bytes, Ordering::SeqCst);
            self.max_dirty.fetch_max(s.dirty_bytes, Ordering::SeqCst);
            self.max_in_flight
                .fetch_max(s.in_flight_bytes, Ordering::SeqCst);
        }
    }
}

impl Hooks for Slow {
    fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.observe();
        std::thread::sleep(self.delay);
        let r = inner.write_chunk(chunk, data);
        self.observe();
        self.active.fetch_sub(1, Ordering::SeqCst);
        r
    }
}
