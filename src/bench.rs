//! The build workload behind `chunkyard bench`: the seed article's
//! experiment of building a depth x rows x cols `f32` volume plane by plane
//! from standard normal values, on a file far larger than the cache, while
//! sampling the process's resident memory.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ndarray::ArrayView2;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::buffer::Scratch;
use crate::cache::{CacheStats, ChunkCache};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::open::{ArrayOptions, Format, create};
use crate::procmem::{MemoryTrace, Rss, Sampler};

/// Rows generated per task: each task has its own seeded generator, so the
/// values depend only on (seed, plane, task), not on thread scheduling.
const ROWS_PER_TASK: usize = 64;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Planes (axis 0).
    pub depth: u64,
    /// Rows per plane.
    pub rows: u64,
    /// Columns per plane.
    pub cols: u64,
    /// Folder the file goes in.
    pub dir: PathBuf,
    /// The cache the array uses.
    pub cache: ChunkCache,
    /// Seed of the value generator (same seed, same file).
    pub seed: u64,
    /// Chunk compression (Zarr and HDF5; `.npy` files refuse any but
    /// [`Codec::None`]).
    pub codec: Codec,
}

/// What one build measured.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Format name (`npy`).
    pub format: &'static str,
    /// The file built.
    pub path: PathBuf,
    /// Wall time from create to the end of the final flush.
    pub elapsed: Duration,
    /// Time the storing thread spent inside `write` and the final `flush`
    /// (the rest of `elapsed` it waited for the generator). The generator
    /// runs at the same time on the other cores, so on a busy machine this
    /// includes time lost to it.
    pub storing: Duration,
    /// Time the storing thread waited for the generator's next plane.
    pub waiting: Duration,
    /// depth x rows x cols x 4.
    pub logical_bytes: u64,
    /// Bytes the file occupies on disk.
    pub file_bytes: u64,
    /// The chunk compression it was built with.
    pub codec: Codec,
    /// Resident memory before the build started.
    pub baseline: Rss,
    /// Resident memory sampled during the build.
    pub memory: MemoryTrace,
    /// Cache counters at the end.
    pub cache: CacheStats,
}

/// Fills one plane with standard normal values, in parallel over row
/// blocks, each block from its own generator seeded by (seed, plane,
/// block).
pub fn fill_plane(seed: u64, plane: u64, cols: usize, out: &mut [f32]) {
    out.par_chunks_mut(ROWS_PER_TASK * cols.max(1))
        .enumerate()
        .for_each(|(task, rows)| {
            let s = seed
                ^ plane.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ (task as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let mut rng = SmallRng::seed_from_u64(s);
            for v in rows {
                *v = StandardNormal.sample(&mut rng);
            }
        });
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Npy => "npy",
        Format::Zarr => "zarr",
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => "h5",
    }
}

/// The file a build of `format` writes in `dir`.
pub fn bench_path(dir: &Path, format: Format) -> PathBuf {
    dir.join(format!(
        "chunkyard-bench-{}.{}",
        std::process::id(),
        format_name(format)
    ))
}

