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

Also: ``create(..., codec="zstd", cache=Cache("1GiB"))``, ``resize``,
``append``, reductions (``a.sum()``, ``a.mean(axis=0)``, ``nan*``,
``count``) in the parallel engine, ``a.astype("float32").save_as(path)``
and :func:`convert`, ``iter_blocks()``, ``memory_report()``; errors as
numpy and file users expect them, plus :class:`ChunkyardError`'s three.
``docs/python.md`` has the whole of it.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._chunkyard import (
    Array,
    AsType,
    BlockIterator,
    Cache,
    _create,
    _global_cache,
    _has_hdf5,
    _has_s3,
    _open,
)
from ._attrs import Attributes, _attrs_json, _names
from ._errors import ChunkyardError, FormatError, PoisonedError, StoreError

__all__ = [
    "Array",
    "AsType",
    "Attributes",
    "BlockIterator",
    "Cache",
    "ChunkyardError",
    "FormatError",
    "PoisonedError",
    "StoreError",
    "convert",
    "create",
    "global_cache",
    "has_hdf5",
    "has_s3",
    "open",
]

#: Whether this build reads and writes HDF5 datasets (``file.h5:/dataset``):
#: built with ``--features hdf5`` (docs/python.md, "HDF5").
has_hdf5: bool = _has_hdf5

#: Whether this build opens Zarr arrays on S3 (``s3://bucket/prefix``):
#: built with the ``s3`` feature (docs/python.md, "S3").
has_s3: bool = _has_s3

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


def global_cache() -> Cache:
    """The process-wide cache (2 write-behind writers) of every array
    opened or created without ``cache=``, and of every array unpickled in
    this process (a dask worker's). Its budget is the environment variable
    ``CHUNKYARD_CACHE`` (``"1GiB"``, any size ``Cache`` takes) when
    chunkyard is imported, else 256 MiB."""
    return _global_cache


def _as_cache(cache: Any) -> Cache | None:
    if cache is not None and not isinstance(cache, Cache):
        raise TypeError(
            f"cache must be a chunkyard.Cache or None, got {type(cache).__name__}"
        )
    return cache


def _as_codec(codec: Any) -> str | None:
    if codec is None:
        return None
    if not isinstance(codec, str):
        raise TypeError(
            "codec must be None or a name: 'lz4', 'zstd', 'zstd:LEVEL', 'gzip', "
            f"'gzip:LEVEL' or 'none'; got {type(codec).__name__}"
        )
    return codec


