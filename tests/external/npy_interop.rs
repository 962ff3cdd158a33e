//! Interoperability with NumPy itself: files NumPy writes open in
//! `NpyStore`, files `NpyStore` writes load in NumPy with the same dtype,
//! shape, order and values, and headers match NumPy's byte for byte.
//!
//! Feature `interop`: needs `python3` with NumPy. Without it these tests
//! fail (they never skip): `pip install -r requirements-dev.txt`.

use std::fmt::Write as _;

use chunkyard::internals::{c_strides, copy_region};
use chunkyard::store::Strided;
use chunkyard::store::{ChunkStore, ChunkStoreExt as _, NpyOptions, NpyStore, Order, RawLayout};
use chunkyard::{ChunkGrid, DType, Endian};
use tempfile::TempDir;

/// Shapes tested, with a chunk shape that does not divide them.
const CASES: [(&str, &[u64], &[u64]); 5] = [
    ("2d", &[7, 10], &[3, 4]),
    ("3d", &[5, 6, 7], &[2, 4, 3]),
    ("0d", &[], &[]),
    ("1d", &[13], &[5]),
    ("empty", &[0, 5], &[2, 2]),
];

/// Runs a Python script (with numpy) with arguments.
fn python(script: &str, args: &[&str]) -> String {
    crate::common::python_with(&["numpy"], script, args)
}

fn endian_tag(e: Endian) -> &'static str {
    match e {
        Endian::Little => "le",
        Endian::Big => "be",
    }
}

fn order_tag(o: Order) -> &'static str {
    match o {
        Order::C => "C",
        Order::Fortran => "F",
    }
}

/// Little-endian bytes (a sidecar) to native order.
fn le_to_native(mut bytes: Vec<u8>, elem: usize) -> Vec<u8> {
    if cfg!(target_endian = "big") {
        for e in bytes.chunks_exact_mut(elem) {
            e.reverse();
        }
    }
    bytes
}

/// What `read_chunk` must return for `chunk` of an array whose values are
/// `full` (native, C order): the inside part, zeros past the edge.
fn expected_chunk(grid: &ChunkGrid, elem: usize, full: &[u8], chunk: &[u64]) -> Vec<u8> {
    let mut out = vec![0u8; grid.chunk_elements() * elem];
    let full_strides = c_strides(grid.shape());
    let chunk_strides = c_strides(grid.chunk_shape());
    let counts: Vec<usize> = grid
        .chunk_extent(chunk)
        .iter()
        .map(|&n| n as usize)
        .collect();
    let offset = grid
        .chunk_origin(chunk)
        .iter()
        .zip(&full_strides)
        .map(|(&o, &s)| o as usize * s)
        .sum();
    copy_region(
        &counts,
        elem,
        full,
        Strided {
            offset,
            strides: &full_strides,
        },
        &mut out,
        Strided {
            offset: 0,
            strides: &chunk_strides,
        },
    );
    out
}

/// Checks every chunk of `s` (and a strided partial read of each) against
/// the array `full`.
fn check_store(s: &NpyStore, full: &[u8], what: &str) {
    let m = &s.meta();
    let elem = m.dtype.size();
    let grid = ChunkGrid::new(&m.shape, &m.chunks, elem).unwrap();
    assert_eq!(
        full.len() as u64,
        m.shape.iter().product::<u64>() * elem as u64,
        "{what}: sidecar size"
    );
    for c in grid.chunk_coords() {
        let want = expected_chunk(&grid, elem, full, &c);
        let got = s.read_chunk(&c).unwrap().expect("npy chunks exist");
        assert!(got == want, "{what}: chunk {c:?} differs");
        // Every other element from the second position, where it exists.
        let region: Vec<(u64, u64, u64)> = m
            .chunks
            .iter()
            .map(|&n| if n > 1 { (1, 2, n / 2) } else { (0, 1, 1) })
            .collect();
        let meta = &s.meta();
        let part = s.read_region(&c, &region).unwrap().unwrap();
        assert!(
            part == chunkyard::internals::extract_region(meta, &want, &region),
            "{what}: region {region:?} of chunk {c:?} differs"
        );
    }
}

