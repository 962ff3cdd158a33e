//! The in-memory reference store. Tests and fuzzers compare every other
//! store against it. It models durability: writes land in a volatile map
//! and only [`flush`](ChunkStore::flush) makes them durable, so
//! [`MemoryStore::reopen`] shows what a crash right now would leave. It can
//! also inject an I/O failure after a given number of operations.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{Capabilities, ChunkStore, StoreMeta};
use crate::buffer::ChunkBuf;
use crate::error::{Error, Result};

/// Chunks by their row-major index in the grid (`MemoryStore::index`):
/// a `u64` key makes every map clone (a flush, a reopen) one allocation,
/// not one per chunk.
type Chunks = HashMap<u64, Arc<[u8]>>;

#[derive(Debug, Default)]
struct State {
    /// What a reader sees now: every completed write.
    live: Chunks,
    /// What survives a crash: the live map as of the last flush.
    durable: Chunks,
    /// Length of the first axis (a resize is durable at once).
    len: u64,
}

/// In-memory [`ChunkStore`] with a durable/volatile split and failure
/// injection.
#[derive(Debug)]
pub struct MemoryStore {
    /// Shape as created; the first axis's current length is `State::len`.
    meta: StoreMeta,
    /// Chunks per step of the first axis's chunk index: the product of
    /// the other axes' chunk counts (which never change).
    row_chunks: u64,
    state: Arc<Mutex<State>>,
    /// Operations (reads, writes, erases, flushes) left before every
    /// further operation fails; `u64::MAX` disables injection.
    fail_after: AtomicU64,
}

impl MemoryStore {
    /// An empty store (every chunk never written).
    pub fn new(meta: StoreMeta) -> Self {
        let len = meta.shape.first().copied().unwrap_or(0);
        let row_chunks = meta
            .shape
            .iter()
            .zip(&meta.chunks)
            .skip(1)
            .map(|(&n, &c)| n.div_ceil(c))
            .product();
        MemoryStore {
            meta,
            row_chunks,
            state: Arc::new(Mutex::new(State {
                len,
                ..State::default()
            })),
            fail_after: AtomicU64::new(u64::MAX),
        }
    }

    /// A new store holding what was durable at the last flush, as if the
    /// process had been killed and the array reopened.
    pub fn reopen(&self) -> MemoryStore {
        let (durable, len) = {
            let s = self.state.lock();
            (s.durable.clone(), s.len)
        };
        MemoryStore {
            meta: self.meta.clone(),
            row_chunks: self.row_chunks,
            state: Arc::new(Mutex::new(State {
                live: durable.clone(),
                durable,
                len,
            })),
            fail_after: AtomicU64::new(u64::MAX),
        }
    }

    /// Makes every operation after the next `n` fail with an I/O error.
    pub fn fail_after(&self, n: u64) {
        self.fail_after.store(n, Ordering::SeqCst);
    }

    /// Calls `f` with the coordinates and bytes of every chunk held
    /// durably (what a crash now would leave), in no particular order.
    /// For oracles that check a store's durable contents without copying
    /// the store ([`reopen`](Self::reopen)) or each chunk (`read_chunk`).
    pub fn for_each_durable(&self, mut f: impl FnMut(&[u64], &[u8])) {
        let grid: Vec<u64> = self
            .meta
            .shape
            .iter()
            .zip(&self.meta.chunks)
            .map(|(&n, &c)| n.div_ceil(c))
            .collect();
        let mut coord = vec![0u64; grid.len()];
        let s = self.state.lock();
        for (&i, bytes) in &s.durable {
            // `index` inverted: row-major, the first axis unbounded.
            let mut rest = i;
            for d in (1..grid.len()).rev() {
                coord[d] = rest % grid[d];
                rest /= grid[d];
            }
            if let Some(c) = coord.first_mut() {
                *c = rest;
            }
            f(&coord, bytes);
        }
    }

    /// Number of chunks stored (live).
    pub fn chunk_count(&self) -> usize {
        self.state.lock().live.len()
    }

