"""A twin property's latest value reaches a new MQTT subscriber with the retain flag after
the hub (and with it its managed nats-server) restarted on the same home (docs/mqtt.md)."""

from __future__ import annotations

import shutil

import orjson

from bindings.mqtt import topics
from tests.support.mqtt import Paho
from tests.support.running import PASSWORD, started_hub
from tests.waiting import until

from .conftest import TD, THING

LEVEL = f"wot/twin/{topics.encode(THING)}/prop/level"


def paho(running, client_id: str) -> Paho:
    return Paho(
        running.hub.mqtt.port,
        running.hub.ca.ca_cert_pem,
        client_id,
        username=client_id,
        password=PASSWORD,
    )


async def register_and_report(running, value: int) -> None:
    """An MQTT agent registers the Thing and reports ``value``; a viewer is added."""
    running.hub.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
    running.hub.auth.add_client("vera", "consumer", "viewer", password=PASSWORD)
    agent = paho(running, "lamp-agent")
    try:
        assert await agent.connect() == 0
        assert await agent.subscribe("wot/client/lamp-agent/resp") == 1
        agent.publish(topics.agent_topic("lamp-agent", "td", THING), {"input": TD})
        await agent.next("wot/client/lamp-agent/resp")
        agent.publish(topics.agent_topic("lamp-agent", "prop", THING, "level"), {"value": value})
        await until(lambda: running.hub.twin.read_property(THING, "level").get("value") == value)
    finally:
        agent.close()


async def test_a_retained_twin_value_survives_a_hub_restart(tmp_path):
    home = tmp_path / "home"
    async with started_hub(home, mqtt_enabled=True) as first:
        await register_and_report(first, 9)
        # The twin has it; so has the broker's retained stream once a subscriber sees it.
        seen = paho(first, "vera")
        try:
            assert await seen.connect() == 0
            assert await seen.subscribe(LEVEL, 0) == 0
            _, payload, retain = await seen.next(LEVEL)
            assert (orjson.loads(payload), retain) == (9, True)
        finally:
            seen.close()

    async with started_hub(home, mqtt_enabled=True) as second:
        reader = paho(second, "vera")
        try:
            assert await reader.connect() == 0
            assert await reader.subscribe(LEVEL, 1) == 1
            _, payload, retain = await reader.next(LEVEL)
            assert (orjson.loads(payload), retain) == (9, True)
            assert second.hub.twin.read_property(THING, "level").get("value") == 9
        finally:
            reader.close()


async def test_the_twin_writes_its_values_again_when_the_jetstream_store_is_gone(tmp_path):
    """The hub writes every twin's TD and latest values as retained at start, from its
    own store: a wiped JetStream directory (or a new external server) loses nothing."""
    home = tmp_path / "home"
    async with started_hub(home, mqtt_enabled=True) as first:
        await register_and_report(first, 12)
        jetstream = first.hub.nats.server.jetstream_dir
    shutil.rmtree(jetstream)

    async with started_hub(home, mqtt_enabled=True) as second:
        restoring = second.hub.nats._restoring
        assert restoring is not None
        await until(restoring.done)
        reader = paho(second, "vera")
        try:
            assert await reader.connect() == 0
            assert await reader.subscribe(LEVEL, 1) == 1
            _, payload, retain = await reader.next(LEVEL)
            assert (orjson.loads(payload), retain) == (12, True)
            td_topic = f"wot/twin/{topics.encode(THING)}/td"
            assert await reader.subscribe(td_topic, 0) == 0
            _, payload, retain = await reader.next(td_topic)
            assert retain and orjson.loads(payload) == second.hub.router.twin_td(THING)
        finally:
            reader.close()
