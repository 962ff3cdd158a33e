"""The article's volume on S3, chunkyard against zarr-python (issue 19,
item 4), in one sitting against one server.

Builds a (depth, 2000, 2000) float32 volume, chunks (1, 2000, 2000), no
compression, one plane at a time from numpy's generator, into
`s3://BUCKET/...` (each tool its own prefix), then sums it back. Each
tool runs in a process of its own, so its peak resident memory (the
child's `ru_maxrss`, Python and numpy included) is its own.

- chunkyard: `chunkyard.create(url, ...)`, `a[i] = plane`, `close()`;
  `chunkyard.open(url).sum()`.
- zarr-python: `zarr.create_array` over `zarr.storage.ObjectStore` of an
  `obstore` `S3Store` (its own concurrency), `z[i] = plane`; the sum block
  by block (8 planes a read, so that zarr fetches chunks concurrently),
  in float64.

The server and credentials come from the environment (`AWS_ENDPOINT_URL`,
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
`CHUNKYARD_S3_BUCKET`), as `.ci/with-s3` sets them:

    .ci/with-s3 python python/bench/s3.py --depth 100 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid

ROWS, COLS = 2000, 2000


def s3_store(url: str):
    """An obstore `S3Store` of the prefix `url` names."""
    from obstore.store import S3Store

    bucket, _, prefix = url[len("s3://"):].partition("/")
    return S3Store(bucket, prefix=prefix, endpoint=os.environ["AWS_ENDPOINT_URL"],
                   region=os.environ.get("AWS_REGION", "us-east-1"),
                   access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                   secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                   client_options={"allow_http": True})


def zarr_store(url: str):
    from zarr.storage import ObjectStore

    return ObjectStore(s3_store(url))


def worker(tool: str, phase: str, depth: int, url: str) -> dict:
    import numpy as np

    shape = (depth, ROWS, COLS)
    chunks = (1, ROWS, COLS)
    rng = np.random.default_rng(7)
    t = time.perf_counter()
    value = None
    if tool == "chunkyard":
        import chunkyard

        if phase == "build":
            a = chunkyard.create(url, shape, "float32", chunks=chunks)
            for i in range(depth):
                a[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
            a.close()
        else:
            value = float(chunkyard.open(url).sum())
    elif tool == "zarr-python":
        import zarr

        store = zarr_store(url)
        if phase == "build":
            z = zarr.create_array(store=store, shape=shape, chunks=chunks, dtype="float32",
                                  compressors=None)
            for i in range(depth):
                z[i] = rng.standard_normal((ROWS, COLS), dtype=np.float32)
        else:
            z = zarr.open_array(store=store, mode="r")
            value = 0.0
            for i in range(0, depth, 8):
                value += float(z[i:i + 8].sum(dtype="float64"))
    else:
        raise SystemExit(f"unknown tool {tool}")
    return {"seconds": time.perf_counter() - t, "value": value}


def run(tool: str, phase: str, depth: int, url: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", tool, "--phase", phase,
           "--depth", str(depth), "--url", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tool} {phase} failed")
    r = json.loads(out)
    r["peak_mib"] = usage.ru_maxrss / 1024
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=100)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        json.dump(worker(args.worker, args.phase, args.depth, args.url), sys.stdout)
        return
    bucket = os.environ.get("CHUNKYARD_S3_BUCKET")
    if not bucket:
        raise SystemExit("no CHUNKYARD_S3_BUCKET: run under .ci/with-s3 (or export the AWS_* "
                         "variables and a bucket)")
    tools = ["chunkyard", "zarr-python"]
    rows = []
    for rnd in range(args.rounds):
        for tool in (tools if rnd % 2 == 0 else tools[::-1]):
            url = f"s3://{bucket}/bench-{uuid.uuid4().hex}/{tool}.zarr"
            b = run(tool, "build", args.depth, url)
            s = run(tool, "sum", args.depth, url)
            rows.append((rnd, tool, b, s))
            print(f"round {rnd} {tool}: build {b['seconds']:.2f} s (peak {b['peak_mib']:.0f} MiB), "
                  f"sum {s['seconds']:.2f} s (peak {s['peak_mib']:.0f} MiB) = {s['value']:.6g}",
                  file=sys.stderr)
    gb = 4 * args.depth * ROWS * COLS / 1e9
    print(f"volume ({args.depth}, {ROWS}, {COLS}) float32 ({gb:.2f} GB), chunks (1, {ROWS}, {COLS})")
    print("| round | tool | build s | build peak MiB | sum s | sum peak MiB |")
    print("|---|---|---|---|---|---|")
    for rnd, tool, b, s in rows:
        print(f"| {rnd} | {tool} | {b['seconds']:.2f} | {b['peak_mib']:.0f} | {s['seconds']:.2f} "
              f"| {s['peak_mib']:.0f} |")
    for rnd in range(args.rounds):
        by = {t: (b, s) for r, t, b, s in rows if r == rnd}
        # Both tools summed the same generated volume: the same value.
        sums = [by[t][1]['value'] for t in tools]
        if not math.isclose(sums[0], sums[1], rel_tol=1e-6, abs_tol=1e-3):
            raise SystemExit(f"round {rnd}: the sums differ: {dict(zip(tools, sums))}")
        c, z = by["chunkyard"], by["zarr-python"]
        print(f"round {rnd}: zarr-python / chunkyard time: build "
              f"{z[0]['seconds'] / c[0]['seconds']:.2f}x, sum {z[1]['seconds'] / c[1]['seconds']:.2f}x")


if __name__ == "__main__":
    main()
