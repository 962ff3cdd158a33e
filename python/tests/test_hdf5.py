"""HDF5 through the build option (`--features hdf5`), next to h5py in one
process. chunkyard links the system's libhdf5 and h5py's wheel carries a
copy of its own: two libraries in one process, each with its own state.
Files written by one are read by the other; a file open for writing in
one is refused by the other (HDF5's file locks, as between two
processes)."""

import numpy as np
import pytest

import chunkyard

needs_hdf5 = pytest.mark.skipif(not chunkyard.has_hdf5, reason="built without --features hdf5")


@pytest.mark.skipif(chunkyard.has_hdf5, reason="built with HDF5")
def test_without_the_option_hdf5_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="built without HDF5 support.*--features hdf5"):
        chunkyard.create(tmp_path / "a.h5", (3,), "float32")


@needs_hdf5
def test_chunkyard_and_h5py_in_one_process(tmp_path):
    h5py = pytest.importorskip("h5py")
    data = np.arange(600, dtype="float32").reshape(10, 20, 3)
    # chunkyard writes, h5py reads.
    a = chunkyard.create(f"{tmp_path}/c.h5:/group/data", data.shape, "float32", chunks=(2, 20, 3))
    a[...] = data
    a.close()
    with h5py.File(tmp_path / "c.h5", "r") as f:
        np.testing.assert_array_equal(f["group/data"][...], data)
        assert f["group/data"].chunks == (2, 20, 3)
    # h5py writes, chunkyard reads, reduces and writes back.
    with h5py.File(tmp_path / "h.h5", "w") as f:
        f.create_dataset("x", data=data * 2, chunks=(5, 20, 3))
    b = chunkyard.open(f"{tmp_path}/h.h5:/x", "r+")
    assert b.chunks == (5, 20, 3)
    np.testing.assert_array_equal(b[...], data * 2)
    assert b.sum() == (data * 2).sum(dtype="float64")
    np.testing.assert_allclose(b.mean(axis=0), (data * 2).mean(axis=0))
    b[0] = -1.0
    b.close()
    with h5py.File(tmp_path / "h.h5", "r") as f:
        assert (f["x"][0] == -1).all() and f["x"][1, 0, 0] == data[1, 0, 0] * 2
    # Both open one file for reading at once.
    r = chunkyard.open(f"{tmp_path}/c.h5:/group/data")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert f["group/data"][4, 5, 1] == r[4, 5, 1] == data[4, 5, 1]
    r.close()


@needs_hdf5
def test_a_file_open_for_writing_in_one_library_is_refused_by_the_other(tmp_path):
    h5py = pytest.importorskip("h5py")
    chunkyard.create(f"{tmp_path}/c.h5:/data", (4, 4), "int32").close()
    w = chunkyard.open(f"{tmp_path}/c.h5:/data", "r+")
    with pytest.raises(OSError, match="lock"):
        h5py.File(tmp_path / "c.h5", "r")
    w.close()
    with h5py.File(tmp_path / "c.h5", "r"):
        with pytest.raises(chunkyard.StoreError, match="lock"):
            chunkyard.open(f"{tmp_path}/c.h5:/data", "r+")
    # Each closed: the other opens it.
    chunkyard.open(f"{tmp_path}/c.h5:/data", "r+").close()


@needs_hdf5
def test_an_hdf5_array_pickles(tmp_path):
    import pickle

    a = chunkyard.create(f"{tmp_path}/c.h5:/data", (6, 4), "float64", chunks=(2, 4))
    a[...] = np.arange(24.0).reshape(6, 4)
    b = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(b[...], np.arange(24.0).reshape(6, 4))
