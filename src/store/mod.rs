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
//!   write-backs and partial reads (`read_region`) alike.
//! - [`flush`] returns only after everything written before it is durable
//!   (fsync or equivalent).
//! - Errors name the file or the backend. After a failed write a store
//!   does not guess what reached the disk: the layer above refuses further
//!   writes until the array is reopened.
//!
//! [`flush`]: ChunkStore::flush

pub(crate) mod filemap;
#[cfg(feature = "hdf5")]
pub mod hdf5;
mod memory;
pub mod npy;
pub(crate) mod rawio;
pub mod wrap;
pub mod zarr;

#[doc(hidden)]
pub mod conformance;

#[cfg(feature = "hdf5")]
pub use hdf5::{Hdf5Options, Hdf5Store};
pub use memory::MemoryStore;
// The bench's tile floor in the `chunkyard` binary maps files as the
// stores do (`src/bin/chunkyard/bench/floor.rs`).
#[doc(hidden)]
pub use filemap::{Touched, map_file, release_pages, touched_estimate};
pub use npy::{NpyHeader, NpyOptions, NpyStore, Order, RawLayout, parse_npy_header};
pub use zarr::{ZarrOptions, ZarrStore};

use std::fmt;

use crate::buffer::ChunkBuf;
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::{Strided, c_strides, copy_region};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// `write_chunk` may run on several threads at once (parallel flush).
    pub parallel_writes: bool,
    /// `read_region` reads only the bytes it needs, not the whole chunk.
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
}

impl Capabilities {
    /// Builds capabilities from their first three flags; the store
    /// accepts writes.
    pub const fn new(parallel_writes: bool, partial_reads: bool, tracks_missing: bool) -> Self {
        Capabilities {
            parallel_writes,
            partial_reads,
            tracks_missing,
            read_only: false,
            decodes: false,
            reads_into: false,
        }
    }

    /// The same capabilities, for a store whose `read_chunk_into` needs no
    /// buffer of its own if `yes` (see [`Capabilities::reads_into`]).
    pub const fn reads_into(mut self, yes: bool) -> Self {
        self.reads_into = yes;
        self
    }

    /// The same capabilities, for a store whose whole-chunk reads decode
    /// if `yes` (see [`Capabilities::decodes`]).
    pub const fn decodes(mut self, yes: bool) -> Self {
        self.decodes = yes;
        self
    }

    /// The same capabilities, for a store that refuses writes if `yes`.
    pub const fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }
}

/// Descriptive metadata a format keeps beside the data: per-axis names and
/// user attributes (a JSON object). `convert` carries them over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Labels {
    /// One optional name per axis, or `None` when the array names none.
    pub dimension_names: Option<Vec<Option<String>>>,
    /// A JSON object's text (`{}` when there are none).
    pub attributes: String,
}

/// A region inside one chunk: per axis (first position, step, count).
pub type ChunkRegion<'a> = &'a [(u64, u64, u64)];

/// The backend boundary. See the [module docs](self) for the contract.
pub trait ChunkStore: Send + Sync + fmt::Debug {
    /// Short backend name for messages (`npy`, `memory`, `zarr`).
    fn backend(&self) -> &'static str;

    /// Element type, shape, chunk shape and fill value. A snapshot: the
    /// shape changes when the array is [resized](ChunkStore::resize).
    fn meta(&self) -> StoreMeta;

    /// One line about the storage layout for people (`info`), e.g.
    /// `npy 1.0, C order, little-endian`.
    fn describe(&self) -> String {
        self.backend().to_string()
    }

    /// What this store can do efficiently.
    fn capabilities(&self) -> Capabilities;

    /// Axis names and attributes, for formats that keep them (Zarr).
    fn labels(&self) -> Option<Labels> {
        None
    }

    /// Reads one decoded chunk; `Ok(None)` if it was never written.
    /// Allocate it with [`ChunkBuf::zeroed`] so that large chunks are
    /// returned to the operating system when the cache drops them.
    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>>;

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

