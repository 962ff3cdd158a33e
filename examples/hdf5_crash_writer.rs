//! The writer side of the kill -9 experiment in `docs/hdf5.md`: writes
//! plane after plane of an lz4-compressed HDF5 dataset through a cache far
//! smaller than the data (so chunks reach the file between flushes too),
//! rewrites plane 0 every step (a counter), flushes after every plane and
//! prints `flushed Z` once the flush returned. A driver kills it with
//! SIGKILL at a random moment and checks that every flushed plane reads
//! back.
//!
//! With a third argument `vary`, plane 0 gets a varying amount of noise
//! (its first column still holds the counter), so its compressed size
//! changes at every rewrite and HDF5 has to move it: the case where freed
//! file space could be handed to another chunk before the index that
//! still points at it reaches the disk.
//!
//! `cargo run --release --features hdf5 --example hdf5_crash_writer -- FILE.h5 PLANES [vary]`

use chunkyard::{ArrayOptions, ChunkCache, Codec, s};
use ndarray::Array2;

fn main() -> chunkyard::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = format!(
        "{}:/crash/d",
        args.get(1).map_or("crash.h5", String::as_str)
    );
    let planes: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(200);
    let vary = args.get(3).is_some_and(|a| a == "vary");
    let (rows, cols) = (256u64, 256u64);
    let a = chunkyard::create::<f32>(
        &path,
        ArrayOptions::new([planes, rows, cols])
            .chunks([1, rows / 2, cols])
            .codec(Codec::Lz4)
            .cache(ChunkCache::new(1 << 20))
            .overwrite(true),
    )?;
    for z in 1..planes {
        // Values that identify the plane and compress a little.
        let plane = Array2::from_shape_fn((rows as usize, cols as usize), |(i, j)| {
            (z * 1000 + (i as u64 * 7 + j as u64) % 100) as f32
        });
        a.write(s![z as isize, .., ..], &plane)?;
        if vary {
            let noisy = (z * 37 % 128) as usize;
            let counter = Array2::from_shape_fn((rows as usize, cols as usize), |(i, j)| {
                if j == 0 || i % 128 >= noisy {
                    z as f32
                } else {
                    ((i * 7919 + j * 104729 + z as usize * 31) % 65521) as f32
                }
            });
            a.write(s![0, .., ..], &counter)?;
        } else {
            a.fill(s![0, .., ..], z as f32)?;
        }
        a.flush()?;
        println!("flushed {z}");
    }
    Ok(())
}
