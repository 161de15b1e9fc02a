"""In-memory backend: ordered, fast, gone when the process ends.

For tests and ephemeral hubs. Each bucket is a SortedDict; iterators copy the keys
they will visit when they are created, so, as with LevelDB, writes made while
iterating do not disturb the iteration.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict

from .api import Bucket, BucketStore, Items, Range, check_bucket_name, check_key, check_value
from .errors import StoreClosedError


class MemoryBucket(Bucket):
    __slots__ = ("_data", "_store", "name")

    def __init__(self, store: MemoryStore, name: str) -> None:
        self.name = name
        self._store = store
        self._data: SortedDict = SortedDict()

    def _check_open(self) -> None:
        if self._store.closed:
            raise StoreClosedError(f"memory store is closed (bucket {self.name!r})")

    def get(self, key: str) -> bytes | None:
        self._check_open()
        return self._data.get(check_key(key))

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        self._check_open()
        data = self._data
        return {key: data[key] for key in map(check_key, keys) if key in data}

    def set(self, key: str, value: bytes) -> None:
        self._check_open()
        check_value(check_key(key), value)
        self._data[key] = bytes(value)

    def delete(self, key: str) -> None:
        self._check_open()
        self._data.pop(check_key(key), None)

    def batch(self, set: Items = (), delete: Iterable[str] = ()) -> None:
        self._check_open()
        deletes = [check_key(key) for key in delete]
        pairs = list(set.items() if isinstance(set, Mapping) else set)
        for key, value in pairs:
            check_value(check_key(key), value)
        for key in deletes:
            self._data.pop(key, None)
        self._data.update((key, bytes(value)) for key, value in pairs)

    def count(self) -> int:
        self._check_open()
        return len(self._data)

    def _range(
        self, bounds: Range, reverse: bool, keys: bool, values: bool, limit: int | None
    ) -> Iterator[Any]:
        self._check_open()
        return select(self._data, bounds, reverse, keys, values, limit)


def select(
    data: SortedDict, bounds: Range, reverse: bool, keys: bool, values: bool, limit: int | None
) -> Iterator[Any]:
    """``_range`` over a SortedDict (also the jetstream backend's replica): what it will
    visit is copied now, so later writes do not disturb the iteration."""
    selected = data.irange(
        bounds.lower,
        bounds.upper,
        (bounds.lower_inclusive, bounds.upper_inclusive),
        reverse,
    )
    chosen = list(selected if limit is None else islice(selected, limit))
    if not values:
        return iter(chosen)
    if not keys:
        return iter([data[key] for key in chosen])
    return iter([(key, data[key]) for key in chosen])


class MemoryStore(BucketStore):
    """Buckets in this process's memory; ``path`` is only remembered, never touched."""

    backend = "memory"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._buckets: dict[str, MemoryBucket] = {}
        self._closed = False

    def bucket(self, name: str) -> MemoryBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            check_bucket_name(name)
            if self._closed:
                raise StoreClosedError("memory store is closed")
            bucket = self._buckets[name] = MemoryBucket(self, name)
        return bucket

    def buckets(self) -> list[str]:
        if self._closed:
            raise StoreClosedError("memory store is closed")
        return sorted(self._buckets)

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed
