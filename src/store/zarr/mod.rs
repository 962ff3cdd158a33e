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
//!   otherwise), then the codec: `zstd`, `gzip`, or `numcodecs.lz4` (which
//!   zarr-python reads through numcodecs). Existing v2 and v3 arrays open
//!   with whatever codecs zarrs (plus [`lz4`]) knows; anything else is
//!   [`Error::Unsupported`] naming the file.
//! - Raw arrays: when a chunk file is exactly the decoded chunk (no
//!   compressor or checksum, no transpose, not sharded, `bytes` in the
//!   machine's byte order or one-byte elements; v3 or v2 alike), reads
//!   bypass zarrs (`raw.rs`): a whole chunk is one `pread` into the
//!   caller's buffer, an element or part of a row one small `pread`, a
//!   region of many runs one `pread` per run or a map of the file for the
//!   call, whichever a measured cost model says is cheaper. Chunk files
//!   stay open in a small LRU; every write, erase and resize drops the
//!   entries of the files it replaces or removes. Writes still go through
//!   zarrs.
//! - LZ4 arrays (`bytes` in the machine's byte order, then
//!   `numcodecs.lz4`, nothing else): a whole-chunk read maps the chunk
//!   file and decodes it straight into the caller's buffer (`raw.rs`),
//!   without zarrs' buffers.
//! - Other partial reads ([`ChunkStore::read_region`]) go through zarrs'
//!   partial decoders when the whole codec chain can read parts of a
//!   chunk (swapped or transposed `bytes`, sharding). Compressed chunks
//!   are decoded whole, so for them the store does not claim partial
//!   reads and the array caches the chunk instead.
//!
//! See `docs/zarr.md` for what is and is not supported.

pub mod capped;
pub mod fs;
pub mod lz4;
mod raw;

use parking_lot::RwLock;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::codec::{BytesCodec, GzipCodec, ZstdCodec};
use zarrs::array::{
    Array as ZArray, ArrayBuilder, ArrayBytes, ArrayCreateError, ArrayMetadata,
    ArrayMetadataOptions, ArraySubset, ArrayToBytesCodecTraits, BytesRepresentation,
    BytesToBytesCodecTraits, CodecOptions, CodecTraits, DataType, Endianness, FillValue, data_type,
};
use zarrs::plugin::PluginCreateError;
use zarrs::storage::{ReadableStorageTraits, StorageError};

use super::{Capabilities, ChunkRegion, ChunkStore, Labels, StoreMeta, extract_region};
use crate::buffer::{ChunkBuf, MAP_THRESHOLD};
use crate::chunk_grid::ChunkGrid;
use crate::codec::Codec;
use crate::dtype::{DType, Endian, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::{Strided, c_strides};

pub use fs::DirStorage;

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
}

impl Default for ZarrOptions {
    fn default() -> Self {
        ZarrOptions {
            codec: Codec::None,
            endian: Endian::Little,
            overwrite: false,
            labels: None,
        }
    }
}

/// Zarr's name for a chunkyard element type.
fn zarr_data_type(dtype: DType) -> DataType {
    match dtype {
        DType::Bool => data_type::bool(),
        DType::I8 => data_type::int8(),
        DType::I16 => data_type::int16(),
        DType::I32 => data_type::int32(),
        DType::I64 => data_type::int64(),
        DType::U8 => data_type::uint8(),
        DType::U16 => data_type::uint16(),
        DType::U32 => data_type::uint32(),
        DType::U64 => data_type::uint64(),
        DType::F32 => data_type::float32(),
        DType::F64 => data_type::float64(),
    }
}

/// True if a path is a Zarr array directory (holds `zarr.json` or
/// `.zarray`).
pub fn is_zarr_dir(path: &Path) -> bool {
    path.join("zarr.json").is_file() || path.join(".zarray").is_file()
}

/// A [`ChunkStore`] over one Zarr array directory. See the [module
/// docs](self).
#[derive(Debug)]
pub struct ZarrStore {
    /// The array's state; a resize replaces its shape while no call runs.
    inner: RwLock<ZarrInner>,
    path: PathBuf,
}

