#!/usr/bin/env python3
"""The workloads of `chunkyard bench`, run with h5py, zarr-python and
numpy.memmap, printing the same tables (and `--json`, one object per tool).

    python3 benches/python/bench.py                    # 500x2000x2000 f32 (8 GB per tool)
    python3 benches/python/bench.py --small            # 100x2000x2000 (1.6 GB)
    python3 benches/python/bench.py --depth 16 --rows 512 --cols 512 --workload all

Definitions are chunkyard's (docs/benchmarks.md): the build writes one plane
of standard normal float32 values at a time, chunks (1, rows, cols), no
compression; "storing" is the time spent inside the store calls (assignment,
flush, close), "minus generator" is elapsed minus the generator-alone run.
Reads reopen the file each pass; cold passes run after the file's pages were
dropped from the OS page cache with posix_fadvise(DONTNEED), warm passes run
the same reads after the pages were dropped and the whole file was read once
into the page cache (as a sequential read leaves it, whatever ran before). Random positions come from numpy's
generator with the same counts and ranges as chunkyard's (not the same
positions).
"""

import argparse
import json
import os
import shutil
import sys
import threading
import time

import numpy as np

RANDOM_ELEMENTS = 20_000
RANDOM_TILES = 2_000
TILE = 64


def rss():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            for k in ("RssAnon", "RssFile", "RssShmem"):
                if line.startswith(k + ":"):
                    out[k] = int(line.split()[1]) * 1024
    return out.get("RssAnon", 0), out.get("RssFile", 0) + out.get("RssShmem", 0)


class Sampler:
    """Peak resident memory (anonymous, file-backed) every 10 ms, like mprof."""

    def __init__(self):
        self.peak_anon = self.peak_file = self.peak_total = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _sample(self):
        a, f = rss()
        self.peak_anon = max(self.peak_anon, a)
        self.peak_file = max(self.peak_file, f)
        self.peak_total = max(self.peak_total, a + f)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.01)

    def finish(self):
        self._stop.set()
        self._t.join()
        self._sample()
        return self


def plane(rng, rows, cols):
    return rng.standard_normal((rows, cols), dtype=np.float32)


