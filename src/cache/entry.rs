//! Cache entries: the key a chunk is found by, how keys are hashed and
//! sharded, and the entry with its slot (the chunk's data and state).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use lru::LruCache;
use parking_lot::Mutex;

use super::SHARDS;
use super::owner::Owner;
use crate::buffer::ChunkBuf;
use crate::layout::Small;

pub(super) struct Shard {
    pub(super) lru: LruCache<Key, Arc<Entry>, KeyHash>,
    /// Evicted entries whose write-back has not finished.
    pub(super) evicting: HashMap<Key, Arc<Entry>, KeyHash>,
}

/// Hashes a [`Key`] (two integers, ours, not an attacker's) with one
/// multiply-rotate step per word, as rustc's FxHash does, instead of the
/// default SipHash: the shard maps are looked up on every cached `get`,
/// and SipHash was a good part of the ~60 instructions `LruCache::get`
/// took per call (callgrind, `examples/get_hot`).
#[derive(Clone, Copy, Default)]
pub(super) struct KeyHash;

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

pub(super) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) owner: u64,
    pub(super) chunk: u64,
}

pub(super) struct Entry {
    pub(super) key: Key,
    pub(super) owner: Arc<Owner>,
    pub(super) coord: Small<u64>,
    pub(super) last_use: AtomicU64,
    pub(super) slot: Mutex<Slot>,
}

#[derive(Default)]
pub(super) struct Slot {
    /// Decoded chunk (full chunk shape); `None` until loaded.
    pub(super) data: Option<ChunkBuf>,
    /// `data` is newer than the store's copy.
    pub(super) dirty: bool,
    /// Removed from the cache; look the chunk up again.
    pub(super) detached: bool,
}

pub(super) fn shard_of(key: &Key) -> usize {
    // splitmix64 finaliser over both halves of the key.
    let mut z = key
        .owner
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key.chunk);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % SHARDS as u64) as usize
}

/// Bookkeeping bytes per cached chunk (entry, key, coordinate, LRU node),
/// an estimate for the memory report.
pub(crate) fn entry_overhead(ndim: usize) -> usize {
    std::mem::size_of::<Entry>() + 2 * std::mem::size_of::<Key>() + 8 * ndim + 64
}
