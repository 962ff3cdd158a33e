//! Criterion benches of the core paths on a .npy file: a cached element,
//! an uncached element (partial read through the map), a 64x64 tile, and
//! writing + flushing whole chunks.

use std::hint::black_box;

use chunkyard::{ArrayOptions, ChunkCache, OpenOptions, s};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ndarray::Array2;

const Z: u64 = 16;
const N: u64 = 1024;

fn setup(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bench.npy");
    let a = chunkyard::create::<f32>(
        &path,
        ArrayOptions::new([Z, N, N])
            .chunks([1, N, N])
            .cache(ChunkCache::new(64 << 20)),
    )
    .unwrap();
    for z in 0..Z {
        let plane = Array2::from_shape_fn((N as usize, N as usize), |(i, j)| (i ^ j) as f32);
        a.write(s![z as isize, .., ..], &plane).unwrap();
    }
    a.flush().unwrap();
    path
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = setup(dir.path());
    let mut g = c.benchmark_group("read");

    let cached =
        chunkyard::open_with::<f32>(&path, &OpenOptions::new().cache(ChunkCache::new(256 << 20)))
            .unwrap();
    cached.read("3").unwrap(); // loads plane 3 into the cache
    let mut i = 0u64;
    g.bench_function("get cached element", |b| {
        b.iter(|| {
            i = (i * 7919 + 13) % (N * N);
            black_box(cached.get([3, i / N, i % N]).unwrap())
        })
    });

    let uncached =
        chunkyard::open_with::<f32>(&path, &OpenOptions::new().cache(ChunkCache::new(1 << 20)))
            .unwrap();
    g.bench_function("get uncached element", |b| {
        b.iter(|| {
            i = (i * 7919 + 13) % (Z * N * N);
            black_box(uncached.get([i / (N * N), (i / N) % N, i % N]).unwrap())
        })
    });

    g.throughput(Throughput::Bytes(64 * 64 * 4));
    g.bench_function("64x64 tile, uncached", |b| {
        b.iter(|| {
            i = (i * 7919 + 13) % (Z * (N - 64) * (N - 64));
            let (z, r, c) = (i % Z, (i / Z) % (N - 64), (i / Z / (N - 64)) % (N - 64));
            let sel = s![
                z as isize,
                r as isize..(r + 64) as isize,
                c as isize..(c + 64) as isize
            ];
            black_box(uncached.read(sel).unwrap())
        })
    });
    g.finish();
}

fn writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.npy");
    let a = chunkyard::create::<f32>(
        &path,
        ArrayOptions::new([Z, N, N])
            .chunks([1, N, N])
            .cache(ChunkCache::new(256 << 20)),
    )
    .unwrap();
    let plane = Array2::from_elem((N as usize, N as usize), 1.5f32);
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Bytes(Z * N * N * 4));
    g.sample_size(10);
    g.bench_function("16 planes + flush", |b| {
        b.iter(|| {
            for z in 0..Z {
                a.write(s![z as isize, .., ..], &plane).unwrap();
            }
            a.flush().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, reads, writes);
criterion_main!(benches);
