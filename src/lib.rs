//! # chunkyard
//!
//! An out-of-core chunked array engine: arrays live in standard files on
//! disk (NumPy `.npy`, Zarr, and HDF5 with the `hdf5` feature), and a
//! program holds only a small, byte-budgeted set of their chunks in memory.
//! Opening a file reads its metadata; an element or a tile is read when
//! asked for; reductions, conversions and maps stream through the array a
//! block at a time, in parallel, within the cache budget.
//!
//! ## Example
//!
//! A volume written plane by plane from rayon threads into an lz4 Zarr
//! array, reduced, converted to a float64 `.npy`, and closed:
//!
//! ```
//! # #[cfg(not(feature = "zarr"))] fn main() {}
//! # #[cfg(feature = "zarr")]
//! # fn main() -> chunkyard::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let (vol, copy) = (dir.path().join("vol.zarr"), dir.path().join("copy.npy"));
//! use chunkyard::{ArrayOptions, Codec, s};
//! use chunkyard::ndarray::{Array2, ArrayD};
//! use rayon::prelude::*;
//!
//! let a = chunkyard::create::<f32>(
//!     &vol, // "vol.zarr": the format comes from the extension
//!     ArrayOptions::new([20usize, 100, 100]).chunks([1usize, 100, 100]).codec(Codec::Lz4),
//! )?;
//! (0..20).into_par_iter().try_for_each(|z| {
//!     let plane = Array2::from_elem((100, 100), z as f32);
//!     a.write(s![z, .., ..], &plane) // Array is Send + Sync: no locking
//! })?;
//!
//! let x: f32 = a.get([19, 99, 99])?;             // one element, a few bytes read
//! let tile: ArrayD<f32> = a.read(s![10, 0..64, 0..64])?;
//! let total: f64 = a.sum()?;                     // parallel, bounded memory
//! let (lo, hi): (f32, f32) = (a.min()?, a.max()?);
//! let p: f64 = a.slice(s![17, .., ..])?.mean()?;  // the same on any view
//! let m0: ArrayD<f64> = a.mean_axis(0)?;          // along one axis
//! let b: chunkyard::Array<f64> =                  // convert: streams, bounded memory
//!     a.cast::<f64>().save_as(&copy, ArrayOptions::default())?;
//! a.close()?;                                     // flush; the error is returned
//!
//! assert_eq!((x, tile[[0, 0]], lo, hi, p), (19.0, 10.0, 0.0, 19.0, 17.0));
//! assert_eq!(total, 190.0 * 100.0 * 100.0);
//! assert_eq!(m0[[5, 5]], 9.5);
//! assert_eq!(b.get([3, 0, 0])?, 3.0f64);
//! # Ok(()) }
//! ```
//!
//! `examples/pipeline.rs` is the same program with its results checked;
//! `docs/operations.md` lists every operation with its Rust and command
//! line forms.
//!
//! ## ndarray
//!
//! Data comes in and out as [`ndarray`] 0.17 arrays (`ArrayD<T>` from
//! reads, any `ArrayView` or `&Array` into writes). With a different
//! ndarray in your own `Cargo.toml` (0.16, say) the types do not match and
//! the first error is about `AsArray`; use the re-export
//! [`chunkyard::ndarray`](ndarray) (and [`s!`]) instead, or depend on
//! `ndarray = "0.17"`.
//!
//! Shapes, chunk shapes and element indices take `[usize; N]`,
//! `[u64; N]`, integer literals, slices and `Vec`s of these ([`Dims`]);
//! shapes come back as `Vec<u64>`, the width the files use.
//!
//! ## Arrays, views, options
//!
//! - [`create`], [`open`] and [`open_with`] give an [`Array<T>`]; options are
//!   builders ([`ArrayOptions`], [`OpenOptions`]) taken by value or by
//!   reference everywhere. [`ArrayHandle`] is the same array with its
//!   element type known at run time (the CLI's face).
//! - [`View<T>`]: slices, transpositions and casts of an array with no I/O
//!   until read; reductions (`sum`, `mean`, `min`, `max`, `count`, the
//!   `nan*` variants and their `*_axis` forms) and
//!   [`save_as`](View::save_as) work on views and arrays alike.
//! - Durability: data is on disk when [`Array::flush`] or [`Array::close`]
//!   returns `Ok`. Dropping the last handle also flushes, but can only
//!   print a failure to stderr: call `close` where the error matters.
//!
//! ## Caches
//!
//! Every array caches its chunks in a [`ChunkCache`], a byte budget that
//! arrays may share. Without one in the options, an array uses the
//! process-wide [`ChunkCache::global`] ([`DEFAULT_CACHE_BYTES`], 256 MiB).
//! A cache belongs to the handle, not to the file: reopening a file
//! without naming a cache uses the global one, even when the file was
//! created in this process with another. To keep a budget, pass it again
//! (`OpenOptions::new().cache(c)`), or clone the handle instead of
//! reopening (clones share everything). [`View::save_as`] is the exception:
//! the copy uses its source's cache unless told otherwise.
//!
//! A cache made with [`ChunkCache::with_write_behind`] (off by default)
//! lets a whole-chunk write return once the chunk is in the cache: its own
//! writer threads write it back while the caller computes the next one,
//! within the same budget; `flush` and `close` are durable on return as
//! always, and a failed background write closes the array at the next
//! write or flush.
//!
//! ```
//! use chunkyard::{Array, ArrayOptions, ChunkCache, s};
//! # fn main() -> chunkyard::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let cache = ChunkCache::with_write_behind(64 << 20, 2);
//! let a: Array<f32> = chunkyard::create(
//!     dir.path().join("planes.npy"),
//!     ArrayOptions::new([8, 512, 512]).chunks([1, 512, 512]).cache(cache),
//! )?;
//! for z in 0..8 {
//!     let plane = ndarray::Array2::<f32>::from_elem((512, 512), z as f32);
//!     a.write(s![z as isize, .., ..], &plane)?; // returns before the disk write
//! }
//! a.close()?; // every plane durable
//! # Ok(())
//! # }
//! ```
//!
//! ## Features
//!
//! - `cli` (default): the `chunkyard` command (argument parsing, progress
//!   bars, the bench and its plots). A library user can turn it off:
//!   `chunkyard = { version = "0.1", default-features = false }`.
//! - `hdf5`: HDF5 files (`file.h5:/group/dataset`) through the system HDF5
//!   library (>= 1.10.5; `apt-get install libhdf5-dev`).
//! - `hdf5-static`: the same, with HDF5 built from source and linked
//!   statically (needs cmake and a C compiler).
//! - `s3`: Zarr arrays at `s3://bucket/prefix` URLs on S3-compatible
//!   object storage, configured by the `AWS_*` variables or `S3Options`
//!   (`docs/s3.md`).
//! - `interop`: tests that check files against numpy, zarr-python and h5py
//!   (`pip install -r requirements-dev.txt`); no effect on the library.
//!
//! ## Errors
//!
//! Every fallible call returns [`Result`] with the typed [`Error`]; bad
//! input (files, selections, dtypes, options) is an error, never a panic.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(unreachable_pub)]

