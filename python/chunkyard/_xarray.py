"""The xarray backend: ``xarray.open_dataset(path, engine="chunkyard")``.

Opens one chunkyard array (``.npy``, a Zarr array directory or
``s3://`` prefix, an HDF5 dataset ``file.h5:/group/dataset`` when the
build has HDF5) as a Dataset of one data variable, lazily: opening reads
the array's metadata only; chunks are read when values are asked for,
through chunkyard's cache, from dask's tasks with ``chunks=``.

- The variable is named ``name=`` if given, else after the file (the
  stem: ``vol`` for ``vol.zarr`` or ``s3://b/runs/vol.zarr``), or after
  the HDF5 dataset (``temp`` for ``f.h5:/grp/temp``; ``data`` for a plain
  ``f.h5``, whose dataset chunkyard takes to be ``data``).
- Its dimensions are the array's ``dimension_names`` (Zarr v3 keeps
  them; HDF5 as h5py's ``dims[i].label`` or attached dimension scales'
  names); axes without one are ``dim_0``, ``dim_1``, ... as in xarray.
- Its attributes are the array's (``a.attrs``), as stored: no CF
  decoding (``_FillValue``, ``scale_factor``, time units are not applied).
- ``encoding["preferred_chunks"]`` is the array's chunk shape, so
  ``chunks={}`` gives one dask block per chunk (of a ``.npy`` file, which
  stores none: ``npy_chunks=``, else chunks of about 16 MiB).
- ``guess_can_open`` claims ``.npy`` files and HDF5 paths naming a
  dataset (``f.h5:/x``), which no other xarray backend opens; ``.zarr``
  and plain ``.h5`` are left to xarray's zarr, h5netcdf and netCDF4
  engines (which open groups of many variables): ask for chunkyard by
  ``engine="chunkyard"``.

Registered under the ``xarray.backends`` entry point group
(``python/pyproject.toml``); xarray imports this module only when it
looks for engines, so chunkyard does not depend on xarray.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from xarray import Dataset, Variable
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from . import Array, Cache
from . import open as _open_array
from ._reopen import _Reopen

__all__ = ["ChunkyardBackendArray", "ChunkyardBackendEntrypoint"]

# An HDF5 path with a dataset, as chunkyard splits it (src/open.rs,
# split_hdf5_path): the file, then ":" and the dataset.
_HDF5_DATASET = re.compile(r"\.(h5|hdf5):(.*)$", re.IGNORECASE)


class ChunkyardBackendArray(BackendArray):
    """An open chunkyard :class:`~chunkyard.Array` as xarray's lazy backend
    array: xarray's indexers are cut down to integers and slices (basic
    indexing, which chunkyard reads directly); xarray applies the rest
    (arrays of indices, negative steps) to what that read returns. It
    pickles as the path, mode and chunks of the array, reopened at the
    first read in the process that unpickled it (``_Reopen``), so dask's
    worker processes read the file themselves and its scheduler opens
    nothing."""

    __slots__ = ("_ref", "dtype", "shape")

    def __init__(self, array: Array) -> None:
        self._ref = _Reopen.of(array)
        self.shape = tuple(array.shape)
        self.dtype = array.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._getitem
        )

    def _getitem(self, key: tuple[Any, ...]) -> np.ndarray[Any, Any]:
        # chunkyard returns a numpy array for slices and a numpy scalar
        # when every index is an integer; xarray wants an array.
        return np.asarray(self._ref.array[key])


def _default_name(path: str) -> str:
    """The variable's name: the HDF5 dataset's last component, else the
    stem of the last component of the path or URL; "data" if empty."""
    m = _HDF5_DATASET.search(path)
    if m is not None:
        last = m.group(2).strip("/").rsplit("/", 1)[-1]
        return last or "data"
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if last.lower().endswith((".h5", ".hdf5")):
        return "data"  # chunkyard's dataset of a path without one
    stem = last.rsplit(".", 1)[0] if "." in last else last
    return stem or "data"


class ChunkyardBackendEntrypoint(BackendEntrypoint):
    """``engine="chunkyard"``: one array as a Dataset of one lazily read
    data variable (module docstring). ``name=`` names the variable,
    ``chunk_cache=`` is the :class:`~chunkyard.Cache` holding its chunks
    (default: the process-wide one; xarray's own ``cache=`` is its
    in-memory copy of loaded values), ``npy_chunks=`` the chunk shape of a
    ``.npy`` file, which stores none (``chunkyard.open``'s ``chunks=``;
    default: chunks of about 16 MiB)."""

    # (No url: the project has no public address yet; the docs are
    # docs/python.md, "xarray".)
    description = "Open one .npy, Zarr (also on S3) or HDF5 array lazily with chunkyard"
    open_dataset_parameters = (
        "filename_or_obj", "drop_variables", "name", "chunk_cache", "npy_chunks"
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        name: str | None = None,
        chunk_cache: Cache | None = None,
        npy_chunks: int | tuple[int, ...] | None = None,
    ) -> Dataset:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            raise TypeError(
                "engine='chunkyard' opens a path or an s3:// URL, "
                f"not a {type(filename_or_obj).__name__}"
            )
        path = os.fspath(filename_or_obj)
        if not isinstance(path, str):
            raise TypeError("engine='chunkyard' needs a str path, not bytes")
        a = _open_array(path, "r", cache=chunk_cache, chunks=npy_chunks)
        var_name = _default_name(path) if name is None else name
        if isinstance(drop_variables, str):
            drop_variables = [drop_variables]
        if drop_variables is not None and var_name in set(drop_variables):
            a.close()
            return Dataset()
        names = a.dimension_names or (None,) * a.ndim
        dims = tuple(n if n is not None else f"dim_{i}" for i, n in enumerate(names))
        data = indexing.LazilyIndexedArray(ChunkyardBackendArray(a))
        encoding = {
            "preferred_chunks": dict(zip(dims, a.chunks)),
            "chunks": tuple(a.chunks),
            "dtype": a.dtype,
            "source": a.path,
        }
        var = Variable(dims, data, attrs=dict(a.attrs), encoding=encoding)
        ds = Dataset({var_name: var})
        ds.set_close(a.close)
        return ds

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fspath(filename_or_obj)
        if not isinstance(path, str):
            return False
        if path.lower().endswith(".npy"):
            return True
        m = _HDF5_DATASET.search(path)
        return m is not None and m.group(2).strip("/") != ""
