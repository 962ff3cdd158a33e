//! Headerless ("raw") files as `numpy.memmap` opens them: a layout the
//! caller gives instead of a header.

use std::path::Path;

use super::Order;
use super::header::NpyHeader;
use super::store::{NpyFile, NpyStore, grid_for, open_file};
use crate::dtype::{DType, Endian};
use crate::error::{Error, Result};

/// A headerless file as `numpy.memmap(path, dtype, mode, offset, shape,
/// order)` opens it: `offset` bytes of anything, then the dense array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLayout {
    /// Element type.
    pub dtype: DType,
    /// Byte order of the data.
    pub endian: Endian,
    /// Array shape.
    pub shape: Vec<u64>,
    /// Byte position of the first element.
    pub offset: u64,
    /// Element order.
    pub order: Order,
}

fn raw_header(layout: &RawLayout) -> NpyHeader {
    NpyHeader {
        version: (0, 0),
        dtype: layout.dtype,
        endian: layout.endian,
        order: layout.order,
        shape: layout.shape.clone(),
        data_offset: layout.offset,
    }
}

impl NpyStore {
    /// Creates a headerless file laid out as `layout` says (the first
    /// `layout.offset` bytes read as zeros) and opens it for writing.
    pub fn create_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: &[u64],
        overwrite: bool,
    ) -> Result<NpyStore> {
        NpyFile::create_raw(path, layout, chunks, overwrite).map(Self::wrap)
    }

    /// Opens an existing headerless file laid out as `layout` says, as
    /// `numpy.memmap` would.
    pub fn open_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<NpyStore> {
        NpyFile::open_raw(path, layout, chunks, writable).map(Self::wrap)
    }
}

impl NpyFile {
    /// Creates a headerless file laid out as `layout` says (the first
    /// `layout.offset` bytes read as zeros) and opens it for writing.
    pub(super) fn create_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: &[u64],
        overwrite: bool,
    ) -> Result<NpyFile> {
        let grid = grid_for(path, &layout.shape, chunks, layout.dtype)?;
        Self::create_with(path, raw_header(layout), grid, overwrite, &[])
    }

    /// Opens an existing headerless file laid out as `layout` says, as
    /// `numpy.memmap` would.
    pub(super) fn open_raw(
        path: &Path,
        layout: &RawLayout,
        chunks: Option<&[u64]>,
        writable: bool,
    ) -> Result<NpyFile> {
        let file = open_file(path, writable)?;
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Self::open_with(path, file, file_len, raw_header(layout), chunks, writable)
    }
}
