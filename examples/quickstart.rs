//! The README's library example, run by CI: build a volume plane by plane
//! in a .npy file with a small cache, read an element and a tile back, and
//! print the memory report.

use chunkyard::{ArrayOptions, ChunkCache, s};
use ndarray::Array2;

fn main() -> chunkyard::Result<()> {
    let dir = std::env::temp_dir().join(format!("chunkyard-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| chunkyard::Error::io(&dir, e))?;
    let path = dir.join("volume.npy");

    // 100 planes of 1000 x 1000 f32 (400 MB) through a 64 MiB cache.
    let opts = ArrayOptions::new([100, 1000, 1000])
        .chunks([1, 1000, 1000])
        .cache(ChunkCache::new(64 << 20));
    let a = chunkyard::create::<f32>(&path, opts)?;
    for z in 0..100 {
        let plane = Array2::from_shape_fn((1000, 1000), |(i, j)| (z * 1000 + i + j) as f32);
        a.write(s![z, .., ..], &plane)?;
    }
    a.flush()?; // durable when this returns Ok

    let x = a.get([99, 999, 999])?; // one element: a few bytes read
    let tile = a.read(s![10, 0..64, 0..64])?; // an ndarray::ArrayD<f32>
    assert_eq!(x, (99 * 1000 + 999 + 999) as f32);
    assert_eq!(tile[[63, 63]], (10 * 1000 + 126) as f32);
    println!("a[99, 999, 999] = {x}; tile shape {:?}", tile.shape());
    println!("{}", a.memory_report());

    drop(a);
    std::fs::remove_dir_all(&dir).map_err(|e| chunkyard::Error::io(&dir, e))?;
    Ok(())
}
