//! The NumPy `.npy` backend: one dense array in one file, in C or Fortran
//! order, little- or big-endian; also headerless raw files laid out as
//! `numpy.memmap` opens them.
//!
//! # I/O
//!
//! Whole chunks move with positioned I/O (`pread`/`pwrite`), one system
//! call per run that is contiguous in the file, so reading or writing
//! chunks never maps pages into the process. Partial reads
//! ([`ChunkStore::read_region`](crate::store::ChunkStore::read_region))
//! go through a read-only memory map of the file and copy only the
//! elements asked for; the map's pages are handed back to the kernel
//! (`MADV_DONTNEED`) after every 32 MiB or so that reads may have touched,
//! so the process's file-backed resident memory stays bounded while the
//! data stays in the page cache.
//!
//! A `.npy` file has no notion of a missing chunk: every chunk reads as
//! `Some`, never-written parts read as zeros (new files are sparse), and
//! [`erase_chunk`](crate::store::ChunkStore::erase_chunk) writes zeros.
//!
//! # Limits
//!
//! Another process truncating or rewriting the file while a store has it
//! open is outside what this store can guard against: reads through the
//! map of a truncated file raise `SIGBUS`, and data changed underneath
//! reads as whatever the file holds at that moment.
//!
//! # Files
//!
//! `literal` parses the Python literal of the header dictionary, `header`
//! reads and writes headers, `store` opens, creates and resizes files,
//! `io` moves chunks and regions (the `ChunkStore` impl), `raw` handles
//! headerless files.

mod header;
mod io;
mod literal;
mod raw;
mod store;
#[cfg(test)]
mod tests;

pub use self::header::{MAX_HEADER_BYTES, NpyHeader, parse_npy_header};
pub use self::raw::RawLayout;
pub use self::store::NpyStore;

use crate::dtype::Endian;

/// Element order of the array in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Row-major: the last axis varies fastest.
    #[default]
    C,
    /// Column-major: the first axis varies fastest.
    Fortran,
}

/// How [`NpyStore::create`] lays out a new file.
#[derive(Debug, Clone)]
pub struct NpyOptions {
    /// Element order in the file.
    pub order: Order,
    /// Byte order of the data (default little-endian, as NumPy writes on
    /// every common machine).
    pub endian: Endian,
    /// Replace an existing file instead of refusing.
    pub overwrite: bool,
}

impl Default for NpyOptions {
    fn default() -> Self {
        NpyOptions {
            order: Order::C,
            endian: Endian::Little,
            overwrite: false,
        }
    }
}
