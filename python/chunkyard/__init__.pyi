import os
from types import EllipsisType, TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "FormatError", "create", "open"]

_Index = int | slice | EllipsisType | tuple[int | slice | EllipsisType, ...]

class FormatError(ValueError):
    """A file that is not a valid array of its format."""

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
    def __len__(self) -> int: ...
    def __getitem__(self, key: _Index) -> Any: ...
    def __setitem__(self, key: _Index, value: npt.ArrayLike) -> None: ...
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
    overwrite: bool = False,
) -> Array: ...
def open(path: str | os.PathLike[str], mode: Literal["r", "r+"] = "r") -> Array: ...
