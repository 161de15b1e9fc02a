"""Value history: every reported property value and event, kept per affordance in time
order in the ``history`` bucket (docs/history.md).

One time series per affordance. A key is ``<thing>\\0<p|e>\\0<name>\\0<ms>\\0<seq>``: the
value's time in epoch milliseconds (13 digits) and a 16-digit hex sequence number that
keeps values of the same millisecond apart and in arrival order (it starts from the
clock in nanoseconds, so it keeps growing across restarts). Fixed widths make key order
time order. The stored value is the JSON of the value (of the event's data).

The ingest path only appends to a list (``append``); ``flush`` writes the list in
batches, right after the twins' write-behind batch. Retention (by age and by count per
series, hub-wide with per-Thing overrides) is applied by ``prune``, a bounded step of a
background sweep over every series: never on the ingest path.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from bucketstore import Bucket, BucketStore
from vocabulary import clock

log = logging.getLogger("wothub.history")

PROPERTY, EVENT = "p", "e"
KINDS = {"property": PROPERTY, "event": EVENT}
TIME_DIGITS = 13  # epoch milliseconds, enough until the year 2286
MAX_TIME = 10**TIME_DIGITS - 1
SUFFIX = TIME_DIGITS + 1 + 16  # "<ms>\0<seq>" at the end of every key
MAX_PENDING = 200_000  # values kept for the next try while the store refuses writes
CHUNK = 1000  # keys read or deleted at a time by the pruning sweep


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a series is kept: ``max_age`` seconds (0: no limit) and at most
    ``max_count`` values (0: no limit)."""

    max_age: float = 30 * 86400.0
    max_count: int = 0


