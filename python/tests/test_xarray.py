"""xarray.open_dataset(path, engine="chunkyard") (python/chunkyard/_xarray.py):
npy, Zarr and (with the HDF5 build option) HDF5 arrays opened lazily, as
numpy-backed lazy variables (chunks=None) and as dask arrays (chunks=),
indexed like numpy, names and attributes from the file; reduced on the
session's cluster of worker processes."""

import numpy as np
import pytest

import chunkyard

xr = pytest.importorskip("xarray")

SHAPE = (6, 20, 12)


def data():
    return np.random.default_rng(7).standard_normal(SHAPE).astype("float32")


def make(path, **kw):
    a = chunkyard.create(path, SHAPE, "float32", chunks=(2, 10, 12), **kw)
    a[...] = data()
    a.close()
    return path


@pytest.fixture(params=["npy", "zarr", "h5"])
def path(request, tmp_path):
    if request.param == "h5":
        if not chunkyard.has_hdf5:
            pytest.skip("built without the HDF5 option")
        return make(f"{tmp_path}/f.h5:/grp/vol")
    if request.param == "zarr":
        # Compressed: partial reads go through the cache (whole chunks
        # decoded), whose counts then show what was read.
        return make(tmp_path / "vol.zarr", codec="lz4")
    return make(tmp_path / "vol.npy")


def test_the_engine_is_registered():
    assert "chunkyard" in xr.backends.list_engines()


def test_open_is_lazy_and_reads_on_demand(path):
    cache = chunkyard.Cache("8MiB")
    ds = xr.open_dataset(path, engine="chunkyard", chunk_cache=cache)
    assert list(ds.data_vars) == ["vol"]
    v = ds["vol"]
    assert v.shape == SHAPE and v.dtype == np.float32
    assert v.dims == ("dim_0", "dim_1", "dim_2")
    # Opening read metadata only: no chunk went through the cache.
    assert cache.stats["misses"] == 0 and cache.stats["resident_bytes"] == 0
    want = data()
    if str(path).endswith(".h5:/grp/vol"):
        # (HDF5 refuses to open for writing a file this process has
        # open: the cache's counts are the evidence there.)
        np.testing.assert_array_equal(v[1].values, want[1])
    else:
        # Values written after the open are what the variable reads, so
        # the open read none. (Partial reads of a .npy file do not go
        # through the cache, so its counts would prove nothing.)
        want = -want
        with chunkyard.open(path, "r+", cache=chunkyard.Cache("1MiB")) as b:
            b[...] = want
        np.testing.assert_array_equal(v[1].values, want[1])
    if not str(path).endswith(".npy"):
        # Plane 1 lies in the two chunks (2, 10, 12) of chunk row 0.
        assert cache.stats["misses"] == 2
    np.testing.assert_array_equal(v.values, want)
    ds.close()


def test_indexing_as_numpy(path):
    want = data()
    with xr.open_dataset(path, engine="chunkyard") as ds:
        v = ds["vol"]
        for key in [
            (slice(1, 5), slice(None, None, 3), 4),
            (-1, slice(None, None, -2), slice(2, 9)),
            (0, 0, 0),
        ]:
            np.testing.assert_array_equal(v[key].values, want[key])
        # Lists index each axis on its own (xarray's orthogonal indexing).
        np.testing.assert_array_equal(
            v[:, [0, 5, 19], [1, 1, 11]].values, want[:, [0, 5, 19]][:, :, [1, 1, 11]]
        )
        # Vectorized (pointwise) indexing too.
        i = xr.DataArray([0, 3, 5], dims="p")
        j = xr.DataArray([19, 0, 7], dims="p")
        np.testing.assert_array_equal(
            v.isel(dim_0=i, dim_1=j).values, want[[0, 3, 5], [19, 0, 7]]
        )


def test_chunks_give_dask_arrays_aligned_to_the_file(path):
    da = pytest.importorskip("dask.array")
    # A .npy file stores no chunk shape: npy_chunks gives it one.
    kw = {"npy_chunks": (2, 10, 12)} if str(path).endswith(".npy") else {}
    with xr.open_dataset(path, engine="chunkyard", chunks={}, **kw) as ds:
        x = ds["vol"].data
        assert isinstance(x, da.Array)
        assert x.chunks == ((2, 2, 2), (10, 10), (12,))  # the file's chunks
        np.testing.assert_allclose(
            ds["vol"].mean("dim_0", dtype="float64").values,
            data().mean(axis=0, dtype="float64"),
            rtol=1e-12,
        )
    with xr.open_dataset(path, engine="chunkyard", chunks={"dim_0": 6, "dim_1": 20}) as ds:
        assert ds["vol"].data.chunks == ((6,), (20,), (12,))
        np.testing.assert_array_equal(ds["vol"].values, data())


