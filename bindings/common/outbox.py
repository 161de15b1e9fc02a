"""The outbox pump: the writer of one connection, which puts what the router queued for
the client (core/connection.py) on the wire, in order, until the connection closes.

The overflow policy is the same everywhere: a client that falls ``max_notifications``
behind is closed with reason ``overflow`` (its backlog is dropped), logged here, and the
binding disconnects it the way its protocol can (``end``). A send that raises
``Stalled`` (the client stopped reading altogether) closes the connection the same way,
without a goodbye: nothing more can reach that client.

``pump`` sends one message at a time; ``pump_batches`` (and ``drain_batches``, for a
writer that is a generator) hand over every message ready at once, in order, for a
writer that puts several on the wire together.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from core.connection import OVERFLOW, Connection, ConnectionClosed

log = logging.getLogger("wothub.outbox")

# Why core/router.py closes a connection when nobody needs telling: the client left, or
# the hub is stopping (and ends every connection itself).
QUIET = frozenset({"disconnected", "hub stopping"})

# (sequence number of a notification, or None; the message or an error response dict)
Send = Callable[[int | None, Any], Awaitable[None]]
SendBatch = Callable[[list[tuple[int | None, Any]]], Awaitable[None]]
End = Callable[[str], Awaitable[None]]


class Stalled(Exception):
    """Raised by a send: the client stopped reading."""


async def pump(connection: Connection, send: Send, end: End) -> None:
    """Send every outgoing message until the connection closes; then ``end(reason)``."""
    try:
        while True:
            seq, message = await connection.next()
            await send(seq, message)
    except ConnectionClosed as closed:
        await _ended(connection, closed.reason, end)
    except Stalled:
        _stalled(connection)


async def pump_batches(connection: Connection, send: SendBatch, end: End) -> None:
    """As ``pump``, but ``send`` gets a list: what was ready when the writer woke up."""
    try:
        while True:
            await send(await _ready(connection))
    except ConnectionClosed as closed:
        await _ended(connection, closed.reason, end)
    except Stalled:
        _stalled(connection)


async def _ended(connection: Connection, reason: str, end: End) -> None:
    _log_overflow(connection, reason)
    await end(reason)


def _log_overflow(connection: Connection, reason: str) -> None:
    if reason == OVERFLOW:
        log.warning("%s fell behind; disconnecting it", connection)


def _stalled(connection: Connection) -> None:
    log.warning("%s stopped reading; dropping it", connection)
    connection.close(OVERFLOW)


async def drain_batches(
    connection: Connection,
) -> AsyncGenerator[list[tuple[int | None, Any]], None]:
    """The outgoing messages, what is ready at a time, for a writer that is itself a
    generator (an SSE stream); it ends when the connection closes, ``closed_reason``
    says why."""
    try:
        while True:
            yield await _ready(connection)
    except ConnectionClosed as closed:
        _log_overflow(connection, closed.reason)


async def _ready(connection: Connection) -> list[tuple[int | None, Any]]:
    """The next message (waiting for it) and every one queued behind it."""
    batch = [await connection.next()]
    while connection.pending():  # next() returns at once: nothing can come between
        batch.append(await connection.next())
    return batch


# The most one write of a batch carries: a larger batch goes out in several, so one
# slow consumer's backlog does not become one huge TLS record and buffer.
BATCH_BYTES = 256 * 1024


def chunks(blocks: Iterable[bytes], limit: int = BATCH_BYTES) -> Iterator[list[bytes]]:
    """``blocks`` in order, grouped into lists of about ``limit`` bytes at most (a group
    ends once it reaches the limit; a single larger block is a group of its own)."""
    group: list[bytes] = []
    size = 0
    for block in blocks:
        group.append(block)
        size += len(block)
        if size >= limit:
            yield group
            group, size = [], 0
    if group:
        yield group
