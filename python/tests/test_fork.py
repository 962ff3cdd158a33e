"""After os.fork() the child opens, writes and reduces arrays; it never
hangs on a thread pool the fork did not copy. Runs in a subprocess (with
a timeout) so that a hang fails the test instead of stalling pytest."""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import chunkyard

    d = sys.argv[1]
    # The parent uses the library's parallel paths first (reductions,
    # copies, flushes), so its pools exist before the fork.
    for name in ("p.npy", "p.zarr"):
        a = chunkyard.create(os.path.join(d, name), (32, 16, 16), "float64", chunks=(4, 16, 16))
        a[...] = 1.0
        assert a.sum() == 32 * 16 * 16
        a.save_as(os.path.join(d, "copy-" + name)).close()
        a.close()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            want = np.arange(32 * 16 * 16, dtype="float64").reshape(32, 16, 16)
            for name in ("c.npy", "c.zarr"):
                b = chunkyard.create(os.path.join(d, name), want.shape, "float64", chunks=(4, 16, 16))
                b[...] = want
                assert b.sum() == want.sum()
                assert np.array_equal(b.mean(axis=0), want.mean(axis=0))
                b.save_as(os.path.join(d, "copy-" + name)).close()
                b.close()
                # What the parent wrote, read in the child.
                p = chunkyard.open(os.path.join(d, name.replace("c.", "p.")), cache=chunkyard.Cache("1MiB"))
                assert p.max() == 1.0 and p[3, 2, 1] == 1.0
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    # The child's files, read in the parent.
    for name in ("c.npy", "c.zarr", "copy-c.npy", "copy-c.zarr"):
        c = chunkyard.open(os.path.join(d, name))
        assert c[31, 15, 15] == 32 * 16 * 16 - 1, name
    print("ok")
    """
)


def test_a_forked_child_opens_writes_and_reduces(tmp_path):
    try:
        out = subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", "-c", SCRIPT, str(tmp_path)],
            capture_output=True, text=True, timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child hung")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
