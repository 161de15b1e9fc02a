"""docs/auth.md, Authorization, over WebSocket: the ``service`` role registers and
reports for its own Things like an agent and writes and invokes like a manager; it may
not report for another agent's Thing (403)."""

from __future__ import annotations

import pytest

from tests.support.tds import SIGN, sign_td
from tests.support.ws import ask, receive, send, socket

pytestmark = pytest.mark.timeout(60)

OWN = "urn:dev:ops:svc-own-1"
REPORT = {"messageType": "notification", "operation": "observeproperty", "name": "text"}


async def test_a_service_is_an_agent_for_its_things_and_a_manager_for_others(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("svc", "service", "service")
    async with socket(running, token) as ws:
        registered = await ask(ws, operation="updatething", correlationID="r", input=sign_td(OWN))
        assert registered.get("error") is None, registered
        written = await ask(
            ws, operation="writeproperty", thingID=SIGN, name="text", input="hi", correlationID="w"
        )
        assert written.get("error") is None, written
        invoked = await ask(
            ws, operation="invokeaction", thingID=SIGN, name="say", input="hi", correlationID="i"
        )
        assert invoked.get("error") is None, invoked
        # Reports: its own Thing's is taken; another agent's is refused. The request after
        # them is the barrier: the refusal comes before its answer, nothing else does.
        await send(ws, **REPORT, thingID=OWN, value="mine")
        await send(ws, **REPORT, thingID=SIGN, value="theirs")
        await send(ws, messageType="request", operation="readthing", thingID=OWN, correlationID="b")
        refusal = await receive(ws)
        assert refusal["error"]["status"] == 403, refusal
        assert (await receive(ws))["correlationID"] == "b"
    assert running.hub.twin.read_property(OWN, "text").get("value") == "mine"
    assert running.hub.twin.read_property(SIGN, "text").get("value") is None
