//! The HDF5 backend (cargo feature `hdf5`): one dataset of an HDF5 file,
//! through the HDF5 C library (`hdf5-metno`).
//!
//! # I/O
//!
//! HDF5's library runs one call at a time (`hdf5-metno` holds a global
//! lock around every call). So for chunked datasets whose filter pipeline
//! chunkyard knows (none, shuffle, deflate, LZ4 32004) the store moves
//! chunks as stored bytes: [`write_chunk`](ChunkStore::write_chunk)
//! byte-swaps and compresses on the calling thread (the cache's parallel
//! flush runs it on every rayon thread) and only then hands the encoded
//! chunk to HDF5's direct chunk write; reads fetch the stored chunk
//! (`H5Dread_chunk`) and decode it in Rust, except unfiltered
//! native-order chunks, which are stored as their decoded bytes and read
//! straight from the file by `pread` (see [`RawReads`]); those datasets
//! take partial reads. Contiguous and compact
//! datasets, and chunked ones with filters only HDF5 knows, go through
//! HDF5's own hyperslab reads and writes (with its type conversion), one at
//! a time.
//!
//! # Missing chunks
//!
//! A chunk HDF5 never allocated reads as `Ok(None)`. HDF5 cannot free one
//! chunk, so [`erase_chunk`](ChunkStore::erase_chunk) stores the fill value,
//! and a stored chunk whose every byte is the fill value also reads as
//! `None`: the caller sees the same elements either way.
//!
//! # Durability
//!
//! [`flush`](ChunkStore::flush) is `H5Fflush` (metadata and raw data out
//! of HDF5's caches) followed by `fsync`. See `docs/hdf5.md` for what a
//! crash between flushes leaves.

mod ffi;
pub mod filters;

use std::fs::File as StdFile;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hdf5_metno::dataset::Layout;
use hdf5_metno::datatype::ByteOrder;
use hdf5_metno::file::FileSpaceStrategy;
use hdf5_metno::filters::Filter;
use hdf5_metno::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5_metno::{
    Dataset, Extent, Extents, File, Group, H5Type, Hyperslab, Selection, SliceOrIndex,
};
use lru::LruCache;
use ndarray::{ArrayD, IxDyn};
use parking_lot::{Mutex, RwLock};

use self::filters::{FILTER_LZ4, Step};
use super::filemap::{FileMap, Touched};
use super::rawio::{self, Mapped, RawChunk};
use super::{Capabilities, ChunkRegion, ChunkStore, StoreMeta, extract_region};
use crate::buffer::{ChunkBuf, MAP_THRESHOLD};
use crate::chunk_grid::{ChunkGrid, DEFAULT_CHUNK_TARGET_BYTES, default_chunks};
use crate::codec::Codec;
use crate::dtype::{DType, Element, Endian, normalize_bools, swap_bytes_in_place};
use crate::error::{Error, Result};
use crate::layout::{Strided, c_strides, copy_region};

/// The dataset a path without a `:/dataset` suffix names.
pub const DEFAULT_DATASET: &str = "data";

/// The eight bytes every HDF5 file's superblock starts with.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// How [`Hdf5Store::create`] makes a dataset.
#[derive(Debug, Clone, Default)]
pub struct Hdf5Options {
    /// Chunk compression: none, gzip (HDF5 deflate) or lz4 (filter 32004).
    pub codec: Codec,
    /// Replace an existing dataset of the same name, or an existing file
    /// that is not HDF5.
    pub overwrite: bool,
}

/// How chunks move between the cache and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// Chunked, every filter known: stored chunk bytes, coded in Rust.
    Direct(Vec<Step>),
    /// Through HDF5's hyperslab I/O (`chunked`: whether HDF5 can say a
    /// chunk is unallocated).
    Hyperslab {
        /// The dataset is chunked.
        chunked: bool,
    },
}

/// One dataset of an HDF5 file as a [`ChunkStore`].
pub struct Hdf5Store {
    /// The dataset's state; a resize changes its shape while no call runs.
    inner: RwLock<Hdf5Inner>,
    path: PathBuf,
    name: String,
}

impl std::fmt::Debug for Hdf5Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.read().fmt(f)
    }
}

struct Hdf5Inner {
    // Field order matters: the dataset closes before its file.
    ds: Dataset,
    file: File,
    /// The file on disk.
    path: PathBuf,
    /// Absolute path of the dataset inside the file (`/group/data`).
    name: String,
    meta: StoreMeta,
    grid: ChunkGrid,
    access: Access,
    /// Byte order of the elements in the file.
    file_endian: Endian,
    writable: bool,
    /// One line for `describe`.
    layout: String,
    /// Something reached HDF5 since the last flush.
    dirty: AtomicBool,
    /// Reads straight from the file, for unfiltered native-order chunks.
    raw: Option<RawReads>,
    /// The file, open read-only, when filtered chunks' stored bytes are
    /// mapped from it instead of read through HDF5 (no user block).
    stored: Option<StdFile>,
}

/// Chunk addresses kept by a store reading chunks straight from the file:
/// a lookup in HDF5's chunk index takes HDF5's global lock.
const RAW_ADDRESSES: usize = 4096;

/// Reads of an unfiltered, native-order chunked dataset straight from the
/// file, bypassing HDF5: such a chunk is stored as its decoded bytes at
/// the address HDF5's chunk index gives, so an element is one `pread`
/// (`rawio`). HDF5 writes these chunks only with its direct chunk write,
/// which writes the bytes to the file at once (no HDF5 cache holds raw
/// data for them) and at the chunk's address, which a rewrite of the same
/// size keeps. Every write and erase drops the chunk's cached address all
/// the same, and a resize drops them all.
///
/// A contiguous dataset opened read-only is read the same way: its
/// elements are one C-order array at the address `H5Dget_offset` gives,
/// and each of chunkyard's chunks is a block of it. (Opened for writing,
/// HDF5's own writes to it may wait in HDF5's sieve buffer, so reads stay
/// with HDF5.)
struct RawReads {
    /// The file, open read-only.
    file: StdFile,
    /// Where the chunks are.
    layout: RawLayout,
    /// Chunk addresses looked up lately; `None`: not allocated.
    addrs: Mutex<LruCache<Vec<u64>, Option<u64>>>,
    /// A map of the whole file for reads of many runs (a tile): made on
    /// the first such read, made again when a chunk lies past its end
    /// (the file grew), dropped by a resize (the file may shrink).
    map: RwLock<Option<Arc<FileMap>>>,
    /// What reads through the map may have made resident.
    touched: Touched,
}

/// Where a raw dataset's chunks are.
enum RawLayout {
    /// Chunked: each chunk whole at the address HDF5's chunk index gives,
    /// with the C strides of the chunk shape.
    Chunked {
        /// C-order element strides of a chunk.
        strides: Vec<usize>,
    },
    /// Contiguous: one C-order array of the dataset's shape at `addr`.
    Contiguous {
        /// The first element's byte offset in the file.
        addr: u64,
        /// C-order element strides of the dataset.
        strides: Vec<usize>,
    },
}

impl RawReads {
    fn strides(&self) -> &[usize] {
        match &self.layout {
            RawLayout::Chunked { strides } | RawLayout::Contiguous { strides, .. } => strides,
        }
    }

    fn forget(&self, chunk: &[u64]) {
        self.addrs.lock().pop(chunk);
    }

