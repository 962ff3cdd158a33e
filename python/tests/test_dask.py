"""dask: `from_array` and `store` on the threaded scheduler and on a
cluster of worker processes (the `dask_client` fixture, conftest.py)."""

import os

import numpy as np
import pytest

import chunkyard

da = pytest.importorskip("dask.array")

SHAPE, CHUNKS = (12, 20, 30), (3, 20, 15)


def fresh(path):
    """The array at `path` read through a cache of its own: what the file
    holds, not what some cache does."""
    return chunkyard.open(path, cache=chunkyard.Cache("8MiB"))[...]


@pytest.fixture(params=["v.npy", "v.zarr"])
def volume(request, tmp_path):
    data = np.random.default_rng(7).standard_normal(SHAPE).astype("float32")
    a = chunkyard.create(tmp_path / request.param, SHAPE, "float32", chunks=CHUNKS)
    a[...] = data
    return a, data


def test_from_array_on_threads(volume):
    a, data = volume
    x = da.from_array(a, chunks=a.chunks)
    assert x.chunks == ((3,) * 4, (20,), (15, 15))
    got = x.sum(axis=0).compute(scheduler="threads")
    np.testing.assert_allclose(got, data.sum(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(x[5:9, 3, ::2].compute(scheduler="threads"), data[5:9, 3, ::2])


def test_store_on_threads(volume, tmp_path):
    a, data = volume
    out = chunkyard.create(tmp_path / "out.zarr", SHAPE, "float32", chunks=CHUNKS)
    x = da.from_array(a, chunks=a.chunks) * 2 + 1
    da.store(x, out, lock=False, scheduler="threads")
    np.testing.assert_array_equal(out[...], data * 2 + 1)
    out.flush()
    np.testing.assert_array_equal(fresh(tmp_path / "out.zarr"), data * 2 + 1)


def test_from_array_on_worker_processes(volume, dask_client):
    a, data = volume
    a.flush()
    x = da.from_array(a, chunks=a.chunks)
    # The blocks are read in the workers, not here.
    pids = set(dask_client.run(os.getpid).values())
    assert os.getpid() not in pids and len(pids) == 2
    np.testing.assert_allclose(x.mean(axis=1).compute(), data.mean(axis=1), rtol=1e-5)
    np.testing.assert_array_equal(x.compute(), data)


@pytest.mark.parametrize("name", ["out.npy", "out.zarr"])
def test_store_from_worker_processes_is_durable_when_compute_returns(volume, dask_client, tmp_path, name):
    a, data = volume
    out = chunkyard.create(tmp_path / name, SHAPE, "float32", chunks=CHUNKS)
    x = da.from_array(a, chunks=a.chunks) - 3
    da.store(x, out, lock=False)  # chunk-aligned blocks, from the workers
    # No flush here or in the workers' code: each task's writes were made
    # durable before the task ended (an unpickled array syncs its writes).
    np.testing.assert_array_equal(fresh(tmp_path / name), data - 3)
