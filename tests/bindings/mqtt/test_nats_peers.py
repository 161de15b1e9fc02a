"""MQTT and NATS clients on the same Thing (docs/mqtt.md): one broker, nats-server, so an
MQTT agent serves NATS consumers and a NATS agent MQTT consumers. paho-mqtt on one side,
clients/nats.py on the other, the real hub with both listeners."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bindings.mqtt import topics
from clients.nats import NatsAgent, NatsConsumer
from tests.support.running import PASSWORD

from .conftest import TD, THING, agent_with_lamp, running_mqtt_hub

LEVEL = f"wot/twin/{topics.encode(THING)}/prop/level"


@pytest.fixture
async def both_hub(tmp_path):
    async with running_mqtt_hub(tmp_path, nats_enabled=True) as running:
        yield running


async def nats_client(hub, kind, client_id: str):
    return await kind.connect(
        hub.hub.nats.url, client_id, password=PASSWORD, ca_pem=hub.hub.ca.ca_cert_pem
    )


async def test_an_mqtt_agent_serves_a_nats_consumer(both_hub):
    agent = await agent_with_lamp(both_hub)
    assert await agent.subscribe(topics.agent_requests("lamp-agent"), 1) == 1
    both_hub.add_client("otto", "consumer", "operator")
    consumer = await nats_client(both_hub, NatsConsumer, "otto")
    try:
        values: asyncio.Queue = asyncio.Queue()
        await consumer.observe_property(THING, "level", callback=values.put_nowait)
        await consumer.flush()  # the server has the subscription
        agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": 33})
        notification = await asyncio.wait_for(values.get(), 10)
        assert (notification["thingID"], notification["name"]) == (THING, "level")
        assert notification["value"] == 33

        invoked = asyncio.ensure_future(consumer.invoke_action(THING, "fade", 20))
        _, payload, _ = await agent.next(topics.agent_requests("lamp-agent"))
        request = orjson.loads(payload)
        assert (request["operation"], request["name"], request["input"]) == (
            "invokeaction",
            "fade",
            20,
        )
        assert request["senderID"] == "otto"
        assert (await invoked)["status"] in ("pending", "delivered")
        answer = {
            "messageType": "response",
            "operation": "invokeaction",
            "thingID": THING,
            "name": "fade",
            "correlationID": request["correlationID"],
            "status": "completed",
            "output": 20,
        }
        agent.publish(topics.agent_topic("lamp-agent", "resp"), answer)
        async with asyncio.timeout(10):
            while True:
                response = await consumer.responses.get()
                if response.get("status") == "completed":
                    break
        assert (response["actionID"], response["output"]) == (request["actionID"], 20)
    finally:
        await consumer.close()


async def test_a_nats_agent_serves_an_mqtt_consumer(both_hub):
    both_hub.add_agent("lamp-agent")
    agent = await nats_client(both_hub, NatsAgent, "lamp-agent")
    try:
        agent.on_request = lambda request: request["input"] * 2
        assert (await agent.update_thing(TD))["id"] == THING
        both_hub.add_client("otto", "consumer", "operator")
        consumer = both_hub.paho("otto")
        assert await consumer.connect() == 0
        assert await consumer.subscribe("wot/client/otto/resp", 1) == 1
        assert await consumer.subscribe(LEVEL, 0) == 0
        await agent.report_property(THING, "level", 44)
        _, payload, _ = await consumer.next(LEVEL)
        assert orjson.loads(payload) == 44  # the raw value, as for MQTT agents

        request = {
            "messageType": "request",
            "operation": "invokeaction",
            "thingID": THING,
            "name": "fade",
            "input": 21,
            "correlationID": "c1",
        }
        consumer.publish("wot/client/otto/req", request)
        async with asyncio.timeout(10):
            while True:
                _, payload, _ = await consumer.next("wot/client/otto/resp")
                response = orjson.loads(payload)
                if response.get("status") == "completed":
                    break
        assert (response["name"], response["output"]) == ("fade", 42)
    finally:
        await agent.close()
