//! # chunkyard
//!
//! An out-of-core chunked array engine: arrays live in standard files on
//! disk (NumPy `.npy`, Zarr, and HDF5 with the `hdf5` feature), and a program holds only
//! a small, byte-budgeted set of their chunks in memory. Opening a file
//! reads its metadata; an element or a tile is read when asked for.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod array;
pub mod blocks;
pub mod buffer;
pub mod cache;
pub mod chunk_grid;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod layout;
pub mod open;
pub mod ops;
pub mod reduce;
pub mod selection;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod units;
pub mod view;

pub use array::{Array, ArrayHandle, MemoryReport, WRITE_THROUGH_MIN_BYTES};
pub use buffer::ChunkBuf;
pub use cache::{CacheStats, ChunkCache};
pub use chunk_grid::ChunkGrid;
pub use codec::Codec;
pub use dtype::{DType, Element, Endian};
pub use error::{Error, Result, SelectionError};
pub use ndarray;
pub use ndarray::s;
pub use open::{ArrayOptions, Format, OpenOptions, create, open, open_with};
pub use selection::{IntoSelection, Selection};
pub use view::View;
