//! The one backend boundary: a [`ChunkStore`] reads, writes and erases whole
//! decoded chunks of one array and makes them durable on [`flush`].
//!
//! # Contract
//!
//! - Chunks are addressed by their coordinate in the regular chunk grid
//!   described by [`StoreMeta`].
//! - Chunk bytes crossing this boundary are decoded: native byte order,
//!   C order, the full chunk shape (edge chunks included; the part outside
//!   the array holds the fill value on read and is ignored on write).
//! - A chunk that was never written is `Ok(None)`, not an error; the caller
//!   supplies the fill value. Stores without that notion (a dense `.npy`
//!   file) always return `Some`.
//! - Methods take `&self` and may be called from several threads at once,
//!   for different chunks. Through an array, two calls for the same chunk
//!   never overlap: the cache holds the chunk's lock across loads,
//!   write-backs and partial reads (`read_region_into`) alike.
//! - [`flush`] returns only after everything written before it is durable
//!   (fsync or equivalent).
//! - Errors name the file or the backend. After a failed write a store
//!   does not guess what reached the disk: the layer above refuses further
//!   writes until the array is reopened.
//!
//! [`flush`]: ChunkStore::flush

pub(crate) mod cover;
pub(crate) mod filemap;
#[cfg(feature = "hdf5")]
pub(crate) mod hdf5;
mod memory;
pub(crate) mod npy;
#[cfg(any(feature = "zarr", feature = "hdf5"))]
pub(crate) mod rawio;
mod region;
mod wrap;
mod written;
#[cfg(feature = "zarr")]
pub(crate) mod zarr;

// The test suite every store runs: a new backend is one file plus one
// call to `conformance::run_all`.
#[doc(hidden)]
pub mod conformance;

#[cfg(feature = "hdf5")]
pub use hdf5::{DEFAULT_DATASET, DatasetSummary, Hdf5Options, Hdf5Store, list_datasets};
pub use memory::MemoryStore;
// The bench's tile floor in the `chunkyard` binary maps files as the
// stores do (`src/bin/chunkyard/bench/floor.rs`).
#[doc(hidden)]
pub use filemap::{Touched, release_pages, touched_estimate};
pub use npy::{
    MAX_HEADER_BYTES, NpyHeader, NpyOptions, NpyStore, Order, RawLayout, parse_npy_header,
};
pub use wrap::{Hooks, Wrapped};
pub use written::Written;
#[cfg(feature = "zarr")]
pub use zarr::{ZarrOptions, ZarrStore};

use std::fmt;

use crate::attrs::Attrs;
use crate::buffer::ChunkBuf;
use crate::dtype::DType;
use crate::error::Result;
pub use crate::layout::Strided;
use crate::layout::c_strides;
pub use region::{check_region_fits, check_strided_fits, extract_region, region_fits};
pub(crate) use region::{copy_region_of_chunk, place_region};

/// Whether every element of `data` has the bytes of `fill` (a chunk that
/// stores nothing: formats that track missing chunks drop it). Compared in
/// 4 KiB pieces against the fill repeated, by `memcmp`, which stops at the
/// first difference: a chunk of data costs a few bytes' comparison, a
/// chunk of fill one pass at memory speed.
#[cfg(any(feature = "zarr", feature = "hdf5"))]
pub(crate) fn is_fill(data: &[u8], fill: &[u8]) -> bool {
    const PIECE: usize = 4096;
    let k = fill.len();
    if k == 0 || !data.len().is_multiple_of(k) {
        return false;
    }
    if !PIECE.is_multiple_of(k) {
        return data.chunks_exact(k).all(|e| e == fill);
    }
    let mut pattern = [0u8; PIECE];
    for e in pattern.chunks_exact_mut(k) {
        e.copy_from_slice(fill);
    }
    data.chunks(PIECE).all(|c| c == &pattern[..c.len()])
}

/// What a store holds: element type, shape, chunk shape and fill value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMeta {
    /// Element type.
    pub dtype: DType,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Chunk shape (same rank as `shape`, every entry >= 1).
    pub chunks: Vec<u64>,
    /// One element, native byte order: what never-written chunks read as.
    pub fill: Vec<u8>,
}

