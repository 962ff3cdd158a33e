//! The library against its stores, in this process: one test binary for
//! every integration test that runs no other program (`cargo test --test
//! it`). Tests that run the `chunkyard` command, `python3` or crash
//! children live in `tests/external/`: see there for why they are a
//! separate process.
//!
//! Every backend built in is tested, HDF5 too with `--features hdf5`.

#[path = "../common/mod.rs"]
mod common;

mod append;
mod budget;
mod concurrency;
mod fail_closed;
mod left_out;
mod model;
mod oversize_reads;
mod write_behind;
mod write_through;
