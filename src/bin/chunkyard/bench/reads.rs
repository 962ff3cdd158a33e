//! The read workloads `chunkyard bench --workload` runs on each built
//! file: random elements and tiles, a full sum and two strided selections,
//! each pass cold and warm, while sampling resident memory.

use std::time::{Duration, Instant};

use chunkyard::Scratch;
use chunkyard::{ChunkCache, Error, Result};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::build::{BuildOptions, BuildReport};
use super::floor::{TileFloor, tile_floor_bounded, tile_floor_unbounded};
use super::pagecache::{drop_page_cache, warm_page_cache};
use crate::procmem::{MemoryTrace, Sampler};

/// The read workloads `chunkyard bench --workload` runs on the file it
/// built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workloads {
    /// 20,000 random elements and 2,000 random 64x64 tiles.
    pub random: bool,
    /// A full sum.
    pub scan: bool,
    /// `a[::3, ::7, 5]` and `a[50, ::2, ::2]`.
    pub strided: bool,
}

impl Workloads {
    /// Nothing but the build.
    pub fn none(&self) -> bool {
        !(self.random || self.scan || self.strided)
    }
}

impl std::str::FromStr for Workloads {
    type Err = Error;

    /// `build` (none), `random`, `scan`, `strided`, `all`, or a
    /// comma-separated list.
    fn from_str(text: &str) -> Result<Workloads> {
        let mut w = Workloads::default();
        for part in text.split(',') {
            match part.trim() {
                "build" | "none" => {}
                "random" => w.random = true,
                "scan" | "sum" => w.scan = true,
                "strided" => w.strided = true,
                "all" => {
                    w = Workloads {
                        random: true,
                        scan: true,
                        strided: true,
                    }
                }
                other => {
                    return Err(Error::invalid(format!(
                        "unknown workload {other:?} (build, random, scan, strided, all)"
                    )));
                }
            }
        }
        Ok(w)
    }
}

/// Random single elements read per pass.
pub const RANDOM_ELEMENTS: usize = 20_000;
/// Random 64x64 tiles read per pass.
pub const RANDOM_TILES: usize = 2_000;
/// Tile edge.
pub const TILE: u64 = 64;

/// A figure measured twice: with the file's pages dropped from the OS page
/// cache first (`cold`, when that worked), and again right after (`warm`:
/// the page cache holds what the first pass touched).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WarmCold {
    /// Page cache holds the data.
    pub warm: f64,
    /// The file's pages were dropped first; `None` if that is not possible.
    pub cold: Option<f64>,
}

/// What the read workloads measured on one built file. Every pass reopens
/// the array with a fresh chunk cache of the run's budget.
#[derive(Debug, Clone, Default)]
pub struct ReadReport {
    /// µs per random element whose chunk is in chunkyard's cache.
    pub element_cached_us: Option<f64>,
    /// µs per random element not in chunkyard's cache (a partial read).
    pub element_us: Option<WarmCold>,
    /// µs per random 64x64 tile not in chunkyard's cache.
    pub tile_us: Option<WarmCold>,
    /// As many other random tiles copied straight out of a map of the
    /// file, without chunkyard (npy only, warm): what the machine allows.
    /// The bounded pass runs straight after chunkyard's warm pass, the
    /// unbounded one after the memory trace ends.
    pub tile_floor: Option<TileFloor>,
    /// Full sum, GB/s of logical bytes.
    pub sum_gb_per_s: Option<WarmCold>,
    /// The sum itself (the same for every format built from one seed).
    pub sum_value: Option<f64>,
    /// `a[::3, ::7, k]` in ms, k = min(5, cols - 1).
    pub strided_a_ms: Option<WarmCold>,
    /// `a[k, ::2, ::2]` in ms, k = min(50, depth - 1).
    pub strided_b_ms: Option<WarmCold>,
    /// Resident memory during the reads.
    pub memory: MemoryTrace,
}

/// How many progress steps [`run_workloads`] reports.
pub fn workload_steps(w: Workloads) -> u64 {
    (if w.random { 5 } else { 0 }) + (if w.scan { 2 } else { 0 }) + (if w.strided { 4 } else { 0 })
}

