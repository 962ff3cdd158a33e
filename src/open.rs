//! Opening and creating arrays by path; the format comes from the path's
//! extension.

use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::array::{Array, ArrayHandle};
use crate::cache::ChunkCache;
use crate::chunk_grid::{DEFAULT_CHUNK_TARGET_BYTES, default_chunks};
use crate::codec::Codec;
use crate::dims::Dims;
use crate::dtype::{DType, Element, Endian};
use crate::error::{Error, Result};
#[cfg(feature = "s3")]
use crate::store::zarr::S3Options;
use crate::store::{ChunkStore, Labels, NpyOptions, NpyStore, Order, RawLayout};
#[cfg(feature = "zarr")]
use crate::store::{ZarrOptions, ZarrStore};

/// On-disk formats chunkyard reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// NumPy `.npy` (or a headerless raw file with a [`RawLayout`]).
    Npy,
    /// A Zarr v3 (or v2) array directory (feature `zarr`, on by default).
    #[cfg(feature = "zarr")]
    Zarr,
    /// A dataset of an HDF5 file: `file.h5:/group/dataset` (feature `hdf5`).
    #[cfg(feature = "hdf5")]
    Hdf5,
}

impl Format {
    /// The format a path names, from its extension (or, for a directory,
    /// from the Zarr metadata file in it).
    pub fn from_path(path: &Path) -> Result<Format> {
        if is_object_url(path) {
            // Object storage holds Zarr arrays (any prefix names one).
            let url = object_url(path)?;
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ["npy", "h5", "hdf5"].contains(&ext.to_ascii_lowercase().as_str())
                || url.contains(".h5:")
                || url.contains(".hdf5:")
            {
                return Err(Error::Unsupported(format!(
                    "{url}: object storage holds Zarr arrays only (name it .zarr)"
                )));
            }
            return zarr_format(path);
        }
        if split_hdf5_path(path).is_some() {
            #[cfg(feature = "hdf5")]
            return Ok(Format::Hdf5);
            #[cfg(not(feature = "hdf5"))]
            return Err(Error::Unsupported(format!(
                "{}: built without HDF5 support; rebuild with --features hdf5",
                path.display()
            )));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("npy") => Ok(Format::Npy),
            Some("zarr") => zarr_format(path),
            _ if is_zarr_dir(path) => zarr_format(path),
            _ => Err(Error::invalid(format!(
                "{}: cannot tell the format from the extension (expected .npy, .zarr, .h5 or .hdf5)",
                path.display()
            ))),
        }
    }

    /// A Zarr array (false in a build without the `zarr` feature).
    #[cfg(feature = "zarr")]
    fn is_zarr(self) -> bool {
        self == Format::Zarr
    }

    #[cfg(not(feature = "zarr"))]
    fn is_zarr(self) -> bool {
        false
    }
}

/// [`Format::Zarr`], or the error of a build without it.
#[cfg(feature = "zarr")]
fn zarr_format(_path: &Path) -> Result<Format> {
    Ok(Format::Zarr)
}

#[cfg(not(feature = "zarr"))]
fn zarr_format(path: &Path) -> Result<Format> {
    Err(Error::Unsupported(format!(
        "{}: built without Zarr support; rebuild with --features zarr",
        path.display()
    )))
}

/// True if `path` is an object storage URL (`s3://bucket/prefix`); with
/// the `s3` feature off such a path is refused with a message that says
/// so.
pub(crate) fn is_object_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The URL of an object storage path, or an error if chunkyard was built
/// without the `s3` feature.
pub(crate) fn object_url(path: &Path) -> Result<&str> {
    let url = path.to_str().unwrap_or_default();
    if cfg!(feature = "s3") {
        Ok(url)
    } else {
        Err(Error::Unsupported(format!(
            "{url}: object storage needs chunkyard built with the `s3` feature \
             (cargo build --features s3)"
        )))
    }
}

/// True if a path is a Zarr array directory (holds `zarr.json` or
/// `.zarray`).
pub(crate) fn is_zarr_dir(path: &Path) -> bool {
    !is_object_url(path) && (path.join("zarr.json").is_file() || path.join(".zarray").is_file())
}

