//! The build workload behind `chunkyard bench`: the seed article's
//! experiment of building a depth x rows x cols `f32` volume plane by plane
//! from standard normal values, on a file far larger than the cache, while
//! sampling the process's resident memory.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chunkyard::Scratch;
use chunkyard::{CacheStats, ChunkCache, Codec, Error, Format, Result, create};
use ndarray::ArrayView2;

use super::plane::fill_plane;
use crate::procmem::{MemoryTrace, Rss, Sampler};

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

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Npy => "npy",
        Format::Zarr => "zarr",
        #[cfg(feature = "hdf5")]
        Format::Hdf5 => "h5",
        _ => unreachable!("the bench builds npy, zarr and hdf5 only"),
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
        crate::args::array_options([opts.depth, opts.rows, opts.cols])
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

/// Deletes a file or directory [`build`] wrote (or, in object storage,
/// every object of the array).
pub fn remove_built(path: &Path) -> Result<()> {
    #[cfg(feature = "s3")]
    if crate::args::is_object_url(path) {
        let store = chunkyard::store::ZarrStore::open_with(path, true, &crate::args::s3_options())?;
        return store.remove();
    }
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io(path, e))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a small volume in `dir`.
    pub(crate) fn small_build(
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
    fn builds_a_file_larger_than_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let r = small_npy(dir.path(), [12, 64, 128], 3 * 64 * 128 * 4, 1);
        assert_eq!(r.logical_bytes, 12 * 64 * 128 * 4);
        assert!(r.cache.evictions >= 9, "{:?}", r.cache);
        let a = chunkyard::open::<f32>(&r.path).unwrap();
        let mut plane = vec![0f32; 64 * 128];
        fill_plane(1, 11, 128, &mut plane);
        let got = a.read("11").unwrap();
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), plane);
    }
}
