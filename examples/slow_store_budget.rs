//! Peak resident memory of a writer faster than its store: builds an array
//! plane by plane through a store wrapper that sleeps in every chunk
//! write, with a fixed cache budget, and prints the peak resident memory
//! next to the budget and the most bytes the cache accounted for (resident
//! chunks plus write buffers in flight) inside any chunk write.
//!
//! `cargo run --release --example slow_store_budget -- FORMAT DIR [MIB] [BUDGET_MIB] [DELAY_MS]`
//! (FORMAT: npy, zarr, zarr-lz4; defaults: 1024 MiB through a 64 MiB
//! cache, 5 ms per chunk write).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chunkyard::store::{ChunkStore, NpyOptions, NpyStore, ZarrOptions, ZarrStore};
use chunkyard::store::{Hooks, Wrapped};
use chunkyard::{Array, ChunkCache, Codec, DType, Result, s};
use ndarray::Array2;

// The bench's memory sampler, from the binary's sources.
#[path = "../src/bin/chunkyard/procmem.rs"]
mod procmem;
use procmem::{Rss, Sampler};

/// Sleeps in every chunk write and records the most bytes the cache
/// accounted for (resident chunks plus write buffers in flight) there.
#[derive(Debug)]
struct Slow {
    delay: Duration,
    cache: OnceLock<ChunkCache>,
    max_accounted: AtomicUsize,
    writes: AtomicUsize,
}

impl Hooks for Slow {
    fn write(&self, inner: &dyn ChunkStore, chunk: &[u64], data: &[u8]) -> Result<()> {
        if let Some(c) = self.cache.get() {
            let s = c.stats();
            self.max_accounted
                .fetch_max(s.resident_bytes + s.in_flight_bytes, Ordering::Relaxed);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.delay);
        inner.write_chunk(chunk, data)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let format = args.get(1).map_or("npy", String::as_str);
    let dir = Path::new(args.get(2).map_or(".", String::as_str));
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (mib, budget_mib, delay_ms) = (arg(3, 1024), arg(4, 64), arg(5, 5));
    let (rows, cols) = (1024u64, 1024u64); // 4 MiB f32 planes, one chunk each
    let depth = mib / 4;
    let shape = [depth, rows, cols];
    let chunks = [1, rows, cols];
    let inner: Arc<dyn ChunkStore> = match format {
        "npy" => Arc::new(NpyStore::create(
            &dir.join("slow.npy"),
            DType::F32,
            &shape,
            &chunks,
            &NpyOptions {
                overwrite: true,
                ..NpyOptions::default()
            },
        )?),
        "zarr" | "zarr-lz4" => Arc::new(ZarrStore::create(
            &dir.join("slow.zarr"),
            DType::F32,
            &shape,
            &chunks,
            &[0; 4],
            &ZarrOptions {
                overwrite: true,
                codec: if format == "zarr" {
                    Codec::None
                } else {
                    Codec::Lz4
                },
                ..ZarrOptions::default()
            },
        )?),
        other => panic!("unknown format {other}"),
    };
    let slow = Wrapped::new(
        inner,
        Slow {
            delay: Duration::from_millis(delay_ms),
            cache: OnceLock::new(),
            max_accounted: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
        },
    );
    let budget = (budget_mib << 20) as usize;
    let cache = ChunkCache::new(budget);
    slow.cache.set(cache.clone()).unwrap();
    let before = Rss::now().unwrap_or_default();
    let sampler = Sampler::start(Duration::from_millis(5));
    let t0 = Instant::now();
    let a: Array<f32> = Array::from_store(slow.clone(), cache.clone())?;
    for z in 0..depth {
        let plane = Array2::from_shape_fn((rows as usize, cols as usize), |(i, j)| {
            (z as usize * 7 + i * 3 + j % 251) as f32
        });
        // In two halves: a whole 4 MiB plane written at once would go
        // straight to the store (write-through) and never use the cache,
        // which is what this example is about.
        let h = (rows / 2) as isize;
        a.write(s![z as isize, ..h, ..], &plane.slice(s![..h, ..]))?;
        a.write(s![z as isize, h.., ..], &plane.slice(s![h.., ..]))?;
    }
    a.flush()?;
    let elapsed = t0.elapsed();
    drop(a);
    let trace = sampler.finish();
    let m = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{format}: wrote {mib} MiB ({depth} chunks of 4 MiB, {} store writes at {delay_ms} ms) in {:.1} s",
        slow.writes.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    println!(
        "budget {budget_mib} MiB; cache accounted at most {:.1} MiB inside a write (write buffer {:.1} MiB)",
        m(slow.max_accounted.load(Ordering::Relaxed) as u64),
        m(slow.inner.capabilities().write_buffer_bytes as u64)
    );
    println!(
        "peak RSS {:.1} MiB (anon {:.1}, file {:.1}); before the array {:.1} MiB",
        m(trace.peak_total),
        m(trace.peak_anon),
        m(trace.peak_file),
        m(before.total())
    );
    Ok(())
}
