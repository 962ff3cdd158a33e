//! `chunkyard put PATH --append --from FILE` on files the reference tools
//! wrote and on files chunkyard created, each checked by the reference
//! tool afterwards: numpy for `.npy`, zarr-python for Zarr v3 and v2,
//! h5py for HDF5 (with the `hdf5` feature). Features `cli` and `interop`:
//! these tests need python3 with numpy, zarr 3 and (for HDF5) h5py, and
//! fail, not skip, without them (`pip install -r requirements-dev.txt`).

use crate::common::{fails, ok, p, python, python_with};

#[test]
fn numpy_reads_rows_appended_to_npy_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    // A file numpy wrote, rows in three shapes, and one chunkyard created
    // empty.
    python(&format!(
        "import numpy as np\n\
         np.save('{d}/np.npy', np.arange(12, dtype='<f4').reshape(3, 4))\n\
         np.save('{d}/rows.npy', np.arange(100, 120, dtype='<i8').reshape(5, 4))\n\
         np.save('{d}/row.npy', np.full(4, -1.5, dtype='<f8'))\n\
         np.save('{d}/bad.npy', np.zeros((2, 3), dtype='<f4'))\n"
    ));
    let (np_file, empty) = (format!("{d}/np.npy"), format!("{d}/empty.npy"));
    ok(&[
        "create", &empty, "--shape", "0,4", "--dtype", "f4", "--chunks", "3,4",
    ]);
    for a in [&np_file, &empty] {
        let out = ok(&["put", a, "--append", "--from", &format!("{d}/rows.npy")]);
        assert!(out.contains("appended 5 rows"), "{out}");
        ok(&["put", a, "--append", "--from", &format!("{d}/row.npy")]);
        ok(&[
            "--cache",
            "16B",
            "put",
            a,
            "--append",
            "--from",
            &format!("{d}/rows.npy"),
        ]);
        let e = fails(&["put", a, "--append", "--from", &format!("{d}/bad.npy")]);
        assert!(e.contains("every axis but the first must match"), "{e}");
    }
    python(&format!(
        "import numpy as np\n\
         rows = np.arange(100, 120).reshape(5, 4)\n\
         tail = np.concatenate([rows, np.full((1, 4), -1.5), rows]).astype('f4')\n\
         a, e = np.load('{np_file}'), np.load('{empty}')\n\
         assert a.dtype == np.float32 and a.shape == (14, 4), a.shape\n\
         assert (a[:3] == np.arange(12).reshape(3, 4)).all() and (a[3:] == tail).all(), a\n\
         assert e.shape == (11, 4) and (e == tail).all(), e\n\
         # The data did not move: the header kept its length.\n\
         for f in ['{np_file}', '{empty}']:\n\
         \x20\x20\x20\x20with open(f, 'rb') as fh:\n\
         \x20\x20\x20\x20\x20\x20\x20\x20np.lib.format.read_magic(fh)\n\
         \x20\x20\x20\x20\x20\x20\x20\x20np.lib.format.read_array_header_1_0(fh)\n\
         \x20\x20\x20\x20\x20\x20\x20\x20assert fh.tell() % 64 == 0, fh.tell()\n"
    ));
}

#[test]
fn a_header_without_growth_room_is_refused_and_left_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    // A valid header whose dictionary ends exactly at a 64-byte boundary,
    // so the first axis cannot gain a digit (9 -> 10) in place. Extra
    // length-1 axes tune the dictionary's length.
    python(&format!(
        "import numpy as np\n\
         for m in range(64):\n\
         \x20\x20\x20\x20for last in (1, 10):\n\
         \x20\x20\x20\x20\x20\x20\x20\x20shape = (9, 4) + (1,) * m + (last,)\n\
         \x20\x20\x20\x20\x20\x20\x20\x20text = \"{{'descr': '<f4', 'fortran_order': False, 'shape': %s, }}\" % (shape,) + '\\n'\n\
         \x20\x20\x20\x20\x20\x20\x20\x20if (10 + len(text)) % 64 == 0: break\n\
         \x20\x20\x20\x20else: continue\n\
         \x20\x20\x20\x20break\n\
         assert (10 + len(text)) % 64 == 0\n\
         with open('{d}/tight.npy', 'wb') as f:\n\
         \x20\x20\x20\x20f.write(b'\\x93NUMPY\\x01\\x00' + len(text).to_bytes(2, 'little') + text.encode())\n\
         \x20\x20\x20\x20f.write(np.arange(np.prod(shape), dtype='<f4').tobytes())\n\
         assert np.load('{d}/tight.npy').shape == shape\n\
         np.save('{d}/row.npy', np.ones(shape[1:], dtype='<f4'))\n\
         print(shape)\n"
    ));
    let e = fails(&[
        "put",
        &format!("{d}/tight.npy"),
        "--append",
        "--from",
        &format!("{d}/row.npy"),
    ]);
    assert!(e.contains("no room"), "{e}");
    python(&format!(
        "import numpy as np\n\
         a = np.load('{d}/tight.npy')\n\
         assert a.shape[0] == 9 and (a.ravel() == np.arange(a.size)).all(), a.shape\n"
    ));
}

#[test]
fn zarr_python_reads_rows_appended_to_v3_and_v2_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    python_with(
        &["numpy", "zarr"],
        &format!(
            "import numpy as np, zarr\n\
             for fmt in (2, 3):\n\
             \x20\x20\x20\x20z = zarr.create_array(f'{d}/v{{fmt}}.zarr', shape=(3, 4), chunks=(2, 4), dtype='i4', fill_value=-7, zarr_format=fmt)\n\
             \x20\x20\x20\x20z[:] = np.arange(12).reshape(3, 4)\n\
             np.save('{d}/rows.npy', np.arange(50, 70, dtype='<i4').reshape(5, 4))\n"
        ),
        &[],
    );
    let ours = format!("{d}/ours.zarr");
    ok(&[
        "create", &ours, "--shape", "0,4", "--dtype", "i4", "--chunks", "2,4", "--codec", "lz4",
        "--fill", "-7",
    ]);
    for a in [format!("{d}/v3.zarr"), format!("{d}/v2.zarr"), ours.clone()] {
        ok(&["put", &a, "--append", "--from", &format!("{d}/rows.npy")]);
    }
    // Grow by hand past the data: zarr-python sees the fill value there.
    python_with(
        &["numpy", "zarr"],
        &format!(
            "import numpy as np, zarr\n\
             rows = np.arange(50, 70).reshape(5, 4)\n\
             for fmt in (2, 3):\n\
             \x20\x20\x20\x20z = zarr.open_array(f'{d}/v{{fmt}}.zarr', mode='r')\n\
             \x20\x20\x20\x20assert z.shape == (8, 4), z.shape\n\
             \x20\x20\x20\x20assert (z[:3] == np.arange(12).reshape(3, 4)).all() and (z[3:] == rows).all(), z[:]\n\
             z = zarr.open_array('{ours}', mode='r')\n\
             assert z.shape == (5, 4) and (z[:] == rows).all(), z[:]\n"
        ),
        &[],
    );
}

#[cfg(feature = "hdf5")]
#[test]
fn h5py_reads_rows_appended_to_hdf5_datasets() {
    let dir = tempfile::tempdir().unwrap();
    let d = p(dir.path());
    python_with(
        &["numpy", "h5py"],
        &format!(
            "import numpy as np, h5py\n\
             with h5py.File('{d}/py.h5', 'w') as f:\n\
             \x20\x20\x20\x20f.create_dataset('grow', data=np.arange(12.).reshape(3, 4), maxshape=(None, 4), chunks=(2, 4))\n\
             \x20\x20\x20\x20f.create_dataset('fixed', data=np.arange(12.).reshape(3, 4), chunks=(2, 4))\n\
             np.save('{d}/rows.npy', np.arange(5. * 4).reshape(5, 4) + 100)\n"
        ),
        &[],
    );
    let ours = format!("{d}/ours.h5:/g/data");
    ok(&[
        "create", &ours, "--shape", "0,4", "--dtype", "f8", "--chunks", "2,4", "--codec", "gzip:1",
    ]);
    for a in [format!("{d}/py.h5:/grow"), ours] {
        ok(&["put", &a, "--append", "--from", &format!("{d}/rows.npy")]);
    }
    let e = fails(&[
        "put",
        &format!("{d}/py.h5:/fixed"),
        "--append",
        "--from",
        &format!("{d}/rows.npy"),
    ]);
    assert!(e.contains("maxshape"), "{e}");
    python_with(
        &["numpy", "h5py"],
        &format!(
            "import numpy as np, h5py\n\
             rows = np.arange(5. * 4).reshape(5, 4) + 100\n\
             with h5py.File('{d}/py.h5', 'r') as f:\n\
             \x20\x20\x20\x20g = f['grow']\n\
             \x20\x20\x20\x20assert g.shape == (8, 4) and (g[:3] == np.arange(12.).reshape(3, 4)).all() and (g[3:] == rows).all(), g[:]\n\
             \x20\x20\x20\x20assert f['fixed'].shape == (3, 4)\n\
             with h5py.File('{d}/ours.h5', 'r') as f:\n\
             \x20\x20\x20\x20g = f['g/data']\n\
             \x20\x20\x20\x20assert g.maxshape == (None, 4), g.maxshape\n\
             \x20\x20\x20\x20assert g.shape == (5, 4) and (g[:] == rows).all(), g[:]\n"
        ),
        &[],
    );
}
