import os
from collections.abc import Iterator
from types import EllipsisType, TracebackType
from typing import Any, Literal, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "Array",
    "AsType",
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
    "open",
]

has_hdf5: bool

_Index = int | slice | EllipsisType | tuple[int | slice | EllipsisType, ...]

class ChunkyardError(Exception):
    """Base of chunkyard's own exceptions."""

class FormatError(ChunkyardError, ValueError):
    """A file that is not a valid array of its format."""

class StoreError(ChunkyardError, OSError):
    """A storage backend failed."""

class PoisonedError(StoreError):
    """The array refuses writes after an earlier write-back failed."""

@final
class Cache:
    """A byte budget of decoded chunks, shared by the arrays given it."""

    def __new__(cls, budget: str | int) -> Cache: ...
    @property
    def budget(self) -> int: ...
    @property
    def stats(self) -> dict[str, int]: ...

def global_cache() -> Cache: ...

@final
class AsType:
    """An array seen as another dtype: ``Array.astype(dtype)``."""

    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def ndim(self) -> int: ...
    def __len__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def __dask_tokenize__(self) -> tuple[Any, ...]: ...
    def __getitem__(self, key: _Index, /) -> Any: ...
    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> npt.NDArray[Any]: ...
    def save_as(
        self,
        path: str | os.PathLike[str],
        chunks: int | tuple[int, ...] | None = None,
        codec: str | None = None,
        fill_value: Any = None,
        overwrite: bool = False,
        cache: Cache | None = None,
    ) -> Array: ...

@final
class BlockIterator(Iterator[tuple[tuple[slice, ...], npt.NDArray[Any]]]):
    """``Array.iter_blocks()``: (selection, block) per chunk, in storage order."""

    def __iter__(self) -> BlockIterator: ...
    def __next__(self) -> tuple[tuple[slice, ...], npt.NDArray[Any]]: ...

@final
class Array:
    """An array on disk (npy or Zarr), indexed like numpy."""

    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def ndim(self) -> int: ...
    @property
    def chunks(self) -> tuple[int, ...]: ...
    @property
    def size(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    @property
    def fill_value(self) -> np.generic: ...
    @property
    def path(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def sync_writes(self) -> bool: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def __dask_tokenize__(self) -> tuple[Any, ...]: ...
    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: bool | None = None
    ) -> npt.NDArray[Any]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, key: _Index, /) -> Any: ...
    def __setitem__(self, key: _Index, value: npt.ArrayLike, /) -> None: ...
    @overload
    def resize(self, shape: int | tuple[int, ...], /) -> None: ...
    @overload
    def resize(self, *shape: int) -> None: ...
    def append(self, data: npt.ArrayLike, axis: int = 0) -> tuple[int, ...]: ...
    def memory_report(self) -> dict[str, int | None]: ...
    def astype(self, dtype: npt.DTypeLike) -> AsType: ...
    def save_as(
        self,
        path: str | os.PathLike[str],
        chunks: int | tuple[int, ...] | None = None,
        codec: str | None = None,
        fill_value: Any = None,
        overwrite: bool = False,
        cache: Cache | None = None,
    ) -> Array: ...
    def iter_blocks(self) -> BlockIterator: ...
    # Reductions: a numpy scalar for axis=None (without keepdims), else a
    # numpy array.
    def sum(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def nansum(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def mean(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def nanmean(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def min(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def nanmin(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def max(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def nanmax(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def count(self, axis: int | None = None, keepdims: bool = False) -> Any: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Array: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool: ...

def create(
    path: str | os.PathLike[str],
    shape: int | tuple[int, ...],
    dtype: npt.DTypeLike,
    chunks: int | tuple[int, ...] | None = None,
    fill_value: Any = None,
    codec: str | None = None,
    overwrite: bool = False,
    cache: Cache | None = None,
) -> Array: ...
def open(
    path: str | os.PathLike[str],
    mode: Literal["r", "r+"] = "r",
    cache: Cache | None = None,
    chunks: int | tuple[int, ...] | None = None,
) -> Array: ...
def convert(
    src: Array | str | os.PathLike[str],
    dst: str | os.PathLike[str],
    dtype: npt.DTypeLike | None = None,
    chunks: int | tuple[int, ...] | None = None,
    codec: str | None = None,
    fill_value: Any = None,
    overwrite: bool = False,
    cache: Cache | None = None,
) -> Array: ...
