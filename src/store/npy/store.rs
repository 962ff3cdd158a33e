//! [`NpyStore`]: opening and creating `.npy` files, the open file's
//! state, and resizing it in place.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;

use super::header::{MAX_HEADER_BYTES, NpyHeader, encode_header, read_header, rewrite_header};
use super::{NpyOptions, Order};
use crate::chunk_grid::{ChunkGrid, DEFAULT_CHUNK_TARGET_BYTES, default_chunks};
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};
use crate::layout::{c_strides, f_strides};
use crate::store::filemap::{FileMap, Touched};
use crate::store::{ChunkRegion, StoreMeta};

/// A [`ChunkStore`](crate::store::ChunkStore) over one `.npy` (or raw)
/// file: NumPy `.npy` versions 1.0 to 3.0 in C or Fortran order and
/// either byte order, or a raw file with a [`RawLayout`](crate::store::RawLayout).
///
/// The file stays memory-mapped while the store is open: another process
/// truncating it meanwhile is outside what the store can guard against
/// (partial reads would then fault with `SIGBUS`).
#[derive(Debug)]
pub struct NpyStore {
    /// The file's state; a resize replaces it while no call runs.
    pub(super) inner: RwLock<NpyFile>,
    path: PathBuf,
}

#[derive(Debug)]
pub(super) struct NpyFile {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) header: NpyHeader,
    pub(super) meta: StoreMeta,
    pub(super) grid: ChunkGrid,
    /// Element strides of the array in the file (C or Fortran order).
    pub(super) file_strides: Vec<usize>,
    /// The file is in the other byte order than this machine.
    pub(super) swap: bool,
    pub(super) writable: bool,
    /// Read-only map of the whole file, for `read_region`; `None` when the
    /// array holds no data or the map could not be made.
    pub(super) map: Option<FileMap>,
    /// What reads through the map may have made resident.
    pub(super) touched: Touched,
    /// Positioned reads and writes issued (tests check the run count).
    #[cfg(test)]
    pub(super) io_calls: AtomicU64,
}

pub(super) fn store_error(message: String) -> Error {
    Error::Store {
        backend: "npy",
        message,
    }
}

/// Maps `ChunkGrid::new` errors so that they name the file.
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

/// Opens a new file for writing, refusing an existing one unless
/// `overwrite`.
fn create_file(path: &Path, overwrite: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(true);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::io(
                path,
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "file already exists (set overwrite to replace it)",
                ),
            )
        } else {
            Error::io(path, e)
        }
    })
}

