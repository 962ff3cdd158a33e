//! [`Hdf5Store`]: the open dataset's state, checks on the chunks asked
//! for, resizing, and the [`ChunkStore`] impl that routes each call to
//! direct, raw or hyperslab I/O.

use std::fs::File as StdFile;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hdf5_metno::{Dataset, File};
use parking_lot::RwLock;

use super::raw::RawReads;
use super::{Access, Hdf5Options, ffi, store_err};
use crate::buffer::ChunkBuf;
use crate::chunk_grid::ChunkGrid;
use crate::dtype::{DType, Endian, normalize_bools};
use crate::error::{Error, Result};
use crate::layout::Strided;
use crate::store::{Capabilities, ChunkRegion, ChunkStore, Labels, StoreMeta};

/// One dataset of an HDF5 file as a [`ChunkStore`].
pub struct Hdf5Store {
    /// The dataset's state; a resize changes its shape while no call runs.
    pub(super) inner: RwLock<Hdf5Inner>,
    path: PathBuf,
    name: String,
}

impl std::fmt::Debug for Hdf5Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.read().fmt(f)
    }
}

pub(super) struct Hdf5Inner {
    // Field order matters: the dataset closes before its file.
    pub(super) ds: Dataset,
    pub(super) file: File,
    /// The file on disk.
    pub(super) path: PathBuf,
    /// Absolute path of the dataset inside the file (`/group/data`).
    pub(super) name: String,
    pub(super) meta: StoreMeta,
    pub(super) grid: ChunkGrid,
    pub(super) access: Access,
    /// Byte order of the elements in the file.
    pub(super) file_endian: Endian,
    pub(super) writable: bool,
    /// One line for `describe`.
    pub(super) layout: String,
    /// Something reached HDF5 since the last flush.
    pub(super) dirty: AtomicBool,
    /// Reads straight from the file, for unfiltered native-order chunks.
    pub(super) raw: Option<RawReads>,
    /// The file, open read-only, when filtered chunks' stored bytes are
    /// mapped from it instead of read through HDF5 (no user block).
    pub(super) stored: Option<StdFile>,
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

crate::store::locked_store!(Hdf5Store, inner);

impl crate::store::ChangeInPlace for Hdf5Inner {
    /// Checks every new or changed value first (what HDF5 cannot hold is
    /// refused before anything is written), then deletes the attributes
    /// removed or changed and writes the changed and new ones, then
    /// flushes and syncs the file. Attributes chunkyard does not read
    /// (compound ones, say) stay unless `change` sets one of their names.
    fn update_attributes_in_place(
        &mut self,
        change: &dyn Fn(&mut crate::Attrs) -> Result<()>,
    ) -> Result<()> {
        use crate::attrs::{hdf5_reserved, hdf5_unsupported};
        if !self.writable {
            return Err(store_err(format!(
                "{}: cannot change attributes, the file was opened read-only",
                self.here()
            )));
        }
        let (old, _) = super::attrs::read_attrs(&self.ds);
        let mut new = old.clone();
        change(&mut new)?;
        let changed: crate::Attrs = new
            .iter()
            .filter(|&(k, v)| old.get(k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in &changed {
            let why = hdf5_unsupported(v).or_else(|| {
                hdf5_reserved(k).then_some("the name is HDF5's dimension scale convention's")
            });
            if let Some(why) = why {
                return Err(Error::invalid(format!(
                    "{}: attribute {k}: {why}",
                    self.here()
                )));
            }
        }
        let present = self.ds.attr_names().map_err(self.h5("attributes"))?;
        for k in &present {
            let gone = old.contains_key(k) && !new.contains_key(k);
            if gone || changed.contains_key(k) {
                self.ds
                    .delete_attr(k)
                    .map_err(self.h5("delete attribute"))?;
            }
        }
        super::attrs::write_attrs(&self.ds, &changed).map_err(self.h5("write attributes"))?;
        self.dirty.store(true, Ordering::Release);
        ChunkStore::flush(self)
    }

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
    pub(super) fn here(&self) -> String {
        format!("{}:{}", self.path.display(), self.name)
    }

    pub(super) fn h5(&self, what: &str) -> impl Fn(hdf5_metno::Error) -> Error + '_ {
        let what = what.to_string();
        move |e| store_err(format!("{}: {what}: {e}", self.here()))
    }

    pub(super) fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
        if chunk.len() != self.meta.shape.len() || !self.grid.contains_chunk(chunk) {
            return Err(Error::invalid(format!(
                "{}: chunk {chunk:?} is outside the chunk grid {:?}",
                self.here(),
                self.grid.grid_shape()
            )));
        }
        Ok(())
    }

