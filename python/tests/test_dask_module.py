"""chunkyard.dask: to_dask and store, on the threaded scheduler and on the
session's cluster of worker processes (`dask_client`, conftest.py): the
article's volume (small) generated block by block on the workers, stored
into Zarr and .npy on local disk and into Zarr on S3, read back and
reduced there; a worker killed in the middle of the build. The S3 cases
need the server `.ci/with-s3` starts (its AWS_* variables reach the
worker processes, which inherit the environment) and skip without it:
.ci/with-s3 python -m pytest -q python/tests/test_dask_module.py -k s3"""

import os
import signal
import uuid

import numpy as np
import pytest

import chunkyard

da = pytest.importorskip("dask.array")
cdask = pytest.importorskip("chunkyard.dask")

DEPTH, ROWS, COLS = 6, 96, 80  # the article's (500, 2000, 2000), small

BUCKET = os.environ.get("CHUNKYARD_S3_BUCKET")


def where(tmp_path, name):
    """Where the test's array goes: ``tmp_path / name``, or for "s3" a
    Zarr array under a fresh prefix of the test bucket (skipped without
    the s3 build feature or a server)."""
    if name != "s3":
        return tmp_path / name
    if not (chunkyard.has_s3 and BUCKET):
        pytest.skip("needs the s3 build feature and a server: "
                    ".ci/with-s3 python -m pytest -q python/tests/test_dask_module.py -k s3")
    return f"s3://{BUCKET}/py-dask-{uuid.uuid4().hex}/vol.zarr"


