//! [`ChunkBuf`]: the byte buffer a decoded chunk lives in.
//!
//! Buffers of 1 MiB and more are anonymous memory maps of their own, so
//! that dropping one returns its pages to the operating system at once.
//! With plain `Vec`s, glibc's malloc raises its mmap threshold after the
//! first large free and then serves 16 MiB chunks from per-thread heaps
//! that it does not shrink, so freed chunks would stay resident beside
//! the cache's budget; see `docs/benchmarks.md#chunk-buffers-as-maps`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;
use parking_lot::Mutex;

use crate::dtype::Element;

/// Buffers at least this large get their own anonymous map.
pub(crate) const MAP_THRESHOLD: usize = 1 << 20;

/// A zero-initialised byte buffer; large ones are anonymous maps.
pub struct ChunkBuf {
    repr: Repr,
}

enum Repr {
    Heap(Vec<u8>),
    /// The map and how many of its bytes the buffer holds.
    Map(MmapMut, usize),
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
            // of 4,096; see docs/benchmarks.md#huge-pages-for-chunk-buffers.
            // The cache counts every chunk whole, so a partly written
            // buffer's huge pages stay within the budget.
            if len >= 2 << 20 {
                let _ = map.advise(memmap2::Advice::HugePage);
            }
            return ChunkBuf {
                repr: Repr::Map(map, len),
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
            fill_with(&mut b, pattern);
        }
        b
    }

    /// Shortens the buffer to `len` bytes (no-op if it is not longer).
    /// A map keeps its pages: those past `len` that were never written
    /// were never materialised either.
    pub fn truncate(&mut self, len: usize) {
        match &mut self.repr {
            Repr::Heap(v) => v.truncate(len),
            Repr::Map(_, n) => *n = len.min(*n),
        }
    }

    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> ChunkBuf {
        if bytes.len() < MAP_THRESHOLD {
            // Not zeroed first, as `zeroed` would.
            return ChunkBuf::from(bytes.to_vec());
        }
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

/// For handing a buffer to code that owns bytes by `AsRef` (an object
/// store's request body: `Bytes::from_owner`).
impl AsRef<[u8]> for ChunkBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Deref for ChunkBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.repr {
            Repr::Heap(v) => v,
            Repr::Map(m, n) => &m[..*n],
        }
    }
}

impl DerefMut for ChunkBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.repr {
            Repr::Heap(v) => v,
            Repr::Map(m, n) => &mut m[..*n],
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
            Repr::Map(..) => "map",
        };
        if self.len() <= 64 {
            write!(f, "ChunkBuf({kind}, {:?})", &**self)
        } else {
            write!(f, "ChunkBuf({kind}, {} bytes)", self.len())
        }
    }
}

/// Writes `pattern` (one element's bytes) over all of `buf`.
pub(crate) fn fill_with(buf: &mut [u8], pattern: &[u8]) {
    if pattern.iter().all(|&b| b == pattern[0]) {
        buf.fill(pattern[0]);
    } else {
        for d in buf.chunks_exact_mut(pattern.len()) {
            d.copy_from_slice(pattern);
        }
    }
}

/// A scratch buffer of `T`s that a parallel pass reuses block after
/// block: [`Scratch::reset`] gives a slice of any length, growing the
/// buffer only when it is too short. Buffers of `MAP_THRESHOLD` (1 MiB) bytes or
/// more are anonymous maps, so that dropping one returns its pages at once
/// (see the module doc: glibc keeps freed 16 MiB `Vec`s in its heaps,
/// where a pass that allocated a fresh `Vec` per job would leave them
/// resident for the passes after it;
/// `docs/benchmarks.md#chunk-buffers-as-maps`).
pub struct Scratch<T: Element> {
    repr: ScratchRepr<T>,
}

enum ScratchRepr<T> {
    Heap(Vec<T>),
    /// The map and its length in `T`s.
    Map(MmapMut, usize),
}

impl<T: Element> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            repr: ScratchRepr::Heap(Vec::new()),
        }
    }
}

impl<T: Element> Scratch<T> {
    /// How many `T`s the buffer holds without growing.
    pub fn capacity(&self) -> usize {
        match &self.repr {
            ScratchRepr::Heap(v) => v.len(),
            ScratchRepr::Map(_, n) => *n,
        }
    }

    /// A slice of `len` elements whose values are unspecified (zeros, or
    /// whatever an earlier block left): the caller overwrites them.
    pub fn reset(&mut self, len: usize) -> &mut [T] {
        if self.capacity() < len {
            let bytes = len.saturating_mul(size_of::<T>());
            self.repr = ScratchRepr::Heap(Vec::new());
            let map = (bytes >= MAP_THRESHOLD)
                .then(|| MmapMut::map_anon(bytes).ok())
                .flatten();
            self.repr = match map {
                Some(map) => {
                    if bytes >= 2 << 20 {
                        let _ = map.advise(memmap2::Advice::HugePage);
                    }
                    ScratchRepr::Map(map, len)
                }
                None => ScratchRepr::Heap(vec![T::default(); len]),
            };
        }
        match &mut self.repr {
            ScratchRepr::Heap(v) => &mut v[..len],
            ScratchRepr::Map(map, n) => {
                // The map is page-aligned and was written only through
                // slices of `T`, so the view exists; zeros if it did not.
                debug_assert!(len <= *n);
                let bytes = &mut map[..len * size_of::<T>()];
                if T::view_mut(bytes).is_none() {
                    bytes.fill(0);
                }
                T::view_mut(bytes).expect("zeroed, page-aligned bytes are Ts")
            }
        }
    }
}

