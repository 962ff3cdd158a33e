"""Attributes, dimension names and shards: `create(..., attrs=,
dimension_names=, shards=)`, read back as `a.attrs` and
`a.dimension_names`, by chunkyard and by zarr-python / h5py; attributes
changed through `a.attrs` (item assignment, deletion, update, clear) and
read back by them."""

import io
import json
import pickle
from collections.abc import Mapping

import numpy as np
import pytest

import chunkyard

needs_hdf5 = pytest.mark.skipif(not chunkyard.has_hdf5, reason="built without --features hdf5")

ATTRS = {"units": "mV", "n": 3, "scale": 0.5, "ok": True, "none": None,
         "list": [1, 2, 3], "nested": {"a": [1.5, "x"]}}


def test_zarr_attrs_and_names_round_trip_and_zarr_python_reads_them(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "a.zarr"
    a = chunkyard.create(path, (4, 6), "float32", chunks=(2, 3), attrs=ATTRS,
                         dimension_names=("time", None))
    assert dict(a.attrs) == ATTRS
    assert a.dimension_names == ("time", None)
    a[...] = 1.0
    a.close()
    b = chunkyard.open(path)
    assert isinstance(b.attrs, Mapping) and isinstance(b.attrs, chunkyard.Attributes)
    assert dict(b.attrs) == ATTRS and b.attrs["units"] == "mV" and len(b.attrs) == len(ATTRS)
    assert "nested" in b.attrs and "missing" not in b.attrs
    assert b.dimension_names == ("time", None)
    z = zarr.open_array(path, mode="r")
    assert z.attrs.asdict() == ATTRS
    assert tuple(z.metadata.dimension_names) == ("time", None)
    # Pickling reopens: the attributes come with the file.
    assert dict(pickle.loads(pickle.dumps(b)).attrs) == ATTRS


def test_attrs_written_by_zarr_python_are_read_v2_and_v3(tmp_path):
    zarr = pytest.importorskip("zarr")
    z3 = zarr.create_array(tmp_path / "v3.zarr", shape=(4, 5), chunks=(2, 5), dtype="int16",
                           attributes={"k": [1, 2]}, dimension_names=["y", "x"])
    z3[...] = 7
    z2 = zarr.create_array(tmp_path / "v2.zarr", shape=(4, 5), chunks=(2, 5), dtype="int16",
                           attributes={"k": "two"}, zarr_format=2)
    z2[...] = 8
    a3 = chunkyard.open(tmp_path / "v3.zarr")
    assert dict(a3.attrs) == {"k": [1, 2]} and a3.dimension_names == ("y", "x")
    a2 = chunkyard.open(tmp_path / "v2.zarr")
    assert dict(a2.attrs) == {"k": "two"} and a2.dimension_names is None
    assert a2[3, 4] == 8


def test_attrs_change_in_the_file_and_zarr_python_reads_them(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "w.zarr"
    a = chunkyard.create(path, (2,), "int8", attrs={"a": 1, "b": "x"})
    at = a.attrs
    at["a"] = 2
    at["c"] = np.arange(3)  # numpy values become JSON, as at create
    del at["b"]
    assert dict(at) == {"a": 2, "c": [0, 1, 2]}
    assert dict(a.attrs) == {"a": 2, "c": [0, 1, 2]}
    # Durable at once: a fresh open and zarr-python see it, before close.
    assert dict(chunkyard.open(path).attrs) == {"a": 2, "c": [0, 1, 2]}
    assert zarr.open_array(path, mode="r").attrs.asdict() == {"a": 2, "c": [0, 1, 2]}
    at.update({"d": {"nested": [1.5, None]}}, e=True)
    assert at.pop("a") == 2
    assert at.setdefault("f", "g") == "g"
    with pytest.raises(KeyError):
        del at["missing"]
    want = {"c": [0, 1, 2], "d": {"nested": [1.5, None]}, "e": True, "f": "g"}
    assert dict(at) == want
    assert json.loads((path / "zarr.json").read_text())["attributes"] == want
    at.clear()
    assert dict(at) == {} and dict(chunkyard.open(path).attrs) == {}
    assert zarr.open_array(path, mode="r").attrs.asdict() == {}
    # A copy is a plain dict.
    at["k"] = 1
    d = dict(a.attrs)
    d["k"] = 2
    assert a.attrs["k"] == 1


def test_zarr_v2_attrs_written_by_zarr_python_change_and_clear(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "v2.zarr"
    z = zarr.create_array(path, shape=(4,), chunks=(2,), dtype="int16",
                          attributes={"k": "two"}, zarr_format=2)
    z[...] = 8
    a = chunkyard.open(path, mode="r+")
    a.attrs["n"] = 5
    assert zarr.open_array(path, mode="r").attrs.asdict() == {"k": "two", "n": 5}
    assert not (path / "zarr.json").exists()
    a.attrs.clear()
    assert zarr.open_array(path, mode="r").attrs.asdict() == {}
    assert dict(chunkyard.open(path).attrs) == {}
    assert a[3] == 8


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    [
        (lambda at: at.__setitem__("x", float("nan")), ValueError, "attrs"),
        (lambda at: at.__setitem__("x", object()), TypeError, "not JSON"),
        (lambda at: at.__setitem__(1, "x"), TypeError, "names must be str"),
        (lambda at: at.update({"ok": 1, "x": float("inf")}), ValueError, "attrs"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, change, exc, match):
    path = tmp_path / "b.zarr"
    a = chunkyard.create(path, (2,), "int8", attrs={"a": 1})
    before = (path / "zarr.json").read_bytes()
    with pytest.raises(exc, match=match):
        change(a.attrs)
    assert (path / "zarr.json").read_bytes() == before
    assert dict(a.attrs) == {"a": 1}


def test_read_only_arrays_npy_and_detached_copies_refuse_changes(tmp_path):
    chunkyard.create(tmp_path / "r.zarr", (2,), "int8", attrs={"a": 1}).close()
    r = chunkyard.open(tmp_path / "r.zarr")  # mode="r"
    with pytest.raises(io.UnsupportedOperation, match="read-only"):
        r.attrs["a"] = 2
    with pytest.raises(io.UnsupportedOperation, match="read-only"):
        del r.attrs["a"]
    assert dict(chunkyard.open(tmp_path / "r.zarr").attrs) == {"a": 1}
    n = chunkyard.create(tmp_path / "n.npy", (2,), "int8")
    with pytest.raises(ValueError, match="hold no attributes"):
        n.attrs["a"] = 1
    with pytest.raises(TypeError, match="belong to no array"):
        chunkyard.Attributes({"a": 1})["a"] = 2


def test_numpy_values_become_json(tmp_path):
    a = chunkyard.create(tmp_path / "n.zarr", (2,), "int8",
                         attrs={"i": np.int64(3), "f": np.float32(0.25), "v": np.arange(3),
                                "t": (1, 2), "b": np.bool_(True)})
    assert dict(a.attrs) == {"i": 3, "f": 0.25, "v": [0, 1, 2], "t": [1, 2], "b": True}


@pytest.mark.parametrize(
    ("attrs", "exc", "match"),
    [
        ({"x": float("nan")}, ValueError, "attrs"),
        ({"x": object()}, TypeError, "not JSON"),
        ({1: "x"}, TypeError, "names must be str"),
        (["x"], TypeError, "mapping"),
    ],
)
def test_bad_attrs_are_refused_before_anything_is_written(tmp_path, attrs, exc, match):
    path = tmp_path / "bad.zarr"
    with pytest.raises(exc, match=match):
        chunkyard.create(path, (2,), "int8", attrs=attrs)
    assert not path.exists()


@pytest.mark.parametrize(
    ("names", "exc", "match"),
    [
        (("a", "b"), ValueError, "2 dimension names for 1 axes"),
        ("ab", TypeError, "sequence of names"),
        ((3,), TypeError, "str or None"),
    ],
)
def test_bad_dimension_names_are_refused(tmp_path, names, exc, match):
    with pytest.raises(exc, match=match):
        chunkyard.create(tmp_path / "bad.zarr", (2,), "int8", dimension_names=names)


def test_npy_holds_neither_and_says_so(tmp_path):
    a = chunkyard.create(tmp_path / "p.npy", (2,), "int8")
    assert dict(a.attrs) == {} and a.dimension_names is None
    with pytest.raises(ValueError, match=r"cannot store attributes a \(.npy holds none\)"):
        chunkyard.create(tmp_path / "q.npy", (2,), "int8", attrs={"a": 1})
    with pytest.raises(ValueError, match="dimension names"):
        chunkyard.create(tmp_path / "q.npy", (2,), "int8", dimension_names=["x"])
    assert not (tmp_path / "q.npy").exists()
    # Empty attributes and no names are nothing to drop.
    chunkyard.create(tmp_path / "e.npy", (2,), "int8", attrs={}, dimension_names=[None]).close()


def test_save_as_and_convert_keep_attrs_and_names(tmp_path):
    a = chunkyard.create(tmp_path / "s.zarr", (4, 4), "float64", attrs={"u": "K"},
                         dimension_names=["y", "x"])
    a[...] = np.arange(16.0).reshape(4, 4)
    b = a.astype("float32").save_as(tmp_path / "t.zarr")
    assert dict(b.attrs) == {"u": "K"} and b.dimension_names == ("y", "x")
    c = chunkyard.convert(tmp_path / "s.zarr", tmp_path / "u.zarr", codec="zstd")
    assert dict(c.attrs) == {"u": "K"} and c.dimension_names == ("y", "x")


def test_shards_are_read_by_zarr_python(tmp_path):
    zarr = pytest.importorskip("zarr")
    path = tmp_path / "sh.zarr"
    want = np.arange(4 * 6 * 8, dtype="float32").reshape(4, 6, 8)
    a = chunkyard.create(path, want.shape, "float32", chunks=(1, 3, 4), shards=(2, 6, 8),
                         codec="zstd")
    # The array's (and the cache's) chunk is the shard.
    assert a.chunks == (2, 6, 8)
    a[...] = want
    a[1, 2, 3] = -1.0  # a partial write of an inner chunk
    want[1, 2, 3] = -1.0
    a.close()
    z = zarr.open_array(path, mode="r")
    assert z.chunks == (1, 3, 4) and z.shards == (2, 6, 8)
    np.testing.assert_array_equal(z[...], want)
    np.testing.assert_array_equal(chunkyard.open(path)[...], want)


def test_shards_elsewhere_or_not_dividing_are_errors(tmp_path):
    with pytest.raises(ValueError, match="only Zarr arrays are sharded"):
        chunkyard.create(tmp_path / "s.npy", (4,), "int8", shards=(4,))
    with pytest.raises(ValueError):
        chunkyard.create(tmp_path / "s.zarr", (8,), "int8", chunks=(3,), shards=(4,))


@needs_hdf5
def test_hdf5_attributes_are_read_by_h5py(tmp_path):
    h5py = pytest.importorskip("h5py")
    attrs = {"units": "mV", "n": 3, "v": [1.5, 2.5]}
    a = chunkyard.create(f"{tmp_path}/a.h5:/d", (4,), "float32", attrs=attrs)
    a[...] = 1.0
    a.close()
    with h5py.File(tmp_path / "a.h5", "r") as f:
        got = dict(f["d"].attrs)
    assert got["units"] == "mV" and got["n"] == 3
    np.testing.assert_array_equal(got["v"], [1.5, 2.5])
    assert dict(chunkyard.open(f"{tmp_path}/a.h5:/d").attrs) == attrs
    with pytest.raises(ValueError, match="attribute nested"):
        chunkyard.create(f"{tmp_path}/b.h5:/d", (4,), "float32", attrs={"nested": {"a": 1}})


@needs_hdf5
def test_hdf5_attributes_change_and_h5py_reads_them(tmp_path):
    h5py = pytest.importorskip("h5py")
    a = chunkyard.create(f"{tmp_path}/a.h5:/d", (4,), "float32", attrs={"units": "mV", "n": 3},
                         dimension_names=("t",))
    a.attrs["n"] = "three"  # another type: rewritten
    a.attrs.update(v=[1.5, 2.5], on=True)
    del a.attrs["units"]
    with pytest.raises(ValueError, match="attribute nested"):
        a.attrs["nested"] = {"a": 1}
    assert dict(a.attrs) == {"n": "three", "v": [1.5, 2.5], "on": True}
    a.close()  # HDF5 locks the file while chunkyard has it open
    with h5py.File(tmp_path / "a.h5", "r") as f:
        got = dict(f["d"].attrs)
        assert [d.label for d in f["d"].dims] == ["t"]
    assert got.pop("DIMENSION_LABELS") is not None
    assert got.keys() == {"n", "v", "on"} and got["n"] == "three" and got["on"]
    np.testing.assert_array_equal(got["v"], [1.5, 2.5])
    assert dict(chunkyard.open(f"{tmp_path}/a.h5:/d").attrs) == {"n": "three", "v": [1.5, 2.5],
                                                                "on": True}


@needs_hdf5
def test_hdf5_dimension_names_are_h5py_labels_and_scales(tmp_path):
    h5py = pytest.importorskip("h5py")
    a = chunkyard.create(f"{tmp_path}/a.h5:/d", (2, 3, 4), "float32",
                         dimension_names=("t", None, "x"))
    assert a.dimension_names == ("t", None, "x")
    a.close()
    # The convention's attribute is not a user attribute.
    assert dict(chunkyard.open(f"{tmp_path}/a.h5:/d").attrs) == {}
    with h5py.File(tmp_path / "a.h5", "r+") as f:
        ds = f["d"]
        assert [d.label for d in ds.dims] == ["t", "", "x"]
        # A scale attached by h5py names the unlabelled axis.
        f["rows"] = np.arange(3.0)
        f["rows"].make_scale("y")
        ds.dims[1].attach_scale(f["rows"])
    b = chunkyard.open(f"{tmp_path}/a.h5:/d")
    assert b.dimension_names == ("t", "y", "x")
    assert dict(b.attrs) == {}
    b.close()
