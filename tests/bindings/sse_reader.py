"""Server-sent events off an aiohttp response, read the way an EventSource does, one
event at a time with every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
import json


class SseReader:
    """Each event is {"event", "data", "id"} (``event`` is "message" when unnamed). A
    block without data is not an event, but its id still becomes ``last_id`` (what a
    client would send as Last-Event-ID)."""

    def __init__(self, response) -> None:
        self.response = response
        self.last_id: str | None = None

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
                    if "id" in fields:
                        self.last_id = fields["id"]
                    if data:
                        return {
                            "event": fields.get("event") or "message",
                            "id": fields.get("id"),
                            "data": json.loads("\n".join(data)),
                        }
                    fields, data = {}, []
                    continue
                if line.startswith(":"):
                    continue  # a comment (ping)
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                elif name in ("event", "id"):
                    fields[name] = value

    async def nothing_within(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            event = await self.next(seconds)
            raise AssertionError(f"unexpected event {event}")
