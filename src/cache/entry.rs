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
use crate::store::Written;

pub(super) struct Shard {
    pub(super) lru: LruCache<Key, Arc<Entry>, KeyHash>,
    /// Evicted entries whose write-back has not finished.
    pub(super) evicting: HashMap<Key, Arc<Entry>, KeyHash>,
}

/// Hashes a [`Key`] (two integers, ours, not an attacker's) with one
/// multiply-rotate step per word, as rustc's FxHash does, instead of the
/// default SipHash: the shard maps are looked up on every cached `get`,
/// where SipHash is a large share of the lookup's cost
/// (`docs/benchmarks.md#cache-key-hashing`).
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
    /// The elements written since the last write-back, kept only for a
    /// store that merges writes ([`Owner::merges`]); its bytes count as
    /// resident. Locked only while `slot` is held (lock order: slot, then
    /// written).
    pub(super) written: Mutex<Written>,
}

/// What an entry holds. Each state is one thing the cache can know about a
/// chunk, so data without a state (or a dirty chunk without data) cannot
/// be written down.
#[derive(Default)]
pub(super) enum Slot {
    /// Not loaded: just created (a load or a placeholder under way), or a
    /// load failed.
    #[default]
    Unloaded,
    /// Decoded chunk (full chunk shape), the same as the store's copy.
    Clean(ChunkBuf),
    /// Decoded chunk newer than the store's copy.
    Dirty(ChunkBuf),
    /// Dirty, and its last write-back failed: its data is nowhere else,
    /// so it stays (counted) until a write-back succeeds or the array is
    /// purged. Its bytes are the cache's `stranded` bytes.
    Stranded(ChunkBuf),
    /// Removed from the cache; look the chunk up again. Holds nothing.
    Detached,
}

impl Slot {
    /// The chunk's bytes, if loaded.
    pub(super) fn data(&self) -> Option<&ChunkBuf> {
        match self {
            Slot::Clean(d) | Slot::Dirty(d) | Slot::Stranded(d) => Some(d),
            Slot::Unloaded | Slot::Detached => None,
        }
    }

    /// The chunk's bytes, if loaded.
    pub(super) fn data_mut(&mut self) -> Option<&mut ChunkBuf> {
        match self {
            Slot::Clean(d) | Slot::Dirty(d) | Slot::Stranded(d) => Some(d),
            Slot::Unloaded | Slot::Detached => None,
        }
    }

    pub(super) fn is_detached(&self) -> bool {
        matches!(self, Slot::Detached)
    }

    /// Clean becomes dirty; returns the chunk's length if it changed.
    pub(super) fn mark_dirty(&mut self) -> Option<usize> {
        match std::mem::take(self) {
            Slot::Clean(d) => {
                let len = d.len();
                *self = Slot::Dirty(d);
                Some(len)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Dirty or stranded becomes clean (its data reached the store).
    pub(super) fn mark_clean(&mut self) {
        *self = match std::mem::take(self) {
            Slot::Dirty(d) | Slot::Stranded(d) => Slot::Clean(d),
            other => other,
        };
    }

    /// Dirty becomes stranded (its write-back failed); returns the chunk's
    /// length if it changed.
    pub(super) fn mark_stranded(&mut self) -> Option<usize> {
        match std::mem::take(self) {
            Slot::Dirty(d) => {
                let len = d.len();
                *self = Slot::Stranded(d);
                Some(len)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// The data, if newer than the store's, and whether it is stranded.
    pub(super) fn unwritten(&self) -> Option<(&ChunkBuf, bool)> {
        match self {
            Slot::Dirty(d) => Some((d, false)),
            Slot::Stranded(d) => Some((d, true)),
            Slot::Unloaded | Slot::Clean(_) | Slot::Detached => None,
        }
    }
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
