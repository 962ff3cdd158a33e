"""The kernel's cost of two write patterns from Python, without chunkyard
(docs/benchmarks.md, the 8 GB build of issue 21): 100 buffers of 16 MB
written into one file with `pwrite`, against each into a new file
(written, fdatasync'd, renamed, as Zarr chunks are), and without the
fdatasync. Run in the directory to measure:

    cd D && python3 /path/to/benches/python/write_pattern.py
"""
import os, time, numpy as np
buf = np.random.standard_normal(4_000_000).astype(np.float32).tobytes()
N = 100
def many(sync):
    os.makedirs("wx", exist_ok=True)
    t = time.perf_counter(); tw = 0
    for i in range(N):
        fd = os.open(f"wx/t{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        a = time.perf_counter(); os.write(fd, buf); tw += time.perf_counter() - a
        if sync: os.fdatasync(fd)
        os.close(fd); os.rename(f"wx/t{i}.tmp", f"wx/{i}")
    return time.perf_counter() - t, tw
def one():
    fd = os.open("one.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, N * len(buf))
    t = time.perf_counter(); tw = 0
    for i in range(N):
        a = time.perf_counter(); os.pwrite(fd, buf, i * len(buf)); tw += time.perf_counter() - a
    os.fdatasync(fd); os.close(fd)
    return time.perf_counter() - t, tw
import shutil
for r in range(2):
    for name, f in [("one file", one), ("file per chunk, fdatasync each", lambda: many(True)), ("file per chunk, no sync", lambda: many(False))]:
        tot, tw = f()
        print(f"{name:32s} total {tot:.2f} s, in write {tw:.2f} s")
        shutil.rmtree("wx", ignore_errors=True)
        if os.path.exists("one.bin"): os.remove("one.bin")