    /// Reads a region of one chunk into a dense C-order buffer of the
    /// region's counts; `Ok(None)` if the chunk was never written.
    ///
    /// The default reads the whole chunk; stores with
    /// [`Capabilities::partial_reads`] override it to read only what is
    /// asked for.
    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(None);
        };
        Ok(Some(extract_region(&self.meta(), &data, region)))
    }

    /// Reads a region of one chunk straight into `out`, at the positions
    /// `at` gives (element offset and per-axis element strides of the
    /// region's elements in `out`); `Ok(false)` if the chunk was never
    /// written (`out` is then untouched). Saves the copy through
    /// [`read_region`](ChunkStore::read_region)'s buffer, which the default
    /// makes. Fails with `InvalidArgument` if `at` reaches past `out`.
    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        let elem = self.meta().dtype.size();
        check_strided_fits(region, elem, out.len(), at)?;
        let Some(data) = self.read_region(chunk, region)? else {
            return Ok(false);
        };
        place_region(self.backend(), chunk, region, elem, &data, out, at)?;
        Ok(true)
    }

    /// Bytes `write_chunk` allocates at most beside `data` while it runs
    /// (an encoded or byte-swapped copy of the chunk). The cache counts
    /// them against its budget for each write under way, so that a writer
    /// faster than its store waits instead of growing memory. Default: 0.
    fn write_buffer_bytes(&self) -> usize {
        0
    }

    /// Writes one decoded chunk (`data.len() == meta().chunk_bytes()`).
    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()>;

    /// Forgets a chunk: it reads as the fill value afterwards.
    fn erase_chunk(&self, chunk: &[u64]) -> Result<()>;

    /// Makes every completed write durable before returning.
    fn flush(&self) -> Result<()>;

    /// Bytes the array occupies on disk (allocated blocks for sparse
    /// files), for the memory report.
    fn stored_bytes(&self) -> Result<u64>;

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

/// The shape-changing half of a store that keeps its state behind a
/// read-write lock: every [`ChunkStore`] call holds the lock shared for its
/// whole duration, a resize holds it exclusively, so no read or write sees
/// a half-changed shape. See [`locked_store!`].
pub(crate) trait ResizeInPlace {
    /// Changes the length of the first axis (see [`ChunkStore::resize`]).
    fn resize_in_place(&mut self, len: u64) -> Result<()>;
}

/// Implements [`ChunkStore`] for `$outer`, whose field `$field` is a
/// `parking_lot::RwLock<$inner>` where `$inner: ChunkStore + ResizeInPlace`.
/// It must delegate every method, defaulted ones included: a method it
/// leaves out silently takes the trait's default instead of the store's
/// (the zarr tests check `write_buffer_bytes` through it).
macro_rules! locked_store {
    ($outer:ty, $field:ident) => {
        impl $crate::store::ChunkStore for $outer {
            fn backend(&self) -> &'static str {
                self.$field.read().backend()
            }
            fn meta(&self) -> $crate::store::StoreMeta {
                self.$field.read().meta()
            }
            fn describe(&self) -> String {
                self.$field.read().describe()
            }
            fn capabilities(&self) -> $crate::store::Capabilities {
                self.$field.read().capabilities()
            }
            fn labels(&self) -> Option<$crate::store::Labels> {
                self.$field.read().labels()
            }
            fn read_chunk(
                &self,
                chunk: &[u64],
            ) -> $crate::error::Result<Option<$crate::buffer::ChunkBuf>> {
                self.$field.read().read_chunk(chunk)
            }
            fn read_chunk_into(
                &self,
                chunk: &[u64],
                out: &mut [u8],
            ) -> $crate::error::Result<bool> {
                self.$field.read().read_chunk_into(chunk, out)
            }
            fn read_region(
                &self,
                chunk: &[u64],
                region: $crate::store::ChunkRegion<'_>,
            ) -> $crate::error::Result<Option<Vec<u8>>> {
                self.$field.read().read_region(chunk, region)
            }
            fn read_region_into(
                &self,
                chunk: &[u64],
                region: $crate::store::ChunkRegion<'_>,
                out: &mut [u8],
                at: $crate::layout::Strided<'_>,
            ) -> $crate::error::Result<bool> {
                self.$field.read().read_region_into(chunk, region, out, at)
            }
            fn write_buffer_bytes(&self) -> usize {
                self.$field.read().write_buffer_bytes()
            }
            fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> $crate::error::Result<()> {
                self.$field.read().write_chunk(chunk, data)
            }
            fn erase_chunk(&self, chunk: &[u64]) -> $crate::error::Result<()> {
                self.$field.read().erase_chunk(chunk)
            }
            fn flush(&self) -> $crate::error::Result<()> {
                self.$field.read().flush()
            }
            fn stored_bytes(&self) -> $crate::error::Result<u64> {
                self.$field.read().stored_bytes()
            }
            fn resize(&self, len: u64) -> $crate::error::Result<()> {
                $crate::store::ResizeInPlace::resize_in_place(&mut *self.$field.write(), len)
            }
        }
    };
}
pub(crate) use locked_store;

