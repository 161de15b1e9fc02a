"""Digital twins in memory: a bounded, least-recently-used set of active twins.

A twin holds what the hub knows of one Thing besides its TD: the latest reported
property values, the latest event values, and the desired value of each property whose
write is still waiting for the agent. Values are written behind: a changed twin is only
marked dirty, and ``flush`` writes every dirty twin in one batch (the runtime calls it
on an interval and at shutdown). Twins beyond the cap, or idle too long, are unloaded
(written first if dirty) and load again from the store on their next use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock


@dataclass(slots=True)
class Twin:
    thing_id: str
    owner: str | None
    td: dict[str, Any]
    properties: dict[str, dict[str, Any]]  # name -> {"value", "timestamp"}
    events: dict[str, dict[str, Any]]  # name -> {"value", "timestamp"}
    desired: dict[str, dict[str, Any]]  # name -> {"value", "timestamp", "senderID", "id"}
    last_used: float = 0.0
    # name -> the write its device refused last (digitwin/state.py); None: not read yet.
    # Neither desired nor declined is stored here: both come from the stored requests.
    declined: dict[str, dict[str, Any]] | None = None
    # Compiled data-schema checkers by (member, name); cleared when the TD changes.
    checkers: dict[tuple[str, str], Callable[[Any], None]] = field(default_factory=dict)

    def values_json(self) -> bytes:
        return orjson.dumps({"properties": self.properties, "events": self.events})

    @staticmethod
    def parse_values(raw: bytes | None) -> tuple[dict[str, Any], dict[str, Any]]:
        if not raw:
            return {}, {}
        data = orjson.loads(raw)
        return data.get("properties", {}), data.get("events", {})


@dataclass(frozen=True, slots=True)
class TwinStats:
    active: int  # in memory now
    loaded: int  # loads from the store since start
    unloaded: int  # unloads since start
    dirty: int  # changed in memory, not written yet


class TwinCache:
    """Active twins by id. ``load(thing_id, stored_values)`` builds a twin from its TD and
    the values this cache stored for it (None: there is no such Thing)."""

    def __init__(
        self,
        values: Bucket,
        load: Callable[[str, bytes | None], Twin | None],
        *,
        max_active: int = 1000,
        idle_timeout: float = 600.0,
    ) -> None:
        if max_active < 1:
            raise ValueError("max_active must be at least 1")
        self._values = values
        self._load = load
        self.max_active = max_active
        self.idle_timeout = idle_timeout
        self._active: OrderedDict[str, Twin] = OrderedDict()
        self._dirty: dict[str, Twin] = {}
        self._loads = 0
        self._unloads = 0

    def get(self, thing_id: str) -> Twin | None:
        twin = self._active.get(thing_id)
        if twin is None:
            twin = self._load(thing_id, self._values.get(thing_id))
            if twin is None:
                return None
            self._loads += 1
            self._active[thing_id] = twin
            while len(self._active) > self.max_active:
                self._unload(next(iter(self._active.values())))
        else:
            self._active.move_to_end(thing_id)
        twin.last_used = clock.now()
        return twin

    def stored_properties(self, thing_id: str) -> dict[str, dict[str, Any]]:
        """The property values last written for a Thing (an inactive twin's are all)."""
        return Twin.parse_values(self._values.get(thing_id))[0]

    def peek(self, thing_id: str) -> Twin | None:
        """The twin if it is active, without loading it or counting a use."""
        return self._active.get(thing_id)

    def mark_dirty(self, twin: Twin) -> None:
        self._dirty[twin.thing_id] = twin

    def flush(self) -> int:
        """Write every dirty twin in one batch; returns how many."""
        if not self._dirty:
            return 0
        dirty, self._dirty = self._dirty, {}
        try:
            self._values.write_batches(
                set=[(tid, twin.values_json()) for tid, twin in dirty.items()]
            )
        except Exception:
            self._dirty = {**dirty, **self._dirty}  # keep them for the next try
            raise
        return len(dirty)

    def unload_idle(self, now: float | None = None) -> int:
        """Unload twins unused for ``idle_timeout`` seconds; returns how many."""
        limit = (clock.now() if now is None else now) - self.idle_timeout
        count = 0
        # Least recently used first, so the idle ones are at the front.
        while self._active:
            twin = next(iter(self._active.values()))
            if twin.last_used >= limit:
                break
            self._unload(twin)
            count += 1
        return count

    def drop(self, thing_id: str, *, unwritten_too: bool = False) -> None:
        """Let go of an active twin so that its next use loads it from the store (another
        node wrote it). One with values not yet written here is kept, unless
        ``unwritten_too`` (its Thing is gone)."""
        if thing_id in self._dirty and not unwritten_too:
            return
        self._dirty.pop(thing_id, None)
        self._active.pop(thing_id, None)

    def forget(self, thing_id: str) -> None:
        """Drop a twin whose Thing was deleted, with its stored values."""
        self._active.pop(thing_id, None)
        self._dirty.pop(thing_id, None)
        self._values.delete(thing_id)

    def _unload(self, twin: Twin) -> None:
        if self._dirty.pop(twin.thing_id, None) is not None:
            self._values.set(twin.thing_id, twin.values_json())
        del self._active[twin.thing_id]
        self._unloads += 1

    def stats(self) -> TwinStats:
        return TwinStats(len(self._active), self._loads, self._unloads, len(self._dirty))
