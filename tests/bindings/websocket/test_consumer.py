"""A consumer on the WebSocket endpoint: reads, writes, actions, subscriptions and the
twin TD's ``wss://`` forms. Consumers on the ``websockets`` library, agents on aiohttp
(the hub's Python client), a real hub."""

from __future__ import annotations

import itertools
import json

import pytest

from clients.websocket import WsClient
from tests.support import tds
from tests.support.tds import LAMP
from tests.support.ws import receive, socket, ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

_ids = itertools.count(1)


def lamp_td(thing_id: str = LAMP) -> dict:
    """The shared lamp with a write-only property, for the reads refused on it."""
    pin = {"type": "string", "writeOnly": True, "forms": [{"href": "https://lamp.local/pin"}]}
    return tds.lamp_td(thing_id, properties={"pin": pin})


async def ask(ws, operation: str, thing_id: str | None = LAMP, name=None, **fields) -> dict:
    """Send a request and return the response with its correlationID (notifications that
    arrive meanwhile are not expected in these tests)."""
    correlation_id = f"c{next(_ids)}"
    message = {"messageType": "request", "operation": operation, "correlationID": correlation_id}
    if thing_id is not None:
        message["thingID"] = thing_id
    if name is not None:
        message["name"] = name
    await ws.send(json.dumps({**message, **fields}))
    response = await receive(ws)
    assert response["messageType"] == "response", response
    assert response["correlationID"] == correlation_id
    return response


@pytest.fixture
async def lamp(running):
    """An agent (aiohttp client) that registered the lamp and reported two values."""
    token = running.add_client("lamp-agent", "agent", "agent")
    async with WsClient(ws_url(running), ca=running.ssl, token=token) as agent:
        await agent.register(lamp_td())
        await agent.report_properties(LAMP, {"on": True, "brightness": 55})
        await until(lambda: "brightness" in running.hub.twin.read_all_properties(LAMP))
        yield agent


async def test_reads(running, lamp):
    token = running.add_client("vera", "consumer", "viewer")
    async with socket(running, token) as ws:
        one = await ask(ws, "readproperty", name="brightness")
        assert one["output"] == 55
        assert one["timestamp"].endswith("Z")
        everything = await ask(ws, "readallproperties")
        assert everything["output"] == {"on": True, "brightness": 55}
        some = await ask(ws, "readmultipleproperties", input=["on"])
        assert some["output"] == {"on": True}
        never = await ask(ws, "readproperty", name="model")
        assert "output" not in never  # no value reported yet: absent, not null
        missing = await ask(ws, "readthing", "urn:dev:nothing")
        assert missing["status"] == "failed" and missing["error"]["status"] == 404


async def test_twin_td_carries_wss_forms(running, lamp):
    token = running.add_client("vera", "consumer", "viewer")
    async with socket(running, token) as ws:
        td = (await ask(ws, "readthing"))["output"]
    url = ws_url(running)

    def ws_forms(affordance: dict) -> list[dict]:
        return [f for f in affordance["forms"] if f["href"].startswith("wss://")]

    brightness = ws_forms(td["properties"]["brightness"])
    assert len(brightness) == 1
    assert brightness[0]["href"] == url
    assert brightness[0]["subprotocol"] == "webthingprotocol"
    assert set(brightness[0]["op"]) == {
        "readproperty",
        "writeproperty",
        "observeproperty",
        "unobserveproperty",
    }
    assert "writeproperty" not in ws_forms(td["properties"]["model"])[0]["op"]
    assert set(ws_forms(td["actions"]["toggle"])[0]["op"]) == {
        "invokeaction",
        "queryaction",
        "cancelaction",
    }
    assert set(ws_forms(td["events"]["overheated"])[0]["op"]) == {
        "subscribeevent",
        "unsubscribeevent",
    }
    top = ws_forms(td)
    assert top and top[0]["subprotocol"] == "webthingprotocol"
    assert "observeallproperties" in top[0]["op"]
    # The same bearer tokens work on both bindings: one scheme for the whole TD.
    assert td["security"] == ["bearer_sc"]
    assert td["securityDefinitions"]["bearer_sc"]["scheme"] == "bearer"