def create(
    path: str | os.PathLike[str],
    shape: int | tuple[int, ...],
    dtype: Any,
    chunks: int | tuple[int, ...] | None = None,
    fill_value: Any = None,
    codec: str | None = None,
    overwrite: bool = False,
    cache: Cache | None = None,
    attrs: Any = None,
    dimension_names: Any = None,
    shards: int | tuple[int, ...] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Array:
    """Creates an array at ``path``; the format comes from the extension
    (``.npy`` or ``.zarr``). ``chunks`` defaults to chunks of about 16 MiB.
    ``fill_value`` is what never-written elements read as (Zarr; a ``.npy``
    file has no fill value, so only 0 is accepted there). ``codec``
    compresses Zarr chunks: ``"lz4"``, ``"zstd"`` (level 3),
    ``"zstd:LEVEL"`` (1-22), ``"gzip"`` (level 6), ``"gzip:LEVEL"`` (0-9),
    or ``None``/``"none"``; a ``.npy`` file cannot be compressed. The file
    must not exist unless ``overwrite``. ``cache`` is the
    :class:`Cache` holding the array's chunks (default: the process-wide
    one). ``attrs`` (a mapping of str to JSON values; numpy scalars and
    arrays become numbers and lists) and ``dimension_names`` (one str or
    ``None`` per axis) are stored with the array: Zarr keeps both, HDF5
    attributes of numbers, booleans and strings, and the names as h5py's
    ``dims[i].label`` (no dimension scales); a format that cannot hold
    what is given (``.npy``) is a ``ValueError``, not a silent loss. They
    are read back as ``a.attrs`` and ``a.dimension_names``; ``a.attrs``
    changes them afterwards (``a.attrs["units"] = "mV"``), the names stay
    as created. ``shards`` (Zarr only) is the shape of Zarr v3
    shards, each a file holding inner chunks of shape ``chunks``, which
    must divide it. ``storage_options`` configures the S3 client for an
    ``s3://`` URL (see :func:`open`). Returns the array open for reading
    and writing."""
    dims = _as_shape(shape, "shape")
    dt = _as_dtype(dtype)
    chunk_dims = None if chunks is None else _as_shape(chunks, "chunks")
    fill = None
    if fill_value is not None:
        fill = np.asarray(fill_value, dtype=dt).reshape(()).tobytes()
    return _create(
        os.fspath(path),
        dims,
        dt.name,
        chunk_dims,
        fill,
        _as_codec(codec),
        bool(overwrite),
        _as_cache(cache),
        _attrs_json(attrs),
        _names(dimension_names),
        None if shards is None else _as_shape(shards, "shards"),
        storage_options,
    )


def open(  # noqa: A001
    path: str | os.PathLike[str],
    mode: str = "r",
    cache: Cache | None = None,
    chunks: int | tuple[int, ...] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Array:
    """Opens the array at ``path`` (``.npy`` or a Zarr directory):
    ``mode="r"`` read-only, ``mode="r+"`` read and write. ``cache`` is the
    :class:`Cache` holding its chunks (default: the process-wide one; a
    cache is not stored with the file, so pass it again on every open).
    ``chunks`` is the chunk shape of a ``.npy`` file, which stores none
    (default: chunks of about 16 MiB); other formats keep theirs.
    ``storage_options`` configures the S3 client for an ``s3://`` URL,
    over the ``AWS_*`` variables, with fsspec's (s3fs's) names:
    ``endpoint_url``, ``region``, ``key``, ``secret``, ``token``,
    ``allow_http`` (bool), ``timeout`` (seconds per request), ``retries``;
    another name is a ``ValueError`` listing these; a local path ignores
    them. A pickle of the array carries them, secrets included
    (docs/s3.md)."""
    if mode not in ("r", "r+"):
        raise ValueError(f"mode must be 'r' or 'r+', got {mode!r}")
    chunk_dims = None if chunks is None else _as_shape(chunks, "chunks")
    return _open(
        os.fspath(path),
        mode == "r",
        _as_cache(cache),
        False,
        chunk_dims,
        storage_options,
    )


def _unpickle(
    path: str,
    mode: str,
    chunks: tuple[int, ...],
    storage_options: Mapping[str, Any] | None = None,
) -> Array:
    """What a pickled :class:`Array` becomes: the array at ``path`` opened
    again with ``mode``, ``chunks`` (a ``.npy`` file stores none) and
    ``storage_options``, in
    this process's global cache, every write made durable before it
    returns (``sync_writes``) so that a task's writes survive the task in
    dask's worker processes."""
    return _open(path, mode == "r", None, True, chunks, storage_options)


def convert(
    src: Array | str | os.PathLike[str],
    dst: str | os.PathLike[str],
    dtype: Any = None,
    chunks: int | tuple[int, ...] | None = None,
    codec: str | None = None,
    fill_value: Any = None,
    overwrite: bool = False,
    cache: Cache | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Array:
    """Copies ``src`` (an array, or the path of one, opened read-only) to a
    new array at ``dst``, cast to ``dtype`` (default: the source's), with
    ``chunks``, ``codec``, ``fill_value``, ``overwrite`` and ``cache`` as in
    :func:`create` (a Zarr copy keeps the source's fill value unless given
    one; the cache defaults to the source's). Streams chunk by chunk in
    parallel in the Rust engine, the GIL released: the library's
    ``View::save_as``, ``chunkyard convert`` on the command line. Returns
    the new array open for reading and writing. ``storage_options`` (see
    :func:`open`) apply to both ``src`` (a path) and ``dst``."""
    cache = _as_cache(cache)
    codec = _as_codec(codec)
    if isinstance(src, Array):
        source, opened = src, False
    else:
        source, opened = (
            open(src, "r", cache=cache, storage_options=storage_options),
            True,
        )
    try:
        view = source.astype(source.dtype if dtype is None else _as_dtype(dtype))
        return view.save_as(
            dst,
            chunks=chunks,
            codec=codec,
            fill_value=fill_value,
            overwrite=overwrite,
            cache=cache,
            storage_options=storage_options,
        )
    finally:
        if opened:
            source.close()
