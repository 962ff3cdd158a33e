//! Tests of the Zarr store: the conformance suite raw and not, zarrs'
//! codecs and sharding, raw and LZ4 reads, resizes and corrupt chunks.

use super::*;
use crate::layout::{Strided, c_strides};
use crate::store::ChunkStoreExt as _;
use crate::store::conformance::{self, Harness, Reopen};
use crate::store::{ChunkStore, extract_region};

/// Runs the conformance suite on new arrays made with `opts`, which are
/// `raw` (read straight from the files) or not: both paths must conform.
fn run_conformance(opts: ZarrOptions, raw: bool) {
    run_conformance_where(opts, |_| raw);
}

/// The same, with whether an array of a dtype is raw.
fn run_conformance_where(opts: ZarrOptions, raw: impl Fn(DType) -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("a{i}.zarr"));
        let s = ZarrStore::create(&path, m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
        assert_eq!(is_raw(&s), raw(m.dtype), "{opts:?} {}", m.dtype);
        let reopen: Reopen = Box::new(move || Ok(Arc::new(ZarrStore::open(&path, true)?) as _));
        Ok((Arc::new(s) as _, reopen))
    };
    conformance::run_all(&Harness { create: &create });
}

#[test]
fn conformance_uncompressed() {
    run_conformance(ZarrOptions::default(), true);
}

#[test]
fn conformance_every_codec() {
    for codec in [
        Codec::Lz4,
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 1 },
    ] {
        run_conformance(
            ZarrOptions {
                codec,
                ..ZarrOptions::default()
            },
            false,
        );
    }
}

#[test]
fn sharded_arrays_conform() {
    // Each chunk of the suite is a shard of inner chunks half its size
    // (where the axis is even), uncompressed and with each codec.
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd { level: 1 }] {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("a{i}.zarr"));
            let inner = m
                .chunks
                .iter()
                .map(|&c| if c % 2 == 0 { c / 2 } else { c })
                .collect();
            let opts = ZarrOptions {
                codec,
                inner_chunks: Some(inner),
                ..ZarrOptions::default()
            };
            let s = ZarrStore::create(&path, m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
            assert!(!is_raw(&s) && !is_lz4(&s), "{codec:?}");
            assert!(
                s.capabilities().partial_reads,
                "{codec:?}: inner chunks read alone"
            );
            let reopen: Reopen = Box::new(move || Ok(Arc::new(ZarrStore::open(&path, true)?) as _));
            Ok((Arc::new(s) as _, reopen))
        };
        conformance::run_all(&Harness { create: &create });
    }
}

#[test]
fn shards_refuse_inner_chunks_that_do_not_divide_them() {
    let dir = tempfile::tempdir().unwrap();
    for inner in [vec![3u64, 2], vec![4], vec![0, 2]] {
        let opts = ZarrOptions {
            inner_chunks: Some(inner.clone()),
            ..ZarrOptions::default()
        };
        let p = dir.path().join("a.zarr");
        let e = ZarrStore::create(&p, DType::F32, &[8, 8], &[4, 4], &[0; 4], &opts).unwrap_err();
        assert!(e.to_string().contains("must divide"), "{inner:?}: {e}");
        assert!(!p.exists());
    }
}

#[test]
fn lz4_arrays_conform_straight() {
    // Conformance of the arrays `conformance_every_codec` reads through
    // zarrs would not fail if the straight LZ4 path were not taken.
    let dir = tempfile::tempdir().unwrap();
    let opts = lz4_options();
    for dtype in [DType::F32, DType::U8, DType::Bool] {
        let p = dir.path().join(format!("{dtype}.zarr"));
        assert!(is_lz4(&create(&p, dtype, &[4], &[2], &opts)), "{dtype}");
    }
}

#[test]
fn conformance_big_endian() {
    // Big-endian elements are swapped on read (not raw) on little-endian
    // machines; one-byte ones are raw either way.
    let big = ZarrOptions {
        endian: Endian::Big,
        ..ZarrOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let s = create(&dir.path().join("a.zarr"), DType::F32, &[2], &[2], &big);
    let raw = is_raw(&s);
    assert_eq!(raw, cfg!(target_endian = "big"));
    run_conformance_where(big, |dtype| raw || dtype.size() == 1);
}

#[test]
fn opening_read_write_removes_temporaries_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let fill = [0u8; 4];
    let s = ZarrStore::create(
        &path,
        DType::U32,
        &[8, 8],
        &[4, 4],
        &fill,
        &ZarrOptions::default(),
    )
    .unwrap();
    s.write_chunk(&[1, 0], &[7u8; 64]).unwrap();
    s.flush().unwrap();
    drop(s);
    let chunk_dir = dir.path().join("a.zarr/c/1");
    assert!(chunk_dir.is_dir());
    // What a writer killed between write and rename leaves (its pid can
    // never be alive: above Linux's largest pid_max), plus a file beside
    // the array that is not ours.
    let stale = chunk_dir.join(format!("{}0.999999999.3.tmp", fs::TMP_PREFIX));
    std::fs::write(&stale, [1u8; 10]).unwrap();
    let outside = dir
        .path()
        .join(format!("{}0.999999999.3.tmp", fs::TMP_PREFIX));
    std::fs::write(&outside, [1u8; 10]).unwrap();
    drop(ZarrStore::open(&path, false).unwrap());
    assert!(stale.exists(), "a read-only open changes nothing");
    let s = ZarrStore::open(&path, true).unwrap();
    assert!(!stale.exists(), "a read-write open removes it");
    assert!(outside.exists(), "only inside the array's directory");
    assert_eq!(s.read_chunk(&[1, 0]).unwrap().unwrap().as_ref(), &[7u8; 64]);
}

