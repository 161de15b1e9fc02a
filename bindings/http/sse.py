"""Notifications as Server-Sent Events, resumable with ``Last-Event-ID``.

Each stream is a router connection that receives no requests: the handler subscribes
it, then ``stream`` replays what the client missed (when ``Last-Event-ID`` names a
notification still in the router's log) and writes every notification the connection
gets until the client goes away. Event ids are ``<epoch>-<sequence>``: the epoch
changes at each hub start, so an id from an earlier run asks for a fresh start.

Every event carries data: a stream opens with a comment, never with an id-only block,
which many SSE clients hand on as an event with empty data (a JSON decoder then fails).
The id rides on each real event, so a client resumes from the last one it saw.

The notifications ready at once go out as one chunk (one write, not one each), and an
event whose data is the notification's bare value is encoded once for every stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from bindings.common.encoded import EncodeCache
from bindings.common.outbox import chunks, drain_batches
from core.connection import OVERFLOW, Connection
from core.contract import Core
from vocabulary.envelope import Message
from vocabulary.problems import ServiceUnavailable

# What a notification becomes on one stream: (event name, JSON data), or None to skip.
Render = Callable[[Message], tuple[str, Any] | None]
PING_SECONDS = 15
# Sent when Last-Event-ID is older than the log (or from another run): the client must
# read the current state again, since some notifications are lost to it.
RESYNC = "resync"
OPENED = "stream open"
# Streams that send a notification's bare value (property and event streams) share
# its encoding.
_encoded = EncodeCache()


def stream(
    router: Core,
    connection: Connection,
    render: Render,
    last_event_id: str | None,
    streams: set[Connection],
) -> EventSourceResponse:
    """``streams`` holds the open ones, so the hub can end them when it stops."""
    missed_some = last_event_id is not None and not _replay(router, connection, last_event_id)
    epoch = router.epoch

    def event(seq: int | None, message: Message) -> bytes | None:
        rendered = render(message)
        if rendered is None:
            return None
        name, data = rendered
        event_id = f"{epoch}-{seq}"
        if data is message.value:  # the bare value: the same block on every stream
            return _encoded.get(
                message,
                f"sse {event_id} {name}",
                lambda m: ServerSentEvent(_encoded.value_text(m), event=name, id=event_id).encode(),
            )
        return ServerSentEvent(orjson.dumps(data).decode(), event=name, id=event_id).encode()

    async def events() -> AsyncIterator[ServerSentEvent | bytes]:
        streams.add(connection)
        try:
            # Sent at once, so the client sees the stream open (headers and a first byte).
            yield ServerSentEvent(comment=OPENED)
            if missed_some:
                detail = "some notifications are no longer available; read the state again"
                yield ServerSentEvent(orjson.dumps({"detail": detail}).decode(), event=RESYNC)
            async with contextlib.aclosing(drain_batches(connection)) as outbox:
                async for batch in outbox:
                    blocks = (event(seq, message) for seq, message in batch)
                    for chunk in chunks(block for block in blocks if block is not None):
                        yield b"".join(chunk)
            if connection.closed_reason == OVERFLOW:
                problem = ServiceUnavailable(
                    "this stream fell too far behind and was closed; reconnect with Last-Event-ID"
                ).to_dict()
                yield ServerSentEvent(orjson.dumps(problem).decode(), event="error")
        finally:
            streams.discard(connection)
            router.disconnect(connection)

    def release() -> None:
        # Also when the client left before the stream started (then the generator's
        # finally never runs); disconnect is idempotent.
        streams.discard(connection)
        router.disconnect(connection)

    return EventSourceResponse(
        events(),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(release),
    )


def _replay(router: Core, connection: Connection, last_event_id: str) -> bool:
    """Queue what the client missed; False when that is no longer possible."""
    epoch, _, seq = last_event_id.strip().rpartition("-")
    if epoch != router.epoch or not seq.isdigit():
        return False
    return router.replay(connection, int(seq))
