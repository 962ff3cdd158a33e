//! Tests that run other programs: the `chunkyard` command (feature `cli`),
//! `python3` with numpy, zarr-python and h5py (feature `interop`, packages
//! from `requirements-dev.txt`), and the crash trials' children
//! (`examples/crash_child`). `cargo test --test external`.
//!
//! They are a process of their own, apart from `tests/it/`, because HDF5
//! opens files without `O_CLOEXEC` and holds an `flock` on each: a child
//! spawned while a test in the same process has an HDF5 file open inherits
//! the descriptor, the lock outlives the file's close here, and that test's
//! reopen fails with EAGAIN. The tests in `tests/it/` open HDF5 files in
//! parallel and run no children; here, the few tests that open HDF5 files
//! in this process hold `common::hdf5_files()`, which no child outlives
//! (`common::child_guard`).

#[path = "../common/mod.rs"]
mod common;

#[cfg(all(feature = "cli", feature = "interop"))]
mod append_interop;
#[cfg(feature = "cli")]
mod bench_cli;
#[cfg(feature = "cli")]
mod cli;
mod crash;
// Its proxy serves the CLI's S3 tests; without `cli` only `raw_request`
// is used.
#[cfg(feature = "s3")]
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod flaky_proxy;
#[cfg(all(feature = "cli", feature = "hdf5"))]
mod hdf5_bad_input;
#[cfg(all(feature = "interop", feature = "hdf5"))]
mod hdf5_interop;
#[cfg(feature = "interop")]
mod npy_interop;
#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "cli")]
mod zarr_cli;
#[cfg(feature = "interop")]
mod zarr_interop;

/// The crash trials' array and value pattern, shared with their child.
#[path = "../../examples/crash_child/pattern.rs"]
mod crash_pattern;