/// A whole raw chunk's rename is left to the storage's thread: the store
/// reads it back at once, `flush` makes it durable, and a failed one
/// closes the store for writing, named in every error after it.
#[test]
fn whole_raw_chunks_are_renamed_in_the_background_and_failures_close_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let s = create(&path, DType::U32, &[8, 8], &[4, 4], &ZarrOptions::default());
    assert!(is_raw(&s));
    for v in 1..=5u8 {
        s.write_chunk(&[0, 1], &[v; 64]).unwrap();
        assert_eq!(s.read_chunk(&[0, 1]).unwrap().unwrap().as_ref(), &[v; 64]);
        let mut one = [0u8; 4];
        let at = Strided {
            offset: 0,
            strides: &[0, 0],
        };
        assert!(
            s.read_region_into(&[0, 1], &[(1, 1, 1), (2, 1, 1)], &mut one, at)
                .unwrap()
        );
        assert_eq!(one, [v; 4]);
    }
    s.flush().unwrap();
    assert_eq!(std::fs::read(path.join("c/0/1")).unwrap(), [5u8; 64]);
    // A non-empty directory where chunk (1, 1)'s file goes: its rename
    // fails in the background.
    std::fs::create_dir_all(path.join("c/1/1/x")).unwrap();
    s.write_chunk(&[1, 1], &[9u8; 64]).unwrap();
    let err = s.flush().unwrap_err().to_string();
    assert!(err.contains("c/1/1") && err.contains("background"), "{err}");
    let again = s.write_chunk(&[1, 0], &[3u8; 64]).unwrap_err().to_string();
    assert!(again.contains("c/1/1"), "{again}");
    assert!(
        !path.join("c/1/0").exists(),
        "nothing written after the failure"
    );
    assert!(s.flush().is_err(), "still failed");
    drop(s);
    std::fs::remove_dir_all(path.join("c/1/1")).unwrap();
    let s = ZarrStore::open(&path, true).unwrap();
    s.write_chunk(&[1, 0], &[3u8; 64]).unwrap();
    s.flush().unwrap();
    assert_eq!(s.read_chunk(&[0, 1]).unwrap().unwrap().as_ref(), &[5u8; 64]);
    assert_eq!(s.read_chunk(&[1, 0]).unwrap().unwrap().as_ref(), &[3u8; 64]);
}

#[test]
fn the_locked_wrapper_reports_the_write_buffer() {
    // `locked_store!` must delegate every method, defaulted ones too: the
    // trait's default of 0 would let encoded copies escape the budget.
    let dir = tempfile::tempdir().unwrap();
    let s = ZarrStore::create(
        &dir.path().join("a.zarr"),
        DType::F32,
        &[8, 8],
        &[4, 4],
        &[0; 4],
        &ZarrOptions::default(),
    )
    .unwrap();
    assert!(s.capabilities().write_buffer_bytes >= 64);
}

fn create(
    path: &Path,
    dtype: DType,
    shape: &[u64],
    chunks: &[u64],
    opts: &ZarrOptions,
) -> ZarrStore {
    ZarrStore::create(path, dtype, shape, chunks, &vec![0; dtype.size()], opts).unwrap()
}

fn is_raw(s: &ZarrStore) -> bool {
    s.inner.read().raw
}

fn lz4_options() -> ZarrOptions {
    ZarrOptions {
        codec: Codec::Lz4,
        ..ZarrOptions::default()
    }
}

fn is_lz4(s: &ZarrStore) -> bool {
    s.inner.read().lz4
}

/// A new v3 array whose codecs are `bytes` then numcodecs' LZ4, as
/// zarr-python writes with `compressors=numcodecs.zarr3.LZ4()` (chunkyard
/// itself writes Blosc for `Codec::Lz4`).
fn numcodecs_lz4(path: &Path, dtype: DType, shape: &[u64], chunks: &[u64]) -> ZarrStore {
    std::fs::create_dir(path).unwrap();
    let json = serde_json::json!({
        "zarr_format": 3, "node_type": "array", "shape": shape,
        "data_type": dtype.numpy_name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunks}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                   {"name": "numcodecs.lz4", "configuration": {}}],
        "attributes": {},
    });
    std::fs::write(path.join("zarr.json"), json.to_string()).unwrap();
    let s = ZarrStore::open(path, true).unwrap();
    assert!(!s.inner.read().blosc);
    s
}

