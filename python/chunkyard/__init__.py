"""chunkyard: out-of-core chunked arrays on disk, indexed like numpy.

An array lives in a ``.npy`` file or a ``.zarr`` directory; a program
holds only a byte-budgeted set of its chunks in memory. ``a[idx]`` reads
into a new numpy array and ``a[idx] = value`` writes, both with the GIL
released while chunkyard's Rust engine does the I/O.

>>> import numpy as np, chunkyard
>>> a = chunkyard.create("volume.npy", shape=(500, 2000, 2000), dtype="float32")
>>> for i in range(len(a)):
...     a[i] = np.random.standard_normal((2000, 2000))
>>> a.close()
"""

from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np

from ._chunkyard import Array, FormatError, _create, _open

__all__ = ["Array", "FormatError", "create", "open"]

# The element types the engine stores (chunkyard::DType), by numpy name.
_DTYPES = frozenset(
    ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
     "uint64", "float32", "float64"]
)


def _as_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise ValueError(f"not a numpy dtype: {dtype!r}") from e
    if dt.name not in _DTYPES:
        raise ValueError(
            f"dtype {dt} is not supported; chunkyard stores "
            + ", ".join(sorted(_DTYPES))
        )
    if not dt.isnative:
        raise ValueError(
            f"dtype {dt.str!r} is not in this machine's byte order; "
            "non-native byte orders are not supported yet"
        )
    return dt


def _as_shape(shape: Any, what: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        dims = tuple(operator.index(n) for n in shape)
    except TypeError as e:
        raise ValueError(f"{what} must be a tuple of integers, got {shape!r}") from e
    if any(n < 0 for n in dims):
        raise ValueError(f"{what} must not be negative, got {dims}")
    return dims


def create(
    path: str | os.PathLike[str],
    shape: int | tuple[int, ...],
    dtype: Any,
    chunks: int | tuple[int, ...] | None = None,
    fill_value: Any = None,
    overwrite: bool = False,
) -> Array:
    """Creates an array at ``path``; the format comes from the extension
    (``.npy`` or ``.zarr``). ``chunks`` defaults to chunks of about 16 MiB.
    ``fill_value`` is what never-written elements read as (Zarr; a ``.npy``
    file has no fill value, so only 0 is accepted there). The file must not
    exist unless ``overwrite``. Returns the array open for reading and
    writing."""
    dims = _as_shape(shape, "shape")
    dt = _as_dtype(dtype)
    chunk_dims = None if chunks is None else _as_shape(chunks, "chunks")
    fill = None
    if fill_value is not None:
        fill = np.asarray(fill_value, dtype=dt).reshape(()).tobytes()
    return _create(os.fspath(path), dims, dt.name, chunk_dims, fill, bool(overwrite))


def open(path: str | os.PathLike[str], mode: str = "r") -> Array:  # noqa: A001
    """Opens the array at ``path`` (``.npy`` or a Zarr directory):
    ``mode="r"`` read-only, ``mode="r+"`` read and write."""
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    return _open(os.fspath(path), mode == "r")
