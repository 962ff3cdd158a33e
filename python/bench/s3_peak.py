"""Where the memory of chunkyard's S3 build goes: builds a (depth, 2000,
2000) float32 volume, chunks (1, 2000, 2000), plane by plane into
`s3://$CHUNKYARD_S3_BUCKET/...` and prints, after each plane, the
process's resident memory beside the cache's (`memory_report()`); at the
end the peak, what is left after `close()`, and after glibc's
`malloc_trim(0)` (what glibc held of freed memory).

    .ci/with-s3 python python/bench/s3_peak.py 40
    .ci/with-s3 heaptrack python python/bench/s3_peak.py 20
"""

import ctypes
import os
import resource
import sys
import uuid

import numpy as np

import chunkyard


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    url = f"s3://{os.environ['CHUNKYARD_S3_BUCKET']}/peak-{uuid.uuid4().hex}.zarr"
    a = chunkyard.create(url, (depth, 2000, 2000), "float32", chunks=(1, 2000, 2000))
    rng = np.random.default_rng(7)
    print(f"start: {rss_mib():.0f} MiB resident")
    for i in range(depth):
        a[i] = rng.standard_normal((2000, 2000), dtype=np.float32)
        r = a.memory_report()
        print(f"plane {i}: {rss_mib():.0f} MiB resident, cache {r['cache_resident_bytes'] / 2**20:.0f} "
              f"MiB ({r['dirty_bytes'] / 2**20:.0f} dirty)")
    a.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak {peak:.0f} MiB; after close {rss_mib():.0f} MiB", end="")
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f", after malloc_trim {rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
