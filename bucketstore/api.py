"""The bucket store interface every backend implements.

A store holds named buckets; a bucket maps non-empty ``str`` keys to ``bytes`` values
in key order (Unicode code points, which is also the order of their UTF-8 bytes).

The API is synchronous on purpose: a LevelDB get or put takes microseconds, far less
than a hop through a thread pool or an event loop callback would cost. Callers on an
event loop call it directly; work that touches many keys should use ``set_many`` /
``delete_many`` (one atomic write) or a single iterator instead of a loop of calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from asyncio import AbstractEventLoop
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from .errors import InvalidKeyError, InvalidValueError

# Values may be any bytes-like object; they are always returned as bytes.
BYTES_LIKE = (bytes, bytearray, memoryview)

Items = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


def check_key(key: Any, what: str = "key") -> str:
    """Return ``key`` if it is a valid key, else raise InvalidKeyError naming it."""
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} must be a str, not {type(key).__name__}: {key!r}")
    if not key:
        raise InvalidKeyError(f"{what} must not be empty")
    try:
        key.encode()
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"{what} {key!r} is not valid Unicode text: {exc.reason}") from None
    return key


def check_bucket_name(name: Any) -> str:
    check_key(name, "bucket name")
    if "\x00" in name:
        raise InvalidKeyError(f"bucket name {name!r} must not contain NUL")
    return name


def check_expected(expect: Mapping[str, Any], writes: Iterable[str]) -> dict[str, bytes | None]:
    """``batch_if``'s expectations, checked: valid keys and values, each key written."""
    checked: dict[str, bytes | None] = {}
    for key, value in expect.items():
        check_optional_value(check_key(key), value)
        checked[key] = None if value is None else bytes(value)
    unwritten = sorted(set(checked) - set(writes))
    if unwritten:
        raise InvalidKeyError(f"batch_if expects keys it does not write: {unwritten!r}")
    return checked


def check_value(key: str, value: Any) -> None:
    if not isinstance(value, BYTES_LIKE):
        raise InvalidValueError(f"value for key {key!r} must be bytes, not {type(value).__name__}")


def check_optional_value(key: str, value: Any) -> None:
    """A value or None (a missing key), as ``swap`` takes them."""
    if value is not None:
        check_value(key, value)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    None when there is none (the prefix is all U+10FFFF). Surrogates are skipped so
    the bound stays encodable as UTF-8.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code <= 0x10FFFF:
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


class Range:
    """Key bounds of one iteration: ``lower``/``upper`` are None when open."""

    __slots__ = ("lower", "lower_inclusive", "upper", "upper_inclusive")

    def __init__(
        self,
        start: str | None,
        reverse: bool,
        prefix: str,
        exclusive: bool,
        below: str | None = None,
    ) -> None:
        if start is not None and not isinstance(start, str):
            raise InvalidKeyError(f"start must be a str or None, not {type(start).__name__}")
        if not isinstance(prefix, str):
            raise InvalidKeyError(f"prefix must be a str, not {type(prefix).__name__}")
        self.lower: str | None = prefix or None
        self.lower_inclusive = True
        self.upper: str | None = prefix_end(prefix) if prefix else None
        self.upper_inclusive = False
        if below is not None:
            if not isinstance(below, str):
                raise InvalidKeyError(f"below must be a str or None, not {type(below).__name__}")
            if self.upper is None or below <= self.upper:
                self.upper, self.upper_inclusive = below, False
        if start is None:
            return
        if not reverse and (self.lower is None or start >= self.lower):
            self.lower, self.lower_inclusive = start, not exclusive
        elif reverse and (self.upper is None or start < self.upper):
            self.upper, self.upper_inclusive = start, not exclusive

    @property
    def empty(self) -> bool:
        if self.lower is None or self.upper is None:
            return False
        if self.lower == self.upper:
            return not (self.lower_inclusive and self.upper_inclusive)
        return self.lower > self.upper


