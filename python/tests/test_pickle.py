"""Pickling reopens an array; dask names it without pickling it."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import chunkyard

FORMATS = ["a.npy", "a.zarr"]


@pytest.mark.parametrize("name", FORMATS)
def test_pickle_reopens_with_the_mode_after_a_flush(tmp_path, name):
    a = chunkyard.create(tmp_path / name, (6, 5), "int32", chunks=(2, 5))
    data = np.arange(30, dtype="int32").reshape(6, 5)
    a[...] = data  # in the cache, not yet flushed
    b = pickle.loads(pickle.dumps(a))
    assert b is not a
    assert b.path == os.path.abspath(tmp_path / name)
    assert not b.read_only and b.sync_writes
    assert b.shape == a.shape and b.dtype == a.dtype
    # The chunk shape travels (a .npy file stores none).
    assert b.chunks == a.chunks == (2, 5)
    np.testing.assert_array_equal(b[...], data)
    # The pickle flushed: a fresh open (its own cache) reads the data.
    fresh = chunkyard.open(tmp_path / name, cache=chunkyard.Cache("1MiB"))
    np.testing.assert_array_equal(fresh[...], data)
    r = chunkyard.open(tmp_path / name, "r")
    c = pickle.loads(pickle.dumps(r))
    assert c.read_only and not c.sync_writes
    with pytest.raises(OSError):  # io.UnsupportedOperation
        c[0] = 1


def test_an_unpickled_array_makes_every_write_durable(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (8, 4), "float64", chunks=(2, 4))
    b = pickle.loads(pickle.dumps(a))
    b[2:4] = 7.5
    b.append(np.ones((2, 4)))
    # A process that opens the file now sees both writes, with no flush
    # from `b` (what a dask worker's task relies on when it ends).
    code = (
        "import chunkyard, sys; a = chunkyard.open(sys.argv[1]);"
        "print(a.shape, a[2, 0], a[3, 3], a[9, 1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.npy")],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert out.split() == ["(10,", "4)", "7.5", "7.5", "1.0"]


def test_pickling_keeps_no_cache_of_its_own(tmp_path):
    mine = chunkyard.Cache("4MiB")
    a = chunkyard.create(tmp_path / "a.zarr", (4, 4), "uint8", cache=mine)
    assert a.cache is mine
    b = pickle.loads(pickle.dumps(a))
    # A Cache is not carried: the copy is in the global cache of the
    # process that unpickles it.
    assert b.cache is chunkyard.global_cache()
    with pytest.raises(TypeError):
        pickle.dumps(mine)


def test_a_closed_array_does_not_pickle(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (3,), "int8")
    a.close()
    with pytest.raises(ValueError, match="closed"):
        pickle.dumps(a)


def test_a_cast_view_pickles_as_its_array_and_dtype(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (3, 2), "float64")
    a[...] = [[1.5, 2.5], [3.5, -1.5], [0, 9]]
    v = pickle.loads(pickle.dumps(a.astype("int16")))
    assert v.dtype == np.dtype("int16")
    np.testing.assert_array_equal(v[...], [[1, 2], [3, -1], [0, 9]])


def test_dask_tokenize_names_the_file_and_its_state(tmp_path):
    dask_base = pytest.importorskip("dask.base")
    tokenize, normalize = dask_base.tokenize, dask_base.normalize_token
    a = chunkyard.create(tmp_path / "a.npy", (4, 4), "float32")
    a[...] = 1.0
    a.flush()
    t = tokenize(a)
    # What dask hashes is __dask_tokenize__'s tuple, not a pickle.
    assert normalize(a) == a.__dask_tokenize__()
    assert tokenize(a) == t  # deterministic
    # Two objects on one unchanged file, same mode, no writes through
    # either: one name.
    r1 = chunkyard.open(tmp_path / "a.npy", "r")
    r2 = chunkyard.open(tmp_path / "a.npy", "r")
    assert tokenize(r1) == tokenize(r2)
    # Another mode, another file, a write (counted by the object that
    # wrote: `a` has written once already): other names.
    assert tokenize(chunkyard.open(tmp_path / "a.npy", "r+")) != t
    assert tokenize(r1) != t
    c = a.save_as(tmp_path / "c.npy")
    assert tokenize(c) != t
    a[0, 0] = 2.0
    assert tokenize(a) != t
    assert tokenize(a.astype("float64")) != tokenize(a)
    assert tokenize(a.astype("float64")) == tokenize(a.astype("float64"))


def test_open_takes_the_chunk_shape_of_a_npy_file(tmp_path):
    chunkyard.create(tmp_path / "a.npy", (64, 8), "int16", chunks=(4, 8)).close()
    assert chunkyard.open(tmp_path / "a.npy", chunks=(16, 8)).chunks == (16, 8)
    chunkyard.create(tmp_path / "a.zarr", (64, 8), "int16", chunks=(4, 8)).close()
    # A Zarr array keeps the chunk shape it stores.
    assert chunkyard.open(tmp_path / "a.zarr", chunks=(16, 8)).chunks == (4, 8)
