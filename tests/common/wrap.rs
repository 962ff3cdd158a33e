//! Store wrappers for reliability tests: one that fails on command, one
//! that is slow to write. Both delegate everything else to a real store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chunkyard::store::{Capabilities, ChunkRegion, ChunkStore, StoreMeta};
use chunkyard::{ChunkBuf, ChunkCache, Error, Result};

fn injected(what: &str) -> Error {
    Error::Store {
        backend: "faulty",
        message: format!("injected {what} failure"),
    }
}

/// Delegates to `inner`; `write_chunk`/`erase_chunk` and `flush` fail
/// while their switch is on.
#[derive(Debug)]
pub struct FaultyStore {
    pub inner: Arc<dyn ChunkStore>,
    pub fail_writes: AtomicBool,
    pub fail_flush: AtomicBool,
    /// Writes that reached `inner`.
    pub writes: AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ChunkStore>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            fail_writes: AtomicBool::new(false),
            fail_flush: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
        })
    }
}

impl ChunkStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }

    fn resize(&self, len: u64) -> Result<()> {
        self.inner.resize(len)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn write_buffer_bytes(&self) -> usize {
        self.inner.write_buffer_bytes()
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.inner.read_chunk(chunk)
    }
    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.inner.read_chunk_into(chunk, out)
    }
    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        self.inner.read_region(chunk, region)
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("write"));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write_chunk(chunk, data)
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(injected("erase"));
        }
        self.inner.erase_chunk(chunk)
    }
    fn flush(&self) -> Result<()> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(injected("flush"));
        }
        self.inner.flush()
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
}

/// Delegates to `inner`, sleeping `delay` in every `write_chunk`: a store
/// slower than its writer. Inside each write it records the cache's
/// accounted bytes (`resident + in_flight`, see `CacheStats`), so a test
/// can check the budget held while write-backs were under way.
#[derive(Debug)]
pub struct SlowStore {
    pub inner: Arc<dyn ChunkStore>,
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

impl SlowStore {
    pub fn new(inner: Arc<dyn ChunkStore>, delay: Duration) -> Arc<Self> {
        Arc::new(SlowStore {
            inner,
            delay,
            cache: OnceLock::new(),
            max_accounted: AtomicUsize::new(0),
            max_dirty: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
        })
    }

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

impl ChunkStore for SlowStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }

    fn resize(&self, len: u64) -> Result<()> {
        self.inner.resize(len)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn write_buffer_bytes(&self) -> usize {
        self.inner.write_buffer_bytes()
    }
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.inner.read_chunk(chunk)
    }
    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.inner.read_chunk_into(chunk, out)
    }
    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        self.inner.read_region(chunk, region)
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_concurrent.fetch_max(now, Ordering::SeqCst);
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.observe();
        std::thread::sleep(self.delay);
        let r = self.inner.write_chunk(chunk, data);
        self.observe();
        self.active.fetch_sub(1, Ordering::SeqCst);
        r
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
