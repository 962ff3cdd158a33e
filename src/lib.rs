//! # chunkyard
//!
//! An out-of-core chunked array engine: arrays live in standard files on
//! disk (NumPy `.npy`, Zarr, and HDF5 with the `hdf5` feature), and a program holds only
//! a small, byte-budgeted set of their chunks in memory. Opening a file
//! reads its metadata; an element or a tile is read when asked for.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

// Internal modules: what users need is re-exported below, and backend
// authors have `store`.
mod array;
mod blocks;
mod buffer;
mod cache;
mod chunk_grid;
mod codec;
mod dims;
mod dtype;
mod error;
mod layout;
mod open;
mod ops;
mod reduce;
mod selection;
pub mod store;
#[cfg(test)]
mod testutil;
mod units;
mod view;

pub use array::{Array, ArrayHandle, MemoryReport, WRITE_THROUGH_MIN_BYTES};
pub use blocks::{Block, BlockWriter, Blocks};
pub use buffer::{ChunkBuf, Scratch};
pub use cache::{CacheStats, ChunkCache, DEFAULT_CACHE_BYTES};
pub use chunk_grid::ChunkGrid;
pub use codec::Codec;
pub use dims::Dims;
pub use dtype::{DType, Element, Endian, cast, cast_bytes};
pub use error::{Error, Result, SelectionError};
pub use ndarray;
pub use ndarray::s;
pub use open::{ArrayOptions, Format, OpenOptions, create, open, open_with, split_hdf5_path};
pub use ops::{copy_selection, copy_selection_steps, map_into, zip_map_into};
pub use reduce::{
    Reduced, Reduction, Scalar, reduce, reduce_axis, reduce_axis_steps, reduce_steps,
};
pub use selection::{AxisSel, IntoSelection, ResolvedSelection, SelItem, Selection};
pub use units::{format_bytes, parse_size};
pub use view::View;

/// Internal kernels that the tests, examples, benches and fuzz targets
/// exercise directly. Not part of the API.
#[doc(hidden)]
pub mod internals {
    pub use crate::layout::{c_strides, copy_region};
    pub use crate::store::extract_region;
    pub use crate::store::zarr::lz4;
}
