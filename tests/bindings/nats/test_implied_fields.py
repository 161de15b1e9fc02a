"""What a NATS subject implies (message type, operation, Thing, name) may be left out of
the envelope and, when present, must agree: the same rule as on MQTT topics
(vocabulary/channels.py)."""

from __future__ import annotations

import json

import pytest

from bindings.nats import subjects
from tests.waiting import until

from .conftest import LAMP, td

pytestmark = pytest.mark.timeout(90)


async def answer(client, subject: str, message: dict) -> dict:
    reply = await client.nc.request(subject, json.dumps(message).encode(), timeout=5)
    return json.loads(reply.data)


async def test_an_agent_leaves_out_what_its_subjects_say(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    registered = await answer(
        agent, subjects.agent("lamp-agent", subjects.TD, LAMP), {"input": td()}
    )
    assert registered["output"] == {"id": LAMP, "created": True}, registered

    subject = subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness")
    await agent.nc.publish(subject, b'{"value": 7}')
    twin = nats_hub.hub.twin
    await until(lambda: twin.read_property(LAMP, "brightness").get("value") == 7)


async def test_a_consumer_request_subject_names_its_operation(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    consumer = await nats_hub.consumer("vera")

    response = await answer(
        consumer, subjects.client_request("vera", "readthing"), {"thingID": LAMP}
    )
    assert response["output"]["id"] == LAMP and "error" not in response, response


async def test_a_field_that_contradicts_its_subject_is_answered_400(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    subject = subjects.agent("lamp-agent", subjects.PROP, LAMP, "brightness")

    response = await answer(agent, subject, {"name": "colour", "value": 7, "messageID": "m-1"})
    error = response["error"]
    assert error["status"] == 400 and error["validationErrors"][0]["field"] == "name", response
    assert response["correlationID"] == "m-1"
    assert nats_hub.hub.twin.read_property(LAMP, "brightness").get("value") is None
