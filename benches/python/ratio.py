#!/usr/bin/env python3
"""Same-run ratios of one selection read: chunkyard (the `cold_read`
example) against numpy.memmap of a `.npy` file holding the same array,
alternated, each read in a fresh process on a freshly opened file.

    cargo build --release --features hdf5 --example cold_read
    python3 benches/python/ratio.py --npy v.npy --sel "50,::2,::2" --mode cold \
        --runs 7 v.npy v.zarr v.h5

Cold: the files' pages dropped from the OS page cache first
(posix_fadvise DONTNEED, as `chunkyard bench` does); warm: dropped, then
read once sequentially. Prints each run's milliseconds, then per target the
median and the ratio of medians against numpy.memmap. The files come from
`chunkyard bench --keep` (any float32 volume will do); the selection is
NumPy's syntax without brackets.
"""

import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "target", "release", "examples", "cold_read")

MEMMAP = r"""
import os, sys, time
import numpy as np
path, sel, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def drop(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
if mode in ("cold", "warm"):
    drop(path)
if mode == "warm":
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass
a = np.load(path, mmap_mode="r")
key = eval("np.s_[" + sel + "]")
t = time.perf_counter()
r = np.array(a[key])
ms = (time.perf_counter() - t) * 1e3
with open("/proc/self/status") as f:
    rss = [l.split()[1] for l in f if l.startswith(("VmHWM",))]
print(f"{ms:.3f} ms {rss[0]} kB")
"""


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--npy", required=True, help="the .npy file numpy.memmap reads")
    p.add_argument("--sel", required=True)
    p.add_argument("--mode", default="cold", choices=["cold", "warm"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--example", default=EXAMPLE)
    p.add_argument("targets", nargs="+", help="paths chunkyard reads")
    a = p.parse_args()
    times = {"numpy.memmap": []}
    for t in a.targets:
        times[t] = []
    for i in range(a.runs):
        order = list(times)
        if i % 2:
            order.reverse()
        for name in order:
            if name == "numpy.memmap":
                ms = run([sys.executable, "-c", MEMMAP, a.npy, a.sel, a.mode])
            else:
                ms = run([a.example, name, a.sel, a.mode])
            times[name].append(ms)
    base = statistics.median(times["numpy.memmap"])
    print(f"selection {a.sel}, {a.mode}, {a.runs} runs each, alternated")
    for name, ts in times.items():
        med = statistics.median(ts)
        runs = " ".join(f"{x:.1f}" for x in ts)
        print(f"{name:40s} median {med:8.2f} ms  ratio {med / base:5.2f}  ({runs})")


if __name__ == "__main__":
    main()
