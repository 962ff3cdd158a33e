//! Criterion benches of bulk I/O: flush throughput with 1 and 2 threads,
//! LZ4 encode/decode, and chunkyard's overhead over calling the libraries
//! it wraps directly (`memmap2`/`pread` for .npy, `zarrs`, `hdf5-metno`
//! behind the `hdf5` feature) for the same whole-plane reads and writes.
//!
//! `cargo bench --bench io` (add `--features hdf5` for the HDF5 pair). Each
//! pair reads or writes the same planes of the same file; the ratio of the
//! two medians is chunkyard's overhead (docs/benchmarks.md has a run).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use chunkyard::{ArrayOptions, ChunkCache, Codec, OpenOptions, s};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::ArrayView2;

// The bench's value generator, from the binary's sources.
#[path = "../src/bin/chunkyard/bench/plane.rs"]
mod plane;

/// Planes per file and plane edge: 16 x 1024 x 1024 f32 = 64 MiB, one
/// 4 MiB chunk per plane.
const Z: u64 = 16;
const N: u64 = 1024;
const PLANE: usize = (N * N) as usize;

fn normal_planes() -> Vec<Vec<f32>> {
    (0..Z)
        .map(|z| {
            let mut p = vec![0f32; PLANE];
            plane::fill_plane(7, z, N as usize, &mut p);
            p
        })
        .collect()
}

fn create(path: &Path, codec: Codec, cache: usize) -> chunkyard::Array<f32> {
    chunkyard::create::<f32>(
        path,
        ArrayOptions::new([Z, N, N])
            .chunks([1, N, N])
            .codec(codec)
            .cache(ChunkCache::new(cache))
            .overwrite(true),
    )
    .unwrap()
}

fn write_planes(a: &chunkyard::Array<f32>, planes: &[Vec<f32>]) {
    for (z, p) in planes.iter().enumerate() {
        let v = ArrayView2::from_shape((N as usize, N as usize), p).unwrap();
        a.write(s![z as isize, .., ..], &v).unwrap();
    }
}

/// Writes every plane as two halves of rows, so that each chunk goes
/// through the cache and is dirty there until the flush.
fn write_half_planes(a: &chunkyard::Array<f32>, planes: &[Vec<f32>]) {
    let h = N as usize / 2;
    for (z, p) in planes.iter().enumerate() {
        let v = ArrayView2::from_shape((N as usize, N as usize), p).unwrap();
        let z = z as isize;
        a.write(s![z, ..h as isize, ..], &v.slice(s![..h, ..]))
            .unwrap();
        a.write(s![z, h as isize.., ..], &v.slice(s![h.., ..]))
            .unwrap();
    }
}

/// Flush of 16 dirty 4 MiB chunks (64 MiB) from the cache, on a rayon pool
/// of 1 and of 2 threads: npy (pwrite + fdatasync) and Zarr with LZ4
/// (encode + atomic file writes + fsync).
fn flush(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let planes = normal_planes();
    let mut g = c.benchmark_group("flush 64 MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(Z * N * N * 4));
    for (name, file, codec) in [
        ("npy", "f.npy", Codec::None),
        ("zarr", "f.zarr", Codec::None),
        ("zarr lz4", "l.zarr", Codec::Lz4),
    ] {
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let a = create(&dir.path().join(file), codec, 256 << 20);
            g.bench_function(BenchmarkId::new(name, format!("{threads} threads")), |b| {
                b.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        // Half planes: whole ones would go straight to the
                        // store (write-through), leaving the flush nothing.
                        write_half_planes(&a, &planes);
                        let t = std::time::Instant::now();
                        pool.install(|| a.flush().unwrap());
                        total += t.elapsed();
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

/// numcodecs-framed LZ4 (what `numcodecs.lz4` Zarr chunks hold; the LZ4
/// blocks inside the Blosc frames of `--codec lz4` are the same codec) of one
/// 4 MiB plane of standard normal f32 values.
fn lz4(c: &mut Criterion) {
    use chunkyard::internals::lz4::{decode, encode};
    let plane = &normal_planes()[0];
    let bytes: &[u8] = bytemuck::cast_slice(plane);
    let encoded = encode(bytes).unwrap();
    eprintln!(
        "lz4 on normal f32: {} -> {} bytes (ratio {:.3})",
        bytes.len(),
        encoded.len(),
        bytes.len() as f64 / encoded.len() as f64
    );
    let mut g = c.benchmark_group("lz4 4 MiB normal f32");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(encode(bytes).unwrap())));
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode(&encoded, Some(bytes.len() as u64)).unwrap()))
    });
    g.finish();
}