/// Runs the chosen read workloads on a file [`build`] wrote (`report.path`),
/// with `opts.cache`'s budget. Random positions come from `opts.seed`.
pub fn run_workloads(
    report: &BuildReport,
    opts: &BuildOptions,
    w: Workloads,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ReadReport> {
    let path = report.path.clone();
    // Object storage has no page cache to drop or fill, and no file to map
    // for the tile floor.
    let object = crate::args::is_object_url(&path);
    let budget = opts.cache.budget();
    let open = || -> Result<chunkyard::Array<f32>> {
        chunkyard::open_with::<f32>(
            &path,
            &crate::args::open_options()
                .read_only(true)
                .cache(ChunkCache::new(budget)),
        )
    };
    let (depth, rows, cols) = (opts.depth, opts.rows, opts.cols);
    let sampler = Sampler::start(Duration::from_millis(10));
    let mut out = ReadReport::default();
    // Runs `pass` cold (page cache dropped, if possible) then warm (page
    // cache dropped, then the whole file read into it), each on a freshly
    // opened array; returns the seconds each took.
    let twice =
        |pass: &dyn Fn(&chunkyard::Array<f32>) -> Result<()>| -> Result<(f64, Option<f64>)> {
            let cold = if !object && drop_page_cache(&path)? {
                let a = open()?;
                let t = Instant::now();
                pass(&a)?;
                Some(t.elapsed().as_secs_f64())
            } else {
                None
            };
            // Dropped first, so that the pages the cold pass faulted in one by
            // one do not stay behind as small folios: the page cache holds the
            // file as a sequential read leaves it, whatever ran before.
            if !object {
                drop_page_cache(&path)?;
                warm_page_cache(&path)?;
            }
            let a = open()?;
            let t = Instant::now();
            pass(&a)?;
            let warm = t.elapsed().as_secs_f64();
            progress(1);
            Ok((warm, cold))
        };
    let scaled = |(warm, cold): (f64, Option<f64>), k: f64| WarmCold {
        warm: warm * k,
        cold: cold.map(|c| c * k),
    };
    let mut floor_tiles: Vec<[u64; 3]> = Vec::new();
    if w.random {
        let mut rng = SmallRng::seed_from_u64(opts.seed ^ 0xE1E);
        let elements: Vec<[u64; 3]> = (0..RANDOM_ELEMENTS)
            .map(|_| {
                [
                    rng.random_range(0..depth),
                    rng.random_range(0..rows),
                    rng.random_range(0..cols),
                ]
            })
            .collect();
        let t = twice(&|a| {
            let mut acc = 0f32;
            for i in &elements {
                acc += a.get(i)?;
            }
            std::hint::black_box(acc);
            Ok(())
        })?;
        out.element_us = Some(scaled(t, 1e6 / RANDOM_ELEMENTS as f64));
        // Cached: one plane loaded into chunkyard's cache, then random
        // elements of that plane. Read twice: a whole chunk of a store
        // that reads parts of chunks goes straight to the caller the first
        // time and into the cache the second.
        let a = open()?;
        let z = depth / 2;
        for _ in 0..2 {
            a.read_into(
                ndarray::s![z as isize, .., ..],
                Scratch::default().reset((rows * cols) as usize),
            )?;
        }
        progress(1);
        let in_plane: Vec<[u64; 3]> = elements.iter().map(|&[_, r, c]| [z, r, c]).collect();
        let t = Instant::now();
        let mut acc = 0f32;
        for i in &in_plane {
            acc += a.get(i)?;
        }
        std::hint::black_box(acc);
        out.element_cached_us = Some(t.elapsed().as_secs_f64() * 1e6 / RANDOM_ELEMENTS as f64);
        drop(a);
        progress(1);
        let (tr, tc) = (TILE.min(rows), TILE.min(cols));
        let mut random_tiles = || -> Vec<[u64; 3]> {
            (0..RANDOM_TILES)
                .map(|_| {
                    [
                        rng.random_range(0..depth),
                        rng.random_range(0..=rows - tr),
                        rng.random_range(0..=cols - tc),
                    ]
                })
                .collect()
        };
        let tiles = random_tiles();
        // Others for the floor: the same tiles again could find their
        // 32 MB still in the CPU's last-level cache (see "Tile floor" in
        // docs/benchmarks.md#what-the-figures-mean).
        floor_tiles = random_tiles();
        let t = twice(&|a| {
            let mut buf = vec![0f32; (tr * tc) as usize];
            for &[z, r, c] in &tiles {
                let sel = ndarray::s![
                    z as isize,
                    r as isize..(r + tr) as isize,
                    c as isize..(c + tc) as isize
                ];
                a.read_into(sel, &mut buf)?;
            }
            std::hint::black_box(&buf);
            Ok(())
        })?;
        out.tile_us = Some(scaled(t, 1e6 / RANDOM_TILES as f64));
        // Straight after chunkyard's warm pass, in the same state.
        if !object {
            out.tile_floor =
                tile_floor_bounded(&path, [depth, rows, cols], [tr, tc], &floor_tiles)?.map(
                    |bounded_us| TileFloor {
                        bounded_us,
                        ..TileFloor::default()
                    },
                );
        }
        progress(1);
    }
    if w.scan {
        let sum = std::sync::Mutex::new(0f64);
        let t = twice(&|a| {
            let h = a.handle();
            let sel = h.resolve("...")?;
            let r = chunkyard::reduce(h, &sel, chunkyard::Reduction::Sum, &|_| ())?;
            *sum.lock().unwrap_or_else(|p| p.into_inner()) = match r {
                chunkyard::Scalar::Float(v) => v,
                chunkyard::Scalar::Int(v) => v as f64,
                chunkyard::Scalar::Bool(v) => f64::from(u8::from(v)),
            };
            Ok(())
        })?;
        let gb = report.logical_bytes as f64 / 1e9;
        out.sum_gb_per_s = Some(WarmCold {
            warm: gb / t.0,
            cold: t.1.map(|c| gb / c),
        });
        out.sum_value = Some(sum.into_inner().unwrap_or_else(|p| p.into_inner()));
        progress(1);
    }
    if w.strided {
        let k = 5.min(cols - 1);
        let sel_a = format!("::3, ::7, {k}");
        let z = 50.min(depth - 1);
        let sel_b = format!("{z}, ::2, ::2");
        for (sel, slot) in [
            (sel_a, &mut out.strided_a_ms),
            (sel_b, &mut out.strided_b_ms),
        ] {
            let t = twice(&|a| {
                let r = a.read(sel.as_str())?;
                std::hint::black_box(&r);
                Ok(())
            })?;
            *slot = Some(scaled(t, 1e3));
            progress(1);
        }
    }
    out.memory = sampler.finish();
    // After the memory trace: the unbounded floor maps what the tiles
    // touch, up to most of the file.
    if let Some(f) = &mut out.tile_floor
        && let Some(u) = tile_floor_unbounded(
            &path,
            [depth, rows, cols],
            [TILE.min(rows), TILE.min(cols)],
            &floor_tiles,
        )?
    {
        (f.unbounded_us, f.unbounded_resident) = u;
    }
    Ok(out)
}