const NUMPY_WRITES: &str = r#"
import os, sys
import numpy as np

out = sys.argv[1]
dtypes = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16",
          "uint32", "uint64", "float32", "float64"]
shapes = {"2d": (7, 10), "3d": (5, 6, 7), "0d": (), "1d": (13,), "empty": (0, 5)}
rng = np.random.default_rng(1234)

def values(name, shape):
    dt = np.dtype(name)
    n = int(np.prod(shape))
    if dt.kind == "b":
        v = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        v = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    else:
        v = (rng.standard_normal(n) * 1000).astype(dt)
    return v.reshape(shape)

count = 0
for dname in dtypes:
    for sname, shape in shapes.items():
        a = values(dname, shape)
        expected = a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")
        for order in "CF":
            for endian in "<>":
                b = np.array(a, order=order)
                b = b.astype(b.dtype.newbyteorder(endian), order="K")
                for writer in ("save", "v2", "v3"):
                    tag = "le" if endian == "<" else "be"
                    name = f"{dname}_{sname}_{order}_{tag}_{writer}"
                    path = os.path.join(out, name + ".npy")
                    if writer == "save":
                        np.save(path, b)
                    else:
                        version = (2, 0) if writer == "v2" else (3, 0)
                        with open(path, "wb") as f:
                            np.lib.format.write_array(f, b, version=version)
                    with open(os.path.join(out, name + ".bin"), "wb") as f:
                        f.write(expected)
                    count += 1
print(count)
"#;

