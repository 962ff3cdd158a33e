#!/usr/bin/env python3
"""How a cold strided plane can be read, without chunkyard: `a[50, ::2, ::2]`
of the bench's 100 x 2000 x 2000 float32 `.npy` file (`chunkyard bench
--depth 100 --formats npy --keep`), the file's pages dropped before each
way (posix_fadvise DONTNEED). Prints wall ms and this process's major and
minor page faults per way:

- map-random: a map advised MADV_RANDOM (as chunkyard's file maps), copied;
- map-willneed: the same, the plane advised MADV_WILLNEED first in pieces
  of the size given (16 MiB: the whole plane in one call);
- pread: the plane read a piece at a time into one buffer, copied out of it.

    python3 benches/python/cold_plane.py FILE.npy
"""

import mmap
import os
import resource
import sys
import time

import numpy as np

PLANE = 2000 * 2000 * 4
Z = 50


def drop(path):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def run(path, hdr, kind, piece):
    drop(path)
    f = open(path, "rb")
    fd = f.fileno()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    start = hdr + Z * PLANE
    if kind.startswith("map"):
        mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        mm.madvise(mmap.MADV_RANDOM)
        pg = start & ~4095
        if kind == "map-willneed":
            off = pg
            while off < start + PLANE:
                n = min(piece, start + PLANE - off)
                mm.madvise(mmap.MADV_WILLNEED, off, n)
                off += n
        a = np.frombuffer(mm, dtype=np.float32, count=2000 * 2000, offset=start)
        out = a.reshape(2000, 2000)[::2, ::2].copy()
        del a
    else:
        out = np.empty((1000, 1000), np.float32)
        buf = bytearray(piece)
        rows = piece // 8000 // 2 * 2
        for r in range(0, 2000, rows):
            n = min(rows, 2000 - r)
            os.preadv(fd, [memoryview(buf)[: n * 8000]], start + r * 8000)
            b = np.frombuffer(buf, np.float32, count=n * 2000).reshape(n, 2000)
            out[r // 2 : (r + n) // 2] = b[::2, ::2]
    ms = (time.perf_counter() - t) * 1e3
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"{kind:14s} piece {piece >> 10:6d} KiB {ms:7.2f} ms  "
          f"major faults {r1.ru_majflt - r0.ru_majflt}  minor faults {r1.ru_minflt - r0.ru_minflt}")


def main():
    path = sys.argv[1]
    hdr = np.lib.format.open_memmap(path, mode="r").offset
    for _ in range(2):
        for kind, piece in [("map-random", 0), ("map-willneed", 16 << 20),
                            ("map-willneed", 2 << 20), ("map-willneed", 512 << 10),
                            ("pread", 4 << 20), ("pread", 1 << 20)]:
            run(path, hdr, kind, piece)


if __name__ == "__main__":
    main()