pub(super) fn open_file(path: &Path, writable: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

impl NpyStore {
    pub(super) fn wrap(file: NpyFile) -> Self {
        NpyStore {
            path: file.path.clone(),
            inner: RwLock::new(file),
        }
    }

    /// Creates a new `.npy` file holding zeros (sparse: only the header is
    /// written) and opens it for writing.
    pub fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        opts: &NpyOptions,
    ) -> Result<NpyStore> {
        NpyFile::create(path, dtype, shape, chunks, opts).map(Self::wrap)
    }

    /// Opens an existing `.npy` file. Without `chunks`, the chunk shape is
    /// the default chunking for the file's order.
    pub fn open(path: &Path, chunks: Option<&[u64]>, writable: bool) -> Result<NpyStore> {
        NpyFile::open(path, chunks, writable).map(Self::wrap)
    }

    /// What the header says now; for raw files version `(0, 0)` and the
    /// layout's offset.
    pub fn header(&self) -> NpyHeader {
        self.inner.read().header.clone()
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

crate::store::locked_store!(NpyStore, inner);

impl crate::store::ChangeInPlace for NpyFile {
    /// A `.npy` file's header holds no attributes.
    fn update_attributes_in_place(
        &mut self,
        _: &dyn Fn(&mut crate::Attrs) -> Result<()>,
    ) -> Result<()> {
        Err(Error::Unsupported(format!(
            "{}: .npy files hold no attributes (Zarr and HDF5 do)",
            self.path.display()
        )))
    }

    /// Grows or shrinks the first axis: a longer file gets its new bytes
    /// as a hole (zeros, NumPy's fill) before the header says so; a
    /// shorter one gets its header first and is cut after. Either way the
    /// file is valid at every step, and both steps are synced.
    fn resize_in_place(&mut self, len: u64) -> Result<()> {
        self.check_writable()?;
        let path = self.path.clone();
        if self.header.shape.is_empty() {
            return Err(Error::invalid(format!(
                "{}: a 0-d array has no axis to resize",
                path.display()
            )));
        }
        if self.fortran() {
            return Err(Error::Unsupported(format!(
                "{}: a Fortran-order file can only grow along its last axis without \
                 moving its data; chunkyard resizes the first",
                path.display()
            )));
        }
        let mut header = self.header.clone();
        header.shape[0] = len;
        let file_len = header
            .data_bytes()
            .and_then(|n| n.checked_add(header.data_offset))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: shape {:?} holds more bytes than fit in a file",
                    path.display(),
                    header.shape
                ))
            })?;
        let grid = grid_for(&path, &header.shape, self.grid.chunk_shape(), header.dtype)?;
        let text = if header.version == (0, 0) {
            None
        } else {
            Some(rewrite_header(&header).ok_or_else(|| {
                Error::Unsupported(format!(
                    "{}: the header has no room for shape {:?} (it was written without \
                     NumPy's growth padding); copy the array with `convert` first",
                    path.display(),
                    header.shape
                ))
            })?)
        };
        let io = |e| Error::io(&path, e);
        let write_header = |file: &File| -> Result<()> {
            if let Some(t) = &text {
                file.write_all_at(t, 0).map_err(io)?;
            }
            file.sync_all().map_err(io)
        };
        let grows = len >= self.header.shape[0];
        // Unmap before the file can get shorter than the map.
        self.map = None;
        if grows {
            self.file.set_len(file_len).map_err(io)?;
            write_header(&self.file)?;
        } else {
            write_header(&self.file)?;
            self.file.set_len(file_len).map_err(io)?;
            self.file.sync_all().map_err(io)?;
        }
        let file = self.file.try_clone().map_err(io)?;
        *self = NpyFile::build(&path, file, header, grid, true)?;
        Ok(())
    }
}

impl NpyFile {
    /// Creates a new `.npy` file holding zeros (sparse: only the header is
    /// written) and opens it for writing.
    pub(super) fn create(
        path: &Path,
        dtype: DType,
        shape: &[u64],
        chunks: &[u64],
        opts: &NpyOptions,
    ) -> Result<NpyFile> {
        let grid = grid_for(path, shape, chunks, dtype)?;
        // One-byte types have no byte order; this is what reopening reports.
        let endian = if dtype.size() == 1 {
            Endian::NATIVE
        } else {
            opts.endian
        };
        let bytes = encode_header(dtype, endian, opts.order, shape);
        if bytes.len() as u64 > MAX_HEADER_BYTES {
            return Err(Error::Unsupported(format!(
                "{}: a shape with {} axes needs a header of {} bytes, more than the {} MiB limit",
                path.display(),
                shape.len(),
                bytes.len(),
                MAX_HEADER_BYTES >> 20
            )));
        }
        let header = NpyHeader {
            version: (bytes[6], bytes[7]),
            dtype,
            endian,
            order: opts.order,
            shape: shape.to_vec(),
            data_offset: bytes.len() as u64,
        };
        Self::create_with(path, header, grid, opts.overwrite, &bytes)
    }

