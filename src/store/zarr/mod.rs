//! The Zarr backend: a Zarr v3 (or v2) array in a directory, through the
//! `zarrs` crate for metadata and codecs, over [`DirStorage`] for files
//! that are never torn.
//!
//! # Mapping
//!
//! - A chunkyard chunk is a Zarr chunk of the regular chunk grid (for a
//!   sharded array: a whole shard). Chunks cross the store boundary
//!   decoded, native byte order, C order, full chunk shape: what zarrs'
//!   codec chain decodes to.
//! - A chunk file that does not exist is `Ok(None)`: the fill value. A
//!   chunk written as all fill value is erased instead (zarrs'
//!   `store_chunk`), as zarr-python does by default.
//! - New arrays are Zarr v3: `bytes` (little-endian unless asked
//!   otherwise), then the codec: `zstd`, `gzip`, or for LZ4 the
//!   specification's `blosc` with `cname: "lz4"` ([`blosc`], in Rust),
//!   which every Zarr v3 reader knows. Existing v2 and v3 arrays open
//!   with whatever codecs zarrs (plus [`blosc`] and numcodecs' [`lz4`])
//!   knows; anything else is
//!   [`Error::Unsupported`] naming the file.
//! - Raw arrays: when a chunk file is exactly the decoded chunk (no
//!   compressor or checksum, no transpose, not sharded, `bytes` in the
//!   machine's byte order or one-byte elements; v3 or v2 alike), reads
//!   bypass zarrs (`raw.rs`): a whole chunk is one `pread` into the
//!   caller's buffer, an element or part of a row one small `pread`, a
//!   region of many runs one `pread` per run or a map of the file for the
//!   call, whichever a cost model says is cheaper
//!   (`docs/benchmarks.md#reading-runs-pread-or-map`). Chunk files
//!   stay open in a small LRU; every write, erase and resize drops the
//!   entries of the files it replaces or removes. Writes still go through
//!   zarrs.
//! - LZ4 and Blosc arrays (`bytes` in the machine's byte order, then
//!   `numcodecs.lz4` or `blosc`, nothing else): a whole-chunk read maps
//!   the chunk file and decodes it straight into the caller's buffer
//!   (`raw.rs`), without zarrs' buffers.
//! - Other partial reads
//!   ([`ChunkStore::read_region_into`](crate::store::ChunkStore::read_region_into))
//!   go through zarrs' partial decoders when the whole codec chain can
//!   read parts of a chunk (swapped or transposed `bytes`, sharding).
//!   Compressed chunks are decoded whole, so for them the store does not
//!   claim partial reads and the array caches the chunk instead.
//!
//! See `docs/zarr.md` for what is and is not supported.
//!
//! # Files
//!
//! `metadata` creates, opens and resizes arrays, `io` moves chunks (the
//! `ChunkStore` impl), `raw` reads raw and LZ4 chunk files directly, `fs`
//! is the directory storage, `s3` the object storage (feature `s3`),
//! `storage` the one type over both, `blosc`, `lz4` and `capped` are codecs.
//!
//! # Object storage
//!
//! An array at `s3://bucket/prefix` is the same Zarr array with its keys
//! under the prefix. What differs: a chunk write is one PUT and an erase
//! one DELETE (atomic per object, so there are no temporaries), reads are
//! GETs (ranged for partial reads through zarrs' partial decoders), no
//! raw or LZ4 file shortcuts, `flush` has nothing to sync, and the
//! metadata is written conditionally: `create` with `If-None-Match: *`,
//! `resize` with `If-Match` on the version it read, retried (`docs/s3.md`).

pub mod blosc;
pub(crate) mod capped;
pub(crate) mod fs;
mod io;
pub mod lz4;
mod metadata;
mod raw;
#[cfg(feature = "s3")]
pub(crate) mod s3;
#[cfg(feature = "s3")]
mod s3chunks;
#[cfg(feature = "s3")]
mod s3meta;
#[cfg(feature = "s3")]
mod s3options;
mod storage;

