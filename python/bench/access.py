"""Reads from Python on a warm file, tool by tool, in one sitting (issue 18,
items 3 and 6).

A (depth, 2000, 2000) float32 volume, chunks (1, 2000, 2000), written once
by numpy as .npy, then copied by chunkyard to Zarr and by h5py to a
chunked HDF5 file. The page cache holds every file (each read through
once before timing). Then, the tools alternated round by round, each on a
freshly opened file:

- a random element ``a[i, j, k]`` (µs each, over many);
- a random 64 x 64 tile ``a[i, r:r+64, c:c+64]`` (µs each);
- a whole plane ``a[i]`` (GB/s);
- threads: 2,000 random 256 x 256 tiles read by one Python thread, then
  2,000 others split between two (throughput of two / one: what
  releasing the GIL buys; other tiles, so that the second pass does not
  find pages the first one mapped).

    python python/bench/access.py --depth 100 --dir /tmp

Prints medians over the rounds, and each time as a ratio to
numpy.memmap's and h5py's in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time

import numpy as np

ROWS, COLS = 2000, 2000


def warm(path: str) -> None:
    """Leaves every file under `path` in the page cache as a sequential
    read does (as `chunkyard bench`'s warm passes): written back, dropped,
    then read once. Pages left by the writes themselves would be small
    folios, whose map faults cost several times more."""
    files = [path] if os.path.isfile(path) else [
        os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        with open(f, "rb", buffering=0) as fh:
            while fh.read(8 << 20):
                pass


class Copying:
    """numpy.memmap's slices are views: copy them, as every other tool
    returns a copy (h5py, zarr, chunkyard), so each row reads the data."""

    def __init__(self, m):
        self.m = m

    def __getitem__(self, idx):
        return np.array(self.m[idx])


def opener(tool: str, paths: dict):
    if tool == "numpy.memmap":
        return lambda: Copying(np.load(paths["npy"], mmap_mode="r"))
    if tool == "h5py":
        import h5py

        def o():
            f = h5py.File(paths["h5"], "r")
            return f["data"]
        return o
    import chunkyard

    fmt = tool.split("-")[1]
    return lambda: chunkyard.open(paths[fmt], "r")


def element_us(a, picks) -> float:
    t = time.perf_counter()
    s = 0.0
    for i, j, k in picks:
        s += float(a[i, j, k])
    return (time.perf_counter() - t) * 1e6 / len(picks)


def tiles(a, corners, n) -> None:
    for i, r, c in corners:
        np.asarray(a[i, r:r + n, c:c + n])


def tile_us(a, corners, n=64) -> float:
    t = time.perf_counter()
    tiles(a, corners, n)
    return (time.perf_counter() - t) * 1e6 / len(corners)


def plane_gbps(a, planes) -> float:
    t = time.perf_counter()
    for i in planes:
        np.asarray(a[i])
    return len(planes) * ROWS * COLS * 4 / (time.perf_counter() - t) / 1e9


def two_thread_ratio(a, corners, others, n=256) -> float:
    """Throughput of two threads over one: one thread reads `corners`,
    two threads split `others`, as many tiles drawn alike. Different
    tiles, so that neither pass finds pages the other left mapped (a
    tool that never releases its map's pages, numpy.memmap, would give
    the second pass hits the first one paid for)."""
    t = time.perf_counter()
    tiles(a, corners, n)
    one = time.perf_counter() - t
    halves = [others[0::2], others[1::2]]
    ths = [threading.Thread(target=tiles, args=(a, h, n)) for h in halves]
    t = time.perf_counter()
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    two = time.perf_counter() - t
    return one / two


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--dir", default=".")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tools", default="chunkyard-npy,chunkyard-zarr,h5py,numpy.memmap")
    args = p.parse_args()
    import chunkyard

    tools = [t for t in args.tools.split(",") if t]
    work = tempfile.mkdtemp(prefix="chunkyard-access-", dir=args.dir)
    try:
        paths = {"npy": os.path.join(work, "v.npy"), "zarr": os.path.join(work, "v.zarr"),
                 "h5": os.path.join(work, "v.h5")}
        shape = (args.depth, ROWS, COLS)
        rng = np.random.default_rng(1)
        m = np.lib.format.open_memmap(paths["npy"], mode="w+", dtype=np.float32, shape=shape)
        for i in range(args.depth):
            m[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        m.flush()
        del m
        chunkyard.convert(paths["npy"], paths["zarr"])
        if "h5py" in tools:
            import h5py

            src = np.load(paths["npy"], mmap_mode="r")
            with h5py.File(paths["h5"], "w") as f:
                d = f.create_dataset("data", shape=shape, dtype=np.float32,
                                     chunks=(1, ROWS, COLS))
                for i in range(args.depth):
                    d[i] = src[i]
        for p_ in paths.values():
            if os.path.exists(p_):
                warm(p_)
        res = {t: {"element": [], "tile": [], "plane": [], "threads": []} for t in tools}
        for rnd in range(args.rounds):
            r = np.random.default_rng(100 + rnd)
            picks = [tuple(int(x) for x in v) for v in zip(
                r.integers(0, args.depth, 20000), r.integers(0, ROWS, 20000),
                r.integers(0, COLS, 20000))]
            corners = [tuple(int(x) for x in v) for v in zip(
                r.integers(0, args.depth, 2000), r.integers(0, ROWS - 64, 2000),
                r.integers(0, COLS - 64, 2000))]
            big, big2 = ([tuple(int(x) for x in v) for v in zip(
                r.integers(0, args.depth, 2000), r.integers(0, ROWS - 256, 2000),
                r.integers(0, COLS - 256, 2000))] for _ in range(2))
            planes = [int(x) for x in r.integers(0, args.depth, 20)]
            order = tools if rnd % 2 == 0 else tools[::-1]
            for t in order:
                o = opener(t, paths)
                res[t]["element"].append(element_us(o(), picks))
                res[t]["tile"].append(tile_us(o(), corners))
                res[t]["plane"].append(plane_gbps(o(), planes))
                res[t]["threads"].append(two_thread_ratio(o(), big, big2))
        med = {t: {k: statistics.median(v) for k, v in d.items()} for t, d in res.items()}
        print(f"volume {shape} float32, chunks (1, {ROWS}, {COLS}), warm, "
              f"{args.rounds} rounds alternated; medians")
        print("| tool | element µs | 64x64 tile µs | plane GB/s | two threads / one "
              "(256x256 tiles) |")
        print("|---|---|---|---|---|")
        for t in tools:
            m_ = med[t]
            print(f"| {t} | {m_['element']:.2f} | {m_['tile']:.1f} | {m_['plane']:.2f} "
                  f"| {m_['threads']:.2f} |")
        for base in ("numpy.memmap", "h5py"):
            if base in med:
                b = med[base]
                print(f"ratios to {base} (time; plane: rate):", ", ".join(
                    f"{t} {med[t]['element'] / b['element']:.2f} / "
                    f"{med[t]['tile'] / b['tile']:.2f} / {med[t]['plane'] / b['plane']:.2f}"
                    for t in tools if t != base))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