/// The two codecs chunkyard decodes straight into the caller's buffer:
/// Blosc (what it writes for `Codec::Lz4`) and numcodecs' LZ4.
fn straight_arrays(
    dir: &Path,
    name: &str,
    dtype: DType,
    shape: &[u64],
    chunks: &[u64],
) -> [ZarrStore; 2] {
    let blosc = create(
        &dir.join(format!("{name}-blosc.zarr")),
        dtype,
        shape,
        chunks,
        &lz4_options(),
    );
    assert!(blosc.inner.read().blosc);
    [
        blosc,
        numcodecs_lz4(&dir.join(format!("{name}-lz4.zarr")), dtype, shape, chunks),
    ]
}

/// A Zarr v2 array written by hand: `.zarray` with these fields.
fn v2(path: &Path, dtype: &str, compressor: &str, order: &str) -> ZarrStore {
    std::fs::create_dir(path).unwrap();
    std::fs::write(
        path.join(".zarray"),
        format!(
            r#"{{"zarr_format": 2, "shape": [4, 6], "chunks": [2, 3], "dtype": "{dtype}",
                "compressor": {compressor}, "fill_value": 0, "filters": null,
                "order": "{order}"}}"#
        ),
    )
    .unwrap();
    ZarrStore::open(path, true).unwrap()
}

#[test]
fn raw_layouts_are_detected_from_the_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let native = if cfg!(target_endian = "little") {
        Endian::Little
    } else {
        Endian::Big
    };
    let foreign = if native == Endian::Little {
        Endian::Big
    } else {
        Endian::Little
    };
    let mut n = 0;
    let mut make = |dtype: DType, codec: Codec, endian: Endian| {
        n += 1;
        let opts = ZarrOptions {
            codec,
            endian,
            ..ZarrOptions::default()
        };
        create(
            &dir.path().join(format!("a{n}.zarr")),
            dtype,
            &[4, 6],
            &[2, 3],
            &opts,
        )
    };
    assert!(is_raw(&make(DType::F32, Codec::None, native)));
    assert!(is_raw(&make(DType::Bool, Codec::None, native)));
    assert!(is_raw(&make(DType::U8, Codec::None, foreign)), "one byte");
    assert!(!is_raw(&make(DType::F32, Codec::None, foreign)), "swapped");
    assert!(!is_raw(&make(DType::I16, Codec::None, foreign)), "swapped");
    for codec in [
        Codec::Lz4,
        Codec::Zstd { level: 3 },
        Codec::Gzip { level: 1 },
    ] {
        assert!(!is_raw(&make(DType::F32, codec, native)), "{codec:?}");
        assert!(!is_raw(&make(DType::U8, codec, native)), "{codec:?}");
        let lz4 = codec == Codec::Lz4;
        assert_eq!(is_lz4(&make(DType::F32, codec, native)), lz4, "{codec:?}");
        assert_eq!(is_lz4(&make(DType::U8, codec, foreign)), lz4, "{codec:?}");
    }
    assert!(!is_lz4(&make(DType::F32, Codec::None, native)));
    assert!(
        !is_lz4(&make(DType::F32, Codec::Lz4, foreign)),
        "LZ4 of swapped bytes"
    );
    let (le, be) = ("<f4", ">f4");
    let (nat, swapped) = if native == Endian::Little {
        (le, be)
    } else {
        (be, le)
    };
    let p = dir.path();
    assert!(is_raw(&v2(&p.join("v2.zarr"), nat, "null", "C")));
    assert!(is_raw(&v2(&p.join("v2u1.zarr"), "|u1", "null", "C")));
    assert!(!is_raw(&v2(&p.join("v2be.zarr"), swapped, "null", "C")));
    assert!(
        !is_raw(&v2(&p.join("v2f.zarr"), nat, "null", "F")),
        "order F"
    );
    let zstd = r#"{"id": "zstd", "level": 1}"#;
    assert!(!is_raw(&v2(&p.join("v2z.zarr"), nat, zstd, "C")));
    let lz4 = r#"{"id": "lz4", "acceleration": 1}"#;
    assert!(is_lz4(&v2(&p.join("v2l.zarr"), nat, lz4, "C")));
    assert!(!is_lz4(&v2(&p.join("v2lf.zarr"), nat, lz4, "F")), "order F");
    assert!(!is_lz4(&v2(&p.join("v2lbe.zarr"), swapped, lz4, "C")));
    assert!(!is_lz4(&v2(&p.join("v2zl.zarr"), nat, zstd, "C")));
    let blosc = r#"{"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}"#;
    let s = v2(&p.join("v2b.zarr"), nat, blosc, "C");
    assert!(is_lz4(&s) && s.inner.read().blosc, "v2 blosc");
}

