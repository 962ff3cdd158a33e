"""Reductions through the Rust engine against numpy's, over everything and
along every axis, with NaN and infinities, on npy and Zarr."""

import warnings

import numpy as np
import pytest

import chunkyard

FORMATS = ["npy", "zarr"]
DTYPES = ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
          "uint32", "uint64", "bool"]
OPS = ["sum", "nansum", "mean", "nanmean", "min", "nanmin", "max", "nanmax", "count"]
AXES = [None, 0, 1, 2, -1, -3]
SHAPE = (7, 9, 11)
CHUNKS = (2, 4, 3)  # none divides its axis


def data_for(dtype, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        x = rng.standard_normal(SHAPE).astype(dt) * 100
        x[1, 2, 3] = np.nan
        x[4, :, 5] = np.nan  # a line all NaN along axis 1
        x[2, 3, 4] = np.inf
        x[6, 0, 0] = -np.inf
        return x
    if dt.kind == "b":
        return rng.integers(0, 2, SHAPE).astype(bool)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, SHAPE, dtype=dt, endpoint=True)


def expected(op, x, axis):
    """numpy's answer, with chunkyard's documented dtype rule: sums and
    means of floats in float64."""
    f = x.dtype.kind == "f"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        if op in ("sum", "nansum", "mean", "nanmean"):
            return getattr(np, op)(x.astype("float64") if f else x, axis=axis)
        if op == "count":
            return np.count_nonzero(~np.isnan(x) if f else np.ones_like(x, bool), axis=axis)
        if op.startswith("nan") and not f:
            return getattr(np, op[3:])(x, axis=axis)
        return getattr(np, op)(x, axis=axis)


def check(op, got, want, x):
    want = np.asarray(want)
    got_arr = np.asarray(got)
    assert got_arr.shape == want.shape, (op, got_arr.shape, want.shape)
    if op in ("sum", "nansum"):
        if x.dtype.kind == "f":
            assert got_arr.dtype == np.float64
        else:  # numpy's own result dtype: int64, uint64 for unsigned
            assert got_arr.dtype == np.sum(x[:1, :1, :1]).dtype
    elif op in ("mean", "nanmean"):
        assert got_arr.dtype == np.float64
    elif op == "count":
        assert got_arr.dtype == np.int64
    else:
        assert got_arr.dtype == x.dtype
    if got_arr.dtype.kind == "f":
        np.testing.assert_allclose(got_arr, want, rtol=1e-12, atol=0, equal_nan=True)
    else:
        np.testing.assert_array_equal(got_arr, want)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_match_numpy(tmp_path, fmt, dtype):
    x = data_for(dtype)
    a = chunkyard.create(tmp_path / f"a.{fmt}", SHAPE, dtype, chunks=CHUNKS)
    a[...] = x
    for op in OPS:
        for axis in AXES:
            got = getattr(a, op)(axis=axis)
            if axis is None:
                assert np.ndim(got) == 0 and not isinstance(got, np.ndarray), (op, type(got))
            check(op, got, expected(op, x, axis), x)
    # Positional axis, as numpy's.
    check("max", a.max(1), np.max(x, 1), x)
    a.close()


def test_sums_of_integers_wrap_as_numpy(tmp_path):
    big = np.full((5, 3), np.iinfo("int64").max, "int64")
    a = chunkyard.create(tmp_path / "i.npy", big.shape, "int64")
    a[...] = big
    assert a.sum() == np.sum(big) and a.sum().dtype == np.int64
    np.testing.assert_array_equal(a.sum(axis=0), np.sum(big, axis=0))
    u = np.full((4, 2), np.iinfo("uint64").max, "uint64")
    b = chunkyard.create(tmp_path / "u.zarr", u.shape, "uint64")
    b[...] = u
    assert b.sum() == np.sum(u) and b.sum().dtype == np.uint64
    np.testing.assert_array_equal(b.sum(axis=1), np.sum(u, axis=1))


def test_reductions_of_1d_and_0d(tmp_path):
    x = np.array([3, -1, 7, 2], "int32")
    a = chunkyard.create(tmp_path / "v.npy", x.shape, "int32", chunks=3)
    a[...] = x
    for op in ("sum", "min", "max", "mean"):
        got = getattr(a, op)(axis=0)
        assert not isinstance(got, np.ndarray)  # a scalar, as numpy
        assert got == getattr(np, op)(x, axis=0)
    s = chunkyard.create(tmp_path / "s.zarr", (), "float64")
    s[()] = 2.5
    assert s.sum() == 2.5 and s.max() == 2.5 and s.count() == 1
    with pytest.raises(np.exceptions.AxisError):
        s.sum(axis=0)


def test_empty_reductions(tmp_path):
    a = chunkyard.create(tmp_path / "e.zarr", (0, 4), "float64")
    assert a.sum() == 0.0 and a.count() == 0
    assert np.isnan(a.mean())
    np.testing.assert_array_equal(a.sum(axis=0), np.zeros(4))
    for op in ("min", "max", "nanmin", "nanmax"):
        with pytest.raises(ValueError, match="identity"):
            getattr(a, op)()
        with pytest.raises(ValueError, match="identity"):
            getattr(a, op)(axis=0)
        assert getattr(a, op)(axis=1).shape == (0,)  # numpy: an empty result


def test_reductions_see_unflushed_writes(tmp_path):
    a = chunkyard.create(tmp_path / "d.npy", (4, 100), "float64", chunks=(1, 100))
    a[2, 10:20] = 1.5  # part of a chunk: dirty in the cache
    assert a.sum() == 15.0
    assert a.max() == 1.5
    np.testing.assert_array_equal(a.count(axis=1), [100, 100, 100, 100])


def test_axis_argument_errors(tmp_path):
    a = chunkyard.create(tmp_path / "x.npy", (2, 3), "float32")
    with pytest.raises(np.exceptions.AxisError):
        a.sum(axis=2)
    with pytest.raises(np.exceptions.AxisError):
        a.mean(axis=-3)
    with pytest.raises(IndexError):  # AxisError is an IndexError too
        a.min(axis=5)
    with pytest.raises(TypeError, match="one axis"):
        a.sum(axis=(0, 1))
    with pytest.raises(TypeError, match="axis"):
        a.sum(axis=1.0)
    with pytest.raises(TypeError, match="axis"):
        a.sum(axis=True)
    a.close()
    with pytest.raises(ValueError, match="closed"):
        a.sum()


@pytest.mark.parametrize("op", OPS)
def test_keepdims_matches_numpy(tmp_path, op):
    x = data_for("float64", seed=3)
    a = chunkyard.create(tmp_path / "k.zarr", SHAPE, "float64", chunks=CHUNKS)
    a[...] = x
    for axis in AXES:
        got = getattr(a, op)(axis=axis, keepdims=True)
        want = expected(op, x, axis)
        want = np.expand_dims(want, axis) if axis is not None else np.reshape(want, (1, 1, 1))
        assert isinstance(got, np.ndarray) and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.ndim(getattr(a, op)(keepdims=False)) == 0