    /// Creates the file: `prefix` at the start, then a hole up to the end
    /// of the data. A file this call created is removed again if a later
    /// step fails, so a retry is not refused as "already exists".
    pub(super) fn create_with(
        path: &Path,
        header: NpyHeader,
        grid: ChunkGrid,
        overwrite: bool,
        prefix: &[u8],
    ) -> Result<Self> {
        let len = header
            .data_bytes()
            .and_then(|n| n.checked_add(header.data_offset))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: an array of shape {:?} and {} bytes of header does not fit in a file",
                    path.display(),
                    header.shape,
                    header.data_offset
                ))
            })?;
        let file = create_file(path, overwrite)?;
        let made = file
            .write_all_at(prefix, 0)
            .and_then(|()| file.set_len(len))
            .map_err(|e| Error::io(path, e))
            .and_then(|()| Self::build(path, file, header, grid, true));
        if made.is_err() {
            let _ = std::fs::remove_file(path);
        }
        made
    }

    /// Opens an existing `.npy` file. Without `chunks`, the chunk shape is
    /// [`default_chunks`] for the file's order.
    pub(super) fn open(path: &Path, chunks: Option<&[u64]>, writable: bool) -> Result<NpyFile> {
        let file = open_file(path, writable)?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let header = read_header(path, &file, file_len)?;
        Self::open_with(path, file, file_len, header, chunks, writable)
    }

    pub(super) fn open_with(
        path: &Path,
        file: File,
        file_len: u64,
        header: NpyHeader,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<Self> {
        let nbytes = header.data_bytes().ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "shape {:?} of {} holds more bytes than fit in 64 bits",
                    header.shape, header.dtype
                ),
            )
        })?;
        let found = file_len.saturating_sub(header.data_offset);
        if found < nbytes {
            return Err(Error::format(
                path,
                format!(
                    "truncated: expected {nbytes} data bytes, found {found} (shape {:?}, {}, data at byte {})",
                    header.shape, header.dtype, header.data_offset
                ),
            ));
        }
        let chunks = match chunks {
            Some(c) => c.to_vec(),
            None => default_chunks(
                &header.shape,
                header.dtype.size(),
                header.order == Order::Fortran,
                DEFAULT_CHUNK_TARGET_BYTES,
            ),
        };
        let grid = grid_for(path, &header.shape, &chunks, header.dtype)?;
        Self::build(path, file, header, grid, writable)
    }

    pub(super) fn build(
        path: &Path,
        file: File,
        header: NpyHeader,
        grid: ChunkGrid,
        writable: bool,
    ) -> Result<Self> {
        let nbytes = header.data_bytes().unwrap_or(u64::MAX);
        if usize::try_from(nbytes).is_err() || usize::try_from(header.data_offset).is_err() {
            return Err(Error::Unsupported(format!(
                "{}: {nbytes} bytes of data do not fit in this machine's address space",
                path.display()
            )));
        }
        let fortran = header.order == Order::Fortran;
        // With no elements there are no chunks and strides are never used
        // (and could overflow for shapes like (0, 2**40, 2**40)).
        let file_strides = if nbytes == 0 {
            vec![0; header.shape.len()]
        } else if fortran {
            f_strides(&header.shape)
        } else {
            c_strides(&header.shape)
        };
        // A map that cannot be made (address space) only costs partial
        // reads their efficiency: they fall back to whole-chunk reads.
        let map = if nbytes == 0 {
            None
        } else {
            FileMap::new(&file).ok()
        };
        let meta = StoreMeta {
            dtype: header.dtype,
            shape: header.shape.clone(),
            chunks: grid.chunk_shape().to_vec(),
            fill: vec![0; header.dtype.size()],
        };
        Ok(NpyFile {
            path: path.to_path_buf(),
            file,
            swap: header.dtype.size() > 1 && header.endian != Endian::NATIVE,
            header,
            meta,
            grid,
            file_strides,
            writable,
            map,
            touched: Touched::default(),
            #[cfg(test)]
            io_calls: AtomicU64::new(0),
        })
    }

    pub(super) fn fortran(&self) -> bool {
        self.header.order == Order::Fortran && self.header.shape.len() > 1
    }

    pub(super) fn check_chunk(&self, chunk: &[u64]) -> Result<()> {
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

    pub(super) fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: cannot write, the file was opened read-only",
                self.path.display()
            )))
        }
    }

    pub(super) fn check_len(&self, chunk: &[u64], data: &[u8]) -> Result<()> {
        let want = self.meta.chunk_bytes();
        if data.len() == want {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: chunk {chunk:?}: {} bytes given, {want} expected",
                self.path.display(),
                data.len()
            )))
        }
    }

    /// Checks a region against the chunk shape.
    pub(super) fn check_region(&self, chunk: &[u64], region: ChunkRegion<'_>) -> Result<()> {
        if crate::store::region_fits(&self.meta.chunks, region) {
            Ok(())
        } else {
            Err(store_error(format!(
                "{}: region {region:?} does not fit chunk {chunk:?} of shape {:?}",
                self.path.display(),
                self.meta.chunks
            )))
        }
    }
}