def drop_page_cache(path):
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_page_cache(path):
    """Reads every file under path once, so the page cache holds all of it
    (chunkyard's bench does the same before each warm pass)."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.read(8 << 20):
                pass


def disk_bytes(path):
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return sum(os.stat(p).st_blocks * 512 for p in paths)


# --- tools: create/store/close for the build, open for the reads ----------

class H5py:
    name = "h5py"
    ext = ".h5"

    def create(self, path, shape):
        import h5py
        self.f = h5py.File(path, "w")
        self.d = self.f.create_dataset("data", shape=shape, dtype=np.float32, chunks=(1,) + shape[1:])

    def store(self, i, r):
        self.d[i, :, :] = r

    def close(self):
        self.f.close()

    def open(self, path):
        import h5py
        self.rf = h5py.File(path, "r")
        return self.rf["data"]

    def release(self):
        self.rf.close()

    def plane_sum(self, a):
        return sum(float(a[i].sum(dtype=np.float64)) for i in range(a.shape[0]))


class Zarr:
    name = "zarr-python"
    ext = ".zarr"

    def create(self, path, shape):
        import zarr
        self.z = zarr.create_array(store=path, shape=shape, chunks=(1,) + shape[1:],
                                   dtype="float32", compressors=None, overwrite=True)

    def store(self, i, r):
        self.z[i, :, :] = r

    def close(self):
        del self.z

    def open(self, path):
        import zarr
        return zarr.open_array(path, mode="r")

    def release(self):
        pass

    def plane_sum(self, a):
        return sum(float(a[i].sum(dtype=np.float64)) for i in range(a.shape[0]))


class Memmap:
    name = "numpy.memmap"
    ext = ".npy"

    def create(self, path, shape):
        self.a = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)

    def store(self, i, r):
        self.a[i] = r

    def close(self):
        self.a.flush()
        del self.a

    def open(self, path):
        return np.load(path, mmap_mode="r")

    def release(self):
        pass

    def plane_sum(self, a):
        return float(a.sum(dtype=np.float64))


TOOLS = {"h5py": H5py, "zarr": Zarr, "memmap": Memmap}


def generator_alone(depth, rows, cols, seed):
    rng = np.random.default_rng(seed)
    s = Sampler()
    t = time.perf_counter()
    for _ in range(depth):
        plane(rng, rows, cols)
    el = time.perf_counter() - t
    s.finish()
    return el, s


def build(tool, path, depth, rows, cols, seed):
    rng = np.random.default_rng(seed)
    s = Sampler()
    t0 = time.perf_counter()
    storing = 0.0
    tool.create(path, (depth, rows, cols))
    for i in range(depth):
        r = plane(rng, rows, cols)
        t = time.perf_counter()
        tool.store(i, r)
        storing += time.perf_counter() - t
    t = time.perf_counter()
    tool.close()
    storing += time.perf_counter() - t
    el = time.perf_counter() - t0
    s.finish()
    return el, storing, s


def twice(tool, path, fn):
    """(warm, cold) seconds of fn(array), each on a freshly opened file."""
    drop_page_cache(path)
    a = tool.open(path)
    t = time.perf_counter()
    fn(a)
    cold = time.perf_counter() - t
    tool.release()
    drop_page_cache(path)
    warm_page_cache(path)
    a = tool.open(path)
    t = time.perf_counter()
    fn(a)
    warm = time.perf_counter() - t
    tool.release()
    return warm, cold


def reads(tool, path, depth, rows, cols, seed, workloads):
    rng = np.random.default_rng(seed ^ 0xE1E)
    out = {}
    s = Sampler()
    if "random" in workloads:
        el = np.stack([rng.integers(0, depth, RANDOM_ELEMENTS), rng.integers(0, rows, RANDOM_ELEMENTS),
                       rng.integers(0, cols, RANDOM_ELEMENTS)], axis=1).tolist()

        def elements(a):
            acc = 0.0
            for z, r, c in el:
                acc += float(a[z, r, c])
            return acc
        w, c = twice(tool, path, elements)
        out["element_us"] = {"warm": w * 1e6 / RANDOM_ELEMENTS, "cold": c * 1e6 / RANDOM_ELEMENTS}
        tr, tc = min(TILE, rows), min(TILE, cols)
        tiles = np.stack([rng.integers(0, depth, RANDOM_TILES), rng.integers(0, rows - tr + 1, RANDOM_TILES),
                          rng.integers(0, cols - tc + 1, RANDOM_TILES)], axis=1).tolist()

        def tile_reads(a):
            for z, r, c in tiles:
                np.array(a[z, r:r + tr, c:c + tc])
        w, c = twice(tool, path, tile_reads)
        out["tile_64x64_us"] = {"warm": w * 1e6 / RANDOM_TILES, "cold": c * 1e6 / RANDOM_TILES}
    if "scan" in workloads:
        total = []
        w, c = twice(tool, path, lambda a: total.append(tool.plane_sum(a)))
        gb = depth * rows * cols * 4 / 1e9
        out["sum_gb_per_s"] = {"warm": gb / w, "cold": gb / c}
        out["sum"] = total[-1]
    if "strided" in workloads:
        k = min(5, cols - 1)
        z = min(50, depth - 1)
        w, c = twice(tool, path, lambda a: np.array(a[::3, ::7, k]))
        out["strided_3_7_k_ms"] = {"warm": w * 1e3, "cold": c * 1e3}
        w, c = twice(tool, path, lambda a: np.array(a[z, ::2, ::2]))
        out["strided_k_2_2_ms"] = {"warm": w * 1e3, "cold": c * 1e3}
    s.finish()
    out["peak_rss_bytes"] = s.peak_total
    out["peak_anon_bytes"] = s.peak_anon
    out["peak_file_bytes"] = s.peak_file
    return out


def mib(b):
    return f"{b / 2**20:.0f} MiB"


def peak(s):
    return f"{mib(s.peak_total)} ({mib(s.peak_anon)} / {mib(s.peak_file)})"


def main():
    global RANDOM_ELEMENTS, RANDOM_TILES
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=500)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--cols", type=int, default=2000)
    ap.add_argument("--small", action="store_true", help="depth 100 (1.6 GB), the anchors' read file")
    ap.add_argument("--tools", default="h5py,zarr,memmap")
    ap.add_argument("--workload", default="build", help="build, random, scan, strided, all or a list")
    ap.add_argument("--dir", default=".")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--elements", type=int, default=RANDOM_ELEMENTS,
                    help="random elements per pass (zarr-python needs ~5 ms each)")
    ap.add_argument("--tiles", type=int, default=RANDOM_TILES, help="random 64x64 tiles per pass")
    args = ap.parse_args()
    RANDOM_ELEMENTS, RANDOM_TILES = args.elements, args.tiles
    if args.small:
        args.depth = 100
    workloads = set(args.workload.split(","))
    if "all" in workloads:
        workloads = {"random", "scan", "strided"}
    unknown = workloads - {"build", "random", "scan", "strided"}
    if unknown:
        sys.exit(f"unknown workload(s): {', '.join(sorted(unknown))}")
    depth, rows, cols = args.depth, args.rows, args.cols
    logical = depth * rows * cols * 4
    log = (lambda *a: None) if args.json else print
    import h5py
    import zarr
    log(f"python bench: {depth} x {rows} x {cols} float32 ({logical / 1e9:.2f} GB), chunks (1, {rows}, {cols}); "
        f"numpy {np.__version__}, h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), zarr {zarr.__version__}")
    g_el, g_mem = generator_alone(depth, rows, cols, args.seed)
    rows_out = []
    for name in args.tools.split(","):
        tool = TOOLS[name.strip()]()
        path = os.path.join(args.dir, f"pybench-{os.getpid()}{tool.ext}")
        try:
            el, storing, mem = build(tool, path, depth, rows, cols, args.seed)
            on_disk = disk_bytes(path)
            rd = reads(tool, path, depth, rows, cols, args.seed, workloads) if workloads - {"build"} else None
        finally:
            if not args.keep and os.path.exists(path):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        rec = {"format": tool.name, "elapsed_s": el, "generator_floor_s": g_el,
               "elapsed_minus_generator_s": max(el - g_el, 0.0), "storing_s": storing,
               "storing_gb_per_s": logical / 1e9 / storing, "logical_bytes": logical, "file_bytes": on_disk,
               "peak_rss_bytes": mem.peak_total, "peak_anon_bytes": mem.peak_anon,
               "peak_file_bytes": mem.peak_file, "generator_peak_rss_bytes": g_mem.peak_total, "reads": rd}
        if args.json:
            print(json.dumps(rec), flush=True)
        rows_out.append((rec, mem))
    if args.json:
        return
    print(f"{'Example':<15} | {'Elapsed time':>12} | {'Calculated storage':>18} | {'Peak memory (anon / file)':>32} | {'File storage':>12}")
    print("-" * 101)
    print(f"{'generator alone':<15} | {g_el:>10.2f} s | {'-':>18} | {peak(g_mem):>32} | {'-':>12}")
    for rec, mem in rows_out:
        print(f"{rec['format']:<15} | {rec['elapsed_s']:>10.2f} s | {logical / 1e9:>15.2f} GB | {peak(mem):>32} | "
              f"{rec['file_bytes'] / 1e9:>9.2f} GB")
    print()
    print(f"{'Where the time went':<19} | {'elapsed':>10} | {'minus generator':>15} | {'storing':>10} | {'storing rate':>12}")
    for rec, _ in rows_out:
        print(f"{rec['format']:<19} | {rec['elapsed_s']:>8.2f} s | {rec['elapsed_minus_generator_s']:>13.2f} s | "
              f"{rec['storing_s']:>8.2f} s | {rec['storing_gb_per_s']:>7.2f} GB/s")
    if any(rec["reads"] for rec, _ in rows_out):
        def wc(d, k, n):
            v = d.get(k)
            return "-" if v is None else f"{v['warm']:.{n}f} / {v['cold']:.{n}f}"
        print()
        print(f"{'Reads':<13} | {'element warm/cold µs':>20} | {'tile warm/cold µs':>18} | {'sum warm/cold GB/s':>18} | "
              f"{'a[::3,::7,5] ms':>16} | {'a[50,::2,::2] ms':>16} | peak memory (anon / file)")
        for rec, _ in rows_out:
            d = rec["reads"]
            if not d:
                continue
            print(f"{rec['format']:<13} | {wc(d, 'element_us', 2):>20} | {wc(d, 'tile_64x64_us', 1):>18} | "
                  f"{wc(d, 'sum_gb_per_s', 2):>18} | {wc(d, 'strided_3_7_k_ms', 1):>16} | "
                  f"{wc(d, 'strided_k_2_2_ms', 1):>16} | {mib(d['peak_rss_bytes'])} "
                  f"({mib(d['peak_anon_bytes'])} / {mib(d['peak_file_bytes'])})")


if __name__ == "__main__":
    main()
