"""Calls that do I/O or compute release the GIL: another Python thread runs
while they work.

No timing: with a huge switch interval the interpreter never takes the
GIL from the thread holding it, so a helper thread that counts (and lets
go of the GIL after every count, in `time.sleep(0)`) can count during a
call only if that call released the GIL. A call that holds it throughout
leaves the count exactly where it was, every time. A call that releases
it lets the helper count unless the OS did not schedule the helper in
time (a loaded machine): each call gets up to 50 tries, which cannot turn
a call that holds the GIL into a pass."""

import sys
import threading
import time

import numpy as np
import pytest

import chunkyard


class Counter:
    def __init__(self):
        self.n = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop:
            self.n += 1
            time.sleep(0)  # lets go of the GIL

    def __enter__(self):
        self.old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        self.thread.start()
        while self.n == 0:  # the helper is running
            time.sleep(0.001)
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        sys.setswitchinterval(self.old)

    def released(self, call, setup=lambda: None, tries=50):
        """Whether the helper counted during `call()` in one of `tries`
        tries (`setup()` before each, not counted)."""
        for _ in range(tries):
            setup()
            before = self.n
            call()
            if self.n != before:
                return True
        return False


@pytest.mark.parametrize("fmt", ["npy", "zarr"])
def test_io_and_compute_release_the_gil(tmp_path, fmt):
    shape = (6, 1024, 1024)  # 8 MiB planes of float64
    path = tmp_path / f"a.{fmt}"
    a = chunkyard.create(path, shape, "float64", chunks=(1, 1024, 1024))
    plane = np.random.default_rng(0).standard_normal(shape[1:])
    a[...] = 1.5
    a[0] = plane
    held = []

    def dirty():
        a[3, :512] = plane[:512]  # part of a chunk: cached and dirty

    reopened = []

    def reopen_dirty():
        reopened.append(chunkyard.open(path, mode="r+"))
        reopened[-1][4, :512] = plane[:512]

    calls = [
        ("write a plane", lambda: a.__setitem__(1, plane), None),
        ("fill", lambda: a.__setitem__(slice(2, 6), 1.5), None),
        ("read a plane", lambda: a[0], None),
        ("write part of a plane", dirty, None),
        ("flush", a.flush, dirty),
        ("sum", a.sum, None),
        ("mean along an axis", lambda: a.mean(axis=1), None),
        ("append", lambda: a.append(plane), None),
        ("resize", lambda: a.resize(6), None),
        ("save_as", lambda: a.astype("float32").save_as(tmp_path / f"b.{fmt}", overwrite=True),
         None),
        ("a block", lambda: next(iter(a.iter_blocks())), None),
        ("close", lambda: reopened[-1].close(), reopen_dirty),
    ]
    with Counter() as c:
        # The check itself: a call that keeps the GIL never lets it count.
        assert not c.released(lambda: sum(range(100_000)))
        for name, call, setup in calls:
            if not c.released(call, setup or (lambda: None)):
                held.append(name)
    assert held == []
    a.close()
    with chunkyard.open(path) as r:
        assert r.shape == shape
        np.testing.assert_array_equal(r[0], plane)
        np.testing.assert_array_equal(r[1], plane)
        np.testing.assert_array_equal(r[4, :512], plane[:512])