    pub(super) fn check_write(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
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
    pub(super) fn origin(&self, chunk: &[u64]) -> Vec<u64> {
        chunk
            .iter()
            .zip(&self.meta.chunks)
            .map(|(k, c)| k * c)
            .collect()
    }

    pub(super) fn is_fill(&self, data: &[u8]) -> bool {
        crate::store::is_fill(data, &self.meta.fill)
    }

    pub(super) fn check_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
        self.check_chunk(chunk)?;
        if crate::store::region_fits(&self.meta.chunks, region) {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "{}: region {region:?} does not fit chunk {chunk:?} of shape {:?}",
                self.here(),
                self.meta.chunks
            )))
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

    /// The dataset's attributes, and its dimension names from
    /// `DIMENSION_LABELS` or attached dimension scales (`dims.rs`).
    fn labels(&self) -> Option<Labels> {
        let (attrs, mut dropped) = super::attrs::read_attrs(&self.ds);
        let (dimension_names, unread) = super::dims::read_names(&self.ds);
        dropped.extend(unread);
        Some(Labels {
            dimension_names,
            attributes: serde_json::Value::Object(attrs).to_string(),
            dropped,
        })
    }

    fn capabilities(&self) -> Capabilities {
        let direct = matches!(self.access, Access::Direct(_));
        Capabilities {
            parallel_writes: direct,
            partial_reads: self.raw.is_some(),
            tracks_missing: match self.access {
                Access::Direct(_) => true,
                Access::Hyperslab { chunked } => chunked,
            },
            read_only: !self.writable,
            // Stored bytes, or HDF5's own buffer, beside the chunk.
            decodes: self.raw.is_none(),
            reads_into: self.raw.is_some() || direct,
            write_buffer_bytes: self.write_buffer_bytes(),
            concurrent_requests: 0,
        }
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

    fn read_region_into(
        &self,
        chunk: &[u64],
        region: ChunkRegion<'_>,
        out: &mut [u8],
        at: Strided<'_>,
    ) -> Result<bool> {
        self.check_region(chunk, region)?;
        let elem = self.meta.dtype.size();
        crate::store::check_strided_fits(region, elem, out.len(), at)?;
        if let Some(raw) = &self.raw
            && self.raw_fits(raw, chunk, region)
        {
            return self.raw_region_into(raw, chunk, region, out, at, None);
        }
        let Some(data) = self.read_chunk(chunk)? else {
            return Ok(false);
        };
        crate::store::copy_region_of_chunk(&self.meta, &data, region, out, at);
        Ok(true)
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

impl Hdf5Inner {
    pub(super) fn write_buffer_bytes(&self) -> usize {
        // Direct writes encode (and byte-swap) a copy of the chunk.
        if !self.writable {
            return 0;
        }
        match &self.access {
            Access::Direct(steps) if self.verbatim(steps) => 0,
            Access::Direct(_) => 2 * crate::codec::encoded_bound(self.meta.chunk_bytes()),
            // The chunk's part inside the array, then as typed values.
            Access::Hyperslab { .. } => 2 * self.meta.chunk_bytes(),
        }
    }
}
