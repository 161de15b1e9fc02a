"""A real hub (LevelDB, the hub CA, HTTPS on 127.0.0.1) with the MQTT binding on the
same router, auth and CA, on free loopback ports; paho-mqtt as a third-party client."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bindings.mqtt import MqttBinding
from bucketstore import open_store
from hub.runtime import Hub
from tests.support.running import PASSWORD, RunningHub, hub_config

THING = "urn:dev:ops:32473-lamp-1"
TD = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "id": THING,
    "title": "Lamp",
    "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
    "security": "nosec_sc",
    "properties": {
        "level": {"type": "integer", "minimum": 0, "maximum": 100, "forms": [{"href": "x"}]}
    },
    "actions": {
        "fade": {
            "input": {"type": "integer"},
            "output": {"type": "integer"},
            "forms": [{"href": "x"}],
        }
    },
    "events": {"overheated": {"data": {"type": "number"}, "forms": [{"href": "x"}]}},
}


class Paho:
    """A paho-mqtt 2.x client on its own network thread; messages land in a queue."""

    def __init__(
        self,
        port: int,
        ca_pem: bytes,
        client_id: str,
        *,
        username=None,
        password=None,
        certfile=None,
        keyfile=None,
        tls=True,
    ):
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311
        )
        if tls:
            context = ssl.create_default_context(cadata=ca_pem.decode())
            if certfile:
                context.load_cert_chain(certfile, keyfile)
            self.client.tls_set_context(context)
        if username is not None or password is not None:
            self.client.username_pw_set(username, password)
        self.port = port
        self.messages: queue.Queue = queue.Queue()
        self.connack: int | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subacks: dict[int, list[int]] = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.retain))
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = lambda *a: self.disconnected.set()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = reason_code.value
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks[mid] = [code.value for code in reason_codes]

    async def connect(self, timeout: float = 10.0) -> int:
        self.client.connect_async("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        await wait_until(self.connected.is_set, timeout)
        return self.connack

    async def subscribe(self, topic_filter: str, qos: int = 1) -> int:
        _, mid = self.client.subscribe(topic_filter, qos)
        await wait_until(lambda: mid in self.subacks)
        return self.subacks[mid][0]

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False):
        if not isinstance(payload, bytes | str):
            import orjson

            payload = orjson.dumps(payload)
        return self.client.publish(topic, payload, qos, retain)

    async def next(self, topic: str | None = None, timeout: float = 10.0):
        """The next message (on ``topic`` if given; others before it are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.messages.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
                continue
            if topic is None or item[0] == topic:
                return item
        raise TimeoutError(f"no message on {topic or 'any topic'} within {timeout} s")

    async def before(self, topic: str, marker: Callable[[bytes], bool], timeout: float = 10.0):
        """Every message that came before the marker (the first message on ``topic`` whose
        payload ``marker`` accepts), in order: a barrier to prove what did not arrive."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    item = self.messages.get_nowait()
                except queue.Empty:
                    await asyncio.sleep(0.01)
                    continue
                if item[0] == topic and marker(item[1]):
                    return seen
                seen.append(item)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


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
