"""Write-behind from Python: on by default (2 writers) in every Cache and
the process-wide one; writes through it are durable after flush/close, a
failed background write surfaces at the next write and at flush, and the
pickling, dask and fork paths stay durable."""

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import chunkyard

FORMATS = ["npy", "zarr"]


def planes(n, side, seed=0):
    return np.random.default_rng(seed).standard_normal((n, side, side)).astype("float32")


def test_caches_have_two_writers_by_default_and_zero_turns_it_off():
    assert chunkyard.global_cache().write_behind == 2
    assert chunkyard.Cache("1MiB").write_behind == 2
    assert chunkyard.Cache("1MiB", write_behind=3).write_behind == 3
    off = chunkyard.Cache("1MiB", write_behind=0)
    assert off.write_behind == 0
    assert "write_behind=0" in repr(off)
    for key in ("background_writes", "queued_writes"):
        assert key in off.stats


@pytest.mark.parametrize("bad", [-1, 65, 10**30])
def test_a_writer_count_out_of_range_is_a_value_error(bad):
    with pytest.raises(ValueError, match="write_behind"):
        chunkyard.Cache("1MiB", write_behind=bad)


@pytest.mark.parametrize("bad", [True, 2.0, "2"])
def test_a_writer_count_that_is_not_an_int_is_a_type_error(bad):
    with pytest.raises(TypeError, match="write_behind"):
        chunkyard.Cache("1MiB", write_behind=bad)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("end", ["flush", "close"])
def test_planes_written_behind_are_durable_after_flush_or_close(tmp_path, fmt, end):
    want = planes(24, 64)
    path = tmp_path / f"a.{fmt}"
    # A budget of 8 planes: the writers, eviction and back-pressure all
    # take part over 24 planes.
    cache = chunkyard.Cache(8 * 64 * 64 * 4, write_behind=2)
    a = chunkyard.create(path, want.shape, "float32", chunks=(1, 64, 64), cache=cache)
    for i in range(len(want)):
        a[i] = want[i]
        assert cache.stats["resident_bytes"] <= cache.budget
    getattr(a, end)()
    assert cache.stats["dirty_bytes"] == 0
    b = chunkyard.open(path, cache=chunkyard.Cache("64MiB", write_behind=0))
    assert np.array_equal(b[...], want)
    # And through another library.
    if fmt == "npy":
        assert np.array_equal(np.load(path), want)


def test_the_default_cache_writes_behind_and_is_durable(tmp_path):
    want = planes(8, 32, seed=1)
    path = tmp_path / "g.npy"
    with chunkyard.create(path, want.shape, "float32", chunks=(1, 32, 32)) as a:
        assert a.cache is chunkyard.global_cache()
        for i in range(len(want)):
            a[i] = want[i]
    assert np.array_equal(np.load(path), want)