#[test]
fn lz4_chunks_decode_alike_straight_and_through_zarrs() {
    // One chunk under the map threshold (read), one over it (mapped).
    let dir = tempfile::tempdir().unwrap();
    let big = (crate::buffer::MAP_THRESHOLD / 4) as u64 + 100;
    for (i, n) in [(0, 300u64), (1, big)] {
        for s in straight_arrays(dir.path(), &format!("a{i}"), DType::I32, &[2 * n], &[n]) {
            assert!(is_lz4(&s));
            // Half compressible, half noise.
            use rand::{RngExt, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(n);
            let vals: Vec<u8> = (0..n as i32)
                .flat_map(|i| {
                    let v = if i % 2 == 0 { i / 64 } else { rng.random() };
                    v.to_ne_bytes()
                })
                .collect();
            s.write_chunk(&[1], &vals).unwrap();
            s.flush().unwrap();
            let encoded = std::fs::metadata(s.chunk_path(&[1])).unwrap().len();
            assert!(
                (encoded as usize >= crate::buffer::MAP_THRESHOLD) == (i == 1),
                "{encoded}"
            );
            let straight = s.read_chunk(&[1]).unwrap().unwrap();
            let mut into = vec![0u8; vals.len()];
            assert!(s.read_chunk_into(&[1], &mut into).unwrap());
            s.inner.write().lz4 = false;
            let zarrs = s.read_chunk(&[1]).unwrap().unwrap();
            assert_eq!(&straight[..], &vals[..]);
            assert_eq!(into, vals);
            assert_eq!(&zarrs[..], &vals[..]);
            s.inner.write().lz4 = true;
            assert!(s.read_chunk(&[0]).unwrap().is_none());
            assert!(!s.read_chunk_into(&[0], &mut into).unwrap());
        }
    }
}

#[test]
fn corrupt_lz4_chunks_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let big = (crate::buffer::MAP_THRESHOLD / 4) as u64;
    for n in [64u64, big] {
        for s in straight_arrays(dir.path(), &format!("a{n}"), DType::I32, &[n], &[n]) {
            let blosc = s.inner.read().blosc;
            // Noise: the large chunk's file is over the map threshold too.
            use rand::{RngExt, SeedableRng};
            let mut rng = rand::rngs::SmallRng::seed_from_u64(n);
            let vals: Vec<u8> = (0..n * 4).map(|_| rng.random()).collect();
            s.write_chunk(&[0], &vals).unwrap();
            s.flush().unwrap();
            let file = s.chunk_path(&[0]);
            let good = std::fs::read(&file).unwrap();
            assert_eq!(good.len() > crate::buffer::MAP_THRESHOLD, n == big);
            let fails = |bytes: &[u8], why: &str| {
                std::fs::write(&file, bytes).unwrap();
                let e = s.read_chunk(&[0]).unwrap_err().to_string();
                assert!(
                    e.contains("c/0") && e.contains(why),
                    "{n} blosc {blosc}: {e}"
                );
                let mut out = vec![0u8; vals.len()];
                assert!(s.read_chunk_into(&[0], &mut out).is_err());
            };
            if blosc {
                fails(&good[..good.len() - 1], "frame bytes");
            } else {
                fails(&good[..good.len() - 1], "lz4");
            }
            fails(&good[..3], "too short");
            let mut lying = good.clone();
            // The decoded length: numcodecs' first field, Blosc's second.
            let at = if blosc { 4 } else { 0 };
            lying[at..at + 4].copy_from_slice(&(n as u32 * 4 + 4).to_le_bytes());
            fails(&lying, "header says");
            // Longer than the codec can make of the chunk: refused before
            // reading.
            let (most, name) = if blosc {
                (blosc::encoded_bound(vals.len()), "Blosc")
            } else {
                (lz4::encoded_bound(vals.len()), "LZ4")
            };
            fails(&vec![0u8; most + 1], &format!("more than {name}"));
            std::fs::write(&file, &good).unwrap();
            assert_eq!(&s.read_chunk(&[0]).unwrap().unwrap()[..], &vals[..]);
        }
    }
}

#[test]
fn v2_raw_arrays_read_their_chunk_files() {
    // `.zarray` keys are `0.1`: the raw path must take zarrs' key, and
    // read what a v2 writer left there.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let nat = if cfg!(target_endian = "little") {
        "<i4"
    } else {
        ">i4"
    };
    drop(v2(&path, nat, "null", "C"));
    let vals: Vec<u8> = (0..6i32).flat_map(|v| (v * 10).to_ne_bytes()).collect();
    std::fs::write(path.join("1.1"), &vals).unwrap();
    let s = ZarrStore::open(&path, false).unwrap();
    assert!(is_raw(&s));
    assert_eq!(s.read_chunk(&[1, 1]).unwrap().unwrap().as_ref(), &vals[..]);
    assert!(s.read_chunk(&[0, 1]).unwrap().is_none());
    assert_eq!(
        s.read_region(&[1, 1], &[(1, 1, 1), (0, 2, 2)])
            .unwrap()
            .unwrap(),
        [30i32, 50]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect::<Vec<_>>()
    );
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn chunk_of(base: i32, n: usize) -> Vec<u8> {
    (0..n as i32)
        .flat_map(|i| (base + i).to_ne_bytes())
        .collect()
}

