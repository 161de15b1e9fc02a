import pytest

from bucketstore import backend_names, open_store


@pytest.fixture(params=backend_names())
def store(request, tmp_path):
    """A fresh store of every registered backend in turn."""
    store = open_store(tmp_path / "store", request.param)
    yield store
    store.close()


@pytest.fixture
def bucket(store):
    return store.bucket("things")