/// The Blosc frames of `--codec lz4` Zarr chunks (byte shuffle, type
/// size 4, splits, LZ4 inside) of the same plane: what the shuffle adds to
/// LZ4 (compare with the `lz4` group).
fn blosc(c: &mut Criterion) {
    use chunkyard::internals::blosc::{Compressor, Shuffle, decode_into, encode};
    let plane = &normal_planes()[0];
    let bytes: &[u8] = bytemuck::cast_slice(plane);
    let enc = |b: &[u8]| encode(b, 4, Shuffle::Byte, Compressor::Lz4, 5, 0).unwrap();
    let encoded = enc(bytes);
    eprintln!(
        "blosc-lz4 (shuffle) on normal f32: {} -> {} bytes (ratio {:.3})",
        bytes.len(),
        encoded.len(),
        bytes.len() as f64 / encoded.len() as f64
    );
    let mut out = vec![0u8; bytes.len()];
    let mut g = c.benchmark_group("blosc-lz4 4 MiB normal f32");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(enc(bytes))));
    g.bench_function("decode", |b| {
        b.iter(|| decode_into(black_box(&encoded), &mut out).unwrap())
    });
    g.finish();
}

/// Whole-plane reads, page cache warm, nothing in chunkyard's cache (a
/// 1 MiB budget: each plane read loads and drops its chunk, as a scan
/// does), against the library underneath doing the same read.
fn overhead(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let planes = normal_planes();
    let mut g = c.benchmark_group("read plane, chunkyard vs direct");
    g.throughput(Throughput::Bytes(N * N * 4));
    let mut out = vec![0f32; PLANE];
    let mut z = 0u64;
    let mut next = || {
        z = (z + 5) % Z;
        z
    };

    // .npy: chunkyard vs a memmap2 map copied into the same buffer.
    let npy = dir.path().join("o.npy");
    let a = create(&npy, Codec::None, 256 << 20);
    write_planes(&a, &planes);
    a.flush().unwrap();
    drop(a);
    let a = chunkyard::open_with::<f32>(&npy, &OpenOptions::new().cache(ChunkCache::new(1 << 20)))
        .unwrap();
    g.bench_function("npy chunkyard", |b| {
        b.iter(|| {
            let z = next();
            a.read_into(s![z as isize, .., ..], &mut out).unwrap();
            black_box(&out);
        })
    });
    // The bulk-read API scans use (reduce, convert, blocks): a chunk not in
    // the cache goes straight from the store into the caller's buffer.
    let h = a.handle().clone();
    let plane_sels: Vec<_> = (0..Z)
        .map(|z| h.resolve(s![z as isize, .., ..]).unwrap())
        .collect();
    g.bench_function("npy chunkyard streaming", |b| {
        b.iter(|| {
            let z = next() as usize;
            h.read_bytes_streaming(&plane_sels[z], bytemuck::cast_slice_mut(&mut out))
                .unwrap();
            black_box(&out);
        })
    });
    let file = std::fs::File::open(&npy).unwrap();
    // SAFETY: the file is not modified while mapped (this process wrote
    // and closed it above; nothing else knows the temporary path).
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let header = map.len() - PLANE * 4 * Z as usize;
    g.bench_function("npy memmap2 copy", |b| {
        b.iter(|| {
            let z = next() as usize;
            let at = header + z * PLANE * 4;
            bytemuck::cast_slice_mut::<f32, u8>(&mut out).copy_from_slice(&map[at..at + PLANE * 4]);
            black_box(&out);
        })
    });
    g.bench_function("npy pread", |b| {
        use std::os::unix::fs::FileExt;
        b.iter(|| {
            let z = next() as usize;
            let at = (header + z * PLANE * 4) as u64;
            file.read_exact_at(bytemuck::cast_slice_mut::<f32, u8>(&mut out), at)
                .unwrap();
            black_box(&out);
        })
    });
    drop(map);

    // Zarr, uncompressed: chunkyard vs zarrs' retrieve_chunk on the same
    // directory.
    let zp = dir.path().join("o.zarr");
    let a = create(&zp, Codec::None, 256 << 20);
    write_planes(&a, &planes);
    a.flush().unwrap();
    drop(a);
    let a = chunkyard::open_with::<f32>(&zp, &OpenOptions::new().cache(ChunkCache::new(1 << 20)))
        .unwrap();
    g.bench_function("zarr chunkyard", |b| {
        b.iter(|| {
            let z = next();
            a.read_into(s![z as isize, .., ..], &mut out).unwrap();
            black_box(&out);
        })
    });
    let h = a.handle().clone();
    g.bench_function("zarr chunkyard streaming", |b| {
        b.iter(|| {
            let z = next() as usize;
            h.read_bytes_streaming(&plane_sels[z], bytemuck::cast_slice_mut(&mut out))
                .unwrap();
            black_box(&out);
        })
    });
    let store = Arc::new(zarrs::filesystem::FilesystemStore::new(&zp).unwrap());
    let za = zarrs::array::Array::open(store, "/").unwrap();
    g.bench_function("zarr zarrs retrieve_chunk", |b| {
        b.iter(|| {
            let z = next();
            let v: Vec<f32> = za.retrieve_chunk(&[z, 0, 0]).unwrap();
            black_box(v);
        })
    });

    #[cfg(feature = "hdf5")]
    {
        let hp = dir.path().join("o.h5");
        let a = create(&hp, Codec::None, 256 << 20);
        write_planes(&a, &planes);
        a.flush().unwrap();
        drop(a);
        let a =
            chunkyard::open_with::<f32>(&hp, &OpenOptions::new().cache(ChunkCache::new(1 << 20)))
                .unwrap();
        g.bench_function("hdf5 chunkyard", |b| {
            b.iter(|| {
                let z = next();
                a.read_into(s![z as isize, .., ..], &mut out).unwrap();
                black_box(&out);
            })
        });
        let h = a.handle().clone();
        g.bench_function("hdf5 chunkyard streaming", |b| {
            b.iter(|| {
                let z = next() as usize;
                h.read_bytes_streaming(&plane_sels[z], bytemuck::cast_slice_mut(&mut out))
                    .unwrap();
                black_box(&out);
            })
        });
        drop(h);
        drop(a);
        let f = hdf5_metno::File::open(&hp).unwrap();
        let name = f.member_names().unwrap().remove(0);
        let ds = f.dataset(&name).unwrap();
        g.bench_function("hdf5 hdf5-metno read_slice", |b| {
            b.iter(|| {
                let z = next() as usize;
                black_box(ds.read_slice_2d::<f32, _>(s![z, .., ..]).unwrap());
            })
        });
    }
    g.finish();

    // Writes: a plane into the cache and out with the flush, against
    // pwrite + fdatasync of the same bytes.
    let mut g = c.benchmark_group("write 16 planes + sync, chunkyard vs direct");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(Z * N * N * 4));
    let a = create(&dir.path().join("w.npy"), Codec::None, 256 << 20);
    g.bench_function("npy chunkyard", |b| {
        b.iter(|| {
            write_planes(&a, &planes);
            a.flush().unwrap();
        })
    });
    let raw = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path().join("w.raw"))
        .unwrap();
    g.bench_function("npy pwrite + fdatasync", |b| {
        use std::os::unix::fs::FileExt;
        b.iter(|| {
            for (z, p) in planes.iter().enumerate() {
                raw.write_all_at(bytemuck::cast_slice(p), (z * PLANE * 4) as u64)
                    .unwrap();
            }
            raw.sync_data().unwrap();
        })
    });
    let zp = dir.path().join("w.zarr");
    let a = create(&zp, Codec::None, 256 << 20);
    a.flush().unwrap();
    g.bench_function("zarr chunkyard", |b| {
        b.iter(|| {
            write_planes(&a, &planes);
            a.flush().unwrap();
        })
    });
    let zp2 = dir.path().join("w2.zarr");
    let store = Arc::new(zarrs::filesystem::FilesystemStore::new(&zp2).unwrap());
    let za = zarrs::array::ArrayBuilder::new(
        vec![Z, N, N],
        vec![1, N, N],
        zarrs::array::data_type::float32(),
        zarrs::array::FillValue::from(0f32),
    )
    .build(store, "/")
    .unwrap();
    za.store_metadata().unwrap();
    g.bench_function("zarr zarrs store_chunk (no sync)", |b| {
        b.iter(|| {
            for (z, p) in planes.iter().enumerate() {
                za.store_chunk(&[z as u64, 0, 0], p.as_slice()).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, flush, lz4, blosc, overhead);
criterion_main!(benches);