/// One element of a chunk through `read_region_into`, as `get` reads it.
fn element(s: &ZarrStore, chunk: &[u64], at: &[u64]) -> Result<Option<i32>> {
    let region: Vec<(u64, u64, u64)> = at.iter().map(|&i| (i, 1, 1)).collect();
    let mut out = [0u8; 4];
    let zeros = vec![0usize; at.len()];
    let got = s.read_region_into(
        chunk,
        &region,
        &mut out,
        Strided {
            offset: 0,
            strides: &zeros,
        },
    )?;
    Ok(got.then(|| i32::from_ne_bytes(out)))
}

#[test]
fn open_files_never_serve_replaced_or_erased_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(
        &dir.path().join("a.zarr"),
        DType::I32,
        &[8, 8],
        &[4, 8],
        &ZarrOptions::default(),
    );
    assert!(is_raw(&s));
    s.write_chunk(&[0, 0], &chunk_of(100, 32)).unwrap();
    assert_eq!(element(&s, &[0, 0], &[1, 2]).unwrap(), Some(110));
    assert_eq!(s.inner.read().files.len(), 1, "the file stays open");
    // Replaced by rename: the open file still holds the old contents.
    s.write_chunk(&[0, 0], &chunk_of(500, 32)).unwrap();
    assert_eq!(element(&s, &[0, 0], &[1, 2]).unwrap(), Some(510));
    assert_eq!(i32s(&s.read_chunk(&[0, 0]).unwrap().unwrap())[3], 503);
    let mut whole = vec![0u8; 128];
    assert!(s.read_chunk_into(&[0, 0], &mut whole).unwrap());
    assert_eq!(i32s(&whole)[31], 531);
    // Erased: the missing file, not the open one.
    s.erase_chunk(&[0, 0]).unwrap();
    assert_eq!(element(&s, &[0, 0], &[1, 2]).unwrap(), None);
    assert!(s.read_chunk(&[0, 0]).unwrap().is_none());
    assert!(!s.read_chunk_into(&[0, 0], &mut whole).unwrap());
    assert!(
        s.read_region(&[0, 0], &[(0, 1, 2), (0, 1, 2)])
            .unwrap()
            .is_none()
    );
    // Written as all fill value: the store removes the file (the raw
    // path's own check, as zarrs does on the others).
    s.write_chunk(&[1, 0], &chunk_of(7, 32)).unwrap();
    assert_eq!(element(&s, &[1, 0], &[0, 0]).unwrap(), Some(7));
    s.write_chunk(&[1, 0], &[0u8; 128]).unwrap();
    assert!(!s.chunk_path(&[1, 0]).exists());
    assert_eq!(element(&s, &[1, 0], &[0, 0]).unwrap(), None);
}

#[test]
fn a_resize_closes_the_files_of_dropped_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(
        &dir.path().join("a.zarr"),
        DType::I32,
        &[8, 8],
        &[4, 8],
        &ZarrOptions::default(),
    );
    s.write_chunk(&[1, 0], &chunk_of(100, 32)).unwrap();
    assert_eq!(element(&s, &[1, 0], &[0, 1]).unwrap(), Some(101));
    s.resize(4).unwrap();
    s.resize(8).unwrap();
    assert_eq!(element(&s, &[1, 0], &[0, 1]).unwrap(), None, "dropped");
    assert!(s.read_chunk(&[1, 0]).unwrap().is_none());
}