// Internal modules: what users need is re-exported below, and backend
// authors have `store`.
mod array;
mod attrs;
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
pub use attrs::{AttrValue, Attrs, dropped_by};
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
pub use ops::{
    copy_selection, copy_selection_interruptible, copy_selection_steps, map_into, zip_map_into,
};
pub use reduce::{
    Reduced, Reduction, Scalar, reduce, reduce_axis, reduce_axis_interruptible, reduce_axis_steps,
    reduce_interruptible, reduce_steps,
};
pub use selection::{AxisSel, IntoSelection, ResolvedSelection, SelItem, Selection};
#[cfg(feature = "s3")]
pub use store::zarr::S3Options;
pub use units::{format_bytes, parse_size};
pub use view::View;

/// `docs/operations.md`, whose Rust examples run as doctests.
#[cfg(all(doctest, feature = "zarr"))]
#[doc = include_str!("../docs/operations.md")]
pub struct OperationsDoc;

/// Internal kernels that the tests, examples, benches and fuzz targets
/// exercise directly. Not part of the API.
#[doc(hidden)]
pub mod internals {
    pub use crate::layout::{c_strides, copy_region};
    pub use crate::store::extract_region;
    /// The `hdf5_chunks` fuzz target's entry points: chunk index entries
    /// checked against the file and the stored bytes decoded.
    #[cfg(feature = "hdf5")]
    pub use crate::store::hdf5::filters::Step as Hdf5Step;
    #[cfg(feature = "hdf5")]
    pub use crate::store::hdf5::index::{
        lz4_filter_decode as hdf5_lz4_filter_decode, stored_chunk as hdf5_stored_chunk,
    };
    #[cfg(feature = "zarr")]
    pub use crate::store::zarr::blosc;
    #[cfg(feature = "zarr")]
    pub use crate::store::zarr::lz4;
    /// The `s3_responses` fuzz target's seam: an `object_store` of its own
    /// in place of the S3 client (and the crate, so that it implements
    /// the same version's trait).
    #[cfg(feature = "s3")]
    pub use crate::store::zarr::s3::with_object_store;
    #[cfg(feature = "s3")]
    pub use object_store;
}
