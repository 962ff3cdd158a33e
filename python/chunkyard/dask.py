"""chunkyard arrays as dask arrays, and dask arrays stored into chunkyard.

>>> import chunkyard, chunkyard.dask
>>> x = chunkyard.dask.to_dask(chunkyard.open("volume.zarr"))   # one block per chunk
>>> chunkyard.dask.store(x * 2, "doubled.npy")                   # created like x

Writes go block by block from dask's tasks (threads or worker processes).
On a Zarr target (on disk or on S3) blocks may cut chunks: each process
writes a chunk back merging its elements into the chunk's current version,
so writers sharing a chunk lose nothing. On .npy and HDF5 targets each
block must be aligned to the target's chunks (an unaligned dask array is
refused, or rechunked with ``rechunk=True``): two processes writing parts
of one chunk would each write the whole chunk back over the other's part.
Each task's writes are durable (flushed and fsynced) when the task ends,
so when ``compute()`` returns the array on disk is complete, also after a
worker died and dask ran its tasks again elsewhere.

Needs ``dask[array]`` (and ``distributed`` for a cluster); chunkyard itself
does not depend on them.
"""

from __future__ import annotations

import os
from typing import Any, cast

import dask.array as da
import numpy as np

from . import Array, Cache, _as_dtype, _as_shape, create
from . import open as _open_array
from ._reopen import _Reopen

__all__ = ["store", "to_dask"]


def to_dask(
    a: Array | str | os.PathLike[str],
    chunks: Any = None,
) -> da.Array:
    """A dask array reading ``a`` (an :class:`~chunkyard.Array`, or the
    path of one, opened read-only). ``chunks`` defaults to the array's
    chunks, one block per chunk; any dask ``chunks`` are accepted (blocks
    that cut chunks read those chunks more than once). The array travels
    to worker processes pickled: reopened by path there (flushed first if
    writable), in each worker's global cache, at the first read of a task
    (``_Reopen``: the scheduler, which unpickles the graph, opens
    nothing)."""
    if not isinstance(a, Array):
        a = _open_array(a, "r")
    return da.from_array(
        cast(Any, _Reopen.of(a)),
        chunks=a.chunks if chunks is None else chunks,
        lock=False,
        asarray=False,
        meta=np.empty((0,) * a.ndim, dtype=a.dtype),
    )


class _Target:
    """What ``dask.array.store`` writes into: each block is written and
    then flushed, so a task's writes are durable when it ends (in a worker
    process the unpickled array already syncs each write; the flush then
    finds nothing to do). Pickled, it opens the array at the first write
    (:class:`_Reopen`)."""

    def __init__(self, array: Array) -> None:
        self.ref = _Reopen.of(array)
        self.shape = self.ref.shape
        self.dtype = self.ref.dtype
        self.ndim = self.ref.ndim

    def __setitem__(self, key: Any, value: Any) -> None:
        a = self.ref.array
        a[key] = value
        a.flush()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("chunkyard.dask._Target", self.ref.__dask_tokenize__())


def _regular_chunks(x: da.Array) -> tuple[int, ...] | None:
    """x's block shape when its blocks are regular (all equal along each
    axis but the last block), else None."""
    out = []
    for sizes in x.chunks:
        if len(sizes) == 0:
            out.append(1)
            continue
        first = sizes[0]
        if any(s != first for s in sizes[:-1]) or sizes[-1] > first:
            return None
        out.append(max(first, 1))
    return tuple(out)


def _misaligned(x: da.Array, chunks: tuple[int, ...]) -> str | None:
    """The first block edge of x that is not on a chunk boundary, said in
    words; None if every edge is."""
    for axis, (sizes, c) in enumerate(zip(x.chunks, chunks)):
        edge = 0
        for s in sizes[:-1]:
            edge += s
            if edge % c:
                return f"axis {axis}: a block ends at {edge}, not a multiple of the chunk length {c}"
    return None


def store(
    x: da.Array,
    target: Array | str | os.PathLike[str],
    chunks: int | tuple[int, ...] | None = None,
    *,
    rechunk: bool = False,
    codec: str | None = None,
    fill_value: Any = None,
    overwrite: bool = False,
    cache: Cache | None = None,
    compute: bool = True,
    **store_kwargs: Any,
) -> Any:
    """Writes the dask array ``x`` into ``target``: a chunkyard
    :class:`~chunkyard.Array` opened for writing (of x's shape), or a path,
    then created with x's shape and dtype and ``chunks`` (default: x's
    block shape, which must then be regular), ``codec``, ``fill_value``,
    ``overwrite`` and ``cache`` as in :func:`chunkyard.create`.

    With ``rechunk=True``, ``x`` is first rechunked to the target's chunks
    if its blocks cut them. Otherwise blocks that cut chunks are written as
    they are into a target that merges writes (Zarr, on disk or on S3:
    tasks in different processes sharing a chunk each merge their elements
    into it, at the cost of reading the chunk back); into .npy and HDF5
    every block must start on a chunk boundary of the target (blocks of one
    chunk or of several whole chunks), or this is a ``ValueError``. Each task flushes its block before it ends, so
    the array is complete on disk when the computation returns, whichever
    worker wrote what. The target's values written by tasks in other
    processes are not in the calling process's cache: chunks it read
    before the store may be stale there (reopen to read them fresh).

    With ``compute=True`` (default) runs the computation and returns the
    target array; with ``compute=False`` returns the ``dask.delayed``
    that ``dask.array.store`` gives. Other keywords go to
    ``dask.array.store`` (``lock`` is always False: blocks on chunk
    boundaries touch disjoint chunks, and merged writes need none)."""
    if not isinstance(x, da.Array):
        raise TypeError(f"x must be a dask array, got {type(x).__name__}")
    if "lock" in store_kwargs:
        raise TypeError("store() takes no lock: aligned blocks and merged writes need none")
    if isinstance(target, Array):
        if chunks is not None or codec is not None or fill_value is not None or overwrite:
            raise TypeError(
                "chunks, codec, fill_value and overwrite are for a target given as a path; "
                "this array exists already"
            )
        if target.read_only:
            raise ValueError(f"{target.path}: the target is open read-only (mode='r')")
        if tuple(target.shape) != tuple(x.shape):
            raise ValueError(f"x has shape {x.shape}, the target {target.shape}")
        arr = target
    else:
        if chunks is None:
            block = _regular_chunks(x)
            if block is None:
                raise ValueError(
                    "x's blocks are not regular, so they give no chunk shape: "
                    "pass chunks= or rechunk x"
                )
            chunk_dims = block
        else:
            chunk_dims = _as_shape(chunks, "chunks")
        arr = create(
            target,
            x.shape,
            _as_dtype(x.dtype),
            chunks=chunk_dims,
            fill_value=fill_value,
            codec=codec,
            overwrite=overwrite,
            cache=cache,
        )
    grid = tuple(arr.chunks)
    wrong = _misaligned(x, grid)
    if wrong is not None:
        if rechunk:
            x = x.rechunk(grid)
        elif not arr._merges_writes:
            raise ValueError(
                f"x's blocks are not aligned to the target's chunks {grid} ({wrong}); "
                "blocks that cut chunks could overwrite each other's writes from "
                "different processes, and this target does not merge writes (Zarr "
                "targets do). Rechunk x (x.rechunk(target.chunks)) or pass rechunk=True"
            )
    # The target travels to worker processes pickled: flushed first, so
    # that they see what this process wrote into it.
    out = da.store(x, cast(Any, _Target(arr)), lock=False, compute=compute, **store_kwargs)
    if compute:
        return arr
    return out
