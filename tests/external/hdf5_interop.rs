//! Interoperability with h5py (and hdf5plugin's LZ4 filter): h5py reads
//! every codec chunkyard writes; chunkyard reads what h5py writes
//! (contiguous, chunked + gzip, chunked + lz4, big-endian, partly written);
//! bad files and datasets are typed errors, one line on the command line.
//!
//! Features `hdf5` and `interop`: needs `python3` with `h5py`, `hdf5plugin`
//! and NumPy. Without them these tests fail (they never skip):
//! `pip install -r requirements-dev.txt`.

use crate::common::p;
#[cfg(feature = "cli")]
use crate::common::{fails, ok};

use chunkyard::store::{ChunkStore, ChunkStoreExt as _, Hdf5Store};
use chunkyard::{ArrayHandle, ArrayOptions, ChunkCache, Codec, DType, Error, OpenOptions};

/// The tests here run one at a time, and no other test's child process
/// runs meanwhile: HDF5 holds an `flock` on every open file, and a
/// subprocess spawned by one test (python, chunkyard) inherits the
/// descriptors another test has open at that moment, so the lock outlives
/// the file's close in this process and a reopen fails with EAGAIN
/// (`common::hdf5_files`).
fn serial() -> crate::common::Hdf5Files {
    crate::common::hdf5_files()
}

/// Runs a Python script (with h5py and hdf5plugin) with arguments.
fn python(script: &str, args: &[&str]) -> String {
    crate::common::python_with(&["numpy", "h5py", "hdf5plugin"], script, args)
}

fn read_all(path: &str) -> ArrayHandle {
    ArrayHandle::open(
        path,
        OpenOptions::new()
            .read_only(true)
            .cache(ChunkCache::new(1 << 20)),
    )
    .unwrap_or_else(|e| panic!("open {path}: {e}"))
}

fn bytes_of(a: &ArrayHandle) -> Vec<u8> {
    let sel = a.resolve("...").unwrap();
    let mut out = vec![0u8; a.nbytes() as usize];
    a.read_bytes(&sel, &mut out).unwrap();
    out
}

/// Writes, with h5py, one dataset per case into `py.h5` and each one's
/// values into `<name>.npy` beside it.
const H5PY_WRITES: &str = r#"
import sys, numpy as np, h5py, hdf5plugin
d = sys.argv[1]
cases = {}
def vals(shape, dt):
    n = int(np.prod(shape))
    x = (np.arange(n) * 7919 % 251).reshape(shape)
    if np.dtype(dt).kind == 'b':
        return (x % 3 == 0)
    if np.dtype(dt).kind == 'f':
        return (x - 100.25).astype(dt)
    if np.dtype(dt).kind == 'i':
        return (x - 120).astype(dt)
    return x.astype(dt)
