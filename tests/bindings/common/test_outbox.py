"""The outbox pump (bindings/common/outbox.py) over a real connection outbox: in order,
then the binding's goodbye with the reason; the same overflow policy for every binding."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bindings.common.outbox import QUIET, Stalled, drain_batches, pump, pump_batches
from core.connection import OVERFLOW, Connection
from tests.waiting import until
from vocabulary.envelope import Message
from vocabulary.identity import Client

pytestmark = pytest.mark.timeout(10)


def connection(max_notifications: int = 1000) -> Connection:
    return Connection(Client("vera", "viewer"), "test", max_notifications=max_notifications)


def note(n: int) -> Message:
    return Message("notification", "observeproperty", "urn:x", "on", value=n)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[int | None, object]] = []
        self.ended: list[str] = []

    async def send(self, seq, message) -> None:
        self.sent.append((seq, message))

    async def end(self, reason: str) -> None:
        self.ended.append(reason)


async def test_everything_queued_goes_out_in_order_before_the_goodbye():
    outbox, wire = connection(), Wire()
    outbox.send({"messageType": "response"})
    outbox.notify(1, note(1))
    outbox.notify(2, note(2))
    outbox.close("client removed")

    await pump(outbox, wire.send, wire.end)
    assert [seq for seq, _ in wire.sent] == [None, 1, 2]
    assert wire.ended == ["client removed"]


async def test_a_client_that_falls_behind_loses_its_backlog_and_is_ended_with_overflow():
    outbox, wire = connection(max_notifications=3), Wire()
    for seq in range(1, 5):  # one more than it may hold
        outbox.notify(seq, note(seq))

    await pump(outbox, wire.send, wire.end)
    assert wire.sent == [] and wire.ended == [OVERFLOW]


async def test_the_pump_waits_for_what_comes_later():
    outbox, wire = connection(), Wire()
    writer = asyncio.create_task(pump(outbox, wire.send, wire.end))
    outbox.notify(1, note(1))
    await until(lambda: wire.sent)
    outbox.close("disconnected")
    await writer
    assert [seq for seq, _ in wire.sent] == [1] and wire.ended == ["disconnected"]
    assert "disconnected" in QUIET


async def test_a_client_that_stopped_reading_is_closed_with_overflow_and_no_goodbye():
    outbox, wire = connection(), Wire()

    async def stalled(seq, message) -> None:
        raise Stalled

    outbox.notify(1, note(1))
    outbox.notify(2, note(2))
    await pump(outbox, stalled, wire.end)
    assert outbox.closed_reason == OVERFLOW and outbox.pending() == 0
    assert wire.ended == []


async def test_drain_batches_yields_what_is_ready_until_the_connection_closes():
    outbox = connection(max_notifications=3)
    outbox.notify(1, note(1))
    outbox.notify(2, note(2))
    outbox.close("hub stopping")
    async with contextlib.aclosing(drain_batches(outbox)) as batches:
        assert [[seq for seq, _ in batch] async for batch in batches] == [[1, 2]]
    assert outbox.closed_reason == "hub stopping"


# -- batches: what is ready goes out together, in the order it was queued ------------------


class BatchWire(Wire):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int | None]] = []

    async def send_batch(self, batch) -> None:
        self.batches.append([seq for seq, _ in batch])
        self.sent.extend(batch)


async def test_what_is_ready_goes_out_as_one_batch_in_order_responses_included():
    outbox, wire = connection(), BatchWire()
    outbox.notify(1, note(1))
    outbox.send({"messageType": "response"})
    outbox.notify(2, note(2))
    outbox.close("client removed")

    await pump_batches(outbox, wire.send_batch, wire.end)
    assert wire.batches == [[1, None, 2]]
    assert wire.ended == ["client removed"]


async def test_batches_keep_the_order_while_more_comes_during_a_send():
    outbox, wire = connection(), BatchWire()
    sending = asyncio.Event()

    async def slow_send(batch) -> None:
        await wire.send_batch(batch)
        sending.set()
        await asyncio.sleep(0)  # a write that yields: more is queued meanwhile

    writer = asyncio.create_task(pump_batches(outbox, slow_send, wire.end))
    outbox.notify(1, note(1))
    await sending.wait()
    for seq in range(2, 6):  # queued while the first batch is on its way
        outbox.notify(seq, note(seq))
    await until(lambda: len(wire.sent) == 5)
    outbox.close("disconnected")
    await writer
    assert [seq for seq, _ in wire.sent] == [1, 2, 3, 4, 5]
    assert wire.batches[0] == [1] and [2, 3, 4, 5] in wire.batches
    assert wire.ended == ["disconnected"]


async def test_a_batch_writer_that_falls_behind_is_ended_with_overflow():
    outbox, wire = connection(max_notifications=3), BatchWire()
    for seq in range(1, 5):
        outbox.notify(seq, note(seq))

    await pump_batches(outbox, wire.send_batch, wire.end)
    assert wire.batches == [] and wire.ended == [OVERFLOW]


async def test_a_stalled_batch_writer_is_closed_with_overflow_and_no_goodbye():
    outbox, wire = connection(), BatchWire()

    async def stalled(batch) -> None:
        raise Stalled

    outbox.notify(1, note(1))
    await pump_batches(outbox, stalled, wire.end)
    assert outbox.closed_reason == OVERFLOW and outbox.pending() == 0
    assert wire.ended == []


def test_chunks_keep_the_order_and_end_a_group_at_the_limit():
    from bindings.common.outbox import chunks

    blocks = [b"a" * 3, b"b" * 3, b"c" * 10, b"d", b"e" * 2]
    assert list(chunks(blocks, limit=6)) == [[b"aaa", b"bbb"], [b"c" * 10], [b"d", b"ee"]]
    assert list(chunks([], limit=6)) == []
