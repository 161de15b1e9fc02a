"""The state document's changes over MQTT (docs/mqtt.md, docs/digitwin.md): on
``wot/twin/{thing}/state/{name}`` (the twin TD's state link names the filter), and to an
``observestate`` request on the client's own request topic; an agent may not subscribe
to another's. paho-mqtt clients, the real hub and nats-server's MQTT listener."""

from __future__ import annotations

import orjson
import pytest

from bindings.mqtt import topics

from .conftest import THING, agent_with_lamp

pytestmark = pytest.mark.timeout(60)

STATE = f"wot/twin/{topics.encode(THING)}/state/level"
REFUSED = {"type": "about:blank", "title": "Unprocessable", "status": 422, "detail": "too bright"}
REFUSED_SUBSCRIPTION = 128  # SUBACK failure


async def connected(mqtt_hub, client_id: str, role: str):
    mqtt_hub.add_client(client_id, "consumer", role)
    client = mqtt_hub.paho(client_id)
    assert await client.connect() == 0
    assert await client.subscribe(f"wot/client/{client_id}/resp") == 1
    return client


def ask(client, client_id: str, correlation_id: str, operation: str, **fields) -> None:
    request = {"messageType": "request", "operation": operation, "thingID": THING, **fields}
    client.publish(f"wot/client/{client_id}/req", {**request, "correlationID": correlation_id})


async def answer(client, client_id: str, correlation_id: str) -> dict:
    while True:
        _, payload, _ = await client.next(f"wot/client/{client_id}/resp")
        response = orjson.loads(payload)
        if response.get("correlationID") == correlation_id:
            return response


async def test_a_declined_write_reaches_mqtt_consumers_of_the_state(mqtt_hub):
    agent = await agent_with_lamp(mqtt_hub)
    assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
    viewer = await connected(mqtt_hub, "vera", "viewer")
    ask(viewer, "vera", "t-1", "readthing")
    twin = (await answer(viewer, "vera", "t-1"))["output"]
    (link,) = [link for link in twin["links"] if link["rel"] == "state" and "mqv:filter" in link]
    assert link["mqv:filter"] == f"wot/twin/{topics.encode(THING)}/state/+"
    assert await viewer.subscribe(link["mqv:filter"]) == 1
    ask(viewer, "vera", "s-1", "observestate")
    assert (await answer(viewer, "vera", "s-1"))["status"] == "completed"

    manager = await connected(mqtt_hub, "max", "manager")
    ask(manager, "max", "w-1", "writeproperty", name="level", input=95)
    written = await answer(manager, "max", "w-1")
    assert written["status"] == "delivered"
    _, payload, _ = await agent.next("wot/agent/lamp-agent/req")
    request = orjson.loads(payload)
    agent.publish(
        "wot/agent/lamp-agent/resp",
        {
            "messageType": "response",
            "correlationID": request["correlationID"],
            "operation": "writeproperty",
            "thingID": THING,
            "name": "level",
            "status": "failed",
            "error": REFUSED,
        },
    )

    # On the state topic the raw entry, queued then declined; to the observestate
    # request the same as envelopes on the client's response topic.
    on_topic, on_responses = [], []
    while len(on_topic) < 2 or len(on_responses) < 2:
        topic, payload, _ = await viewer.next()
        if topic == STATE:
            on_topic.append(orjson.loads(payload))
        elif orjson.loads(payload).get("operation") == "observestate":
            on_responses.append(orjson.loads(payload))
    queued, declined = on_topic
    assert queued["desired"]["value"] == 95 and queued["desired"]["senderID"] == "max"
    assert "desired" not in declined and declined["declined"]["id"] == written["actionID"]
    assert declined["declined"]["error"]["detail"] == "too bright"
    assert [(n["name"], n["value"]) for n in on_responses] == [
        ("level", queued),
        ("level", declined),
    ]

    mqtt_hub.add_agent("fan-agent")
    stranger = mqtt_hub.paho("fan-agent")
    assert await stranger.connect() == 0
    assert await stranger.subscribe(link["mqv:filter"]) == REFUSED_SUBSCRIPTION
    assert await stranger.subscribe("wot/agent/fan-agent/req") == 1  # its own: granted