#[derive(Debug)]
struct ZarrInner {
    path: PathBuf,
    storage: Arc<DirStorage>,
    array: ZArray<DirStorage>,
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
    /// Chunk files kept open for raw reads.
    files: raw::OpenFiles,
    /// Chunk files are one LZ4 block of the decoded chunk (`bytes` in
    /// native order, then numcodecs' LZ4, nothing else): whole-chunk
    /// reads decode them straight into the caller's buffer
    /// ([`raw::is_lz4`]).
    lz4: bool,
    /// C-order element strides of a chunk (raw reads).
    chunk_strides: Vec<usize>,
}

/// An upper bound of a chunk's encoded size: lz4, zstd and deflate add at
/// most a few bytes per 128 input bytes plus a small header.
pub(crate) fn encoded_bound(n: usize) -> usize {
    n + n / 128 + 1024
}

fn store_error(message: String) -> Error {
    Error::Store {
        backend: "zarr",
        message,
    }
}

/// Maps zarrs' open/create errors: unknown data types, codecs, grids and
/// key encodings are unsupported; anything else wrong with the metadata
/// is a format error on the metadata file.
fn create_error(path: &Path, e: ArrayCreateError) -> Error {
    let unsupported = |p: &PluginCreateError| matches!(p, PluginCreateError::Unsupported(_));
    match e {
        ArrayCreateError::DataTypeCreateError(p)
        | ArrayCreateError::CodecsCreateError(p)
        | ArrayCreateError::StorageTransformersCreateError(p)
        | ArrayCreateError::ChunkGridCreateError(p)
        | ArrayCreateError::ChunkKeyEncodingCreateError(p)
            if unsupported(&p) =>
        {
            Error::Unsupported(format!("{}: {p}", metadata_file(path).display()))
        }
        ArrayCreateError::StorageError(StorageError::IOError(io)) => Error::Io {
            path: path.to_path_buf(),
            source: io,
        },
        ArrayCreateError::MissingMetadata => Error::format(
            path,
            "not a Zarr array: no zarr.json (v3) or .zarray (v2) in the directory",
        ),
        other => Error::format(metadata_file(path), other.to_string()),
    }
}

/// The metadata file of the array at `path` (v3 if present, else v2).
fn metadata_file(path: &Path) -> PathBuf {
    let v2 = path.join(".zarray");
    if !path.join("zarr.json").exists() && v2.exists() {
        v2
    } else {
        path.join("zarr.json")
    }
}

/// Prepares the directory of a new array; returns whether it made it.
fn make_dir(path: &Path, overwrite: bool) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
        Ok(_) if !overwrite => {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists (set overwrite to replace it)",
                ),
            ));
        }
        Ok(m) if m.is_dir() => {
            let empty = std::fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .next()
                .is_none();
            if !empty && !is_zarr_dir(path) {
                return Err(Error::invalid(format!(
                    "{}: is a directory but not a Zarr array; refusing to replace it",
                    path.display()
                )));
            }
            std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e))?;
        }
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e))?,
    }
    std::fs::create_dir(path).map_err(|e| Error::io(path, e))
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
        ZarrInner::open(path, writable).map(Self::wrap)
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

impl super::ResizeInPlace for ZarrInner {
    /// A longer array gets its new metadata only (new chunks are missing,
    /// so they read as the fill value); a shorter one loses the chunk
    /// files wholly past its end first, then gets its metadata. Both are
    /// synced before returning.
    fn resize_in_place(&mut self, len: u64) -> Result<()> {
        self.check_writable()?;
        // Dropped chunks' files go; the others would stay valid, but a
        // resize is rare and the cache refills.
        self.files.clear();
        let old = self.grid.clone();
        if old.ndim() == 0 {
            return Err(Error::invalid(format!(
                "{}: a 0-d array has no axis to resize",
                self.path.display()
            )));
        }
        let mut shape = old.shape().to_vec();
        shape[0] = len;
        let grid = grid_for(&self.path, &shape, old.chunk_shape(), self.meta.dtype)?;
        let (keep, had) = (grid.grid_shape()[0], old.grid_shape()[0]);
        if keep < had && !old.grid_shape()[1..].contains(&0) {
            let per_row: u64 = old.grid_shape()[1..].iter().product();
            let first = keep * per_row;
            for linear in first..had * per_row {
                let coord = old.coord_of(linear);
                self.array.erase_chunk(&coord).map_err(|e| {
                    store_error(format!(
                        "{}: chunk {coord:?}: {e}",
                        self.chunk_path(&coord).display()
                    ))
                })?;
            }
            self.storage.sync().map_err(|e| Error::io(&self.path, e))?;
        }
        self.array
            .set_shape(shape.clone())
            .map_err(|e| create_error(&self.path, e))?;
        self.array
            .store_metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false))
            .map_err(|e| store_error(format!("{}: {e}", self.path.display())))?;
        self.storage.sync().map_err(|e| Error::io(&self.path, e))?;
        self.meta.shape = shape;
        self.grid = grid;
        self.summary = summarize(self.array.metadata());
        Ok(())
    }
}