def test_names_and_attributes_from_hdf5(tmp_path):
    # HDF5 keeps the names as h5py's dims[i].label (DIMENSION_LABELS),
    # which is not among the variable's attributes.
    if not chunkyard.has_hdf5:
        pytest.skip("built without the HDF5 option")
    p = make(f"{tmp_path}/f.h5:/temp", attrs={"units": "K"}, dimension_names=["t", None, "x"])
    with xr.open_dataset(p, engine="chunkyard") as ds:
        v = ds["temp"]
        assert v.dims == ("t", "dim_1", "x")
        assert v.attrs == {"units": "K"}
        np.testing.assert_array_equal(v[:, 3].values, data()[:, 3])


def test_names_and_attributes_from_zarr(tmp_path):
    p = make(tmp_path / "temp.zarr", attrs={"units": "K", "scale": [1, 2]},
             dimension_names=["t", None, "x"])
    with xr.open_dataset(p, engine="chunkyard", chunks={}) as ds:
        v = ds["temp"]
        assert v.dims == ("t", "dim_1", "x")
        assert v.attrs == {"units": "K", "scale": [1, 2]}
        assert v.encoding["preferred_chunks"] == {"t": 2, "dim_1": 10, "x": 12}
        np.testing.assert_allclose(v.sum("t").values, data().sum(axis=0), rtol=1e-5)
    with xr.open_dataset(p, engine="chunkyard", name="T") as ds:
        assert list(ds.data_vars) == ["T"]
    with xr.open_dataset(p, engine="chunkyard", drop_variables="temp") as ds:
        assert len(ds.data_vars) == 0


def test_guess_can_open():
    from chunkyard._xarray import ChunkyardBackendEntrypoint, _default_name

    e = ChunkyardBackendEntrypoint()
    assert e.guess_can_open("a/vol.npy") and e.guess_can_open("f.h5:/grp/x")
    assert e.guess_can_open("F.HDF5:/x")
    # Left to xarray's own zarr, h5netcdf and netCDF4 engines.
    for other in ["vol.zarr", "f.h5", "f.h5:/", "x.nc", b"vol.npy", 3]:
        assert not e.guess_can_open(other)
    assert _default_name("s3://b/runs/vol.zarr/") == "vol"
    assert _default_name("d/f.h5") == "data" and _default_name("f.h5:/g/t") == "t"
    assert _default_name("d/raw") == "raw"


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError):
        xr.open_dataset(tmp_path / "none.npy", engine="chunkyard")
    with pytest.raises(TypeError, match="path or an s3:// URL"):
        xr.open_dataset(xr.Dataset(), engine="chunkyard")
    with pytest.raises(TypeError, match="Cache"):
        xr.open_dataset(make(tmp_path / "v.npy"), engine="chunkyard", chunk_cache="1MiB")


def test_reduced_on_the_cluster_of_processes(dask_client, tmp_path):
    p = make(tmp_path / "vol.zarr", dimension_names=["t", "y", "x"])
    with xr.open_dataset(p, engine="chunkyard", chunks={}) as ds:
        # The lazy variable travels to the workers pickled: each reopens
        # the array by path and reads its own blocks.
        s, m = dask_client.compute(
            [ds["vol"].sum(), ds["vol"].mean("t", dtype="float64")], sync=True
        )
    np.testing.assert_allclose(float(s), data().sum(dtype="float64"), rtol=1e-5)
    np.testing.assert_allclose(m.values, data().mean(axis=0, dtype="float64"), rtol=1e-9)
    # Pickled, the variable holds only what reopens the array (the
    # scheduler opens nothing): an array the workers cannot find fails
    # their tasks with the open's error. (The timeout only guards
    # against a hang.)
    with xr.open_dataset(p, engine="chunkyard", chunks={}) as ds:
        total = ds["vol"].sum()
        (tmp_path / "vol.zarr").rename(tmp_path / "moved.zarr")
        with pytest.raises(FileNotFoundError, match="vol.zarr"):
            dask_client.compute(total).result(timeout=120)


def test_a_zarr_array_on_s3(dask_client):
    """engine="chunkyard" on an ``s3://`` URL (under .ci/with-s3; skipped
    without a server), reduced on the cluster of worker processes."""
    import os
    import uuid

    bucket = os.environ.get("CHUNKYARD_S3_BUCKET")
    if not (chunkyard.has_s3 and bucket):
        pytest.skip("needs the s3 build feature and a server: "
                    ".ci/with-s3 python -m pytest -q python/tests/test_xarray.py -k s3")
    url = make(f"s3://{bucket}/py-xr-{uuid.uuid4().hex}/temp.zarr",
               codec="lz4", dimension_names=["t", "y", "x"], attrs={"units": "K"})
    with xr.open_dataset(url, engine="chunkyard", chunks={}) as ds:
        v = ds["temp"]
        assert v.dims == ("t", "y", "x") and v.attrs == {"units": "K"}
        m = dask_client.compute(v.mean("t", dtype="float64"), sync=True)
        np.testing.assert_allclose(m.values, data().mean(axis=0, dtype="float64"), rtol=1e-12)
        np.testing.assert_array_equal(v[2:5, 3].values, data()[2:5, 3])
