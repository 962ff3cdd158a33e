//! A store that wraps another: every method goes to the inner store, and
//! [`Hooks`] run around writes, erases and flushes. For fault injection,
//! slow stores and instrumentation (the reliability tests and
//! `examples/slow_store_budget.rs` use it), without restating the whole
//! trait and silently missing a method added later.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::{Capabilities, ChunkRegion, ChunkStore, Labels, StoreMeta};
use crate::buffer::ChunkBuf;
use crate::error::Result;
use crate::layout::Strided;

/// What a [`Wrapped`] store does around its inner store's writes, erases
/// and flushes. Each method gets the inner store and does the call itself
/// (or not); the defaults just call through.
pub trait Hooks: Send + Sync + fmt::Debug {
    /// Around [`ChunkStore::write_chunk`].
    fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
        inner.write_chunk(chunk, data)
    }

    /// Around [`ChunkStore::erase_chunk`].
    fn erase(&self, inner: &dyn ChunkStore, chunk: &[u64]) -> Result<()> {
        inner.erase_chunk(chunk)
    }

    /// Around [`ChunkStore::flush`].
    fn flush(&self, inner: &dyn ChunkStore) -> Result<()> {
        inner.flush()
    }
}

/// `inner` with `hooks` around its writes, erases and flushes; every other
/// method, defaulted ones included, is the inner store's. Derefs to the
/// hooks, so their fields read as the wrapper's.
#[derive(Debug)]
pub struct Wrapped<H> {
    /// The store everything goes to.
    pub inner: Arc<dyn ChunkStore>,
    /// What runs around writes, erases and flushes.
    pub hooks: H,
}

impl<H: Hooks> Wrapped<H> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ChunkStore>, hooks: H) -> Arc<Self> {
        Arc::new(Wrapped { inner, hooks })
    }
}

impl<H> Deref for Wrapped<H> {
    type Target = H;
    fn deref(&self) -> &H {
        &self.hooks
    }
}

impl<H: Hooks> ChunkStore for Wrapped<H> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn meta(&self) -> StoreMeta {
        self.inner.meta()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn labels(&self) -> Option<Labels> {
        self.inner.labels()
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
    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.inner.read_region_into(chunk, region, out, at)
    }
    fn write_buffer_bytes(&self) -> usize {
        self.inner.write_buffer_bytes()
    }
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.hooks.write(&*self.inner, chunk, data)
    }
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.hooks.erase(&*self.inner, chunk)
    }
    fn flush(&self) -> Result<()> {
        self.hooks.flush(&*self.inner)
    }
    fn stored_bytes(&self) -> Result<u64> {
        self.inner.stored_bytes()
    }
    fn resize(&self, len: u64) -> Result<()> {
        self.inner.resize(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::store::conformance::{self, Harness, Reopen};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Count(AtomicUsize);
    impl Hooks for Count {
        fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
            self.0.fetch_add(1, Ordering::Relaxed);
            inner.write_chunk(chunk, data)
        }
    }

    /// A wrapper is the store it wraps: the whole conformance suite
    /// passes through it.
    #[test]
    fn wrapped_stores_conform() {
        let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
            let mem = Arc::new(MemoryStore::new(m.clone()));
            let w = Wrapped::new(mem.clone(), Count::default());
            // Reopening continues from the latest handle (as the memory
            // store's own suite does), wrapped again.
            let latest = parking_lot::Mutex::new(mem);
            let reopen: Reopen = Box::new(move || {
                let mut l = latest.lock();
                *l = Arc::new(l.reopen());
                Ok(Wrapped::new(l.clone(), Count::default()) as _)
            });
            Ok((w as _, reopen))
        };
        conformance::run_all(&Harness { create: &create });
    }

    /// Hooks see every write, and what they pass on reaches the store.
    #[test]
    fn hooks_run_around_writes() {
        let m = StoreMeta {
            dtype: crate::DType::U8,
            shape: vec![4],
            chunks: vec![2],
            fill: vec![0],
        };
        let mem = Arc::new(MemoryStore::new(m));
        let w = Wrapped::new(mem.clone(), Count::default());
        w.write_chunk(&[1], &[7, 8]).unwrap();
        assert_eq!(w.0.load(Ordering::Relaxed), 1);
        assert_eq!(&mem.read_chunk(&[1]).unwrap().unwrap()[..], &[7, 8]);
    }
}
