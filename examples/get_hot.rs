//! Profiling aid: cached element reads in a loop (`valgrind --tool=callgrind`).
use chunkyard::{ArrayOptions, ChunkCache, s};
fn main() -> chunkyard::Result<()> {
    let dir = std::env::temp_dir().join(format!("cy-get-hot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| chunkyard::Error::io(&dir, e))?;
    let a = chunkyard::create::<f32>(
        dir.join("a.npy"),
        ArrayOptions::new([4, 1024, 1024])
            .chunks([1, 1024, 1024])
            .cache(ChunkCache::new(64 << 20)),
    )?;
    a.fill(s![1, .., ..], 2.0)?;
    let mut acc = 0f32;
    let mut i = 0u64;
    for _ in 0..200_000 {
        i = (i * 7919 + 13) % (1024 * 1024);
        acc += a.get([1, i / 1024, i % 1024])?;
    }
    println!("{acc}");
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