/// Builds the volume in `format`, one plane at a time: a generator thread
/// fills the next plane (on rayon's pool) while this thread stores the
/// previous one. `progress` is called once per stored plane.
pub fn build(format: Format, opts: &BuildOptions, progress: &dyn Fn(u64)) -> Result<BuildReport> {
    let (rows, cols) = (opts.rows as usize, opts.cols as usize);
    let plane_len = rows
        .checked_mul(cols)
        .filter(|&n| n <= (1 << 28))
        .ok_or_else(|| Error::invalid("a plane of more than 2^28 elements is too large"))?;
    let path = bench_path(&opts.dir, format);
    let baseline = Rss::now().unwrap_or_default();
    let sampler = Sampler::start(Duration::from_millis(10));
    let t0 = Instant::now();
    let (mut storing, mut waiting) = (Duration::ZERO, Duration::ZERO);
    let a = create::<f32>(
        &path,
        ArrayOptions::new([opts.depth, opts.rows, opts.cols])
            .chunks([1, opts.rows, opts.cols])
            .codec(opts.codec)
            .cache(opts.cache.clone())
            .overwrite(true),
    )?;
    let result = std::thread::scope(|scope| -> Result<()> {
        // Two plane buffers circulate: one being filled, one being stored.
        // They are maps (`Scratch`), unmapped when the build ends: freed
        // 16 MB `Vec`s would stay in glibc's heap through the reads after.
        let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Scratch<f32>)>(1);
        let (free_tx, free_rx) = mpsc::channel::<Scratch<f32>>();
        for _ in 0..2 {
            let mut b = Scratch::default();
            b.reset(plane_len);
            free_tx.send(b).expect("receiver alive");
        }
        let seed = opts.seed;
        let depth = opts.depth;
        scope.spawn(move || {
            for z in 0..depth {
                let Ok(mut buf) = free_rx.recv() else { return };
                fill_plane(seed, z, cols, buf.reset(plane_len));
                if full_tx.send((z, buf)).is_err() {
                    return;
                }
            }
        });
        loop {
            let t = Instant::now();
            let Ok((z, mut buf)) = full_rx.recv() else {
                break;
            };
            let t_got = Instant::now();
            waiting += t_got - t;
            let plane: &[f32] = buf.reset(plane_len);
            let view = ArrayView2::from_shape((rows, cols), plane).expect("plane shape");
            a.write(ndarray::s![z as isize, .., ..], &view)?;
            storing += t_got.elapsed();
            progress(1);
            // The generator may have stopped; then the buffer is dropped.
            let _ = free_tx.send(buf);
        }
        Ok(())
    });
    result?;
    let t_flush = Instant::now();
    a.flush()?;
    storing += t_flush.elapsed();
    let elapsed = t0.elapsed();
    let cache = opts.cache.stats();
    let file_bytes = a.handle().store().stored_bytes()?;
    drop(a);
    let memory = sampler.finish();
    Ok(BuildReport {
        format: format_name(format),
        path,
        elapsed,
        storing,
        waiting,
        logical_bytes: opts.depth * opts.rows * opts.cols * 4,
        file_bytes,
        codec: opts.codec,
        baseline,
        memory,
        cache,
    })
}

/// What the generator alone measured: the floor under every build.
#[derive(Debug, Clone)]
pub struct GeneratorReport {
    /// Wall time to generate every plane, stored nowhere.
    pub elapsed: Duration,
    /// Resident memory sampled meanwhile.
    pub memory: MemoryTrace,
}

/// Generates every plane of the build exactly as [`build`] does (same
/// generator, same rayon pool, one plane buffer at a time) and stores
/// nothing: the time no build can beat on this machine.
pub fn generate_only(opts: &BuildOptions, progress: &dyn Fn(u64)) -> Result<GeneratorReport> {
    let (rows, cols) = (opts.rows as usize, opts.cols as usize);
    let plane_len = rows
        .checked_mul(cols)
        .filter(|&n| n <= (1 << 28))
        .ok_or_else(|| Error::invalid("a plane of more than 2^28 elements is too large"))?;
    let sampler = Sampler::start(Duration::from_millis(10));
    let t0 = Instant::now();
    let mut scratch = Scratch::<f32>::default();
    let buf = scratch.reset(plane_len);
    for z in 0..opts.depth {
        fill_plane(opts.seed, z, cols, buf);
        std::hint::black_box(&buf);
        progress(1);
    }
    let elapsed = t0.elapsed();
    drop(scratch);
    Ok(GeneratorReport {
        elapsed,
        memory: sampler.finish(),
    })
}

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

/// µs per random tile copied row by row out of maps of the file's data,
/// page cache warm, with no chunkyard code in the way: the floor under
/// [`ReadReport::tile_us`]. Measured for `.npy` files (one map of the
/// file) and for Zarr arrays whose chunks are whole planes stored raw
/// (one map per chunk file, as chunkyard's Zarr store keeps them).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TileFloor {
    /// The maps' pages released (`MADV_DONTNEED`) whenever the reads may
    /// have made 32 MiB resident, by the estimate chunkyard's own maps use:
    /// the resident bound chunkyard keeps. Each tile then faults its rows'
    /// pages into the process again.
    pub bounded_us: f64,
    /// Never released, and the same tiles read a second time: every page
    /// they touch is mapped already, as in a `numpy.memmap` that has
    /// touched them before, at the price of `unbounded_resident` bytes.
    pub unbounded_us: f64,
    /// File-backed resident bytes after the unbounded pass.
    pub unbounded_resident: u64,
}

