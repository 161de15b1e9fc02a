"""Server-sent events off an aiohttp response, read the way an EventSource does, one
event at a time with every wait bounded; ``stream`` opens one."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from tests.support.devices import report
from tests.support.http import STREAM


class SseReader:
    """Each event is {"event", "data", "id"} (``event`` is "message" when unnamed).

    Strict, like the SSE clients that hand every block with fields on as an event and
    decode its data as JSON: a block with an ``id:`` or ``event:`` but no data, or data
    that is not JSON, fails the read. Comments (``:`` lines) are skipped; ``comments``
    keeps them in order."""

    def __init__(self, response) -> None:
        self.response = response
        self.last_id: str | None = None
        self.comments: list[str] = []

    async def next(self, timeout: float = 5.0) -> dict:
        fields: dict[str, str] = {}
        data: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if not data:
                        if fields:
                            raise AssertionError(f"an event without data: {fields}")
                        continue
                    if "id" in fields:
                        self.last_id = fields["id"]
                    return {
                        "event": fields.get("event") or "message",
                        "id": fields.get("id"),
                        "data": json.loads("\n".join(data)),
                    }
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())  # a ping, or the opening
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name in ("event", "id"):
                    fields[name] = value

    async def next_is(self, data, timeout: float = 5.0) -> dict:
        """A barrier, to prove nothing else came: the next event carries ``data``, a marker
        the test caused after whatever must not arrive."""
        event = await self.next(timeout)
        assert event["data"] == data, f"{event} arrived before the marker {data!r}"
        return event

    async def take(self, count: int, timeout: float = 5.0) -> list[dict]:
        return [await self.next(timeout) for _ in range(count)]

    async def nothing_more(self, device, name: str = "brightness", marker=99) -> None:
        """Nothing more came: ``device`` reports ``marker`` and it is the next event."""
        await report(device, name, marker)
        await self.next_is(marker)


@contextlib.asynccontextmanager
async def stream(session, path: str, last_event_id: str | None = None) -> AsyncIterator[SseReader]:
    """An open SSE stream (200, text/event-stream), closed on exit."""
    headers = dict(STREAM)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with asyncio.timeout(5):
        response = await session.get(path, headers=headers)
    try:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/event-stream"
        yield SseReader(response)
    finally:
        response.close()
