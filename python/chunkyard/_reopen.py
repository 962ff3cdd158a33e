"""Arrays that dask's and xarray's pickles reopen late: at their first
use in the process that unpickled them, not while unpickling
(chunkyard.dask and the xarray backend hold their arrays in this)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import Array

__all__: list[str] = []


class _Reopen:
    """An array as a dask graph holds it: in this process the array
    itself; pickled, only what reopens it (what ``Array.__reduce__``
    gives: ``chunkyard._unpickle`` and the path, mode and chunks, the
    array flushed first if writable), opened at its first use in the
    process that unpickled it.

    Opening late matters on a cluster: the scheduler unpickles the whole
    graph (distributed's ``update_graph``) but runs no task, so it opens
    nothing (no storage or credentials needed there, no HDF5 lock taken);
    and a worker that cannot open the array (a path not mounted there,
    no credentials, an HDF5 file another process holds for writing)
    fails the task with the open's own error, which ``compute()`` raises
    (an open failing while unpickling failed the submission on the
    scheduler, and hung the computation on a worker)."""

    def __init__(
        self,
        array: Array | None,
        reopen: tuple[Any, ...] | None,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        token: Any,
    ) -> None:
        self._array = array
        self._reopen = reopen
        self._lock = threading.Lock()
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)
        self._token = token

    @classmethod
    def of(cls, array: Array) -> _Reopen:
        return cls(array, None, tuple(array.shape), array.dtype, array.__dask_tokenize__())

    @property
    def array(self) -> Array:
        """The array, opened here at the first call after unpickling
        (once, whichever of the worker's threads asks first)."""
        if self._array is None:
            with self._lock:
                if self._array is None:
                    assert self._reopen is not None  # made with an array, or unpickled
                    fn, args = self._reopen
                    self._array = fn(*args)
        return self._array

    def __reduce__(self) -> tuple[Any, ...]:
        # An array open here pickles as Array.__reduce__ says (flushing
        # it if writable); one never opened here passes its recipe on.
        reopen = self._reopen if self._array is None else tuple(self._array.__reduce__())
        return (_Reopen, (None, reopen, self.shape, self.dtype, self._token))

    def __getitem__(self, key: Any) -> Any:
        # dask's tasks and xarray's lazy indexing each read a block once:
        # past the cache, straight into the result (Array._read_once).
        return self.array._read_once(key)

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("chunkyard.dask._Reopen", self._token)