    /// The file map, if it covers `end` bytes (mapped anew if the file has
    /// grown); `None` if the file cannot be mapped, which costs reads
    /// speed only.
    fn map_to(&self, end: u64) -> Option<Arc<FileMap>> {
        if let Some(m) = &*self.map.read()
            && m.len() as u64 >= end
        {
            return Some(m.clone());
        }
        let mut slot = self.map.write();
        if let Some(m) = &*slot
            && m.len() as u64 >= end
        {
            return Some(m.clone());
        }
        let m = Arc::new(FileMap::new(&self.file).ok()?);
        if (m.len() as u64) < end {
            return None;
        }
        *slot = Some(m.clone());
        Some(m)
    }
}

impl std::fmt::Debug for Hdf5Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf5Store")
            .field("path", &self.path)
            .field("dataset", &self.name)
            .field("meta", &self.meta)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// A dataset found in a file, for listings (`chunkyard info file.h5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSummary {
    /// Absolute path inside the file.
    pub name: String,
    /// The element type, if chunkyard reads it; else HDF5's description.
    pub dtype: std::result::Result<DType, String>,
    /// Shape.
    pub shape: Vec<u64>,
    /// Chunk shape, for chunked datasets.
    pub chunks: Option<Vec<u64>>,
}

fn store_err(message: impl Into<String>) -> Error {
    Error::Store {
        backend: "hdf5",
        message: message.into(),
    }
}

/// Whether `path` starts with the HDF5 signature (at 0 or, after a user
/// block, at 512, 1024, 2048, ...).
fn has_signature(path: &Path) -> Result<bool> {
    let mut f = StdFile::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = [0u8; 8];
    let mut at = 0u64;
    loop {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(path, e))?;
        match f.read_exact(&mut head) {
            Ok(()) if &head == SIGNATURE => return Ok(true),
            Ok(()) => {}
            Err(_) => return Ok(false),
        }
        at = if at == 0 { 512 } else { at * 2 };
        if at > 1 << 30 {
            return Ok(false);
        }
    }
}

/// Opens a file with HDF5, with typed errors for missing and foreign
/// files (and none of HDF5's error stack on stderr).
fn open_file(path: &Path, writable: bool) -> Result<File> {
    if !has_signature(path)? {
        return Err(Error::format(
            path,
            "not an HDF5 file (no HDF5 signature in its first bytes)",
        ));
    }
    let f = if writable {
        File::open_rw(path)
    } else {
        File::open(path)
    };
    f.map_err(|e| {
        if e.to_string().contains("already open for read-only") {
            // HDF5 cannot reopen for writing a file this process has open
            // read-only (say, as the source of a convert).
            Error::Unsupported(format!(
                "{}: the file is already open read-only in this process; \
                 write to another file",
                path.display()
            ))
        } else {
            store_err(format!("{}: cannot open: {e}", path.display()))
        }
    })
}

/// `group/data` -> `/group/data`.
fn absolute(name: &str) -> String {
    let trimmed = name.trim_matches('/');
    format!("/{trimmed}")
}

/// The HDF5 type descriptor chunkyard writes for a dtype (native order).
fn descriptor(dtype: DType) -> TypeDescriptor {
    crate::dispatch!(dtype, T => <T as H5Type>::type_descriptor())
}

/// A dataset's element type and byte order, or why chunkyard cannot read it.
fn element_type(ds: &Dataset) -> std::result::Result<(DType, Endian), String> {
    let t = ds.dtype().map_err(|e| e.to_string())?;
    let desc = t.to_descriptor().map_err(|e| e.to_string())?;
    let dtype = match &desc {
        TypeDescriptor::Boolean => DType::Bool,
        TypeDescriptor::Integer(IntSize::U1) => DType::I8,
        TypeDescriptor::Integer(IntSize::U2) => DType::I16,
        TypeDescriptor::Integer(IntSize::U4) => DType::I32,
        TypeDescriptor::Integer(IntSize::U8) => DType::I64,
        TypeDescriptor::Unsigned(IntSize::U1) => DType::U8,
        TypeDescriptor::Unsigned(IntSize::U2) => DType::U16,
        TypeDescriptor::Unsigned(IntSize::U4) => DType::U32,
        TypeDescriptor::Unsigned(IntSize::U8) => DType::U64,
        TypeDescriptor::Float(FloatSize::U4) => DType::F32,
        TypeDescriptor::Float(FloatSize::U8) => DType::F64,
        other => return Err(format!("{other}")),
    };
    if t.size() != dtype.size() {
        return Err(format!("{desc} of {} bytes", t.size()));
    }
    let endian = match t.byte_order() {
        ByteOrder::BigEndian => Endian::Big,
        ByteOrder::LittleEndian => Endian::Little,
        _ => Endian::NATIVE,
    };
    Ok((dtype, endian))
}

/// The pipeline as steps chunkyard runs itself, or `None` if a filter is
/// one only HDF5 knows.
fn pipeline(ds: &Dataset, elem: usize) -> Option<Vec<Step>> {
    ds.filters()
        .into_iter()
        .map(|f| match f {
            Filter::Shuffle => Some(Step::Shuffle(elem)),
            Filter::Deflate(level) => Some(Step::Deflate(u32::from(level))),
            Filter::User(id, cd) if id == FILTER_LZ4 => {
                Some(Step::Lz4(cd.first().copied().unwrap_or(0) as usize))
            }
            _ => None,
        })
        .collect()
}

