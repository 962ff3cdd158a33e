//! [`ChunkBuf`]: the byte buffer a decoded chunk lives in.
//!
//! Buffers of 1 MiB and more are anonymous memory maps of their own, so
//! that dropping one returns its pages to the operating system at once.
//! With plain `Vec`s, glibc's malloc raises its mmap threshold after the
//! first large free and then serves 16 MiB chunks from per-thread heaps
//! that it does not shrink: `convert` with a 64 MiB cache peaked at
//! 157 MiB resident that way, against 111 MiB with the threshold pinned
//! (measured with `/usr/bin/time` and `MALLOC_MMAP_THRESHOLD_`).

use std::fmt;
use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;

/// Buffers at least this large get their own anonymous map.
pub const MAP_THRESHOLD: usize = 1 << 20;

/// A zero-initialised byte buffer; large ones are anonymous maps.
pub struct ChunkBuf {
    repr: Repr,
}

enum Repr {
    Heap(Vec<u8>),
    Map(MmapMut),
}

impl ChunkBuf {
    /// A buffer of `len` zero bytes. Pages of a large buffer are only
    /// materialised when first written.
    pub fn zeroed(len: usize) -> ChunkBuf {
        if len >= MAP_THRESHOLD
            && let Ok(map) = MmapMut::map_anon(len)
        {
            // Transparent huge pages where the system offers them on
            // request (`enabled` = `madvise`, as on the development
            // machine): a fresh 16 MB buffer then costs 8 faults instead
            // of 4,096. Random 64x64 tiles of a 20-plane lz4 array
            // (`examples/random_reads FILE tiles`, two runs each, binaries
            // alternated): Zarr 1.5-2.0 ms a tile with the advice, 3.5-3.6
            // without; HDF5 2.4-2.8 against 6.6-6.9 (a quarter of the
            // tiles load their chunk: the cache holds 15 of the 20). The
            // cache counts every chunk whole, so a partly written
            // buffer's huge pages stay within the budget.
            if len >= 2 << 20 {
                let _ = map.advise(memmap2::Advice::HugePage);
            }
            return ChunkBuf {
                repr: Repr::Map(map),
            };
        }
        ChunkBuf {
            repr: Repr::Heap(vec![0u8; len]),
        }
    }

    /// A buffer of `len` bytes repeating `pattern` (one element's bytes).
    pub fn filled(len: usize, pattern: &[u8]) -> ChunkBuf {
        let mut b = ChunkBuf::zeroed(len);
        if pattern.iter().any(|&x| x != 0) {
            for d in b.chunks_exact_mut(pattern.len()) {
                d.copy_from_slice(pattern);
            }
        }
        b
    }

    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> ChunkBuf {
        let mut b = ChunkBuf::zeroed(bytes.len());
        b.copy_from_slice(bytes);
        b
    }
}

impl From<Vec<u8>> for ChunkBuf {
    fn from(v: Vec<u8>) -> Self {
        ChunkBuf {
            repr: Repr::Heap(v),
        }
    }
}

impl Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.repr {
            Repr::Heap(v) => v,
            Repr::Map(m) => m,
        }
    }
}

impl DerefMut for ChunkBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.repr {
            Repr::Heap(v) => v,
            Repr::Map(m) => m,
        }
    }
}

impl Clone for ChunkBuf {
    fn clone(&self) -> Self {
        ChunkBuf::copy_of(self)
    }
}

impl PartialEq for ChunkBuf {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ChunkBuf {}

impl PartialEq<[u8]> for ChunkBuf {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Vec<u8>> for ChunkBuf {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.repr {
            Repr::Heap(_) => "heap",
            Repr::Map(_) => "map",
        };
        if self.len() <= 64 {
            write!(f, "ChunkBuf({kind}, {:?})", &**self)
        } else {
            write!(f, "ChunkBuf({kind}, {} bytes)", self.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procmem::Rss;

    #[test]
    fn small_and_large_buffers() {
        let s = ChunkBuf::filled(10, &[1, 2]);
        assert_eq!(s, vec![1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
        let mut l = ChunkBuf::zeroed(4 << 20);
        assert!(format!("{l:?}").contains("map"));
        assert!(l.iter().all(|&b| b == 0));
        l[123] = 7;
        let c = l.clone();
        assert_eq!(c[123], 7);
        assert_eq!(c, l);
        assert_eq!(ChunkBuf::zeroed(0).len(), 0);
    }

    #[test]
    fn dropping_a_large_buffer_returns_its_pages() {
        // The map is this buffer's alone: resident anonymous memory must
        // fall by about its size when it is dropped, whatever the heap does.
        let mut b = ChunkBuf::zeroed(256 << 20);
        b.fill(1);
        let before = Rss::now().expect("linux /proc").anon;
        drop(b);
        let after = Rss::now().expect("linux /proc").anon;
        assert!(
            before.saturating_sub(after) > 200 << 20,
            "anon {before} -> {after}"
        );
    }
}
