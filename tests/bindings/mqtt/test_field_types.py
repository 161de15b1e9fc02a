"""Wrong-typed envelope fields over MQTT: each gets a 400 error response on the client's
response topic naming the field and its type (the envelope's own check, also where the
topic fills fields in), and the hub keeps serving the same client."""

from __future__ import annotations

import orjson
import pytest

from bindings.mqtt import topics
from tests.waiting import until

from .conftest import THING, agent_with_lamp

pytestmark = pytest.mark.timeout(60)

RESPONSES = "wot/client/lamp-agent/resp"


async def refusal(client, topic: str) -> dict:
    _, payload, _ = await client.next(topic)
    response = orjson.loads(payload)
    assert response["status"] == "failed" and response["error"]["status"] == 400, response
    return response["error"]


@pytest.mark.parametrize(
    ("field", "value", "described"),
    [
        ("thingID", 123, "a number"),  # the topic names the Thing too
        ("name", 7, "a number"),
        ("operation", 5, "a number"),
        ("correlationID", 42, "a number"),
        ("messageType", {}, "an object"),
    ],
)
async def test_a_wrong_typed_field_in_a_report_is_answered_400(mqtt_hub, field, value, described):
    agent = await agent_with_lamp(mqtt_hub)
    topic = topics.agent_topic("lamp-agent", "prop", THING, "level")
    agent.publish(topic, {field: value, "value": 5})

    error = await refusal(agent, RESPONSES)
    assert error["validationErrors"] == [
        {"field": field, "description": f"must be a string, not {described}"}
    ]

    agent.publish(topic, {"value": 6})  # still served
    await until(lambda: mqtt_hub.hub.twin.read_property(THING, "level").get("value") == 6)


async def test_a_consumer_request_with_a_numeric_thing_id_is_answered_400(mqtt_hub):
    await agent_with_lamp(mqtt_hub)
    mqtt_hub.add_client("vera", "consumer", "viewer")
    consumer = mqtt_hub.paho("vera")
    assert await consumer.connect() == 0
    assert await consumer.subscribe("wot/client/vera/resp") == 1
    read = {"messageType": "request", "operation": "readthing", "correlationID": "c-1"}

    consumer.publish("wot/client/vera/req", {**read, "thingID": 5})
    error = await refusal(consumer, "wot/client/vera/resp")
    assert error["validationErrors"][0]["field"] == "thingID", error

    consumer.publish("wot/client/vera/req", {**read, "thingID": THING, "correlationID": "c-2"})
    _, payload, _ = await consumer.next("wot/client/vera/resp")
    response = orjson.loads(payload)
    assert response["correlationID"] == "c-2" and response["output"]["id"] == THING
