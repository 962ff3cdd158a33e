"""Regenerates the HDF5 bad-input corpus: files that look like HDF5 but are
not arrays chunkyard can read. Each file holds (or claims to hold) one
dataset /x. meta_* ones fail already when opened: every command fails.
chunk_* ones open (`info` works) but reading the chunk fails. Every
failure is a one-line typed error; none allocates what a header claims.
Run: python3 tests/bad_input/hdf5/make.py (needs h5py and hdf5plugin)."""
import os
import random

import h5py
import hdf5plugin
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
for old in os.listdir(here):
    if old.endswith(".h5"):
        os.remove(os.path.join(here, old))


def path(name):
    return os.path.join(here, name)


def h5(name, **kw):
    with h5py.File(path(name), "w", libver="earliest") as f:
        f.create_dataset("x", **kw)
    return path(name)


def patch(name, old, new, count=1):
    """Replaces the `count` occurrences of `old` in the file by `new`."""
    data = open(path(name), "rb").read()
    assert data.count(old) == count, (name, old, data.count(old))
    open(path(name), "wb").write(data.replace(old, new))


def u32(n):
    return int(n).to_bytes(4, "little")


def u64(n):
    return int(n).to_bytes(8, "little")


rng = random.Random(6)
vals = (np.arange(64 * 64) % 251).astype("f4").reshape(64, 64)

# Not HDF5 at all, or HDF5 cut short.
open(path("meta_empty.h5"), "wb").close()
open(path("meta_garbage.h5"), "wb").write(bytes(rng.getrandbits(8) for _ in range(4096)))
sig = b"\x89HDF\r\n\x1a\n"
open(path("meta_signature_then_garbage.h5"), "wb").write(
    sig + bytes(rng.getrandbits(8) for _ in range(4088)))
h5("meta_truncated.h5", data=vals, chunks=(16, 16), compression="gzip")
data = open(path("meta_truncated.h5"), "rb").read()
open(path("meta_truncated.h5"), "wb").write(data[: len(data) // 3])

# Element types chunkyard does not read.
h5("meta_compound_dtype.h5", data=np.zeros(4, dtype=[("a", "<i4"), ("b", "<f8")]))
h5("meta_string_dtype.h5", data=np.array(["ab", "cde"], dtype=h5py.string_dtype()))

# Chunks too big to hold: 65535 x 65535 bytes (HDF5 allows up to 4 GiB).
h5("meta_huge_chunk.h5", shape=(100000, 100000), dtype="u1", chunks=(65535, 65535))
# A header patched to claim a 2^25 x 2^25 = 1.1e15-element chunk in a
# 2^26 x 2^26 dataset (HDF5 itself cannot create it).
h5("meta_huge_chunk_claim.h5", shape=(5555, 6666), dtype="u1", chunks=(1234, 4321))
patch("meta_huge_chunk_claim.h5", u64(5555), u64(1 << 26), count=2)
patch("meta_huge_chunk_claim.h5", u64(6666), u64(1 << 26), count=2)
patch("meta_huge_chunk_claim.h5", u32(1234), u32(1 << 25))
patch("meta_huge_chunk_claim.h5", u32(4321), u32(1 << 25))
# A dataspace patched to 10^15 x 10^15 elements (more bytes than 64 bits).
h5("meta_huge_shape_claim.h5", shape=(5555, 6666), dtype="f8")
patch("meta_huge_shape_claim.h5", u64(5555), u64(10**15), count=2)
patch("meta_huge_shape_claim.h5", u64(6666), u64(10**15), count=2)

# Good metadata, bad chunks.
h5("chunk_corrupt_gzip.h5", data=vals, chunks=(64, 64), compression="gzip")
with h5py.File(path("chunk_corrupt_gzip.h5"), "r") as f:
    info = f["x"].id.get_chunk_info(0)
data = bytearray(open(path("chunk_corrupt_gzip.h5"), "rb").read())
mid = info.byte_offset + info.size // 2
for i in range(mid, mid + 16):
    data[i] ^= 0xA5
open(path("chunk_corrupt_gzip.h5"), "wb").write(bytes(data))
# Filter 32015 (zstd, from hdf5plugin): not a filter chunkyard or plain
# libhdf5 can run.
h5("chunk_unknown_filter.h5", data=vals, chunks=(32, 32), **hdf5plugin.Zstd())
# A gzip chunk that inflates to 64 MiB, in a dataset whose chunks hold 16 KiB.
h5("chunk_gzip_bomb.h5", shape=(64, 64), dtype="f4", chunks=(64, 64), compression="gzip")
with h5py.File(path("chunk_gzip_bomb.h5"), "r+") as f:
    import zlib
    f["x"].id.write_direct_chunk((0, 0), zlib.compress(b"\0" * (64 << 20), 9))

print("\n".join(sorted(n for n in os.listdir(here) if n.endswith(".h5"))))
