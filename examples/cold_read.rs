//! Profiling aid: one selection read from an existing float32 array
//! (`.npy`, Zarr or HDF5, e.g. the files `chunkyard bench --keep` writes),
//! cold (the files' pages dropped from the OS page cache first, as the
//! bench does) or warm (dropped, then read once sequentially), on a freshly
//! opened array. Prints the read's milliseconds, so that a script can
//! alternate it with other tools and `strace -c` / `perf stat` can count
//! what one read costs.
//!
//! `target/release/examples/cold_read PATH SELECTION [cold|warm|asis] [REPEATS]`
//! (`asis`: leave the page cache as it is; REPEATS reads on one open array).
use std::path::Path;
use std::time::Instant;

use chunkyard::{ChunkCache, OpenOptions};

// The bench's page-cache handling, from the binary's sources.
#[path = "../src/bin/chunkyard/bench/pagecache.rs"]
mod pagecache;

fn main() -> chunkyard::Result<()> {
    let usage =
        || chunkyard::Error::invalid("usage: cold_read PATH SELECTION [cold|warm|asis] [REPEATS]");
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(usage)?;
    let sel = args.next().ok_or_else(usage)?;
    let mode = args.next().unwrap_or_else(|| "cold".into());
    let repeats: usize = match args.next() {
        Some(r) => r.parse().map_err(|_| usage())?,
        None => 1,
    };
    // The file part of an HDF5 path (`file.h5:/dataset`).
    let file = match path.rsplit_once(".h5:") {
        Some((f, _)) => format!("{f}.h5"),
        None => path.clone(),
    };
    match mode.as_str() {
        "cold" => {
            pagecache::drop_page_cache(Path::new(&file))?;
        }
        "warm" => {
            pagecache::drop_page_cache(Path::new(&file))?;
            pagecache::warm_page_cache(Path::new(&file))?;
        }
        "asis" => {}
        _ => return Err(usage()),
    }
    let a = chunkyard::open_with::<f32>(
        &path,
        &OpenOptions::new()
            .read_only(true)
            .cache(ChunkCache::new(256 << 20)),
    )?;
    for _ in 0..repeats {
        let before = proc_usage();
        let t = Instant::now();
        let r = a.read(sel.as_str())?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let after = proc_usage();
        std::hint::black_box(&r);
        // Wall time, then what load does not change much: the process's
        // CPU time and page faults during the read.
        println!(
            "{ms:.3} ms, cpu {:.3} ms, major faults {}, minor faults {}",
            after.0 - before.0,
            after.1 - before.1,
            after.2 - before.2
        );
    }
    Ok(())
}

/// The process's CPU milliseconds (every thread's, from
/// `CLOCK_PROCESS_CPUTIME_ID`), and its major and minor page faults so far
/// (`/proc/self/stat`; zeros where `/proc` is not there).
fn proc_usage() -> (f64, i64, i64) {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    let ms = t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: state is field 3,
    // minflt 10, majflt 12.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse().ok()).unwrap_or(0);
    (ms, field(12), field(10))
}
