import itertools

import pytest

from bucketstore import backend_names, open_store
from bucketstore.jetstream import JetStreamStore
from tests.support.jetstream import JetStreamServer

# Not registered (the hub cannot open it without cluster mode's NATS options), but
# held to the same contract: every conformance test also runs on a real nats-server.
JETSTREAM = "jetstream"
_prefixes = itertools.count()


@pytest.fixture(scope="session")
def jetstream_server(tmp_path_factory):
    """One nats-server with JetStream for the session; each store takes a fresh prefix,
    so no two tests share a bucket."""
    server = JetStreamServer(tmp_path_factory.mktemp("jetstream")).start()
    yield server
    server.stop()


@pytest.fixture
def jetstream_store_factory(jetstream_server):
    """Opens JetStreamStores on the session's server, under one prefix (so they share
    buckets) unless told otherwise; closes them at the end of the test."""
    opened = []
    prefix = f"t{next(_prefixes)}"

    def open_(**options):
        options = {"servers": jetstream_server.url, "prefix": prefix, **options}
        store = JetStreamStore(**options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


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
