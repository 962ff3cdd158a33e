//! A store that wraps another: every method goes to the inner store, and
//! [`Hooks`] run around writes, erases and flushes. For fault injection,
//! slow stores and instrumentation (the reliability tests and
//! `examples/slow_store_budget.rs` use it), without restating the whole
//! trait and silently missing a method added later.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::ChunkStore;
#[cfg(test)]
use super::StoreMeta;
use crate::error::Result;

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

crate::store::forward_chunk_store! {
    [H: Hooks] Wrapped<H>,
    read: |s| s.inner,
    write_chunk: |s, chunk, data| s.hooks.write(&*s.inner, chunk, data),
    erase_chunk: |s, chunk| s.hooks.erase(&*s.inner, chunk),
    flush: |s| s.hooks.flush(&*s.inner),
    resize: |s, len| s.inner.resize(len),
    update_attributes: |s, change| s.inner.update_attributes(change),
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