/// Every dataset in the file, depth first, sorted by name.
pub fn list_datasets(path: &Path) -> Result<Vec<DatasetSummary>> {
    init()?;
    let file = open_file(path, false)?;
    let mut out = Vec::new();
    let err = |e: hdf5_metno::Error| store_err(format!("{}: {e}", path.display()));
    fn walk(
        g: &Group,
        out: &mut Vec<DatasetSummary>,
        err: &dyn Fn(hdf5_metno::Error) -> Error,
    ) -> Result<()> {
        for ds in g.datasets().map_err(err)? {
            out.push(DatasetSummary {
                name: ds.name(),
                dtype: element_type(&ds).map(|(d, _)| d),
                shape: ds.shape().into_iter().map(|n| n as u64).collect(),
                chunks: ds
                    .chunk()
                    .map(|c| c.into_iter().map(|n| n as u64).collect()),
            });
        }
        for sub in g.groups().map_err(err)? {
            walk(&sub, out, err)?;
        }
        Ok(())
    }
    walk(&file, &mut out, &err)?;
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Registers the LZ4 filter (once per process).
fn init() -> Result<()> {
    ffi::register_lz4().map_err(store_err)
}

impl Hdf5Store {
    fn wrap(inner: Hdf5Inner) -> Self {
        Hdf5Store {
            path: inner.path.clone(),
            name: inner.name.clone(),
            inner: RwLock::new(inner),
        }
    }

    /// Creates a chunked dataset `name` (groups made as needed) in the file
    /// at `path`, creating the file if it does not exist. `fill` is one
    /// native-order element. The first axis is unlimited (`maxshape=(None,
    /// ...)` in h5py's terms), so the dataset can be resized along it.
    pub fn create(
        path: &Path,
        name: &str,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        fill: &[u8],
        opts: &Hdf5Options,
    ) -> Result<Hdf5Store> {
        Hdf5Inner::create(path, name, dtype, shape, chunks, fill, opts).map(Self::wrap)
    }

    /// Opens dataset `name` of the HDF5 file at `path`. `chunks` is the
    /// chunk shape used for contiguous datasets (default: about 16 MiB).
    pub fn open(
        path: &Path,
        name: &str,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<Hdf5Store> {
        Hdf5Inner::open(path, name, chunks, writable).map(Self::wrap)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dataset's absolute path inside the file.
    pub fn dataset_name(&self) -> &str {
        &self.name
    }
}

super::locked_store!(Hdf5Store, inner);

impl super::ResizeInPlace for Hdf5Inner {
    /// `H5Dset_extent` on the first axis (HDF5 drops chunks wholly past a
    /// shorter end), then a flush and sync, so the new shape is durable.
    fn resize_in_place(&mut self, len: u64) -> Result<()> {
        if !self.writable {
            return Err(store_err(format!(
                "{}: cannot resize, the file was opened read-only",
                self.here()
            )));
        }
        if self.meta.shape.is_empty() {
            return Err(Error::invalid(format!(
                "{}: a 0-d dataset has no axis to resize",
                self.here()
            )));
        }
        let growable = self
            .ds
            .space()
            .map(|s| {
                s.maxdims()
                    .first()
                    .is_some_and(|m| m.is_none_or(|m| m as u64 >= len))
            })
            .unwrap_or(false);
        if !growable {
            return Err(Error::Unsupported(format!(
                "{}: the dataset's maximum shape does not allow {len} along the first axis \
                 (it was created without maxshape=(None, ...)); copy it with `convert` first",
                self.here()
            )));
        }
        let mut shape = self.meta.shape.clone();
        shape[0] = len;
        let grid = ChunkGrid::new(&shape, &self.meta.chunks, self.meta.dtype.size())
            .map_err(|e| Error::invalid(format!("{}: {e}", self.here())))?;
        let dims: Vec<usize> = shape.iter().map(|&n| n as usize).collect();
        if let Some(raw) = &self.raw {
            raw.addrs.lock().clear();
            *raw.map.write() = None;
        }
        self.ds.resize(dims).map_err(self.h5("resize"))?;
        self.dirty.store(true, Ordering::Release);
        self.meta.shape = shape;
        self.grid = grid;
        ChunkStore::flush(self)
    }
}

impl Hdf5Inner {
    /// Creates a chunked dataset `name` (groups made as needed) in the file
    /// at `path`, creating the file if it does not exist. `fill` is one
    /// native-order element.
    fn create(
        path: &Path,
        name: &str,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        fill: &[u8],
        opts: &Hdf5Options,
    ) -> Result<Hdf5Inner> {
        init()?;
        let name = absolute(name);
        if name == "/" {
            return Err(Error::invalid(format!(
                "{}: name a dataset (file.h5:/group/dataset)",
                path.display()
            )));
        }
        ChunkGrid::new(shape, chunks, dtype.size()).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::invalid(format!("{}:{name}: {m}", path.display())),
            other => other,
        })?;
        if fill.len() != dtype.size() {
            return Err(Error::invalid(format!(
                "fill value of {} bytes for {dtype}",
                fill.len()
            )));
        }
        let steps = match opts.codec {
            Codec::None => vec![],
            Codec::Gzip { level } => vec![Step::Deflate(level)],
            Codec::Lz4 => vec![Step::Lz4(0)],
            other => {
                return Err(Error::Unsupported(format!(
                    "{}: HDF5 datasets are compressed with gzip or lz4, not {other}",
                    path.display()
                )));
            }
        };
        let exists = path.exists();
        let file = if exists && has_signature(path)? {
            open_file(path, true)?
        } else if exists && !opts.overwrite {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "file exists and is not an HDF5 file (pass overwrite to replace it)",
                ),
            ));
        } else {
            // Every allocation at the end of the file, freed space never
            // reused: a chunk rewritten after a flush cannot land on bytes
            // the flushed index still points at (see docs/hdf5.md).
            File::with_options()
                .with_fcpl(|p| p.file_space_strategy(FileSpaceStrategy::None))
                .create(path)
                .map_err(|e| store_err(format!("{}: cannot create: {e}", path.display())))?
        };
        let fail = |e: hdf5_metno::Error| store_err(format!("{}:{name}: {e}", path.display()));
        if file.link_exists(&name) {
            if !opts.overwrite {
                return Err(Error::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        format!("dataset {name} exists (pass overwrite to replace it)"),
                    ),
                ));
            }
            file.unlink(&name).map_err(fail)?;
        }
        let mut b = file.new_dataset_builder();
        b = crate::dispatch!(dtype, T => b.fill_value(T::from_ne_slice(fill)));
        let extents: Extents = if shape.is_empty() {
            Extents::Scalar
        } else {
            // HDF5 wants chunks no larger than a fixed axis.
            Extents::from(
                shape
                    .iter()
                    .zip(chunks)
                    .enumerate()
                    .map(|(axis, (&n, &c))| {
                        // The first axis is unlimited so that the dataset can
                        // grow (append); so is any axis shorter than its chunk.
                        Extent::new(n as usize, (axis > 0 && c <= n).then_some(n as usize))
                    })
                    .collect::<Vec<_>>(),
            )
        };
        if !shape.is_empty() {
            b = b.chunk(chunks.iter().map(|&c| c as usize).collect::<Vec<_>>());
            for s in &steps {
                b = match *s {
                    Step::Deflate(level) => b.deflate(level as u8),
                    Step::Lz4(_) => b.add_filter(FILTER_LZ4, &[0]),
                    Step::Shuffle(_) => b.shuffle(),
                };
            }
        } else if !steps.is_empty() {
            return Err(Error::Unsupported(format!(
                "{}:{name}: a 0-d HDF5 dataset cannot be compressed",
                path.display()
            )));
        }
        let ds = b
            .empty_as(descriptor(dtype))
            .shape(extents)
            .create(name.as_str())
            .map_err(fail)?;
        Self::from_dataset(path, name, file, ds, true, None)
    }

    /// Opens dataset `name` of the HDF5 file at `path`. `chunks` is the
    /// chunk shape used for contiguous datasets (default: about 16 MiB).
    fn open(path: &Path, name: &str, chunks: Option<&[u64]>, writable: bool) -> Result<Hdf5Inner> {
        init()?;
        let name = absolute(name);
        let file = open_file(path, writable)?;
        let ds = match file.dataset(&name) {
            Ok(ds) => ds,
            Err(_) => {
                let found = list_datasets(path)
                    .map(|l| l.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                return Err(Error::format(
                    path,
                    format!(
                        "no dataset {name} in this file (datasets: {})",
                        if found.is_empty() { "none" } else { &found }
                    ),
                ));
            }
        };
        Self::from_dataset(path, name, file, ds, writable, chunks)
    }

    fn from_dataset(
        path: &Path,
        name: String,
        file: File,
        ds: Dataset,
        writable: bool,
        chunks: Option<&[u64]>,
    ) -> Result<Hdf5Inner> {
        let here = format!("{}:{name}", path.display());
        let (dtype, file_endian) = element_type(&ds).map_err(|t| {
            Error::Unsupported(format!(
                "{here}: element type {t} (chunkyard reads bool, i8-i64, u8-u64, f32, f64)"
            ))
        })?;
        let space = ds.space().map_err(|e| store_err(format!("{here}: {e}")))?;
        if space.is_null() {
            return Err(Error::Unsupported(format!("{here}: a null dataspace")));
        }
        let shape: Vec<u64> = ds.shape().into_iter().map(|n| n as u64).collect();
        let layout_kind = ds.layout();
        let (chunks, access) = match (layout_kind, ds.chunk()) {
            (Layout::Chunked, Some(c)) => {
                let c: Vec<u64> = c.into_iter().map(|n| n as u64).collect();
                let access = match pipeline(&ds, dtype.size()) {
                    Some(steps) => Access::Direct(steps),
                    None => Access::Hyperslab { chunked: true },
                };
                (c, access)
            }
            (Layout::Chunked, None) => {
                return Err(store_err(format!("{here}: chunked without a chunk shape")));
            }
            (Layout::Compact | Layout::Contiguous, _) => {
                let c = match chunks {
                    Some(c) => c.to_vec(),
                    None => default_chunks(&shape, dtype.size(), false, DEFAULT_CHUNK_TARGET_BYTES),
                };
                (c, Access::Hyperslab { chunked: false })
            }
            #[allow(unreachable_patterns)]
            (other, _) => {
                return Err(Error::Unsupported(format!("{here}: {other:?} layout")));
            }
        };
        let grid = ChunkGrid::new(&shape, &chunks, dtype.size())
            // A shape or chunk shape the file claims but chunkyard cannot
            // hold is the file's fault, not the caller's.
            .map_err(|e| match e {
                Error::InvalidArgument(m) => Error::format(path, format!("{name}: {m}")),
                other => other,
            })?;
        let fill = crate::dispatch!(dtype, T => {
            let v: Option<T> = ds
                .dcpl()
                .and_then(|p| p.get_fill_value_as::<T>())
                .unwrap_or(None);
            T::to_ne_vec(&[v.unwrap_or_default()])
        });
        let filters = ds
            .filters()
            .iter()
            .map(|f| match f {
                Filter::Deflate(l) => format!("gzip:{l}"),
                Filter::Shuffle => "shuffle".into(),
                Filter::User(id, _) if *id == FILTER_LZ4 => "lz4".into(),
                other => format!("filter {}", other.id()),
            })
            .collect::<Vec<_>>();
        // Unfiltered native-order chunks are read straight from the file
        // (HDF5 before 1.14.4 reports chunk addresses without the user
        // block, so files with one are left to HDF5).
        let plain = (file_endian == Endian::NATIVE || dtype.size() == 1)
            && dtype != DType::Bool
            && file.userblock() == 0;
        let raw_layout = match &access {
            Access::Direct(steps) if plain && steps.is_empty() => Some(RawLayout::Chunked {
                strides: c_strides(&chunks),
            }),
            Access::Hyperslab { chunked: false }
                if plain && !writable && layout_kind == Layout::Contiguous =>
            {
                let len = shape.iter().product::<u64>() * dtype.size() as u64;
                ds.offset()
                    .filter(|_| ds.storage_size() == len && len > 0)
                    .map(|addr| RawLayout::Contiguous {
                        addr,
                        strides: c_strides(&shape),
                    })
            }
            _ => None,
        };
        let raw = match raw_layout {
            Some(layout) => {
                let f = StdFile::open(path).map_err(|e| Error::io(path, e))?;
                if let RawLayout::Contiguous { addr, .. } = &layout {
                    let len = ds.storage_size();
                    let have = f.metadata().map_err(|e| Error::io(path, e))?.len();
                    if addr.checked_add(len).is_none_or(|end| end > have) {
                        return Err(Error::format(
                            path,
                            format!(
                                "{name}: the dataset's {len} bytes at {addr} lie past the end \
                                 of the file ({have} bytes)"
                            ),
                        ));
                    }
                }
                Some(RawReads {
                    file: f,
                    layout,
                    addrs: Mutex::new(LruCache::new(
                        std::num::NonZeroUsize::new(RAW_ADDRESSES).expect("nonzero"),
                    )),
                    map: RwLock::new(None),
                    touched: Touched::default(),
                })
            }
            None => None,
        };
        // Filtered chunks: their stored bytes are decoded straight from a
        // map of the file (addresses as for raw reads: no user block).
        let stored = match &access {
            Access::Direct(steps)
                if raw.is_none() && !steps.is_empty() && file.userblock() == 0 =>
            {
                Some(StdFile::open(path).map_err(|e| Error::io(path, e))?)
            }
            _ => None,
        };
        let layout = format!(
            "hdf5 {}, {}, {}{}{}",
            name,
            match layout_kind {
                Layout::Chunked => "chunked",
                Layout::Compact => "compact",
                _ => "contiguous",
            },
            match file_endian {
                Endian::Little => "little-endian",
                Endian::Big => "big-endian",
            },
            if filters.is_empty() { "" } else { ", " },
            filters.join(" + ")
        );
        Ok(Hdf5Inner {
            meta: StoreMeta {
                dtype,
                shape,
                chunks,
                fill,
            },
            ds,
            file,
            path: path.to_path_buf(),
            name,
            grid,
            access,
            file_endian,
            writable,
            layout,
            dirty: AtomicBool::new(false),
            raw,
            stored,
        })
    }

    fn here(&self) -> String {
        format!("{}:{}", self.path.display(), self.name)
    }

    fn h5(&self, what: &str) -> impl Fn(hdf5_metno::Error) -> Error + '_ {
        let what = what.to_string();
        move |e| store_err(format!("{}: {what}: {e}", self.here()))
    }

    fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
        if chunk.len() != self.meta.shape.len() || !self.grid.contains_chunk(chunk) {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?} is outside the chunk grid {:?}",
                self.here(),
                self.grid.grid_shape()
            )));
        }
        Ok(())
    }

    fn check_write(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        if !self.writable {
            return Err(Error::invalid(format!("{}: opened read-only", self.here())));
        }
        self.check_chunk(chunk)?;
        if data.len() != self.meta.chunk_bytes() {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?} has {} bytes, expected {}",
                self.here(),
                data.len(),
                self.meta.chunk_bytes()
            )));
        }
        Ok(())
    }

    /// Position of the chunk's first element.
    fn origin(&self, chunk: &[u64]) -> Vec<u64> {
        chunk
            .iter()
            .zip(&self.meta.chunks)
            .map(|(k, c)| k * c)
            .collect()
    }

    fn is_fill(&self, data: &[u8]) -> bool {
        let f = &self.meta.fill;
        data.chunks_exact(f.len()).all(|e| e == f.as_slice())
    }

    /// Whether HDF5 has storage for the chunk (`true` for contiguous
    /// datasets, which have no chunks).
    fn allocated(&self, chunk: &[u64]) -> Result<Option<ffi::ChunkStorage>> {
        match self.access {
            Access::Hyperslab { chunked: false } => Ok(Some(ffi::ChunkStorage {
                addr: 0,
                size: 0,
                mask: 0,
            })),
            _ => ffi::chunk_storage(&self.ds, &self.origin(chunk)).map_err(self.h5("chunk index")),
        }
    }

    /// The in-bounds part of a chunk as an HDF5 selection, with its counts.
    fn hyperslab(&self, chunk: &[u64]) -> (Selection, Vec<usize>) {
        let origin = self.origin(chunk);
        let extent = self.grid.chunk_extent(chunk);
        let counts: Vec<usize> = extent.iter().map(|&n| n as usize).collect();
        if origin.is_empty() {
            return (Selection::All, counts);
        }
        let slices: Vec<SliceOrIndex> = origin
            .iter()
            .zip(&extent)
            .map(|(&o, &n)| SliceOrIndex::from(o as usize..(o + n) as usize))
            .collect();
        (Selection::from(Hyperslab::from(slices)), counts)
    }

    /// Strides to place the in-bounds region inside a full chunk buffer.
    fn region_strides(&self) -> Vec<usize> {
        c_strides(&self.meta.chunks)
    }

    /// Reads a chunk's stored bytes and decodes them in Rust straight into
    /// `out` (`chunk_bytes` long), in native byte order; `Ok(false)` if the
    /// chunk was never allocated (`out` untouched).
    fn direct_read_into(&self, steps: &[Step], chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        let Some(ffi::ChunkStorage { addr, size, mask }) = self.allocated(chunk)? else {
            return Ok(false);
        };
        // Filters add at most a few bytes per block; a chunk index that
        // claims far more is corrupt, and is not allocated.
        let expected = self.meta.chunk_bytes() as u64;
        if size > expected.saturating_mul(2).saturating_add(1 << 16) {
            return Err(Error::format(
                &self.path,
                format!(
                    "{}, chunk {chunk:?}: the chunk index claims {size} stored bytes \
                     for a chunk of {expected}",
                    self.name
                ),
            ));
        }
        let decoded = match &self.stored {
            // Large chunks are decoded from a map of the file: no buffer
            // for the stored bytes, and no copy into one. Random 64x64
            // tiles of a 40-plane lz4 file through a 256 MiB cache
            // (`examples/random_reads FILE tiles`): see docs/hdf5.md.
            Some(file) if size >= MAP_THRESHOLD as u64 => {
                let have = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
                if addr.checked_add(size).is_none_or(|end| end > have) {
                    return Err(Error::format(
                        &self.path,
                        format!(
                            "{}, chunk {chunk:?}: its {size} stored bytes at {addr} lie past \
                             the end of the file ({have} bytes)",
                            self.name
                        ),
                    ));
                }
                let map = rawio::map_stored(file, addr, size as usize)
                    .map_err(|e| Error::io(&self.path, e))?;
                filters::decode(steps, mask, &map, out)
            }
            _ => {
                let (mask, raw) = ffi::read_chunk_raw(&self.ds, &self.origin(chunk), size)
                    .map_err(self.h5("read chunk"))?;
                filters::decode(steps, mask, &raw, out)
            }
        };
        decoded.map_err(|m| {
            Error::format(&self.path, format!("{}, chunk {chunk:?}: {m}", self.name))
        })?;
        if self.file_endian != Endian::NATIVE {
            swap_bytes_in_place(out, self.meta.dtype.size());
        }
        Ok(true)
    }

    fn read_hyperslab(&self, chunk: &[u64]) -> Result<ChunkBuf> {
        let (sel, counts) = self.hyperslab(chunk);
        let elem = self.meta.dtype.size();
        let bytes: Vec<u8> = crate::dispatch!(self.meta.dtype, T => {
            let a: ArrayD<T> = self
                .ds
                .read_slice::<T, _, IxDyn>(sel)
                .map_err(self.h5("read"))?;
            let a = a.as_standard_layout();
            T::to_ne_vec(a.as_slice().expect("standard layout"))
        });
        let mut out = ChunkBuf::filled(self.meta.chunk_bytes(), &self.meta.fill);
        let out_strides = self.region_strides();
        copy_region(
            &counts,
            elem,
            &bytes,
            Strided {
                offset: 0,
                strides: &c_strides(&counts.iter().map(|&n| n as u64).collect::<Vec<_>>()),
            },
            &mut out,
            Strided {
                offset: 0,
                strides: &out_strides,
            },
        );
        Ok(out)
    }

    fn write_hyperslab(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let (sel, counts) = self.hyperslab(chunk);
        let region: Vec<(u64, u64, u64)> = counts.iter().map(|&n| (0, 1, n as u64)).collect();
        let inside = extract_region(&self.meta, data, &region);
        crate::dispatch!(self.meta.dtype, T => {
            let values: Vec<T> = inside
                .chunks_exact(self.meta.dtype.size())
                .map(T::from_ne_slice)
                .collect();
            let a = ArrayD::from_shape_vec(IxDyn(&counts), values).expect("region shape");
            self.ds.write_slice(&a, sel).map_err(self.h5("write"))?;
        });
        Ok(())
    }

    /// A raw chunk's address in the file (cached); `None` if HDF5 never
    /// allocated it. A chunk index entry that does not describe the
    /// chunk's bytes inside the file is a corrupt file.
    fn raw_addr(&self, raw: &RawReads, chunk: &[u64]) -> Result<Option<u64>> {
        if let RawLayout::Contiguous { addr, strides, .. } = &raw.layout {
            let first: usize = self
                .origin(chunk)
                .iter()
                .zip(strides)
                .map(|(&o, &s)| o as usize * s)
                .sum();
            return Ok(Some(addr + (first * self.meta.dtype.size()) as u64));
        }
        if let Some(&a) = raw.addrs.lock().get(chunk) {
            return Ok(a);
        }
        let addr = match self.allocated(chunk)? {
            None => None,
            Some(st) => {
                let want = self.meta.chunk_bytes() as u64;
                let len = raw
                    .file
                    .metadata()
                    .map_err(|e| Error::io(&self.path, e))?
                    .len();
                if st.size != want || st.addr.checked_add(st.size).is_none_or(|end| end > len) {
                    return Err(Error::format(
                        &self.path,
                        format!(
                            "{}, chunk {chunk:?}: the chunk index places {} bytes at {} \
                             (an unfiltered chunk holds {want}; the file holds {len})",
                            self.name, st.size, st.addr
                        ),
                    ));
                }
                Some(st.addr)
            }
        };
        raw.addrs.lock().put(chunk.to_vec(), addr);
        Ok(addr)
    }

    /// `pread` of a raw chunk's bytes `pos..pos + buf.len()`.
    fn raw_pread(
        &self,
        raw: &RawReads,
        chunk: &[u64],
        addr: u64,
        buf: &mut [u8],
        pos: usize,
    ) -> Result<()> {
        raw.file
            .read_exact_at(buf, addr + pos as u64)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::format(
                    &self.path,
                    format!(
                        "{}, chunk {chunk:?}: the file ends inside the chunk",
                        self.name
                    ),
                ),
                _ => Error::io(&self.path, e),
            })
    }

    /// Reads a whole raw chunk into `out`; `Ok(false)` if it was never
    /// allocated or holds only the fill value (an erased chunk). A
    /// contiguous dataset's chunk is always there: the fill value past the
    /// array's edge.
    fn raw_read_chunk_into(&self, raw: &RawReads, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        if let RawLayout::Contiguous { .. } = raw.layout {
            // The block of the array inside the chunk; the fill value past
            // the array's edge.
            let f = &self.meta.fill;
            for e in out.chunks_exact_mut(f.len()) {
                e.copy_from_slice(f);
            }
            let region: Vec<(u64, u64, u64)> = self
                .grid
                .chunk_extent(chunk)
                .iter()
                .map(|&n| (0, 1, n))
                .collect();
            let strides = self.region_strides();
            let at = Strided {
                offset: 0,
                strides: &strides,
            };
            return self.raw_region_into(raw, chunk, &region, out, at, None);
        }
        let Some(addr) = self.raw_addr(raw, chunk)? else {
            return Ok(false);
        };
        self.raw_pread(raw, chunk, addr, out, 0)?;
        Ok(!self.is_fill(out))
    }

    /// Reads a region of a raw chunk into `out` at `at` (checked by the
    /// caller); `Ok(false)` if it was never allocated. `force`: see
    /// [`RawChunk::read_region_into`].
    fn raw_region_into(
        &self,
        raw: &RawReads,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
        force: Option<rawio::Method>,
    ) -> Result<bool> {
        let Some(addr) = self.raw_addr(raw, chunk)? else {
            return Ok(false);
        };
        let elem = self.meta.dtype.size();
        // Bytes from the chunk's first element to its last in the file.
        let len = match &raw.layout {
            RawLayout::Chunked { .. } => self.meta.chunk_bytes(),
            RawLayout::Contiguous { strides, .. } => {
                let extent = self.grid.chunk_extent(chunk);
                let last: usize = extent
                    .iter()
                    .zip(strides)
                    .map(|(&n, &s)| (n as usize).saturating_sub(1) * s)
                    .sum();
                (last + 1) * elem
            }
        };
        let one_run = region.iter().rev().skip(1).all(|r| r.2 <= 1);
        let file_map = if one_run {
            None
        } else {
            raw.map_to(addr + len as u64)
        };
        let release = || {
            if let Some(m) = &file_map {
                m.release();
            }
        };
        let get_map = || file_map.as_deref();
        RawChunk {
            strides: raw.strides(),
            elem,
        }
        .read_region_into(
            region,
            out,
            at,
            force,
            |buf, pos| self.raw_pread(raw, chunk, addr, buf, pos),
            || rawio::map_chunk(&raw.file, addr, len).map_err(|e| Error::io(&self.path, e)),
            file_map.as_deref().map(|_| Mapped {
                map: &get_map,
                base: addr as usize,
                touched: &raw.touched,
                release: &release,
                // One large file: the page cache holds it in large folios
                // and one fault maps many runs.
                max_gap: None,
            }),
        )?;
        Ok(true)
    }

    /// Whether a region can be read raw: a contiguous dataset's chunks
    /// are blocks of the array, so only their part inside it can.
    fn raw_fits(&self, raw: &RawReads, chunk: &[u64], region: ChunkRegion<'_>) -> bool {
        match raw.layout {
            RawLayout::Chunked { .. } => true,
            RawLayout::Contiguous { .. } => region
                .iter()
                .zip(&self.grid.chunk_extent(chunk))
                .all(|(&(start, step, count), &e)| count == 0 || start + (count - 1) * step < e),
        }
    }

    fn check_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
        self.check_chunk(chunk)?;
        if super::region_fits(&self.meta.chunks, region) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{}: region {region:?} does not fit chunk {chunk:?} of shape {:?}",
                self.here(),
                self.meta.chunks
            )))
        }
    }

    /// Native-order decoded bytes to what the file stores.
    /// Whether chunks are written as they are: no filter and the file in
    /// this machine's byte order.
    fn verbatim(&self, steps: &[Step]) -> bool {
        steps.is_empty() && !(self.file_endian != Endian::NATIVE && self.meta.dtype.size() > 1)
    }

    /// The chunk as the file stores it: `data` itself when nothing is to
    /// be done (an uncompressed native-order dataset: no 16 MB copy per
    /// chunk of the bench), else a filtered or byte-swapped copy.
    fn encode<'a>(&self, steps: &[Step], data: &'a [u8]) -> Result<Encoded<'a>> {
        if self.verbatim(steps) {
            return Ok(Encoded::Borrowed(data));
        }
        let swapped;
        let file_order = if self.file_endian != Endian::NATIVE && self.meta.dtype.size() > 1 {
            let mut v = ChunkBuf::copy_of(data);
            swap_bytes_in_place(&mut v, self.meta.dtype.size());
            swapped = v;
            &swapped[..]
        } else {
            data
        };
        filters::encode(steps, file_order)
            .map(Encoded::Owned)
            .map_err(|m| store_err(format!("{}: {m}", self.here())))
    }
}