/// [`TileFloor::bounded_us`] on a float32 `[depth, rows, cols]` volume
/// the bench built (`path`: an `.npy` file, or a Zarr array of raw
/// `(1, rows, cols)` chunks), page cache warm: `tiles` (corners) of `tr`
/// x `tc` elements, on fresh maps released as chunkyard's are. `None`
/// for a file whose planes are not stored raw (a compressed Zarr array,
/// HDF5).
pub fn tile_floor_bounded(
    path: &Path,
    dims: [u64; 3],
    tile: [u64; 2],
    tiles: &[[u64; 3]],
) -> Result<Option<f64>> {
    let Some(planes) = PlaneMaps::open(path, dims)? else {
        return Ok(None);
    };
    Ok(Some(floor_passes(&planes, dims, tile, tiles, true, 1).0))
}

/// [`TileFloor::unbounded_us`] and [`TileFloor::unbounded_resident`], as
/// [`tile_floor_bounded`]: the tiles read twice on maps never released,
/// the second pass timed.
pub fn tile_floor_unbounded(
    path: &Path,
    dims: [u64; 3],
    tile: [u64; 2],
    tiles: &[[u64; 3]],
) -> Result<Option<(f64, u64)>> {
    let Some(planes) = PlaneMaps::open(path, dims)? else {
        return Ok(None);
    };
    Ok(Some(floor_passes(&planes, dims, tile, tiles, false, 2)))
}

/// Read-only maps of a volume's planes for the tile floor: where plane `z`
/// starts (a map and a byte offset in it).
struct PlaneMaps {
    maps: Vec<memmap2::Mmap>,
    /// Per plane: (index into `maps`, byte offset).
    planes: Vec<(usize, usize)>,
}

impl PlaneMaps {
    fn open(path: &Path, [depth, rows, cols]: [u64; 3]) -> Result<Option<PlaneMaps>> {
        use crate::store::filemap::map_file;
        let plane_bytes = (rows * cols) as usize * std::mem::size_of::<f32>();
        let map = |p: &Path| -> Result<memmap2::Mmap> {
            let file = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
            map_file(&file).map_err(|e| Error::io(p, e))
        };
        match Format::from_path(path)? {
            Format::Npy => {
                let m = map(path)?;
                let Some(data) = m.len().checked_sub(depth as usize * plane_bytes) else {
                    return Err(Error::format(path, "shorter than its data"));
                };
                let planes = (0..depth as usize)
                    .map(|z| (0, data + z * plane_bytes))
                    .collect();
                Ok(Some(PlaneMaps {
                    maps: vec![m],
                    planes,
                }))
            }
            Format::Zarr => {
                let store = crate::store::zarr::ZarrStore::open(path, false)?;
                let meta = crate::store::ChunkStore::meta(&store);
                if meta.shape != [depth, rows, cols] {
                    return Err(Error::format(path, "not the shape asked for"));
                }
                if meta.chunks != [1, rows, cols] {
                    return Ok(None);
                }
                let mut maps = Vec::with_capacity(depth as usize);
                for z in 0..depth {
                    let p = store.chunk_path(&[z, 0, 0]);
                    let m = map(&p)?;
                    // A compressed chunk is not a plane of raw floats.
                    if m.len() != plane_bytes {
                        return Ok(None);
                    }
                    maps.push(m);
                }
                let planes = (0..maps.len()).map(|z| (z, 0)).collect();
                Ok(Some(PlaneMaps { maps, planes }))
            }
            #[cfg(feature = "hdf5")]
            Format::Hdf5 => Ok(None),
        }
    }
}

