"""Backends are chosen by name; a new one plugs in without touching callers."""

import pytest

from bucketstore import UnknownBackendError, backend_names, open_store, register_backend
from bucketstore.memory import MemoryStore


def test_builtin_backends_are_listed():
    assert {"leveldb", "memory"} <= set(backend_names())


def test_unknown_backend_names_the_known_ones(tmp_path):
    with pytest.raises(UnknownBackendError, match=r"'nosuch'.*leveldb"):
        open_store(tmp_path, "nosuch")


def test_a_registered_backend_opens_by_name(tmp_path):
    class CountingStore(MemoryStore):
        backend = "counting"
        opened = 0

        def __init__(self, path, **options):
            super().__init__(path)
            CountingStore.opened += 1

    register_backend("counting", CountingStore)
    assert "counting" in backend_names()
    with open_store(tmp_path, "counting") as store:
        store.bucket("b").set("k", b"v")
        assert store.bucket("b").get("k") == b"v"
    assert CountingStore.opened == 1
