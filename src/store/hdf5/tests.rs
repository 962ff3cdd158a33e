//! Tests of the HDF5 store: the conformance suite per codec, raw reads
//! against HDF5's own, contiguous datasets, and files with a user block.

use std::path::Path;

use crate::store::ChunkStoreExt as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::filters;
use super::raw::RawLayout;
use super::store::Hdf5Store;
use super::{Access, Hdf5Options, ffi};
use crate::buffer::MAP_THRESHOLD;
use crate::chunk_grid::ChunkGrid;
use crate::codec::Codec;
use crate::dtype::DType;
use crate::error::Result;
use crate::layout::{Strided, c_strides};
use crate::store::conformance::{self, Harness, Reopen};
use crate::store::rawio;
use crate::store::{ChunkStore, StoreMeta, extract_region};

#[test]
fn conformance_uncompressed_gzip_lz4() {
    for codec in [Codec::None, Codec::Gzip { level: 1 }, Codec::Lz4] {
        let dir = tempfile::tempdir().unwrap();
        let n = std::sync::atomic::AtomicUsize::new(0);
        let create = |m: &StoreMeta| -> Result<(Arc<dyn ChunkStore>, Reopen)> {
            let path = dir
                .path()
                .join(format!("c{}.h5", n.fetch_add(1, Ordering::Relaxed)));
            let opts = Hdf5Options {
                codec,
                overwrite: false,
                ..Hdf5Options::default()
            };
            let s = Hdf5Store::create(&path, "g/x", m.dtype, &m.shape, &m.chunks, &m.fill, &opts)?;
            let reopen: Reopen =
                Box::new(move || Ok(Arc::new(Hdf5Store::open(&path, "/g/x", None, true)?) as _));
            Ok((Arc::new(s), reopen))
        };
        conformance::run_all(&Harness { create: &create });
    }
}

fn raw_store(path: &Path, dtype: DType, shape: &[u64], chunks: &[u64]) -> Hdf5Store {
    let fill = vec![0u8; dtype.size()];
    Hdf5Store::create(
        path,
        "x",
        dtype,
        shape,
        chunks,
        &fill,
        &Hdf5Options::default(),
    )
    .unwrap()
}

/// Every region of an unfiltered chunk, read straight from the file by
/// every method, is what HDF5's own hyperslab read returns.
#[test]
fn raw_reads_agree_with_hdf5_on_every_region() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let chunks = [2u64, 5, 12];
    for dtype in [DType::U8, DType::I16, DType::F64] {
        let s = raw_store(
            &dir.path().join(format!("{dtype}.h5")),
            dtype,
            &[3, 10, 12],
            &chunks,
        );
        assert!(s.capabilities().partial_reads, "{dtype}: raw reads");
        let m = s.meta();
        // Two chunks, so the one read is not at the start of the data
        // (and wholly inside the array, where HDF5 reads every byte).
        s.write_chunk(&[0, 0, 0], &conformance::pattern(&m, &[0, 0, 0], 1))
            .unwrap();
        let chunk = [0u64, 1, 0];
        s.write_chunk(&chunk, &conformance::pattern(&m, &chunk, 3))
            .unwrap();
        let inner = s.inner.read();
        let raw = inner.raw.as_ref().expect("raw reads");
        // HDF5's own reading of the chunk, not the bytes written.
        let data = inner.read_hyperslab(&chunk).unwrap();
        assert_eq!(&data[..], &conformance::pattern(&m, &chunk, 3)[..]);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for _ in 0..300 {
            let region = conformance::random_region(&mut rng, &chunks);
            let want = extract_region(&m, &data, &region);
            let dense: Vec<u64> = region.iter().map(|r| r.2).collect();
            let st = c_strides(&dense);
            let at = Strided {
                offset: 0,
                strides: &st,
            };
            for force in [
                None,
                Some(rawio::Method::Preads),
                Some(rawio::Method::Map),
                Some(rawio::Method::FileMap),
            ] {
                let mut out = vec![0xAB_u8; want.len()];
                assert!(
                    inner
                        .raw_region_into(raw, &chunk, &region, &mut out, at, force)
                        .unwrap()
                );
                assert!(out == want, "{dtype} {region:?} {force:?}");
            }
            assert_eq!(inner.read_region(&chunk, &region).unwrap().unwrap(), want);
        }
        let mut whole = vec![0u8; m.chunk_bytes()];
        assert!(inner.read_chunk_into(&chunk, &mut whole).unwrap());
        assert_eq!(whole, &data[..]);
    }
}