/// `passes` passes over `tiles` on the maps, releasing the maps read
/// since the last release as chunkyard's are (one [`filemap::Touched`]
/// for them all, as a Zarr store keeps) if `release`: µs per tile in the
/// last pass, and file-backed resident bytes after it.
///
/// [`filemap::Touched`]: crate::store::filemap::Touched
fn floor_passes(
    maps: &PlaneMaps,
    [_, _, cols]: [u64; 3],
    [tr, tc]: [u64; 2],
    tiles: &[[u64; 3]],
    release: bool,
    passes: usize,
) -> (f64, u64) {
    use crate::store::filemap;
    let elem = std::mem::size_of::<f32>();
    let (row_stride, row_bytes) = (cols as usize * elem, tc as usize * elem);
    let span = (tr as usize - 1) * row_stride + row_bytes;
    let mut out = vec![0u8; tr as usize * row_bytes];
    let mut used = vec![false; maps.maps.len()];
    let mut us = 0.0;
    for _ in 0..passes {
        let touched = filemap::Touched::default();
        let t = Instant::now();
        for &[z, r, c] in tiles {
            let (m, at) = maps.planes[z as usize];
            copy_tile(&maps.maps[m][at..], cols, tc, [r, c], &mut out);
            used[m] = true;
            if release && touched.note(filemap::touched_estimate(tr, row_bytes, span)) {
                for (m, used) in maps.maps.iter().zip(&mut used) {
                    if std::mem::take(used) {
                        let _ = filemap::release_pages(m);
                    }
                }
            }
        }
        std::hint::black_box(&out);
        us = t.elapsed().as_secs_f64() * 1e6 / tiles.len().max(1) as f64;
    }
    let resident = crate::procmem::Rss::now().map_or(0, |r| r.file);
    (us, resident)
}

/// Copies the tile of rows `out.len() / (tc * 4)` and `tc` columns at
/// `[r, c]` out of `plane`, a C-order float32 plane `cols` wide, row by
/// row: the floor's copy.
fn copy_tile(plane: &[u8], cols: u64, tc: u64, [r, c]: [u64; 2], out: &mut [u8]) {
    let elem = std::mem::size_of::<f32>();
    let (row_stride, row_bytes) = (cols as usize * elem, tc as usize * elem);
    let first = (r * cols + c) as usize * elem;
    for (i, dst) in out.chunks_exact_mut(row_bytes).enumerate() {
        let at = first + i * row_stride;
        dst.copy_from_slice(&plane[at..at + row_bytes]);
    }
}

/// Drops every file under `path` (a file or a directory) from the OS page
/// cache with `posix_fadvise(DONTNEED)`; no privileges needed. The files
/// must be clean (flushed), which they are after a build. Returns false
/// where the platform cannot.
pub fn drop_page_cache(path: &Path) -> Result<bool> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        for p in files_under(path)? {
            let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
                .map_err(|e| Error::io(&p, e.into()))?;
        }
        Ok(true)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = path;
        Ok(false)
    }
}

/// Reads every file under `path` once, so that the OS page cache holds
/// all of it: what "warm" means in the read workloads (and in
/// `../shared/ANCHORS.md`, where the file was read right after it was
/// written). Reading through 8 MiB at a time keeps this process's memory
/// flat; the pages read are the kernel's, not ours.
pub fn warm_page_cache(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut scratch = Scratch::<u8>::default();
    let buf = scratch.reset(8 << 20);
    for p in files_under(path)? {
        let mut f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        while f.read(buf).map_err(|e| Error::io(&p, e))? > 0 {}
    }
    Ok(())
}

