"""The article's volume built and summed by a dask.distributed cluster of
worker processes on S3: chunkyard against zarr-python (issue 22, item 4).

A (depth, 2000, 2000) float32 volume of standard normal values, chunks
(1, 2000, 2000), generated block by block on the workers
(`dask.array.random.default_rng(7).standard_normal`), then:

- chunkyard: `chunkyard.dask.store(x, "s3://...")`, then
  `chunkyard.dask.to_dask(url).sum()`;
- zarr-python: `x.to_zarr(store)` over zarr's `ObjectStore` of an obstore
  `S3Store`, then `dask.array.from_zarr(store).sum()`;
- with `--floor`, also two floors that no storing tool can go below on
  this cluster and server: `compute` generates and sums each block,
  storing nothing; `obstore` PUTs each block's bytes as one object with
  obstore (the Rust HTTP client chunkyard also uses) and GETs and sums
  them back: no format, no metadata, no cache.

Each phase runs on a fresh `LocalCluster(n_workers=2, processes=True,
threads_per_worker=1)`, and reports its time and each worker's peak
resident memory (`ru_maxrss`, asked of the workers after the phase).
The server and credentials come from the environment, as `.ci/with-s3`
sets them:

    .ci/with-s3 python python/bench/dask_s3.py --depth 100 --rounds 2
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import uuid

# The zarr-python store over obstore, as python/bench/s3.py builds it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3 import ROWS, COLS, s3_store, zarr_store  # noqa: E402


def _bare_put(block, store, key: str) -> int:
    import obstore

    obstore.put(store, key, memoryview(block).cast("B"))
    return block.nbytes


def _bare_sum(store, key: str) -> float:
    import numpy as np
    import obstore

    data = obstore.get(store, key).bytes()
    return float(np.frombuffer(data, dtype=np.float32).sum(dtype="float64"))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """This process's CPU time (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def server_cpu_seconds() -> float:
    """The S3 server's CPU time, when `.ci/with-s3` said its pid (else 0):
    it runs on the same cores as the cluster."""
    pid = os.environ.get("CHUNKYARD_S3_SERVER_PID")
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def phase(tool: str, what: str, depth: int, url: str) -> tuple[float, list[float], float | None]:
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        workers0 = sum(client.run(cpu_seconds).values())
        server0 = server_cpu_seconds()
        t = time.perf_counter()
        value = None
        if what == "build":
            x = da.random.default_rng(7).standard_normal(
                (depth, ROWS, COLS), chunks=(1, ROWS, COLS), dtype="float32")
            if tool == "chunkyard":
                import chunkyard.dask

                chunkyard.dask.store(x, url)
            elif tool == "compute":
                value = float(x.sum(dtype="float64").compute())
            elif tool == "obstore":
                import dask

                blocks = x.to_delayed().ravel()
                store = s3_store(url)
                dask.compute(*[dask.delayed(_bare_put)(b, store, str(i))
                               for i, b in enumerate(blocks)])
            else:
                x.to_zarr(zarr_store(url), compute=True)
        else:
            if tool == "chunkyard":
                import chunkyard.dask

                value = float(chunkyard.dask.to_dask(url).sum(dtype="float64").compute())
            elif tool == "compute":
                # Generating is the build's floor; the sum of what is
                # already in memory costs nothing beside it.
                value = None
            elif tool == "obstore":
                import dask

                store = s3_store(url)
                value = sum(dask.compute(*[dask.delayed(_bare_sum)(store, str(i))
                                           for i in range(depth)]))
            else:
                value = float(da.from_zarr(zarr_store(url)).sum(dtype="float64").compute())
        seconds = time.perf_counter() - t
        cpu = (sum(client.run(cpu_seconds).values()) - workers0,
               server_cpu_seconds() - server0)
        peaks = sorted(client.run(peak_mib).values())
    print(f"{tool} {what}: {seconds:.2f} s; CPU seconds: workers {cpu[0]:.2f}, S3 server "
          f"{cpu[1]:.2f} (of {2 * seconds:.2f} on 2 cores)", file=sys.stderr)
    return seconds, peaks, value


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--floor", action="store_true",
                   help="also time the floors: generation alone, and bare obstore PUTs/GETs")
    args = p.parse_args()
    bucket = os.environ.get("CHUNKYARD_S3_BUCKET")
    if not bucket:
        raise SystemExit("no CHUNKYARD_S3_BUCKET: run under .ci/with-s3")
    tools = ["chunkyard", "zarr-python"]
    every = tools + (["compute", "obstore"] if args.floor else [])
    rows = []
    for rnd in range(args.rounds):
        for tool in (every if rnd % 2 == 0 else every[::-1]):
            url = f"s3://{bucket}/dask-{uuid.uuid4().hex}/{tool}.zarr"
            b = phase(tool, "build", args.depth, url)
            s = phase(tool, "sum", args.depth, url)
            rows.append((rnd, tool, b, s))
            print(f"round {rnd} {tool}: build {b[0]:.2f} s, workers' peaks {b[1]} MiB; "
                  f"sum {s[0]:.2f} s = {s[2] if s[2] is None else f'{s[2]:.6g}'}, "
                  f"peaks {s[1]} MiB", file=sys.stderr)
    print(f"volume ({args.depth}, {ROWS}, {COLS}) float32, chunks (1, {ROWS}, {COLS}), "
          "LocalCluster(2 worker processes, 1 thread each)")
    print("| round | tool | build s | build peak MiB (max worker) | sum s | sum peak MiB |")
    print("|---|---|---|---|---|---|")
    for rnd, tool, b, s in rows:
        print(f"| {rnd} | {tool} | {b[0]:.2f} | {max(b[1]):.0f} | {s[0]:.2f} | {max(s[1]):.0f} |")
    for rnd in range(args.rounds):
        by = {t: (b, s) for r, t, b, s in rows if r == rnd}
        # Both tools summed the same generated volume: the same value.
        sums = [by[t][1][2] for t in tools]
        if not math.isclose(sums[0], sums[1], rel_tol=1e-6, abs_tol=1e-3):
            raise SystemExit(f"round {rnd}: the sums differ: {dict(zip(tools, sums))}")
        c, z = by["chunkyard"], by["zarr-python"]
        print(f"round {rnd}: zarr-python / chunkyard time: build {z[0][0] / c[0][0]:.2f}x, "
              f"sum {z[1][0] / c[1][0]:.2f}x")
        if args.floor:
            g, o = by["compute"], by["obstore"]
            if not math.isclose(o[1][2], sums[0], rel_tol=1e-6, abs_tol=1e-3):
                raise SystemExit(f"round {rnd}: obstore's sum {o[1][2]} is not {sums[0]}")
            print(f"round {rnd}: chunkyard / floor time: build {c[0][0] / o[0][0]:.2f}x bare "
                  f"obstore, {c[0][0] / g[0][0]:.2f}x generation alone; "
                  f"sum {c[1][0] / o[1][0]:.2f}x bare obstore")


if __name__ == "__main__":
    main()
