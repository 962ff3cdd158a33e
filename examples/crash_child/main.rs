//! The child process of the crash trials (`tests/external/crash.rs`), a
//! test helper rather than an example to read: it opens the array at PATH,
//! writes generations `START..` with a flush after each, and reports each
//! flushed generation on stdout until it is killed.
//!
//! `crash_child npy|zarr|hdf5 START PATH` (hdf5 with `--features hdf5`).

use std::io::Write;
use std::path::PathBuf;

use chunkyard::{Array, ChunkCache};

mod pattern;

use pattern::{CHILD_CACHE, Kind, write_generation};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, start, path] = args.as_slice() else {
        eprintln!(
            "usage: crash_child npy|zarr|hdf5 START PATH (the child of tests/external/crash.rs)"
        );
        std::process::exit(2);
    };
    let kind = Kind::parse(kind);
    let start: u64 = start.parse().expect("START is a generation number");
    let path = PathBuf::from(path);
    let a: Array<u64> =
        chunkyard::open_with(&path, kind.open_opts(ChunkCache::new(CHILD_CACHE))).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    for g in start..start + 100_000 {
        write_generation(&a, g).unwrap();
        a.flush().unwrap();
        writeln!(out, "flushed {g}").unwrap();
        out.flush().unwrap();
    }
}