/// `path` if it is a file, or every file below it if it is a directory
/// (a Zarr array).
fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(|e| Error::io(&p, e))? {
                stack.push(e.map_err(|e| Error::io(&p, e))?.path());
            }
        } else if meta.is_file() {
            files.push(p);
        }
    }
    Ok(files)
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
    let budget = opts.cache.budget();
    let open = || -> Result<crate::Array<f32>> {
        crate::open::open_with::<f32>(
            &path,
            &crate::open::OpenOptions::new()
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
    let twice = |pass: &dyn Fn(&crate::Array<f32>) -> Result<()>| -> Result<(f64, Option<f64>)> {
        let cold = if drop_page_cache(&path)? {
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
        drop_page_cache(&path)?;
        warm_page_cache(&path)?;
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
        // elements of that plane.
        let a = open()?;
        let z = depth / 2;
        a.read_into(
            ndarray::s![z as isize, .., ..],
            Scratch::default().reset((rows * cols) as usize),
        )?;
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
        // Others for the floor: the same tiles again would find their
        // 32 MB in the CPU's last-level cache (105 MiB on this machine).
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
        out.tile_floor = tile_floor_bounded(&path, [depth, rows, cols], [tr, tc], &floor_tiles)?
            .map(|bounded_us| TileFloor {
                bounded_us,
                ..TileFloor::default()
            });
        progress(1);
    }
    if w.scan {
        let sum = std::sync::Mutex::new(0f64);
        let t = twice(&|a| {
            let h = a.handle();
            let sel = h.resolve("...")?;
            let r = crate::reduce::reduce(h, &sel, crate::reduce::Reduction::Sum, &|_| ())?;
            *sum.lock().unwrap_or_else(|p| p.into_inner()) = match r {
                crate::reduce::Scalar::Float(v) => v,
                crate::reduce::Scalar::Int(v) => v as f64,
                crate::reduce::Scalar::Bool(v) => f64::from(u8::from(v)),
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

/// Deletes a file or directory [`build`] wrote.
pub fn remove_built(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_are_reproducible_and_normal() {
        let mut a = vec![0f32; 300 * 100];
        let mut b = vec![0f32; 300 * 100];
        fill_plane(7, 3, 100, &mut a);
        fill_plane(7, 3, 100, &mut b);
        assert_eq!(a, b, "same seed, same plane");
        fill_plane(7, 4, 100, &mut b);
        assert_ne!(a, b, "planes differ");
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    /// Builds a small volume in `dir`.
    fn small_build(
        format: Format,
        dir: &Path,
        [depth, rows, cols]: [u64; 3],
        cache: usize,
        seed: u64,
        codec: Codec,
    ) -> BuildReport {
        let opts = BuildOptions {
            depth,
            rows,
            cols,
            dir: dir.to_path_buf(),
            cache: ChunkCache::new(cache),
            seed,
            codec,
        };
        build(format, &opts, &|_| ()).unwrap()
    }

    fn small_npy(dir: &Path, dims: [u64; 3], cache: usize, seed: u64) -> BuildReport {
        small_build(Format::Npy, dir, dims, cache, seed, Codec::None)
    }

    #[test]
    fn tile_floor_copies_the_tiles_chunkyard_reads() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [3, 96, 80];
        let tiles = [[0, 0, 0], [2, 96 - 64, 80 - 64], [1, 5, 7]];
        for format in [Format::Npy, Format::Zarr] {
            let r = small_build(format, dir.path(), dims, 1 << 20, 2, Codec::None);
            let planes = PlaneMaps::open(&r.path, dims).unwrap().unwrap();
            let a = crate::open::<f32>(&r.path).unwrap();
            for [z, y, x] in tiles {
                let mut got = vec![0u8; 64 * 64 * 4];
                let (m, at) = planes.planes[z as usize];
                copy_tile(&planes.maps[m][at..], 80, 64, [y, x], &mut got);
                let (z, y, x) = (z as isize, y as isize, x as isize);
                let want = a.read(ndarray::s![z, y..y + 64, x..x + 64]).unwrap();
                let want: Vec<u8> = want.iter().flat_map(|v| v.to_ne_bytes()).collect();
                assert_eq!(got, want, "{format:?} tile at {z}, {y}, {x}");
            }
            let bounded = tile_floor_bounded(&r.path, dims, [64, 64], &tiles)
                .unwrap()
                .unwrap();
            let (unbounded, resident) = tile_floor_unbounded(&r.path, dims, [64, 64], &tiles)
                .unwrap()
                .unwrap();
            assert!(bounded > 0.0 && unbounded > 0.0 && resident > 0);
            // A volume other than the one asked for is an error.
            let err = tile_floor_bounded(&r.path, [4, 96, 80], [64, 64], &tiles).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "{err}");
        }
        // Compressed chunks are not planes of floats: no floor.
        let r = small_build(Format::Zarr, dir.path(), dims, 1 << 20, 3, Codec::Lz4);
        assert_eq!(
            tile_floor_bounded(&r.path, dims, [64, 64], &tiles).unwrap(),
            None
        );
    }

    #[test]
    fn builds_a_file_larger_than_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let r = small_npy(dir.path(), [12, 64, 128], 3 * 64 * 128 * 4, 1);
        assert_eq!(r.logical_bytes, 12 * 64 * 128 * 4);
        assert!(r.cache.evictions >= 9, "{:?}", r.cache);
        let a = crate::open::<f32>(&r.path).unwrap();
        let mut plane = vec![0f32; 64 * 128];
        fill_plane(1, 11, 128, &mut plane);
        let got = a.read("11").unwrap();
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), plane);
    }
}
