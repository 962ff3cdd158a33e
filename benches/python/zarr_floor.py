"""The kernel's floor under a sparse warm read of a Zarr array's chunk
files (issue 21, item 2): the elements of `a[::3, ::7, 5]` of a (100, 2000,
2000) float32 array with chunks (1, 2000, 2000), read from Python with one
`os.pread` each, then through `np.memmap` of each chunk file, after each
file was dropped from the page cache and read once sequentially (as the
bench's warm passes leave it).

    python3 benches/python/zarr_floor.py D/v.zarr     # built by `chunkyard bench --keep`
"""
import os
import sys
import time

import numpy as np

d = sys.argv[1]
files = [f"{d}/c/{z}/0/0" for z in range(0, 100, 3)]
for f in files:
    fd = os.open(f, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
fds = [os.open(f, os.O_RDONLY) for f in files]
t = time.perf_counter()
for fd in fds:
    for r in range(0, 2000, 7):
        os.pread(fd, 4, (r * 2000 + 5) * 4)
t_pread = time.perf_counter() - t
t = time.perf_counter()
for f in files:
    m = np.memmap(f, dtype="<f4", mode="r", shape=(2000, 2000))
    np.array(m[::7, 5])
    del m
t_map = time.perf_counter() - t
n = len(files) * len(range(0, 2000, 7))
print(f"{n} elements: one pread each {t_pread * 1e3:.2f} ms ({t_pread * 1e6 / n:.2f} us each); "
      f"np.memmap of each chunk file {t_map * 1e3:.2f} ms")
