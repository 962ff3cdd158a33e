"""Regenerates the bad-input corpus: files that look like .npy but are not
valid. Every one must make chunkyard fail with a one-line typed error.
Run: python3 tests/bad_input/make.py (from the repository root)."""
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def header(d, version=(1, 0), pad_to=64):
    text = d.encode("latin1")
    prefix_len = 10 if version == (1, 0) else 12
    total = prefix_len + len(text) + 1
    text += b" " * ((-total) % pad_to) + b"\n"
    if version == (1, 0):
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(text)) + text


def write(name, data):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)


good = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }"
write("empty.npy", b"")
write("not_npy.npy", b"hello, this is plain text and not an array\n" * 3)
write("truncated_magic.npy", b"\x93NUM")
write("truncated_header.npy", header(good)[:40])
write("truncated_data.npy", header(good) + b"\x00" * 20)
write("bad_version.npy", b"\x93NUMPY\x07\x00" + header(good)[8:] + b"\x00" * 64)
write("complex_dtype.npy", header("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }") + b"\x00" * 16)
write("object_dtype.npy", header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }") + b"\x00" * 16)
write("structured_dtype.npy", header("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }") + b"\x00" * 8)
write("negative_dim.npy", header("{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 4), }"))
write("huge_shape.npy", header("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000000, 1000000000000000), }"))
write("huge_chunk_claim.npy", header("{'descr': '<u1', 'fortran_order': False, 'shape': (1000000000000000,), }"))
write("huge_header_len.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{'descr'")
write("garbage_dict.npy", header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4, 4), }") + b"\x00" * 64)
write("missing_key.npy", header("{'descr': '<f4', 'shape': (4, 4), }") + b"\x00" * 64)
write("binary_garbage.npy", bytes((i * 97 + 13) % 256 for i in range(300)))