use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::{Array as ZArray, CodecOptions};
use zarrs::storage::StorageError;

use super::{ChunkRegion, Labels, StoreMeta};
use crate::chunk_grid::ChunkGrid;
use crate::codec::Codec;
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};

pub(crate) use crate::codec::encoded_bound;
pub(crate) use crate::open::is_zarr_dir;
pub(crate) use storage::Storage;

#[cfg(feature = "s3")]
pub use s3options::S3Options;
/// Without the `s3` feature there is no client to configure; this stands
/// in for the options in the signatures that pass them along.
#[cfg(not(feature = "s3"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct S3Options {
    _none: (),
}

/// How [`ZarrStore::create`] lays out a new array.
#[derive(Debug, Clone)]
pub struct ZarrOptions {
    /// Chunk compression.
    pub codec: Codec,
    /// Byte order of the stored elements (`bytes` codec).
    pub endian: Endian,
    /// Replace an existing Zarr array at the path instead of refusing.
    pub overwrite: bool,
    /// Dimension names and attributes to write into the metadata.
    pub labels: Option<Labels>,
    /// Shard the array: each chunk of the store (the `chunks` given to
    /// [`ZarrStore::create`]) is a shard of inner chunks of this shape,
    /// which divides it; the codec applies to each inner chunk, and the
    /// index (little-endian, crc32c) sits at the shard's end, as
    /// zarr-python writes it.
    pub inner_chunks: Option<Vec<u64>>,
    /// The S3 client's options for an `s3://` path (feature `s3`;
    /// ignored for a directory).
    #[cfg(feature = "s3")]
    pub s3: S3Options,
}

impl Default for ZarrOptions {
    fn default() -> Self {
        ZarrOptions {
            codec: Codec::None,
            endian: Endian::Little,
            overwrite: false,
            labels: None,
            inner_chunks: None,
            #[cfg(feature = "s3")]
            s3: S3Options::default(),
        }
    }
}

/// A [`ChunkStore`](crate::store::ChunkStore) over one Zarr array
/// directory: Zarr v3 (and v2 for reading); `docs/zarr.md` says which
/// codecs and features are supported.
#[derive(Debug)]
pub struct ZarrStore {
    /// The array's state; a resize replaces its shape while no call runs.
    inner: RwLock<ZarrInner>,
    path: PathBuf,
}

#[derive(Debug)]
struct ZarrInner {
    path: PathBuf,
    storage: Arc<Storage>,
    array: ZArray<Storage>,
    meta: StoreMeta,
    grid: ChunkGrid,
    writable: bool,
    /// The codec chain reads parts of a chunk without decoding it whole.
    partial: bool,
    /// Size of every encoded chunk when the codecs fix it (uncompressed
    /// `bytes`): a partial read checks the file against it, so that a
    /// truncated chunk is an error even where the bytes read exist.
    fixed_encoded: Option<u64>,
    /// `info`'s layout line.
    summary: String,
    /// Chunk files hold the decoded chunk as it is (no compressor, no
    /// transpose, native byte order, not sharded): reads go straight to
    /// the files ([`raw`]).
    raw: bool,
    /// Chunk objects hold the decoded chunk as it is (the conditions of
    /// [`raw`](Self::raw), on object storage): a whole-chunk read streams
    /// the GET's body straight into the caller's buffer, with no body
    /// buffer and no decode copy.
    object_raw: bool,
    /// Chunk files kept open for raw reads.
    files: raw::OpenFiles,
    /// Chunk files are one LZ4 block or one Blosc frame of the decoded
    /// chunk (`bytes` in native order, then numcodecs' LZ4 or Blosc,
    /// nothing else): whole-chunk reads decode them straight into the
    /// caller's buffer ([`raw::is_lz4`]).
    lz4: bool,
    /// The straight-decoded codec ([`lz4`](Self::lz4)) is Blosc, not
    /// numcodecs' LZ4.
    blosc: bool,
    /// C-order element strides of a chunk (raw reads).
    chunk_strides: Vec<usize>,
    /// On object storage, the version of each chunk as last read or
    /// written here: the condition of its next merging write.
    #[cfg(feature = "s3")]
    versions: s3chunks::Versions,
}