@dataclass(frozen=True, slots=True)
class ThingHistory:
    """One Thing's settings; None means "as the hub-wide setting"."""

    enabled: bool | None = None
    off_properties: frozenset[str] = frozenset()
    off_events: frozenset[str] = frozenset()
    max_age: float | None = None
    max_count: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThingHistory:
        """From the admin setting's JSON form (``to_dict``): camelCase keys."""
        return cls(
            enabled=data.get("enabled"),
            off_properties=frozenset(data.get("offProperties") or ()),
            off_events=frozenset(data.get("offEvents") or ()),
            max_age=data.get("maxAge"),
            max_count=data.get("maxCount"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.enabled is not None:
            out["enabled"] = self.enabled
        if self.off_properties:
            out["offProperties"] = sorted(self.off_properties)
        if self.off_events:
            out["offEvents"] = sorted(self.off_events)
        if self.max_age is not None:
            out["maxAge"] = self.max_age
        if self.max_count is not None:
            out["maxCount"] = self.max_count
        return out

    def over(self, base: ThingHistory) -> ThingHistory:
        """These settings, falling back on ``base`` for those not set."""
        return ThingHistory(
            enabled=base.enabled if self.enabled is None else self.enabled,
            off_properties=self.off_properties | base.off_properties,
            off_events=self.off_events | base.off_events,
            max_age=base.max_age if self.max_age is None else self.max_age,
            max_count=base.max_count if self.max_count is None else self.max_count,
        )


@dataclass(frozen=True)
class HistoryConfig:
    """The hub-wide settings (``[history]`` in wothub.toml) and the file's per-Thing ones."""

    enabled: bool = True
    retention: Retention = field(default_factory=Retention)
    things: Mapping[str, ThingHistory] = field(default_factory=dict)
    sweep_interval: float = 60.0  # seconds from one pruning sweep's start to the next
    # Cluster mode: where this node notes its limits at each start, so it changes the
    # history stream's limits only when its own changed (history_jetstream.py).
    limits_file: Path | None = None


@dataclass(slots=True)
class HistoryCounters:
    """Running totals since start, for /metrics (hub/metrics.py reads them)."""

    written: int = 0  # values written to the store
    pruned: int = 0  # values deleted by the hub's pruning (retention, removed Things)
    queries: int = 0  # queries answered (or refused while running)
    query_seconds: float = 0.0  # the time they took


def open_history(store: BucketStore, config: HistoryConfig | None = None) -> History:
    """The history of a store: a stream of its own on a JetStream store (cluster mode,
    history_jetstream.py), the ``history`` bucket otherwise."""
    settings = store.bucket("historysettings")
    if store.backend == "jetstream":
        from .history_jetstream import JetStreamHistory

        return JetStreamHistory(store, settings, config)  # type: ignore[arg-type]
    return History(store.bucket("history"), settings, config)


def series_prefix(thing_id: str, kind: str, name: str) -> str:
    return f"{thing_id}\0{kind}\0{name}\0"


class History:
    """The time series of every affordance, on ``bucket``; ``settings`` holds the
    administrators' per-Thing settings (JSON of ``ThingHistory.to_dict``)."""

    seeks = True  # finding a key is cheap: history_query seeks each downsampled bucket

    def __init__(self, bucket: Bucket, settings: Bucket, config: HistoryConfig | None = None):
        self.config = config or HistoryConfig()
        self._bucket = bucket
        self._settings_bucket = settings
        self._stored: dict[str, ThingHistory] = {
            thing_id: ThingHistory.from_dict(orjson.loads(raw))
            for thing_id, raw in settings.items()
        }
        self._effective: dict[str, ThingHistory] = {}
        self._refresh()
        self._pending: list[tuple[str, str, str, str, Any]] = []
        self._sequence = itertools.count(time.time_ns())
        self._seconds_of: tuple[str, int] = ("", 0)  # the last "YYYY-MM-DDTHH:MM:SS" parsed
        self._grown: dict[str, int] = {}  # series prefix -> values written since counted
        self._counted_once: set[str] = set()  # series counted since start
        self._forgotten: dict[str, int] = {}  # removed Thing -> delete its values up to (ms)
        self._sweep: Iterator[int] | None = None
        self._sweep_started = 0.0
        self._written = 0  # values written since the last pruning step
        self.dropped = 0  # values given up after the store refused them too long
        self.counters = HistoryCounters()

    # -- settings ----------------------------------------------------------------------

    def _refresh(self) -> None:
        """Merge the file's and the administrators' per-Thing settings (the latter win)."""
        self._effective = {}
        for thing_id in set(self.config.things) | set(self._stored):
            merged = ThingHistory()
            for source in (self.config.things, self._stored):
                if thing_id in source:
                    merged = source[thing_id].over(merged)
            self._effective[thing_id] = merged
        self._counting = bool(self.config.retention.max_count) or any(
            s.max_count for s in self._effective.values()
        )
        # The ingest path looks no further when nothing is turned off anywhere.
        self._anything_off = not self.config.enabled or any(
            s.enabled is False or s.off_properties or s.off_events for s in self._effective.values()
        )

    def setting(self, thing_id: str) -> ThingHistory | None:
        """The administrators' setting for a Thing, if any."""
        return self._stored.get(thing_id)

    def effective(self, thing_id: str) -> tuple[bool, Retention, ThingHistory]:
        """Whether the Thing's history is on, its retention, and its merged settings."""
        own = self._effective.get(thing_id, ThingHistory())
        hub = self.config.retention
        enabled = self.config.enabled if own.enabled is None else own.enabled
        retention = Retention(
            hub.max_age if own.max_age is None else own.max_age,
            hub.max_count if own.max_count is None else own.max_count,
        )
        return enabled, retention, own

    def set_setting(self, thing_id: str, setting: ThingHistory | None) -> None:
        """Store (None or an empty one: remove) the administrators' setting for a Thing."""
        if setting is None or setting == ThingHistory():
            self._settings_bucket.delete(thing_id)
            self._stored.pop(thing_id, None)
        else:
            self._settings_bucket.set(thing_id, orjson.dumps(setting.to_dict()))
            self._stored[thing_id] = setting
        self._refresh()

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """A setting another node stores (a shared store) applies here too."""
        self._settings_bucket.on_change(self.setting_changed, loop)

    def setting_changed(self, thing_id: str) -> None:
        """Another node changed a Thing's setting (a shared store): read it again."""
        raw = self._settings_bucket.get(thing_id)
        if raw is None:
            self._stored.pop(thing_id, None)
        else:
            self._stored[thing_id] = ThingHistory.from_dict(orjson.loads(raw))
        self._refresh()

    def keeps(self, thing_id: str, kind: str, name: str) -> bool:
        if not self._anything_off:
            return True
        own = self._effective.get(thing_id)
        if own is None:
            return self.config.enabled
        if not (self.config.enabled if own.enabled is None else own.enabled):
            return False
        return name not in (own.off_properties if kind == PROPERTY else own.off_events)

    # -- appending (the ingest path) -----------------------------------------------------

    def append(self, thing_id: str, kind: str, name: str, value: Any, timestamp: str) -> None:
        """Keep a value for the next ``flush``: the ingest path's only cost."""
        if self._anything_off and not self.keeps(thing_id, kind, name):
            return
        self._pending.append((thing_id, kind, name, timestamp, value))

    def flush(self) -> int:
        """Write the values appended since the last flush; returns how many."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, []
        items = []
        counting, grown = self._counting, self._grown
        sequence, millis, dumps = self._sequence, self._millis, orjson.dumps
        last_stamp, last_millis = "", 0
        for thing_id, kind, name, timestamp, value in pending:
            if "\0" in thing_id or "\0" in name:
                continue  # NUL separates the parts of a key
            if timestamp != last_stamp:  # values of one report share their timestamp
                last_stamp, last_millis = timestamp, millis(timestamp)
            key = f"{thing_id}\0{kind}\0{name}\0{last_millis:013d}\0{next(sequence):016x}"
            items.append((key, dumps(value)))
            if counting:  # only a retention by count needs to know
                prefix = key[:-SUFFIX]
                grown[prefix] = grown.get(prefix, 0) + 1
        try:
            self._bucket.write_batches(set=items)
        except Exception:
            kept = pending + self._pending
            self.dropped += max(0, len(kept) - MAX_PENDING)
            self._pending = kept[-MAX_PENDING:]  # the newest, for the next try
            raise
        self._written += len(items)
        self.counters.written += len(items)
        return len(items)

    def _millis(self, timestamp: str) -> int:
        """Epoch milliseconds of a value's timestamp. The hub's own form
        (``2026-01-02T03:04:05.678Z``) is parsed once a second; others in full."""
        try:
            if len(timestamp) == 24 and timestamp[19] == "." and timestamp[23] == "Z":
                head = timestamp[:19]
                if head != self._seconds_of[0]:
                    self._seconds_of = (head, round(clock.parse_rfc3339(head + "Z")))
                return min(MAX_TIME, max(0, self._seconds_of[1] * 1000 + int(timestamp[20:23])))
            return min(MAX_TIME, max(0, round(clock.parse_rfc3339(timestamp) * 1000)))
        except ValueError:  # not from the envelope (which checks it): now
            return round(clock.now() * 1000)

    # -- reading -----------------------------------------------------------------------

    def scan(
        self,
        prefix: str,
        lower: int,
        upper: int,
        *,
        newest_first: bool,
        after: str | None = None,
    ) -> Iterator[tuple[str, bytes]]:
        """(key, value) of one series with times from ``lower`` to ``upper`` ms (both
        included), oldest or newest first, strictly after the key suffix ``after``
        (a cursor) when given."""
        low, high = self.bounds(prefix, lower, upper)
        if newest_first:
            start = high if after is None else min(high, prefix + after)
            for key, value in self._bucket.items(start, reverse=True, exclusive=True):
                if key < low:
                    return
                yield key, value
        else:
            # Strictly after K is from K + NUL on: the smallest string greater than K.
            start = low if after is None else max(low, prefix + after + "\0")
            yield from self._bucket.items(start, below=high)

    def bounds(self, prefix: str, lower: int, upper: int) -> tuple[str, str]:
        """The keys from which, and below which, a series' values lie in a time range."""
        low = f"{prefix}{lower:013d}"
        high = f"{prefix}{upper + 1:013d}" if upper < MAX_TIME else prefix[:-1] + "\x01"
        return low, high

    def key_from(self, prefix: str, start: str, *, newest_first: bool) -> str | None:
        """The series' first key from ``start`` on, or (newest first) its last one below
        ``start``; None when there is none."""
        keys = self._bucket.keys(start, prefix=prefix, reverse=newest_first, exclusive=True)
        return next(keys, None)

    def snapshot(self) -> Iterator[tuple[str, str, bytes]]:
        """The values kept outside the store's buckets, as (bucket, key, value) items of
        the ``history`` bucket, as they are at this call: for a backup, beside the
        store's snapshot. None here: this history is a bucket of the store."""
        return iter(())

    def values_between(self, start: str, below: str) -> list[bytes]:
        """The stored values of the keys from ``start`` and below ``below``, in order."""
        return list(self._bucket.values(start, below=below))

    # -- retention -----------------------------------------------------------------------

    def forget(self, thing_id: str) -> None:
        """A Thing was removed: its values go too (in the background, as pruning)."""
        self._forgotten[thing_id] = round(clock.now() * 1000)
        self._pending = [p for p in self._pending if p[0] != thing_id]

    def prune(self, budget: int = 10_000, now: float | None = None) -> int:
        """One bounded step of the pruning sweep: about ``budget`` keys read or deleted,
        then return (the next call goes on). A sweep over every series starts at most
        every ``sweep_interval`` seconds. The budget grows to twice the values written
        since the last step, so pruning keeps up with writing. Returns how many keys
        were visited."""
        now = clock.now() if now is None else now
        budget = max(budget, 2 * self._written)
        self._written = 0
        visited, ended = self._sweep_step(now, budget, self._sweep_all)
        if ended:
            self._forgotten = {t: ms for t, ms in self._forgotten.items() if ms > now * 1000}
        return visited

    def _sweep_step(
        self, now: float, budget: int, start: Callable[[float], Iterator[int]]
    ) -> tuple[int, bool]:
        """One bounded step of the sweep that ``start(now)`` makes (a new one at most
        every ``sweep_interval`` seconds): (keys visited, whether the sweep ended)."""
        if self._sweep is None:
            if self._sweep_started and now - self._sweep_started < self.config.sweep_interval:
                return 0, False
            self._sweep_started = now
            self._sweep = start(now)
        visited = 0
        try:
            while visited < budget:
                visited += next(self._sweep)
        except StopIteration:
            self._sweep = None
            return visited, True
        except Exception:
            self._sweep = None  # start over at the next sweep
            raise
        return visited, False

    def _sweep_all(self, now: float) -> Iterator[int]:
        """Every series once, in key order; yields the keys visited at each step."""
        start: str | None = None
        while True:
            first = next(iter(self._bucket.keys(start)), None)
            if first is None:
                return
            prefix = first[:-SUFFIX]
            thing_id = prefix.split("\0", 1)[0]
            yield from self._prune_series(prefix, thing_id, now)
            start = prefix[:-1] + "\x01"  # past every key of this series

    def _prune_series(self, prefix: str, thing_id: str, now: float) -> Iterator[int]:
        _, retention, _ = self.effective(thing_id)
        cutoff = round((now - retention.max_age) * 1000) if retention.max_age else 0
        cutoff = max(cutoff, self._forgotten.get(thing_id, -1) + 1)
        if cutoff > 0:  # by age: the oldest keys, up to the cutoff
            yield from self._delete_before(prefix, f"{prefix}{min(cutoff, MAX_TIME):013d}")
        limit = retention.max_count
        grown = self._grown.get(prefix, 0)
        # Count again once a tenth of the limit was written since, or once after start.
        if limit and (grown >= max(1, limit // 10) or prefix not in self._counted_once):
            self._counted_once.add(prefix)
            self._grown[prefix] = 0
            kept, after = 0, None
            while True:  # the newest ``limit`` keys are kept; the key after them bounds
                keys = list(islice(self._keys(prefix, after, reverse=True), CHUNK))
                if not keys:
                    return
                yield len(keys)
                if kept + len(keys) > limit:
                    yield from self._delete_before(prefix, keys[limit - kept - 1])
                    return
                kept += len(keys)
                after = keys[-1]

    def _delete_before(self, prefix: str, bound: str) -> Iterator[int]:
        """Delete the series' keys before ``bound``, a chunk at a time."""
        while True:
            keys = list(islice(self._keys(prefix, None, reverse=False), CHUNK))
            doomed = [key for key in keys if key < bound]
            if not doomed:
                return
            self._bucket.write_batches(delete=doomed)
            self.counters.pruned += len(doomed)
            yield len(keys)
            if len(doomed) < len(keys):
                return

    def _keys(self, prefix: str, after: str | None, *, reverse: bool) -> Iterator[str]:
        return self._bucket.keys(after, prefix=prefix, reverse=reverse, exclusive=True)

    def close(self) -> None:
        self._sweep = None