/// The [`Scratch`] buffers of one parallel pass: each job takes one and
/// gives it back when it ends, so the pass allocates about one buffer per
/// thread however many jobs rayon splits it into, and frees them all when
/// the pool is dropped.
pub(crate) struct ScratchPool<T: Element> {
    free: Mutex<Vec<Scratch<T>>>,
}

impl<T: Element> Default for ScratchPool<T> {
    fn default() -> Self {
        ScratchPool {
            free: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Element> ScratchPool<T> {
    /// An empty pool.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A buffer from the pool (a new, empty one if none is free), given
    /// back when the returned guard is dropped.
    pub(crate) fn take(&self) -> Pooled<'_, T> {
        let buf = self.free.lock().pop().unwrap_or_default();
        Pooled {
            buf: Some(buf),
            pool: self,
        }
    }

    /// How many buffers are waiting in the pool.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.free.lock().len()
    }
}

/// A [`Scratch`] taken from a [`ScratchPool`]; it goes back on drop.
pub(crate) struct Pooled<'a, T: Element> {
    buf: Option<Scratch<T>>,
    pool: &'a ScratchPool<T>,
}

impl<T: Element> Deref for Pooled<'_, T> {
    type Target = Scratch<T>;
    fn deref(&self) -> &Scratch<T> {
        self.buf.as_ref().expect("present until drop")
    }
}

impl<T: Element> DerefMut for Pooled<'_, T> {
    fn deref_mut(&mut self) -> &mut Scratch<T> {
        self.buf.as_mut().expect("present until drop")
    }
}

impl<T: Element> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.free.lock().push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process's resident anonymous bytes (`RssAnon` in
    /// `/proc/self/status`, Linux).
    fn resident_anon() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("linux /proc");
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .expect("RssAnon in /proc/self/status");
        let kb: u64 = line.trim().trim_end_matches("kB").trim().parse().unwrap();
        kb * 1024
    }

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
        l.truncate(200);
        assert_eq!(l.len(), 200);
        assert_eq!(l[123], 7);
        l.truncate(300);
        assert_eq!(l.len(), 200);
        let mut h = ChunkBuf::filled(10, &[3]);
        h.truncate(4);
        assert_eq!(h, vec![3; 4]);
    }

    #[test]
    fn scratch_grows_only_when_too_short_and_keeps_values() {
        let mut s = Scratch::<f64>::default();
        assert_eq!(s.reset(3), &[0.0; 3]);
        s.reset(3)[1] = 2.5;
        assert_eq!(s.reset(2), &[0.0, 2.5]);
        // Past the map threshold: a map of zeros, aligned for f64.
        let n = MAP_THRESHOLD / 8 + 1;
        let big = s.reset(n);
        assert_eq!(big.len(), n);
        assert!(big.iter().all(|&x| x == 0.0));
        assert_eq!(big.as_ptr() as usize % align_of::<f64>(), 0);
        big[n - 1] = 7.0;
        assert_eq!(s.capacity(), n);
        // Shorter slices reuse the map; the values stay as written.
        assert_eq!(s.reset(n)[n - 1], 7.0);
        assert_eq!(s.reset(10).len(), 10);
        assert_eq!(s.capacity(), n);
        let mut b = Scratch::<bool>::default();
        assert!(b.reset(MAP_THRESHOLD + 5).iter().all(|&x| !x));
    }

    #[test]
    fn a_pool_hands_buffers_back_and_reuses_them() {
        let pool = ScratchPool::<u16>::new();
        {
            let mut a = pool.take();
            let mut b = pool.take();
            a.reset(MAP_THRESHOLD)[0] = 9;
            b.reset(4);
            assert_eq!(pool.idle(), 0);
        }
        assert_eq!(pool.idle(), 2);
        let mut again = pool.take();
        let mut other = pool.take();
        assert_eq!(pool.idle(), 0);
        // One of the two is the map written above, with its value.
        let caps = [again.capacity(), other.capacity()];
        assert!(caps.contains(&MAP_THRESHOLD), "{caps:?}");
        let big = if again.capacity() == MAP_THRESHOLD {
            &mut again
        } else {
            &mut other
        };
        assert_eq!(big.reset(1), &[9]);
    }

    #[test]
    fn dropping_a_large_buffer_returns_its_pages() {
        // The map is this buffer's alone: resident anonymous memory must
        // fall by about its size when it is dropped, whatever the heap does.
        let mut b = ChunkBuf::zeroed(256 << 20);
        b.fill(1);
        let before = resident_anon();
        drop(b);
        let after = resident_anon();
        assert!(
            before.saturating_sub(after) > 200 << 20,
            "anon {before} -> {after}"
        );
    }
}
