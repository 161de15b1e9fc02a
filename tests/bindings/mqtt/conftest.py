"""A real hub (LevelDB, the hub CA, HTTPS on 127.0.0.1) with the MQTT binding on the
same router, auth and CA, on free loopback ports; paho-mqtt as a third-party client."""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson
import pytest

from bindings.mqtt import MqttBinding, topics
from bucketstore import open_store
from hub.runtime import Hub
from tests.support.mqtt import Paho
from tests.support.running import PASSWORD, RunningHub, hub_config
from tests.support.tds import LAMP, lamp_td

THING = LAMP


def mqtt_lamp_td(thing_id: str = THING) -> dict:
    """The shared lamp with a bus-friendly shape: an integer ``level`` property and a
    ``fade`` that takes and returns a plain integer (payloads with no object around)."""
    scale = {"type": "integer", "minimum": 0, "maximum": 100, "forms": [{"href": "x"}]}
    fade = {"input": {"type": "integer"}, "output": {"type": "integer"}, "forms": [{"href": "x"}]}
    return lamp_td(
        thing_id, only=("overheated",), properties={"level": scale}, actions={"fade": fade}
    )


TD = mqtt_lamp_td()


async def agent_with_lamp(mqtt_hub, agent_id: str = "lamp-agent", td=TD):
    """An MQTT agent that registered ``td`` (checked through its response topic)."""
    if mqtt_hub.hub.auth.accounts.get(agent_id) is None:
        mqtt_hub.add_agent(agent_id)
    agent = mqtt_hub.paho(agent_id)
    assert await agent.connect() == 0
    assert await agent.subscribe(f"wot/client/{agent_id}/resp") == 1
    agent.publish(topics.agent_topic(agent_id, "td", td["id"]), {"input": td})
    _, payload, _ = await agent.next(f"wot/client/{agent_id}/resp")
    response = orjson.loads(payload)
    assert response["output"]["id"] == td["id"], response
    return agent


class MqttHub(RunningHub):
    def __init__(self, hub: Hub, mqtt_binding: MqttBinding, tmp: Path) -> None:
        super().__init__(hub)
        self.mqtt = mqtt_binding
        self.tmp = tmp
        self.clients: list[Paho] = []

    def paho(self, client_id: str, **kwargs) -> Paho:
        kwargs.setdefault("username", client_id.split("/")[0])
        kwargs.setdefault("password", PASSWORD)
        client = Paho(self.mqtt.port, self.hub.ca.ca_cert_pem, client_id, **kwargs)
        self.clients.append(client)
        return client

    def certificate(self, client_id: str) -> tuple[str, str]:
        issued, key = self.hub.ca.generate_for(client_id)
        cert_path, key_path = self.tmp / f"{client_id}.pem", self.tmp / f"{client_id}.key"
        cert_path.write_bytes(issued.cert_pem)
        key_path.write_bytes(key)
        return str(cert_path), str(key_path)

    def add_agent(self, client_id: str) -> None:
        self.hub.auth.add_client(client_id, "agent", "agent", password=PASSWORD)


@pytest.fixture
async def mqtt_hub(tmp_path):
    async with running_mqtt_hub(tmp_path) as running:
        yield running


@pytest.fixture
async def mqtt_cert_hub(tmp_path):
    """MQTT with ``client_certificate = "require"``: the one listener asks every client
    for a certificate from the hub CA (docs/mqtt.md)."""
    async with running_mqtt_hub(tmp_path, mqtt_client_certificate="require") as running:
        yield running


@contextlib.asynccontextmanager
async def running_mqtt_hub(tmp_path, **options):
    """A hub with the MQTT binding; ``options`` override its configuration."""
    options = {"mqtt_enabled": True, "max_body_bytes": 64 * 1024, **options}
    config = hub_config(tmp_path / "home", **options)
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    running = MqttHub(hub, hub.mqtt, tmp_path)
    try:
        yield running
    finally:
        for client in running.clients:
            client.close()
        await hub.stop()
        store.close()