impl StoreMeta {
    /// Bytes in one decoded chunk.
    pub fn chunk_bytes(&self) -> usize {
        self.chunks.iter().product::<u64>() as usize * self.dtype.size()
    }
}

/// What a store can do efficiently; the cache and the array adapt to it.
///
/// Build it from [`Capabilities::default`] (a store that can do none of
/// these) by naming the fields that differ:
/// `Capabilities { parallel_writes: true, ..Capabilities::default() }`
/// inside this crate, or field by field outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// `write_chunk` may run on several threads at once (parallel flush).
    pub parallel_writes: bool,
    /// [`read_region_into`](ChunkStore::read_region_into) reads only the
    /// bytes it needs, not the whole chunk: the array then reads small
    /// parts of uncached chunks straight from the store.
    pub partial_reads: bool,
    /// The store remembers which chunks were never written.
    pub tracks_missing: bool,
    /// The store refuses every write (it was opened read-only): the array
    /// refuses writes before they reach the cache, and its reads need not
    /// keep out write-backs that cannot happen.
    pub read_only: bool,
    /// A whole-chunk read holds the chunk's stored (compressed or
    /// filtered) bytes, about a chunk's size, beside the decoded chunk
    /// while it decodes: the cache reserves that much of its budget for
    /// every load under way.
    pub decodes: bool,
    /// [`read_chunk_into`](ChunkStore::read_chunk_into) reads or decodes
    /// a whole chunk straight into the caller's buffer, with no chunk-sized
    /// buffer of its own: the cache then loads into the buffer of the chunk
    /// it just evicted instead of a fresh one.
    pub reads_into: bool,
    /// Bytes `write_chunk` allocates at most beside `data` while it runs
    /// (an encoded or byte-swapped copy of the chunk). The cache counts
    /// them against its budget for each write under way, so that a writer
    /// faster than its store waits instead of growing memory.
    pub write_buffer_bytes: usize,
    /// Reads and writes wait on the network rather than the CPU (object
    /// storage): a flush runs up to this many chunk writes at once, each
    /// on a thread of its own, and scans (`reduce`, `convert`, block
    /// copies) run their blocks on a pool this wide, instead of one per
    /// thread of rayon's pool (two on a two-core machine). Memory stays
    /// bounded: each write still reserves `write_buffer_bytes` of the
    /// cache's budget first, and a scan's pool is narrowed so that its
    /// blocks' buffers fit in half the cache's budget. 0 or 1: rayon.
    pub concurrent_requests: usize,
}

/// Descriptive metadata a format keeps beside the data: per-axis names and
/// user attributes (a JSON object). `convert` carries them over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// One optional name per axis, or `None` when the array names none.
    pub dimension_names: Option<Vec<Option<String>>>,
    /// A JSON object's text (`{}` when there are none).
    pub attributes: String,
    /// What the store holds but could not express here, one line each
    /// (an HDF5 attribute of a compound type, say): `convert` reports
    /// them as dropped.
    pub dropped: Vec<String>,
}

/// A region inside one chunk: per axis (first position, step, count).
pub type ChunkRegion<'a> = &'a [(u64, u64, u64)];

/// The backend boundary. See the [module docs](self) for the contract.
///
/// Seven methods are required: what every backend must do. The other
/// nine have defaults that are correct for any store and are overridden
/// for speed (`read_chunk_into`, `read_region_into`, announced in
/// [`Capabilities`]), for what a format has (`describe`, `labels`,
/// `update_attributes`, `stored_bytes`, `resize`) or for writers in
/// several processes (`merges_writes`, `write_chunk_merging`).
/// Conveniences built on these are in [`ChunkStoreExt`].
///
/// A store that wraps another implements it with [`forward_chunk_store!`],
/// the one place that lists every method: adding a method here means
/// adding it there (the test `forwarding_reaches_every_method` checks
/// that each one gets through).
pub trait ChunkStore: Send + Sync + fmt::Debug {
    /// Short backend name for messages (`npy`, `memory`, `zarr`).
    fn backend(&self) -> &'static str;

    /// Element type, shape, chunk shape and fill value. A snapshot: the
    /// shape changes when the array is [resized](ChunkStore::resize).
    fn meta(&self) -> StoreMeta;

    /// What this store can do efficiently.
    fn capabilities(&self) -> Capabilities;

