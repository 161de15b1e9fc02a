"""Issue 18, inconsistency (a): on the buses the address (MQTT topic, NATS subject)
already says what an agent's message is. The unified rule: fields the address implies
may be left out, and when present they must agree with it, else an error response
(400). MQTT used to fill them in from the topic while NATS required them; one channel
table (vocabulary/channels.py) and one receive pipeline now apply the rule on both."""

from __future__ import annotations

import pytest

from tests.support.tds import LAMP, lamp_td
from vocabulary.envelope import ABSENT

from .conftest import AGENT_OF

pytestmark = pytest.mark.timeout(60)

OTHER_LAMP = "urn:dev:ops:32473-lamp-2"
FULL_REPORT = {
    "messageType": "notification",
    "operation": "observeproperty",
    "thingID": LAMP,
    "name": "brightness",
}


@pytest.mark.parametrize("binding", ["mqtt", "nats"])
async def test_an_agent_may_leave_out_what_its_address_says(clients, binding):
    agent = await clients.agent(AGENT_OF[binding])
    await agent.register(lamp_td())
    address = agent.property_address(LAMP, "brightness")
    assert await agent.publish(address, {"value": 41}) is None
    consumer = await clients.consumer(binding, role="viewer")
    assert await consumer.read_property(LAMP, "brightness") == 41


@pytest.mark.parametrize("binding", ["mqtt", "nats"])
async def test_an_agent_may_repeat_what_its_address_says(clients, binding):
    agent = await clients.agent(AGENT_OF[binding])
    await agent.register(lamp_td())
    address = agent.property_address(LAMP, "brightness")
    assert await agent.publish(address, {**FULL_REPORT, "value": 42}) is None
    consumer = await clients.consumer(binding, role="viewer")
    assert await consumer.read_property(LAMP, "brightness") == 42


@pytest.mark.parametrize("binding", ["mqtt", "nats"])
@pytest.mark.parametrize(
    "field, value",
    [("thingID", OTHER_LAMP), ("name", "on"), ("operation", "subscribeevent")],
)
async def test_envelope_fields_that_contradict_the_address_are_refused_400(
    clients, binding, field, value
):
    agent = await clients.agent(AGENT_OF[binding])
    await agent.register(lamp_td())
    await agent.register(lamp_td(OTHER_LAMP))
    address = agent.property_address(LAMP, "brightness")
    refusal = await agent.publish(address, {**FULL_REPORT, field: value, "value": True})
    assert refusal is not None and refusal["status"] == 400, refusal
    consumer = await clients.consumer(binding, role="viewer")
    for thing_id, name in ((LAMP, "brightness"), (LAMP, "on"), (OTHER_LAMP, "on")):
        assert await consumer.read_property(thing_id, name) is ABSENT  # nothing was stored
