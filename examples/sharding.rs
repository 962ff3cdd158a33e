//! Measures issue 20's two sharding targets in one process, as same-run
//! ratios (the machine is shared; only ratios measured side by side mean
//! anything):
//!
//! 1. Build rate: a depth x 2000 x 2000 `f32` volume, lz4, stored plane by
//!    plane and flushed, once with shards (1, 2000, 2000) of inner chunks
//!    (1, 500, 500), once unsharded with chunks (1, 2000, 2000). The order
//!    alternates between rounds. Planes come from the bench's generator,
//!    made once before timing (a few distinct planes, cycled), so that the
//!    figure is the storing rate, not the generator's.
//! 2. One random element from an uncached shard against one from an
//!    uncached unsharded lz4 chunk of the inner size (1, 500, 500): the
//!    same coordinates in both, each in an inner chunk no earlier read
//!    touched, on a freshly opened array, the page cache warm (the files
//!    just written) and then cold (their pages dropped).
//!
//! `cargo run --release --example sharding -- DIR [DEPTH] [ROUNDS] [ELEMENTS]`
//! (defaults 100, 3, 1000). The arrays are written in DIR and removed.
use std::path::{Path, PathBuf};
use std::time::Instant;

use chunkyard::{ArrayOptions, ChunkCache, Codec, OpenOptions, create};
use ndarray::ArrayView2;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[path = "../src/bin/chunkyard/bench/pagecache.rs"]
mod pagecache;
#[path = "../src/bin/chunkyard/bench/plane.rs"]
mod plane;

const ROWS: u64 = 2000;
const COLS: u64 = 2000;
const INNER: u64 = 500;
/// Distinct planes generated before timing, cycled through the build.
const PLANES: usize = 4;

fn main() -> chunkyard::Result<()> {
    let usage = || chunkyard::Error::invalid("usage: sharding DIR [DEPTH] [ROUNDS] [ELEMENTS]");
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or_else(usage)?);
    let mut num = |default: u64| -> chunkyard::Result<u64> {
        match args.next() {
            Some(v) => v.parse().map_err(|_| usage()),
            None => Ok(default),
        }
    };
    let depth = num(100)?;
    let rounds = num(3)?;
    let elements = num(1000)?;
    let plane_len = (ROWS * COLS) as usize;
    let planes: Vec<Vec<f32>> = (0..PLANES)
        .map(|z| {
            let mut p = vec![0f32; plane_len];
            plane::fill_plane(42, z as u64, COLS as usize, &mut p);
            p
        })
        .collect();
    let sharded = dir.join("sharding-bench-sharded.zarr");
    let plain = dir.join("sharding-bench-plain.zarr");
    let inner = dir.join("sharding-bench-inner.zarr");
    let gb = (depth * ROWS * COLS * 4) as f64 / 1e9;

    println!("build, {depth} planes, lz4 ({gb:.2} GB each): seconds, GB/s");
    let mut ratios = Vec::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let mut secs = [0f64; 2];
        for with_shards in order {
            let (path, chunks) = if with_shards {
                (&sharded, [1, INNER, INNER])
            } else {
                (&plain, [1, ROWS, COLS])
            };
            let mut opts = ArrayOptions::new([depth, ROWS, COLS])
                .chunks(chunks)
                .codec(Codec::Lz4)
                .cache(ChunkCache::new(256 << 20))
                .overwrite(true);
            if with_shards {
                opts = opts.shards([1, ROWS, COLS]);
            }
            let t = build(path, opts, depth, &planes)?;
            secs[usize::from(!with_shards)] = t;
            println!(
                "  round {round} {:<9} {t:7.3} s  {:.3} GB/s",
                if with_shards { "sharded" } else { "unsharded" },
                gb / t
            );
        }
        ratios.push(secs[1] / secs[0]);
    }
    println!(
        "sharded build rate / unsharded, per round: {}",
        ratios
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The unsharded array of inner-sized chunks, for the element reads.
    build(
        &inner,
        ArrayOptions::new([depth, ROWS, COLS])
            .chunks([1, INNER, INNER])
            .codec(Codec::Lz4)
            .cache(ChunkCache::new(256 << 20))
            .overwrite(true),
        depth,
        &planes,
    )?;
    // Random elements, each in an inner chunk of its own.
    let per_plane = (ROWS / INNER) * (COLS / INNER);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut chunk_ids: Vec<u64> = (0..depth * per_plane).collect();
    for i in (1..chunk_ids.len()).rev() {
        chunk_ids.swap(i, rng.random_range(0..=i));
    }
    let picks: Vec<[u64; 3]> = chunk_ids
        .iter()
        .take(elements as usize)
        .map(|&id| {
            let (z, within) = (id / per_plane, id % per_plane);
            let (cr, cc) = (within / (COLS / INNER), within % (COLS / INNER));
            [
                z,
                cr * INNER + rng.random_range(0..INNER),
                cc * INNER + rng.random_range(0..INNER),
            ]
        })
        .collect();
    println!(
        "random element, each in an inner chunk of its own ({} elements), µs each:",
        picks.len()
    );
    for cold in [false, true] {
        let mut us = [0f64; 2];
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [&sharded, &inner]
            } else {
                [&inner, &sharded]
            };
            for path in order {
                let t = elements_us(path, &picks, cold)?;
                let slot = usize::from(path == &inner);
                us[slot] += t / rounds as f64;
            }
        }
        println!(
            "  {}: sharded {:.1}, unsharded inner-sized {:.1}, ratio {:.2}",
            if cold { "cold" } else { "warm" },
            us[0],
            us[1],
            us[0] / us[1]
        );
    }
    for p in [&sharded, &plain, &inner] {
        std::fs::remove_dir_all(p).map_err(|e| chunkyard::Error::io(p, e))?;
    }
    Ok(())
}

/// Creates the array, stores every plane, flushes; the wall seconds.
fn build(
    path: &Path,
    opts: ArrayOptions,
    depth: u64,
    planes: &[Vec<f32>],
) -> chunkyard::Result<f64> {
    let t = Instant::now();
    let a = create::<f32>(path, opts)?;
    for z in 0..depth {
        let p = &planes[z as usize % planes.len()];
        let view =
            ArrayView2::from_shape((ROWS as usize, COLS as usize), p.as_slice()).expect("shape");
        a.write(ndarray::s![z as isize, .., ..], &view)?;
    }
    a.flush()?;
    drop(a);
    Ok(t.elapsed().as_secs_f64())
}

/// Mean µs per element of `picks` on a freshly opened array, after the
/// page cache was left warm (pages read back in) or dropped.
fn elements_us(path: &Path, picks: &[[u64; 3]], cold: bool) -> chunkyard::Result<f64> {
    pagecache::drop_page_cache(path)?;
    if !cold {
        pagecache::warm_page_cache(path)?;
    }
    let a = chunkyard::open_with::<f32>(
        path,
        &OpenOptions::new()
            .read_only(true)
            .cache(ChunkCache::new(256 << 20)),
    )?;
    let t = Instant::now();
    let mut acc = 0f32;
    for i in picks {
        acc += a.get(i)?;
    }
    std::hint::black_box(acc);
    Ok(t.elapsed().as_secs_f64() * 1e6 / picks.len() as f64)
}
