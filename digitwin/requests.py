"""Action and property-write records, queued for their Thing's agent.

A consumer's ``invokeaction`` or ``writeproperty`` becomes a record that is written
through to the store before the request is acknowledged. Its state machine:

    pending -> delivered -> running -> completed | failed
    (any state that is not final) -> expired | cancelled

Records wait in order per Thing until their agent takes them; the agent may see a record
more than once (at-least-once delivery), always with the same id.

One bucket holds the records and their indexes, so each change is one atomic write:

    r\\0<id>                  the record (JSON)
    o\\0<thing>\\0<seq>        open (not final) records of a Thing, in arrival order
    t\\0<thing>\\0<seq>        every retained record of a Thing, in arrival order
    x\\0<expires ms>\\0<id>    open records by expiry
    d\\0<ended ms>\\0<id>      final records by end time, for pruning
    m\\0seq                   the last sequence number given out
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock
from vocabulary.envelope import (
    ABSENT,
    CANCELLED,
    COMPLETED,
    DELIVERED,
    EXPIRED,
    FAILED,
    PENDING,
    RUNNING,
    TERMINAL,
    new_id,
)
from vocabulary.problems import Conflict, NotFound

_ALLOWED = {
    PENDING: {DELIVERED, RUNNING, COMPLETED, FAILED, EXPIRED, CANCELLED},
    DELIVERED: {DELIVERED, RUNNING, COMPLETED, FAILED, EXPIRED, CANCELLED},
    RUNNING: {RUNNING, COMPLETED, FAILED, EXPIRED, CANCELLED},
}
_SEQ_KEY = "m\x00seq"
_KEYS_PER_RECORD = 4  # the record and its open, Thing and expiry index entries
_ATTEMPTS = 20  # conditional writes lost to other nodes before giving up


@dataclass(slots=True)
class Record:
    id: str
    operation: str  # invokeaction or writeproperty
    thing_id: str
    name: str
    sender_id: str
    input: Any
    time_requested: float
    expires: float
    seq: int
    status: str = PENDING
    output: Any = ABSENT
    error: dict[str, Any] | None = None
    time_ended: float | None = None
    correlation_id: str | None = None
    deliveries: int = 0

    @property
    def final(self) -> bool:
        return self.status in TERMINAL

    def to_status(self) -> dict[str, Any]:
        """The record as the ActionStatus object consumers see."""
        out: dict[str, Any] = {
            "id": self.id,
            "thingID": self.thing_id,
            "name": self.name,
            "operation": self.operation,
            "status": self.status,
            "timeRequested": clock.rfc3339(self.time_requested),
            "expires": clock.rfc3339(self.expires),
            "senderID": self.sender_id,
        }
        if self.input is not ABSENT:
            out["input"] = self.input
        if self.output is not ABSENT:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        if self.time_ended is not None:
            out["timeEnded"] = clock.rfc3339(self.time_ended)
        return out

    def to_json(self) -> bytes:
        data = {
            "id": self.id,
            "operation": self.operation,
            "thingID": self.thing_id,
            "name": self.name,
            "senderID": self.sender_id,
            "timeRequested": self.time_requested,
            "expires": self.expires,
            "seq": self.seq,
            "status": self.status,
            "error": self.error,
            "timeEnded": self.time_ended,
            "correlationID": self.correlation_id,
            "deliveries": self.deliveries,
        }
        if self.input is not ABSENT:
            data["input"] = self.input
        if self.output is not ABSENT:
            data["output"] = self.output
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, raw: bytes) -> Record:
        data = orjson.loads(raw)
        return cls(
            id=data["id"],
            operation=data["operation"],
            thing_id=data["thingID"],
            name=data["name"],
            sender_id=data["senderID"],
            input=data.get("input", ABSENT),
            time_requested=data["timeRequested"],
            expires=data["expires"],
            seq=data["seq"],
            status=data["status"],
            output=data.get("output", ABSENT),
            error=data["error"],
            time_ended=data["timeEnded"],
            correlation_id=data["correlationID"],
            deliveries=data["deliveries"],
        )


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000):015d}"


def _open_key(record: Record) -> str:
    return f"o\x00{record.thing_id}\x00{record.seq:016x}"


def _thing_key(record: Record) -> str:
    return f"t\x00{record.thing_id}\x00{record.seq:016x}"


def _expiry_key(record: Record) -> str:
    return f"x\x00{_ms(record.expires)}\x00{record.id}"


def _done_key(record: Record) -> str:
    return f"d\x00{_ms(record.time_ended or 0)}\x00{record.id}"


def _busy(what: str) -> Conflict:
    return Conflict(f"{what}: other nodes changed the queue {_ATTEMPTS} times in a row; retry")


class RequestQueue:
    """Durable records of queued requests; every change is written before it returns."""

    def __init__(self, bucket: Bucket, *, default_ttl: float = 3600.0, retention: float = 86400.0):
        self._bucket = bucket
        self.default_ttl = default_ttl
        self.retention = retention  # how long final records stay queryable

    def add(
        self,
        operation: str,
        thing_id: str,
        name: str,
        sender_id: str,
        input: Any = ABSENT,
        *,
        correlation_id: str | None = None,
        ttl: float | None = None,
        now: float | None = None,
    ) -> Record:
        new = self._maker(operation, name, sender_id, input, ttl, now)
        record = new(thing_id, correlation_id)
        self._write_numbered([record], f"queueing {operation} on {thing_id}")
        return record

    def _maker(
        self,
        operation: str,
        name: str,
        sender_id: str,
        input: Any,
        ttl: float | None,
        now: float | None,
    ) -> Callable[[str, str | None], Record]:
        """A maker of new records (one a Thing) of one request, numbered as written."""
        now = clock.now() if now is None else now
        ttl = self.default_ttl if ttl is None else ttl
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, not {ttl}")
        expires = now + ttl

        def new(thing_id: str, correlation_id: str | None = None) -> Record:
            return Record(
                id=new_id(),
                operation=operation,
                thing_id=thing_id,
                name=name,
                sender_id=sender_id,
                input=input,
                time_requested=now,
                expires=expires,
                seq=0,  # numbered as it is written
                correlation_id=correlation_id,
            )

        return new

    def add_many(
        self,
        operation: str,
        thing_ids: Iterable[str],
        name: str,
        sender_id: str,
        input: Any = ABSENT,
        *,
        delivered: Container[str] = (),
        ttl: float | None = None,
        now: float | None = None,
    ) -> list[Record]:
        """One record for each Thing of ``thing_ids`` with the same operation, name and
        input (a group's members), numbered in that order and written in as few atomic
        batches as the store takes (each within its batch limit, numbered from the
        stored counter like ``add``): a thousand records cost a few writes, not a
        thousand. Each batch is durable before the next is written.

        The Things in ``delivered`` have their agent connected to the one hub that
        writes this queue (not several nodes): their records are stored already
        delivered, the claim that ``update`` would make right after, to be sent at once."""
        new = self._maker(operation, name, sender_id, input, ttl, now)
        records = []
        for thing_id in thing_ids:
            record = new(thing_id, None)
            if thing_id in delivered:
                record.status, record.deliveries = DELIVERED, 1
            records.append(record)
        limit = self._bucket.max_batch
        per_batch = len(records) if limit is None else max(1, (limit - 1) // _KEYS_PER_RECORD)
        for start in range(0, len(records), per_batch or 1):
            batch = records[start : start + per_batch]
            self._write_numbered(batch, f"queueing {len(batch)} of {operation} {name!r}")
        return records

    def _write_numbered(self, records: list[Record], what: str) -> None:
        """Write new records with their indexes in one atomic batch, numbered in order
        after the stored counter; the counter is written with them only if no one took
        the next number meanwhile (nodes share the bucket), else numbered again."""
        for _attempt in range(_ATTEMPTS):
            counted = self._bucket.get(_SEQ_KEY)
            seq = int(counted) if counted else 0
            writes = {}
            for record in records:
                seq += 1
                record.seq = seq
                writes[f"r\x00{record.id}"] = record.to_json()
                writes[_open_key(record)] = record.id.encode()
                writes[_thing_key(record)] = record.id.encode()
                writes[_expiry_key(record)] = b""
            writes[_SEQ_KEY] = str(seq).encode()
            if self._bucket.batch_if({_SEQ_KEY: counted}, set=writes):
                return
        raise _busy(what)

    def get(self, record_id: str) -> Record | None:
        raw = self._bucket.get(f"r\x00{record_id}")
        return Record.from_json(raw) if raw else None

    def update(
        self,
        record: Record,
        status: str,
        *,
        output: Any = ABSENT,
        error: dict[str, Any] | None = None,
        now: float | None = None,
        if_status: str | None = None,
    ) -> Record:
        """Move a record to ``status`` (refused with Conflict if the state machine forbids,
        or if ``if_status`` is given and the record is no longer in that state).

        The change applies to the stored record, not to the copy passed in, so a stale
        copy can never move a record backwards; the updated record is returned.
        ``if_status`` makes the change a claim: of two nodes moving a pending record to
        delivered, one wins and the other is refused."""
        key = f"r\x00{record.id}"
        for _attempt in range(_ATTEMPTS):
            raw = self._bucket.get(key)
            if raw is None:
                raise NotFound(f"no action or write {record.id}", actionID=record.id)
            record = Record.from_json(raw)
            if if_status is not None and record.status != if_status:
                raise Conflict(
                    f"{record.operation} {record.id} is {record.status} now, not {if_status}",
                    actionID=record.id,
                    actionStatus=record.status,
                )
            if status not in _ALLOWED.get(record.status, ()):
                raise Conflict(
                    f"{record.operation} {record.id} is {record.status}; it cannot become {status}",
                    actionID=record.id,
                    actionStatus=record.status,
                )
            record.status = status
            if output is not ABSENT:
                record.output = output
            if error is not None:
                record.error = error
            if status == DELIVERED:
                record.deliveries += 1
            deletes = []
            writes = {}
            if record.final:
                record.time_ended = clock.now() if now is None else now
                writes[_done_key(record)] = b""
                deletes = [_open_key(record), _expiry_key(record)]
            writes[key] = record.to_json()
            # Written only if the record is still as read: another node may move it too.
            if self._bucket.batch_if({key: raw}, set=writes, delete=deletes):
                return record
        raise _busy(f"updating {record.operation} {record.id}")

    def follow(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        changed: Callable[[str], object],
        queued: Callable[[str], object],
    ) -> None:
        """What other nodes do to the queue (a shared store), on ``loop``:
        ``changed(record id)`` for each record they change, ``queued(thing id)`` when
        they queue a request for a Thing (after its record is in this node's replica:
        the watch delivers a batch in order). Never called on LevelDB."""

        def on_change(key: str) -> None:
            kind, _, rest = key.partition("\x00")
            if kind == "r":
                changed(rest)
            elif kind == "o" and self._bucket.get(key) is not None:
                queued(rest.partition("\x00")[0])

        self._bucket.on_change(on_change, loop)

    def follow_queued_and_ended(
        self,
        loop: asyncio.AbstractEventLoop,
        wanted: Callable[[str], bool],
        changed: Callable[[Record], object],
    ) -> None:
        """``changed(record)`` on ``loop`` for each request another node queues or ends
        (its open entry is set or deleted) for a Thing that ``wanted(thing id)``; the
        record is read only then. Never called on LevelDB."""
        ending: set[str] = set()  # ended elsewhere, the record's end not in the replica yet

        def on_change(key: str) -> None:
            kind, _, rest = key.partition("\x00")
            if kind == "r":
                if rest in ending:
                    record = self.get(rest)
                    if record is None or record.final:
                        ending.discard(rest)
                    if record is not None and record.final:
                        changed(record)
                return
            thing_id, _, seq = rest.partition("\x00")
            if kind != "o" or not wanted(thing_id):
                return
            record_id = self._bucket.get(key) or self._bucket.get(f"t\x00{thing_id}\x00{seq}")
            record = self.get(record_id.decode()) if record_id is not None else None
            if record is None:
                return
            if self._bucket.get(key) is None and not record.final:
                # A batch deletes before it sets: the record's end comes right after.
                ending.add(record.id)
                return
            changed(record)

        self._bucket.on_change(on_change, loop)

    def open_for_thing(self, thing_id: str) -> list[Record]:
        """Records not final yet, in the order they arrived."""
        return self._records(self._bucket.values(prefix=f"o\x00{thing_id}\x00"))

    def count_open(self, thing_id: str, at_most: int | None = None) -> int:
        """How many records of the Thing are not final (counting stops at ``at_most``)."""
        keys = self._bucket.keys(prefix=f"o\x00{thing_id}\x00")
        return sum(1 for _ in (keys if at_most is None else islice(keys, at_most)))

    def open_by_status(self) -> dict[str, int]:
        """How many records are open in each state (pending, delivered, running)."""
        counts: dict[str, int] = {}
        for record in self._records(self._bucket.values(prefix="o\x00")):
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts

    def for_thing(self, thing_id: str, name: str | None = None) -> list[Record]:
        """Every retained record of a Thing (of one affordance if named), newest first."""
        ids = self._bucket.values(prefix=f"t\x00{thing_id}\x00", reverse=True)
        records = self._records(ids)
        return [r for r in records if name is None or r.name == name]

    def _records(self, ids: Any) -> list[Record]:
        found = self._bucket.get_many([f"r\x00{i.decode()}" for i in ids])
        return [Record.from_json(raw) for raw in found.values()] if found else []

    def next_expiry(self) -> float | None:
        """When the next open record expires (epoch seconds), or None."""
        for key in self._bucket.keys(prefix="x\x00"):
            return int(key.split("\x00")[1]) / 1000
        return None

    def expire_due(self, now: float | None = None) -> list[Record]:
        """Expire every open record whose time has come; returns them."""
        now = clock.now() if now is None else now
        due = []
        limit = _ms(now)
        for key in self._bucket.keys(prefix="x\x00"):
            _, expires, record_id = key.split("\x00")
            if expires > limit:
                break
            record = self.get(record_id)
            if record is None or record.final:
                continue
            try:
                due.append(self.update(record, EXPIRED, error=expired_problem(record), now=now))
            except Conflict:
                continue  # another node (sharing the store) ended it just now
        return due

    def prune(self, now: float | None = None) -> int:
        """Forget final records that ended more than ``retention`` seconds ago; returns
        how many."""
        now = clock.now() if now is None else now
        limit = _ms(now - self.retention)
        deletes = []
        count = 0
        for key in self._bucket.keys(prefix="d\x00"):
            _, ended, record_id = key.split("\x00")
            if ended > limit:
                break
            record = self.get(record_id)
            deletes.append(key)
            if record is not None:
                deletes += [f"r\x00{record_id}", _thing_key(record)]
                count += 1
        if deletes:
            self._bucket.write_batches(delete=deletes)
        return count

    def cancel_all_for_thing(self, thing_id: str, reason: str) -> list[Record]:
        """Cancel every open record of a Thing (its TD was deleted)."""
        problem = {"type": "about:blank", "title": "Gone", "status": 410, "detail": reason}
        return [
            self.update(record, CANCELLED, error=problem)
            for record in self.open_for_thing(thing_id)
        ]


def expired_problem(record: Record) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": "Request Timeout",
        "status": 408,
        "detail": f"{record.operation} {record.name!r} on {record.thing_id} expired at "
        f"{clock.rfc3339(record.expires)} before its agent completed it",
    }