/// A rewrite, an erase and a resize are seen by the next raw read: no
/// stale chunk address survives them.
#[test]
fn raw_reads_see_rewrites_erases_and_resizes() {
    let dir = tempfile::tempdir().unwrap();
    let s = raw_store(&dir.path().join("a.h5"), DType::I32, &[4, 8], &[2, 8]);
    let m = s.meta();
    // One element (one pread), and a 2 x 2 tile of the chunk (two
    // runs: through the file map, which must follow the file as it
    // grows with every rewrite and shrinks with a resize).
    let element = |s: &Hdf5Store, chunk: &[u64]| -> Option<i32> {
        let e = s
            .read_region(chunk, &[(1, 1, 1), (3, 1, 1)])
            .unwrap()
            .map(|v| i32::from_ne_bytes(v.try_into().unwrap()));
        let tile = s.read_region(chunk, &[(0, 1, 2), (2, 1, 2)]).unwrap();
        let tile = tile.map(|t| {
            t.chunks_exact(4)
                .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                .collect::<Vec<_>>()
        });
        match e {
            Some(v) if v != 0 => {
                assert_eq!(tile, Some(vec![v - 9, v - 8, v - 1, v]), "tile of {v}")
            }
            _ => assert_eq!(tile.map(|t| t.iter().any(|&x| x != 0)), e.map(|_| false)),
        }
        e
    };
    let chunk_of = |v: i32| -> Vec<u8> { (0..16).flat_map(|i| (v + i).to_ne_bytes()).collect() };
    assert_eq!(element(&s, &[1, 0]), None, "never written");
    s.write_chunk(&[1, 0], &chunk_of(100)).unwrap();
    assert_eq!(element(&s, &[1, 0]), Some(111));
    s.write_chunk(&[1, 0], &chunk_of(200)).unwrap();
    assert_eq!(element(&s, &[1, 0]), Some(211), "rewritten");
    s.erase_chunk(&[1, 0]).unwrap();
    assert!(matches!(element(&s, &[1, 0]), None | Some(0)), "erased");
    assert!(s.read_chunk(&[1, 0]).unwrap().is_none(), "erased");
    s.write_chunk(&[1, 0], &chunk_of(300)).unwrap();
    assert_eq!(element(&s, &[1, 0]), Some(311));
    s.resize(2).unwrap();
    s.resize(4).unwrap();
    assert_eq!(element(&s, &[1, 0]), None, "dropped by the shrink");
    s.write_chunk(&[1, 0], &chunk_of(400)).unwrap();
    assert_eq!(element(&s, &[1, 0]), Some(411));
    let mapped = s.inner.read().raw.as_ref().unwrap().map.read().is_some();
    assert!(mapped, "tiles are read through the file map");
    drop(s);
    let s = Hdf5Store::open(&dir.path().join("a.h5"), "x", None, false).unwrap();
    assert!(s.capabilities().partial_reads);
    assert_eq!(element(&s, &[1, 0]), Some(411), "reopened");
    assert_eq!(s.meta(), m);
}

