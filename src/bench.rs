//! The build workload behind `chunkyard bench`: the seed article's
//! experiment of building a depth x rows x cols `f32` volume plane by plane
//! from standard normal values, on a file far larger than the cache, while
//! sampling the process's resident memory.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ndarray::ArrayView2;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::cache::{CacheStats, ChunkCache};
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
    /// Keep the file afterwards.
    pub keep: bool,
    /// The cache the array uses.
    pub cache: ChunkCache,
    /// Seed of the value generator (same seed, same file).
    pub seed: u64,
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
    /// depth x rows x cols x 4.
    pub logical_bytes: u64,
    /// Bytes the file occupies on disk.
    pub file_bytes: u64,
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
    let a = create::<f32>(
        &path,
        ArrayOptions::new([opts.depth, opts.rows, opts.cols])
            .chunks([1, opts.rows, opts.cols])
            .cache(opts.cache.clone())
            .overwrite(true),
    )?;
    let result = std::thread::scope(|scope| -> Result<()> {
        // Two plane buffers circulate: one being filled, one being stored.
        let (full_tx, full_rx) = mpsc::sync_channel::<(u64, Vec<f32>)>(1);
        let (free_tx, free_rx) = mpsc::channel::<Vec<f32>>();
        for _ in 0..2 {
            free_tx.send(vec![0f32; plane_len]).expect("receiver alive");
        }
        let seed = opts.seed;
        let depth = opts.depth;
        scope.spawn(move || {
            for z in 0..depth {
                let Ok(mut buf) = free_rx.recv() else { return };
                fill_plane(seed, z, cols, &mut buf);
                if full_tx.send((z, buf)).is_err() {
                    return;
                }
            }
        });
        for (z, buf) in full_rx {
            let view = ArrayView2::from_shape((rows, cols), &buf).expect("plane shape");
            a.write(ndarray::s![z as isize, .., ..], &view)?;
            progress(1);
            // The generator may have stopped; then the buffer is dropped.
            let _ = free_tx.send(buf);
        }
        Ok(())
    });
    result?;
    a.flush()?;
    let elapsed = t0.elapsed();
    let cache = opts.cache.stats();
    let file_bytes = a.handle().store().stored_bytes()?;
    drop(a);
    let memory = sampler.finish();
    if !opts.keep {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| Error::io(&path, e))?;
    }
    Ok(BuildReport {
        format: format_name(format),
        path,
        elapsed,
        logical_bytes: opts.depth * opts.rows * opts.cols * 4,
        file_bytes,
        baseline,
        memory,
        cache,
    })
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

    #[test]
    fn builds_a_file_larger_than_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BuildOptions {
            depth: 12,
            rows: 64,
            cols: 128,
            dir: dir.path().to_path_buf(),
            keep: true,
            cache: ChunkCache::new(3 * 64 * 128 * 4),
            seed: 1,
        };
        let r = build(Format::Npy, &opts, &|_| ()).unwrap();
        assert_eq!(r.logical_bytes, 12 * 64 * 128 * 4);
        assert!(r.cache.evictions >= 9, "{:?}", r.cache);
        let a = crate::open::<f32>(&r.path).unwrap();
        let mut plane = vec![0f32; 64 * 128];
        fill_plane(1, 11, 128, &mut plane);
        let got = a.read("11").unwrap();
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), plane);
    }
}