    fn tick(&self) -> Result<()> {
        let r = self
            .fail_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
                0 => None,
                u64::MAX => Some(u64::MAX),
                n => Some(n - 1),
            });
        match r {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Store {
                backend: "memory",
                message: "injected I/O failure".into(),
            }),
        }
    }

    fn shape(&self) -> Vec<u64> {
        let mut shape = self.meta.shape.clone();
        if let Some(n) = shape.first_mut() {
            *n = self.state.lock().len;
        }
        shape
    }

    /// The row-major index of a chunk [`check`](Self::check) accepted:
    /// one-to-one on the grid, whatever the first axis's length.
    fn index(&self, chunk: &[u64]) -> u64 {
        chunk
            .iter()
            .zip(&self.meta.shape)
            .zip(&self.meta.chunks)
            .skip(1)
            .fold(
                chunk.first().copied().unwrap_or(0),
                |acc, ((&k, &n), &c)| acc * n.div_ceil(c) + k,
            )
    }

    fn check(&self, chunk: &[u64]) -> Result<()> {
        // Every store call runs this, so it builds no shape vector (an
        // allocation per call showed in fuzz target store_ops's profile).
        let len = self.state.lock().len;
        let in_grid = chunk.len() == self.meta.shape.len()
            && chunk
                .iter()
                .zip(&self.meta.shape)
                .zip(&self.meta.chunks)
                .enumerate()
                .all(|(d, ((&k, &n), &c))| k < if d == 0 { len } else { n }.div_ceil(c));
        if in_grid {
            Ok(())
        } else {
            Err(Error::Store {
                backend: "memory",
                message: format!("chunk {chunk:?} is outside the grid"),
            })
        }
    }
}

impl ChunkStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn meta(&self) -> StoreMeta {
        StoreMeta {
            shape: self.shape(),
            ..self.meta.clone()
        }
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            parallel_writes: true,
            tracks_missing: true,
            ..Capabilities::default()
        }
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check(chunk)?;
        self.tick()?;
        Ok(self
            .state
            .lock()
            .live
            .get(&self.index(chunk))
            .map(|d| ChunkBuf::copy_of(d)))
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check(chunk)?;
        if data.len() != self.meta.chunk_bytes() {
            return Err(Error::Store {
                backend: "memory",
                message: format!(
                    "chunk {chunk:?}: {} bytes given, {} expected",
                    data.len(),
                    self.meta.chunk_bytes()
                ),
            });
        }
        self.tick()?;
        self.state
            .lock()
            .live
            .insert(self.index(chunk), Arc::from(data));
        Ok(())
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.check(chunk)?;
        self.tick()?;
        self.state.lock().live.remove(&self.index(chunk));
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.tick()?;
        let mut s = self.state.lock();
        s.durable = s.live.clone();
        Ok(())
    }

    fn stored_bytes(&self) -> Result<u64> {
        Ok(self
            .state
            .lock()
            .live
            .values()
            .map(|v| v.len() as u64)
            .sum())
    }

    fn resize(&self, len: u64) -> Result<()> {
        if self.meta.shape.is_empty() {
            return Err(Error::invalid("a 0-d array has no axis to resize"));
        }
        self.tick()?;
        // The chunks of the first `rows` chunk rows are the indices below
        // `rows * row_chunks` (row-major, first axis slowest).
        let end = len.div_ceil(self.meta.chunks[0]) * self.row_chunks;
        let mut s = self.state.lock();
        s.live.retain(|&i, _| i < end);
        s.durable.retain(|&i, _| i < end);
        s.len = len;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;
    use crate::store::conformance;

    fn meta(dtype: DType, shape: &[u64], chunks: &[u64]) -> StoreMeta {
        StoreMeta {
            dtype,
            shape: shape.to_vec(),
            chunks: chunks.to_vec(),
            fill: vec![0; dtype.size()],
        }
    }

    #[test]
    fn conformance_suite() {
        conformance::run_all(&conformance::Harness {
            create: &|m: &StoreMeta| {
                let s = Arc::new(MemoryStore::new(m.clone()));
                // Reopening continues from the latest handle, as a file
                // reopened twice shows what the second handle wrote.
                let latest = Mutex::new(s.clone());
                Ok((
                    s as Arc<dyn ChunkStore>,
                    Box::new(move || {
                        let mut l = latest.lock();
                        *l = Arc::new(l.reopen());
                        Ok(l.clone() as Arc<dyn ChunkStore>)
                    }) as conformance::Reopen,
                ))
            },
        });
    }

    #[test]
    fn reopen_shows_only_flushed_writes() {
        let s = MemoryStore::new(meta(DType::U8, &[4], &[2]));
        s.write_chunk(&[0], &[1, 2]).unwrap();
        s.flush().unwrap();
        s.write_chunk(&[1], &[3, 4]).unwrap();
        let r = s.reopen();
        assert_eq!(r.read_chunk(&[0]).unwrap().unwrap(), vec![1, 2]);
        assert_eq!(r.read_chunk(&[1]).unwrap(), None);
    }

    #[test]
    fn injected_failures() {
        let s = MemoryStore::new(meta(DType::U8, &[4], &[2]));
        s.fail_after(1);
        s.write_chunk(&[0], &[1, 2]).unwrap();
        assert!(s.write_chunk(&[1], &[1, 2]).is_err());
        assert!(s.read_chunk(&[0]).is_err());
        assert!(s.flush().is_err());
    }
}
