#!/usr/bin/env python3
"""Same-run ratios of one selection read: chunkyard (the `cold_read`
example) against numpy.memmap of a `.npy` file holding the same array,
alternated, each read in a fresh process on a freshly opened file.

    cargo build --release --features hdf5 --example cold_read
    python3 benches/python/ratio.py --npy v.npy --sel "50,::2,::2" --mode cold \
        --runs 7 v.npy v.zarr v.h5 [--base OLD/target/release/examples/cold_read]

Cold: the files' pages dropped from the OS page cache first
(posix_fadvise DONTNEED, as `chunkyard bench` does); warm: dropped, then
read once sequentially. Prints per target the medians of the read's wall
time, its CPU time (less sensitive to other load) and its page faults,
the ratios of medians against numpy.memmap, and each run's wall time. The files come from
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
import os, resource, sys, time
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
u0 = resource.getrusage(resource.RUSAGE_SELF)
t = time.perf_counter()
r = np.array(a[key])
ms = (time.perf_counter() - t) * 1e3
u1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime) * 1e3
print(f"{ms:.3f} ms, cpu {cpu:.3f} ms, major faults {u1.ru_majflt - u0.ru_majflt}, "
      f"minor faults {u1.ru_minflt - u0.ru_minflt}")
"""


def run(cmd):
    """(wall ms, CPU ms, major faults, minor faults) of the read, as the
    child prints them: `W ms, cpu C ms, major faults M, minor faults N`."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    w = out.replace(",", " ").split()
    return float(w[0]), float(w[3]), int(w[7]), int(w[10])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--npy", required=True, help="the .npy file numpy.memmap reads")
    p.add_argument("--sel", required=True)
    p.add_argument("--mode", default="cold", choices=["cold", "warm"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--example", default=EXAMPLE)
    p.add_argument("--base", help="another build of the example (an older commit), "
                   "run on every target too, alternated with the rest")
    p.add_argument("targets", nargs="+", help="paths chunkyard reads")
    a = p.parse_args()
    times = {"numpy.memmap": []}
    cmds = {}
    for t in a.targets:
        times[t] = []
        cmds[t] = [a.example, t]
        if a.base:
            times[t + " (base)"] = []
            cmds[t + " (base)"] = [a.base, t]
    for i in range(a.runs):
        order = list(times)
        if i % 2:
            order.reverse()
        for name in order:
            if name == "numpy.memmap":
                ms = run([sys.executable, "-c", MEMMAP, a.npy, a.sel, a.mode])
            else:
                ms = run(cmds[name] + [a.sel, a.mode])
            times[name].append(ms)
    def med(name, k):
        return statistics.median(t[k] for t in times[name])

    base, base_cpu = med("numpy.memmap", 0), med("numpy.memmap", 1)
    print(f"selection {a.sel}, {a.mode}, {a.runs} runs each, alternated; "
          "medians of wall ms, CPU ms (all threads), major / minor faults")
    for name, ts in times.items():
        runs = " ".join(f"{t[0]:.1f}" for t in ts)
        print(f"{name:28s} wall {med(name, 0):7.2f} ms (x{med(name, 0) / base:5.2f})  "
              f"cpu {med(name, 1):7.2f} ms (x{med(name, 1) / max(base_cpu, 1e-9):5.2f})  "
              f"faults {med(name, 2):.0f} / {med(name, 3):.0f}  walls: {runs}")


if __name__ == "__main__":
    main()
