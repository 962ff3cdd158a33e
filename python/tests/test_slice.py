"""The first slice of the Python package: create, write plane by plane,
reopen, read with numpy indexing, on .npy and Zarr; errors."""

import io

import numpy as np
import pytest
import zarr

import chunkyard
from chunkyard import _chunkyard

FORMATS = ["npy", "zarr"]
DTYPES = ["float32", "float64", "int16", "uint8", "int64", "bool"]


def random_array(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)


def read_with_reference_tool(path, fmt):
    if fmt == "npy":
        return np.load(path)
    return zarr.open_array(str(path), mode="r")[...]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_article_loop_round_trips(tmp_path, fmt, dtype):
    path = tmp_path / f"volume.{fmt}"
    expected = random_array((6, 33, 20), dtype)
    a = chunkyard.create(path, shape=expected.shape, dtype=dtype, chunks=(1, 33, 20))
    for i, plane in enumerate(expected):
        a[i] = plane
    a.close()

    with chunkyard.open(path) as b:
        assert b.shape == expected.shape
        assert b.dtype == np.dtype(dtype)
        got = b[...]
        assert isinstance(got, np.ndarray)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected)
        assert got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(read_with_reference_tool(path, fmt), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_selections_match_numpy(tmp_path, fmt):
    expected = random_array((7, 9, 11), "float64", seed=1)
    a = chunkyard.create(tmp_path / f"a.{fmt}", expected.shape, "float64", chunks=(2, 4, 3))
    a[...] = expected
    selections = [
        0, -1, 6, -7, (3,), (2, 5), (-1, -1, -1), (1, 2, 3),
        slice(None), slice(2, 5), slice(-3, None), slice(None, None, 2),
        slice(1, 100), slice(-100, 3), slice(5, 2), slice(1, 7, 3),
        (slice(None), 4), (Ellipsis, 3), (2, Ellipsis), (Ellipsis,), Ellipsis,
        (1, Ellipsis, slice(2, 9, 4)), (slice(0, 7, 2), slice(1, 9, 3), slice(None, None, 5)),
        (np.int64(3), np.int32(-2)), (slice(np.int64(1), np.int64(4)),),
        (slice(2, 2), 0),
    ]
    for sel in selections:
        got = a[sel]
        want = expected[sel]
        assert np.shape(got) == np.shape(want), sel
        np.testing.assert_array_equal(got, want, err_msg=repr(sel))
        if np.ndim(want) == 0:
            assert isinstance(got, np.float64), (sel, type(got))


@pytest.mark.parametrize("fmt", FORMATS)
def test_assignment_casts_and_broadcasts_as_numpy(tmp_path, fmt):
    shape = (4, 5, 6)
    for dtype, value in [
        ("int16", 2.7),               # float into int: truncated, as numpy
        ("uint8", np.int64(300)),     # numpy scalar: wraps, as numpy
        ("float32", np.arange(6)),    # a row broadcast over the selection
        ("float64", [[1.5], [2.5]]),  # a list broadcast along the last axis
        ("bool", 3),                  # nonzero is True
        ("int32", np.float32(-1.9)),
    ]:
        a = chunkyard.create(tmp_path / f"{dtype}.{fmt}", shape, dtype, overwrite=True)
        want = np.zeros(shape, dtype)
        a[1:3, 2:4] = value
        want[1:3, 2:4] = value
        a[-1, 0, ::2] = want[0, 0, 1:4]
        want[-1, 0, ::2] = want[0, 0, 1:4]
        np.testing.assert_array_equal(a[...], want, err_msg=f"{dtype} {value!r}")
        a.close()


def test_assignment_refusals_match_numpy(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (3, 4), "uint8")
    ref = np.zeros((3, 4), "uint8")
    for value, exc in [(300, OverflowError), (np.zeros(3), ValueError), ("x", ValueError)]:
        with pytest.raises(exc):
            ref[0] = value
        with pytest.raises(exc):
            a[0] = value
    np.testing.assert_array_equal(a[...], ref)


@pytest.mark.parametrize("fmt", FORMATS)
def test_properties_repr_and_len(tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    a = chunkyard.create(path, (10, 3), "int32", chunks=(4, 3))
    assert a.shape == (10, 3)
    assert a.ndim == 2
    assert a.chunks == (4, 3)
    assert len(a) == 10
    assert a.dtype == np.dtype("int32")
    r = repr(a)
    assert r.startswith("<chunkyard.Array ") and "shape=(10, 3)" in r and "\n" not in r
    assert "int32" in r and "mode='r+'" in r
    a.close()
    assert "closed" in repr(a)
    with chunkyard.open(path) as b:
        assert "mode='r'" in repr(b)
        assert b.chunks == (4, 3) or fmt == "npy"


@pytest.mark.parametrize("fmt", ["npy", "zarr"])
def test_numpy_attributes_and_array_protocol(tmp_path, fmt):
    path = tmp_path / f"p.{fmt}"
    a = chunkyard.create(path, (5, 3), "int16", chunks=(2, 3))
    want = np.arange(15, dtype="int16").reshape(5, 3)
    a[...] = want
    assert a.size == want.size and a.nbytes == want.nbytes
    assert a.path == str(path) and not a.read_only
    assert a.fill_value == 0 and a.fill_value.dtype == np.dtype("int16")
    got = np.asarray(a)
    assert got.dtype == np.dtype("int16")
    np.testing.assert_array_equal(got, want)
    as_f8 = np.asarray(a, dtype="float64")
    assert as_f8.dtype == np.dtype("float64")
    np.testing.assert_array_equal(as_f8, want.astype("float64"))
    np.testing.assert_array_equal(np.array(a, copy=True), want)
    with pytest.raises(ValueError, match="copy"):
        np.array(a, copy=False)
    assert float(np.mean(np.asarray(a))) == float(want.mean())
    a.close()
    with chunkyard.open(path) as b:
        assert b.read_only
    if fmt == "zarr":
        z = chunkyard.create(tmp_path / "f.zarr", (2,), "float32", fill_value=-1.5)
        assert z.fill_value == np.float32(-1.5)
        assert z.fill_value.dtype == np.dtype("float32")


def test_zarr_fill_value(tmp_path):
    path = tmp_path / "f.zarr"
    a = chunkyard.create(path, (4, 4), "float32", chunks=(2, 2), fill_value=2.5)
    a[0, 0] = 1
    a.close()
    want = np.full((4, 4), 2.5, "float32")
    want[0, 0] = 1
    np.testing.assert_array_equal(chunkyard.open(path)[...], want)
    z = zarr.open_array(str(path), mode="r")
    assert z.fill_value == 2.5
    np.testing.assert_array_equal(z[...], want)


def test_flush_makes_data_visible_to_numpy(tmp_path):
    path = tmp_path / "a.npy"
    a = chunkyard.create(path, (3, 4), "float64")
    a[1] = np.arange(4.0)
    a.flush()
    np.testing.assert_array_equal(np.load(path)[1], np.arange(4.0))
    a.close()
    a.close()  # closing twice is allowed


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_path_is_file_not_found(tmp_path, fmt):
    with pytest.raises(FileNotFoundError):
        chunkyard.open(tmp_path / f"missing.{fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_indices(tmp_path, fmt):
    a = chunkyard.create(tmp_path / f"a.{fmt}", (4, 5), "float32")
    for key, exc in [
        (4, IndexError), (-5, IndexError), ((0, 5), IndexError), ((0, 0, 0), IndexError),
        (2**70, IndexError), ((Ellipsis, Ellipsis), IndexError),
        ([0, 1], TypeError), (np.array([0, 1]), TypeError), (None, TypeError),
        ((0, None), TypeError), (slice(None, None, -1), TypeError), (True, TypeError),
        (np.True_, TypeError), (1.0, TypeError), ("0", TypeError), (slice(0.5, 2), TypeError),
        (slice(None, None, 0), ValueError),
    ]:
        with pytest.raises(exc):
            a[key]
        with pytest.raises(exc):
            a[key] = 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_create_arguments(tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    for kwargs in [
        dict(shape=(3, -1), dtype="float32"),
        dict(shape="abc", dtype="float32"),
        dict(shape=(3, 4), dtype="complex128"),
        dict(shape=(3, 4), dtype="U5"),
        dict(shape=(3, 4), dtype=">f8" if np.little_endian else "<f8"),
        dict(shape=(3, 4), dtype="not a dtype"),
        dict(shape=(3, 4), dtype="float32", chunks=(0, 4)),
        dict(shape=(3, 4), dtype="float32", chunks=(1, 2, 3)),
    ]:
        with pytest.raises(ValueError):
            chunkyard.create(path, **kwargs)
    with pytest.raises(ValueError):
        chunkyard.create(tmp_path / "a.txt", (3,), "float32")
    with pytest.raises(ValueError):
        chunkyard.open(path, mode="w")
    chunkyard.create(path, (3,), "float32").close()
    with pytest.raises(FileExistsError):
        chunkyard.create(path, (3,), "float32")
    chunkyard.create(path, (3,), "float32", overwrite=True).close()


def test_npy_has_no_fill_value(tmp_path):
    with pytest.raises(ValueError):
        chunkyard.create(tmp_path / "a.npy", (3,), "float32", fill_value=1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_only_and_closed(tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    chunkyard.create(path, (3, 4), "float32").close()
    a = chunkyard.open(path, mode="r")
    with pytest.raises(io.UnsupportedOperation):
        a[0] = 1
    a.close()
    for op in (lambda: a[0], lambda: a.shape, lambda: len(a), lambda: a.flush()):
        with pytest.raises(ValueError):
            op()
    with chunkyard.open(path, mode="r+") as b:
        b[0] = 1
    np.testing.assert_array_equal(chunkyard.open(path)[0], np.ones(4, "float32"))


def test_corrupt_npy_is_format_error(tmp_path):
    path = tmp_path / "bad.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(chunkyard.FormatError):
        chunkyard.open(path)
    assert issubclass(chunkyard.FormatError, ValueError)


def test_a_rust_panic_arrives_as_runtime_error():
    with pytest.raises(RuntimeError, match="internal error"):
        _chunkyard._panic_for_tests()


def test_a_read_too_large_for_memory_is_memory_error(tmp_path):
    # 8e16 bytes: numpy's allocation fails; rust-numpy's own would panic.
    a = chunkyard.create(tmp_path / "huge.zarr", (10**8, 10**8), "float64", chunks=(1000, 1000))
    with pytest.raises(MemoryError):
        a[...]
    assert a[10**8 - 1, :3].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int16", "int32", "int64",
                                   "uint8", "uint16", "uint32", "uint64", "bool"])
def test_an_element_is_the_scalar_numpy_gives(tmp_path, fmt, dtype):
    # `a[i, j, k]` of Python ints takes a short path (no array built):
    # the same value and scalar type as numpy's, the extremes of each
    # dtype and float32's rounding included, cached chunk or not.
    want = random_array((3, 4, 5), dtype, seed=3)
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        want[0, 0, 0], want[2, 3, 4] = info.min, info.max
    elif dt.kind == "f":
        want[0, 0, 0], want[2, 3, 4] = np.finfo(dt).tiny, np.finfo(dt).max
        want[1, 1, 1] = dt.type(1.1)
    a = chunkyard.create(tmp_path / f"a.{fmt}", want.shape, dtype, chunks=(1, 2, 5))
    a[...] = want
    a.flush()
    for b in (a, chunkyard.open(tmp_path / f"a.{fmt}")):
        for idx in [(0, 0, 0), (2, 3, 4), (1, 1, 1), (-1, -1, -1), (-3, 2, -5),
                    (np.int64(1), 2, 3), (1, np.uint8(2), 3)]:
            got = b[idx]
            assert type(got) is type(want[idx]), (idx, type(got))
            assert got == want[idx], (idx, got, want[idx])
        with pytest.raises(IndexError):
            b[3, 0, 0]
        with pytest.raises(IndexError):
            b[0, -5, 0]
        with pytest.raises(TypeError):
            b[0, True, 0]
