//! What the cache knows of one open array ([`Owner`]): its store, grid,
//! fill value, failure state and share of the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use parking_lot::Mutex;

use crate::buffer::{ChunkBuf, fill_with};
use crate::chunk_grid::ChunkGrid;
use crate::error::{Error, Result};
use crate::store::ChunkStore;

/// What the cache knows of one open array: its store, grid and fill value,
/// and its share of the cache.
pub(crate) struct Owner {
    pub(crate) id: u64,
    pub(crate) store: Arc<dyn ChunkStore>,
    pub(crate) grid: ChunkGrid,
    /// One element, native order.
    pub(crate) fill: Vec<u8>,
    /// Set after a failed write-back or flush: further writes are refused.
    pub(super) poison: Mutex<Option<String>>,
    /// Bytes the store allocates while writing one chunk
    /// ([`Capabilities::write_buffer_bytes`](crate::store::Capabilities::write_buffer_bytes)).
    pub(super) write_buffer: usize,
    pub(super) resident: AtomicUsize,
    pub(super) dirty: AtomicUsize,
    pub(super) stranded: AtomicUsize,
    pub(super) entries: AtomicUsize,
    /// Chunks were written to the store since its last successful flush.
    pub(super) unsynced: AtomicBool,
    /// The store refuses writes ([`Capabilities::read_only`]): nothing of
    /// this owner is ever dirty or written back.
    ///
    /// [`Capabilities::read_only`]: crate::store::Capabilities::read_only
    pub(super) read_only: bool,
    /// Whole-chunk writes are cached and written back by the cache's
    /// write-behind threads: the cache has them and the store writes in
    /// parallel.
    pub(crate) behind: bool,
    /// Bytes a load holds beside the chunk while it decodes
    /// ([`Capabilities::decodes`]): a chunk's size, or 0.
    ///
    /// [`Capabilities::decodes`]: crate::store::Capabilities::decodes
    pub(super) load_scratch: usize,
    /// Loads may go into a recycled buffer
    /// ([`Capabilities::reads_into`]).
    ///
    /// [`Capabilities::reads_into`]: crate::store::Capabilities::reads_into
    pub(super) reads_into: bool,
    /// The store merges writes
    /// ([`ChunkStore::merges_writes`](crate::store::ChunkStore::merges_writes)):
    /// each dirty chunk keeps a record of the elements written.
    pub(super) merges: bool,
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

    pub(super) fn chunk_bytes(&self) -> usize {
        self.grid.chunk_elements() * self.fill.len()
    }

    /// A chunk buffer holding the fill value everywhere: `spare` refilled
    /// if there is one (a buffer just evicted, of this chunk's size).
    pub(super) fn fill_buffer(&self, spare: Option<ChunkBuf>) -> ChunkBuf {
        match spare {
            Some(mut b) if b.len() == self.chunk_bytes() => {
                fill_with(&mut b, &self.fill);
                b
            }
            _ => ChunkBuf::filled(self.chunk_bytes(), &self.fill),
        }
    }
}
