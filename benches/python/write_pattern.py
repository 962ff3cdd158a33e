"""The kernel's cost of the write patterns behind the 8 GB build
(docs/benchmarks.md, issue 21 item 3, "Zarr's storing rate"), without
chunkyard: N buffers of 16 MB

- written into one file with `pwrite`, one `fdatasync` at the end (npy);
- each into a new file, `fdatasync`ed and renamed before the next (Zarr
  chunks before `DirStorage::write_deferred`);
- each into a new file, every `fdatasync` and rename at the end;
- each into a new file whose `fdatasync` and rename a thread does, at
  most 16 behind (Zarr chunks now).

Run in the directory to measure:

    cd D && python3 /path/to/benches/python/write_pattern.py --files 500
"""
import argparse
import os
import queue
import shutil
import threading
import time

import numpy as np

BUF = np.random.standard_normal(4_000_000).astype(np.float32).tobytes()


def one(n):
    fd = os.open("one.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, n * len(BUF))
    for i in range(n):
        os.pwrite(fd, BUF, i * len(BUF))
    os.fdatasync(fd)
    os.close(fd)


def new_file(i):
    fd = os.open(f"wx/t{i}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, BUF)
    return fd


def finish(fd, i):
    os.fdatasync(fd)
    os.close(fd)
    os.rename(f"wx/t{i}.tmp", f"wx/{i}")


def sync_dir():
    d = os.open("wx", os.O_RDONLY)
    os.fsync(d)
    os.close(d)


def each(n):
    os.makedirs("wx", exist_ok=True)
    for i in range(n):
        finish(new_file(i), i)
    sync_dir()


def at_end(n):
    os.makedirs("wx", exist_ok=True)
    fds = [new_file(i) for i in range(n)]
    for i, fd in enumerate(fds):
        finish(fd, i)
    sync_dir()


def deferred(n):
    os.makedirs("wx", exist_ok=True)
    q = queue.Queue(maxsize=16)

    def syncer():
        while (job := q.get()) is not None:
            finish(*job)

    t = threading.Thread(target=syncer)
    t.start()
    for i in range(n):
        q.put((new_file(i), i))
    q.put(None)
    t.join()
    sync_dir()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    patterns = [
        ("one file, fdatasync at the end", one),
        ("file per chunk, fdatasync + rename each", each),
        ("file per chunk, all fdatasync + rename at the end", at_end),
        ("file per chunk, fdatasync + rename by a thread", deferred),
    ]
    gb = args.files * len(BUF) / 1e9
    for _ in range(args.rounds):
        for name, f in patterns:
            t = time.perf_counter()
            f(args.files)
            dt = time.perf_counter() - t
            print(f"{name:50s} {dt:6.2f} s  {gb / dt:.2f} GB/s", flush=True)
            shutil.rmtree("wx", ignore_errors=True)
            if os.path.exists("one.bin"):
                os.remove("one.bin")


if __name__ == "__main__":
    main()