#[test]
fn an_element_is_one_pread_of_a_file_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(
        &dir.path().join("a.zarr"),
        DType::I32,
        &[4, 64, 64],
        &[1, 64, 64],
        &ZarrOptions::default(),
    );
    for z in 0..4 {
        s.write_chunk(&[z, 0, 0], &chunk_of(z as i32 * 10_000, 4096))
            .unwrap();
    }
    let calls = || *s.inner.read().files.calls.lock();
    let start = calls();
    assert_eq!(element(&s, &[2, 0, 0], &[0, 3, 5]).unwrap(), Some(20_197));
    assert_eq!(calls(), (start.0 + 1, start.1 + 1), "one open, one pread");
    assert_eq!(element(&s, &[2, 0, 0], &[0, 60, 1]).unwrap(), Some(23_841));
    assert_eq!(calls(), (start.0 + 1, start.1 + 2), "the file stays open");
    // Part of a row: one pread.
    let mut row = vec![0u8; 10 * 4];
    let at = Strided {
        offset: 0,
        strides: &[0, 0, 1],
    };
    s.read_region_into(
        &[2, 0, 0],
        &[(0, 1, 1), (7, 1, 1), (3, 1, 10)],
        &mut row,
        at,
    )
    .unwrap();
    assert_eq!(i32s(&row), (20_451..20_461).collect::<Vec<_>>());
    assert_eq!(calls(), (start.0 + 1, start.1 + 3));
    // A 16 x 16 tile: copied out of a map of the file kept with it, no
    // pread.
    let mut tile = vec![0u8; 256 * 4];
    let at = Strided {
        offset: 0,
        strides: &[0, 16, 1],
    };
    s.read_region_into(
        &[2, 0, 0],
        &[(0, 1, 1), (8, 1, 16), (4, 1, 16)],
        &mut tile,
        at,
    )
    .unwrap();
    assert_eq!(i32s(&tile)[17], 20_000 + 9 * 64 + 5);
    assert_eq!(calls(), (start.0 + 1, start.1 + 3));
    assert_eq!(s.inner.read().files.maps(), 1, "the map is kept");
    // Every other element of every other row of another chunk: mapped too.
    let mut strided = vec![0u8; 32 * 32 * 4];
    let at = Strided {
        offset: 0,
        strides: &[0, 32, 1],
    };
    s.read_region_into(
        &[1, 0, 0],
        &[(0, 1, 1), (0, 2, 32), (1, 2, 32)],
        &mut strided,
        at,
    )
    .unwrap();
    assert_eq!(i32s(&strided)[33], 10_000 + 2 * 64 + 3);
    assert_eq!(calls(), (start.0 + 2, start.1 + 3), "no pread: mapped");
    assert_eq!(s.inner.read().files.maps(), 2);
    // A rewrite drops the file and its map.
    s.write_chunk(&[1, 0, 0], &chunk_of(50_000, 4096)).unwrap();
    assert_eq!(s.inner.read().files.maps(), 1);
    s.read_region_into(
        &[1, 0, 0],
        &[(0, 1, 1), (0, 2, 32), (1, 2, 32)],
        &mut strided,
        at,
    )
    .unwrap();
    assert_eq!(i32s(&strided)[33], 50_000 + 2 * 64 + 3, "the new file");
}

#[test]
fn the_read_methods_agree_on_every_region() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let shape = [3u64, 10, 12];
    let chunks = [2u64, 5, 12];
    for dtype in [DType::U8, DType::I16, DType::F64] {
        let s = create(
            &dir.path().join(format!("{dtype}.zarr")),
            dtype,
            &shape,
            &chunks,
            &ZarrOptions::default(),
        );
        let m = s.meta();
        let chunk = [1u64, 1, 0];
        let data = conformance::pattern(&m, &chunk, 3);
        s.write_chunk(&chunk, &data).unwrap();
        let inner = s.inner.read();
        let elem = dtype.size();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for _ in 0..300 {
            let region = conformance::random_region(&mut rng, &chunks);
            let want = extract_region(&m, &data, &region);
            // Into a padded output, one element in on every axis.
            let padded: Vec<u64> = region.iter().map(|r| r.2 + 1).collect();
            let st = c_strides(&padded);
            let at = Strided {
                offset: 1,
                strides: &st,
            };
            let len = padded.iter().product::<u64>() as usize * elem;
            let mut expect = vec![0xAB_u8; len];
            let dense: Vec<u64> = region.iter().map(|r| r.2).collect();
            let counts: Vec<usize> = dense.iter().map(|&n| n as usize).collect();
            crate::layout::copy_region(
                &counts,
                elem,
                &want,
                Strided {
                    offset: 0,
                    strides: &c_strides(&dense),
                },
                &mut expect,
                at,
            );
            for force in [None, Some(raw::Method::Preads), Some(raw::Method::Map)] {
                let mut out = vec![0xAB_u8; len];
                assert!(
                    inner
                        .raw_read_region_into(&chunk, &region, &mut out, at, force)
                        .unwrap()
                );
                assert!(out == expect, "{dtype} {region:?} {force:?}");
            }
            assert_eq!(inner.read_region(&chunk, &region).unwrap().unwrap(), want);
        }
    }
}

#[test]
fn the_cost_model_maps_only_many_runs_per_page() {
    use raw::{Method, method};
    // One 256-byte run per 8000-byte row (tiles): preads up to ~200 rows.
    assert_eq!(method(16, 256, 15 * 8000 + 256), Method::Preads);
    assert_eq!(method(64, 256, 63 * 8000 + 256), Method::Preads);
    assert_eq!(method(512, 256, 511 * 8000 + 256), Method::Map);
    // One element per row: mapped on every row, not every 2nd or 7th.
    assert_eq!(method(1000, 4, 999 * 8000 + 4), Method::Map);
    assert_eq!(method(1000, 4, 999 * 16000 + 4), Method::Preads);
    assert_eq!(method(286, 4, 285 * 56000 + 4), Method::Preads);
    // a[z, ::2, ::2] of a 2000 x 2000 float32 chunk.
    assert_eq!(method(1_000_000, 4, 16_000_000 - 8000 - 4), Method::Map);
    // A few scattered elements.
    assert_eq!(method(8, 4, 1 << 20), Method::Preads);
}

