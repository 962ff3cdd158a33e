//! Scans an f32 .npy file chunk by chunk with `blocks()` (read-ahead on a
//! background thread) and prints the sum and the rate:
//! `cargo run --release --example scan -- FILE.npy`.

use std::time::Instant;

fn main() -> chunkyard::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| chunkyard::Error::invalid("usage: scan FILE.npy (float32)"))?;
    let a = chunkyard::open_with::<f32>(
        &path,
        &chunkyard::OpenOptions::new()
            .read_only(true)
            .cache(chunkyard::ChunkCache::new(64 << 20)),
    )?;
    let t0 = Instant::now();
    let mut sum = 0f64;
    for block in a.blocks() {
        sum += block?.data.iter().map(|&v| v as f64).sum::<f64>();
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "sum {sum:.6} over {} bytes in {secs:.3} s: {:.2} GB/s",
        a.nbytes(),
        a.nbytes() as f64 / secs / 1e9
    );
    Ok(())
}
