"""Wrong-typed envelope fields over NATS: each gets a 400 error response naming the
field (never a traceback and no answer), and the hub keeps serving the same client."""

from __future__ import annotations

import json

import pytest

from bindings.nats import subjects
from tests.waiting import until

from .conftest import LAMP, td

pytestmark = pytest.mark.timeout(90)

REPORT = {
    "messageType": "notification",
    "operation": "observeproperty",
    "thingID": LAMP,
    "name": "brightness",
    "value": 1,
}


async def answer(client, subject: str, message: dict) -> dict:
    reply = await client.nc.request(subject, json.dumps(message).encode(), timeout=5)
    return json.loads(reply.data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("thingID", 123), ("name", 7), ("operation", 5), ("correlationID", 42), ("messageType", [])],
)
async def test_a_wrong_typed_field_in_a_report_is_answered_400(nats_hub, field, value):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    subject = subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness")

    response = await answer(agent, subject, {**REPORT, field: value})
    error = response["error"]
    assert error["status"] == 400, response
    assert error["validationErrors"] == [
        {"field": field, "description": "must be a string, not " + _json_type(value)}
    ]
    assert field in error["detail"]

    # Still served: a valid report right after lands in the twin.
    await agent.report_property(LAMP, "brightness", 42)
    twin = nats_hub.hub.twin
    await until(lambda: twin.read_property(LAMP, "brightness").get("value") == 42)


async def test_a_td_with_a_numeric_id_is_answered_400(nats_hub):
    """The Thing token of wot.agent.{id}.td.{thing} is compared with the TD's id: a
    number there was encoded before it was checked (a TypeError, and no answer)."""
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    subject = subjects.agent("lamp-agent", subjects.TD, LAMP)
    message = {"messageType": "request", "operation": "updatething", "input": td() | {"id": 123}}

    response = await answer(agent, subject, message)
    assert response["error"]["status"] == 400, response
    assert "id must be a string" in response["error"]["detail"]

    registered = await agent.register(td())  # the next valid request is served
    assert registered["id"] == LAMP


async def test_a_consumer_request_with_a_numeric_thing_id_is_answered_400(nats_hub):
    consumer = await nats_hub.consumer("vera")
    subject = subjects.client_request("vera", "readproperty")
    message = {"messageType": "request", "operation": "readproperty", "thingID": 9, "name": "x"}

    response = await answer(consumer, subject, message)
    assert response["error"]["validationErrors"][0]["field"] == "thingID", response

    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    assert await consumer.read_property(LAMP, "brightness") is None  # served, no value yet


def _json_type(value) -> str:
    return "an array" if isinstance(value, list) else "a number"