    /// Reads one decoded chunk; `Ok(None)` if it was never written.
    /// Allocate it with [`ChunkBuf::zeroed`] so that large chunks are
    /// returned to the operating system when the cache drops them.
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>>;

    /// Writes one decoded chunk (`data.len() == meta().chunk_bytes()`).
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()>;

    /// Forgets a chunk: it reads as the fill value afterwards.
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()>;

    /// Makes every completed write durable before returning.
    fn flush(&self) -> Result<()>;

    /// One line about the storage layout for people (`info`), e.g.
    /// `npy 1.0, C order, little-endian`. Default: the backend's name.
    fn describe(&self) -> String {
        self.backend().to_string()
    }

    /// Axis names and attributes, for formats that keep them (Zarr,
    /// HDF5).
    fn labels(&self) -> Option<Labels> {
        None
    }

    /// Reads one decoded chunk into `out` (`meta().chunk_bytes()` long);
    /// `Ok(false)` if it was never written (`out` is then unspecified).
    /// Streaming reads use it to skip a copy; the default reads the chunk
    /// with [`read_chunk`](ChunkStore::read_chunk) and copies it.
    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        if data.len() != out.len() {
            return Err(crate::error::Error::Store {
                backend: self.backend(),
                message: format!(
                    "chunk {chunk:?} decoded to {} bytes, {} expected",
                    data.len(),
                    out.len()
                ),
            });
        }
        out.copy_from_slice(&data);
        Ok(true)
    }

    /// Reads a region of one chunk straight into `out`, at the positions
    /// `at` gives (element offset and per-axis element strides of the
    /// region's elements in `out`); `Ok(false)` if the chunk was never
    /// written (`out` is then untouched). Fails with `InvalidArgument` if
    /// the region does not fit the chunk or `at` reaches past `out`.
    ///
    /// The default reads the whole chunk; stores with
    /// [`Capabilities::partial_reads`] override it to read only what is
    /// asked for.
    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        let meta = self.meta();
        check_region_fits(&meta, chunk, region)?;
        let elem = meta.dtype.size();
        check_strided_fits(region, elem, out.len(), at)?;
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        if data.len() != meta.chunk_bytes() {
            return Err(crate::error::Error::Store {
                backend: self.backend(),
                message: format!(
                    "chunk {chunk:?} decoded to {} bytes, {} expected",
                    data.len(),
                    meta.chunk_bytes()
                ),
            });
        }
        copy_region_of_chunk(&meta, &data, region, out, at);
        Ok(true)
    }

    /// Bytes the array occupies on disk (allocated blocks for sparse
    /// files), for the memory report. Default: `Unsupported`.
    fn stored_bytes(&self) -> Result<u64> {
        Err(crate::error::Error::Unsupported(format!(
            "{} stores do not report their size",
            self.backend()
        )))
    }

    /// Whether this store wants to know which elements of a chunk were
    /// written ([`write_chunk_merging`](Self::write_chunk_merging)): it
    /// may find a chunk changed by another process since it read it, and
    /// then re-applies only those elements. The cache keeps a [`Written`]
    /// record per dirty chunk of such a store. Default: `false`.
    fn merges_writes(&self) -> bool {
        false
    }

    /// Writes a chunk of which this process changed only the elements in
    /// `written` since it read the chunk: a store that
    /// [merges writes](Self::merges_writes) writes `data` only if the
    /// chunk is still the version it read, and otherwise copies the
    /// written elements onto the newer version and writes that (retrying
    /// until it lands), so no other writer's elements are lost. Default:
    /// [`write_chunk`](Self::write_chunk).
    fn write_chunk_merging(&self, chunk: &[u64], data: &[u8], written: &Written) -> Result<()> {
        let _ = written;
        self.write_chunk(chunk, data)
    }

    /// Changes the array's attributes and makes them durable before
    /// returning: `change` edits the attributes as the store holds them
    /// now, and may refuse with an error (then nothing is written). A
    /// store whose attributes other processes may change at the same time
    /// (Zarr on object storage) applies `change` to the version it read and
    /// writes it back on the condition that it is still current, calling
    /// `change` again on the newer version otherwise: so `change` must
    /// depend only on its argument and what it captured, and another
    /// writer's change of other keys is never lost. Values the format
    /// cannot hold are an `InvalidArgument` error naming them.
    ///
    /// The default refuses: a format that holds no attributes says so.
    fn update_attributes(&self, change: &dyn Fn(&mut Attrs) -> Result<()>) -> Result<()> {
        let _ = change;
        Err(crate::error::Error::Unsupported(format!(
            "{} arrays hold no attributes",
            self.backend()
        )))
    }

    /// Changes the length of the first axis to `len` and makes the new
    /// shape durable before returning. Chunk coordinates keep their
    /// meaning. Elements added read as the fill value once the layer
    /// above has written back the chunks it holds; chunks wholly past a
    /// shorter end are dropped. The caller (the array) guarantees that no
    /// other call on this store runs meanwhile for a chunk that the resize
    /// drops, and fills the cut-off part of the last chunk itself.
    ///
    /// The default refuses: a store that cannot change its shape says so.
    fn resize(&self, len: u64) -> Result<()> {
        let _ = len;
        Err(crate::error::Error::Unsupported(format!(
            "{} arrays cannot be resized",
            self.backend()
        )))
    }
}