impl ZarrInner {
    /// Creates a Zarr v3 array at `path` (a new directory) holding only
    /// its metadata, and opens it for writing.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        fill: &[u8],
        opts: &ZarrOptions,
    ) -> Result<ZarrInner> {
        lz4::register();
        capped::register();
        let grid = grid_for(path, shape, chunks, dtype)?;
        if fill.len() != dtype.size() {
            return Err(Error::invalid(format!(
                "fill value of {} bytes for {dtype}",
                fill.len()
            )));
        }
        let endian = match opts.endian {
            _ if dtype.size() == 1 => None,
            Endian::Little => Some(Endianness::Little),
            Endian::Big => Some(Endianness::Big),
        };
        let compressor: Option<Arc<dyn BytesToBytesCodecTraits>> = match opts.codec {
            Codec::None => None,
            Codec::Lz4 => Some(Arc::new(lz4::Lz4Codec::default())),
            Codec::Zstd { level } => Some(Arc::new(capped::CappedCodec::zstd(ZstdCodec::new(
                level, false,
            )))),
            Codec::Gzip { level } => Some(Arc::new(capped::CappedCodec::gzip(
                GzipCodec::new(level).map_err(|e| Error::invalid(format!("gzip: {e}")))?,
            ))),
        };
        let mut builder = ArrayBuilder::new(
            shape.to_vec(),
            chunks,
            zarr_data_type(dtype),
            FillValue::from(fill.to_vec()),
        );
        builder
            .array_to_bytes_codec(Arc::new(BytesCodec::new(endian)))
            .bytes_to_bytes_codecs(compressor.into_iter().collect());
        if let Some(labels) = &opts.labels {
            let attributes = match serde_json::from_str(&labels.attributes) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    return Err(Error::invalid(format!(
                        "{}: attributes must be a JSON object, got {:?}",
                        path.display(),
                        labels.attributes
                    )));
                }
            };
            if let Some(names) = &labels.dimension_names
                && names.len() != shape.len()
            {
                return Err(Error::invalid(format!(
                    "{}: {} dimension names for {} axes",
                    path.display(),
                    names.len(),
                    shape.len()
                )));
            }
            builder.attributes(attributes).dimension_names(
                labels
                    .dimension_names
                    .as_ref()
                    .map(|v| v.iter().map(Option::as_deref).collect::<Vec<_>>()),
            );
        }
        make_dir(path, opts.overwrite)?;
        let made = (|| {
            let storage = Arc::new(DirStorage::new(path, true));
            // The new directory's entry in its parent ("" for a relative
            // name means the current directory).
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => storage.mark_dirty(p),
                _ => storage.mark_dirty(Path::new(".")),
            }
            let array = builder
                .build(storage.clone(), "/")
                .map_err(|e| create_error(path, e))?;
            // The directory exists; the metadata comes last.
            array
                .store_metadata_opt(
                    &ArrayMetadataOptions::default().with_include_zarrs_metadata(false),
                )
                .map_err(|e| store_error(format!("{}: {e}", path.display())))?;
            Self::build(path, storage, array, grid, true)
        })();
        if made.is_err() {
            let _ = std::fs::remove_dir_all(path);
        }
        made
    }

    /// Opens the Zarr array (v3 `zarr.json` or v2 `.zarray`) in the
    /// directory `path`.
    pub fn open(path: &Path, writable: bool) -> Result<ZarrInner> {
        lz4::register();
        capped::register();
        let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !m.is_dir() {
            return Err(Error::format(
                path,
                "not a Zarr array: a Zarr array is a directory",
            ));
        }
        let storage = Arc::new(DirStorage::new(path, writable));
        let array = ZArray::open(storage.clone(), "/").map_err(|e| create_error(path, e))?;
        if writable {
            // A writer killed between writing a temporary chunk file and
            // renaming it left the temporary behind; nothing refers to it.
            storage
                .remove_stale_temporaries()
                .map_err(|e| Error::io(path, e))?;
        }
        let unsupported =
            |what: String| Error::Unsupported(format!("{}: {what}", metadata_file(path).display()));
        let chunks: Vec<u64> = match array.metadata() {
            ArrayMetadata::V3(m) => {
                if m.chunk_grid.name() != "regular" {
                    return Err(unsupported(format!(
                        "chunk grid {:?} (chunkyard reads regular grids)",
                        m.chunk_grid.name()
                    )));
                }
                m.chunk_grid
                    .configuration()
                    .and_then(|c| c.get("chunk_shape"))
                    .and_then(|v| v.as_array())
                    .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect())
                    .ok_or_else(|| {
                        Error::format(
                            metadata_file(path),
                            "regular chunk grid without chunk_shape",
                        )
                    })?
            }
            ArrayMetadata::V2(m) => m.chunks.iter().map(|c| c.get()).collect(),
        };
        let dtype = DType::ALL
            .into_iter()
            .find(|&d| zarr_data_type(d) == *array.data_type())
            .ok_or_else(|| {
                unsupported(format!(
                    "data type {} (chunkyard reads bool, int8-64, uint8-64, float32 and float64)",
                    array.data_type()
                ))
            })?;
        // A shape or chunk shape the metadata claims but chunkyard cannot
        // hold is the file's fault, not the caller's.
        let grid = ChunkGrid::new(array.shape(), &chunks, dtype.size()).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::format(metadata_file(path), m),
            other => other,
        })?;
        Self::build(path, storage, array, grid, writable)
    }

    fn build(
        path: &Path,
        storage: Arc<DirStorage>,
        array: ZArray<DirStorage>,
        grid: ChunkGrid,
        writable: bool,
    ) -> Result<ZarrInner> {
        let dtype = DType::ALL
            .into_iter()
            .find(|&d| zarr_data_type(d) == *array.data_type())
            .expect("checked by the caller");
        let mut fill = array.fill_value().as_ne_bytes().to_vec();
        if fill.len() != dtype.size() {
            return Err(Error::format(
                metadata_file(path),
                format!("fill value of {} bytes for {dtype}", fill.len()),
            ));
        }
        if dtype == DType::Bool {
            normalize_bools(&mut fill);
        }
        let partial = array.codecs().partial_decoder_capability().partial_read;
        let fixed_encoded = grid
            .chunk_shape()
            .iter()
            .map(|&c| std::num::NonZeroU64::new(c))
            .collect::<Option<Vec<_>>>()
            .and_then(|shape| {
                array
                    .codecs()
                    .encoded_representation(&shape, array.data_type(), array.fill_value())
                    .ok()
            })
            .and_then(|r| match r {
                BytesRepresentation::FixedSize(n) => Some(n),
                _ => None,
            });
        let raw = fixed_encoded == Some((grid.chunk_elements() * dtype.size()) as u64)
            && array.storage_transformers().create_metadatas().is_empty()
            && raw::is_raw(&array.codecs(), dtype);
        let lz4 = array.storage_transformers().create_metadatas().is_empty()
            && raw::is_lz4(&array.codecs(), dtype);
        let summary = summarize(array.metadata());
        let meta = StoreMeta {
            dtype,
            shape: grid.shape().to_vec(),
            chunks: grid.chunk_shape().to_vec(),
            fill,
        };
        let chunk_strides = c_strides(grid.chunk_shape());
        Ok(ZarrInner {
            path: path.to_path_buf(),
            storage,
            array,
            meta,
            grid,
            writable,
            partial,
            fixed_encoded,
            summary,
            raw,
            files: raw::OpenFiles::new(),
            lz4,
            chunk_strides,
        })
    }

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