/// Cuts a chunk file to `len` bytes.
fn cut(s: &ZarrStore, chunk: &[u64], len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.chunk_path(chunk))
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn truncated_raw_chunks_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.zarr");
    let s = create(&path, DType::I32, &[8, 8], &[4, 8], &ZarrOptions::default());
    s.write_chunk(&[0, 0], &chunk_of(1, 32)).unwrap();
    s.write_chunk(&[1, 0], &chunk_of(1, 32)).unwrap();
    s.flush().unwrap();
    drop(s);
    let s = ZarrStore::open(&path, false).unwrap();
    // Shorter by one element: the first element's bytes are all there.
    cut(&s, &[0, 0], 124);
    let named = |e: Error| {
        let m = e.to_string();
        assert!(m.contains("c/0/0") && m.contains("124"), "{m}");
    };
    named(s.read_chunk(&[0, 0]).unwrap_err());
    named(s.read_chunk_into(&[0, 0], &mut [0u8; 128]).unwrap_err());
    named(element(&s, &[0, 0], &[0, 0]).unwrap_err());
    let mut tile = [0u8; 16];
    let at = Strided {
        offset: 0,
        strides: &[2, 1],
    };
    named(
        s.read_region_into(&[0, 0], &[(0, 1, 2), (0, 1, 2)], &mut tile, at)
            .unwrap_err(),
    );
    named(s.read_region(&[0, 0], &[(0, 1, 2), (0, 1, 2)]).unwrap_err());
    // Longer is as wrong.
    std::fs::write(s.chunk_path(&[0, 0]), [0u8; 132]).unwrap();
    assert!(s.read_chunk(&[0, 0]).is_err());
    // Cut while open: a read past the new end is still an error.
    assert_eq!(element(&s, &[1, 0], &[3, 7]).unwrap(), Some(32));
    cut(&s, &[1, 0], 64);
    let e = element(&s, &[1, 0], &[3, 7]).unwrap_err().to_string();
    assert!(e.contains("c/1/0") && e.contains("truncated"), "{e}");
    assert!(s.read_chunk(&[1, 0]).is_err());
}

#[test]
fn open_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let n = raw::open_files() as u64 + 10;
    let s = create(
        &dir.path().join("a.zarr"),
        DType::U8,
        &[n, 2],
        &[1, 2],
        &ZarrOptions::default(),
    );
    let value = |i: u64| (i % 251) as u8 + 1;
    for i in 0..n {
        s.write_chunk(&[i, 0], &[value(i), 9]).unwrap();
    }
    for round in 0..2 {
        for i in 0..n {
            let mut out = [0u8];
            let at = Strided {
                offset: 0,
                strides: &[0, 0],
            };
            assert!(
                s.read_region_into(&[i, 0], &[(0, 1, 1), (0, 1, 1)], &mut out, at)
                    .unwrap()
            );
            assert_eq!(out[0], value(i), "round {round}");
        }
        let held = s.inner.read().files.len();
        assert_eq!(held, raw::open_files());
        assert!(raw::OpenFiles::held() >= held);
        assert!(raw::OpenFiles::held() <= raw::open_files_total());
    }
    s.resize(1).unwrap();
    assert_eq!(s.inner.read().files.len(), 0);
}

#[test]
fn zero_d_raw_arrays_read_their_one_element() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(
        &dir.path().join("a.zarr"),
        DType::I32,
        &[],
        &[],
        &ZarrOptions::default(),
    );
    assert!(is_raw(&s));
    let at = Strided {
        offset: 0,
        strides: &[],
    };
    let mut out = [0u8; 4];
    assert!(!s.read_region_into(&[], &[], &mut out, at).unwrap());
    s.write_chunk(&[], &42i32.to_ne_bytes()).unwrap();
    assert!(s.read_region_into(&[], &[], &mut out, at).unwrap());
    assert_eq!(i32::from_ne_bytes(out), 42);
    assert_eq!(
        s.read_region(&[], &[]).unwrap().unwrap(),
        42i32.to_ne_bytes()
    );
    assert_eq!(
        s.read_chunk(&[]).unwrap().unwrap().as_ref(),
        42i32.to_ne_bytes()
    );
}

/// Resident bytes of this process's mappings of files under `dir`.
fn mapped_rss_under(dir: &std::path::Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
    let name = dir.to_str().unwrap();
    let mut in_map = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            in_map = line.contains(name);
        } else if in_map && let Some(kb) = line.strip_prefix("Rss:") {
            let kb: u64 = kb.trim().trim_end_matches("kB").trim().parse().unwrap();
            total += kb * 1024;
        }
    }
    total
}