/// Splits an HDF5 path, `file.h5:/group/dataset` (or `.hdf5`), into the
/// file and the dataset; `None` if the path names no HDF5 file. Without a
/// `:dataset` suffix the dataset is `None` (callers use `data`).
pub fn split_hdf5_path(path: &Path) -> Option<(PathBuf, Option<String>)> {
    let s = path.to_str()?;
    let lower = s.to_ascii_lowercase();
    for ext in [".h5", ".hdf5"] {
        if let Some(i) = lower.find(&format!("{ext}:")) {
            let file = &s[..i + ext.len()];
            let ds = s[i + ext.len() + 1..].trim_start_matches('/');
            let ds = (!ds.is_empty()).then(|| ds.to_string());
            return Some((PathBuf::from(file), ds));
        }
        if lower.ends_with(ext) {
            return Some((path.to_path_buf(), None));
        }
    }
    None
}

/// How to create an array: shape, chunk shape, fill value, cache and
/// format details. Built with chained methods:
///
/// ```
/// use chunkyard::ArrayOptions;
/// let opts = ArrayOptions::new([500, 2000, 2000]).chunks([1, 2000, 2000]);
/// ```
#[derive(Debug, Clone)]
pub struct ArrayOptions {
    shape: Vec<u64>,
    chunks: Option<Vec<u64>>,
    fill: Option<(DType, Vec<u8>)>,
    cache: Option<ChunkCache>,
    order: Order,
    endian: Endian,
    overwrite: bool,
    codec: Codec,
    labels: Option<Labels>,
    /// Zarr shards: the store's (and the cache's) chunk is a shard of
    /// this shape, made of inner chunks of `chunks`' shape.
    shards: Option<Vec<u64>>,
    /// The S3 client's options, for an `s3://` path.
    #[cfg(feature = "s3")]
    s3: S3Options,
    /// A shape or chunk shape that could not be taken (a negative
    /// length), reported by `create`: builders do not fail.
    invalid: Option<Error>,
}

impl Default for ArrayOptions {
    /// Options with no shape: for [`View::save_as`](crate::View::save_as),
    /// which takes the shape from the view.
    fn default() -> Self {
        ArrayOptions::new([0u64; 0])
    }
}