with h5py.File(d + '/py.h5', 'w') as f:
    for dt in ['?', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f4', 'f8']:
        name = 'contig_' + np.dtype(dt).name
        f[name] = vals((5, 7), dt)
        f.create_dataset('chunk/' + np.dtype(dt).name, data=vals((9, 13), dt), chunks=(4, 5))
    f.create_dataset('gzip', data=vals((9, 13), 'f8'), chunks=(4, 5), compression='gzip', shuffle=True)
    f.create_dataset('lz4', data=vals((9, 13), 'i4'), chunks=(4, 5), **hdf5plugin.LZ4())
    f.create_dataset('lz4_blocks', data=vals((20, 30), 'u2'), chunks=(10, 30), **hdf5plugin.LZ4(nbytes=64))
    f.create_dataset('be/f64', data=vals((9, 13), '>f8'), chunks=(4, 5), compression='gzip')
    f.create_dataset('be/i16', data=vals((9, 13), '>i2'), chunks=(4, 5))
    f['be/u32_contig'] = vals((6, 4), '>u4')
    part = f.create_dataset('partial', shape=(10, 10), dtype='i4', chunks=(4, 4), fillvalue=7, **hdf5plugin.LZ4())
    part[0:4, 0:4] = vals((4, 4), 'i4')
    f['scalar'] = np.float64(2.5)
    for name in ['gzip', 'lz4', 'lz4_blocks', 'be/f64', 'be/i16', 'be/u32_contig', 'partial', 'scalar'] + \
            ['contig_' + np.dtype(t).name for t in ['?', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f4', 'f8']] + \
            ['chunk/' + np.dtype(t).name for t in ['?', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8', 'f4', 'f8']]:
        a = f[name][...]
        np.save(d + '/' + name.replace('/', '_') + '.npy', a.astype(a.dtype.newbyteorder('=')))
        print(name)
"#;

#[test]
fn chunkyard_reads_what_h5py_writes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let names = python(H5PY_WRITES, &[p(dir.path())]);
    let h5 = dir.path().join("py.h5");
    let mut seen = 0;
    for name in names.lines() {
        let a = read_all(&format!("{}:/{name}", p(&h5)));
        let npy = dir.path().join(format!("{}.npy", name.replace('/', "_")));
        let b = read_all(p(&npy));
        assert_eq!(a.dtype(), b.dtype(), "{name}: dtype");
        assert_eq!(a.shape(), b.shape(), "{name}: shape");
        assert!(bytes_of(&a) == bytes_of(&b), "{name}: values differ");
        seen += 1;
    }
    assert_eq!(seen, 30);

    // Partly written: the fill value, and unallocated chunks are None.
    let s = Hdf5Store::open(&h5, "partial", None, false).unwrap();
    assert_eq!(s.meta().fill, 7i32.to_ne_bytes());
    assert!(s.read_chunk(&[0, 0]).unwrap().is_some());
    assert!(s.read_chunk(&[1, 1]).unwrap().is_none());
    assert!(s.read_chunk(&[2, 2]).unwrap().is_none());
    assert!(s.describe().contains("lz4"), "{}", s.describe());
    let be = Hdf5Store::open(&h5, "be/f64", None, false).unwrap();
    assert!(be.describe().contains("big-endian"), "{}", be.describe());

    // h5py's default (contiguous) datasets, opened read-only, are read
    // straight from the file: one element of a 2 x 3 block.
    let c = Hdf5Store::open(&h5, "contig_int32", Some(&[2, 3]), false).unwrap();
    assert!(c.capabilities().partial_reads, "{}", c.describe());
    let want = read_all(p(&dir.path().join("contig_int32.npy")));
    let mut e = [0u8; 4];
    want.get_bytes(&[3, 5], &mut e).unwrap();
    let got = c.read_region(&[1, 1], &[(1, 1, 1), (2, 1, 1)]).unwrap();
    assert_eq!(got.unwrap(), e);
}

/// Checks, with h5py, every dataset chunkyard wrote against its .npy twin
/// (dtype, values, fill value, compression filter).
const H5PY_CHECKS: &str = r#"
import sys, json, numpy as np, h5py, hdf5plugin
h5, d = sys.argv[1], sys.argv[2]
with h5py.File(h5, 'r') as f:
    n = 0
    def visit(name, obj):
        global n
        if not isinstance(obj, h5py.Dataset):
            return
        codec, dt = name.split('/')[1:]
        want = np.load(d + '/' + codec + '_' + dt + '.npy')
        got = obj[...]
        assert got.dtype == want.dtype, (name, got.dtype, want.dtype)
        assert np.array_equal(got, want), (name, got, want)
        assert obj.chunks == (3, 4), (name, obj.chunks)
        assert obj.fillvalue == want.dtype.type(1), (name, obj.fillvalue)
        filters = set(obj._filters)
        expect = {'none': set(), 'gzip': {'gzip'}, 'lz4': {'32004'}}[codec]
        assert filters == expect, (name, filters)
        # Unwritten chunks are not allocated.
        assert obj.id.get_num_chunks() == 3 * 3 - 3 * 1, (name, obj.id.get_num_chunks())
        n += 1
    f.visititems(visit)
    print(n)
"#;

