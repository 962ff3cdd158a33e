"""Regenerates the Zarr bad-input corpus: directories that look like Zarr
arrays but are not valid. meta_* ones have bad metadata: every command
fails on them. chunk_* ones have good metadata and a bad chunk file: `info`
works, reading the chunk fails. Every failure is a one-line typed error
that names the array. Run: python3 tests/bad_input/zarr/make.py"""
import json
import os
import shutil
import struct

here = os.path.dirname(os.path.abspath(__file__))


def array(name, meta=None, files=None, meta_file="zarr.json"):
    d = os.path.join(here, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if meta is not None:
        with open(os.path.join(d, meta_file), "w") as f:
            f.write(meta if isinstance(meta, str) else json.dumps(meta, indent=2))
    for key, data in (files or {}).items():
        path = os.path.join(d, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def v3(**over):
    m = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [4, 4],
        "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [4, 4]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    }
    m.update(over)
    return m


def v2(**over):
    m = {
        "zarr_format": 2,
        "shape": [4, 4],
        "chunks": [4, 4],
        "dtype": "<f4",
        "compressor": None,
        "fill_value": 0.0,
        "order": "C",
        "filters": None,
    }
    m.update(over)
    return m


for old in os.listdir(here):
    if old.endswith(".zarr"):
        shutil.rmtree(os.path.join(here, old))

array("meta_no_metadata.zarr", files={"c/0/0": b"\x00" * 64})
array("meta_malformed_json.zarr", '{"zarr_format": 3, "node_type": "array", "shape": [4,')
array("meta_not_json.zarr", "\x00\x01\x02 binary garbage \xff")
array("meta_group.zarr", {"zarr_format": 3, "node_type": "group", "attributes": {}})
array("meta_negative_shape.zarr", v3(shape=[-4, 4]))
array("meta_missing_codecs.zarr", {k: v for k, v in v3().items() if k != "codecs"})
array("meta_unknown_codec.zarr", v3(codecs=[{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "brotli"}]))
array("meta_unknown_dtype.zarr", v3(data_type="complex64", fill_value=[0.0, 0.0]))
array("meta_float16.zarr", v3(data_type="float16"))
array("meta_string_dtype.zarr", v3(data_type="string", fill_value="", codecs=[{"name": "vlen-utf8"}]))
array("meta_rectilinear_grid.zarr", v3(chunk_grid={"name": "rectilinear", "configuration": {"chunk_shapes": [[2, 2], [4]]}}))
array("meta_huge_chunk.zarr", v3(shape=[10**15, 10**15], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [10**9, 10**9]}}))
array("meta_zero_chunk.zarr", v3(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0, 4]}}))
array("meta_rank_mismatch.zarr", v3(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [4]}}))
array("meta_bad_fill.zarr", v3(fill_value="lots"))
array("meta_v2_malformed.zarr", '{"zarr_format": 2, "shape": [4, 4], "chunks": ', meta_file=".zarray")
array("meta_v2_unknown_compressor.zarr", v2(compressor={"id": "brotli"}), meta_file=".zarray")
array("meta_v2_object_dtype.zarr", v2(dtype="|O", fill_value=None), meta_file=".zarray")
array("meta_v2_structured_dtype.zarr", v2(dtype=[["a", "<i4"]], fill_value=None), meta_file=".zarray")

# Good metadata, bad chunk files.
array("chunk_truncated.zarr", v3(), {"c/0/0": b"\x00" * 20})
array("chunk_too_long.zarr", v3(), {"c/0/0": b"\x00" * 100})
array("chunk_corrupt_zstd.zarr", v3(codecs=[{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]), {"c/0/0": b"not zstd at all" * 4})
array("chunk_corrupt_gzip.zarr", v3(codecs=[{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "gzip", "configuration": {"level": 5}}]), {"c/0/0": b"\x1f\x8b" + b"garbage" * 8})
lz4 = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "numcodecs.lz4", "configuration": {"acceleration": 1}}]
array("chunk_lz4_huge_length.zarr", v3(codecs=lz4), {"c/0/0": struct.pack("<I", 0xFFFFFFF0) + b"\x00" * 16})
array("chunk_lz4_truncated.zarr", v3(codecs=lz4), {"c/0/0": b"\x40\x00"})
array("chunk_v2_truncated.zarr", v2(), {"0.0": b"\x00" * 7}, meta_file=".zarray")

# Sharded: a shard file shorter than its own index (found by fuzzing: the
# index is read as the file's last bytes, and the size arithmetic
# overflowed), and an index whose entries point past the end of the file.
shard = [{"name": "sharding_indexed", "configuration": {
    "chunk_shape": [2, 2],
    "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "crc32c"}],
    "index_location": "end"}}]
array("chunk_shard_shorter_than_index.zarr", v3(codecs=shard), {"c/0/0": b"\x00" * 10})


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: the index checksum sharding uses."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
idx = struct.pack("<8Q", *[1 << 60, 16] * 4)
array("chunk_shard_index_past_end.zarr", v3(codecs=shard), {"c/0/0": idx + struct.pack("<I", crc32c(idx))})

# Decompression bombs: small chunk files that inflate far past the 64-byte
# chunk the metadata declares (gzip: 64 MiB from 64 KiB; zstd: 1 GiB from
# 32 KiB, its frame header declaring the 1 GiB). Decoding stops at the
# chunk's size; it never holds the inflated data.
import gzip
import numcodecs

gz = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "gzip", "configuration": {"level": 9}}]
array("chunk_gzip_bomb.zarr", v3(codecs=gz), {"c/0/0": gzip.compress(b"\0" * (64 << 20), 9)})
zs = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 19, "checksum": False}}]
array("chunk_zstd_bomb.zarr", v3(codecs=zs), {"c/0/0": numcodecs.Zstd(level=19).encode(b"\0" * (1 << 30))})
array("chunk_v2_zstd_bomb.zarr", v2(compressor={"id": "zstd", "level": 19}), {"0.0": numcodecs.Zstd(level=19).encode(b"\0" * (1 << 30))}, meta_file=".zarray")
