"""Regenerates the seed corpora under fuzz/seeds/: python3 fuzz/seeds/make.py

selection_parse: selection texts. npy_header: small valid .npy files of
several dtypes, orders and versions, plus the bad-input corpus.
zarr_metadata: one flag byte (1 = .zarray), the metadata, and optionally
b"\\n--chunk--\\n" and chunk 0's bytes, made with zarr-python.
blosc_frame: its parameters, then Blosc frames numcodecs made.
chunk_index, store_ops, s3_responses: structured input decoded with
`arbitrary`, so any bytes are valid; a few deterministic random ones seed
them. hdf5_chunks: see its section below."""
import glob
import gzip
import io
import json
import os
import random
import shutil
import struct
import tempfile

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n--chunk--\n"


def fresh(name):
    d = os.path.join(here, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


d = fresh("selection_parse")
for i, t in enumerate([":", "1, 2:5, ...", "[::2, -1]", "..., 0", "None", "3,",
                       "1:2:3:4", "-9223372036854775808", "::-1", "0:0:0",
                       "[..., ::3, 4:-2]", " 7 , : , ... "]):
    put(d, f"s{i:02}", t)

d = fresh("npy_header")
def npy(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a)
    else:
        np.lib.format.write_array(b, a, version=version)
    return b.getvalue()
put(d, "f4_2d", npy(np.arange(12, dtype="<f4").reshape(3, 4)))
put(d, "i8_be", npy(np.arange(5, dtype=">i8")))
put(d, "u1_fortran", npy(np.asfortranarray(np.arange(6, dtype="u1").reshape(2, 3))))
put(d, "bool_0d", npy(np.array(True)))
put(d, "f8_empty", npy(np.zeros((0, 3))))
put(d, "i2_v2", npy(np.arange(4, dtype="<i2"), version=(2, 0)))
put(d, "u4_3d", npy(np.arange(24, dtype="<u4").reshape(2, 3, 4)))
for f in sorted(glob.glob(os.path.join(here, "..", "..", "tests", "bad_input", "*.npy"))):
    with open(f, "rb") as src:
        put(d, "bad_" + os.path.basename(f), src.read())

d = fresh("zarr_metadata")
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec, ShardingCodec


def zarr_seed(name, v2=False, chunk=True, **kw):
    with tempfile.TemporaryDirectory() as t:
        p = os.path.join(t, "a.zarr")
        data = np.arange(16, dtype=kw.pop("dtype", "f4")).reshape(4, 4)
        a = zarr.create_array(p, shape=data.shape, chunks=(4, 4), dtype=data.dtype,
                              zarr_format=2 if v2 else 3, **kw)
        a[...] = data
        meta = open(os.path.join(p, ".zarray" if v2 else "zarr.json"), "rb").read()
        out = bytes([1 if v2 else 0]) + meta
        if chunk:
            key = "0.0" if v2 else "c/0/0"
            out += SEP + open(os.path.join(p, key), "rb").read()
        put(d, name, out)


zarr_seed("v3_plain", compressors=None)
zarr_seed("v3_gzip", compressors=[GzipCodec(level=5)])
zarr_seed("v3_zstd", compressors=[ZstdCodec(level=3)], dtype="i8")
zarr_seed("v3_nochunk", chunk=False, compressors=None, dtype="u2")
zarr_seed("v2_plain", v2=True, compressors=None)
zarr_seed("v2_zlib", v2=True, dtype="<i4")
zarr_seed("v3_shard", compressors=None, shards=(4, 4), dtype="u1")
zarr_seed("v3_blosc_lz4", compressors=[BloscCodec(cname="lz4")], dtype="f4")
zarr_seed("v3_shard_blosc", compressors=[BloscCodec(cname="zstd", shuffle="bitshuffle")],
          shards=(4, 4), dtype="i2")
gz_bomb = gzip.compress(b"\0" * (1 << 20))
meta3 = json.load(open(os.path.join(here, "..", "..", "tests", "bad_input", "zarr",
                                    "chunk_corrupt_gzip.zarr", "zarr.json")))
put(d, "v3_gzip_bomb", b"\0" + json.dumps(meta3).encode() + SEP + gz_bomb)
for f in sorted(glob.glob(os.path.join(here, "..", "..", "tests", "bad_input", "zarr", "*.zarr"))):
    for name, flag in (("zarr.json", 0), (".zarray", 1)):
        m = os.path.join(f, name)
        if os.path.isfile(m):
            put(d, "bad_" + os.path.basename(f), bytes([flag]) + open(m, "rb").read())

rng = random.Random(6)
for name, sizes in (("chunk_index", [8, 24, 48, 96, 160]), ("store_ops", [16, 64, 128, 256, 512, 1024]),
                    ("s3_responses", [16, 64, 128, 256, 512, 1024])):
    d = fresh(name)
    for i, n in enumerate(sizes):
        put(d, f"r{i:02}", bytes(rng.getrandbits(8) for _ in range(n)))

d = fresh("blosc_frame")
# blosc_frame: `arbitrary` input: expect (u16), typesize, shuffle, cname,
# clevel (u8 each), blocksize (u16), then the rest as the bytes, which the
# target decodes as a frame and encodes as data. Seeds: frames numcodecs
# (c-blosc) made, so the decoder starts from real ones.
from numcodecs import Blosc
rng = np.random.default_rng(7)
for cname in ["lz4", "lz4hc", "zstd", "zlib"]:
    for shuffle, sname in [(Blosc.NOSHUFFLE, "no"), (Blosc.SHUFFLE, "byte"), (Blosc.BITSHUFFLE, "bit")]:
        for dtype, n in [("<f4", 300), ("<i2", 2000), ("u1", 64)]:
            data = np.cumsum(rng.integers(-3, 4, n)).astype(dtype).tobytes()
            frame = Blosc(cname=cname, clevel=5, shuffle=shuffle).encode(data)
            head = struct.pack("<HBBBBH", len(data), np.dtype(dtype).itemsize, 0, 0, 5, 0)
            put(d, f"{cname}_{sname}_{dtype.strip('<')}", head + bytes(frame))

# hdf5_chunks: a 32-byte header (filter steps, mask, chunk size, raw
# flag, the index entry's address and size; see the target), then a whole
# HDF5 file h5py made, the entry being the file's own for its first chunk
# (h5py's get_chunk_info), or for the whole contiguous dataset: real
# stored chunks, raw, shuffled, deflated and LZ4 (hdf5plugin).
import h5py
import hdf5plugin
d = fresh("hdf5_chunks")
STEP = {"shuffle": 0, "gzip": 1, "lz4": 2}


def h5_seed(name, data, lz4=False, **kw):
    with tempfile.TemporaryDirectory() as t:
        p = os.path.join(t, "f.h5")
        with h5py.File(p, "w", libver="earliest") as f:
            f.create_dataset("data", data=data, track_times=False, **kw)
        with h5py.File(p, "r") as f:
            ds = f["data"]
            steps = []
            if ds.shuffle:
                steps.append((STEP["shuffle"], ds.dtype.itemsize))
            if ds.compression == "gzip":
                steps.append((STEP["gzip"], 0))
            if lz4:
                steps.append((STEP["lz4"], 0))
            if ds.chunks is None:
                addr, size, mask = ds.id.get_offset(), ds.id.get_storage_size(), 0
                chunk = ds.nbytes
            else:
                info = ds.id.get_chunk_info(0)
                addr, size, mask = info.byte_offset, info.size, info.filter_mask
                chunk = int(np.prod(ds.chunks)) * ds.dtype.itemsize
        raw = not steps
        kinds = [k for k, _ in steps] + [0] * (3 - len(steps))
        params = [(p_ - 1) % 16 if k == 0 else 0 for k, p_ in steps] + [0] * (3 - len(steps))
        head = bytes([len(steps)] + kinds + params) + struct.pack(
            "<IIBQQ", mask, chunk, 1 if raw else 0, addr, size)
        assert len(head) == 32, len(head)
        put(d, name, head + open(p, "rb").read())


grid = np.arange(30).reshape(6, 5)
h5_seed("raw_i4", grid.astype("<i4"), chunks=(4, 4))
h5_seed("gzip_f4", grid.astype("<f4"), chunks=(4, 4), compression="gzip")
h5_seed("shuffle_gzip_i2", grid.astype("<i2"), chunks=(3, 5), shuffle=True,
        compression="gzip")
h5_seed("lz4_i8", grid.astype("<i8"), chunks=(6, 5), lz4=True, **hdf5plugin.LZ4())
h5_seed("shuffle_lz4_u2", grid.astype("<u2"), chunks=(2, 5), shuffle=True, lz4=True,
        **hdf5plugin.LZ4())
h5_seed("contiguous_f8", grid.astype("<f8"))
