//! The crash trials' array, value pattern and backends, shared by the
//! child (`main.rs`) and the checker (`tests/external/crash.rs`, which
//! includes this file). Each side uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use chunkyard::{Array, ChunkCache, OpenOptions, s};
use ndarray::Array3;

/// Array shape: 16 x 32 x 256 u64 (1 MiB), chunks 4 x 16 x 256 (128 KiB),
/// 8 chunks. Small, so that debug builds (`cargo test`) write a generation
/// of lz4-compressed Zarr or HDF5 in well under a second.
pub const SHAPE: [u64; 3] = [16, 32, 256];
pub const CHUNKS: [u64; 3] = [4, 16, 256];
/// Planes per write call: not a multiple of the chunk depth.
pub const SLAB: u64 = 3;
/// Two chunks (plus a write buffer's headroom, which the cache keeps
/// free): dirty chunks are evicted (written back) mid-generation.
pub const CHILD_CACHE: usize = 2 * 128 * 1024 + 140 * 1024;

pub fn value(generation: u64, index: u64) -> u64 {
    generation << 40 | index
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Npy,
    /// Zarr with lz4 (chunks written through zarrs).
    Zarr,
    /// Uncompressed Zarr: whole chunks renamed by the store's background
    /// thread (`DirStorage::write_deferred`).
    ZarrRaw,
    #[cfg(feature = "hdf5")]
    Hdf5,
    /// Zarr on S3 (`.ci/with-s3`'s server and bucket).
    #[cfg(feature = "s3")]
    S3,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Npy => "npy",
            Kind::Zarr => "zarr",
            Kind::ZarrRaw => "zarr-raw",
            #[cfg(feature = "hdf5")]
            Kind::Hdf5 => "hdf5",
            #[cfg(feature = "s3")]
            Kind::S3 => "s3",
        }
    }

    pub fn parse(s: &str) -> Kind {
        match s {
            "npy" => Kind::Npy,
            "zarr" => Kind::Zarr,
            "zarr-raw" => Kind::ZarrRaw,
            #[cfg(feature = "hdf5")]
            "hdf5" => Kind::Hdf5,
            #[cfg(feature = "s3")]
            "s3" => Kind::S3,
            other => panic!("unknown backend {other}"),
        }
    }

    pub fn path(self, dir: &Path) -> PathBuf {
        match self {
            Kind::Npy => dir.join("a.npy"),
            Kind::Zarr | Kind::ZarrRaw => dir.join("a.zarr"),
            #[cfg(feature = "hdf5")]
            Kind::Hdf5 => dir.join("a.h5:/crash/d"),
            // A prefix named after the (unique) temporary directory.
            #[cfg(feature = "s3")]
            Kind::S3 => PathBuf::from(format!(
                "s3://{}/crash-{}/a.zarr",
                std::env::var("CHUNKYARD_S3_BUCKET")
                    .expect("CHUNKYARD_S3_BUCKET: run under .ci/with-s3"),
                dir.file_name().unwrap().to_str().unwrap()
            )),
        }
    }

    pub fn open_opts(self, cache: ChunkCache) -> OpenOptions {
        let o = OpenOptions::new().cache(cache);
        match self {
            Kind::Npy => o.chunks(CHUNKS),
            _ => o,
        }
    }
}

/// Writes generation `g` in slabs of `SLAB` planes.
pub fn write_generation(a: &Array<u64>, g: u64) -> chunkyard::Result<()> {
    let [d, r, c] = SHAPE;
    let mut z = 0;
    while z < d {
        let z1 = (z + SLAB).min(d);
        let slab =
            Array3::from_shape_fn(((z1 - z) as usize, r as usize, c as usize), |(i, j, k)| {
                value(g, ((z + i as u64) * r + j as u64) * c + k as u64)
            });
        a.write(s![z as isize..z1 as isize, .., ..], &slab)?;
        z = z1;
    }
    Ok(())
}
