//! Zarr array metadata: creating and opening arrays (`zarr.json` or
//! `.zarray`), the data type and codec chain chosen, resizing, and the
//! errors zarrs' metadata handling maps to.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use zarrs::array::codec::array_to_bytes::sharding::{ShardingCodecBuilder, ShardingIndexLocation};
use zarrs::array::codec::{BytesCodec, GzipCodec, ZstdCodec};
use zarrs::array::{
    Array as ZArray, ArrayBuilder, ArrayCreateError, ArrayMetadata, ArrayMetadataOptions,
    ArrayToBytesCodecTraits, BytesRepresentation, BytesToBytesCodecTraits, CodecTraits, DataType,
    Endianness, FillValue, data_type,
};
use zarrs::plugin::PluginCreateError;
use zarrs::storage::StorageError;

use super::fs::DirStorage;
use super::{Storage, ZarrInner, ZarrOptions, blosc, capped, is_zarr_dir, lz4, raw, store_error};
use crate::chunk_grid::ChunkGrid;
use crate::codec::Codec;
use crate::dtype::{DType, Endian, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::c_strides;
use crate::store::StoreMeta;

/// Zarr's name for a chunkyard element type.
pub(super) fn zarr_data_type(dtype: DType) -> DataType {
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
/// Maps zarrs' open/create errors: unknown data types, codecs, grids and
/// key encodings are unsupported; anything else wrong with the metadata
/// is a format error on the metadata file.
pub(super) fn create_error(path: &Path, e: ArrayCreateError) -> Error {
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
pub(super) fn metadata_file(path: &Path) -> PathBuf {
    let v2 = path.join(".zarray");
    if !path.join("zarr.json").exists() && v2.exists() {
        v2
    } else {
        path.join("zarr.json")
    }
}

/// Prepares the directory of a new array; returns whether it made it.
pub(super) fn make_dir(path: &Path, overwrite: bool) -> Result<()> {
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

impl crate::store::ChangeInPlace for ZarrInner {
    /// The attributes `change` makes, in the metadata file (v3
    /// `zarr.json`, v2 `.zattrs`), written atomically and synced before
    /// returning; on object storage a conditional update of `zarr.json`
    /// (`s3meta::update_attributes`). This process's copy changes only
    /// once the file did.
    fn update_attributes_in_place(
        &mut self,
        change: &dyn Fn(&mut crate::Attrs) -> Result<()>,
    ) -> Result<()> {
        self.check_writable()?;
        let v2 = matches!(self.array.metadata(), ArrayMetadata::V2(_));
        #[cfg(feature = "s3")]
        if let Some(s3) = self.storage.s3() {
            if v2 {
                return Err(Error::Unsupported(format!(
                    "{}: attributes of a Zarr v2 array on object storage cannot be changed \
                     (chunkyard creates v3 there)",
                    self.path.display()
                )));
            }
            *self.array.attributes_mut() = super::s3meta::update_attributes(s3, change)?;
            return Ok(());
        }
        let mut attrs = self.array.attributes().clone();
        change(&mut attrs)?;
        let old = std::mem::replace(self.array.attributes_mut(), attrs);
        let stored = self
            .array
            .store_metadata_opt(&ArrayMetadataOptions::default().with_include_zarrs_metadata(false))
            .map_err(|e| store_error(format!("{}: {e}", self.path.display())))
            .and_then(|()| {
                // zarrs writes a v2 array's `.zattrs` only when there are
                // attributes: emptied, the old file would stay.
                if v2 && self.array.attributes().is_empty() {
                    let key = zarrs::storage::StoreKey::new(".zattrs")
                        .map_err(|e| store_error(e.to_string()))?;
                    zarrs::storage::WritableStorageTraits::erase(&*self.storage, &key)
                        .map_err(|e| store_error(format!("{}: {e}", self.path.display())))?;
                }
                self.storage.sync().map_err(|e| Error::io(&self.path, e))
            });
        if stored.is_err() {
            *self.array.attributes_mut() = old;
        }
        stored
    }

    /// A longer array gets its new metadata only (new chunks are missing,
    /// so they read as the fill value); a shorter one loses the chunk
    /// files wholly past its end first, then gets its metadata. Both are
    /// synced before returning.
    fn resize_in_place(&mut self, len: u64) -> Result<()> {
        self.check_writable()?;
        // Dropped chunks' files go; the others would stay valid, but a
        // resize is rare and the cache refills.
        self.files.clear();
        #[cfg(feature = "s3")]
        self.versions.clear();
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
        #[cfg(feature = "s3")]
        if let Some(s3) = self.storage.s3() {
            super::s3meta::resize(s3, &shape, keep >= had && len >= old.shape()[0])?;
        }
        if self.storage.dir().is_some() {
            self.array
                .store_metadata_opt(
                    &ArrayMetadataOptions::default().with_include_zarrs_metadata(false),
                )
                .map_err(|e| store_error(format!("{}: {e}", self.path.display())))?;
        }
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
    pub(super) fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        fill: &[u8],
        opts: &ZarrOptions,
    ) -> Result<ZarrInner> {
        lz4::register();
        blosc::register();
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
            Codec::Lz4 => Some(Arc::new(blosc::BloscCodec::lz4(dtype.size()))),
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
        let bytes = Arc::new(BytesCodec::new(endian));
        match &opts.inner_chunks {
            None => {
                builder
                    .array_to_bytes_codec(bytes)
                    .bytes_to_bytes_codecs(compressor.into_iter().collect());
            }
            Some(inner) => {
                let bad = inner.len() != chunks.len()
                    || inner
                        .iter()
                        .zip(chunks)
                        .any(|(&i, &s)| i == 0 || s % i != 0);
                if bad {
                    return Err(Error::invalid(format!(
                        "{}: inner chunks {inner:?} must divide the shard shape {chunks:?} \
                         on every axis",
                        path.display()
                    )));
                }
                let inner_shape = inner
                    .iter()
                    .map(|&c| std::num::NonZeroU64::new(c).expect("checked above"))
                    .collect::<Vec<_>>();
                let mut sharding = ShardingCodecBuilder::new(inner_shape, &zarr_data_type(dtype));
                sharding
                    .array_to_bytes_codec(bytes)
                    .bytes_to_bytes_codecs(compressor.into_iter().collect())
                    .index_location(ShardingIndexLocation::End);
                builder.array_to_bytes_codec(sharding.build_arc());
            }
        }
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
        #[cfg(feature = "s3")]
        if crate::open::is_object_url(path) {
            return super::s3meta::create(path, &builder, grid, opts.overwrite, &opts.s3);
        }
        make_dir(path, opts.overwrite)?;
        let made = (|| {
            let dir = DirStorage::new(path, true);
            // The new directory's entry in its parent ("" for a relative
            // name means the current directory).
            match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => dir.mark_dirty(p),
                _ => dir.mark_dirty(Path::new(".")),
            }
            let storage = Arc::new(Storage::Dir(dir));
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
    pub(super) fn open(path: &Path, writable: bool, s3: &super::S3Options) -> Result<ZarrInner> {
        lz4::register();
        blosc::register();
        capped::register();
        #[cfg(feature = "s3")]
        let (storage, array) = if crate::open::is_object_url(path) {
            super::s3meta::open(path, writable, s3)?
        } else {
            Self::open_dir(path, writable)?
        };
        #[cfg(not(feature = "s3"))]
        let (storage, array) = {
            let _ = s3;
            Self::open_dir(path, writable)?
        };
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

    /// Opens the array's directory and its metadata (zarrs reads it).
    fn open_dir(path: &Path, writable: bool) -> Result<(Arc<Storage>, ZArray<Storage>)> {
        let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if !m.is_dir() {
            return Err(Error::format(
                path,
                "not a Zarr array: a Zarr array is a directory",
            ));
        }
        let storage = Arc::new(Storage::Dir(DirStorage::new(path, writable)));
        let array = ZArray::open(storage.clone(), "/").map_err(|e| create_error(path, e))?;
        if writable && let Some(dir) = storage.dir() {
            // A writer killed between writing a temporary chunk file and
            // renaming it left the temporary behind; nothing refers to it.
            dir.remove_stale_temporaries()
                .map_err(|e| Error::io(path, e))?;
        }
        Ok((storage, array))
    }

    pub(super) fn build(
        path: &Path,
        storage: Arc<Storage>,
        array: ZArray<Storage>,
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
        // The raw and LZ4 shortcuts read chunk files; objects go through
        // zarrs (ranged GETs for partial reads).
        let local = storage.dir().is_some();
        let raw_codecs = fixed_encoded == Some((grid.chunk_elements() * dtype.size()) as u64)
            && array.storage_transformers().create_metadatas().is_empty()
            && raw::is_raw(&array.codecs(), dtype);
        let raw = local && raw_codecs;
        let lz4 = local
            && array.storage_transformers().create_metadatas().is_empty()
            && raw::is_lz4(&array.codecs(), dtype);
        let blosc = raw::is_blosc(&array.codecs());
        let summary = summarize(array.metadata());
        let meta = StoreMeta {
            dtype,
            shape: grid.shape().to_vec(),
            chunks: grid.chunk_shape().to_vec(),
            fill,
        };
        let chunk_strides = c_strides(grid.chunk_shape());
        #[cfg(feature = "s3")]
        if let Some(s3) = storage.s3() {
            s3.limit_to_chunks_of(meta.chunk_bytes());
        }
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
            object_raw: !local && raw_codecs,
            files: raw::OpenFiles::new(),
            lz4,
            blosc,
            chunk_strides,
            #[cfg(feature = "s3")]
            versions: Default::default(),
        })
    }
}

/// Maps `ChunkGrid::new` errors so that they name the array.
pub(super) fn grid_for(
    path: &Path,
    shape: &[u64],
    chunks: &[u64],
    dtype: DType,
) -> Result<ChunkGrid> {
    ChunkGrid::new(shape, chunks, dtype.size()).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::invalid(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// `zarr v3, codecs [bytes {"endian":"little"}, zstd {"level":3,...}]`.
pub(super) fn summarize(m: &ArrayMetadata) -> String {
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
