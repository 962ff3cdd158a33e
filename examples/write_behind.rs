//! The seed article's loop in Rust, with and without write-behind: the
//! caller's own thread computes each plane (as numpy's generator does
//! under Python's GIL), then writes it whole with `a[i] = plane`'s Rust
//! twin. Without write-behind the store write of each plane runs on the
//! caller's thread between two planes; with it, the cache's writer threads
//! do it while the caller computes the next plane. Prints, from one run:
//! the generator alone, the loop without and with write-behind (end to
//! end, flush included), their ratios to the generator, and peak resident
//! memory of each phase.
//!
//! `cargo run --release --example write_behind -- FORMAT DIR [DEPTH] [ROWS] [COLS] [CACHE_MIB] [WRITERS] [PASSES]`
//! (FORMAT: npy or zarr; defaults 64 planes of 2000 x 2000 f32, a 256 MiB
//! cache, 2 writer threads, 8 passes of the generator per element, about
//! the cost of numpy's `standard_normal`).

use std::path::Path;
use std::time::{Duration, Instant};

use chunkyard::{ArrayOptions, ChunkCache, Result, create, s};
use ndarray::ArrayView2;

// The bench's memory sampler, from the binary's sources.
#[path = "../src/bin/chunkyard/procmem.rs"]
mod procmem;
use procmem::{Rss, Sampler};

/// Fills `plane` with roughly normal values (a sum of `passes` uniforms
/// from xorshift64*): a computation on the caller's thread whose cost
/// scales with `passes`.
fn generate(z: u64, passes: u32, plane: &mut [f32]) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (z + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let scale = 1.0 / (1u64 << 53) as f64;
    for v in plane.iter_mut() {
        let mut sum = 0.0f64;
        for _ in 0..passes {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            sum += (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 * scale;
        }
        *v = (sum - f64::from(passes) / 2.0) as f32;
    }
}

struct Phase {
    elapsed: Duration,
    peak_mib: f64,
}

fn phase(f: impl FnOnce() -> Result<()>) -> Result<Phase> {
    let before = Rss::now().unwrap_or_default();
    let sampler = Sampler::start(Duration::from_millis(5));
    let t0 = Instant::now();
    f()?;
    let elapsed = t0.elapsed();
    let trace = sampler.finish();
    let _ = before;
    Ok(Phase {
        elapsed,
        peak_mib: trace.peak_total as f64 / (1 << 20) as f64,
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let format = args.get(1).map_or("npy", String::as_str);
    let dir = Path::new(args.get(2).map_or(".", String::as_str));
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (depth, rows, cols) = (arg(3, 64), arg(4, 2000), arg(5, 2000));
    let (cache_mib, writers, passes) = (arg(6, 256), arg(7, 2) as usize, arg(8, 8) as u32);
    let path = dir.join(format!("write-behind-{}.{format}", std::process::id()));
    let mut plane = vec![0f32; (rows * cols) as usize];

    let generator = phase(|| {
        for z in 0..depth {
            generate(z, passes, &mut plane);
            std::hint::black_box(&plane);
        }
        Ok(())
    })?;
    let mut build = |cache: ChunkCache| {
        phase(|| {
            let a = create::<f32>(
                &path,
                ArrayOptions::new([depth, rows, cols])
                    .chunks([1, rows, cols])
                    .cache(cache)
                    .overwrite(true),
            )?;
            for z in 0..depth {
                generate(z, passes, &mut plane);
                let view = ArrayView2::from_shape((rows as usize, cols as usize), &plane[..])
                    .expect("plane shape");
                a.write(s![z as isize, .., ..], &view)?;
            }
            a.close()
        })
    };
    let budget = (cache_mib << 20) as usize;
    let off = build(ChunkCache::new(budget))?;
    let on = build(ChunkCache::with_write_behind(budget, writers))?;
    if path.is_dir() {
        std::fs::remove_dir_all(&path).ok();
    } else {
        std::fs::remove_file(&path).ok();
    }
    let gen_s = generator.elapsed.as_secs_f64();
    println!(
        "{format}: {depth} planes of {rows} x {cols} f32, cache {cache_mib} MiB, {passes} passes per element"
    );
    println!(
        "generator alone       {:7.2} s                 peak RSS {:7.1} MiB",
        gen_s, generator.peak_mib
    );
    for (name, p) in [("write-behind off", &off), ("write-behind on ", &on)] {
        println!(
            "{name}      {:7.2} s  ({:.3} x generator)  peak RSS {:7.1} MiB",
            p.elapsed.as_secs_f64(),
            p.elapsed.as_secs_f64() / gen_s,
            p.peak_mib
        );
    }
    println!("writers: {writers}");
    Ok(())
}
