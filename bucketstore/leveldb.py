"""LevelDB backend (plyvel): the default, durable store.

One LevelDB database per store. A bucket is the key range ``<name>\\x00<key>`` (names
contain no NUL, so no bucket's range overlaps another's); the list of buckets lives
under keys starting with NUL, which no bucket name can. Writes are not fsynced by
default: LevelDB appends each write to its log with write(2) before the call returns,
so a killed process loses nothing; ``sync=True`` also survives power loss, at a cost.

The hot paths (get, set, iteration) call plyvel directly and only inspect the
arguments when plyvel refuses them, so validation costs nothing on good input.
Point reads and writes join the prefix themselves: plyvel's PrefixedDB get/put cost
about twice a plain DB call. Iteration uses PrefixedDB, which strips the prefix in C.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import plyvel

from .api import Bucket, BucketStore, Items, Range, check_bucket_name, check_key, check_value
from .errors import (
    BucketStoreError,
    StoreClosedError,
    StoreLockedError,
    StorePathError,
)

_BUCKETS = b"\x00buckets\x00"  # meta keys: one per bucket name
# What plyvel raises for bad arguments (AttributeError: a key without .encode), a
# closed database (RuntimeError) or an I/O failure (plyvel.Error).
_REFUSALS = (AttributeError, TypeError, UnicodeEncodeError, RuntimeError, plyvel.Error)
_UNSET: Any = object()


class LevelDBBucket(Bucket):
    # get, set and delete are the hub's hottest calls. Each instance binds them in
    # __init__ as closures over the plyvel handle and the prefix: measured about 10%
    # faster than methods that read the same from attributes (docs/performance.md).
    get = set = delete = None  # type: ignore[assignment]

    def __init__(self, store: LevelDBStore, name: str) -> None:
        self.name = name
        self._store = store
        self._db = store._db
        self._prefix = name.encode() + b"\x00"
        self._prefixed = self._db.prefixed_db(self._prefix)
        self.get, self.set, self.delete = self._point_operations()

    def _point_operations(self) -> tuple[Callable, Callable, Callable]:
        prefix, explain, db = self._prefix, self._explain, self._db
        db_get = db.get
        db_put = partial(db.put, sync=True) if self._store.sync else db.put
        db_delete = partial(db.delete, sync=True) if self._store.sync else db.delete

        def get(key: str) -> bytes | None:
            try:
                if key:
                    return db_get(prefix + key.encode())
            except _REFUSALS as exc:
                raise explain(exc, key) from None
            raise explain(None, key)

        def set(key: str, value: bytes) -> None:
            try:
                if key:
                    db_put(prefix + key.encode(), value)
                    return
            except _REFUSALS as exc:
                raise explain(exc, key, value) from None
            raise explain(None, key, value)

        def delete(key: str) -> None:
            try:
                if key:
                    db_delete(prefix + key.encode())
                    return
            except _REFUSALS as exc:
                raise explain(exc, key) from None
            raise explain(None, key)

        return get, set, delete

    def _explain(self, exc: Exception | None, key: Any = _UNSET, value: Any = _UNSET) -> Exception:
        """Turn a refusal into the bucketstore error that says why."""
        if self._store.closed:
            return StoreClosedError(f"store {self._store.path} is closed (bucket {self.name!r})")
        if key is not _UNSET:
            check_key(key)
            if value is not _UNSET:
                check_value(key, value)
        return BucketStoreError(f"bucket {self.name!r} in {self._store.path}: {exc}")

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        found = {}
        key: Any = _UNSET
        try:
            get, prefix = self._db.snapshot().get, self._prefix
            for key in keys:
                if not key:
                    raise self._explain(None, key)
                value = get(prefix + key.encode())
                if value is not None:
                    found[key] = value
        except _REFUSALS as exc:
            raise self._explain(exc, key) from None
        return found

    def batch(self, set: Items = (), delete: Iterable[str] = ()) -> None:
        pairs = set.items() if isinstance(set, Mapping) else set
        key: Any = _UNSET
        value: Any = _UNSET
        try:
            with self._db.write_batch(transaction=True, sync=self._store.sync) as batch:
                prefix = self._prefix
                for key in delete:
                    if not key:
                        raise self._explain(None, key)
                    batch.delete(prefix + key.encode())
                value = None
                for key, value in pairs:
                    if not key:
                        raise self._explain(None, key, value)
                    batch.put(prefix + key.encode(), value)
        except _REFUSALS as exc:
            raise self._explain(exc, key, value) from None

    def count(self) -> int:
        try:
            return sum(1 for _ in self._prefixed.iterator(include_value=False))
        except _REFUSALS as exc:
            raise self._explain(exc) from None

    def _range(
        self, bounds: Range, reverse: bool, keys: bool, values: bool, limit: int | None
    ) -> Iterator[Any]:
        options = {
            "start": bounds.lower.encode() if bounds.lower is not None else None,
            "include_start": bounds.lower_inclusive,
            "stop": bounds.upper.encode() if bounds.upper is not None else None,
            "include_stop": bounds.upper_inclusive,
            "reverse": reverse,
        }
        try:
            if not keys:
                return self._prefixed.iterator(include_key=False, **options)
            if not values:
                return map(bytes.decode, self._prefixed.iterator(include_value=False, **options))
            pairs = self._prefixed.iterator(**options)
            return ((key.decode(), value) for key, value in pairs)
        except _REFUSALS as exc:
            raise self._explain(exc) from None


class LevelDBStore(BucketStore):
    """Buckets in one LevelDB database at ``path`` (created if missing)."""

    backend = "leveldb"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = False,
        cache_size: int = 32 << 20,
        write_buffer_size: int = 8 << 20,
    ) -> None:
        if path is None:
            raise StorePathError("the leveldb backend needs a directory path")
        self.path = Path(path)
        self.sync = sync
        self._buckets: dict[str, LevelDBBucket] = {}
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorePathError(
                f"cannot create store directory {self.path}: {exc.strerror or exc}"
            ) from None
        if not os.access(self.path, os.R_OK | os.W_OK | os.X_OK):
            raise StorePathError(f"store directory {self.path} is not readable and writable")
        try:
            self._db = plyvel.DB(
                str(self.path),
                create_if_missing=True,
                lru_cache_size=cache_size,
                write_buffer_size=write_buffer_size,
            )
        except plyvel.Error as exc:
            message = exc.args[0].decode(errors="replace") if exc.args else str(exc)
            if "lock" in message.lower() and ("held" in message or "unavailable" in message):
                raise StoreLockedError(
                    f"store {self.path} is already open (by another process, or another "
                    f"store in this one): {message}"
                ) from None
            raise StorePathError(f"cannot open store {self.path}: {message}") from None
        self._meta = self._db.prefixed_db(_BUCKETS)

    def bucket(self, name: str) -> LevelDBBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            check_bucket_name(name)
            if self._db.closed:
                raise StoreClosedError(f"store {self.path} is closed")
            self._meta.put(name.encode(), b"", sync=self.sync)
            bucket = self._buckets[name] = LevelDBBucket(self, name)
        return bucket

    def buckets(self) -> list[str]:
        if self._db.closed:
            raise StoreClosedError(f"store {self.path} is closed")
        return [key.decode() for key in self._meta.iterator(include_value=False)]

    def snapshot(self) -> Iterator[tuple[str, str, bytes]]:
        """A LevelDB snapshot: taken now, read lazily (also from another thread)."""
        if self._db.closed:
            raise StoreClosedError(f"store {self.path} is closed")
        snapshot = self._db.snapshot()

        def items() -> Iterator[tuple[str, str, bytes]]:
            try:
                for raw, value in snapshot.iterator(start=b"\x01"):  # after the meta keys
                    name, _, key = raw.partition(b"\x00")
                    yield name.decode(), key.decode(), value
            finally:
                snapshot.close()

        return items()

    def close(self) -> None:
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed
