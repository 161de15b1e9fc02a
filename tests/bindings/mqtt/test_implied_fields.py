"""What an MQTT topic implies may be left out of the envelope and, when present, must
agree: the same rule as on NATS subjects (vocabulary/channels.py). An agent's topics
say nearly everything; a client's request topic says the message is a request."""

from __future__ import annotations

import orjson
import pytest

from .conftest import THING, agent_with_lamp

pytestmark = pytest.mark.timeout(60)


async def consumer(mqtt_hub):
    mqtt_hub.add_client("vera", "consumer", "viewer")
    vera = mqtt_hub.paho("vera")
    assert await vera.connect() == 0
    assert await vera.subscribe("wot/client/vera/resp") == 1
    return vera


async def test_a_request_on_a_clients_request_topic_may_leave_out_its_type(mqtt_hub):
    await agent_with_lamp(mqtt_hub)  # registers with {"input": td} alone
    vera = await consumer(mqtt_hub)

    vera.publish("wot/client/vera/req", {"operation": "readthing", "thingID": THING})
    _, payload, _ = await vera.next("wot/client/vera/resp")
    response = orjson.loads(payload)
    assert response["output"]["id"] == THING and "error" not in response, response


async def test_a_type_that_contradicts_the_request_topic_is_answered_400(mqtt_hub):
    await agent_with_lamp(mqtt_hub)
    vera = await consumer(mqtt_hub)

    wrong = {"messageType": "notification", "operation": "readthing", "thingID": THING}
    vera.publish("wot/client/vera/req", {**wrong, "messageID": "m-1"})
    _, payload, _ = await vera.next("wot/client/vera/resp")
    response = orjson.loads(payload)
    assert response["correlationID"] == "m-1", response
    assert response["error"]["status"] == 400
    assert response["error"]["validationErrors"][0]["field"] == "messageType"
