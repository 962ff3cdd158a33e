"""resize, append (zarr's semantics: it returns the new shape) and
memory_report, checked against numpy arrays grown the same way."""

import io
import threading

import numpy as np
import pytest
import zarr

import chunkyard

FORMATS = ["npy", "zarr"]


def reference(path, fmt):
    return np.load(path) if fmt == "npy" else zarr.open_array(str(path), mode="r")[...]


@pytest.mark.parametrize("fmt", FORMATS)
def test_append_matches_numpy_concatenate(tmp_path, fmt):
    path = tmp_path / f"rec.{fmt}"
    rng = np.random.default_rng(5)
    expected = np.zeros((0, 7, 3), "float32")
    a = chunkyard.create(path, (0, 7, 3), "float32", chunks=(4, 7, 3))
    for n in [1, 5, 0, 3, 9, 2]:
        block = rng.standard_normal((n, 7, 3)).astype("float32")
        expected = np.concatenate([expected, block])
        assert a.append(block) == expected.shape
        assert a.shape == expected.shape and len(a) == len(expected)
    row = rng.standard_normal((7, 3)).astype("float32")
    expected = np.concatenate([expected, row[None]])
    assert a.append(row) == expected.shape  # one row: one axis less
    np.testing.assert_array_equal(a[...], expected)
    a.close()
    np.testing.assert_array_equal(reference(path, fmt), expected)
    with chunkyard.open(path) as b:
        assert b.shape == expected.shape


@pytest.mark.parametrize("fmt", FORMATS)
def test_append_casts_as_numpy_assignment(tmp_path, fmt):
    a = chunkyard.create(tmp_path / f"a.{fmt}", (1, 4), "uint8")
    a[0] = 1
    a.append([[2.7, -1, 300, 4]])  # floats truncate; -1.0 and 300.0 as numpy's cast
    expected = np.empty((1, 4), "uint8")
    expected[...] = np.array([[2.7, -1, 300, 4]])
    np.testing.assert_array_equal(a[1], expected[0])
    a.append(np.array([7, 8, 9, 10], dtype="int64"))
    np.testing.assert_array_equal(a[2], [7, 8, 9, 10])
    # A non-contiguous source is fine.
    src = np.arange(24, dtype="uint8").reshape(6, 4)[::2]
    assert a.append(src) == (6, 4)
    np.testing.assert_array_equal(a[3:], src)
    a.close()


def test_append_errors(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (2, 3), "int32")
    with pytest.raises(ValueError, match="cannot append data of shape"):
        a.append(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="cannot append data of shape"):
        a.append(np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match="axis 0 only"):
        a.append(np.zeros((2, 3)), axis=1)
    assert a.append(np.ones((1, 3)), axis=-2) == (3, 3)  # axis -2 is axis 0
    with pytest.raises(ValueError):
        a.append([["x", "y", "z"]])
    assert a.shape == (3, 3)  # nothing was reserved by the failures
    a.close()
    with chunkyard.open(tmp_path / "a.npy") as r:
        with pytest.raises(io.UnsupportedOperation):
            r.append(np.zeros((1, 3)))
        with pytest.raises(io.UnsupportedOperation):
            r.resize(5)
    s = chunkyard.create(tmp_path / "s.zarr", (), "int8")
    with pytest.raises(ValueError, match="0-d"):
        s.append(1)
    with pytest.raises(ValueError, match="0-d"):
        s.resize(3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_resize_matches_numpy(tmp_path, fmt):
    path = tmp_path / f"r.{fmt}"
    fill = 0 if fmt == "npy" else -1
    data = np.arange(10 * 6, dtype="int64").reshape(10, 6)
    a = chunkyard.create(path, data.shape, "int64", chunks=(3, 6), fill_value=fill)
    a[...] = data
    a.resize(4)  # shrink to mid-chunk
    assert a.shape == (4, 6) and a.nbytes == 4 * 6 * 8
    np.testing.assert_array_equal(a[...], data[:4])
    a.resize((9, 6))  # grow: new rows read as the fill value, not the old data
    expected = np.concatenate([data[:4], np.full((5, 6), fill)])
    np.testing.assert_array_equal(a[...], expected)
    a.resize(11, 6)  # zarr v2's spelling
    expected = np.concatenate([expected, np.full((2, 6), fill)])
    np.testing.assert_array_equal(a[...], expected)
    a.resize(0)
    assert a.shape == (0, 6) and len(a) == 0
    a.resize(2)
    np.testing.assert_array_equal(a[...], np.full((2, 6), fill))
    a.close()
    np.testing.assert_array_equal(reference(path, fmt), np.full((2, 6), fill))


def test_resize_errors(tmp_path):
    a = chunkyard.create(tmp_path / "a.zarr", (4, 5), "float32")
    with pytest.raises(ValueError, match="first axis only"):
        a.resize((4, 6))
    with pytest.raises(ValueError, match="first axis only"):
        a.resize((4,))  # a tuple names the whole shape
    with pytest.raises(ValueError, match="negative"):
        a.resize(-1)
    with pytest.raises(TypeError, match="resize"):
        a.resize()
    with pytest.raises(TypeError, match="resize"):
        a.resize("big")
    assert a.shape == (4, 5)
    a.close()


def test_threads_append_disjoint_rows(tmp_path):
    a = chunkyard.create(tmp_path / "t.zarr", (0, 16), "int32", chunks=(8, 16))

    def work(k):
        for j in range(25):
            a.append(np.full((2, 16), k * 100 + j, "int32"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = a[...]
    assert got.shape == (200, 16)
    # Every block landed whole, on two rows of its own.
    pairs = got.reshape(100, 2, 16)
    assert (pairs == pairs[:, :1, :1]).all()
    assert sorted(pairs[:, 0, 0]) == sorted(k * 100 + j for k in range(4) for j in range(25))
    a.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_memory_report(tmp_path, fmt):
    c = chunkyard.Cache("4MiB")
    a = chunkyard.create(tmp_path / f"m.{fmt}", (8, 64, 64), "float64", chunks=(1, 64, 64), cache=c)
    r = a.memory_report()
    assert set(r) == {
        "logical_bytes", "resident_bytes", "dirty_bytes", "overhead_bytes", "stored_bytes",
        "cache_budget_bytes", "cache_resident_bytes",
    }
    assert r["logical_bytes"] == a.nbytes == 8 * 64 * 64 * 8
    assert r["cache_budget_bytes"] == 4 << 20
    a[0, :10] = 1.0  # part of a chunk: cached and dirty
    r = a.memory_report()
    # The chunk, plus for Zarr the record of the elements written (its
    # write-back merges them onto the chunk as stored: docs/zarr.md).
    assert 64 * 64 * 8 <= r["resident_bytes"] <= 64 * 64 * 8 + 1024
    assert r["dirty_bytes"] == 64 * 64 * 8
    assert r["overhead_bytes"] > 0
    assert r["cache_resident_bytes"] >= r["resident_bytes"]
    a.flush()
    r = a.memory_report()
    assert r["dirty_bytes"] == 0 and r["resident_bytes"] == 64 * 64 * 8
    assert isinstance(r["stored_bytes"], int) and r["stored_bytes"] >= 64 * 64 * 8
    a.close()
    with pytest.raises(ValueError, match="closed"):
        a.memory_report()
