//! Profiling aid: the bench's `a[z, ::2, ::2]` on an existing raw Zarr
//! array or `.npy` file of float32 planes (`chunkyard bench --formats
//! zarr,npy --keep` writes them), beside the same strided copy out of a
//! fresh `memmap2` map of the plane's chunk file (or of the `.npy` file)
//! with no chunkyard code: the floor under the
//! read in the page-cache state the bench's warm passes leave (the files'
//! pages dropped, then read once sequentially).
//!
//! `target/release/examples/strided_floor DIR.zarr|FILE.npy [PASSES]`; with
//! `FLOOR_KERNEL=1` the floor copies with chunkyard's own copy kernel
//! (`layout::copy_region`) instead of a plain loop, which tells the
//! kernel's cost from the rest of the read.
use std::path::Path;
use std::time::Instant;

use chunkyard::{ChunkCache, OpenOptions, s};

// The bench's page-cache handling, from the binary's sources.
#[path = "../src/bin/chunkyard/bench/pagecache.rs"]
mod pagecache;

fn main() -> chunkyard::Result<()> {
    let dir = std::env::args().nth(1).ok_or_else(|| {
        chunkyard::Error::invalid("usage: strided_floor DIR.zarr|FILE.npy [PASSES]")
    })?;
    let passes: u64 = std::env::args()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(6);
    let open = || {
        chunkyard::open_with::<f32>(
            &dir,
            &OpenOptions::new()
                .read_only(true)
                .cache(ChunkCache::new(256 << 20)),
        )
    };
    let shape = open()?.shape();
    let (d, r, c) = (shape[0], shape[1] as usize, shape[2] as usize);
    if d < 2 * passes + 1 {
        return Err(chunkyard::Error::invalid("too few planes for the passes"));
    }
    pagecache::drop_page_cache(Path::new(&dir))?;
    pagecache::warm_page_cache(Path::new(&dir))?;
    let (rr, cc) = (r.div_ceil(2), c.div_ceil(2));
    let mut out = vec![0f32; rr * cc];
    for pass in 0..passes {
        // Other planes for each reader, so that neither finds the other's
        // bytes in the CPU's caches; the order alternates.
        let (za, zb) = (2 * pass + 1, 2 * pass + 2);
        let (zc, zf) = if pass % 2 == 0 { (za, zb) } else { (zb, za) };
        let time_chunkyard = |out: &mut [f32]| -> chunkyard::Result<f64> {
            let a = open()?;
            let t = Instant::now();
            a.read_into(s![zc as isize, ..;2, ..;2], out)?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        };
        let time_floor = |out: &mut [f32]| -> chunkyard::Result<f64> {
            // A `.npy` file: the plane at its offset past the header; a
            // Zarr array: the plane's chunk file.
            let (path, base) = if dir.ends_with(".npy") {
                let path = Path::new(&dir).to_path_buf();
                let mut head = [0u8; 12];
                std::io::Read::read_exact(
                    &mut std::fs::File::open(&path).map_err(|e| chunkyard::Error::io(&path, e))?,
                    &mut head,
                )
                .map_err(|e| chunkyard::Error::io(&path, e))?;
                let data = match head[6] {
                    1 => 10 + u16::from_le_bytes([head[8], head[9]]) as usize,
                    _ => 12 + u32::from_le_bytes(head[8..12].try_into().expect("4")) as usize,
                };
                (path, data + zf as usize * r * c * 4)
            } else {
                (Path::new(&dir).join(format!("c/{zf}/0/0")), 0)
            };
            let file = std::fs::File::open(&path).map_err(|e| chunkyard::Error::io(&path, e))?;
            let t = Instant::now();
            // SAFETY: the file is only read, by this loop, and nothing
            // writes it while the example runs.
            #[allow(unsafe_code)]
            let whole =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| chunkyard::Error::io(&path, e))?;
            let map = &whole[base..];
            if std::env::var_os("FLOOR_KERNEL").is_some() {
                // chunkyard's copy kernel on the same map.
                let counts = [rr, cc];
                let (ss, ds) = ([2 * c, 2], [cc, 1]);
                chunkyard::internals::copy_region(
                    &counts,
                    4,
                    map,
                    chunkyard::store::Strided {
                        offset: 0,
                        strides: &ss,
                    },
                    bytemuck::cast_slice_mut(out),
                    chunkyard::store::Strided {
                        offset: 0,
                        strides: &ds,
                    },
                );
            } else {
                for (i, row) in (0..r).step_by(2).enumerate() {
                    let src = &map[row * c * 4..(row + 1) * c * 4];
                    for (j, o) in out[i * cc..(i + 1) * cc].iter_mut().enumerate() {
                        let at = 8 * j;
                        *o = f32::from_ne_bytes(src[at..at + 4].try_into().expect("4 bytes"));
                    }
                }
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            drop(whole);
            Ok(ms)
        };
        let (cy, floor) = if pass % 2 == 0 {
            let cy = time_chunkyard(&mut out)?;
            (cy, time_floor(&mut out)?)
        } else {
            let f = time_floor(&mut out)?;
            (time_chunkyard(&mut out)?, f)
        };
        std::hint::black_box(&out);
        println!(
            "pass {pass}: chunkyard {cy:.2} ms (plane {zc}), memmap2 floor {floor:.2} ms (plane {zf}), ratio {:.2}",
            cy / floor
        );
    }
    Ok(())
}