def _write_until_poisoned(a, cache):
    """Writes whole chunks until one raises the background failure. A
    wait, not a timed assertion: a writer takes a queued job at once
    unless the machine is starved; 60 s only bounds a broken run."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            a[2] = 3.0
        except chunkyard.PoisonedError as e:
            return e
        time.sleep(0.01)
    pytest.fail(f"no write raised PoisonedError: {cache.stats}")


def test_a_failed_background_write_surfaces_at_the_next_write_and_at_flush(tmp_path):
    # A Zarr chunk is a file under `c/`; with `c` replaced by a plain file
    # the chunk's directory cannot be made, whoever runs the test (root
    # too, which file permissions would not stop).
    path = tmp_path / "f.zarr"
    cache = chunkyard.Cache("16MiB", write_behind=1)
    a = chunkyard.create(path, (4, 32, 32), "float32", chunks=(1, 32, 32), cache=cache)
    a[0] = 1.0
    a.flush()
    shutil.rmtree(path / "c")
    (path / "c").write_bytes(b"not a directory")
    a[1] = np.full((32, 32), 2.0, "float32")  # returns: written behind
    e = _write_until_poisoned(a, cache)
    assert "background write-back of chunk [1, 0, 0]" in str(e), e
    with pytest.raises(chunkyard.ChunkyardError):
        a.flush()
    # The data stays readable from the cache.
    assert a[1, 5, 5] == 2.0
    with pytest.raises(chunkyard.ChunkyardError):
        a.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_pickled_arrays_write_durably_through_the_default_cache(tmp_path, fmt):
    want = planes(6, 16, seed=2)
    path = tmp_path / f"p.{fmt}"
    a = chunkyard.create(path, want.shape, "float32", chunks=(1, 16, 16))
    b = pickle.loads(pickle.dumps(a))
    assert b.sync_writes and b.cache.write_behind == 2
    for i in range(len(want)):
        b[i] = want[i]
    # No flush or close of b: each of its writes was durable on return, so
    # nothing of b is dirty. (The cache's queue may still hold jobs for
    # chunks those writes already wrote: a writer drops them when it
    # finds the chunk clean, so `queued_writes` is not checked.)
    assert b.memory_report()["dirty_bytes"] == 0
    c = chunkyard.open(path, cache=chunkyard.Cache("1MiB", write_behind=0))
    assert np.array_equal(c[...], want)


def test_dask_store_from_threads_through_write_behind(tmp_path):
    da = pytest.importorskip("dask.array")
    want = planes(12, 32, seed=3)
    path = tmp_path / "d.zarr"
    a = chunkyard.create(path, want.shape, "float32", chunks=(2, 32, 32),
                         cache=chunkyard.Cache("64KiB", write_behind=2))
    da.store(da.from_array(want, chunks=(2, 32, 32)), a, lock=False, scheduler="threads")
    a.close()
    b = chunkyard.open(path, cache=chunkyard.Cache("1MiB", write_behind=0))
    assert np.array_equal(b[...], want)


EXIT_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import chunkyard
    a = chunkyard.create(sys.argv[1], (16, 64, 64), "float32", chunks=(1, 64, 64))
    for i in range(16):
        a[i] = np.full((64, 64), i, "float32")
    # No flush, no close: the interpreter frees `a` at exit, which flushes.
    """
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_array_left_open_at_exit_is_flushed(tmp_path, fmt):
    path = tmp_path / f"e.{fmt}"
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    b = chunkyard.open(path, cache=chunkyard.Cache("1MiB", write_behind=0))
    assert np.array_equal(b[:, 7, 9], np.arange(16, dtype="float32"))


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import chunkyard

    d = sys.argv[1]
    # The parent writes behind first, so its writer threads exist at the fork.
    a = chunkyard.create(os.path.join(d, "p.zarr"), (8, 32, 32), "float64", chunks=(1, 32, 32))
    for i in range(8):
        a[i] = i
    a.flush()
    assert chunkyard.global_cache().write_behind == 2
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for name in ("c.npy", "c.zarr"):
                b = chunkyard.create(os.path.join(d, name), (8, 32, 32), "float64", chunks=(1, 32, 32))
                for i in range(8):
                    b[i] = 10 + i
                b.close()
            p = chunkyard.open(os.path.join(d, "p.zarr"))
            assert p[5, 1, 2] == 5
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    # The parent's writers still work after the fork.
    for i in range(8):
        a[i] = 20 + i
    a.close()
    for name, base in (("c.npy", 10), ("c.zarr", 10), ("p.zarr", 20)):
        c = chunkyard.open(os.path.join(d, name), cache=chunkyard.Cache("1MiB", write_behind=0))
        assert np.array_equal(c[:, 3, 4], base + np.arange(8)), name
    print("ok")
    """
)


def test_a_forked_child_writes_behind_with_writers_of_its_own(tmp_path):
    try:
        out = subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", "-c", FORK_SCRIPT, str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child hung")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