impl ArrayOptions {
    /// Options for an array of `shape`, with defaults for everything else:
    /// chunks of about 16 MiB, fill value zero, the global cache, C order,
    /// little-endian, refuse to overwrite an existing file.
    pub fn new(shape: impl Dims) -> Self {
        let (shape, invalid) = match shape.to_u64_vec() {
            Ok(s) => (s, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        ArrayOptions {
            shape,
            invalid,
            chunks: None,
            fill: None,
            cache: None,
            order: Order::C,
            endian: Endian::Little,
            overwrite: false,
            codec: Codec::None,
            labels: None,
            shards: None,
            #[cfg(feature = "s3")]
            s3: S3Options::default(),
        }
    }

    /// The chunk shape (the cache's unit of I/O).
    pub fn chunks(mut self, chunks: impl Dims) -> Self {
        match chunks.to_u64_vec() {
            Ok(c) => self.chunks = Some(c),
            Err(e) => self.invalid = self.invalid.or(Some(e)),
        }
        self
    }

    /// The value never-written elements read as.
    pub fn fill_value<T: Element>(mut self, value: T) -> Self {
        self.fill = Some((T::DTYPE, T::to_ne_vec(&[value])));
        self
    }

    /// The fill value as native-order bytes of `dtype` (for tools that
    /// learn the type at run time).
    pub fn fill_bytes(mut self, dtype: DType, bytes: Vec<u8>) -> Self {
        self.fill = Some((dtype, bytes));
        self
    }

    /// The cache to use instead of the global one. It is not stored with
    /// the file: reopening the array without naming a cache uses the
    /// global one (see the crate docs, "Caches"). A cache made with
    /// [`ChunkCache::with_write_behind`] writes whole chunks back on its
    /// own threads while the caller goes on.
    pub fn cache(mut self, cache: ChunkCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Element order in the file (`.npy`: C or Fortran).
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// Byte order in the file (`.npy`).
    pub fn endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// Zarr v3 sharding, as zarr-python's `create_array(chunks=C,
    /// shards=S)`: each file is a shard of shape `shards` holding inner
    /// chunks of the [`chunks`](Self::chunks) shape (which must divide
    /// it), each encoded on its own with the codec, and an index (with
    /// crc32c) at its end. The cache's unit is the shard; reading an
    /// element or a tile of an uncached shard reads its index and the
    /// inner chunks it needs. Other formats refuse it.
    pub fn shards(mut self, shards: impl Dims) -> Self {
        match shards.to_u64_vec() {
            Ok(s) => self.shards = Some(s),
            Err(e) => self.invalid = self.invalid.or(Some(e)),
        }
        self
    }

    /// Compress chunks with `codec` (formats that support compression).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Axis names and attributes (formats that keep them: Zarr both,
    /// HDF5 attributes of numbers, booleans and strings;
    /// [`dropped_by`](crate::dropped_by) lists what a format drops).
    pub fn labels(mut self, labels: Labels) -> Self {
        self.labels = Some(labels);
        self
    }

    /// The labels to add to, made empty (`{}` attributes) if unset.
    fn labels_mut(&mut self) -> &mut Labels {
        self.labels.get_or_insert_with(|| Labels {
            attributes: "{}".into(),
            ..Labels::default()
        })
    }

    /// Attributes to store with the array (see [`labels`](Self::labels)
    /// for which formats keep what), replacing any set before.
    pub fn attrs(mut self, attrs: crate::Attrs) -> Self {
        self.labels_mut().attributes = serde_json::Value::Object(attrs).to_string();
        self
    }

    /// One attribute, added to those set before.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<crate::AttrValue>) -> Self {
        let mut attrs = crate::attrs::parse(self.labels_mut());
        attrs.insert(key.into(), value.into());
        self.attrs(attrs)
    }

    /// One optional name per axis (Zarr v3 `dimension_names`; HDF5
    /// `DIMENSION_LABELS`, h5py's `dims[i].label`).
    pub fn dimension_names<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = Option<S>>,
    ) -> Self {
        self.labels_mut().dimension_names =
            Some(names.into_iter().map(|n| n.map(Into::into)).collect());
        self
    }

    /// Replace an existing file instead of failing.
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// The S3 client's endpoint, credentials, region and retries for an
    /// array at an `s3://` URL, over the `AWS_*` variables (feature `s3`;
    /// a local path ignores them).
    #[cfg(feature = "s3")]
    pub fn s3(mut self, options: S3Options) -> Self {
        self.s3 = options;
        self
    }

    /// The shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// These options for a copy of `src` (the array under a view of shape
    /// `shape`) as `dtype` at `path` (see
    /// [`View::save_as`](crate::View::save_as)), as `chunkyard convert`
    /// makes them: the shape is the view's (options that name another one
    /// are an error); unless given, the cache is the source's, the axis
    /// names and attributes are the source's when the view keeps its axes,
    /// and a Zarr copy keeps the source's fill value, cast.
    pub(crate) fn for_copy(
        &self,
        src: &ArrayHandle,
        shape: &[u64],
        same_axes: bool,
        dtype: DType,
        path: &Path,
    ) -> Result<ArrayOptions> {
        if !self.shape.is_empty() && self.shape != shape {
            return Err(Error::ShapeMismatch {
                message: format!(
                    "the options give shape {:?}, the copy has the source's shape {shape:?} \
                     (leave the shape out: ArrayOptions::default())",
                    self.shape
                ),
            });
        }
        let mut opts = self.clone();
        opts.shape = shape.to_vec();
        opts.cache.get_or_insert_with(|| src.cache().clone());
        if opts.labels.is_none() && same_axes {
            opts.labels = src.store().labels();
        }
        if opts.fill.is_none()
            && src.fill_value().iter().any(|&b| b != 0)
            && Format::from_path(path).is_ok_and(Format::is_zarr)
        {
            let mut fill = vec![0; dtype.size()];
            crate::dtype::cast_bytes(src.dtype(), src.fill_value(), dtype, &mut fill);
            opts.fill = Some((dtype, fill));
        }
        Ok(opts)
    }
}

/// How to open an existing array.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    read_only: bool,
    chunks: Option<Vec<u64>>,
    cache: Option<ChunkCache>,
    raw: Option<RawLayout>,
    /// The S3 client's options, for an `s3://` path.
    #[cfg(feature = "s3")]
    s3: S3Options,
    /// A chunk shape that could not be taken, reported by `open`.
    invalid: Option<Error>,
}