/// A chunk as the file stores it: the caller's bytes, or an encoded copy.
enum Encoded<'a> {
    Borrowed(&'a [u8]),
    Owned(ChunkBuf),
}

impl std::ops::Deref for Encoded<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Encoded::Borrowed(b) => b,
            Encoded::Owned(b) => b,
        }
    }
}

impl ChunkStore for Hdf5Inner {
    fn backend(&self) -> &'static str {
        "hdf5"
    }

    fn meta(&self) -> StoreMeta {
        self.meta.clone()
    }

    fn describe(&self) -> String {
        self.layout.clone()
    }

    fn capabilities(&self) -> Capabilities {
        match self.access {
            Access::Direct(_) => Capabilities::new(true, self.raw.is_some(), true),
            Access::Hyperslab { chunked } => Capabilities::new(false, self.raw.is_some(), chunked),
        }
        .read_only(!self.writable)
        // Stored bytes, or HDF5's own buffer, beside the chunk.
        .decodes(self.raw.is_none())
        .reads_into(self.raw.is_some() || matches!(self.access, Access::Direct(_)))
    }

    fn read_chunk(&self, chunk: &[u64]) -> Result<Option<ChunkBuf>> {
        self.check_chunk(chunk)?;
        if let Some(raw) = &self.raw {
            let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
            if !self.raw_read_chunk_into(raw, chunk, &mut buf)? {
                return Ok(None);
            }
            return Ok(Some(buf));
        }
        let mut buf = match &self.access {
            Access::Direct(steps) => {
                let mut buf = ChunkBuf::zeroed(self.meta.chunk_bytes());
                if !self.direct_read_into(steps, chunk, &mut buf)? {
                    return Ok(None);
                }
                buf
            }
            Access::Hyperslab { .. } => {
                if self.allocated(chunk)?.is_none() {
                    return Ok(None);
                }
                self.read_hyperslab(chunk)?
            }
        };
        if self.meta.dtype == DType::Bool {
            normalize_bools(&mut buf);
        }
        if self.capabilities().tracks_missing && self.is_fill(&buf) {
            return Ok(None);
        }
        Ok(Some(buf))
    }

    fn read_chunk_into(&self, chunk: &[u64], out: &mut [u8]) -> Result<bool> {
        self.check_chunk(chunk)?;
        if out.len() != self.meta.chunk_bytes() {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?}: a buffer of {} bytes for a chunk of {}",
                self.here(),
                out.len(),
                self.meta.chunk_bytes()
            )));
        }
        if let Some(raw) = &self.raw {
            return self.raw_read_chunk_into(raw, chunk, out);
        }
        if let Access::Direct(steps) = &self.access {
            if !self.direct_read_into(steps, chunk, out)? {
                return Ok(false);
            }
            if self.meta.dtype == DType::Bool {
                normalize_bools(out);
            }
            return Ok(true);
        }
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        out.copy_from_slice(&data);
        Ok(true)
    }

    fn read_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<Option<Vec<u8>>> {
        self.check_region(chunk, region)?;
        let Some(raw) = self
            .raw
            .as_ref()
            .filter(|r| self.raw_fits(r, chunk, region))
        else {
            let Some(data) = self.read_chunk(chunk)? else {
                return Ok(None);
            };
            return Ok(Some(extract_region(&self.meta, &data, region)));
        };
        let shape: Vec<u64> = region.iter().map(|r| r.2).collect();
        let strides = c_strides(&shape);
        let mut out = vec![0u8; shape.iter().product::<u64>() as usize * self.meta.dtype.size()];
        let at = Strided {
            offset: 0,
            strides: &strides,
        };
        Ok(self
            .raw_region_into(raw, chunk, region, &mut out, at, None)?
            .then_some(out))
    }

    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.check_region(chunk, region)?;
        let elem = self.meta.dtype.size();
        super::check_strided_fits(region, elem, out.len(), at)?;
        if let Some(raw) = &self.raw
            && self.raw_fits(raw, chunk, region)
        {
            return self.raw_region_into(raw, chunk, region, out, at, None);
        }
        let Some(data) = self.read_region(chunk, region)? else {
            return Ok(false);
        };
        super::place_region(self.backend(), chunk, region, elem, &data, out, at)?;
        Ok(true)
    }

    fn write_buffer_bytes(&self) -> usize {
        // Direct writes encode (and byte-swap) a copy of the chunk.
        if !self.writable {
            return 0;
        }
        match &self.access {
            Access::Direct(steps) if self.verbatim(steps) => 0,
            Access::Direct(_) => 2 * crate::store::zarr::encoded_bound(self.meta.chunk_bytes()),
            // The chunk's part inside the array, then as typed values.
            Access::Hyperslab { .. } => 2 * self.meta.chunk_bytes(),
        }
    }

    fn write_chunk(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        self.check_write(chunk, data)?;
        match &self.access {
            Access::Direct(steps) => {
                // Encoding runs here, on the caller's thread, before HDF5's
                // lock is taken: a parallel flush compresses on every core.
                let encoded = self.encode(steps, data)?;
                let written = ffi::write_chunk_raw(&self.ds, &self.origin(chunk), 0, &encoded)
                    .map_err(self.h5("write chunk"));
                if let Some(raw) = &self.raw {
                    raw.forget(chunk);
                }
                written?;
            }
            Access::Hyperslab { .. } => self.write_hyperslab(chunk, data)?,
        }
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    fn erase_chunk(&self, chunk: &[u64]) -> Result<()> {
        if !self.writable {
            return Err(Error::invalid(format!("{}: opened read-only", self.here())));
        }
        self.check_chunk(chunk)?;
        if self.allocated(chunk)?.is_none() {
            return Ok(());
        }
        let fill = ChunkBuf::filled(self.meta.chunk_bytes(), &self.meta.fill);
        self.write_chunk(chunk, &fill)
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        self.file.flush().map_err(self.h5("flush"))?;
        self.dirty.store(false, Ordering::Release);
        StdFile::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&self.path, e))
    }

    fn stored_bytes(&self) -> Result<u64> {
        Ok(self.ds.storage_size())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::conformance::{self, Harness, Reopen};

    #[test]
    fn conformance_uncompressed_gzip_lz4() {
        for codec in [Codec::None, Codec::Gzip { level: 1 }, Codec::Lz4] {
            let dir = tempfile::tempdir().unwrap();
            let n = std::sync::atomic::AtomicUsize::new(0);
            let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
                let path = dir
                    .path()
                    .join(format!("c{}.h5", n.fetch_add(1, Ordering::Relaxed)));
                let opts = Hdf5Options {
                    codec,
                    overwrite: false,
                };
                let s =
                    Hdf5Store::create(&path, "g/x", m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
                let reopen: Reopen =
                    Box::new(
                        move || Ok(Arc::new(Hdf5Store::open(&path, "/g/x", None, true)?) as _),
                    );
                Ok((Arc::new(s), reopen))
            };
            conformance::run_all(&Harness { create: &create });
        }
    }

    fn raw_store(path: &Path, dtype: DType, shape: &[u64], chunks: &[u64]) -> Hdf5Store {
        let fill = vec![0u8; dtype.size()];
        Hdf5Store::create(
            path,
            "x",
            dtype,
            shape,
            chunks,
            &fill,
            &Hdf5Options::default(),
        )
        .unwrap()
    }

    /// Every region of an unfiltered chunk, read straight from the file by
    /// every method, is what HDF5's own hyperslab read returns.
    #[test]
    fn raw_reads_agree_with_hdf5_on_every_region() {
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let chunks = [2u64, 5, 12];
        for dtype in [DType::U8, DType::I16, DType::F64] {
            let s = raw_store(
                &dir.path().join(format!("{dtype}.h5")),
                dtype,
                &[3, 10, 12],
                &chunks,
            );
            assert!(s.capabilities().partial_reads, "{dtype}: raw reads");
            let m = s.meta();
            // Two chunks, so the one read is not at the start of the data
            // (and wholly inside the array, where HDF5 reads every byte).
            s.write_chunk(&[0, 0, 0], &conformance::pattern(&m, &[0, 0, 0], 1))
                .unwrap();
            let chunk = [0u64, 1, 0];
            s.write_chunk(&chunk, &conformance::pattern(&m, &chunk, 3))
                .unwrap();
            let inner = s.inner.read();
            let raw = inner.raw.as_ref().expect("raw reads");
            // HDF5's own reading of the chunk, not the bytes written.
            let data = inner.read_hyperslab(&chunk).unwrap();
            assert_eq!(&data[..], &conformance::pattern(&m, &chunk, 3)[..]);
            let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
            for _ in 0..300 {
                let region = conformance::random_region(&mut rng, &chunks);
                let want = extract_region(&m, &data, &region);
                let dense: Vec<u64> = region.iter().map(|r| r.2).collect();
                let st = c_strides(&dense);
                let at = Strided {
                    offset: 0,
                    strides: &st,
                };
                for force in [
                    None,
                    Some(rawio::Method::Preads),
                    Some(rawio::Method::Map),
                    Some(rawio::Method::FileMap),
                ] {
                    let mut out = vec![0xAB_u8; want.len()];
                    assert!(
                        inner
                            .raw_region_into(raw, &chunk, &region, &mut out, at, force)
                            .unwrap()
                    );
                    assert!(out == want, "{dtype} {region:?} {force:?}");
                }
                assert_eq!(inner.read_region(&chunk, &region).unwrap().unwrap(), want);
            }
            let mut whole = vec![0u8; m.chunk_bytes()];
            assert!(inner.read_chunk_into(&chunk, &mut whole).unwrap());
            assert_eq!(whole, &data[..]);
        }
    }

    /// A rewrite, an erase and a resize are seen by the next raw read: no
    /// stale chunk address survives them.
    #[test]
    fn raw_reads_see_rewrites_erases_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let s = raw_store(&dir.path().join("a.h5"), DType::I32, &[4, 8], &[2, 8]);
        let m = s.meta();
        // One element (one pread), and a 2 x 2 tile of the chunk (two
        // runs: through the file map, which must follow the file as it
        // grows with every rewrite and shrinks with a resize).
        let element = |s: &Hdf5Store, chunk: &[u64]| -> Option<i32> {
            let e = s
                .read_region(chunk, &[(1, 1, 1), (3, 1, 1)])
                .unwrap()
                .map(|v| i32::from_ne_bytes(v.try_into().unwrap()));
            let tile = s.read_region(chunk, &[(0, 1, 2), (2, 1, 2)]).unwrap();
            let tile = tile.map(|t| {
                t.chunks_exact(4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .collect::<Vec<_>>()
            });
            match e {
                Some(v) if v != 0 => {
                    assert_eq!(tile, Some(vec![v - 9, v - 8, v - 1, v]), "tile of {v}")
                }
                _ => assert_eq!(tile.map(|t| t.iter().any(|&x| x != 0)), e.map(|_| false)),
            }
            e
        };
        let chunk_of =
            |v: i32| -> Vec<u8> { (0..16).flat_map(|i| (v + i).to_ne_bytes()).collect() };
        assert_eq!(element(&s, &[1, 0]), None, "never written");
        s.write_chunk(&[1, 0], &chunk_of(100)).unwrap();
        assert_eq!(element(&s, &[1, 0]), Some(111));
        s.write_chunk(&[1, 0], &chunk_of(200)).unwrap();
        assert_eq!(element(&s, &[1, 0]), Some(211), "rewritten");
        s.erase_chunk(&[1, 0]).unwrap();
        assert!(matches!(element(&s, &[1, 0]), None | Some(0)), "erased");
        assert!(s.read_chunk(&[1, 0]).unwrap().is_none(), "erased");
        s.write_chunk(&[1, 0], &chunk_of(300)).unwrap();
        assert_eq!(element(&s, &[1, 0]), Some(311));
        s.resize(2).unwrap();
        s.resize(4).unwrap();
        assert_eq!(element(&s, &[1, 0]), None, "dropped by the shrink");
        s.write_chunk(&[1, 0], &chunk_of(400)).unwrap();
        assert_eq!(element(&s, &[1, 0]), Some(411));
        let mapped = s.inner.read().raw.as_ref().unwrap().map.read().is_some();
        assert!(mapped, "tiles are read through the file map");
        drop(s);
        let s = Hdf5Store::open(&dir.path().join("a.h5"), "x", None, false).unwrap();
        assert!(s.capabilities().partial_reads);
        assert_eq!(element(&s, &[1, 0]), Some(411), "reopened");
        assert_eq!(s.meta(), m);
    }

    /// A contiguous dataset opened read-only is read straight from the
    /// file, as blocks of one C-order array: every chunk and region reads
    /// as HDF5's own hyperslab read of it (regions past the array's edge
    /// too, through HDF5). Opened for writing, it is left to HDF5.
    #[test]
    fn contiguous_datasets_are_read_raw_when_read_only() {
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.h5");
        let shape = [5usize, 7, 9];
        let values: Vec<i16> = (0..5 * 7 * 9)
            .map(|i| (i * 37 % 1000) as i16 - 300)
            .collect();
        {
            let f = hdf5_metno::File::create(&path).unwrap();
            let ds = f.new_dataset::<i16>().shape(shape).create("c").unwrap();
            let a = ndarray::Array3::from_shape_vec(shape, values.clone()).unwrap();
            ds.write(&a).unwrap();
        }
        let chunks = [2u64, 3, 4];
        let w = Hdf5Store::open(&path, "c", Some(&chunks), true).unwrap();
        assert!(!w.capabilities().partial_reads, "writable: through HDF5");
        drop(w);
        let s = Hdf5Store::open(&path, "c", Some(&chunks), false).unwrap();
        assert!(s.capabilities().partial_reads);
        let m = s.meta();
        let inner = s.inner.read();
        assert!(matches!(
            inner.raw.as_ref().map(|r| &r.layout),
            Some(RawLayout::Contiguous { .. })
        ));
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        let grid = ChunkGrid::new(&m.shape, &m.chunks, 2).unwrap();
        for chunk in grid.chunk_coords() {
            let want = inner.read_hyperslab(&chunk).unwrap();
            let got = inner.read_chunk(&chunk).unwrap().unwrap();
            assert_eq!(&got[..], &want[..], "chunk {chunk:?}");
            for _ in 0..40 {
                let region = conformance::random_region(&mut rng, &chunks);
                assert_eq!(
                    inner.read_region(&chunk, &region).unwrap().unwrap(),
                    extract_region(&m, &want, &region),
                    "chunk {chunk:?} region {region:?}"
                );
            }
        }
        // One element is one pread at the right place.
        let e = inner
            .read_region(&[2, 2, 2], &[(0, 1, 1), (0, 1, 1), (0, 1, 1)])
            .unwrap();
        let i = (4 * 7 + 6) * 9 + 8;
        assert_eq!(e.unwrap(), values[i].to_ne_bytes());
    }

    /// Filtered chunks of 1 MiB or more are decoded from a map of the
    /// file: the same bytes as through `H5Dread_chunk`, and a chunk whose
    /// stored bytes lie past the end of the file is an error naming it.
    #[test]
    fn large_filtered_chunks_decode_from_a_map_alike() {
        use rand::{RngExt, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        // Random bytes do not compress: stored chunks stay over 1 MiB.
        let n = 300_000u64;
        let chunk: Vec<u8> = (0..n * 4).map(|_| rng.random()).collect();
        for codec in [Codec::Lz4, Codec::Gzip { level: 1 }] {
            let path = dir.path().join(format!("{codec:?}.h5"));
            let opts = Hdf5Options {
                codec,
                overwrite: false,
            };
            let s = Hdf5Store::create(&path, "x", DType::F32, &[3, n], &[1, n], &[0; 4], &opts)
                .unwrap();
            s.write_chunk(&[1, 0], &chunk).unwrap();
            s.flush().unwrap();
            drop(s);
            let r = Hdf5Store::open(&path, "/x", None, false).unwrap();
            let inner = r.inner.read();
            assert!(inner.stored.is_some(), "{codec:?}");
            let Access::Direct(steps) = &inner.access else {
                panic!("direct access")
            };
            let st = inner.allocated(&[1, 0]).unwrap().unwrap();
            assert!(st.size >= MAP_THRESHOLD as u64, "{codec:?}: {}", st.size);
            let mut mapped = vec![0u8; chunk.len()];
            assert!(r.read_chunk_into(&[1, 0], &mut mapped).unwrap());
            let (mask, stored) =
                ffi::read_chunk_raw(&inner.ds, &inner.origin(&[1, 0]), st.size).unwrap();
            let mut through_hdf5 = vec![0u8; chunk.len()];
            filters::decode(steps, mask, &stored, &mut through_hdf5).unwrap();
            assert!(mapped == chunk && through_hdf5 == chunk, "{codec:?}");
            assert!(!r.read_chunk_into(&[0, 0], &mut mapped).unwrap());
            // Cut the file inside the chunk's stored bytes while it is open.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(st.addr + st.size - 1)
                .unwrap();
            let err = r.read_chunk_into(&[1, 0], &mut mapped).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("past") && msg.contains(path.to_str().unwrap()),
                "{msg}"
            );
        }
    }

    /// HDF5 1.10 reports chunk addresses without the user block, so a file
    /// with one is read through HDF5, and reads right.
    #[test]
    fn files_with_a_user_block_are_read_through_hdf5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ub.h5");
        hdf5_metno::File::with_options()
            .with_fcpl(|p| p.userblock(512))
            .create(&path)
            .unwrap();
        let s = raw_store(&path, DType::I32, &[4, 8], &[2, 8]);
        let chunk: Vec<u8> = (0..16).flat_map(|i: i32| (7 + i).to_ne_bytes()).collect();
        s.write_chunk(&[1, 0], &chunk).unwrap();
        let v = s
            .read_region(&[1, 0], &[(1, 1, 1), (3, 1, 1)])
            .unwrap()
            .unwrap();
        assert_eq!(i32::from_ne_bytes(v.try_into().unwrap()), 18);
        assert!(!s.capabilities().partial_reads);
    }
}