/// A contiguous dataset opened read-only is read straight from the
/// file, as blocks of one C-order array: every chunk and region reads
/// as HDF5's own hyperslab read of it (regions past the array's edge
/// too, through HDF5). Opened for writing, it is left to HDF5.
#[test]
fn contiguous_datasets_are_read_raw_when_read_only() {
    use rand::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.h5");
    let shape = [5usize, 7, 9];
    let values: Vec<i16> = (0..5 * 7 * 9)
        .map(|i| (i * 37 % 1000) as i16 - 300)
        .collect();
    {
        let f = hdf5_metno::File::create(&path).unwrap();
        let ds = f.new_dataset::<i16>().shape(shape).create("c").unwrap();
        let a = ndarray::Array3::from_shape_vec(shape, values.clone()).unwrap();
        ds.write(&a).unwrap();
    }
    let chunks = [2u64, 3, 4];
    let w = Hdf5Store::open(&path, "c", Some(&chunks), true).unwrap();
    assert!(!w.capabilities().partial_reads, "writable: through HDF5");
    drop(w);
    let s = Hdf5Store::open(&path, "c", Some(&chunks), false).unwrap();
    assert!(s.capabilities().partial_reads);
    let m = s.meta();
    let inner = s.inner.read();
    assert!(matches!(
        inner.raw.as_ref().map(|r| &r.layout),
        Some(RawLayout::Contiguous { .. })
    ));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    let grid = ChunkGrid::new(&m.shape, &m.chunks, 2).unwrap();
    for chunk in grid.chunk_coords() {
        let want = inner.read_hyperslab(&chunk).unwrap();
        let got = inner.read_chunk(&chunk).unwrap().unwrap();
        assert_eq!(&got[..], &want[..], "chunk {chunk:?}");
        for _ in 0..40 {
            let region = conformance::random_region(&mut rng, &chunks);
            assert_eq!(
                inner.read_region(&chunk, &region).unwrap().unwrap(),
                extract_region(&m, &want, &region),
                "chunk {chunk:?} region {region:?}"
            );
        }
    }
    // One element is one pread at the right place.
    let e = inner
        .read_region(&[2, 2, 2], &[(0, 1, 1), (0, 1, 1), (0, 1, 1)])
        .unwrap();
    let i = (4 * 7 + 6) * 9 + 8;
    assert_eq!(e.unwrap(), values[i].to_ne_bytes());
}

/// Filtered chunks of 1 MiB or more are decoded from a map of the
/// file: the same bytes as through `H5Dread_chunk`, and a chunk whose
/// stored bytes lie past the end of the file is an error naming it.
#[test]
fn large_filtered_chunks_decode_from_a_map_alike() {
    use rand::{RngExt, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    // Random bytes do not compress: stored chunks stay over 1 MiB.
    let n = 300_000u64;
    let chunk: Vec<u8> = (0..n * 4).map(|_| rng.random()).collect();
    for codec in [Codec::Lz4, Codec::Gzip { level: 1 }] {
        let path = dir.path().join(format!("{codec:?}.h5"));
        let opts = Hdf5Options {
            codec,
            overwrite: false,
            ..Hdf5Options::default()
        };
        let s =
            Hdf5Store::create(&path, "x", DType::F32, &[3, n], &[1, n], &[0; 4], &opts).unwrap();
        s.write_chunk(&[1, 0], &chunk).unwrap();
        s.flush().unwrap();
        drop(s);
        let r = Hdf5Store::open(&path, "/x", None, false).unwrap();
        let inner = r.inner.read();
        assert!(inner.stored.is_some(), "{codec:?}");
        let Access::Direct(steps) = &inner.access else {
            panic!("direct access")
        };
        let st = inner.allocated(&[1, 0]).unwrap().unwrap();
        assert!(st.size >= MAP_THRESHOLD as u64, "{codec:?}: {}", st.size);
        let mut mapped = vec![0u8; chunk.len()];
        assert!(r.read_chunk_into(&[1, 0], &mut mapped).unwrap());
        let (mask, stored) =
            ffi::read_chunk_raw(&inner.ds, &inner.origin(&[1, 0]), st.size).unwrap();
        let mut through_hdf5 = vec![0u8; chunk.len()];
        filters::decode(steps, mask, &stored, &mut through_hdf5).unwrap();
        assert!(mapped == chunk && through_hdf5 == chunk, "{codec:?}");
        assert!(!r.read_chunk_into(&[0, 0], &mut mapped).unwrap());
        // Cut the file inside the chunk's stored bytes while it is open.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(st.addr + st.size - 1)
            .unwrap();
        let err = r.read_chunk_into(&[1, 0], &mut mapped).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("past") && msg.contains(path.to_str().unwrap()),
            "{msg}"
        );
    }
}