/// Conveniences over any [`ChunkStore`], for tests, tools and callers that
/// want a region as its own buffer.
pub trait ChunkStoreExt: ChunkStore {
    /// Reads a region of one chunk into a new dense C-order buffer of the
    /// region's counts; `Ok(None)` if the chunk was never written. The
    /// region is checked against the chunk shape before anything is
    /// allocated.
    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        let meta = self.meta();
        check_region_fits(&meta, chunk, region)?;
        let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
        let strides = c_strides(&shape);
        let mut out = vec![0u8; shape.iter().product::<u64>() as usize * meta.dtype.size()];
        let at = Strided {
            offset: 0,
            strides: &strides,
        };
        Ok(self
            .read_region_into(chunk, region, &mut out, at)?
            .then_some(out))
    }
}

impl<S: ChunkStore + ?Sized> ChunkStoreExt for S {}

/// Implements [`ChunkStore`] for a store that hands every call to another
/// one: the one place outside the trait that lists all its methods, so a
/// wrapper cannot silently fall back to a default the inner store
/// overrides. Reads, metadata and descriptions go to `read`; the five
/// calls that change what is stored each name their own expression (the
/// locked stores take their lock exclusively to resize and to change
/// attributes; `Wrapped` runs its hooks around writes). Each `|s, ...|` binds `&self` and the
/// method's arguments.
///
/// Two optional trailing clauses, `merges_writes: |s| ...` and
/// `write_chunk_merging: |s, chunk, data, written| ...`, forward merging
/// writes ([`ChunkStore::merges_writes`]); without them the wrapper does
/// not merge (the cache then sends every write through `write_chunk`,
/// where `Wrapped`'s hooks see it).
///
/// ```text
/// forward_chunk_store! {
///     [H: Hooks] Wrapped<H>,
///     read: |s| &*s.inner,
///     write_chunk: |s, chunk, data| s.hooks.write(&*s.inner, chunk, data),
///     erase_chunk: |s, chunk| s.hooks.erase(&*s.inner, chunk),
///     flush: |s| s.hooks.flush(&*s.inner),
///     resize: |s, len| s.inner.resize(len),
///     update_attributes: |s, change| s.inner.update_attributes(change),
/// }
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! forward_chunk_store {
    // Without the merging clauses: the wrapper does not merge writes
    // (every write goes through its `write_chunk`, so its hooks see it).
    (
        [$($gen:tt)*] $ty:ty,
        read: |$r:ident| $read:expr,
        write_chunk: |$ws:ident, $wc:ident, $wd:ident| $write:expr,
        erase_chunk: |$es:ident, $ec:ident| $erase:expr,
        flush: |$fs:ident| $flush:expr,
        resize: |$zs:ident, $zl:ident| $resize:expr,
        update_attributes: |$us:ident, $uc:ident| $update:expr $(,)?
    ) => {
        $crate::store::forward_chunk_store! {
            [$($gen)*] $ty,
            read: |$r| $read,
            write_chunk: |$ws, $wc, $wd| $write,
            erase_chunk: |$es, $ec| $erase,
            flush: |$fs| $flush,
            resize: |$zs, $zl| $resize,
            update_attributes: |$us, $uc| $update,
            merges_writes: |_s| false,
            write_chunk_merging: |$ws, $wc, $wd, _written| $write,
        }
    };
    (
        [$($gen:tt)*] $ty:ty,
        read: |$r:ident| $read:expr,
        write_chunk: |$ws:ident, $wc:ident, $wd:ident| $write:expr,
        erase_chunk: |$es:ident, $ec:ident| $erase:expr,
        flush: |$fs:ident| $flush:expr,
        resize: |$zs:ident, $zl:ident| $resize:expr,
        update_attributes: |$us:ident, $uc:ident| $update:expr,
        merges_writes: |$ms:ident| $merges:expr,
        write_chunk_merging: |$mws:ident, $mwc:ident, $mwd:ident, $mww:ident| $merging:expr $(,)?
    ) => {
        impl<$($gen)*> $crate::store::ChunkStore for $ty {
            fn backend(&self) -> &'static str {
                let $r = self;
                $read.backend()
            }
            fn meta(&self) -> $crate::store::StoreMeta {
                let $r = self;
                $read.meta()
            }
            fn capabilities(&self) -> $crate::store::Capabilities {
                let $r = self;
                $read.capabilities()
            }
            fn read_chunk(
                &self,
                chunk: &[u64],
            ) -> $crate::Result<::std::option::Option<$crate::ChunkBuf>> {
                let $r = self;
                $read.read_chunk(chunk)
            }
            fn write_chunk(&self, $wc: &[u64], $wd: &[u8]) -> $crate::Result<()> {
                let $ws = self;
                $write
            }
            fn erase_chunk(&self, $ec: &[u64]) -> $crate::Result<()> {
                let $es = self;
                $erase
            }
            fn flush(&self) -> $crate::Result<()> {
                let $fs = self;
                $flush
            }
            fn describe(&self) -> ::std::string::String {
                let $r = self;
                $read.describe()
            }
            fn labels(&self) -> ::std::option::Option<$crate::store::Labels> {
                let $r = self;
                $read.labels()
            }
            fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> $crate::Result<bool> {
                let $r = self;
                $read.read_chunk_into(chunk, out)
            }
            fn read_region_into(
                &self,
                chunk: &[u64],
                region: $crate::store::ChunkRegion<'_>,
                out: &mut [u8],
                at: $crate::store::Strided<'_>,
            ) -> $crate::Result<bool> {
                let $r = self;
                $read.read_region_into(chunk, region, out, at)
            }
            fn stored_bytes(&self) -> $crate::Result<u64> {
                let $r = self;
                $read.stored_bytes()
            }
            fn merges_writes(&self) -> bool {
                let $ms = self;
                $merges
            }
            fn write_chunk_merging(
                &self,
                $mwc: &[u64],
                $mwd: &[u8],
                $mww: &$crate::store::Written,
            ) -> $crate::Result<()> {
                let $mws = self;
                $merging
            }
            fn resize(&self, $zl: u64) -> $crate::Result<()> {
                let $zs = self;
                $resize
            }
            fn update_attributes(
                &self,
                $uc: &dyn Fn(&mut $crate::Attrs) -> $crate::Result<()>,
            ) -> $crate::Result<()> {
                let $us = self;
                $update
            }
        }
    };
}
pub use forward_chunk_store;

