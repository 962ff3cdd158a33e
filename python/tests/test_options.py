"""create()'s codec= and overwrite=, and chunkyard.Cache shared by arrays."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import zarr

import chunkyard

CODECS = ["lz4", "zstd", "zstd:7", "gzip", "gzip:1", "none", None]


def stored_bytes(path):
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trips_and_zarr_python_reads_it(tmp_path, codec):
    path = tmp_path / "c.zarr"
    # Compressible: a smooth ramp of small integers.
    expected = (np.arange(8 * 64 * 64) % 7).astype("float32").reshape(8, 64, 64)
    with chunkyard.create(path, expected.shape, "float32", chunks=(1, 64, 64), codec=codec) as a:
        for i, plane in enumerate(expected):
            a[i] = plane
    with chunkyard.open(path) as b:
        np.testing.assert_array_equal(b[...], expected)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[...], expected)
    meta = (path / "zarr.json").read_text()
    name = None if codec in (None, "none") else codec.split(":")[0]
    if name is not None:
        assert name in meta
        # Compression happened: far less than the 128 KiB of raw floats.
        assert stored_bytes(path) < expected.nbytes // 4
    else:
        assert stored_bytes(path) >= expected.nbytes
        for other in ("lz4", "zstd", "gzip"):
            assert other not in meta


def test_zstd_level_is_recorded(tmp_path):
    path = tmp_path / "z.zarr"
    chunkyard.create(path, (4, 4), "int32", codec="zstd:7").close()
    meta = json.loads((path / "zarr.json").read_text())
    assert "7" in json.dumps(meta["codecs"])


def test_codec_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot be compressed"):
        chunkyard.create(tmp_path / "a.npy", (4,), "int32", codec="lz4")
    for bad in ["brotli", "zstd:0", "zstd:x", "gzip:10", "lz4:3", ""]:
        with pytest.raises(ValueError, match="codec"):
            chunkyard.create(tmp_path / "b.zarr", (4,), "int32", codec=bad)
        assert not (tmp_path / "b.zarr").exists()
    with pytest.raises(TypeError, match="codec"):
        chunkyard.create(tmp_path / "c.zarr", (4,), "int32", codec=5)


@pytest.mark.parametrize("fmt", ["npy", "zarr"])
def test_overwrite(tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    with chunkyard.create(path, (3, 4), "int16") as a:
        a[...] = 7
    with pytest.raises(FileExistsError):
        chunkyard.create(path, (5, 2), "float64")
    # The refused create left the old array alone.
    np.testing.assert_array_equal(chunkyard.open(path)[...], np.full((3, 4), 7, "int16"))
    with chunkyard.create(path, (5, 2), "float64", overwrite=True) as b:
        assert b.shape == (5, 2)
        np.testing.assert_array_equal(b[...], np.zeros((5, 2)))
        b[1] = 2.5
    got = np.load(path) if fmt == "npy" else zarr.open_array(str(path), mode="r")[...]
    np.testing.assert_array_equal(got, np.array([[0, 0], [2.5, 2.5], [0, 0], [0, 0], [0, 0]]))


def test_cache_budget_parsing():
    assert chunkyard.Cache("1MiB").budget == 1 << 20
    assert chunkyard.Cache("256MiB").budget == 256 << 20
    assert chunkyard.Cache("500MB").budget == 500_000_000
    assert chunkyard.Cache(4096).budget == 4096
    assert chunkyard.Cache(np.int64(8192)).budget == 8192
    for bad in ["lots", "12XB", "-5MiB"]:
        with pytest.raises(ValueError, match="size"):
            chunkyard.Cache(bad)
    with pytest.raises(ValueError, match="non-negative"):
        chunkyard.Cache(-1)
    for bad in [1.5, True, None, [1]]:
        with pytest.raises(TypeError, match="budget"):
            chunkyard.Cache(bad)


def test_default_is_the_global_cache(tmp_path):
    g = chunkyard.global_cache()
    assert g is chunkyard.global_cache()
    assert g.budget == 256 << 20
    with chunkyard.create(tmp_path / "a.npy", (4,), "int8") as a:
        assert a.cache is g
    with chunkyard.open(tmp_path / "a.npy") as a:
        assert a.cache is g
    assert "chunkyard.Cache" in repr(g) and "256.00 MiB" in repr(g)


def test_global_cache_budget_from_the_environment(tmp_path):
    """CHUNKYARD_CACHE sizes the process-wide cache when chunkyard is
    imported, which is the cache an unpickled array (a dask worker's)
    goes to; a value that is not a size fails the import."""
    a = chunkyard.create(tmp_path / "a.zarr", (4, 6), "int16", chunks=(2, 3))
    a[...] = np.arange(24).reshape(4, 6)
    (tmp_path / "a.pickle").write_bytes(pickle.dumps(a))
    code = (
        "import pickle, sys, chunkyard; "
        "a = pickle.loads(open(sys.argv[1], 'rb').read()); "
        "print(chunkyard.global_cache().budget, a.cache is chunkyard.global_cache(), int(a[3, 5]))"
    )

    def run(value):
        env = {**os.environ, "CHUNKYARD_CACHE": value}
        return subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "a.pickle")],
            env=env, capture_output=True, text=True, timeout=60,
        )

    ok = run(" 1GiB ")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [str(1 << 30), "True", "23"]
    bad = run("lots")
    assert bad.returncode != 0
    assert "ValueError" in bad.stderr and 'CHUNKYARD_CACHE="lots"' in bad.stderr, bad.stderr
    assert "panic" not in bad.stderr.lower()


def test_small_zarr_chunks_within_a_low_open_file_limit(tmp_path):
    """Thousands of 1 KiB Zarr chunks written back at once, in a process
    allowed 256 open files: the background syncs keep at most 64 chunk
    files open (they held one per queued chunk, up to 256 MiB of them:
    "Too many open files" at flush under the usual limit of 1,024)."""
    code = (
        "import resource, sys, numpy as np, chunkyard\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "want = np.arange(4000 * 256, dtype='float32').reshape(4000, 256)\n"
        "a = chunkyard.create(sys.argv[1], want.shape, 'float32', chunks=(1, 256))\n"
        "a[...] = want\n"
        "a.close()\n"
        "assert (chunkyard.open(sys.argv[1])[...] == want).all()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "small.zarr")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_shared_cache_holds_chunks_of_both_arrays(tmp_path):
    c = chunkyard.Cache("8MiB")
    a = chunkyard.create(tmp_path / "a.zarr", (4, 128, 128), "float64", chunks=(1, 128, 128), cache=c)
    b = chunkyard.create(tmp_path / "b.npy", (4, 128, 128), "float64", chunks=(1, 128, 128), cache=c)
    assert a.cache is c and b.cache is c
    a[...] = 1.0
    b[...] = 2.0
    a.flush()
    b.flush()
    s = c.stats
    assert set(s) == {
        "hits", "misses", "evictions", "writebacks", "write_throughs", "background_writes",
        "queued_writes", "resident_bytes", "dirty_bytes", "in_flight_bytes", "budget_bytes",
        "entries",
    }
    assert s["budget_bytes"] == 8 << 20 and s["dirty_bytes"] == 0
    before = c.stats
    assert a[0, 0, 0] == 1.0 and b[3, 127, 127] == 2.0
    after = c.stats
    assert after["hits"] + after["misses"] >= before["hits"] + before["misses"] + 2
    # Reads through the cache leave both arrays' chunks in the one budget.
    assert after["resident_bytes"] >= 2 * 128 * 128 * 8
    assert after["resident_bytes"] <= 8 << 20
    a.close()
    b.close()


def test_small_cache_stays_within_budget(tmp_path):
    c = chunkyard.Cache("1MiB")
    expected = np.random.default_rng(3).standard_normal((16, 128, 128))  # 2 MiB
    a = chunkyard.create(tmp_path / "a.zarr", expected.shape, "float64", chunks=(1, 128, 128), cache=c)
    for i in range(16):
        a[i, :64] = expected[i, :64]  # partial chunks: through the cache
        assert c.stats["resident_bytes"] <= 1 << 20
    for i in range(16):
        a[i, 64:] = expected[i, 64:]
    a.close()
    assert c.stats["evictions"] > 0
    with chunkyard.open(tmp_path / "a.zarr", cache=c) as b:
        np.testing.assert_array_equal(b[...], expected)
        assert c.stats["resident_bytes"] <= 1 << 20


def test_cache_argument_is_checked(tmp_path):
    with pytest.raises(TypeError, match="chunkyard.Cache"):
        chunkyard.create(tmp_path / "a.npy", (4,), "int8", cache="1MiB")
    chunkyard.create(tmp_path / "b.npy", (4,), "int8").close()
    with pytest.raises(TypeError, match="chunkyard.Cache"):
        chunkyard.open(tmp_path / "b.npy", cache=1 << 20)
