"""astype(...).save_as, save_as, convert and iter_blocks, against numpy."""

import itertools
import warnings

import numpy as np
import pytest
import zarr

import chunkyard

FORMATS = ["npy", "zarr"]


def reference(path):
    path = str(path)
    return np.load(path) if path.endswith(".npy") else zarr.open_array(path, mode="r")[...]


def source(tmp_path, fmt, x, chunks, name="src", **kw):
    a = chunkyard.create(tmp_path / f"{name}.{fmt}", x.shape, x.dtype, chunks=chunks, **kw)
    a[...] = x
    return a


CASTS = [
    ("float64", "float32"),
    ("float32", "int16"),  # truncates toward zero; out of range as numpy's cast
    ("int16", "uint8"),  # wraps
    ("int32", "bool"),
    ("bool", "float64"),
    ("uint16", "int64"),
]


def values(dtype, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal((5, 6, 7)) * 1000).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, (5, 6, 7)).astype(bool)
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, (5, 6, 7), dtype=dt, endpoint=True)


@pytest.mark.parametrize("src_fmt,dst_fmt", list(itertools.product(FORMATS, FORMATS)))
@pytest.mark.parametrize("src_dt,dst_dt", CASTS)
def test_astype_save_as_matches_numpy_astype(tmp_path, src_fmt, dst_fmt, src_dt, dst_dt):
    x = values(src_dt)
    a = source(tmp_path, src_fmt, x, (2, 6, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = x.astype(dst_dt)
    v = a.astype(dst_dt)
    assert v.dtype == np.dtype(dst_dt) and v.shape == x.shape and v.ndim == 3 and len(v) == 5
    np.testing.assert_array_equal(v[1:4, ::2, 3], want[1:4, ::2, 3])
    assert v[2, 3, 4] == want[2, 3, 4] and isinstance(v[2, 3, 4], np.generic)
    np.testing.assert_array_equal(np.asarray(v), want)
    b = v.save_as(tmp_path / f"dst.{dst_fmt}", chunks=(3, 3, 7))
    assert b.dtype == np.dtype(dst_dt) and b.chunks == (3, 3, 7) and not b.read_only
    np.testing.assert_array_equal(b[...], want)
    np.testing.assert_array_equal(reference(tmp_path / f"dst.{dst_fmt}"), want)  # flushed
    b[0, 0, 0] = 1  # open for writing
    b.close()
    a.close()


def test_nan_to_int_is_zero(tmp_path):
    x = np.array([1.5, np.nan, -2.5, np.inf], "float64")
    a = source(tmp_path, "npy", x, 4)
    np.testing.assert_array_equal(a.astype("int32")[...], [1, 0, -2, np.iinfo("int32").max])
    b = a.astype("int32").save_as(tmp_path / "b.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), [1, 0, -2, np.iinfo("int32").max])
    b.close()


def test_save_as_options(tmp_path):
    x = np.arange(4 * 50 * 60, dtype="float32").reshape(4, 50, 60) % 3
    c = chunkyard.Cache("2MiB")
    a = source(tmp_path, "zarr", x, (1, 50, 60), fill_value=-1, cache=c)
    b = a.save_as(tmp_path / "b.zarr", codec="zstd")
    assert b.cache is c  # the source's cache, as the Rust save_as
    assert b.fill_value == -1  # a Zarr copy keeps the fill value
    assert b.chunks != (1, 50, 60)  # chunks are not copied: the default
    assert "zstd" in (tmp_path / "b.zarr" / "zarr.json").read_text()
    np.testing.assert_array_equal(reference(tmp_path / "b.zarr"), x)
    d = a.astype("int8").save_as(tmp_path / "d.zarr", fill_value=7, cache=chunkyard.Cache(1 << 20))
    assert d.fill_value == 7 and d.cache is not c and d.cache.budget == 1 << 20
    with pytest.raises(FileExistsError):
        a.save_as(tmp_path / "b.zarr")
    b2 = a.astype("float64").save_as(tmp_path / "b.zarr", overwrite=True)
    assert b2.dtype == np.float64
    with pytest.raises(ValueError, match="cannot be compressed"):
        a.save_as(tmp_path / "e.npy", codec="lz4")
    with pytest.raises(ValueError, match="fill value"):
        a.save_as(tmp_path / "f.npy", fill_value=3)
    with pytest.raises(ValueError, match="same file"):
        a.save_as(tmp_path / "src.zarr", overwrite=True)
    np.testing.assert_array_equal(a[...], x)  # the source survived
    for bad in ["complex64", "U3", ">f8"]:
        with pytest.raises(ValueError, match="dtype"):
            a.astype(bad)
    with pytest.raises(ValueError, match="not a numpy dtype"):
        a.astype("notadtype")
    with pytest.raises(ValueError, match="chunks"):
        a.save_as(tmp_path / "g.zarr", chunks=(1, -2, 3))
    a.close()
    with pytest.raises(ValueError, match="closed"):
        a.astype("int8")


@pytest.mark.parametrize("given", ["path", "array"])
def test_convert(tmp_path, given):
    x = values("float64", seed=4)
    a = source(tmp_path, "npy", x, (1, 6, 7))
    a.close()
    src = tmp_path / "src.npy" if given == "path" else chunkyard.open(tmp_path / "src.npy")
    b = chunkyard.convert(src, tmp_path / "c.zarr", dtype="float32", chunks=(5, 3, 7), codec="lz4")
    assert b.dtype == np.float32 and b.chunks == (5, 3, 7)
    np.testing.assert_array_equal(b[...], x.astype("float32"))
    np.testing.assert_array_equal(reference(tmp_path / "c.zarr"), x.astype("float32"))
    same = chunkyard.convert(src, tmp_path / "same.npy")
    assert same.dtype == np.float64
    np.testing.assert_array_equal(np.load(tmp_path / "same.npy"), x)
    with pytest.raises(FileExistsError):
        chunkyard.convert(src, tmp_path / "c.zarr")
    with pytest.raises(FileNotFoundError):
        chunkyard.convert(tmp_path / "missing.npy", tmp_path / "d.npy")
    with pytest.raises(TypeError, match="codec"):
        chunkyard.convert(src, tmp_path / "e.zarr", codec=3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_iter_blocks_in_chunk_order(tmp_path, fmt):
    x = values("int16", seed=2)  # (5, 6, 7)
    chunks = (2, 4, 3)
    a = source(tmp_path, fmt, x, chunks)
    a[4, 5, 6] = 12345  # an unflushed write is seen
    x[4, 5, 6] = 12345
    seen = np.zeros(x.shape, int)
    origins = []
    for sel, block in a.iter_blocks():
        assert isinstance(sel, tuple) and all(isinstance(s, slice) for s in sel)
        assert block.dtype == np.int16 and block.flags.c_contiguous
        np.testing.assert_array_equal(block, x[sel])
        np.testing.assert_array_equal(block, a[sel])
        seen[sel] += 1
        origins.append(tuple(s.start for s in sel))
    assert (seen == 1).all()  # every element exactly once
    grid = [range(0, n, c) for n, c in zip(x.shape, chunks)]
    assert origins == list(itertools.product(*grid))  # row-major over the grid
    a.close()
    with pytest.raises(ValueError, match="closed"):
        a.iter_blocks()


def test_iter_blocks_edge_cases(tmp_path):
    e = chunkyard.create(tmp_path / "e.npy", (0, 5), "float32")
    assert list(e.iter_blocks()) == []
    s = chunkyard.create(tmp_path / "s.zarr", (), "float64")
    s[()] = 4.5
    [(sel, block)] = list(s.iter_blocks())
    assert sel == () and block.shape == () and block[()] == 4.5
    big = chunkyard.create(tmp_path / "b.npy", (50, 10), "uint8", chunks=(1, 10))
    it = big.iter_blocks()
    next(it)
    del it  # dropped early: the reader thread stops, nothing hangs
    it = iter(big.iter_blocks())
    assert iter(it) is it
    assert len(list(it)) == 50
    assert next(it, None) is None  # stays exhausted


def test_iter_blocks_reports_a_corrupt_chunk(tmp_path):
    x = np.arange(4 * 8, dtype="float64").reshape(4, 8)
    a = source(tmp_path, "zarr", x, (1, 8), codec="lz4")
    a.close()
    # The chunks under c/ (not zarr.json, not the lock files of
    # .chunkyard-locks/).
    chunk_files = sorted(p for p in (tmp_path / "src.zarr" / "c").rglob("*") if p.is_file())
    assert len(chunk_files) == 4
    chunk_files[2].write_bytes(b"not lz4 at all")
    b = chunkyard.open(tmp_path / "src.zarr")
    got = []
    with pytest.raises((chunkyard.FormatError, OSError)):
        for _sel, block in b.iter_blocks():
            got.append(block)
    assert len(got) == 2
    np.testing.assert_array_equal(np.concatenate(got), x[:2])
