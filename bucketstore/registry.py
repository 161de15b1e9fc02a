"""Backends by name, so configuration picks one and callers never import a backend.

The built-in backends are known here. Another package adds one without touching this
code by registering it in the ``wothub.bucketstore`` entry-point group (name =
``module:StoreClass``), or at run time with ``register_backend``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from .api import BucketStore
from .errors import UnknownBackendError

DEFAULT_BACKEND = "leveldb"
ENTRY_POINT_GROUP = "wothub.bucketstore"

StoreFactory = Callable[..., BucketStore]

_BUILTIN = {
    "leveldb": "bucketstore.leveldb:LevelDBStore",
    "memory": "bucketstore.memory:MemoryStore",
}
_registered: dict[str, StoreFactory] = {}


def register_backend(name: str, factory: StoreFactory) -> None:
    """Make ``factory(path, **options)`` available as backend ``name``."""
    _registered[name] = factory


def _locations() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **_BUILTIN}


def backend_names() -> list[str]:
    """Every backend that can be opened, sorted by name."""
    return sorted(set(_locations()) | set(_registered))


def _factory(name: str) -> StoreFactory:
    if name in _registered:
        return _registered[name]
    location = _locations().get(name)
    if location is None:
        raise UnknownBackendError(
            f"unknown bucket store backend {name!r}; known: {', '.join(backend_names())}"
        )
    module, _, attribute = location.partition(":")
    return getattr(import_module(module), attribute)


def open_store(
    path: str | os.PathLike[str] | None, backend: str = DEFAULT_BACKEND, **options: Any
) -> BucketStore:
    """Open (creating if needed) the store at ``path`` with the named backend."""
    return _factory(backend)(path, **options)