/// HDF5 1.10 reports chunk addresses without the user block, so a file
/// with one is read through HDF5, and reads right.
#[test]
fn files_with_a_user_block_are_read_through_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ub.h5");
    hdf5_metno::File::with_options()
        .with_fcpl(|p| p.userblock(512))
        .create(&path)
        .unwrap();
    let s = raw_store(&path, DType::I32, &[4, 8], &[2, 8]);
    let chunk: Vec<u8> = (0..16).flat_map(|i: i32| (7 + i).to_ne_bytes()).collect();
    s.write_chunk(&[1, 0], &chunk).unwrap();
    let v = s
        .read_region(&[1, 0], &[(1, 1, 1), (3, 1, 1)])
        .unwrap()
        .unwrap();
    assert_eq!(i32::from_ne_bytes(v.try_into().unwrap()), 18);
    assert!(!s.capabilities().partial_reads);
}

#[test]
fn attributes_round_trip_and_unwritable_ones_are_left_out() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("attrs.h5");
    let attrs = json!({
        "units": "mV", "n": 3, "big": u64::MAX, "gain": 2.5, "on": true,
        "channels": [1, 2, 3], "scale": [1, 2.5], "names": ["a", "b"], "flags": [true, false],
        "meta": {"a": 1}, "none": null, "mixed": [1, "a"], "empty": [],
    });
    let labels = crate::store::Labels {
        dimension_names: Some(vec![Some("t".into()), None]),
        attributes: attrs.to_string(),
        dropped: Vec::new(),
    };
    let dropped = crate::attrs::dropped_by(crate::Format::Hdf5, &labels);
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    let opts = Hdf5Options {
        labels: Some(labels),
        ..Hdf5Options::default()
    };
    let s = Hdf5Store::create(&path, "x", DType::F32, &[4, 2], &[2, 2], &[0; 4], &opts).unwrap();
    drop(s);
    let s = Hdf5Store::open(&path, "x", None, false).unwrap();
    let got = s.labels().unwrap();
    assert_eq!(got.dimension_names, Some(vec![Some("t".into()), None]));
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    let got: serde_json::Value = serde_json::from_str(&got.attributes).unwrap();
    let mut want = attrs.as_object().unwrap().clone();
    for k in ["meta", "none", "mixed", "empty"] {
        want.remove(k);
    }
    // A list of integers and floats is stored as floats.
    want["scale"] = json!([1.0, 2.5]);
    assert_eq!(got, serde_json::Value::Object(want));
}

/// `update_attributes` on HDF5: changed values are rewritten (also with
/// another type), removed ones deleted, the dimension labels untouched,
/// all durable at return; a value HDF5 cannot hold, or a name of the
/// dimension scale convention, is refused with nothing written; a store
/// opened read-only refuses.
#[test]
fn attributes_change_in_the_file() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("change.h5");
    let opts = Hdf5Options {
        labels: Some(crate::store::Labels {
            dimension_names: Some(vec![Some("t".into()), None]),
            attributes: json!({"units": "mV", "n": 3, "gone": true}).to_string(),
            dropped: Vec::new(),
        }),
        ..Hdf5Options::default()
    };
    let s = Hdf5Store::create(&path, "x", DType::F32, &[4, 2], &[2, 2], &[0; 4], &opts).unwrap();
    s.update_attributes(&|m| {
        m.insert("n".into(), json!("three"));
        m.insert("scale".into(), json!([0.5, 2.0]));
        m.remove("gone");
        Ok(())
    })
    .unwrap();
    let want = json!({"units": "mV", "n": "three", "scale": [0.5, 2.0]});
    let attrs = |s: &Hdf5Store| -> serde_json::Value {
        serde_json::from_str(&s.labels().unwrap().attributes).unwrap()
    };
    assert_eq!(attrs(&s), want);
    for (key, value) in [("meta", json!({"a": 1})), ("DIMENSION_LIST", json!("x"))] {
        let err = s
            .update_attributes(&|m| {
                m.remove("units");
                m.insert(key.into(), value.clone());
                Ok(())
            })
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("attribute {key}")),
            "{err}"
        );
    }
    assert_eq!(attrs(&s), want);
    drop(s);
    let s = Hdf5Store::open(&path, "x", None, false).unwrap();
    assert_eq!(attrs(&s), want);
    assert_eq!(
        s.labels().unwrap().dimension_names,
        Some(vec![Some("t".into()), None])
    );
    let err = s.update_attributes(&|_| Ok(())).unwrap_err();
    assert!(err.to_string().contains("opened read-only"), "{err}");
}

/// A dense strided region of an unfiltered chunk whose pages are not in
/// the page cache (read in pieces by `store::cover`) is what HDF5 reads.
#[test]
fn cold_dense_regions_agree_with_hdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cold.h5");
    let s = raw_store(&path, DType::I32, &[2, 1024, 1024], &[1, 1024, 1024]);
    let m = s.meta();
    let chunk = [1u64, 0, 0];
    s.write_chunk(&chunk, &conformance::pattern(&m, &chunk, 5))
        .unwrap();
    s.flush().unwrap();
    let inner = s.inner.read();
    let data = inner.read_hyperslab(&chunk).unwrap();
    // a[1, ::2, 1::2]: 512 x 512 one-element runs over 4 MiB.
    let region = [(0, 1, 1), (0, 2, 512), (1, 2, 512)];
    let want = extract_region(&m, &data, &region);
    let f = std::fs::File::open(&path).unwrap();
    for pass in ["cold", "warm"] {
        if pass == "cold" {
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        }
        let mut out = vec![0xAB_u8; want.len()];
        let at = Strided {
            offset: 0,
            strides: &[0, 512, 1],
        };
        assert!(
            inner
                .read_region_into(&chunk, &region, &mut out, at)
                .unwrap()
        );
        assert!(out == want, "{pass}");
    }
}

#[test]
fn dimension_names_are_labels_and_scales_are_read() {
    use hdf5_metno::types::VarLenArray;
    use hdf5_metno::{ObjectReference1, types::VarLenAscii};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dims.h5");
    let labels = |names: Vec<Option<&str>>| crate::store::Labels {
        dimension_names: Some(names.into_iter().map(|n| n.map(String::from)).collect()),
        attributes: "{}".into(),
        dropped: Vec::new(),
    };
    let create = |name: &str, l: crate::store::Labels| {
        let opts = Hdf5Options {
            labels: Some(l),
            ..Hdf5Options::default()
        };
        Hdf5Store::create(&path, name, DType::U8, &[2, 3, 4], &[2, 3, 4], &[0], &opts)
    };
    drop(create("ascii", labels(vec![Some("t"), None, Some("x")])).unwrap());
    drop(create("utf8", labels(vec![Some("zeit_ä"), Some("y"), None])).unwrap());
    drop(create("none", labels(vec![None, None, None])).unwrap());
    let e = create("short", labels(vec![Some("t")])).unwrap_err();
    assert!(
        e.to_string().contains("1 dimension names for 3 axes"),
        "{e}"
    );
    {
        // As H5DSset_label writes them: ASCII variable-length strings.
        let f = hdf5_metno::File::open(&path).unwrap();
        let a = f
            .dataset("ascii")
            .unwrap()
            .attr("DIMENSION_LABELS")
            .unwrap();
        let v: Vec<VarLenAscii> = a.read_raw().unwrap();
        let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
        assert_eq!(v, ["t", "", "x"]);
        assert!(f.dataset("none").unwrap().attr("DIMENSION_LABELS").is_err());
        assert!(f.dataset("short").is_err());
    }
    for (ds, want) in [
        ("ascii", Some(vec![Some("t"), None, Some("x")])),
        ("utf8", Some(vec![Some("zeit_ä"), Some("y"), None])),
        ("none", None),
    ] {
        let got = Hdf5Store::open(&path, ds, None, false)
            .unwrap()
            .labels()
            .unwrap();
        let want = want.map(|v| v.into_iter().map(|n| n.map(String::from)).collect());
        assert_eq!(got.dimension_names, want, "{ds}");
        assert_eq!(got.attributes, "{}", "{ds}");
        assert!(got.dropped.is_empty(), "{ds}: {:?}", got.dropped);
    }
    // Dimension scales, made as H5DSattach_scale does (minus the
    // REFERENCE_LIST back-pointers, which reading does not need): a NAME
    // wins; an empty one, or netCDF's placeholder, leaves the scale's own
    // dataset name. A label wins over a scale.
    {
        let f = hdf5_metno::File::append(&path).unwrap();
        let scale = |n: &str, name: &str| {
            let s = f.new_dataset::<u8>().shape(1).create(n).unwrap();
            let v: VarLenAscii = VarLenAscii::from_ascii(name).unwrap();
            s.new_attr::<VarLenAscii>()
                .create("NAME")
                .unwrap()
                .write_scalar(&v)
                .unwrap();
        };
        scale("time_scale", "time");
        scale("y", "");
        scale(
            "x",
            "This is a netCDF dimension but not a netCDF variable.         4",
        );
        let r = |n: &str| f.reference::<ObjectReference1>(n).unwrap();
        let list = vec![
            VarLenArray::from_slice(&[r("time_scale")]),
            VarLenArray::from_slice(&[r("y")]),
            VarLenArray::from_slice(&[r("x")]),
        ];
        for ds in ["ascii", "none"] {
            f.dataset(ds)
                .unwrap()
                .new_attr::<VarLenArray<ObjectReference1>>()
                .shape(3)
                .create("DIMENSION_LIST")
                .unwrap()
                .write_raw(&list)
                .unwrap();
        }
        let bad = f.new_dataset::<u8>().shape((2, 3)).create("bad").unwrap();
        bad.new_attr::<VarLenArray<ObjectReference1>>()
            .shape(1)
            .create("DIMENSION_LIST")
            .unwrap()
            .write_raw(&list[..1])
            .unwrap();
    }
    for (ds, want) in [
        ("ascii", vec![Some("t"), Some("y"), Some("x")]),
        ("none", vec![Some("time"), Some("y"), Some("x")]),
    ] {
        let got = Hdf5Store::open(&path, ds, None, false)
            .unwrap()
            .labels()
            .unwrap();
        let want: Vec<Option<String>> = want.into_iter().map(|n| n.map(String::from)).collect();
        assert_eq!(got.dimension_names, Some(want), "{ds}");
        assert_eq!(got.attributes, "{}", "{ds}");
        assert!(got.dropped.is_empty(), "{ds}: {:?}", got.dropped);
    }
    // One entry for two axes: said, not guessed.
    let got = Hdf5Store::open(&path, "bad", None, false)
        .unwrap()
        .labels()
        .unwrap();
    assert_eq!(got.dimension_names, None);
    assert_eq!(got.dropped.len(), 1, "{:?}", got.dropped);
    assert!(
        got.dropped[0].contains("DIMENSION_LIST: 1 entries for 2 axes"),
        "{:?}",
        got.dropped
    );
}
