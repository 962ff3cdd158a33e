"""Property tests (hypothesis): random shapes, chunk shapes and dtypes;
random selections read, random writes (arrays, scalars, broadcast rows),
a reduction along a random axis, and a reopen, each against a numpy array
that gets the same operations, on every format."""

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import chunkyard  # noqa: E402

FORMATS = ["npy", "zarr"]
DTYPES = ["float32", "float64", "int8", "int32", "uint16", "uint64", "bool"]


@st.composite
def arrays(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, max(1, n + 2))) for n in shape)
    dtype = draw(st.sampled_from(DTYPES))
    fmt = draw(st.sampled_from(FORMATS))
    return fmt, shape, chunks, dtype


@st.composite
def selections(draw, shape):
    """A numpy basic index chunkyard supports: ints, slices with step >= 1,
    at most one `...`, possibly fewer indices than axes."""
    ndim = len(shape)
    k = draw(st.integers(0, ndim))
    ellipsis = draw(st.booleans())
    # With an ellipsis, the items before it index the first axes and those
    # after it the last ones.
    at = draw(st.integers(0, k)) if ellipsis else k
    sizes = list(shape[:at]) + list(shape[ndim - (k - at):])
    items = []
    for n in sizes:
        if n > 0 and draw(st.booleans()):
            items.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.none() | st.integers(-n - 3, n + 3)
            step = st.none() | st.integers(1, 4)
            items.append(slice(draw(bound), draw(bound), draw(step)))
    if ellipsis:
        items.insert(at, Ellipsis)
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


def values(rng, shape, dtype):
    """An ndarray (0-d for shape ()) of random values of `dtype`."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        v = rng.standard_normal(shape) * 100
    elif dt.kind == "b":
        v = rng.integers(0, 2, shape)
    else:
        info = np.iinfo(dt)
        v = rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    return np.asarray(v).astype(dt)


# More examples for a longer run: CHUNKYARD_HYPOTHESIS_EXAMPLES=2000.
EXAMPLES = int(os.environ.get("CHUNKYARD_HYPOTHESIS_EXAMPLES", "80"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(spec=arrays(), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_reads_and_writes_match_numpy(spec, data, seed):
    fmt, shape, chunks, dtype = spec
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"a.{fmt}"
        a = chunkyard.create(path, shape, dtype, chunks=chunks)
        a[...] = x
        for _ in range(data.draw(st.integers(1, 6))):
            sel = data.draw(selections(shape))
            want = x[sel]
            got = a[sel]
            if isinstance(want, np.ndarray):
                assert isinstance(got, np.ndarray) and got.shape == want.shape
            else:
                assert np.ndim(got) == 0
            np.testing.assert_array_equal(got, want)
            # A write to a random selection: an array of its shape, a
            # scalar, or a row broadcast over it.
            sel = data.draw(selections(shape))
            target = x[sel]
            tshape = np.shape(target)
            kind = data.draw(st.sampled_from(["array", "scalar", "row"]))
            if kind == "scalar" or not tshape:
                v = values(rng, (), dtype)[()]
            elif kind == "row":
                v = values(rng, tshape[-1:], dtype)
            else:
                v = values(rng, tshape, dtype)
            a[sel] = v
            x[sel] = v
        np.testing.assert_array_equal(a[...], x)
        if x.ndim and x.size:
            axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
            op = data.draw(st.sampled_from(["sum", "max", "nanmin", "count"]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if op == "count":
                    want = np.count_nonzero(
                        ~np.isnan(x) if x.dtype.kind == "f" else np.ones_like(x, bool), axis=axis
                    )
                elif op == "sum" and x.dtype.kind == "f":
                    want = np.sum(x.astype("float64"), axis=axis)
                else:
                    want = getattr(np, op)(x, axis=axis)
            got = getattr(a, op)(axis=axis)
            if np.asarray(got).dtype.kind == "f":
                np.testing.assert_allclose(got, want, rtol=1e-12)
            else:
                np.testing.assert_array_equal(got, want)
        a.close()
        with chunkyard.open(path) as b:
            np.testing.assert_array_equal(b[...], x)


def test_scalar_or_0d_array_as_numpy(tmp_path):
    """numpy gives a scalar only when every axis has an integer and there is
    no `...`: `x[...]` of a 0-d array and `x[1, 2, ...]` are 0-d arrays."""
    x = np.arange(12, dtype="int32").reshape(3, 4)
    a = chunkyard.create(tmp_path / "a.npy", x.shape, "int32")
    a[...] = x
    s = chunkyard.create(tmp_path / "s.zarr", (), "float64")
    s[...] = 2.5
    z = np.asarray(2.5)
    for arr, ref, key in [(a, x, (1, 2)), (a, x, (1, 2, ...)), (a, x, (..., 1, 2)),
                          (s, z, ()), (s, z, ...), (s, z, (...,))]:
        got, want = arr[key], ref[key]
        assert isinstance(got, np.ndarray) == isinstance(want, np.ndarray), key
        assert np.shape(got) == np.shape(want) and got == want
        cast = arr.astype("float32")[key]
        assert isinstance(cast, np.ndarray) == isinstance(want, np.ndarray), key
