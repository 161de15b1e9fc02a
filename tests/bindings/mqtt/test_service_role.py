"""docs/auth.md, Authorization, over MQTT: the ``service`` role publishes its own TDs and
values under ``wot/agent/{its id}/...`` like an agent, and subscribes to twin topics and
sends manager requests like a consumer."""

from __future__ import annotations

import orjson
import pytest

from bindings.mqtt import topics
from tests.support.running import PASSWORD
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(60)

OWN = "urn:dev:ops:svc-own-1"
RESPONSES = "wot/client/svc/resp"


async def test_a_service_is_an_agent_for_its_things_and_a_manager_for_others(mqtt_hub):
    mqtt_hub.add_thing("sign-agent", sign_td())
    mqtt_hub.hub.auth.add_client("svc", "service", "service", password=PASSWORD)
    service = mqtt_hub.paho("svc")
    assert await service.connect() == 0
    assert await service.subscribe(RESPONSES) == 1
    assert await service.subscribe(topics.twin_property(OWN, "text")) == 1  # as a consumer
    service.publish(topics.agent_topic("svc", "td", OWN), {"input": sign_td(OWN)})
    _, payload, _ = await service.next(RESPONSES)
    assert orjson.loads(payload)["output"]["id"] == OWN
    # Its own value comes back on the twin topic it subscribed to.
    service.publish(topics.agent_topic("svc", "prop", OWN, "text"), {"value": "mine"})
    _, payload, _ = await service.next(topics.twin_property(OWN, "text"))
    assert orjson.loads(payload) == "mine"
    # As a manager: a write to another agent's Thing is queued, not refused.
    request = {"messageType": "request", "operation": "writeproperty", "thingID": SIGN}
    service.publish(
        topics.client_requests("svc"),
        {**request, "name": "text", "input": "hi", "correlationID": "w"},
    )
    _, payload, _ = await service.next(RESPONSES)
    written = orjson.loads(payload)
    assert written["correlationID"] == "w" and written.get("error") is None, written
