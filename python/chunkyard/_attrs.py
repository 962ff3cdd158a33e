"""``Array.attrs``: a mapping of an array's attributes that writes
through to its file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np


class Attributes(MutableMapping[str, Any]):
    """An array's attributes: a mapping of JSON values (``dict``, ``list``,
    ``str``, ``int``, ``float``, ``bool``, ``None``) as stored when
    ``a.attrs`` was taken.

    Assigning or deleting an item changes the file at once and durably (a
    Zarr array's metadata file is replaced atomically, an HDF5 file is
    flushed), as h5py's and zarr's ``attrs`` do; ``update()`` and
    ``clear()`` change several keys in one write. Values are checked as at
    :func:`chunkyard.create`'s ``attrs=``: numpy scalars and arrays become
    numbers and lists, NaN and infinity are a ``ValueError``, anything
    else not JSON a ``TypeError``, and in HDF5 only numbers, booleans and
    strings, alone or in a flat list of one kind (``ValueError``), all
    before anything is written. On S3 a change is applied to the stored
    version and written on the condition that no other writer changed it
    meanwhile, so changes of different keys from several processes all
    land. ``.npy`` files hold no attributes (``ValueError``); an array
    opened with ``mode="r"`` refuses (``io.UnsupportedOperation``).
    ``dict(a.attrs)`` is a plain copy."""

    __slots__ = ("_array", "_d")

    def __init__(self, d: Mapping[str, Any], array: Any = None) -> None:
        self._d = dict(d)
        self._array = array

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def _change(self, new: Mapping[str, Any], remove: list[str]) -> None:
        if self._array is None:
            raise TypeError("these attributes belong to no array: a detached copy cannot change")
        text = _attrs_json(new)
        assert text is not None
        self._d = json.loads(self._array._update_attrs(text, remove))

    def __setitem__(self, key: str, value: Any) -> None:
        self._change({key: value}, [])

    def __delitem__(self, key: str) -> None:
        if key not in self._d:
            raise KeyError(key)
        self._change({}, [key])

    def update(self, other: Any = (), /, **kwds: Any) -> None:
        """Sets every key of ``other`` (a mapping or pairs) and ``kwds`` in
        one write."""
        new = dict(other, **kwds)
        if new:
            self._change(new, [])

    def clear(self) -> None:
        """Removes every attribute in one write."""
        if self._d:
            self._change({}, list(self._d))

    def __repr__(self) -> str:
        return f"<chunkyard.Attributes {self._d!r}>"


def _json_default(v: Any) -> Any:
    # numpy values, which h5py and zarr users pass as attributes.
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"attribute value {v!r} ({type(v).__name__}) is not JSON")


def _attrs_json(attrs: Any) -> str | None:
    """``create``'s ``attrs=`` as a JSON object's text, or ``None``."""
    if attrs is None:
        return None
    if not isinstance(attrs, Mapping):
        raise TypeError(f"attrs must be a mapping of str to JSON values, got {type(attrs).__name__}")
    for k in attrs:
        if not isinstance(k, str):
            raise TypeError(f"attribute names must be str, got {k!r}")
    try:
        return json.dumps(dict(attrs), allow_nan=False, default=_json_default)
    except ValueError as e:  # NaN or infinity: JSON has neither
        raise ValueError(f"attrs: {e}") from e


def _names(names: Any) -> list[str | None] | None:
    """``create``'s ``dimension_names=``: one str or None per axis."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)):
        raise TypeError("dimension_names is a sequence of names (str or None), one per axis")
    out = list(names)
    for n in out:
        if n is not None and not isinstance(n, str):
            raise TypeError(f"a dimension name is a str or None, got {n!r}")
    return out
