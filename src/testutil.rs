//! Helpers shared by the unit tests.

use std::sync::Arc;

use crate::store::{MemoryStore, StoreMeta};
use crate::{Array, ChunkCache, Element};

/// A typed array over a fresh in-memory store (fill value zero) with its
/// own cache of `budget` bytes.
pub(crate) fn mem_array<T: Element>(shape: &[u64], chunks: &[u64], budget: usize) -> Array<T> {
    let meta = StoreMeta {
        dtype: T::DTYPE,
        shape: shape.to_vec(),
        chunks: chunks.to_vec(),
        fill: vec![0; T::DTYPE.size()],
    };
    Array::from_store(Arc::new(MemoryStore::new(meta)), ChunkCache::new(budget)).unwrap()
}