fn store_error(message: String) -> Error {
    Error::Store {
        backend: "zarr",
        message,
    }
}

impl ZarrStore {
    fn wrap(inner: ZarrInner) -> Self {
        ZarrStore {
            path: inner.path.clone(),
            inner: RwLock::new(inner),
        }
    }

    /// Creates a Zarr v3 array at `path` (a new directory) holding only
    /// its metadata, and opens it for writing.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        fill: &[u8],
        opts: &ZarrOptions,
    ) -> Result<ZarrStore> {
        ZarrInner::create(path, dtype, shape, chunks, fill, opts).map(Self::wrap)
    }

    /// Opens the Zarr array (v3 `zarr.json` or v2 `.zarray`) in the
    /// directory `path`.
    pub fn open(path: &Path, writable: bool) -> Result<ZarrStore> {
        ZarrInner::open(path, writable, &S3Options::default()).map(Self::wrap)
    }

    /// Opens the array at an `s3://` URL with the S3 client's options
    /// (a directory ignores them): [`open`](Self::open) otherwise.
    #[cfg(feature = "s3")]
    pub fn open_with(path: &Path, writable: bool, s3: &S3Options) -> Result<ZarrStore> {
        ZarrInner::open(path, writable, s3).map(Self::wrap)
    }

    /// Deletes the array, opened for writing: its directory, or every
    /// object under its prefix on object storage (a LIST and a DELETE per
    /// object; an object another writer adds meanwhile may stay).
    pub fn remove(self) -> Result<()> {
        let inner = self.inner.into_inner();
        inner.check_writable()?;
        #[cfg(feature = "s3")]
        if let Some(s3) = inner.storage.s3() {
            return s3
                .erase_all()
                .map_err(|e| s3.error(&inner.path.display().to_string(), &e));
        }
        std::fs::remove_dir_all(&inner.path).map_err(|e| Error::io(&inner.path, e))
    }

    /// The array's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file that holds a chunk.
    pub fn chunk_path(&self, chunk: &[u64]) -> PathBuf {
        self.inner.read().chunk_path(chunk)
    }
}

super::locked_store!(ZarrStore, inner);

impl ZarrInner {
    /// The file that holds a chunk.
    fn chunk_path(&self, chunk: &[u64]) -> PathBuf {
        self.storage.key_path(&self.array.chunk_key(chunk))
    }

    fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
        if self.grid.contains_chunk(chunk) {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: chunk {chunk:?} is outside the chunk grid {:?}",
                self.path.display(),
                self.grid.grid_shape()
            )))
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: cannot write, the array was opened read-only",
                self.path.display()
            )))
        }
    }

    fn check_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
        if super::region_fits(&self.meta.chunks, region) {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: region {region:?} does not fit chunk {chunk:?} of shape {:?}",
                self.path.display(),
                self.meta.chunks
            )))
        }
    }

    /// A decoding problem: the chunk file is corrupt.
    fn corrupt(&self, chunk: &[u64], e: impl std::fmt::Display) -> Error {
        Error::format(self.chunk_path(chunk), e.to_string())
    }

    fn storage_error(&self, chunk: &[u64], e: StorageError) -> Error {
        match e {
            StorageError::IOError(io) => Error::Io {
                path: self.chunk_path(chunk),
                source: io,
            },
            other => self.corrupt(chunk, other),
        }
    }

    fn codec_options() -> CodecOptions {
        CodecOptions::default()
    }
}

#[cfg(test)]
mod tests;