/// Maps `ChunkGrid::new` errors so that they name the array.
fn grid_for(path: &Path, shape: &[u64], chunks: &[u64], dtype: DType) -> Result<ChunkGrid> {
    ChunkGrid::new(shape, chunks, dtype.size()).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// `zarr v3, codecs [bytes {"endian":"little"}, zstd {"level":3,...}]`.
fn summarize(m: &ArrayMetadata) -> String {
    let json = |c: &zarrs::metadata::Configuration| serde_json::to_string(c).unwrap_or_default();
    match m {
        ArrayMetadata::V3(m) => {
            let codecs: Vec<String> = m
                .codecs
                .iter()
                .map(|c| match c.configuration() {
                    Some(conf) if !conf.is_empty() => format!("{} {}", c.name(), json(conf)),
                    _ => c.name().to_string(),
                })
                .collect();
            format!("zarr v3, codecs [{}]", codecs.join(", "))
        }
        ArrayMetadata::V2(m) => {
            let mut parts = Vec::new();
            for f in m.filters.iter().flatten() {
                parts.push(format!("filter {} {}", f.id(), json(f.configuration())));
            }
            match &m.compressor {
                Some(c) => parts.push(format!("compressor {} {}", c.id(), json(c.configuration()))),
                None => parts.push("no compressor".into()),
            }
            format!(
                "zarr v2, {}, dtype {}, order {:?}",
                parts.join(", "),
                serde_json::to_string(&m.dtype).unwrap_or_default(),
                m.order
            )
        }
    }
}

impl ChunkStore for ZarrInner {
    fn backend(&self) -> &'static str {
        "zarr"
    }

    fn meta(&self) -> StoreMeta {
        self.meta.clone()
    }

    fn describe(&self) -> String {
        self.summary.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, self.partial, true)
            .read_only(!self.writable)
            .decodes(!self.raw)
            .reads_into(self.raw || self.lz4)
    }

    fn labels(&self) -> Option<Labels> {
        Some(Labels {
            dimension_names: self.array.dimension_names().clone(),
            attributes: serde_json::to_string(self.array.attributes())
                .unwrap_or_else(|_| "{}".into()),
        })
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check_chunk(chunk)?;
        if self.raw {
            return self.raw_read_chunk(chunk);
        }
        if self.lz4 {
            let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
            return Ok(self.lz4_read_chunk_into(chunk, &mut buf)?.then_some(buf));
        }
        let key = self.array.chunk_key(chunk);
        let Some(encoded) = self
            .storage
            .get(&key)
            .map_err(|e| self.storage_error(chunk, e))?
        else {
            return Ok(None);
        };
        let shape = self
            .array
            .chunk_shape(chunk)
            .map_err(|e| self.corrupt(chunk, e))?;
        let decoded = self
            .array
            .codecs()
            .decode(
                Cow::Owned(encoded.into()),
                &shape,
                self.array.data_type(),
                self.array.fill_value(),
                &Self::codec_options(),
            )
            .map_err(|e| self.corrupt(chunk, e))?
            .into_fixed()
            .map_err(|e| self.corrupt(chunk, e))?;
        let want = self.meta.chunk_bytes();
        if decoded.len() != want {
            return Err(self.corrupt(
                chunk,
                format!("decodes to {} bytes, expected {want}", decoded.len()),
            ));
        }
        // Large chunks live in their own maps (see `buffer`), small ones
        // keep the decoder's allocation.
        let mut buf = if want >= MAP_THRESHOLD {
            ChunkBuf::copy_of(&decoded)
        } else {
            ChunkBuf::from(decoded.into_owned())
        };
        if self.meta.dtype == DType::Bool {
            normalize_bools(&mut buf);
        }
        Ok(Some(buf))
    }

    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.check_chunk(chunk)?;
        let want = self.meta.chunk_bytes();
        if out.len() != want {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?}: a buffer of {} bytes for a chunk of {want}",
                self.path.display(),
                out.len()
            )));
        }
        if self.raw {
            return self.raw_read_chunk_into(chunk, out);
        }
        if self.lz4 {
            return self.lz4_read_chunk_into(chunk, out);
        }
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        out.copy_from_slice(&data);
        Ok(true)
    }

    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        if self.raw {
            let elem = self.meta.dtype.size();
            let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
            let strides = c_strides(&shape);
            let mut out = vec![0u8; shape.iter().product::<u64>() as usize * elem];
            let at = Strided {
                offset: 0,
                strides: &strides,
            };
            if !self.raw_read_region_into(chunk, region, &mut out, at, None)? {
                return Ok(None);
            }
            if self.meta.dtype == DType::Bool {
                normalize_bools(&mut out);
            }
            return Ok(Some(out));
        }
        if !self.partial {
            let Some(data) = self.read_chunk(chunk)? else {
                return Ok(None);
            };
            return Ok(Some(extract_region(&self.meta, &data, region)));
        }
        if region.iter().any(|r| r.2 == 0) {
            return Ok(Some(Vec::new()));
        }
        // Zarr subsets are boxes: read the bounding box of the (strided)
        // region, then pick the strided elements out of it.
        let bbox: Vec<u64> = region.iter().map(|&(_, s, n)| (n - 1) * s + 1).collect();
        let ranges: Vec<std::ops::Range<u64>> = region
            .iter()
            .zip(&bbox)
            .map(|(&(start, _, _), &len)| start..start + len)
            .collect();
        let decoder = self
            .array
            .partial_decoder(chunk)
            .map_err(|e| self.corrupt(chunk, e))?;
        let key = self.array.chunk_key(chunk);
        match self.storage.size_key(&key) {
            Err(e) => return Err(self.storage_error(chunk, e)),
            Ok(None) => return Ok(None),
            Ok(Some(n)) if self.fixed_encoded.is_some_and(|want| want != n) => {
                return Err(self.corrupt(
                    chunk,
                    format!(
                        "the chunk file holds {n} bytes, expected {}",
                        self.fixed_encoded.unwrap_or_default()
                    ),
                ));
            }
            Ok(Some(_)) => {}
        }
        let bytes: ArrayBytes<'_> = decoder
            .partial_decode(
                &ArraySubset::new_with_ranges(&ranges),
                &Self::codec_options(),
            )
            .map_err(|e| self.corrupt(chunk, e))?;
        let mut bytes = bytes
            .into_fixed()
            .map_err(|e| self.corrupt(chunk, e))?
            .into_owned();
        let want = bbox.iter().product::<u64>() as usize * self.meta.dtype.size();
        if bytes.len() != want {
            return Err(self.corrupt(
                chunk,
                format!("partial read gave {} bytes, expected {want}", bytes.len()),
            ));
        }
        if self.meta.dtype == DType::Bool {
            normalize_bools(&mut bytes);
        }
        if region.iter().all(|r| r.1 == 1) {
            return Ok(Some(bytes));
        }
        let boxed = StoreMeta {
            chunks: bbox,
            ..self.meta.clone()
        };
        let local: Vec<(u64, u64, u64)> = region.iter().map(|&(_, s, n)| (0, s, n)).collect();
        Ok(Some(extract_region(&boxed, &bytes, &local)))
    }

    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.check_chunk(chunk)?;
        self.check_region(chunk, region)?;
        let elem = self.meta.dtype.size();
        super::check_strided_fits(region, elem, out.len(), at)?;
        if self.raw && self.meta.dtype != DType::Bool {
            return self.raw_read_region_into(chunk, region, out, at, None);
        }
        // Bools are normalized in `read_region`'s dense buffer.
        let Some(data) = self.read_region(chunk, region)? else {
            return Ok(false);
        };
        super::place_region("zarr", chunk, region, elem, &data, out, at)?;
        Ok(true)
    }

    fn write_buffer_bytes(&self) -> usize {
        // One encoded copy of the chunk (compressors' worst case is a
        // little over the input); none when nothing can be written.
        if !self.writable {
            return 0;
        }
        encoded_bound(self.meta.chunk_bytes())
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check_chunk(chunk)?;
        let want = self.meta.chunk_bytes();
        if data.len() != want {
            return Err(store_error(format!(
                "{}: chunk {chunk:?}: {} bytes given, {want} expected",
                self.path.display(),
                data.len()
            )));
        }
        let stored = self
            .array
            .store_chunk_opt(
                chunk,
                ArrayBytes::new_flen(Cow::Borrowed(data)),
                &Self::codec_options(),
            )
            .map_err(|e| {
                store_error(format!(
                    "{}: chunk {chunk:?}: {e}",
                    self.chunk_path(chunk).display()
                ))
            });
        // The chunk's file was replaced (or removed, for a chunk of fill
        // values): an open one holds the old contents. Dropped after a
        // failed write too, which may have renamed.
        self.files.forget(chunk);
        stored
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        self.check_writable()?;
        self.check_chunk(chunk)?;
        let erased = self.array.erase_chunk(chunk).map_err(|e| {
            store_error(format!(
                "{}: chunk {chunk:?}: {e}",
                self.chunk_path(chunk).display()
            ))
        });
        self.files.forget(chunk);
        erased
    }

    fn flush(&self) -> Result<()> {
        self.storage.sync().map_err(|e| Error::io(&self.path, e))
    }

    fn stored_bytes(&self) -> Result<u64> {
        fs::allocated_bytes(&self.path).map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests;
