"""Shared fixtures: one dask.distributed cluster of worker processes for
the whole session (starting one takes a second or two; the dask tests of
several modules share it)."""

import pytest


@pytest.fixture(scope="session")
def dask_client():
    """A client of `LocalCluster(n_workers=2, processes=True,
    threads_per_worker=1)`: two worker processes, so arrays travel to them
    pickled (reopened) and their writes come from other processes."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=40,  # logging.ERROR: a killed worker is expected
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