#[test]
fn h5py_reads_every_codec_chunkyard_writes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("cy.h5");
    let cache = ChunkCache::new(1 << 20);
    for codec in ["none", "gzip", "lz4"] {
        for dtype in DType::ALL {
            let shape = [7u64, 10];
            let fill = dtype.parse_value("1").unwrap();
            let opts = ArrayOptions::new(shape)
                .chunks([3, 4])
                .codec(codec.parse::<Codec>().unwrap())
                .fill_bytes(dtype, fill)
                .cache(cache.clone());
            let path = format!("{}:/g/{codec}/{}", p(&h5), dtype.name());
            let a = ArrayHandle::create(&path, dtype, &opts).unwrap();
            // Rows 0..6 of 7: the last chunk row (row 6) stays unwritten.
            let sel = a.resolve("0:6, :").unwrap();
            let vals: Vec<u8> = (0..60u32)
                .flat_map(|i| {
                    let text = match dtype {
                        DType::Bool => ((i % 3 == 0) as u8).to_string(),
                        DType::F32 | DType::F64 => format!("{}.5", i as i32 - 20),
                        DType::I8 | DType::I16 | DType::I32 | DType::I64 => {
                            (i as i32 - 20).to_string()
                        }
                        _ => (i * 3).to_string(),
                    };
                    dtype.parse_value(&text).unwrap()
                })
                .collect();
            a.write_bytes(&sel, &vals).unwrap();
            a.flush().unwrap();
            // The same values, and the fill value, in a .npy twin.
            let twin = dir.path().join(format!("{codec}_{}.npy", dtype.name()));
            let b = ArrayHandle::create(&twin, dtype, ArrayOptions::new(shape)).unwrap();
            b.fill_bytes(&b.resolve("...").unwrap(), &dtype.parse_value("1").unwrap())
                .unwrap();
            b.write_bytes(&sel, &vals).unwrap();
            b.flush().unwrap();
        }
    }
    let n = python(H5PY_CHECKS, &[p(&h5), p(dir.path())]);
    assert_eq!(n.trim(), "33");
}