/// The metadata-changing half of a store that keeps its state behind a
/// read-write lock: every [`ChunkStore`] call holds the lock shared for its
/// whole duration, a resize or a change of attributes holds it
/// exclusively, so no read or write sees a half-changed shape. See
/// [`locked_store!`].
pub(crate) trait ChangeInPlace {
    /// Changes the length of the first axis (see [`ChunkStore::resize`]).
    fn resize_in_place(&mut self, len: u64) -> Result<()>;

    /// Changes the attributes (see [`ChunkStore::update_attributes`]).
    fn update_attributes_in_place(
        &mut self,
        change: &dyn Fn(&mut Attrs) -> Result<()>,
    ) -> Result<()>;
}

/// Implements [`ChunkStore`] for `$outer`, whose field `$field` is a
/// `parking_lot::RwLock<$inner>` where `$inner: ChunkStore + ChangeInPlace`:
/// every call under the lock held shared, `resize` and
/// `update_attributes` under it held exclusively.
macro_rules! locked_store {
    ($outer:ty, $field:ident) => {
        $crate::store::forward_chunk_store! {
            [] $outer,
            read: |s| s.$field.read(),
            write_chunk: |s, chunk, data| s.$field.read().write_chunk(chunk, data),
            erase_chunk: |s, chunk| s.$field.read().erase_chunk(chunk),
            flush: |s| s.$field.read().flush(),
            resize: |s, len| $crate::store::ChangeInPlace::resize_in_place(&mut *s.$field.write(), len),
            update_attributes: |s, change| {
                $crate::store::ChangeInPlace::update_attributes_in_place(&mut *s.$field.write(), change)
            },
            merges_writes: |s| s.$field.read().merges_writes(),
            write_chunk_merging: |s, chunk, data, written| {
                s.$field.read().write_chunk_merging(chunk, data, written)
            },
        }
    };
}
pub(crate) use locked_store;

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[cfg(any(feature = "zarr", feature = "hdf5"))]
    #[test]
    fn is_fill_compares_every_element_bytewise() {
        for k in [1usize, 2, 4, 8] {
            let fill: Vec<u8> = (1..=k as u8).collect();
            // Past one 4 KiB piece, and a length that ends mid-piece.
            let n = 3 * 4096 / k + 5;
            let mut data: Vec<u8> = fill.iter().copied().cycle().take(n * k).collect();
            assert!(is_fill(&data, &fill), "k={k}");
            for at in [0, n * k / 2, n * k - 1] {
                data[at] ^= 0x80;
                assert!(!is_fill(&data, &fill), "k={k}, byte {at} differs");
                data[at] ^= 0x80;
            }
            if k > 1 {
                assert!(!is_fill(&data[..n * k - 1], &fill), "a partial element");
            }
        }
        // -0.0 is not a fill of 0.0, as zarrs compares.
        let zero = 0f32.to_ne_bytes();
        assert!(!is_fill(&(-0f32).to_ne_bytes(), &zero));
        assert!(is_fill(&[], &zero));
        assert!(!is_fill(&[1], &[]));
    }

    /// A store that answers every method itself (none from the trait's
    /// defaults) and records which were called.
    #[derive(Debug, Default)]
    struct Probe(Mutex<Vec<&'static str>>);

    impl Probe {
        fn saw(&self, name: &'static str) {
            self.0.lock().push(name);
        }
    }

    impl ChunkStore for Probe {
        fn backend(&self) -> &'static str {
            self.saw("backend");
            "probe"
        }
        fn meta(&self) -> StoreMeta {
            self.saw("meta");
            StoreMeta {
                dtype: DType::U8,
                shape: vec![4],
                chunks: vec![2],
                fill: vec![0],
            }
        }
        fn capabilities(&self) -> Capabilities {
            self.saw("capabilities");
            Capabilities::default()
        }
        fn read_chunk(&self, _: &[u64]) -> Result<Option<ChunkBuf>> {
            self.saw("read_chunk");
            Ok(None)
        }
        fn write_chunk(&self, _: &[u64], _: &[u8]) -> Result<()> {
            self.saw("write_chunk");
            Ok(())
        }
        fn erase_chunk(&self, _: &[u64]) -> Result<()> {
            self.saw("erase_chunk");
            Ok(())
        }
        fn flush(&self) -> Result<()> {
            self.saw("flush");
            Ok(())
        }
        fn describe(&self) -> String {
            self.saw("describe");
            String::new()
        }
        fn labels(&self) -> Option<Labels> {
            self.saw("labels");
            None
        }
        fn read_chunk_into(&self, _: &[u64], _: &mut [u8]) -> Result<bool> {
            self.saw("read_chunk_into");
            Ok(false)
        }
        fn read_region_into(
            &self,
            _: &[u64],
            _: ChunkRegion<'_>,
            _: &mut [u8],
            _: Strided<'_>,
        ) -> Result<bool> {
            self.saw("read_region_into");
            Ok(false)
        }
        fn stored_bytes(&self) -> Result<u64> {
            self.saw("stored_bytes");
            Ok(0)
        }
        fn resize(&self, _: u64) -> Result<()> {
            self.saw("resize");
            Ok(())
        }
        fn update_attributes(&self, _: &dyn Fn(&mut Attrs) -> Result<()>) -> Result<()> {
            self.saw("update_attributes");
            Ok(())
        }
        fn merges_writes(&self) -> bool {
            self.saw("merges_writes");
            false
        }
        fn write_chunk_merging(&self, _: &[u64], _: &[u8], _: &Written) -> Result<()> {
            self.saw("write_chunk_merging");
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Forward(Probe);

    forward_chunk_store! {
        [] Forward,
        read: |s| s.0,
        write_chunk: |s, chunk, data| s.0.write_chunk(chunk, data),
        erase_chunk: |s, chunk| s.0.erase_chunk(chunk),
        flush: |s| s.0.flush(),
        resize: |s, len| s.0.resize(len),
        update_attributes: |s, change| s.0.update_attributes(change),
        merges_writes: |s| s.0.merges_writes(),
        write_chunk_merging: |s, chunk, data, written| s.0.write_chunk_merging(chunk, data, written),
    }

    /// Every method of the trait reaches the inner store through
    /// `forward_chunk_store!`, each exactly once: none falls back to a
    /// trait default. A method added to the trait belongs in the macro,
    /// in `Probe` and in this list.
    #[test]
    fn forwarding_reaches_every_method() {
        let f = Forward(Probe::default());
        let s: &dyn ChunkStore = &f;
        let at = Strided {
            offset: 0,
            strides: &[1],
        };
        s.backend();
        s.meta();
        s.capabilities();
        s.read_chunk(&[0]).unwrap();
        s.write_chunk(&[0], &[0, 0]).unwrap();
        s.erase_chunk(&[0]).unwrap();
        s.flush().unwrap();
        s.describe();
        s.labels();
        s.read_chunk_into(&[0], &mut [0; 2]).unwrap();
        s.read_region_into(&[0], &[(0, 1, 1)], &mut [0; 1], at)
            .unwrap();
        s.stored_bytes().unwrap();
        s.resize(2).unwrap();
        s.update_attributes(&|_| Ok(())).unwrap();
        s.merges_writes();
        s.write_chunk_merging(&[0], &[0, 0], &Written::default())
            .unwrap();
        let mut seen = f.0.0.lock().clone();
        seen.sort_unstable();
        let mut all = vec![
            "backend",
            "meta",
            "capabilities",
            "read_chunk",
            "write_chunk",
            "erase_chunk",
            "flush",
            "describe",
            "labels",
            "read_chunk_into",
            "read_region_into",
            "stored_bytes",
            "resize",
            "update_attributes",
            "merges_writes",
            "write_chunk_merging",
        ];
        all.sort_unstable();
        assert_eq!(seen, all);
    }

    /// The default partial read checks the region before it reads, and
    /// places what it reads where `at` says.
    #[test]
    fn default_region_read_checks_and_places() {
        let m = StoreMeta {
            dtype: DType::U8,
            shape: vec![4, 4],
            chunks: vec![2, 2],
            fill: vec![0],
        };
        let mem = MemoryStore::new(m);
        mem.write_chunk(&[1, 0], &[1, 2, 3, 4]).unwrap();
        assert!(mem.read_region(&[1, 0], &[(0, 1, 3), (0, 1, 1)]).is_err());
        assert!(mem.read_region(&[1, 0], &[(0, 1, 1)]).is_err());
        assert_eq!(
            mem.read_region(&[0, 0], &[(0, 1, 1), (0, 1, 1)]).unwrap(),
            None
        );
        assert_eq!(
            mem.read_region(&[1, 0], &[(0, 1, 2), (1, 1, 1)]).unwrap(),
            Some(vec![2, 4])
        );
        let mut out = [0u8; 4];
        let at = Strided {
            offset: 1,
            strides: &[2],
        };
        assert!(
            mem.read_region_into(&[1, 0], &[(0, 2, 1)], &mut out, at)
                .is_err()
        );
        assert!(
            mem.read_region_into(
                &[1, 0],
                &[(0, 1, 2), (0, 1, 1)],
                &mut out,
                Strided {
                    offset: 1,
                    strides: &[2, 1],
                }
            )
            .unwrap()
        );
        assert_eq!(out, [0, 1, 0, 3]);
    }
}