/// Whether `region` (per axis: start, step, count) lies inside a chunk of
/// shape `chunks`, with positive steps and no overflow.
pub fn region_fits(chunks: &[u64], region: ChunkRegion<'_>) -> bool {
    region.len() == chunks.len()
        && region
            .iter()
            .zip(chunks)
            .all(|(&(start, step, count), &c)| {
                count == 0
                    || (step >= 1
                        && (count - 1)
                            .checked_mul(step)
                            .and_then(|d| d.checked_add(start))
                            .is_some_and(|last| last < c))
            })
}

/// Checks that every position `at` gives for `region`'s elements lies in
/// an `out_len`-byte buffer of `elem`-byte elements.
pub fn check_strided_fits(
    region: ChunkRegion<'_>,
    elem: usize,
    out_len: usize,
    at: Strided<'_>,
) -> Result<()> {
    let bad = || {
        crate::error::Error::invalid(format!(
            "a region of counts {:?} at {at:?} does not fit an output of {out_len} bytes",
            region.iter().map(|r| r.2).collect::<Vec<_>>()
        ))
    };
    if at.strides.len() != region.len() {
        return Err(bad());
    }
    if region.iter().any(|r| r.2 == 0) {
        return Ok(());
    }
    let mut last = at.offset as u128;
    for (r, &s) in region.iter().zip(at.strides) {
        last += (r.2 as u128 - 1) * s as u128;
    }
    if (last + 1) * elem as u128 > out_len as u128 {
        return Err(bad());
    }
    Ok(())
}

/// Copies a region read densely (C order over its counts) into `out` at
/// `at` (checked by the caller with [`check_strided_fits`]).
pub(crate) fn place_region(
    backend: &'static str,
    chunk: &[u64],
    region: ChunkRegion<'_>,
    elem: usize,
    data: &[u8],
    out: &mut [u8],
    at: Strided<'_>,
) -> Result<()> {
    let counts: Vec<usize> = region.iter().map(|r| r.2 as usize).collect();
    let n: usize = counts.iter().product();
    if data.len() != n * elem {
        return Err(crate::error::Error::Store {
            backend,
            message: format!(
                "a region of {n} elements of chunk {chunk:?} read as {} bytes",
                data.len()
            ),
        });
    }
    let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
    let dense = c_strides(&shape);
    copy_region(
        &counts,
        elem,
        data,
        Strided {
            offset: 0,
            strides: &dense,
        },
        out,
        at,
    );
    Ok(())
}

/// Copies `region` out of a decoded chunk into a dense C-order buffer.
pub fn extract_region(meta: &StoreMeta, chunk: &[u8], region: ChunkRegion<'_>) -> Vec<u8> {
    let elem = meta.dtype.size();
    let chunk_strides = c_strides(&meta.chunks);
    let counts: Vec<usize> = region.iter().map(|r| r.2 as usize).collect();
    let out_shape: Vec<u64> = region.iter().map(|r| r.2).collect();
    let out_strides = c_strides(&out_shape);
    let offset = region
        .iter()
        .zip(&chunk_strides)
        .map(|(r, s)| r.0 as usize * s)
        .sum();
    let strides: Vec<usize> = region
        .iter()
        .zip(&chunk_strides)
        .map(|(r, s)| r.1 as usize * s)
        .collect();
    let mut out = vec![0u8; counts.iter().product::<usize>() * elem];
    copy_region(
        &counts,
        elem,
        chunk,
        Strided {
            offset,
            strides: &strides,
        },
        &mut out,
        Strided {
            offset: 0,
            strides: &out_strides,
        },
    );
    out
}