#[test]
fn bad_files_and_datasets_are_typed_errors() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let h5 = dir.path().join("odd.h5");
    python(
        r#"
import sys, numpy as np, h5py
with h5py.File(sys.argv[1], 'w') as f:
    f['s'] = np.array([b'ab', b'cd'])
    f['c'] = np.zeros(3, dtype=[('a', 'i4'), ('b', 'f8')])
    f['f16'] = np.zeros(3, dtype='f2')
    f['ok'] = np.arange(3)
"#,
        &[p(&h5)],
    );
    let open = |path: &str| ArrayHandle::open(path, OpenOptions::new().read_only(true));
    for ds in ["s", "c", "f16"] {
        match open(&format!("{}:/{ds}", p(&h5))) {
            Err(Error::Unsupported(m)) => assert!(m.contains("element type"), "{ds}: {m}"),
            other => panic!("{ds}: {other:?}"),
        }
    }
    match open(&format!("{}:/nope", p(&h5))) {
        Err(Error::Format { message, .. }) => {
            assert!(message.contains("no dataset /nope"), "{message}");
            assert!(message.contains("/ok"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"this is not an HDF5 file at all").unwrap();
    assert!(matches!(open(p(&junk)), Err(Error::Format { .. })));
    let missing = dir.path().join("missing.h5");
    assert!(matches!(open(p(&missing)), Err(Error::Io { .. })));
    // Truncated: a real HDF5 file cut short.
    let cut = dir.path().join("cut.h5");
    let full = std::fs::read(&h5).unwrap();
    std::fs::write(&cut, &full[..full.len() / 3]).unwrap();
    assert!(open(&format!("{}:/ok", p(&cut))).is_err());
    // Creating over a file that is not HDF5 needs overwrite.
    let opts = ArrayOptions::new([4]);
    assert!(ArrayHandle::create(p(&junk), DType::U8, &opts).is_err());
    assert!(ArrayHandle::create(p(&junk), DType::U8, opts.clone().overwrite(true)).is_ok());
    // zstd is not an HDF5 codec here.
    let z = ArrayOptions::new([4]).codec("zstd".parse().unwrap());
    let zpath = dir.path().join("z.h5");
    assert!(matches!(
        ArrayHandle::create(p(&zpath), DType::U8, &z),
        Err(Error::Unsupported(_))
    ));
}

#[cfg(feature = "cli")]
#[test]
fn cli_converts_among_npy_and_hdf5_and_lists_datasets() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let src = d("src.npy");
    python(
        "import sys, numpy as np; np.save(sys.argv[1], (np.arange(6*50*40) % 977).reshape(6, 50, 40).astype('f4'))",
        &[&src],
    );
    let lz4 = format!("{}:/vol/lz4", d("a.h5"));
    let gz = format!("{}:/vol/gz", d("c.h5"));
    ok(&[
        "convert", &src, &lz4, "--chunks", "2,25,40", "--codec", "lz4",
    ]);
    ok(&["convert", &lz4, &gz, "--codec", "gzip:4", "--dtype", "f64"]);
    ok(&["convert", &gz, &d("b.hdf5"), "--dtype", "f32"]);
    ok(&["convert", &format!("{}:data", d("b.hdf5")), &d("back.npy")]);
    python(
        r#"
import sys, numpy as np, h5py, hdf5plugin
src = np.load(sys.argv[1])
with h5py.File(sys.argv[2], 'r') as f:
    assert f['vol/lz4'].dtype == np.float32 and '32004' in f['vol/lz4']._filters
    assert f['vol/lz4'].chunks == (2, 25, 40)
    assert np.array_equal(f['vol/lz4'][...], src)
with h5py.File(sys.argv[5], 'r') as f:
    assert f['vol/gz'].dtype == np.float64 and f['vol/gz'].compression == 'gzip'
    assert np.array_equal(f['vol/gz'][...], src)
with h5py.File(sys.argv[3], 'r') as f:
    assert np.array_equal(f['data'][...], src)
assert np.array_equal(np.load(sys.argv[4]), src)
"#,
        &[&src, &d("a.h5"), &d("b.hdf5"), &d("back.npy"), &d("c.h5")],
    );
    // A second dataset in the same file, and the listing of both.
    ok(&[
        "create",
        &format!("{}:/other/x", d("a.h5")),
        "--shape",
        "3",
        "--dtype",
        "u8",
    ]);
    let list = ok(&["info", &d("a.h5")]);
    assert!(
        list.contains("/vol/lz4  f32  (6, 50, 40)  chunks (2, 25, 40)"),
        "{list}"
    );
    assert!(list.contains("/other/x  u8  (3,)"), "{list}");
    // HDF5 cannot write a file this process reads: a clear error.
    let same = fails(&["convert", &lz4, &format!("{}:/copy", d("a.h5"))]);
    assert!(same.contains("already open read-only"), "{same}");
    let json = ok(&["info", &d("a.h5"), "--json"]);
    assert!(json.contains("\"name\": \"/other/x\""), "{json}");
    let one = ok(&["info", &lz4]);
    assert!(one.contains("lz4"), "{one}");
    assert_eq!(
        ok(&["get", &lz4, "5,49,39"]).trim(),
        ((5 * 2000 + 49 * 40 + 39) % 977).to_string() + ".0"
    );

    // put into a contiguous dataset h5py wrote (HDF5's own hyperslab I/O).
    let h = d("py.h5");
    python(
        "import sys, numpy as np, h5py\nwith h5py.File(sys.argv[1], 'w') as f: f['c'] = np.zeros((5, 6), '>i2')",
        &[&h],
    );
    ok(&["put", &format!("{h}:/c"), "1:3, ::2", "--value", "-9"]);
    python(
        r#"
import sys, numpy as np, h5py
with h5py.File(sys.argv[1], 'r') as f:
    a = f['c'][...]
want = np.zeros((5, 6), 'i2'); want[1:3, ::2] = -9
assert np.array_equal(a, want), a
"#,
        &[&h],
    );

    let junk = d("junk.h5");
    std::fs::write(&junk, b"nope").unwrap();
    assert!(fails(&["info", &format!("{junk}:/x")]).contains("not an HDF5 file"));
    assert!(fails(&["info", &format!("{}:/missing", d("a.h5"))]).contains("no dataset"));
    fails(&["get", &format!("{}:/nope", d("a.h5")), "0"]);
    fails(&["create", &lz4, "--shape", "3", "--dtype", "f4"]);
    fails(&[
        "create",
        &d("z.h5"),
        "--shape",
        "3",
        "--dtype",
        "f4",
        "--codec",
        "zstd",
    ]);
}

/// Dimension names both ways: chunkyard's are h5py's `dims[i].label`;
/// h5py's labels, and the scales h5py (`make_scale`/`attach_scale`) and
/// netCDF-4 (a placeholder `NAME`: the scale dataset's name) attach, are
/// chunkyard's names, on `info`, in the library and through `convert`.
#[cfg(feature = "cli")]
#[test]
fn dimension_names_are_labels_and_scales() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let py = |script: &str| {
        crate::common::python_with(
            &["numpy", "h5py", "zarr"],
            script,
            &[dir.path().to_str().unwrap()],
        )
    };
    // chunkyard -> h5py, names with a gap and a non-ASCII one.
    let opts = ArrayOptions::new([2, 3, 4])
        .dimension_names([Some("zeit_ä"), None, Some("x")])
        .attr("units", "mV");
    ArrayHandle::create(format!("{}:/v", d("cy.h5")), DType::F32, &opts)
        .unwrap()
        .close()
        .unwrap();
    py(r#"
import sys, h5py
with h5py.File(sys.argv[1] + "/cy.h5", "r") as f:
    ds = f["v"]
    assert [d.label for d in ds.dims] == ["zeit_ä", "", "x"], [d.label for d in ds.dims]
    assert set(ds.attrs) == {"units", "DIMENSION_LABELS"}, set(ds.attrs)
"#);
    // h5py -> chunkyard: labels, scales, a label over a scale, netCDF-4's
    // placeholder, an axis with neither, and a dataset naming none.
    py(r#"
import sys, numpy as np, h5py
with h5py.File(sys.argv[1] + "/py.h5", "w") as f:
    lab = f.create_dataset("lab", data=np.zeros((2, 3), "i2"))
    lab.dims[0].label = "t"
    lab.dims[1].label = "x"
    f["time_axis"] = np.arange(2.0)
    f["time_axis"].make_scale("time")
    f["y"] = np.arange(3.0)
    f["y"].make_scale()
    f["x"] = np.arange(4.0)
    f["x"].make_scale("This is a netCDF dimension but not a netCDF variable.         4")
    sc = f.create_dataset("sc", data=np.zeros((2, 3, 4, 5), "f4"))
    sc.attrs["units"] = "K"
    sc.dims[0].attach_scale(f["time_axis"])
    sc.dims[1].attach_scale(f["y"])
    sc.dims[2].attach_scale(f["x"])
    sc.dims[1].label = "row"
    f.create_dataset("plain", data=np.zeros(3, "u1"))
"#);
    let names = |ds: &str| read_all(&format!("{}:{ds}", d("py.h5"))).dimension_names();
    let s = |v: &[Option<&str>]| Some(v.iter().map(|n| n.map(String::from)).collect::<Vec<_>>());
    assert_eq!(names("/lab"), s(&[Some("t"), Some("x")]));
    assert_eq!(
        names("/sc"),
        s(&[Some("time"), Some("row"), Some("x"), None])
    );
    assert_eq!(names("/plain"), None);
    let info = ok(&["info", &format!("{}:/sc", d("py.h5"))]);
    assert!(info.contains("dimensions:  (time, row, x, -)"), "{info}");
    assert!(
        !info.contains("unread") && !info.contains("DIMENSION"),
        "{info}"
    );
    // ... and on to Zarr v3.
    let out = ok(&["convert", &format!("{}:/sc", d("py.h5")), &d("sc.zarr")]);
    assert!(!out.contains("dropped"), "{out}");
    py(r#"
import sys, zarr
a = zarr.open_array(sys.argv[1] + "/sc.zarr", mode="r")
assert a.metadata.dimension_names == ("time", "row", "x", None), a.metadata.dimension_names
assert dict(a.attrs) == {"units": "K"}, dict(a.attrs)
"#);
}

/// h5py's attributes reach zarr-python through `convert` (numbers,
/// booleans, strings, scalars and lists), and zarr-python's reach h5py;
/// what the other side cannot hold is named on `convert`'s output.
#[cfg(feature = "cli")]
#[test]
fn attributes_travel_between_hdf5_and_zarr_and_drops_are_said() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let h5 = d("a.h5");
    let py = |script: &str| {
        crate::common::python_with(
            &["numpy", "h5py", "zarr"],
            script,
            &[dir.path().to_str().unwrap()],
        )
    };
    py(r#"
import sys, numpy as np, h5py
with h5py.File(sys.argv[1] + "/a.h5", "w") as f:
    ds = f.create_dataset("data", data=np.arange(20, dtype="f4").reshape(4, 5), chunks=(2, 5))
    ds.attrs["units"] = "mV"
    ds.attrs["gain"] = 2.5
    ds.attrs["n"] = np.int16(7)
    ds.attrs["channels"] = [1, 2, 3]
    ds.attrs["names"] = ["a", "b"]
    ds.attrs["on"] = True
    ds.attrs["code"] = np.bytes_(b"abc")
    ds.attrs["eye"] = np.eye(2)
    ds.attrs["bad"] = np.nan
"#);
    let out = ok(&["convert", &format!("{h5}:/data"), &d("a.zarr")]);
    for gone in ["dropped attribute eye", "dropped attribute bad"] {
        assert!(out.contains(gone), "{out}");
    }
    assert_eq!(out.matches("dropped").count(), 2, "{out}");
    let info = ok(&["info", &d("a.zarr")]);
    assert!(info.contains(r#""units":"mV""#), "{info}");
    py(r#"
import sys, warnings, zarr
warnings.simplefilter("error")
a = zarr.open_array(sys.argv[1] + "/a.zarr", mode="r")
want = {"units": "mV", "gain": 2.5, "n": 7, "channels": [1, 2, 3], "names": ["a", "b"],
        "on": True, "code": "abc"}
assert dict(a.attrs) == want, dict(a.attrs)
assert a[3, 4] == 19
# And back: zarr-python's attributes and names into HDF5.
b = zarr.create_array(sys.argv[1] + "/b.zarr", shape=(2, 3), chunks=(2, 3), dtype="int32",
                      dimension_names=["t", "x"],
                      attributes={"units": "mV", "scale": [0.5, 1], "meta": {"a": 1}})
b[...] = 4
"#);
    // The names are kept (as DIMENSION_LABELS): only `meta` is dropped.
    let out = ok(&["convert", &d("b.zarr"), &format!("{}:/data", d("back.h5"))]);
    assert!(out.contains("dropped attribute meta"), "{out}");
    assert_eq!(out.matches("dropped").count(), 1, "{out}");
    py(r#"
import sys, h5py
with h5py.File(sys.argv[1] + "/back.h5", "r") as f:
    ds = f["data"]
    assert ds.attrs["units"] == "mV", dict(ds.attrs)
    assert list(ds.attrs["scale"]) == [0.5, 1.0], dict(ds.attrs)
    assert "meta" not in ds.attrs
    assert [d.label for d in ds.dims] == ["t", "x"], [d.label for d in ds.dims]
    assert (ds[...] == 4).all()
"#);
    // Zarr v3 -> HDF5 -> Zarr v3: names and attributes come back, and the
    // convention's attribute is not among the user attributes.
    let out = ok(&[
        "convert",
        &format!("{}:/data", d("back.h5")),
        &d("again.zarr"),
    ]);
    assert!(!out.contains("dropped"), "{out}");
    py(r#"
import sys, warnings, zarr
warnings.simplefilter("error")
a = zarr.open_array(sys.argv[1] + "/again.zarr", mode="r")
assert a.metadata.dimension_names == ("t", "x"), a.metadata.dimension_names
assert dict(a.attrs) == {"units": "mV", "scale": [0.5, 1.0]}, dict(a.attrs)
assert (a[...] == 4).all()
"#);
    // .npy holds none: said, not silent.
    let out = ok(&["convert", &d("b.zarr"), &d("b.npy")]);
    assert!(
        out.contains("dropped attributes units, scale, meta (.npy holds none)"),
        "{out}"
    );
    assert!(
        out.contains("dropped dimension names (.npy holds none)"),
        "{out}"
    );
}
