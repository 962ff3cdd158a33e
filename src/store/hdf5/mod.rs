//! The HDF5 backend (cargo feature `hdf5`): one dataset of an HDF5 file,
//! through the HDF5 C library (`hdf5-metno`).
//!
//! # I/O
//!
//! HDF5's library runs one call at a time (`hdf5-metno` holds a global
//! lock around every call). So for chunked datasets whose filter pipeline
//! chunkyard knows (none, shuffle, deflate, LZ4 32004) the store moves
//! chunks as stored bytes:
//! [`write_chunk`](crate::store::ChunkStore::write_chunk) byte-swaps and
//! compresses on the calling thread (the cache's parallel flush runs it on
//! every rayon thread) and only then hands the encoded chunk to HDF5's
//! direct chunk write; reads fetch the stored chunk (`H5Dread_chunk`) and
//! decode it in Rust, except unfiltered native-order chunks, which are
//! stored as their decoded bytes and read straight from the file by
//! `pread` (see [`RawReads`](raw::RawReads)); those datasets take partial
//! reads. Contiguous and compact datasets, and chunked ones with filters
//! only HDF5 knows, go through HDF5's own hyperslab reads and writes (with
//! its type conversion), one at a time.
//!
//! # Missing chunks
//!
//! A chunk HDF5 never allocated reads as `Ok(None)`. HDF5 cannot free one
//! chunk, so [`erase_chunk`](crate::store::ChunkStore::erase_chunk) stores
//! the fill value, and a stored chunk whose every byte is the fill value
//! also reads as `None`: the caller sees the same elements either way.
//!
//! # Durability
//!
//! [`flush`](crate::store::ChunkStore::flush) is `H5Fflush` (metadata and
//! raw data out of HDF5's caches) followed by `fsync`. See `docs/hdf5.md`
//! for what a crash between flushes leaves.
//!
//! # Files
//!
//! `file` opens files and lists datasets, `attrs` moves attributes,
//! `dims` dimension names (`DIMENSION_LABELS`, dimension scales),
//! `types` maps element types and
//! filters to HDF5's, `open` creates and opens datasets, `store` holds the
//! open dataset and its `ChunkStore` impl, `chunk_io` does direct and
//! hyperslab chunk I/O, `raw` reads straight from the file, `filters` runs
//! HDF5 filter pipelines in Rust, `ffi` wraps the HDF5 calls
//! `hdf5-metno` lacks.

mod attrs;
mod chunk_io;
mod dims;
mod ffi;
mod file;
pub(crate) mod filters;
pub(crate) mod index;
mod open;
mod raw;
mod store;
#[cfg(test)]
mod tests;
mod types;

pub use self::file::{DatasetSummary, list_datasets};
pub use self::store::Hdf5Store;

use self::filters::Step;
use crate::codec::Codec;
use crate::error::Error;

/// The dataset a path without a `:/dataset` suffix names.
pub const DEFAULT_DATASET: &str = "data";

/// How [`Hdf5Store::create`] makes a dataset.
#[derive(Debug, Clone, Default)]
pub struct Hdf5Options {
    /// Chunk compression: none, gzip (HDF5 deflate) or lz4 (filter 32004).
    pub codec: Codec,
    /// Replace an existing dataset of the same name, or an existing file
    /// that is not HDF5.
    pub overwrite: bool,
    /// Attributes to write on the dataset: those HDF5 can hold
    /// ([`crate::dropped_by`] lists the others), and dimension names as
    /// `DIMENSION_LABELS` (no dimension scale datasets).
    pub labels: Option<crate::store::Labels>,
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

fn store_err(message: impl Into<String>) -> Error {
    Error::Store {
        backend: "hdf5",
        message: message.into(),
    }
}
