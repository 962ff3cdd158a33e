//! Profiling aid: the bench's random element and tile reads on an existing
//! 3-d float32 file (`chunkyard bench --depth 100 --keep` writes one), page
//! cache warm. `perf record -g target/release/examples/random_reads FILE`.
use std::time::Instant;

use chunkyard::{ChunkCache, OpenOptions, s};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

// The bench's own tile floor and memory reading, from the binary's sources.
#[allow(dead_code)]
#[path = "../src/bin/chunkyard/bench/floor.rs"]
mod floor;
#[allow(dead_code)]
#[path = "../src/bin/chunkyard/procmem.rs"]
mod procmem;

fn main() -> chunkyard::Result<()> {
    let path = std::env::args().nth(1).ok_or_else(|| {
        chunkyard::Error::invalid("usage: random_reads FILE [elements|tiles|planes]")
    })?;
    let what = std::env::args().nth(2).unwrap_or_default();
    let open = || {
        chunkyard::open_with::<f32>(
            &path,
            &OpenOptions::new()
                .read_only(true)
                .cache(ChunkCache::new(256 << 20)),
        )
    };
    let shape = open()?.shape();
    let (d, r, c) = (shape[0], shape[1], shape[2]);
    let mut rng = SmallRng::seed_from_u64(7);
    for pass in 0..3 {
        if what == "planes" {
            // Whole planes through a 1 MiB cache (smaller than a plane),
            // as `cargo bench --bench io -- "read plane"` does.
            let a = chunkyard::open_with::<f32>(
                &path,
                &OpenOptions::new()
                    .read_only(true)
                    .cache(ChunkCache::new(1 << 20)),
            )?;
            let n = 200;
            let mut buf = vec![0f32; (r * c) as usize];
            let t = Instant::now();
            for _ in 0..n {
                let z = rng.random_range(0..d) as isize;
                a.read_into(s![z, .., ..], &mut buf)?;
            }
            std::hint::black_box(&buf);
            let ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            println!("pass {pass}: plane {ms:.2} ms");
            continue;
        }
        if what != "tiles" {
            let a = open()?;
            let n = 20_000;
            let t = Instant::now();
            let mut acc = 0f32;
            for _ in 0..n {
                acc += a.get([
                    rng.random_range(0..d),
                    rng.random_range(0..r),
                    rng.random_range(0..c),
                ])?;
            }
            std::hint::black_box(acc);
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let rss = procmem::Rss::now().unwrap_or_default();
            println!(
                "pass {pass}: element {us:.2} µs, resident file-backed {} MiB",
                rss.file >> 20
            );
        }
        if what != "elements" {
            let a = open()?;
            let n = 2_000;
            let mut buf = vec![0f32; 64 * 64];
            let mut random_corners = || -> Vec<[u64; 3]> {
                (0..n)
                    .map(|_| {
                        [
                            rng.random_range(0..d),
                            rng.random_range(0..=r - 64),
                            rng.random_range(0..=c - 64),
                        ]
                    })
                    .collect()
            };
            let corners = random_corners();
            // Other tiles for the floor: these would still be in the CPU's
            // last-level cache.
            let floor_corners = random_corners();
            let t = Instant::now();
            for &[z, y, x] in &corners {
                let (z, y, x) = (z as isize, y as isize, x as isize);
                a.read_into(s![z, y..y + 64, x..x + 64], &mut buf)?;
            }
            std::hint::black_box(&buf);
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let rss = procmem::Rss::now().unwrap_or_default();
            // As many tiles copied out of a map without chunkyard, with the
            // same resident bound (npy files and raw Zarr planes).
            let floor = match floor::tile_floor_bounded(
                path.as_ref(),
                [d, r, c],
                [64, 64],
                &floor_corners,
            )? {
                Some(f) => format!(", floor {f:.2} µs ({:.2}x)", us / f),
                None => String::new(),
            };
            println!(
                "pass {pass}: tile {us:.2} µs, resident file-backed {} MiB{floor}",
                rss.file >> 20
            );
        }
    }
    Ok(())
}