/// The maps kept with open chunk files share one resident bound: reads
/// through 96 of them (1 MiB each) never keep more than about 32 MiB
/// resident, though every map stays open.
#[test]
fn chunk_file_maps_share_one_resident_bound() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.zarr");
    let s = create(
        &p,
        DType::U8,
        &[96, 64, 16384],
        &[1, 64, 16384],
        &ZarrOptions::default(),
    );
    for i in 0..96u64 {
        s.write_chunk(&[i, 0, 0], &vec![i as u8 + 1; 1 << 20])
            .unwrap();
    }
    let mut max_rss = 0;
    // All but the last byte of every row: 64 runs, through the map.
    let region = [(0, 1, 1), (0, 1, 64), (0, 1, 16383)];
    for i in 0..96u64 {
        let got = s.read_region(&[i, 0, 0], &region).unwrap().unwrap();
        assert!(got.iter().all(|&b| b == i as u8 + 1), "chunk {i}");
        max_rss = max_rss.max(mapped_rss_under(&p));
    }
    assert_eq!(s.inner.read().files.maps(), 96, "every map is kept");
    let limit = crate::store::filemap::RELEASE_AFTER_BYTES;
    assert!(max_rss >= 1 << 20, "reads went through maps ({max_rss})");
    assert!(
        max_rss <= limit + (6 << 20),
        "resident maps grew to {max_rss} bytes"
    );
}

/// Runs with more than `MAP_MAX_GAP` bytes between them on average are a
/// `pread` each, and make no map; closer ones copy from the map.
#[test]
fn sparse_runs_are_preads_dense_ones_mapped() {
    let dir = tempfile::tempdir().unwrap();
    // Rows of 32 KiB.
    let s = create(
        &dir.path().join("g.zarr"),
        DType::I32,
        &[1, 16, 8192],
        &[1, 16, 8192],
        &ZarrOptions::default(),
    );
    s.write_chunk(&[0, 0, 0], &chunk_of(0, 16 * 8192)).unwrap();
    let calls = || *s.inner.read().files.calls.lock();
    let start = calls();
    // One element of each of 8 rows: runs 32 KiB apart.
    let mut col = vec![0u8; 8 * 4];
    let at = Strided {
        offset: 0,
        strides: &[0, 1, 1],
    };
    s.read_region_into(&[0, 0, 0], &[(0, 1, 1), (0, 1, 8), (5, 1, 1)], &mut col, at)
        .unwrap();
    assert_eq!(i32s(&col), (0..8).map(|r| r * 8192 + 5).collect::<Vec<_>>());
    assert_eq!(calls().1, start.1 + 8, "a pread per run");
    assert_eq!(s.inner.read().files.maps(), 0);
    // Every element of 8 consecutive rows but the last: 4 bytes between
    // runs, dense.
    let mut block = vec![0u8; 8 * 8191 * 4];
    let at = Strided {
        offset: 0,
        strides: &[0, 8191, 1],
    };
    s.read_region_into(
        &[0, 0, 0],
        &[(0, 1, 1), (0, 1, 8), (0, 1, 8191)],
        &mut block,
        at,
    )
    .unwrap();
    assert_eq!(i32s(&block)[8191], 8192);
    assert_eq!(calls().1, start.1 + 8, "no pread: mapped");
    assert_eq!(s.inner.read().files.maps(), 1);
}

/// A dense strided region of a raw chunk file whose pages are not in the
/// page cache is read with `pread`s of its span in 1 MiB pieces
/// (`store::cover`), the same values as through the map once warm.
#[test]
fn cold_dense_regions_read_their_span_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let s = create(
        &dir.path().join("cold.zarr"),
        DType::I32,
        &[1, 1024, 1024],
        &[1, 1024, 1024],
        &ZarrOptions::default(),
    );
    s.write_chunk(&[0, 0, 0], &chunk_of(0, 1024 * 1024))
        .unwrap();
    s.flush().unwrap();
    let path = s.inner.read().chunk_path(&[0, 0, 0]);
    let calls = || s.inner.read().files.calls.lock().1;
    // a[0, ::2, 1::2]: 512 x 512 one-element runs over 4 MiB.
    let region = [(0, 1, 1), (0, 2, 512), (1, 2, 512)];
    let want: Vec<i32> = (0..512)
        .flat_map(|r| (0..512).map(move |c| 2 * r * 1024 + 2 * c + 1))
        .collect();
    let read = || {
        let mut out = vec![0u8; 512 * 512 * 4];
        let at = Strided {
            offset: 0,
            strides: &[0, 512, 1],
        };
        assert!(
            s.read_region_into(&[0, 0, 0], &region, &mut out, at)
                .unwrap()
        );
        assert_eq!(i32s(&out), want);
    };
    // The chunk file was synced: its pages are clean and can be dropped.
    let f = std::fs::File::open(&path).unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    let cold = crate::store::cover::is_cold(&f, 4, (4 << 20) - 4) == Some(true);
    let start = calls();
    read();
    if cold {
        // 512 rows of the selection, 128 to a 1 MiB piece.
        assert_eq!(calls() - start, 4);
    }
    // Warm now: through the file's map, no pread.
    let start = calls();
    read();
    assert_eq!(calls() - start, 0);
}
