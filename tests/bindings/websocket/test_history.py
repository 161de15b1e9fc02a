"""The history query on the buses, over the WebSocket endpoint: the ``queryhistory``
request (docs/messages.md), paged with its cursor, under the same authorization as
reading the Thing. Consumers on the ``websockets`` library, the agent the hub's client."""

from __future__ import annotations

import pytest

from clients.websocket import WsClient
from tests.support.tds import LAMP, lamp_td
from tests.support.ws import ask, socket, ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

OTHER = "urn:dev:ops:other-lamp"


async def query(ws, thing_id: str, name: str, **data) -> dict:
    """One ``queryhistory`` request; the response."""
    return await ask(ws, operation="queryhistory", thingID=thing_id, name=name, input=data)


@pytest.fixture
async def lamp(running):
    """An agent that registered the lamp and reported 30 brightness values and an event."""
    token = running.add_client("lamp-agent", "agent", "agent")
    async with WsClient(ws_url(running), ca=running.ssl, token=token) as agent:
        await agent.register(lamp_td())
        for level in range(30):
            await agent.report_property(LAMP, "brightness", level)
        await agent.report_event(LAMP, "overheated", 90.5)
        await until(lambda: running.hub.twin.read_event(LAMP, "overheated").get("value") == 90.5)
        yield token


async def test_a_viewer_pages_through_a_property_and_reads_an_event(running, lamp):
    async with socket(running, running.add_client("vera")) as ws:
        values, data = [], {"limit": 7, "order": "oldest"}
        while True:
            response = await query(ws, LAMP, "brightness", **data)
            assert response["messageType"] == "response" and "error" not in response
            values += [item["value"] for item in response["output"]["items"]]
            if "cursor" not in response["output"]:
                break
            data["cursor"] = response["output"]["cursor"]
        assert values == list(range(30))
        response = await query(ws, LAMP, "brightness", step="1h")
        (bucket,) = response["output"]["items"]
        assert (bucket["count"], bucket["min"], bucket["max"], bucket["last"]) == (30, 0, 29, 29)
        response = await query(ws, LAMP, "overheated", kind="event")
        assert [item["value"] for item in response["output"]["items"]] == [90.5]


async def test_an_agent_queries_only_its_own_things(running, lamp):
    other_token = running.add_client("other-agent", "agent", "agent")
    async with WsClient(ws_url(running), ca=running.ssl, token=other_token) as other:
        await other.register(lamp_td(OTHER))
        await other.report_property(OTHER, "brightness", 3)
    async with socket(running, lamp) as ws:
        own = await query(ws, LAMP, "brightness", limit=1)
        assert [item["value"] for item in own["output"]["items"]] == [29]
        theirs = await query(ws, OTHER, "brightness")
        assert theirs["error"]["status"] == 403


@pytest.mark.parametrize(
    ("data", "parameter"),
    [
        ({"limit": "lots"}, "limit"),
        ({"from": 1700000000}, "from"),
        ({"kind": "action"}, "kind"),
        ({"step": "1 hour"}, "step"),
    ],
)
async def test_bad_input_gets_an_error_response(running, lamp, data, parameter):
    async with socket(running, running.add_client("vera")) as ws:
        response = await query(ws, LAMP, "brightness", **data)
        assert response["error"]["status"] == 400
        assert response["error"]["parameter"] == parameter
