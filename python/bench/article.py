"""The article's volume from Python, tool by tool, in one sitting.

The loop of `../shared/seeds/large-array-hdf5-vs-memory.txt` (ex2/ex3):
a (depth, 2000, 2000) float32 volume, chunks (1, 2000, 2000), one plane
at a time from numpy's `rng.standard_normal((2000, 2000),
dtype=np.float32)`, made durable (fsync) at the end. Each tool runs in a
process of its own, so peak memory (the child's `ru_maxrss`, including
Python and numpy) is its own; the table ends with each time as a ratio to
numpy's generator alone and to h5py, measured in the same run.

    python python/bench/article.py --depth 10          # a smoke run
    python python/bench/article.py                     # the article: 8 GB per tool

Tools that are not installed are reported as skipped. Files go to a
temporary directory under --dir (default: the current directory) and are
deleted after each tool unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROWS, COLS = 2000, 2000
TOOLS = ["numpy-generator", "chunkyard-npy", "chunkyard-zarr", "chunkyard-hdf5", "h5py",
         "zarr-python", "numpy.memmap"]


def fsync_tree(path: str) -> None:
    """fsync every file under `path` (or `path` itself), then its
    directories: what the tools without a durable close need."""
    if os.path.isfile(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return
    for root, _dirs, files in os.walk(path):
        for name in files + ["."]:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def worker(tool: str, depth: int, path: str) -> dict:
    """Runs one tool's loop in this process; returns what it measured."""
    import numpy as np

    rng = np.random.default_rng()
    shape = (depth, ROWS, COLS)
    chunks = (1, ROWS, COLS)
    tic = time.perf_counter()
    if tool == "numpy-generator":
        for _ in range(depth):
            rng.standard_normal((ROWS, COLS), dtype=np.float32)
        path = None
    elif tool.startswith("chunkyard-"):
        import chunkyard

        # HDF5: the dataset inside the file, as h5py's row names it.
        target = path + ":/data" if tool == "chunkyard-hdf5" else path
        a = chunkyard.create(target, shape, "float32", chunks=chunks)
        for i in range(depth):
            a[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        a.close()  # flush: durable on return
    elif tool == "h5py":
        import h5py

        with h5py.File(path, "w") as f:
            dset = f.create_dataset("data", shape=shape, dtype=np.float32, chunks=chunks)
            for i in range(depth):
                dset[i, :, :] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        fsync_tree(path)
    elif tool == "zarr-python":
        import zarr

        z = zarr.create_array(store=path, shape=shape, chunks=chunks, dtype="float32",
                              compressors=None)
        for i in range(depth):
            z[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        fsync_tree(path)
    elif tool == "numpy.memmap":
        m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        for i in range(depth):
            m[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        m.flush()
        del m
        fsync_tree(path)
    else:
        raise SystemExit(f"unknown tool {tool}")
    elapsed = time.perf_counter() - tic
    stored = None
    if path is not None:
        if os.path.isdir(path):
            stored = sum(os.path.getsize(os.path.join(r, f))
                         for r, _, fs in os.walk(path) for f in fs)
        else:
            stored = os.path.getsize(path)
    return {"elapsed": elapsed, "stored": stored}


def available(tool: str) -> bool:
    module = {"chunkyard-npy": "chunkyard", "chunkyard-zarr": "chunkyard",
              "chunkyard-hdf5": "chunkyard", "h5py": "h5py",
              "zarr-python": "zarr"}.get(tool, "numpy")
    try:
        m = __import__(module)
    except ImportError:
        return False
    # The wheel has HDF5 only when built with the option (docs/python.md).
    return tool != "chunkyard-hdf5" or bool(getattr(m, "has_hdf5", False))


def run(tool: str, depth: int, workdir: str) -> dict:
    ext = {"chunkyard-npy": "npy", "chunkyard-zarr": "zarr", "chunkyard-hdf5": "h5", "h5py": "h5",
           "zarr-python": "zarr", "numpy.memmap": "npy"}.get(tool, "none")
    path = os.path.join(workdir, f"{tool}.{ext}")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, "--depth", str(depth),
           "--path", path]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} failed with exit code {proc.returncode}")
    result = json.loads(out)
    result["peak_rss"] = usage.ru_maxrss * 1024  # KiB on Linux
    return result


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=500, help="planes (the article: 500)")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated, of: " + ", ".join(TOOLS))
    p.add_argument("--dir", default=".", help="where the temporary files go")
    p.add_argument("--keep", action="store_true", help="keep the files")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        json.dump(worker(args.worker, args.depth, args.path), sys.stdout)
        return
    if args.depth < 1:
        raise SystemExit("--depth must be at least 1")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            raise SystemExit(f"unknown tool {t!r}; tools: {', '.join(TOOLS)}")
    calculated = 4 * args.depth * ROWS * COLS
    need = calculated * (1 if not args.keep else len(tools))
    free = shutil.disk_usage(args.dir).free
    if need > free * 0.9:
        raise SystemExit(f"needs {fmt_bytes(need)} in {args.dir}, {fmt_bytes(free)} free")
    workdir = tempfile.mkdtemp(prefix="chunkyard-article-", dir=args.dir)
    print(f"volume ({args.depth}, {ROWS}, {COLS}) float32, chunks (1, {ROWS}, {COLS}), "
          f"in {workdir}", file=sys.stderr)
    results = {}
    try:
        for t in tools:
            if not available(t):
                print(f"{t}: not installed (or chunkyard built without HDF5), skipped",
                      file=sys.stderr)
                continue
            results[t] = run(t, args.depth, workdir)
            print(f"{t}: {results[t]['elapsed']:.2f} s", file=sys.stderr)
            if not args.keep:
                for name in os.listdir(workdir):
                    full = os.path.join(workdir, name)
                    shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    gen = results.get("numpy-generator", {}).get("elapsed")
    h5 = results.get("h5py", {}).get("elapsed")
    print("| tool | Elapsed time | Calculated storage | Peak memory | File storage "
          "| x generator alone | x h5py |")
    print("|---|---|---|---|---|---|---|")
    for t, r in results.items():
        ratio_gen = f"{r['elapsed'] / gen:.2f}" if gen else "n/a"
        ratio_h5 = f"{r['elapsed'] / h5:.2f}" if h5 else "n/a"
        storage = fmt_bytes(calculated) if t != "numpy-generator" else "n/a"
        print(f"| {t} | {r['elapsed']:.2f} s | {storage} | {fmt_bytes(r['peak_rss'])} "
              f"| {fmt_bytes(r['stored'])} | {ratio_gen} | {ratio_h5} |")


if __name__ == "__main__":
    main()
