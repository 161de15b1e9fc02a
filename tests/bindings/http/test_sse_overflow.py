"""docs/http.md, SSE streams: a subscriber that falls behind (1000 notifications queued
for it) gets an ``error`` event and is disconnected; it never slows the hub.

The queue's size is the router's ``max_notifications`` (no configuration key sets it):
the test makes it 20 so that a few hundred large values overflow it. The reader is a
real aiohttp stream that stops reading after the opening comment; the values come from
an agent over a real WebSocket, until the hub has given up on the stream."""

from __future__ import annotations

import pytest

from core.connection import OVERFLOW
from tests.support.sse import SseReader
from tests.support.tds import SIGN, sign_td
from tests.support.ws import ask, send, socket
from tests.waiting import until

pytestmark = pytest.mark.timeout(90)

QUEUE = 20
VALUE = "v" * 32_000  # under max_value_bytes: each fills the socket buffers faster
MAX_REPORTS = 2_000  # bounded: far more than the socket buffers and the queue hold


async def test_a_reader_that_falls_behind_gets_an_error_event_and_is_closed(running):
    running.hub.router.max_notifications = QUEUE
    streams = running.hub.http.context.streams
    agent_token = running.add_client("sign-agent", "agent", "agent")
    token = running.add_client("vic", "consumer", "viewer")
    async with socket(running, agent_token) as agent, running.session(token) as viewer:
        registered = await ask(agent, operation="updatething", correlationID="r", input=sign_td())
        assert registered.get("error") is None, registered
        url = f"/things/{SIGN}/properties/text"
        async with viewer.get(url, headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status == 200
            assert await stream.content.readline() == b": stream open\r\n"
            # From here on the reader reads nothing.
            (connection,) = streams  # the stream's router connection
            overflowed = lambda: connection.closed_reason == OVERFLOW  # noqa: E731
            for n in range(MAX_REPORTS):
                report = {"messageType": "notification", "operation": "observeproperty"}
                await send(agent, **report, thingID=SIGN, name="text", value=f"{n}{VALUE}")
                # A round trip after each value lets the stream's writer take it: the
                # queue grows only once the socket is full, as with a slow reader.
                await ask(agent, operation="readthing", thingID=SIGN, correlationID=f"b{n}")
                if overflowed():
                    break
            await until(overflowed)
            # The hub went on meanwhile: the agent is answered at once.
            again = await ask(agent, operation="updatething", correlationID="a", input=sign_td())
            assert again.get("error") is None, again
            # Reading again: what the socket held, then the error event, then the end.
            reader = SseReader(stream)
            seen = []
            while (event := await reader.next(timeout=10))["event"] == "text":
                seen.append(event["data"])
            assert event["event"] == "error", event
            assert event["data"]["status"] == 503
            assert "fell too far behind" in event["data"]["detail"]
            with pytest.raises(EOFError):
                await reader.next(timeout=10)
    assert seen and seen[0].startswith("0v")  # in order, from the first
    assert len(seen) < n + 1  # the backlog was dropped, not delivered
    await until(lambda: not streams)  # the stream's connection is released
