"""Every library error kind arrives as the Python exception a numpy, h5py
or file-object user expects: one test per kind, through a real file where
one can provoke it, and through the hidden `_raise_for_tests` for the rest
(store failures, a poisoned array, errnos that root never gets)."""

import errno
import io
import os

import numpy as np
import pytest

import chunkyard
from chunkyard import _chunkyard


# kind -> (exception class, errno or None)
KINDS = {
    "enoent": (FileNotFoundError, errno.ENOENT),
    "eacces": (PermissionError, errno.EACCES),
    "eexist": (FileExistsError, errno.EEXIST),
    "eisdir": (IsADirectoryError, errno.EISDIR),
    "eio": (OSError, errno.EIO),
    "enospc": (OSError, errno.ENOSPC),
    "kind_permission": (PermissionError, None),
    "kind_eof": (OSError, None),
    "format": (chunkyard.FormatError, None),
    "store": (chunkyard.StoreError, None),
    "poisoned": (chunkyard.PoisonedError, None),
    "dtype": (TypeError, None),
    "shape": (ValueError, None),
    "invalid": (ValueError, None),
    "unsupported": (ValueError, None),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_error_kind_maps_to_its_exception(kind):
    cls, code = KINDS[kind]
    with pytest.raises(cls) as info:
        _chunkyard._raise_for_tests(kind)
    e = info.value
    if code is not None:
        # Python's own OSError(errno, strerror, filename): e.errno,
        # e.filename and the usual "[Errno N] ...: 'path'" text.
        assert e.errno == code and e.filename == "some/file.npy"
        assert str(e).startswith(f"[Errno {code}] ")
        assert type(e) is cls  # the exact subclass Python picks for the errno
    else:
        assert str(e)  # the library's message
    assert not isinstance(e, chunkyard.ChunkyardError) or kind in ("format", "store", "poisoned")


def test_hierarchy():
    assert issubclass(chunkyard.FormatError, chunkyard.ChunkyardError)
    assert issubclass(chunkyard.FormatError, ValueError)
    assert issubclass(chunkyard.StoreError, chunkyard.ChunkyardError)
    assert issubclass(chunkyard.StoreError, OSError)
    assert issubclass(chunkyard.PoisonedError, chunkyard.StoreError)
    assert chunkyard.FormatError.__module__ == "chunkyard._errors"


def test_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        chunkyard.open(tmp_path / "missing.zarr")
    assert info.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError) as info:
        chunkyard.create(tmp_path / "no" / "dir" / "a.npy", (3,), "int8")
    assert info.value.errno == errno.ENOENT
    assert info.value.filename.endswith("a.npy")


def test_file_exists(tmp_path):
    chunkyard.create(tmp_path / "a.npy", (3,), "int8").close()
    with pytest.raises(FileExistsError):
        chunkyard.create(tmp_path / "a.npy", (3,), "int8")


def test_is_a_directory(tmp_path):
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        chunkyard.open(tmp_path / "dir.npy")
    assert info.value.errno == errno.EISDIR


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path):
    chunkyard.create(tmp_path / "a.npy", (3,), "int8").close()
    (tmp_path / "a.npy").chmod(0)
    try:
        with pytest.raises(PermissionError):
            chunkyard.open(tmp_path / "a.npy")
    finally:
        (tmp_path / "a.npy").chmod(0o644)


def test_index_and_type_errors(tmp_path):
    a = chunkyard.create(tmp_path / "a.npy", (3, 4), "int8")
    with pytest.raises(IndexError, match="out of bounds"):
        a[3]
    with pytest.raises(IndexError):
        a[0, 0, 0]
    with pytest.raises(TypeError, match="fancy"):
        a[[0, 1]]
    with pytest.raises(TypeError, match="negative"):
        a[::-1]
    with pytest.raises(ValueError, match="zero"):
        a[::0]


def test_value_errors(tmp_path):
    with pytest.raises(ValueError, match="chunk shape"):
        chunkyard.create(tmp_path / "a.npy", (3,), "int8", chunks=(0,))
    np.save(tmp_path / "c.npy", np.zeros(3, complex))
    with pytest.raises(ValueError, match="dtype") as info:
        chunkyard.open(tmp_path / "c.npy")
    assert not isinstance(info.value, chunkyard.ChunkyardError)
    with pytest.raises(ValueError, match="extension|format"):
        chunkyard.create(tmp_path / "a.txt", (3,), "int8")


def test_format_errors(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 100)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:500])  # truncated
    with pytest.raises(chunkyard.FormatError, match="truncated"):
        chunkyard.open(tmp_path / "t.npy")
    (tmp_path / "g.npy").write_bytes(b"hello, not an npy file at all")
    with pytest.raises(chunkyard.FormatError, match="magic"):
        chunkyard.open(tmp_path / "g.npy")
    a = chunkyard.create(tmp_path / "z.zarr", (4, 8), "float64", chunks=(1, 8), codec="lz4")
    a[...] = 1.0
    a.close()
    (tmp_path / "z.zarr" / "c" / "2" / "0").write_bytes(b"garbage")
    b = chunkyard.open(tmp_path / "z.zarr")
    assert b[1, 0] == 1.0
    # codec="lz4" writes Zarr's blosc codec with lz4 inside.
    with pytest.raises(chunkyard.FormatError, match="blosc|lz4"):
        b[2]
    with pytest.raises(ValueError):  # FormatError is a ValueError
        b.sum()
    (tmp_path / "z.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(chunkyard.FormatError):
        chunkyard.open(tmp_path / "z.zarr")


def test_read_only_write_is_unsupported_operation(tmp_path):
    chunkyard.create(tmp_path / "a.zarr", (3,), "int8").close()
    a = chunkyard.open(tmp_path / "a.zarr")
    with pytest.raises(io.UnsupportedOperation):
        a[0] = 1
    assert issubclass(io.UnsupportedOperation, OSError)
    assert issubclass(io.UnsupportedOperation, ValueError)


def test_no_panic_reaches_python():
    with pytest.raises(RuntimeError, match="internal error"):
        _chunkyard._panic_for_tests()
    with pytest.raises(ValueError, match="unknown kind"):
        _chunkyard._raise_for_tests("nonsense")
