"""Value history in cluster mode: one JetStream stream on the store's servers
(docs/history.md, "Cluster mode").

The stream ``HISTORY_<prefix>`` holds every series, one subject per series:
``<prefix>.history.<thing>.<p|e>.<name>`` (thing and name as one base64url token each,
as the store's keys are). A message is the value's time in epoch milliseconds (13
digits) followed by the JSON of the value. The server applies the hub-wide retention
to every subject: ``max_age`` and ``max_msgs_per_subject``. A Thing's own retention,
where it is stricter, is applied by ``prune`` (a purge of the subject and of its
rollups before the first value kept, in the background).

Beside the values, the stream holds per-minute rollups of each series
(``<prefix>.rollup.<thing>.<p|e>.<name>``, history_rollup.py). A writer sums the values
it writes per series and minute in memory and publishes a minute's summary at its first
flush after the minute has ended on the hub's clock (so about one rollup a series and
minute; values that come later for that minute make another one), and every minute's at
a clean stop (``close``). A rollup message follows at least one new value, so the
stream's count and age limits keep a series' rollups at least as long as its values.
A query reads the raw values of the minutes whose rollups may not be out yet
(``unsettled_from``).

Values are not held in memory: reads go to the server with batched direct gets (ADR-31).
A series is in arrival order; a time bound is found by a binary search over the
subject's sequence numbers (so a query's range assumes that a series' times grow in
arrival order, which holds when the hub stamps them). Newest first is read forwards
in windows below the last position, each window then reversed.

The cursor of a page is the key suffix as on LevelDB, with the stream sequence number
in place of the key's own: ``<ms>\\0<seq, 16 hex>``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import nats.errors
import nats.js.errors
import orjson
from nats.js import api

from bucketstore import Bucket
from bucketstore.errors import BucketStoreError
from bucketstore.jetstream import MAX_KEY_BYTES, JetStreamStore, subject_text, subject_token
from vocabulary import clock

from . import history_rollup as rollup
from .history import MAX_PENDING, MAX_TIME, History, HistoryConfig, Retention

log = logging.getLogger("wothub.history")

BATCH = 1000  # messages asked for in one batched direct get
FIRST_WINDOW = 256  # stream sequences read at first when reading newest first
PRUNE_SUBJECTS = 100  # series looked at by one pruning step at most
# A repair after a writer died (docs/history.md): the minutes from this long before it
# was last alive to this long after, and the values it reads at most.
REPAIR_BEFORE = 2 * rollup.MINUTE
REPAIR_AFTER = rollup.MINUTE
REPAIR_VALUES = 2_000_000
REPAIR_BATCH = 10_000  # full rollups published at once


def _limits_text(retention: Retention) -> str:
    age = f"{retention.max_age:g} s" if retention.max_age else "for ever"
    count = f"at most {retention.max_count} a series" if retention.max_count else "no count limit"
    return f"({age}, {count})"


class JetStreamHistory(History):
    """The History API on a JetStream stream of ``store`` (settings stay a bucket)."""

    seeks = False  # history_query downsamples while scanning, not seeking per bucket

    def __init__(self, store: JetStreamStore, settings: Bucket, config: HistoryConfig | None):
        super().__init__(None, settings, config)  # type: ignore[arg-type]  # no bucket
        self._store = store
        self.stream = f"HISTORY_{store.prefix}"
        self._root = f"{store.prefix}.history"
        self._rollup_root = f"{store.prefix}.rollup"
        # Per minute (its start, ms), the rollups of the values written in it and not
        # published yet, by rollup subject (each one a segment of its own).
        self._open: dict[int, dict[str, list[Any]]] = {}
        # Per rollup subject, the newest minute published there by this writer: a value
        # of that minute or an earlier one comes late, and its rollup goes to the
        # series' late subject, so the rollup subject stays in time order.
        self._published: dict[str, int] = {}
        self.now: Callable[[], float] = clock.now  # the hub's clock (the bench simulates one)
        self._writer = secrets.token_hex(4)  # segments of this writer: <writer><n>
        self._segments = itertools.count()
        store.call(self._create, "creating the history stream")

    async def _create(self) -> None:
        retention = self.config.retention
        config = api.StreamConfig(
            name=self.stream,
            subjects=[self._root + ".>", self._rollup_root + ".>"],
            max_msgs_per_subject=retention.max_count or -1,
            max_age=retention.max_age or 0.0,  # seconds (nats-py sends nanoseconds)
            num_replicas=self._store.replicas,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            allow_direct=True,
            max_msgs=-1,
            max_bytes=-1,
        )
        js = self._store.connection.jetstream(timeout=self._store.timeout)
        try:
            await js.add_stream(config)  # new, or the same in every field
        except nats.js.errors.APIError as exc:
            if exc.err_code != 10058:  # it exists with another configuration
                raise
            stream = (await js.stream_info(self.stream)).config
            kept = Retention(stream.max_age or 0.0, max(0, stream.max_msgs_per_subject or 0))
            if kept == retention or self._limits_changed():
                if kept != retention:
                    log.info(
                        "history: this node's [history] limits changed since its last "
                        "start: the history stream now keeps values %s (it kept them %s)",
                        _limits_text(retention),
                        _limits_text(kept),
                    )
                await js.update_stream(config)
            else:
                log.warning(
                    "history: the history stream keeps values %s, this node's [history] "
                    "says %s; the stream's limits stay (a node changes them only when its "
                    "own [history] limits changed since its last start; give every node "
                    "the same)",
                    _limits_text(kept),
                    _limits_text(retention),
                )
                self.config = dataclasses.replace(self.config, retention=kept)
        self._note_limits(retention)

    def _limits_changed(self) -> bool:
        """Whether this node's [history] limits differ from those at its last start (as
        noted in ``limits_file``); without a file, a node remembers nothing and its
        limits apply, with one, a node that noted none yet (a new one) keeps the
        stream's."""
        path = self.config.limits_file
        if path is None:
            return True
        try:
            noted = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return False
        retention = self.config.retention
        return bool(noted != [retention.max_age, retention.max_count])

    def _note_limits(self, retention: Retention) -> None:
        path = self.config.limits_file
        if path is not None:
            partial_path = path.with_suffix(".tmp")
            partial_path.write_bytes(orjson.dumps([retention.max_age, retention.max_count]))
            partial_path.replace(path)

    # -- names ---------------------------------------------------------------------------

    def subject(self, prefix: str) -> str:
        """The subject of the series of a ``series_prefix``."""
        thing_id, kind, name, _ = prefix.split("\0")
        return f"{self._root}.{subject_token(thing_id)}.{kind}.{subject_token(name)}"

    def rollup_subject(self, subject: str) -> str:
        """The subject of the per-minute rollups of a series' subject."""
        return self._rollup_root + subject[len(self._root) :]

    @staticmethod
    def late_subject(rollup_subject: str) -> str:
        """The subject of the rollups of minutes whose values came after this writer
        had published a later minute (or that minute): in the order they came."""
        return rollup_subject + ".late"

    # -- appending -----------------------------------------------------------------------

    def flush(self) -> int:
        """Publish the values appended since the last flush, all at once, then wait for
        their acknowledgements; the ones not acknowledged stay for the next try. Then
        the rollups of the minutes that have ended."""
        if not self._pending:
            self._publish_rollups(self._ended())
            return 0
        pending, self._pending = self._pending, []
        messages: list[tuple[int, str, bytes]] = []  # (index in pending, subject, payload)
        subjects: dict[tuple[str, str, str], str] = {}
        millis, dumps, largest = self._millis, orjson.dumps, self._store.max_value
        last_stamp, stamp = "", b""
        for index, (thing_id, kind, name, timestamp, value) in enumerate(pending):
            subject = subjects.get((thing_id, kind, name))
            if subject is None:
                subject = self.subject(f"{thing_id}\0{kind}\0{name}\0")
                subjects[thing_id, kind, name] = subject
            if timestamp != last_stamp:
                last_stamp, stamp = timestamp, b"%013d" % millis(timestamp)
            payload = stamp + dumps(value)
            if len(subject) > MAX_KEY_BYTES or len(payload) > largest:
                log.warning("history: a value of %s/%s is too large to keep", thing_id, name)
                continue
            messages.append((index, subject, payload))
        acked, error = self._store.call(lambda: self._publish(messages), "writing history")
        unacked = [pending[i] for i, _, _ in messages if i not in acked]
        if unacked:  # kept for the next try, as when the store refuses a batch
            kept = unacked + self._pending
            self.dropped += max(0, len(kept) - MAX_PENDING)
            self._pending = kept[-MAX_PENDING:]
        rollup_subjects: dict[str, str] = {}
        for index, subject, payload in messages:
            if index in acked:
                rollup_subject = rollup_subjects.get(subject)
                if rollup_subject is None:
                    rollup_subject = rollup_subjects[subject] = self.rollup_subject(subject)
                self._roll(rollup_subject, int(payload[:13]), pending[index][4])
        self.counters.written += len(acked)
        if error:
            raise BucketStoreError(f"history: {len(unacked)} values not written: {error}")
        self._publish_rollups(self._ended())
        return len(acked)

    def close(self) -> None:
        """A clean stop: the values still pending, then the rollups of every minute, the
        ones still filling too (the next writer's rollups of those minutes add up)."""
        super().close()
        self.flush()
        self._publish_rollups(MAX_TIME)

    def _roll(self, rollup_subject: str, millis: int, value: Any) -> None:
        """A written value into the rollup of its series and minute (a new segment when
        that minute has none open here)."""
        minute = millis - millis % rollup.MINUTE
        if minute <= self._published.get(rollup_subject, -1):
            rollup_subject = self.late_subject(rollup_subject)
        states = self._open.get(minute)
        if states is None:
            states = self._open[minute] = {}
        state = states.get(rollup_subject)
        if state is None:
            state = states[rollup_subject] = rollup.new_state(
                f"{self._writer}{next(self._segments)}"
            )
        rollup.add(state, millis, value)

    def _ended(self) -> int:
        """The start of the last minute that has ended on the hub's clock."""
        now = int(self.now() * 1000)
        return now - now % rollup.MINUTE - rollup.MINUTE

    def unsettled_from(self) -> int:
        """The start of the first minute whose rollups may not be in the stream yet, so
        that a query reads its values instead: the minute before the current one. Every
        writer publishes a minute's rollups at its first flush after the minute ended
        (``router.flush_interval``, 1 s, later); that leaves a minute for slow flushes
        and for clocks of nodes that differ a little."""
        return self._ended() - rollup.MINUTE

    def _publish_rollups(self, last: int) -> None:
        """Publish the rollups of the minutes up to the one starting at ``last``, in time
        order (a series' rollups stay in time order in the stream); those not
        acknowledged stay for the next flush (the same segment again: the last one of a
        segment is the one read)."""
        minutes = sorted(minute for minute in self._open if minute <= last)
        if not minutes:
            return
        items = [(m, s, state) for m in minutes for s, state in self._open.pop(m).items()]
        messages = [
            (i, s, b"%013d" % minute + orjson.dumps(state))
            for i, (minute, s, state) in enumerate(items)
        ]
        acked, error = self._store.call(lambda: self._publish(messages), "writing rollups")
        published = self._published
        for i, (minute, subject, _) in enumerate(items):
            if i in acked and not subject.endswith(".late"):  # items are in time order
                published[subject] = minute
        for i, (minute, subject, state) in enumerate(items):
            if i not in acked:  # late now if a later minute of its series went out
                if minute <= published.get(subject, -1):
                    subject = self.late_subject(subject)
                self._open.setdefault(minute, {})[subject] = state
        if error:
            raise BucketStoreError(f"history: {len(items) - len(acked)} rollups: {error}")

    async def _publish(self, messages: list[tuple[int, str, bytes]]) -> tuple[set[int], str]:
        """Publish every message with a reply subject of its own; the indexes of those
        the stream acknowledged, and the first refusal ("" when none)."""
        nc = self._store.connection
        inbox = nc.new_inbox()
        acked: set[int] = set()
        errors: list[str] = []
        done = asyncio.Event()
        if not messages:
            return acked, ""

        async def on_ack(msg: Any) -> None:
            index = int(msg.subject[len(inbox) + 1 :])
            if msg.headers and msg.headers.get("Status") == "503":
                errors.append("no stream answered")
            elif b'"error"' in msg.data:
                errors.append(orjson.loads(msg.data)["error"].get("description", "refused"))
            else:
                acked.add(index)
            if len(acked) + len(errors) == len(messages):
                done.set()

        sub = await nc.subscribe(inbox + ".*", cb=on_ack)
        try:
            for index, subject, payload in messages:
                await nc.publish(subject, payload, reply=f"{inbox}.{index}")
            await nc.flush()
            try:
                await asyncio.wait_for(done.wait(), self._store.timeout)
            except TimeoutError:
                errors.append(f"no acknowledgement within {self._store.timeout} s")
            return acked, (errors[0] if errors else "")
        finally:
            await sub.unsubscribe()

    # -- reading ---------------------------------------------------------------------------

    def time_bounds(self, prefix: str) -> tuple[int, int] | None:
        """The times (ms) of the series' first and last values kept; None when none."""
        subject = self.subject(prefix)

        async def ends() -> tuple[int, int] | None:
            last = await self._get({"last_by_subj": subject})
            first = await self._get({"seq": 1, "next_by_subj": subject})
            if last is None or first is None:
                return None
            return int(first[1][:13]), int(last[1][:13])

        return self._store.call(ends, "reading history")

    def rollups(self, prefix: str, lower: int, below: int) -> list[tuple[int, list[Any]]]:
        """(minute, rollup) of the series for the minutes from ``lower`` and below
        ``below`` (whole minutes, ms), in time order, each minute's segments merged: from
        the rollup subject (in time order) and its late subject (read whole: rare)."""
        subject = self.rollup_subject(self.subject(prefix))
        minutes: dict[int, list[tuple[int, list[Any]]]] = {}  # (stream sequence, rollup)
        self._read_rollups(subject, lower, below, minutes, in_order=True)
        self._read_rollups(self.late_subject(subject), lower, below, minutes, in_order=False)
        return [(minute, rollup.segments_merged(minutes[minute])) for minute in sorted(minutes)]

    def _read_rollups(
        self,
        subject: str,
        lower: int,
        below: int,
        minutes: dict[int, list[tuple[int, list[Any]]]],
        *,
        in_order: bool,
    ) -> None:
        call = self._store.call
        first = call(lambda: self._get({"seq": 1, "next_by_subj": subject}), "reading rollups")
        if first is None:
            return
        seq = first[0]
        if in_order and int(first[1][:13]) < lower:  # a search only when the range starts later
            seq = call(lambda: self._first_from(subject, lower), "finding a time in history")
        while True:
            batch = call(partial(self._batch, subject, seq, BATCH), "reading rollups")
            for seq_m, payload in batch:
                minute = int(payload[:13])
                if minute >= below and in_order:
                    return
                if lower <= minute < below:
                    minutes.setdefault(minute, []).append((seq_m, orjson.loads(payload[13:])))
            if len(batch) < BATCH:
                return
            seq = batch[-1][0] + 1

    def snapshot(self) -> Iterator[tuple[str, str, bytes]]:
        """Every value in the stream now, as items of a single hub's ``history`` bucket
        (the sequence part of a key is the stream's), read lazily in stream order up to
        its last message at this call: for a backup (hub/backup.py). The rollups are
        not in it: adopting the values into a cluster makes them again."""

        async def last_sequence() -> int:
            js = self._store.connection.jetstream(timeout=self._store.timeout)
            return (await js.stream_info(self.stream)).state.last_seq

        last = self._store.call(last_sequence, "reading the history stream")
        return self._items(last)

    def _items(self, last: int) -> Iterator[tuple[str, str, bytes]]:
        wildcard, skip, seq = self._root + ".>", len(self._root) + 1, 1
        while seq <= last:
            subjects: list[str] = []
            read = partial(self._batch, wildcard, seq, BATCH, subjects)
            batch = self._store.call(read, "reading the history stream")
            for (seq_m, payload), subject in zip(batch, subjects, strict=True):
                if seq_m > last:
                    return
                thing, kind, name = subject[skip:].split(".")
                ms = payload[:13].decode()
                key = f"{subject_text(thing)}\0{kind}\0{subject_text(name)}\0{ms}\0{seq_m:016x}"
                yield "history", key, payload[13:]
            if len(batch) < BATCH:
                return
            seq = batch[-1][0] + 1

    def scan(
        self,
        prefix: str,
        lower: int,
        upper: int,
        *,
        newest_first: bool,
        after: str | None = None,
    ) -> Iterator[tuple[str, bytes]]:
        """As ``History.scan``; the key's sequence part is the stream's."""
        subject = self.subject(prefix)
        after_seq = None
        if after is not None:  # "<ms>" (a bucket's boundary) or "<ms>\0<seq>"
            ms, _, seq = after.partition("\0")
            if seq:
                after_seq = int(seq, 16)
            elif newest_first:
                upper = min(upper, int(ms) - 1)
            else:
                lower = max(lower, int(ms))
        if lower > upper:
            return iter(())
        if newest_first:
            return self._newest_first(prefix, subject, lower, upper, after_seq)
        return self._oldest_first(prefix, subject, lower, upper, after_seq)

    def _oldest_first(
        self, prefix: str, subject: str, lower: int, upper: int, after_seq: int | None
    ) -> Iterator[tuple[str, bytes]]:
        call = self._store.call
        if lower > 0:
            seq = call(lambda: self._first_from(subject, lower), "finding a time in history")
        else:
            seq = 1
        if after_seq is not None:
            seq = max(seq, after_seq + 1)
        size = FIRST_WINDOW
        while True:
            batch = call(partial(self._batch, subject, seq, size), "reading history")
            for seq_m, payload in batch:
                ms = int(payload[:13])
                if ms > upper:
                    return
                if ms >= lower:
                    yield f"{prefix}{ms:013d}\0{seq_m:016x}", payload[13:]
            if len(batch) < size:
                return
            seq = batch[-1][0] + 1
            size = BATCH

    def _newest_first(
        self, prefix: str, subject: str, lower: int, upper: int, after_seq: int | None
    ) -> Iterator[tuple[str, bytes]]:
        """Windows of stream sequences below ``below``, each read forwards and reversed;
        a window grows until it holds a few hundred of the series' values."""
        call = self._store.call
        ends = call(lambda: self._ends(subject), "reading history")
        if ends is None:
            return
        first, last = ends
        below = last + 1
        if upper < MAX_TIME:
            below = call(lambda: self._first_from(subject, upper + 1), "finding a time in history")
        if after_seq is not None:
            below = min(below, after_seq)
        window = FIRST_WINDOW
        while below > first:
            start = max(first, below - window)
            found = call(partial(self._between, subject, start, below), "reading history")
            for seq_m, payload in reversed(found):
                ms = int(payload[:13])
                if ms < lower:
                    return
                if ms <= upper:
                    yield f"{prefix}{ms:013d}\0{seq_m:016x}", payload[13:]
            below = start
            window = min(window * 8, max(window, window * 512 // max(1, len(found))))

    async def _batch(
        self, subject: str, seq: int, size: int, subjects: list[str] | None = None
    ) -> list[tuple[int, bytes]]:
        """Up to ``size`` messages of ``subject`` (a wildcard too) from stream sequence
        ``seq`` on: (sequence, payload), in order; each one's subject added to
        ``subjects`` when given."""
        nc = self._store.connection
        inbox = nc.new_inbox()
        out: list[tuple[int, bytes]] = []
        done = asyncio.get_running_loop().create_future()

        async def on_message(msg: Any) -> None:
            headers = msg.headers or {}
            status = headers.get("Status")
            if status is None:
                out.append((int(headers["Nats-Sequence"]), msg.data))
                if subjects is not None:
                    subjects.append(headers["Nats-Subject"])
                if len(out) < size:
                    return
            elif status not in ("204", "404") and not done.done():  # 204: end of batch
                done.set_exception(
                    nats.errors.Error(f"direct get: {status} {headers.get('Description', '')}")
                )
            if not done.done():
                done.set_result(None)

        sub = await nc.subscribe(inbox, cb=on_message)
        try:
            request = {"seq": seq, "next_by_subj": subject, "batch": size}
            await nc.publish(f"$JS.API.DIRECT.GET.{self.stream}", orjson.dumps(request), inbox)
            try:
                await asyncio.wait_for(done, self._store.timeout)
            except TimeoutError:
                raise nats.errors.TimeoutError from None
            return out
        finally:
            await sub.unsubscribe()

    async def _between(self, subject: str, start: int, below: int) -> list[tuple[int, bytes]]:
        """The messages of ``subject`` with sequences from ``start`` and below ``below``."""
        out: list[tuple[int, bytes]] = []
        while True:
            batch = await self._batch(subject, start, BATCH)
            out += [m for m in batch if m[0] < below]
            if len(batch) < BATCH or batch[-1][0] >= below - 1:
                return out
            start = batch[-1][0] + 1

    async def _get(self, request: dict[str, Any]) -> tuple[int, bytes] | None:
        """One direct get: (sequence, payload), None when there is no such message."""
        reply = await self._store.connection.request(
            f"$JS.API.DIRECT.GET.{self.stream}", orjson.dumps(request), self._store.timeout
        )
        headers = reply.headers or {}
        if headers.get("Status") == "404":
            return None
        if "Status" in headers:
            raise nats.errors.Error(f"direct get: {headers['Status']} {headers.get('Description')}")
        return int(headers["Nats-Sequence"]), reply.data

    async def _ends(self, subject: str) -> tuple[int, int] | None:
        """The first and last stream sequence of ``subject``; None when it has none."""
        last = await self._get({"last_by_subj": subject})
        if last is None:
            return None
        first = await self._get({"seq": 1, "next_by_subj": subject})
        return (first[0] if first else last[0]), last[0]

    async def _first_from(self, subject: str, millis: int) -> int:
        """The sequence of the series' first value at ``millis`` or later (one past the
        last value when there is none): a binary search over the sequences."""
        ends = await self._ends(subject)
        if ends is None:
            return 1
        low, high = ends
        found = high + 1
        while low <= high:
            middle = (low + high) // 2
            got = await self._get({"seq": middle, "next_by_subj": subject})
            if got is None or got[0] > high:  # none from the middle to high
                high = middle - 1
            elif int(got[1][:13]) >= millis:
                found, high = got[0], middle - 1
            else:
                low = got[0] + 1
        return found

    # -- repair after a writer died ------------------------------------------------------

    def repair_window(self, last_alive: float) -> tuple[int, int]:
        """The first and last minute (starts, ms) whose rollups a writer last alive at
        ``last_alive`` (the hub's clock, s) may not have published: it publishes a
        minute within about a minute after it ended, so from two minutes before to a
        minute after (its last flushes)."""
        millis = round(last_alive * 1000)
        first, last = millis - REPAIR_BEFORE, millis + REPAIR_AFTER
        return first - first % rollup.MINUTE, last - last % rollup.MINUTE

    def repair_settled_at(self, last_alive: float) -> float:
        """When (the hub's clock, s) every minute of the window is settled: a query reads
        their rollups, the other writers' are out, and a repair can be made."""
        return (self.repair_window(last_alive)[1] + 3 * rollup.MINUTE) / 1000

    def repair(self, last_alive: float) -> dict[str, int]:
        """Publish a full segment of each (series, minute) of the window of a writer that
        died without a clean stop, made from all the minute's values (it replaces the
        segments before it). The series are those with values the server stored from
        the window's start to the writer's death (a minute more on each side). At most
        ``REPAIR_VALUES`` values read to find them, and as many (give or take a series)
        to sum them. Idempotent: a second repair publishes the same summaries. What was
        repaired (also logged)."""
        first, last = self.repair_window(last_alive)
        if last >= self.unsettled_from():
            raise ValueError("history: a repair waits until its minutes are settled")
        # The dead writer's values of the window were stored from its first minute to
        # its death; a minute more on each side for clocks that differ.
        since, until = (first - rollup.MINUTE) / 1000, last_alive + rollup.MINUTE / 1000
        find = partial(self._subjects_stored, since, until, REPAIR_VALUES)
        subjects, scanned = self._store.call(find, "finding the series to repair")
        cut = scanned >= REPAIR_VALUES
        series = rollups = summed = 0
        errors: list[str] = []
        messages: list[tuple[int, str, bytes]] = []

        def publish() -> None:
            nonlocal rollups
            acked, error = self._store.call(partial(self._publish, messages), "repairing rollups")
            rollups += len(acked)
            errors.extend([error] if error else [])
            messages.clear()

        for subject in sorted(subjects):
            if summed >= REPAIR_VALUES:
                cut = True
                break
            states = self._minutes_summed(subject, first, last + rollup.MINUTE - 1)
            summed += sum(state[1] for state in states.values())
            late = self.late_subject(self.rollup_subject(subject))
            for minute, state in sorted(states.items()):
                messages.append((len(messages), late, b"%013d" % minute + orjson.dumps(state)))
            series += 1
            if len(messages) >= REPAIR_BATCH:
                publish()
        publish()
        log.warning(
            "history: repaired the rollups of %s to %s (a writer died): %d full rollups of "
            "%d series, from %d values%s%s",
            clock.rfc3339(first / 1000),
            clock.rfc3339((last + rollup.MINUTE) / 1000),
            rollups,
            series,
            summed,
            f"; stopped at {REPAIR_VALUES} values read, the rest not repaired" if cut else "",
            f"; some not written: {errors[0]}" if errors else "",
        )
        return {"series": series, "rollups": rollups, "values": summed, "cut": int(cut)}

    def _minutes_summed(self, subject: str, lower: int, upper: int) -> dict[int, list[Any]]:
        """Minute -> a full segment of the series' values from ``lower`` to ``upper``."""
        thing, kind, name = subject[len(self._root) + 1 :].split(".")
        prefix = f"{subject_text(thing)}\0{kind}\0{subject_text(name)}\0"
        states: dict[int, list[Any]] = {}
        at = len(prefix)
        for key, value in self.scan(prefix, lower, upper, newest_first=False):
            millis = int(key[at : at + 13])
            minute = millis - millis % rollup.MINUTE
            state = states.get(minute)
            if state is None:
                segment = f"{rollup.FULL}{self._writer}{next(self._segments)}"
                state = states[minute] = rollup.new_state(segment)
            rollup.add(state, millis, orjson.loads(value))
        return states

    async def _subjects_stored(self, since: float, until: float, most: int) -> tuple[set[str], int]:
        """The subjects of the values the server stored from ``since`` to ``until``
        (epoch s), and how many values were read (at most about ``most``)."""
        wildcard = self._root + ".>"
        start = await self._get({"start_time": clock.rfc3339(since), "next_by_subj": wildcard})
        if start is None:
            return set(), 0
        end = await self._get({"start_time": clock.rfc3339(until), "next_by_subj": wildcard})
        below, seq = (end[0] if end else MAX_TIME), start[0]
        subjects: set[str] = set()
        read = 0
        while seq < below and read < most:
            found: list[str] = []
            batch = await self._batch(wildcard, seq, BATCH, found)
            for (seq_m, _), subject in zip(batch, found, strict=True):
                if seq_m < below:
                    subjects.add(subject)
                    read += 1
            if len(batch) < BATCH:
                break
            seq = batch[-1][0] + 1
        return subjects, read

    # -- retention -------------------------------------------------------------------------

    def forget(self, thing_id: str) -> None:
        """A Thing was removed: purge its series (all its subjects) now; on failure the
        pruning step tries again."""
        super().forget(thing_id)
        rollups = f"{self._rollup_root}.{subject_token(thing_id)}."
        for states in self._open.values():
            for subject in [s for s in states if s.startswith(rollups)]:
                del states[subject]
        for subject in [s for s in self._published if s.startswith(rollups)]:
            del self._published[subject]
        try:
            self._purge_thing(thing_id)
        except Exception as exc:
            log.warning("history: could not purge %s now (%s); pruning will", thing_id, exc)
        else:
            del self._forgotten[thing_id]

    def _purge_thing(self, thing_id: str) -> None:
        for root in (self._root, self._rollup_root):
            filter_ = f"{root}.{subject_token(thing_id)}.>"
            purge = partial(self._purge, filter_)
            purged = self._store.call(purge, f"purging the history of {thing_id}")
            if root == self._root:
                self.counters.pruned += purged

    async def _purge(self, subject: str, **limits: int) -> int:
        """Purge the messages of ``subject`` (``seq``: those below it; ``keep``: all but
        the newest so many); how many were purged."""
        request = {"filter": subject, **{k: v for k, v in limits.items() if v}}
        reply = await self._store.connection.request(
            f"$JS.API.STREAM.PURGE.{self.stream}", orjson.dumps(request), self._store.timeout
        )
        answer = orjson.loads(reply.data)
        if "error" in answer:
            raise nats.errors.Error(f"purge: {answer['error'].get('description', answer)}")
        return int(answer.get("purged", 0))

    def prune(self, budget: int = 10_000, now: float | None = None) -> int:
        """One step of the sweep of the Things whose own retention is stricter than the
        stream's limits (the server applies those by itself), at most
        ``PRUNE_SUBJECTS`` series; a sweep starts at most every ``sweep_interval``."""
        now = time.time() if now is None else now
        return self._sweep_step(now, PRUNE_SUBJECTS, self._purge_all)[0]

    def _purge_all(self, now: float) -> Iterator[int]:
        for thing_id in list(self._forgotten):
            self._purge_thing(thing_id)
            del self._forgotten[thing_id]
            yield 1
        hub = self.config.retention
        for thing_id in list(self._effective):
            _, own, _ = self.effective(thing_id)
            stricter_age = own.max_age and (not hub.max_age or own.max_age < hub.max_age)
            stricter_count = own.max_count and (not hub.max_count or own.max_count < hub.max_count)
            if not (stricter_age or stricter_count):
                continue
            for subject in self._subjects(thing_id):
                if stricter_count:
                    purge = partial(self._purge, subject, keep=own.max_count)
                    self.counters.pruned += self._store.call(purge, "pruning history")
                if stricter_age:
                    cutoff = min(MAX_TIME, max(0, round((now - own.max_age) * 1000)))
                    purge = partial(self._purge_before, subject, cutoff)
                    self.counters.pruned += self._store.call(purge, "pruning history")
                self._store.call(partial(self._prune_rollups, subject), "pruning rollups")
                yield 1

    async def _purge_before(self, subject: str, millis: int) -> int:
        seq = await self._first_from(subject, millis)
        if seq > 1:
            return await self._purge(subject, seq=seq)  # the sequences below seq
        return 0

    async def _prune_rollups(self, subject: str) -> None:
        """Purge the rollups of the minutes before the series' first value kept (all of
        them when none is): those minutes' values are gone. The first value's own
        minute stays (a query reads that cut minute from the values). The late rollups
        (not in time order) stay until the stream's limits remove them, or none is
        kept; queries start at the first value kept, so they do not count."""
        rollups = self.rollup_subject(subject)
        first = await self._get({"seq": 1, "next_by_subj": subject})
        if first is None:
            await self._purge(rollups)
            await self._purge(self.late_subject(rollups))
            return
        millis = int(first[1][:13])
        await self._purge_before(rollups, millis - millis % rollup.MINUTE)

    def _subjects(self, thing_id: str) -> list[str]:
        """The subjects of a Thing's series that hold values."""
        filter_ = f"{self._root}.{subject_token(thing_id)}.>"

        async def listing() -> list[str]:
            js = self._store.connection.jetstream(timeout=self._store.timeout)
            info = await js.stream_info(self.stream, subjects_filter=filter_)
            return sorted(info.state.subjects or {})

        return self._store.call(listing, f"listing the history of {thing_id}")
