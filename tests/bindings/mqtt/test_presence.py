"""MQTT agents' presence and queued requests (docs/mqtt.md, "Presence and queued
requests"): online from the CONNECT, requests held until the agent's hello, or until
``mqtt_hello_wait`` for an agent that says none; at QoS 1 they then reach a kept session
that did not even subscribe again."""

from __future__ import annotations

import orjson

from bindings.mqtt import topics
from tests.support.http import url
from tests.waiting import until

from .conftest import TD, THING

AGENT = "lamp-agent"
REQ, RESP = topics.agent_requests(AGENT), topics.client_responses(AGENT)
HELLO = topics.agent_topic(AGENT, topics.HELLO)


async def queue_fade(mqtt_hub, level: int) -> str:
    """An operator's fade for the offline lamp, queued (201); its action id."""
    token = mqtt_hub.add_client("otto", "consumer", "operator")
    async with mqtt_hub.session(token) as session:
        fade = url(THING, "actions", "fade")
        async with session.post(fade, json=level, headers={"Prefer": "respond-async"}) as answer:
            assert answer.status == 201, await answer.text()
            return (await answer.json())["id"]


def online(mqtt_hub) -> bool:
    return bool(mqtt_hub.hub.router.connections_of(AGENT))


async def test_an_agent_is_online_from_its_connect_and_its_hello_sends_the_queue(mqtt_hub):
    mqtt_hub.add_agent(AGENT)
    mqtt_hub.add_thing(AGENT, TD)
    mqtt_hub.hub.nats.mqtt_hello_wait = 60.0  # longer than the test: only the hello counts
    action_id = await queue_fade(mqtt_hub, 30)

    agent = mqtt_hub.paho(AGENT)
    assert await agent.connect() == 0
    await until(lambda: online(mqtt_hub))  # from its CONNECT: it has sent nothing
    assert await agent.subscribe(REQ, 1) == 1
    assert await agent.subscribe(RESP, 1) == 1
    # Subscribed, but no hello yet: nothing comes. The barrier is the hub's answer to a
    # bad report sent after the subscription (answers to a message are not held).
    agent.publish(topics.agent_topic(AGENT, "prop", THING, "level"), b"{not json")
    seen = await agent.before(RESP, lambda payload: b'"status":400' in payload)
    assert [topic for topic, _, _ in seen if topic == REQ] == []

    agent.publish(HELLO, b"")
    _, payload, _ = await agent.next(REQ)
    request = orjson.loads(payload)
    assert (request["actionID"], request["input"]) == (action_id, 30)

    agent.close()
    await until(lambda: not online(mqtt_hub))


async def test_a_silent_agent_with_a_kept_session_gets_the_queue_at_qos_1(mqtt_hub):
    mqtt_hub.add_agent(AGENT)
    mqtt_hub.add_thing(AGENT, TD)
    mqtt_hub.hub.nats.mqtt_hello_wait = 0.2
    first = mqtt_hub.paho(AGENT, clean_session=False)
    assert await first.connect() == 0
    assert await first.subscribe(REQ, 1) == 1  # kept in its session while it is away
    first.close()
    await until(lambda: not online(mqtt_hub))
    action_id = await queue_fade(mqtt_hub, 40)

    # Back with the same session: no subscription, no hello, no message of its own.
    again = mqtt_hub.paho(AGENT, clean_session=False)
    assert await again.connect() == 0
    assert again.session_present
    await until(lambda: online(mqtt_hub))
    _, payload, _ = await again.next(REQ)
    assert orjson.loads(payload)["actionID"] == action_id


async def test_a_hello_on_another_connection_of_the_agent_sends_the_queue(mqtt_hub):
    """One agent, two MQTT connections (``mosquitto_sub`` listening, ``mosquitto_pub``
    saying hello): the hello is the agent's, whichever connection sends it."""
    mqtt_hub.add_agent(AGENT)
    mqtt_hub.add_thing(AGENT, TD)
    mqtt_hub.hub.nats.mqtt_hello_wait = 60.0
    listener = mqtt_hub.paho(f"{AGENT}/listen")
    assert await listener.connect() == 0
    assert await listener.subscribe(REQ, 1) == 1
    await until(lambda: online(mqtt_hub))
    action_id = await queue_fade(mqtt_hub, 50)  # held: the agent is online, not hello'd

    greeter = mqtt_hub.paho(f"{AGENT}/hello")
    assert await greeter.connect() == 0
    greeter.publish(HELLO, b"")
    _, payload, _ = await listener.next(REQ)
    assert orjson.loads(payload)["actionID"] == action_id


async def test_an_agent_gone_before_its_hello_leaves_nothing_waiting(mqtt_hub):
    """Its held writer ends with it; the request waits in the hub for the next time."""
    mqtt_hub.add_agent(AGENT)
    mqtt_hub.add_thing(AGENT, TD)
    mqtt_hub.hub.nats.mqtt_hello_wait = 60.0
    action_id = await queue_fade(mqtt_hub, 60)
    agent = mqtt_hub.paho(AGENT)
    assert await agent.connect() == 0
    await until(lambda: online(mqtt_hub))
    writer = mqtt_hub.hub.nats._peers[AGENT].writer
    agent.close()
    await until(lambda: not online(mqtt_hub))
    await until(writer.done)

    again = mqtt_hub.paho(AGENT)
    assert await again.connect() == 0
    assert await again.subscribe(REQ, 1) == 1
    again.publish(HELLO, b"")
    _, payload, _ = await again.next(REQ)
    assert orjson.loads(payload)["actionID"] == action_id
