//! Creating and opening datasets: the file and groups, the dataset's
//! layout, element type and filters, and from those how its chunks move
//! (direct, raw or hyperslab).

use std::fs::File as StdFile;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use hdf5_metno::dataset::Layout;
use hdf5_metno::file::FileSpaceStrategy;
use hdf5_metno::filters::Filter;
use hdf5_metno::{Dataset, Extent, Extents, File};
use lru::LruCache;
use parking_lot::{Mutex, RwLock};

use super::file::{absolute, has_signature, init, list_datasets, open_file};
use super::filters::{FILTER_LZ4, Step};
use super::raw::{RAW_ADDRESSES, RawLayout, RawReads};
use super::store::Hdf5Inner;
use super::types::{descriptor, element_type, pipeline};
use super::{Access, Hdf5Options, store_err};
use crate::chunk_grid::{ChunkGrid, DEFAULT_CHUNK_TARGET_BYTES, default_chunks};
use crate::codec::Codec;
use crate::dtype::{DType, Element, Endian};
use crate::error::{Error, Result};
use crate::layout::c_strides;
use crate::store::StoreMeta;
use crate::store::filemap::Touched;

impl Hdf5Inner {
    /// Creates a chunked dataset `name` (groups made as needed) in the file
    /// at `path`, creating the file if it does not exist. `fill` is one
    /// native-order element.
    pub(super) fn create(
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
        if let Some(names) = opts
            .labels
            .as_ref()
            .and_then(|l| l.dimension_names.as_ref())
            && names.len() != shape.len()
        {
            return Err(Error::invalid(format!(
                "{}:{name}: {} dimension names for {} axes",
                path.display(),
                names.len(),
                shape.len()
            )));
        }
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
        if let Some(labels) = &opts.labels {
            super::attrs::write_attrs(&ds, &crate::attrs::parse(labels)).map_err(fail)?;
            // `dropped_by` reported names HDF5 cannot hold.
            if let Some(names) = &labels.dimension_names
                && !crate::attrs::hdf5_bad_names(labels)
            {
                super::dims::write_labels(&ds, names).map_err(fail)?;
            }
        }
        Self::from_dataset(path, name, file, ds, true, None)
    }

    /// Opens dataset `name` of the HDF5 file at `path`. `chunks` is the
    /// chunk shape used for contiguous datasets (default: about 16 MiB).
    pub(super) fn open(
        path: &Path,
        name: &str,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<Hdf5Inner> {
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

    pub(super) fn from_dataset(
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
                    if !super::index::within_file(*addr, len, have) {
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
}
