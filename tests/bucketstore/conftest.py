import pytest

from bucketstore import backend_names, open_store

# Not registered (the hub cannot open it without cluster mode's NATS options), but
# held to the same contract: every conformance test also runs on a real nats-server.
JETSTREAM = "jetstream"


@pytest.fixture(params=[*backend_names(), JETSTREAM])
def store(request, tmp_path):
    """A fresh store of every registered backend in turn, and of the jetstream one."""
    if request.param == JETSTREAM:
        yield request.getfixturevalue("jetstream_store_factory")()
        return
    store = open_store(tmp_path / "store", request.param)
    yield store
    store.close()


@pytest.fixture
def bucket(store):
    return store.bucket("things")