impl OpenOptions {
    /// Defaults: read-write, the format's chunk shape (for `.npy`, chunks of
    /// about 16 MiB), the global cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Open without write access; writes fail.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// The chunk shape for formats that do not store one (`.npy`).
    pub fn chunks(mut self, chunks: impl Dims) -> Self {
        match chunks.to_u64_vec() {
            Ok(c) => self.chunks = Some(c),
            Err(e) => self.invalid = Some(e),
        }
        self
    }

    /// The cache to use instead of the global one. Without this, an array
    /// uses [`ChunkCache::global`], whatever cache it was created with
    /// earlier in this process.
    pub fn cache(mut self, cache: ChunkCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Treat the file as headerless raw data with this layout (what
    /// `numpy.memmap` opens), whatever its extension.
    pub fn raw(mut self, layout: RawLayout) -> Self {
        self.raw = Some(layout);
        self
    }

    /// The S3 client's endpoint, credentials, region and retries for an
    /// array at an `s3://` URL, over the `AWS_*` variables (feature `s3`;
    /// a local path ignores them).
    #[cfg(feature = "s3")]
    pub fn s3(mut self, options: S3Options) -> Self {
        self.s3 = options;
        self
    }
}

impl ArrayHandle {
    /// Creates an array of `dtype` at `path`.
    /// `opts` by value or by reference, like everywhere options are taken.
    pub fn create(
        path: impl AsRef<Path>,
        dtype: DType,
        opts: impl Borrow<ArrayOptions>,
    ) -> Result<Self> {
        let opts = opts.borrow();
        let path = path.as_ref();
        if let Some(e) = &opts.invalid {
            return Err(e.clone());
        }
        let format = Format::from_path(path)?;
        let fill = match &opts.fill {
            None => vec![0; dtype.size()],
            Some((d, _)) if *d != dtype => {
                return Err(Error::DTypeMismatch {
                    expected: dtype,
                    actual: *d,
                });
            }
            Some((_, bytes)) => bytes.clone(),
        };
        let chunks = opts.chunks.clone().unwrap_or_else(|| {
            default_chunks(
                &opts.shape,
                dtype.size(),
                opts.order == Order::Fortran,
                DEFAULT_CHUNK_TARGET_BYTES,
            )
        });
        // With shards the store's chunk is the shard; `chunks` (given,
        // or the default for the shard) is the inner chunk shape.
        #[cfg_attr(not(feature = "zarr"), allow(unused_variables))]
        let (chunks, inner_chunks) = match &opts.shards {
            None => (chunks, None),
            Some(_) if !format.is_zarr() => {
                return Err(Error::Unsupported(format!(
                    "{}: only Zarr arrays are sharded",
                    path.display()
                )));
            }
            Some(_) if opts.chunks.is_none() => {
                return Err(Error::invalid(format!(
                    "{}: a sharded array needs its inner chunk shape (chunks)",
                    path.display()
                )));
            }
            Some(s) => (s.clone(), Some(chunks)),
        };
        let store: Arc<dyn ChunkStore> = match format {
            Format::Npy => {
                if opts.codec != Codec::None {
                    return Err(Error::Unsupported(format!(
                        "{}: .npy files cannot be compressed (codec {})",
                        path.display(),
                        opts.codec
                    )));
                }
                if fill.iter().any(|&b| b != 0) {
                    return Err(Error::Unsupported(format!(
                        "{}: .npy files have no fill value; create the array, then fill() it",
                        path.display()
                    )));
                }
                let npy = NpyOptions {
                    order: opts.order,
                    endian: opts.endian,
                    overwrite: opts.overwrite,
                };
                Arc::new(NpyStore::create(path, dtype, &opts.shape, &chunks, &npy)?)
            }
            #[cfg(feature = "zarr")]
            Format::Zarr => {
                if opts.order != Order::C {
                    return Err(Error::Unsupported(format!(
                        "{}: chunkyard creates Zarr arrays in C order only",
                        path.display()
                    )));
                }
                let zarr = ZarrOptions {
                    codec: opts.codec,
                    endian: opts.endian,
                    overwrite: opts.overwrite,
                    labels: opts.labels.clone(),
                    inner_chunks,
                    #[cfg(feature = "s3")]
                    s3: opts.s3.clone(),
                };
                Arc::new(ZarrStore::create(
                    path,
                    dtype,
                    &opts.shape,
                    &chunks,
                    &fill,
                    &zarr,
                )?)
            }
            #[cfg(feature = "hdf5")]
            Format::Hdf5 => {
                use crate::store::hdf5::{DEFAULT_DATASET, Hdf5Options, Hdf5Store};
                if opts.order != Order::C || opts.endian != Endian::Little {
                    return Err(Error::Unsupported(format!(
                        "{}: chunkyard writes HDF5 datasets in C order, little-endian",
                        path.display()
                    )));
                }
                let (file, ds) = split_hdf5_path(path).expect("an HDF5 path");
                let h5 = Hdf5Options {
                    codec: opts.codec,
                    overwrite: opts.overwrite,
                    labels: opts.labels.clone(),
                };
                let name = ds.as_deref().unwrap_or(DEFAULT_DATASET);
                Arc::new(Hdf5Store::create(
                    &file,
                    name,
                    dtype,
                    &opts.shape,
                    &chunks,
                    &fill,
                    &h5,
                )?)
            }
        };
        let cache = opts.cache.clone().unwrap_or_else(ChunkCache::global);
        ArrayHandle::from_store_at(store, cache, Some(path.to_path_buf()))
    }

    /// Opens the array at `path`; `opts` by value or by reference.
    pub fn open(path: impl AsRef<Path>, opts: impl Borrow<OpenOptions>) -> Result<Self> {
        let opts = opts.borrow();
        let path = path.as_ref();
        if let Some(e) = &opts.invalid {
            return Err(e.clone());
        }
        let writable = !opts.read_only;
        let chunks = opts.chunks.as_deref();
        let store: Arc<dyn ChunkStore> = match &opts.raw {
            Some(layout) => Arc::new(NpyStore::open_raw(path, layout, chunks, writable)?),
            None => match Format::from_path(path)? {
                Format::Npy => Arc::new(NpyStore::open(path, chunks, writable)?),
                #[cfg(feature = "s3")]
                Format::Zarr => Arc::new(ZarrStore::open_with(path, writable, &opts.s3)?),
                #[cfg(all(feature = "zarr", not(feature = "s3")))]
                Format::Zarr => Arc::new(ZarrStore::open(path, writable)?),
                #[cfg(feature = "hdf5")]
                Format::Hdf5 => {
                    let (file, ds) = split_hdf5_path(path).expect("an HDF5 path");
                    let name = ds.as_deref().unwrap_or(crate::store::hdf5::DEFAULT_DATASET);
                    Arc::new(crate::store::hdf5::Hdf5Store::open(
                        &file, name, chunks, writable,
                    )?)
                }
            },
        };
        let cache = opts.cache.clone().unwrap_or_else(ChunkCache::global);
        ArrayHandle::from_store_at(store, cache, Some(path.to_path_buf()))
    }
}

/// Creates a typed array at `path` (format from the extension).
///
/// ```
/// # fn main() -> chunkyard::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("volume.npy");
/// use chunkyard::{ArrayOptions, s};
/// let a = chunkyard::create::<f32>(&path, ArrayOptions::new([4, 300, 200]))?;
/// a.fill(s![1, .., ..], 1.5)?;
/// a.flush()?;
/// assert_eq!(a.get([1, 299, 199])?, 1.5);
/// # Ok(()) }
/// ```
pub fn create<T: Element>(
    path: impl AsRef<Path>,
    opts: impl Borrow<ArrayOptions>,
) -> Result<Array<T>> {
    ArrayHandle::create(path, T::DTYPE, opts)?.typed()
}

/// Opens a typed array at `path` read-write with default options: the
/// format's chunk shape and the global cache ([`ChunkCache::global`]), not
/// the cache the array was created with (caches are not stored with files;
/// pass one with [`open_with`] and [`OpenOptions::cache`]).
pub fn open<T: Element>(path: impl AsRef<Path>) -> Result<Array<T>> {
    open_with(path, OpenOptions::new())
}

/// Opens a typed array at `path` with options (by value or by reference,
/// like [`create`]'s).
pub fn open_with<T: Element>(
    path: impl AsRef<Path>,
    opts: impl Borrow<OpenOptions>,
) -> Result<Array<T>> {
    ArrayHandle::open(path, opts)?.typed()
}
