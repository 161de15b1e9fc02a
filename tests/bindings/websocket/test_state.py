"""The twin state document on the WebSocket endpoint: the ``readstate`` request and the
``observestate`` subscription, whose notifications carry a property's state when its
desired or declined write changes (docs/messages.md). Consumers on the ``websockets``
library, the device a WebSocket agent (``running.device``)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.devices import AGENT, answer, register, report
from tests.support.tds import LAMP
from tests.support.ws import receive, send, socket

pytestmark = pytest.mark.timeout(60)

_ids = itertools.count(1)


class Consumer:
    """A raw socket that keeps the frames that came while it waited for a response."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.told: list[dict] = []

    async def request(self, operation: str, thing_id: str = LAMP, **fields) -> dict:
        correlation_id = f"s{next(_ids)}"
        await send(
            self.ws,
            messageType="request",
            operation=operation,
            thingID=thing_id,
            correlationID=correlation_id,
            **fields,
        )
        while (frame := await receive(self.ws)).get("correlationID") != correlation_id:
            self.told.append(frame)
        return frame

    async def state_notification(self) -> dict:
        """The next observestate notification (responses to the writes come too)."""
        while True:
            frame = self.told.pop(0) if self.told else await receive(self.ws)
            if frame["operation"] == "observestate":
                assert frame["messageType"] == "notification"
                return frame


async def test_read_and_observe_the_state(running):
    device = await register(running)
    await report(device, "brightness", 10)
    await device.close()
    async with socket(running, running.add_client("mia", "consumer", "manager")) as raw:
        ws = Consumer(raw)
        subscribed = await ws.request("observestate")
        assert "error" not in subscribed, subscribed
        queued = await ws.request("writeproperty", name="brightness", input=80)
        assert queued["status"] == "pending"
        notification = await ws.state_notification()
        assert notification["thingID"] == LAMP and notification["name"] == "brightness"
        assert notification["value"]["desired"]["value"] == 80
        assert notification["value"]["reported"]["value"] == 10

        state = (await ws.request("readstate"))["output"]
        assert state["delta"] == {"brightness": 80}
        assert state["properties"]["brightness"]["desired"]["senderID"] == "mia"

        device = await running.device(AGENT)  # back: it refuses the write
        delivered = await device.next_request()
        await answer(device, delivered, status="failed", error={"status": 400, "title": "No"})
        notification = await ws.state_notification()
        assert notification["value"]["declined"]["value"] == 80
        assert "desired" not in notification["value"]
        assert (await ws.request("readstate"))["output"]["delta"] == {}

        # Unobserved: the next change is not told (its response comes after it would).
        assert "error" not in await ws.request("unobservestate")
        ws.told.clear()
        await ws.request("writeproperty", name="brightness", input=20)
        assert not [frame for frame in ws.told if frame["operation"] == "observestate"]


async def test_an_agent_reads_only_its_own_things_state(running):
    await register(running)
    running.add_client("other-agent", "agent", "agent")
    async with socket(running, running.hub.auth.new_token("other-agent")["token"]) as raw:
        ws = Consumer(raw)
        assert (await ws.request("readstate"))["error"]["status"] == 403
        assert (await ws.request("readstate", "urn:dev:ops:none"))["error"]["status"] in (403, 404)
    async with socket(running, running.hub.auth.new_token(AGENT)["token"]) as raw:
        ws = Consumer(raw)
        assert (await ws.request("readstate"))["output"]["thingID"] == LAMP
