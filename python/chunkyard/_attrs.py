"""``Array.attrs``: a read-only mapping of an array's attributes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


class Attributes(Mapping[str, Any]):
    """An array's attributes as read from its file: a read-only mapping of
    JSON values (``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``,
    ``None``). They are written at :func:`chunkyard.create` (``attrs=``);
    chunkyard has no call that changes them afterwards, so item assignment
    and deletion raise ``TypeError``. ``dict(a.attrs)`` is a plain copy."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = dict(d)

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError(
            "chunkyard attributes are read-only: set them at "
            "create(..., attrs={...}); the library cannot change them afterwards"
        )

    def __delitem__(self, key: str) -> None:
        self.__setitem__(key, None)

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