class Bucket(ABC):
    """An ordered map of str keys to bytes values, isolated from every other bucket."""

    name: str

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value of ``key``, or None when it is missing."""

    @abstractmethod
    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The values of those ``keys`` that exist, read from one consistent view."""

    @abstractmethod
    def set(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""

    def set_many(self, items: Items) -> None:
        """Store every item atomically: after an error (a bad key or value) none is written."""
        self.batch(set=items)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key atomically."""
        self.batch(delete=keys)

    @abstractmethod
    def batch(self, set: Items = (), delete: Iterable[str] = ()) -> None:
        """Delete ``delete`` and store ``set`` in one atomic write (a key in both ends set)."""

    def batch_if(
        self,
        expect: Mapping[str, bytes | None],
        set: Items = (),
        delete: Iterable[str] = (),
    ) -> bool:
        """``batch``, only if each key of ``expect`` has the value given right now (None:
        missing); returns whether it wrote. Every key of ``expect`` must be one the
        batch sets or deletes. Compare-and-set for a record and its index entries (as
        ``swap`` is for one key): of two writers expecting the same values, at most one
        succeeds; the other reads again and retries or gives up.

        This default reads, then writes: right where one process owns the data and calls
        from one thread (LevelDB, memory); a shared backend does it on the server."""
        deletes = list(delete)
        pairs = list(set.items() if isinstance(set, Mapping) else set)
        expected = check_expected(expect, [key for key, _ in pairs] + deletes)
        if any(self.get(key) != value for key, value in expected.items()):
            return False
        self.batch(set=pairs, delete=deletes)
        return True

    # The most keys one atomic ``batch`` may write; None: no limit.
    max_batch: int | None = None

    def write_batches(self, set: Items = (), delete: Iterable[str] = ()) -> None:
        """``batch`` for writes that need not be atomic as a whole (a write-behind,
        pruning): one atomic batch where the backend takes any size, else several of at
        most ``max_batch`` keys, each atomic on its own, deletes first (so a key in both
        still ends set)."""
        limit = self.max_batch
        if limit is None:
            self.batch(set=set, delete=delete)
            return
        writes: list[tuple[str, bytes | None]] = [(key, None) for key in delete]
        writes += set.items() if isinstance(set, Mapping) else set
        for start in range(0, len(writes), limit):
            chunk = writes[start : start + limit]
            self.batch(
                set=[(key, value) for key, value in chunk if value is not None],
                delete=[key for key, value in chunk if value is None],
            )

    def swap(self, key: str, old: bytes | None, new: bytes | None) -> bool:
        """Compare-and-set: store ``new`` (None deletes) only if the value of ``key`` is
        ``old`` right now (None: the key is missing); returns whether it did.

        The one safe way to change a record that another writer may change at the same
        time (another hub node, on a shared backend): of two swaps from the same ``old``,
        at most one succeeds; the loser re-reads and tries again or gives up. It is
        ``batch_if`` on one key.
        """
        if old is None and new is None:  # nothing to write: is it missing?
            return self.get(check_key(key)) is None
        if new is None:
            return self.batch_if({key: old}, delete=[key])
        return self.batch_if({key: old}, set=[(key, new)])

    def on_change(self, callback: Callable[[str], object], loop: AbstractEventLoop) -> None:
        """Have ``callback(key)`` called on ``loop`` (the caller's event loop: the
        backend may learn of changes on a thread of its own) whenever another writer of
        a shared backend (another hub node) changes ``key`` in this bucket: a set, a
        delete, a swap, a batch. So a component that keeps a copy of what it read (a
        cache) can drop it. The store's own writes are not reported. Backends with no
        other writer (LevelDB, memory) never call it."""
        return None

    @abstractmethod
    def count(self) -> int:
        """The number of keys (walks the keys: O(n) on LevelDB)."""

    @abstractmethod
    def _range(
        self, bounds: Range, reverse: bool, keys: bool, values: bool, limit: int | None
    ) -> Iterator[Any]:
        """Iterate over ``bounds``: (key, value) pairs, keys only or values only."""

    def items(
        self,
        start: str | None = None,
        *,
        reverse: bool = False,
        prefix: str = "",
        exclusive: bool = False,
        below: str | None = None,
    ) -> Iterator[tuple[str, bytes]]:
        """(key, value) pairs in key order, from a consistent view taken at this call.

        Forward, the first key is ``start`` or the next one after it; in reverse, ``start``
        or the one before it. ``exclusive`` skips ``start`` itself; ``prefix`` keeps only
        keys that begin with it; ``below`` only keys less than it (in either direction).
        """
        return self._iterate(start, reverse, prefix, exclusive, True, True, None, below)

    def keys(
        self,
        start: str | None = None,
        *,
        reverse: bool = False,
        prefix: str = "",
        exclusive: bool = False,
        below: str | None = None,
    ) -> Iterator[str]:
        """Keys in order; the same arguments as ``items``."""
        return self._iterate(start, reverse, prefix, exclusive, True, False, None, below)

    def values(
        self,
        start: str | None = None,
        *,
        reverse: bool = False,
        prefix: str = "",
        exclusive: bool = False,
        below: str | None = None,
    ) -> Iterator[bytes]:
        """Values in key order; the same arguments as ``items``."""
        return self._iterate(start, reverse, prefix, exclusive, False, True, None, below)

    def page(
        self,
        after: str | None = None,
        limit: int = 100,
        *,
        reverse: bool = False,
        prefix: str = "",
    ) -> list[tuple[str, bytes]]:
        """At most ``limit`` items that come strictly after ``after`` (before, in reverse).

        Pass the last key of one page as ``after`` to get the next page.
        """
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, not {limit!r}")
        return list(self._iterate(after, reverse, prefix, True, True, True, limit))

    def _iterate(
        self,
        start: str | None,
        reverse: bool,
        prefix: str,
        exclusive: bool,
        keys: bool,
        values: bool,
        limit: int | None,
        below: str | None = None,
    ) -> Iterator[Any]:
        bounds = Range(start, reverse, prefix, exclusive, below)
        if bounds.empty or limit == 0:
            return iter(())
        it = self._range(bounds, reverse, keys, values, limit)
        return it if limit is None else islice(it, limit)

    def __len__(self) -> int:
        return self.count()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class BucketStore(ABC):
    """A set of named buckets, opened on a directory (or in memory)."""

    backend: str = ""
    path: Path | None = None

    @abstractmethod
    def bucket(self, name: str) -> Bucket:
        """The bucket called ``name``, created on first use."""

    @abstractmethod
    def buckets(self) -> list[str]:
        """The names of every bucket, in order."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; closing twice is harmless."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    def health(self) -> dict[str, Any]:
        """What an operator wants to know of the store (``wothub cluster status``): its
        backend, and on a replicated backend each bucket's replicas and their state."""
        return {"backend": self.backend, "path": str(self.path) if self.path else None}

    def snapshot(self) -> Iterator[tuple[str, str, bytes]]:
        """(bucket, key, value) for every item, as the store is at this call (later
        writes are not seen), in bucket and key order. Backends with snapshots iterate
        lazily; this default copies everything at once."""
        return iter(
            [
                (name, key, value)
                for name in self.buckets()
                for key, value in self.bucket(name).items()
            ]
        )

    def __enter__(self) -> BucketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"