#[test]
fn numpy_written_files_read_back_chunk_by_chunk() {
    let dir = TempDir::new().unwrap();
    let d = dir.path().to_str().unwrap();
    let printed = python(NUMPY_WRITES, &[d]);
    let mut checked = 0;
    for dtype in DType::ALL {
        for (sname, shape, chunks) in CASES {
            for order in [Order::C, Order::Fortran] {
                for endian in [Endian::Little, Endian::Big] {
                    for (writer, version) in [("save", (1, 0)), ("v2", (2, 0)), ("v3", (3, 0))] {
                        let name = format!(
                            "{}_{sname}_{}_{}_{writer}",
                            dtype.numpy_name(),
                            order_tag(order),
                            endian_tag(endian)
                        );
                        let path = dir.path().join(format!("{name}.npy"));
                        let full = le_to_native(
                            std::fs::read(dir.path().join(format!("{name}.bin"))).unwrap(),
                            dtype.size(),
                        );
                        let s = NpyStore::open(&path, Some(chunks), false)
                            .unwrap_or_else(|e| panic!("{name}: {e}"));
                        let h = s.header();
                        assert_eq!(h.version, version, "{name}");
                        assert_eq!(h.dtype, dtype, "{name}");
                        assert_eq!(h.shape, shape, "{name}");
                        assert_eq!(h.data_offset % 64, 0, "{name}");
                        // NumPy calls 1-d, 0-d and empty arrays C-ordered.
                        let fortran =
                            order == Order::Fortran && shape.len() >= 2 && !shape.contains(&0);
                        let want_order = if fortran { Order::Fortran } else { Order::C };
                        assert_eq!(h.order, want_order, "{name}");
                        if dtype.size() > 1 {
                            assert_eq!(h.endian, endian, "{name}");
                        }
                        check_store(&s, &full, &name);
                        // The default chunk shape reads the same values.
                        let s = NpyStore::open(&path, None, false).unwrap();
                        check_store(&s, &full, &format!("{name} (default chunks)"));
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(printed.trim(), checked.to_string());
    assert_eq!(checked, 11 * 5 * 2 * 2 * 3);
}

/// Native-order values for `n` elements: every byte of wide integers
/// varies, floats are exact in `f32`, bools are 0 or 1.
fn values(dtype: DType, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * dtype.size());
    for i in 0..n as u64 {
        let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 17);
        let f = (x % 100_000) as f64 / 8.0 - 5000.0;
        match dtype {
            DType::Bool => out.push((x >> 7) as u8 & 1),
            DType::I8 | DType::U8 => out.push(x as u8),
            DType::I16 | DType::U16 => out.extend_from_slice(&(x as u16).to_ne_bytes()),
            DType::I32 | DType::U32 => out.extend_from_slice(&(x as u32).to_ne_bytes()),
            DType::I64 | DType::U64 => out.extend_from_slice(&x.to_ne_bytes()),
            DType::F32 => out.extend_from_slice(&(f as f32).to_ne_bytes()),
            DType::F64 => out.extend_from_slice(&f.to_ne_bytes()),
            _ => unreachable!("{dtype}"),
        }
    }
    out
}

fn native_to_le(mut bytes: Vec<u8>, elem: usize) -> Vec<u8> {
    if cfg!(target_endian = "big") {
        for e in bytes.chunks_exact_mut(elem) {
            e.reverse();
        }
    }
    bytes
}

/// Writes every chunk of `s` from the array `full`, with junk in the
/// padding of edge chunks (which must not reach the file).
fn write_all(s: &NpyStore, full: &[u8]) {
    let m = &s.meta();
    let elem = m.dtype.size();
    let grid = ChunkGrid::new(&m.shape, &m.chunks, elem).unwrap();
    let junk = if m.dtype == DType::Bool { 1 } else { 0xAB };
    for c in grid.chunk_coords() {
        let mut data = vec![junk; grid.chunk_elements() * elem];
        let inside = expected_chunk(&grid, elem, full, &c);
        let counts: Vec<usize> = grid.chunk_extent(&c).iter().map(|&n| n as usize).collect();
        let cs = c_strides(&m.chunks);
        let at = Strided {
            offset: 0,
            strides: &cs,
        };
        copy_region(&counts, elem, &inside, at, &mut data, at);
        s.write_chunk(&c, &data).unwrap();
    }
}

const NUMPY_CHECKS: &str = r#"
import io, json, sys
import numpy as np

failures = []
manifest = json.load(open(sys.argv[1]))
for e in manifest:
    path, descr, shape, fortran = e["path"], e["descr"], tuple(e["shape"]), e["fortran"]
    a = np.load(path, mmap_mode="r")
    if a.dtype.str != descr:
        failures.append(f"{path}: dtype {a.dtype.str}, expected {descr}")
    if a.shape != shape:
        failures.append(f"{path}: shape {a.shape}, expected {shape}")
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        _, fortran_order, _ = read(f)
        offset = f.tell()
    if fortran_order != fortran:
        failures.append(f"{path}: fortran_order {fortran_order}, expected {fortran}")
    if fortran and a.ndim >= 2 and a.size > 1 and not a.flags.f_contiguous:
        failures.append(f"{path}: not loaded as a Fortran array")
    got = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    if got != open(e["expected"], "rb").read():
        failures.append(f"{path}: values differ")
    # The header is what NumPy writes for this dict, byte for byte.
    d = {"descr": descr, "fortran_order": fortran, "shape": shape}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, d)
    with open(path, "rb") as f:
        head = f.read(offset)
    if head != buf.getvalue():
        failures.append(f"{path}: header {head!r} != numpy's {buf.getvalue()!r}")
    # Where np.save would pick the same order, its file starts the same.
    if not fortran or (a.ndim >= 2 and a.size > 1):
        buf = io.BytesIO()
        np.save(buf, np.zeros(shape, dtype=descr, order="F" if fortran else "C"))
        if buf.getvalue()[:offset] != head:
            failures.append(f"{path}: header differs from np.save's")
for f in failures:
    print(f)
if failures:
    sys.exit(1)
print("OK", len(manifest))
"#;

#[test]
fn chunkyard_written_files_load_in_numpy() {
    let dir = TempDir::new().unwrap();
    let mut manifest = String::from("[");
    let mut n = 0;
    for dtype in DType::ALL {
        for (sname, shape, chunks) in CASES {
            for order in [Order::C, Order::Fortran] {
                for endian in [Endian::Little, Endian::Big] {
                    let name = format!(
                        "{}_{sname}_{}_{}",
                        dtype.numpy_name(),
                        order_tag(order),
                        endian_tag(endian)
                    );
                    let path = dir.path().join(format!("{name}.npy"));
                    let opts = NpyOptions {
                        order,
                        endian,
                        overwrite: false,
                    };
                    let s = NpyStore::create(&path, dtype, shape, chunks, &opts).unwrap();
                    let full = values(dtype, shape.iter().product::<u64>() as usize);
                    write_all(&s, &full);
                    s.flush().unwrap();
                    drop(s);
                    // Reopened, chunkyard reads back what it wrote.
                    let r = NpyStore::open(&path, Some(chunks), false).unwrap();
                    check_store(&r, &full, &name);
                    let expected = dir.path().join(format!("{name}.bin"));
                    std::fs::write(&expected, native_to_le(full, dtype.size())).unwrap();
                    let shape_json: Vec<String> = shape.iter().map(u64::to_string).collect();
                    if n > 0 {
                        manifest.push(',');
                    }
                    write!(
                        manifest,
                        r#"{{"path": {:?}, "expected": {:?}, "descr": "{}", "shape": [{}], "fortran": {}}}"#,
                        path.to_str().unwrap(),
                        expected.to_str().unwrap(),
                        dtype.numpy_descr(endian),
                        shape_json.join(", "),
                        order == Order::Fortran
                    )
                    .unwrap();
                    n += 1;
                }
            }
        }
    }
    manifest.push(']');
    let mpath = dir.path().join("manifest.json");
    std::fs::write(&mpath, manifest).unwrap();
    let out = python(NUMPY_CHECKS, &[mpath.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("OK {n}"), "{out}");
}

const NUMPY_HEADERS: &str = r#"
import io, json, sys
import numpy as np

failures = []
cases = json.load(open(sys.argv[1]))
for c in cases:
    d = {"descr": c["descr"], "fortran_order": c["fortran"], "shape": tuple(c["shape"])}
    # np.save's choice: version 1.0 unless the header is too long for it.
    buf = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(buf, d)
    except ValueError:
        buf = io.BytesIO()
        np.lib.format.write_array_header_2_0(buf, d)
    want = buf.getvalue()
    with open(c["path"], "rb") as f:
        got = f.read(len(want) + 64)
    if got[:len(want)] != want:
        failures.append(f"{c['path']}: {got[:len(want)][:300]!r} != {want[:300]!r}")
    elif len(got) > len(want) and len(want) != c["offset"]:
        failures.append(f"{c['path']}: data offset {c['offset']}, numpy's {len(want)}")
for f in failures:
    print(f)
if failures:
    sys.exit(1)
print("OK", len(cases))
"#;

#[test]
fn headers_match_numpy_byte_for_byte() {
    let dir = TempDir::new().unwrap();
    let ones = |n: usize| vec![1u64; n];
    let mut boundary = vec![1u64; 14];
    boundary.push(3);
    let mut boundary2 = vec![2u64; 14];
    boundary2.push(12345);
    // (shape, dtype, version expected)
    let cases: Vec<(Vec<u64>, DType, u8)> = vec![
        (vec![500, 2000, 2000], DType::F32, 1),
        (vec![3, 4], DType::I16, 1),
        (vec![], DType::Bool, 1),
        (vec![5], DType::U64, 1),
        (vec![0, 7], DType::F64, 1),
        (vec![123_456_789_012, 1], DType::U8, 1),
        // In Fortran order these land exactly on a 64-byte boundary once
        // NumPy's 21 growth digits are counted: 192 bytes, not 128.
        (boundary, DType::F32, 1),
        (boundary2, DType::U8, 1),
        (ones(60), DType::F64, 1),
        // Either side of the 65535-byte limit of version 1.0.
        (ones(21_800), DType::F64, 1),
        (ones(25_000), DType::F64, 2),
    ];
    let mut manifest = String::from("[");
    let mut n = 0;
    for (i, (shape, dtype, version)) in cases.iter().enumerate() {
        for order in [Order::C, Order::Fortran] {
            for endian in [Endian::Little, Endian::Big] {
                let path = dir.path().join(format!(
                    "h{i}{}{}.npy",
                    order_tag(order),
                    endian_tag(endian)
                ));
                let opts = NpyOptions {
                    order,
                    endian,
                    overwrite: false,
                };
                let chunks = ones(shape.len());
                let s = NpyStore::create(&path, *dtype, shape, &chunks, &opts).unwrap();
                assert_eq!(s.header().version, (*version, 0), "{path:?}");
                assert_eq!(s.header().data_offset % 64, 0);
                let offset = s.header().data_offset;
                drop(s);
                let r = NpyStore::open(&path, None, false).unwrap();
                assert_eq!(&r.meta().shape, shape);
                assert_eq!(r.header().order, order);
                if n > 0 {
                    manifest.push(',');
                }
                let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
                write!(
                    manifest,
                    r#"{{"path": {:?}, "descr": "{}", "fortran": {}, "shape": [{}], "offset": {offset}}}"#,
                    path.to_str().unwrap(),
                    dtype.numpy_descr(endian),
                    order == Order::Fortran,
                    dims.join(",")
                )
                .unwrap();
                n += 1;
            }
        }
    }
    manifest.push(']');
    let mpath = dir.path().join("headers.json");
    std::fs::write(&mpath, manifest).unwrap();
    let out = python(NUMPY_HEADERS, &[mpath.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("OK {n}"), "{out}");
}

const NUMPY_RAW: &str = r#"
import os, sys
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(7)
for dname in ["bool", "int16", "uint32", "int64", "float32", "float64", "uint8"]:
    dt = np.dtype(dname)
    if dt.kind == "b":
        a = rng.integers(0, 2, 70).astype(bool).reshape(7, 10)
    else:
        a = rng.integers(-1000, 1000, 70).astype(dt).reshape(7, 10)
    expected = a.astype(a.dtype.newbyteorder("<")).tobytes(order="C")
    for order in "CF":
        for endian in "<>":
            for offset in (0, 3, 100):
                tag = "le" if endian == "<" else "be"
                name = f"{dname}_{order}_{tag}_{offset}"
                b = a.astype(a.dtype.newbyteorder(endian))
                with open(os.path.join(out, name + ".raw"), "wb") as f:
                    f.write(b"\x01" * offset)
                    b.ravel(order=order).tofile(f)
                # numpy.memmap agrees with the layout we claim.
                m = np.memmap(os.path.join(out, name + ".raw"), dtype=b.dtype, mode="r",
                              offset=offset, shape=(7, 10), order=order)
                assert (m == a).all(), name
                with open(os.path.join(out, name + ".bin"), "wb") as f:
                    f.write(expected)
print("OK")
"#;

const NUMPY_MEMMAP_CHECK: &str = r#"
import sys
import numpy as np

path, descr, order, offset, expected = sys.argv[1:6]
m = np.memmap(path, dtype=np.dtype(descr), mode="r", offset=int(offset), shape=(5, 6, 7), order=order)
got = np.ascontiguousarray(m).astype(m.dtype.newbyteorder("<")).tobytes()
if got != open(expected, "rb").read():
    print("values differ")
    sys.exit(1)
print("OK")
"#;

#[test]
fn raw_files_match_numpy_memmap() {
    let dir = TempDir::new().unwrap();
    python(NUMPY_RAW, &[dir.path().to_str().unwrap()]);
    let dtypes = [
        DType::Bool,
        DType::I16,
        DType::U32,
        DType::I64,
        DType::F32,
        DType::F64,
        DType::U8,
    ];
    for dtype in dtypes {
        for order in [Order::C, Order::Fortran] {
            for endian in [Endian::Little, Endian::Big] {
                for offset in [0u64, 3, 100] {
                    let name = format!(
                        "{}_{}_{}_{offset}",
                        dtype.numpy_name(),
                        order_tag(order),
                        endian_tag(endian)
                    );
                    let layout = RawLayout {
                        dtype,
                        endian,
                        shape: vec![7, 10],
                        offset,
                        order,
                    };
                    let path = dir.path().join(format!("{name}.raw"));
                    let full = le_to_native(
                        std::fs::read(dir.path().join(format!("{name}.bin"))).unwrap(),
                        dtype.size(),
                    );
                    let s = NpyStore::open_raw(&path, &layout, Some(&[3, 4]), false)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert_eq!(s.header().version, (0, 0));
                    assert_eq!(s.header().data_offset, offset);
                    check_store(&s, &full, &name);
                }
            }
        }
    }
    // And the other way: chunkyard writes raw files numpy.memmap reads.
    for (i, (order, endian, offset)) in [
        (Order::C, Endian::Little, 0u64),
        (Order::Fortran, Endian::Big, 5),
        (Order::Fortran, Endian::Little, 64),
        (Order::C, Endian::Big, 13),
    ]
    .into_iter()
    .enumerate()
    {
        for dtype in [DType::I32, DType::F64, DType::U16] {
            let path = dir.path().join(format!("out{i}_{dtype}.raw"));
            let layout = RawLayout {
                dtype,
                endian,
                shape: vec![5, 6, 7],
                offset,
                order,
            };
            let s = NpyStore::create_raw(&path, &layout, &[2, 4, 3], false).unwrap();
            let full = values(dtype, 5 * 6 * 7);
            write_all(&s, &full);
            s.flush().unwrap();
            drop(s);
            let expected = dir.path().join(format!("out{i}_{dtype}.bin"));
            std::fs::write(&expected, native_to_le(full, dtype.size())).unwrap();
            let out = python(
                NUMPY_MEMMAP_CHECK,
                &[
                    path.to_str().unwrap(),
                    &dtype.numpy_descr(endian),
                    order_tag(order),
                    &offset.to_string(),
                    expected.to_str().unwrap(),
                ],
            );
            assert_eq!(out.trim(), "OK");
        }
    }
}

#[test]
fn unsupported_numpy_dtypes_are_refused_by_name() {
    let dir = TempDir::new().unwrap();
    let script = r#"
import sys, os
import numpy as np
out = sys.argv[1]
np.save(os.path.join(out, "c8.npy"), np.zeros(3, dtype="<c8"))
np.save(os.path.join(out, "f2.npy"), np.zeros(3, dtype="<f2"))
np.save(os.path.join(out, "u3.npy"), np.array(["abc"], dtype="<U3"))
np.save(os.path.join(out, "obj.npy"), np.array([1, None], dtype=object), allow_pickle=True)
np.save(os.path.join(out, "rec.npy"), np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2")]))
"#;
    python(script, &[dir.path().to_str().unwrap()]);
    for (file, descr) in [
        ("c8.npy", "<c8"),
        ("f2.npy", "<f2"),
        ("u3.npy", "<U3"),
        ("obj.npy", "|O"),
        ("rec.npy", "structured"),
    ] {
        let e = NpyStore::open(&dir.path().join(file), None, false).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, chunkyard::Error::Unsupported(_)),
            "{file}: {msg}"
        );
        assert!(msg.contains(file) && msg.contains(descr), "{file}: {msg}");
    }
}

#[test]
fn sidecar_helpers_are_consistent() {
    // Guards the helpers above: a value array survives the round trip.
    let v = values(DType::U32, 10);
    assert_eq!(le_to_native(native_to_le(v.clone(), 4), 4), v);
    let grid = ChunkGrid::new(&[3, 3], &[2, 2], 1).unwrap();
    let full: Vec<u8> = (1..=9).collect();
    assert_eq!(expected_chunk(&grid, 1, &full, &[1, 1]), vec![9, 0, 0, 0]);
    assert_eq!(expected_chunk(&grid, 1, &full, &[0, 1]), vec![3, 0, 6, 0]);
}