def plane(block_id=None, kill_marker=None):
    """The article's plane: standard_normal float32, one generator per
    plane, seeded by its index, so the test can make the same volume."""
    z = block_id[0]
    if kill_marker is not None and z == 3 and not os.path.exists(kill_marker):
        # The first attempt at plane 3 kills its worker process (the
        # nanny starts a new one; the scheduler runs the task again).
        open(kill_marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    rng = np.random.default_rng(1000 + z)
    return rng.standard_normal((1, ROWS, COLS), dtype=np.float32)


def expected():
    return np.concatenate([plane(block_id=(z, 0, 0)) for z in range(DEPTH)])


def volume(**kw):
    return da.map_blocks(
        plane,
        chunks=((1,) * DEPTH, (ROWS,), (COLS,)),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        **kw,
    )


def fresh(path):
    return chunkyard.open(path, cache=chunkyard.Cache("8MiB"))[...]


@pytest.mark.parametrize("name", ["vol.zarr", "vol.npy", "s3"])
def test_the_article_volume_on_worker_processes(dask_client, tmp_path, name):
    want = expected()
    path = where(tmp_path, name)
    a = cdask.store(volume(), path)  # created with x's block shape as chunks
    assert a.chunks == (1, ROWS, COLS) and a.shape == (DEPTH, ROWS, COLS)
    np.testing.assert_array_equal(fresh(path), want)
    # (Reopened, a .npy file needs its chunks again: it stores none.)
    x = cdask.to_dask(chunkyard.open(path, chunks=(1, ROWS, COLS)))
    assert x.chunks == ((1,) * DEPTH, (ROWS,), (COLS,))
    s, m = dask_client.compute([x.sum(dtype="float64"), x.mean(axis=0, dtype="float64")], sync=True)
    np.testing.assert_allclose(s, want.sum(dtype="float64"), rtol=1e-9)
    np.testing.assert_allclose(m, want.mean(axis=0, dtype="float64"), rtol=1e-9)
    # And chunkyard's own reductions of the file agree.
    np.testing.assert_allclose(chunkyard.open(path).mean(axis=0), want.mean(axis=0, dtype="float64"), rtol=1e-6)


@pytest.mark.parametrize("name", ["vol.zarr", "s3"])
def test_a_worker_killed_mid_build_loses_nothing(dask_client, tmp_path, name):
    marker = str(tmp_path / "killed")
    path = where(tmp_path, name)
    pids = set(dask_client.run(os.getpid).values())
    cdask.store(volume(kill_marker=marker), path)
    assert os.path.exists(marker)  # a worker did die
    np.testing.assert_array_equal(fresh(path), expected())
    dask_client.wait_for_workers(2, timeout=60)
    assert set(dask_client.run(os.getpid).values()) != pids  # a new worker


def test_store_into_an_existing_array_and_on_threads(tmp_path):
    want = expected()
    a = chunkyard.create(tmp_path / "v.npy", (DEPTH, ROWS, COLS), "float32", chunks=(2, ROWS, COLS))
    x = volume().rechunk((2, ROWS, COLS))
    assert cdask.store(x, a, scheduler="threads") is a
    np.testing.assert_array_equal(fresh(tmp_path / "v.npy"), want)
    y = cdask.to_dask(a)
    np.testing.assert_allclose(
        y.mean(axis=1, dtype="float64").compute(scheduler="threads"), want.mean(axis=1, dtype="float64"), rtol=1e-9
    )


@pytest.mark.parametrize("name", ["v.npy", "v.zarr"])
def test_blocks_are_read_past_the_cache(tmp_path, name):
    """to_dask's tasks read each block once: straight into the result,
    not through the cache (Array._read_once), with the values a[key]
    gives, chunks already in the cache (and unwritten ones) included."""
    want = expected()
    cache = chunkyard.Cache("64MiB")
    a = chunkyard.create(tmp_path / name, want.shape, "float32", chunks=(1, 48, 40), cache=cache)
    a[...] = want
    a.close()
    a = chunkyard.open(tmp_path / name, "r+", cache=cache)
    assert a.memory_report()["resident_bytes"] == 0
    got = cdask.to_dask(a, chunks=(2, ROWS, COLS)).compute(scheduler="threads")
    np.testing.assert_array_equal(got, want)
    assert a.memory_report()["resident_bytes"] == 0, "the blocks went through the cache"
    # A chunk in the cache, changed and not yet written, is what is read.
    a[1, :48, :40] = 7.0
    resident = a.memory_report()["resident_bytes"]
    assert resident > 0
    want[1, :48, :40] = 7.0
    for key in [np.s_[0:2], np.s_[1, 3:60, 5:70], np.s_[...], (1, 2, 3)]:
        np.testing.assert_array_equal(a._read_once(key), want[key])
    assert a.memory_report()["resident_bytes"] == resident


def test_unaligned_blocks_are_refused_or_rechunked(tmp_path):
    """Into .npy (which does not merge writes) blocks that cut chunks are
    refused, or rechunked with rechunk=True."""
    a = chunkyard.create(tmp_path / "v.npy", (DEPTH, ROWS, COLS), "float32", chunks=(2, ROWS, COLS))
    assert not a._merges_writes
    x = volume()  # blocks of one plane: they cut chunks of two
    with pytest.raises(ValueError, match="not aligned.*axis 0: a block ends at 1.*does not merge"):
        cdask.store(x, a)
    cdask.store(x, a, rechunk=True, scheduler="threads")
    np.testing.assert_array_equal(fresh(tmp_path / "v.npy"), expected())
    # Blocks of several whole chunks are aligned.
    b = chunkyard.create(tmp_path / "w.npy", (DEPTH, ROWS, COLS), "float32", chunks=(1, 48, 40))
    cdask.store(x, b, scheduler="threads")
    np.testing.assert_array_equal(fresh(tmp_path / "w.npy"), expected())


@pytest.mark.parametrize("name", ["zarr", "s3"])
def test_blocks_that_cut_chunks_merge_into_zarr(dask_client, tmp_path, name):
    """Into Zarr, blocks that cut chunks are written as they are: worker
    processes sharing a chunk each merge their elements into it, and none
    is lost. Each chunk here is shared by up to 24 blocks, which the
    cluster's two workers write concurrently. (Without merging, the same
    store into .npy lost writes in 2 of 5 runs: /tmp experiment of
    2026-12-06; three rounds make a regression likely to show.)"""
    want = expected()
    for round in range(3):
        path = where(tmp_path, name if name == "s3" else f"v{round}.zarr")
        a = chunkyard.create(path, (DEPTH, ROWS, COLS), "float32", chunks=(2, ROWS, 48))
        assert a._merges_writes
        x = volume().rechunk((1, 24, 20))  # cuts every chunk along all axes
        cdask.store(x, a)  # on the session's cluster (the default client)
        np.testing.assert_array_equal(fresh(a.path), want, err_msg=f"round {round}")


def test_bad_arguments(tmp_path):
    x = volume()
    with pytest.raises(TypeError, match="dask array"):
        cdask.store(np.zeros(3), tmp_path / "a.npy")
    irregular = x.rechunk(((1, 2, 3), (ROWS,), (COLS,)))
    with pytest.raises(ValueError, match="not regular"):
        cdask.store(irregular, tmp_path / "b.npy")
    a = chunkyard.create(tmp_path / "c.npy", (DEPTH, ROWS, COLS), "float32")
    with pytest.raises(TypeError, match="for a target given as a path"):
        cdask.store(x, a, chunks=(1, ROWS, COLS))
    with pytest.raises(ValueError, match="read-only"):
        cdask.store(x, chunkyard.open(tmp_path / "c.npy"))
    with pytest.raises(ValueError, match="shape"):
        cdask.store(x[:2], a)
    with pytest.raises(TypeError, match="lock"):
        cdask.store(x, a, lock=True)


def test_an_array_the_workers_cannot_open_fails_the_computation(dask_client, tmp_path):
    """The scheduler unpickles the graph without opening the arrays in it
    (chunkyard.dask._Reopen); a worker that cannot open one fails its
    task with the open's own error, which compute() raises. (Opened while
    unpickling, the array failed the submission as distributed's
    "Error during deserialization of the task graph", or, on a worker,
    left the computation hanging.) The timeout only guards against such
    a hang."""
    a = chunkyard.create(tmp_path / "v.zarr", (DEPTH, ROWS, COLS), "float32", chunks=(1, ROWS, COLS))
    x = cdask.to_dask(a)
    d = cdask.store(volume(), a, compute=False)
    os.rename(tmp_path / "v.zarr", tmp_path / "moved.zarr")  # gone for the workers
    with pytest.raises(FileNotFoundError, match="v.zarr"):
        dask_client.compute(x.sum()).result(timeout=120)
    with pytest.raises(FileNotFoundError, match="v.zarr"):
        dask_client.compute(d).result(timeout=120)


@pytest.mark.skipif(not chunkyard.has_hdf5, reason="built without the HDF5 option")
def test_an_hdf5_target_on_worker_processes_is_a_clear_error(dask_client, tmp_path):
    """HDF5 takes one writer process per file: the caller holds the file
    it created, so the workers' opens fail (docs/scale-out.md). That is
    the open's StoreError from compute(), not a hang; the threaded
    scheduler writes it."""
    d = cdask.store(volume(), f"{tmp_path}/v.h5:/data", compute=False)
    with pytest.raises(chunkyard.StoreError, match="unable to lock file"):
        dask_client.compute(d).result(timeout=120)
    cdask.store(volume(), f"{tmp_path}/w.h5:/data", scheduler="threads")
    np.testing.assert_array_equal(fresh(f"{tmp_path}/w.h5:/data"), expected())