async def test_a_write_only_property_is_written_never_read(running, lamp):
    token = running.add_client("max", "consumer", "manager")
    async with socket(running, token) as ws:
        td = (await ask(ws, "readthing"))["output"]
        pin = [f for f in td["properties"]["pin"]["forms"] if f["href"].startswith("wss://")]
        assert [f["op"] for f in pin] == [["writeproperty"]]
        for operation in ("readproperty", "observeproperty"):
            refused = await ask(ws, operation, name="pin")
            assert refused["status"] == "failed", refused
            assert refused["error"]["status"] == 405, refused
        some = await ask(ws, "readmultipleproperties", input=["on", "pin"])
        assert some["error"]["status"] == 405
        assert "pin" not in (await ask(ws, "readallproperties"))["output"]
        accepted = await ask(ws, "writeproperty", name="pin", input="1234")
        assert accepted["status"] == "delivered"
        request = await lamp.next_request(5)
        assert (request["name"], request["input"]) == ("pin", "1234")


async def test_write_property_goes_to_the_agent(running, lamp):
    token = running.add_client("max", "consumer", "manager")
    async with socket(running, token) as ws:
        accepted = await ask(ws, "writeproperty", name="brightness", input=80)
        assert accepted["status"] == "delivered"
        request = await lamp.next_request(5)
        assert (request["operation"], request["name"], request["input"]) == (
            "writeproperty",
            "brightness",
            80,
        )
        assert request["senderID"] == "max"
        await lamp.report_property(LAMP, "brightness", 80)
        await lamp.answer(request)
        done = await receive(ws)
        assert done["correlationID"] == accepted["correlationID"]
        assert done["status"] == "completed"
        assert done["actionID"] == accepted["actionID"]
        assert (await ask(ws, "readproperty", name="brightness"))["output"] == 80
        bad = await ask(ws, "writeproperty", name="brightness", input=300)
        assert bad["error"]["status"] == 400
        read_only = await ask(ws, "writeproperty", name="model", input="x")
        assert read_only["status"] == "failed"


async def test_cancel_reaches_the_agent(running, lamp):
    token = running.add_client("otto", "consumer", "operator")
    async with socket(running, token) as ws:
        invoked = await ask(ws, "invokeaction", name="toggle")
        action_id = invoked["actionID"]
        request = await lamp.next_request(5)
        assert request["actionID"] == action_id
        await ws.send(
            json.dumps(
                {
                    "messageType": "request",
                    "operation": "cancelaction",
                    "thingID": LAMP,
                    "actionID": action_id,
                    "correlationID": "cancel-1",
                }
            )
        )
        # Two responses: the cancelaction's, and the invoked request's last one (the
        # latter is queued while the cancel is carried out, so it comes first).
        got = {m["correlationID"]: m for m in [await receive(ws), await receive(ws)]}
        assert set(got) == {"cancel-1", invoked["correlationID"]}
        assert got["cancel-1"]["status"] == "cancelled"
        assert got["cancel-1"]["output"]["error"]["status"] == 410
        assert got[invoked["correlationID"]]["status"] == "cancelled"
        assert got[invoked["correlationID"]]["actionID"] == action_id
        told = await lamp.next_request(5)
        assert (told["operation"], told["actionID"]) == ("cancelaction", action_id)
        again = await ask(ws, "cancelaction", actionID=action_id)
        assert again["error"]["status"] == 409


async def test_subscriptions_start_and_stop(running, lamp):
    token = running.add_client("vera", "consumer", "viewer")
    async with socket(running, token) as ws:
        assert (await ask(ws, "observeallproperties"))["status"] == "completed"
        assert (await ask(ws, "subscribeallevents", None))["status"] == "completed"
        await lamp.report_property(LAMP, "on", False)
        await lamp.report_event(LAMP, "overheated", 90.5)
        got = [await receive(ws), await receive(ws)]
        assert [(m["operation"], m["name"], m["value"]) for m in got] == [
            ("observeproperty", "on", False),
            ("subscribeevent", "overheated", 90.5),
        ]
        assert all(m["messageType"] == "notification" and m["thingID"] == LAMP for m in got)

        assert (await ask(ws, "unobserveallproperties"))["status"] == "completed"
        assert (await ask(ws, "unsubscribeallevents", None))["status"] == "completed"
        await lamp.report_property(LAMP, "on", True)
        await lamp.report_event(LAMP, "overheated", 91.0)
        # Still served (a request gets its answer), but no notification came first.
        assert (await ask(ws, "readproperty", name="on"))["output"] is True

        missing = await ask(ws, "observeproperty", name="colour")
        assert missing["error"]["status"] == 404
