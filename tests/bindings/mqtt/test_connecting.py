"""docs/mqtt.md, Connecting and Bad input: an empty MQTT client id with ``clean_session``
false is refused (CONNACK 2, as MQTT 3.1.1 says); a will message is forwarded like any
publish the client may make (nats-server sends it); the plain (no TLS) port, when
configured, replaces TLS, is on loopback and serves like the TLS one."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import struct

import orjson
import pytest

from bindings.mqtt import topics
from tests.requirements import require_command
from tests.support.mqtt import Paho
from tests.support.running import PASSWORD
from tests.waiting import until

from .conftest import TD, THING

pytestmark = pytest.mark.timeout(60)

LEVEL = f"wot/twin/{topics.encode(THING)}/prop/level"


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id: str, username: str, password: str, *, clean: bool) -> bytes:
    """An MQTT 3.1.1 CONNECT, as paho refuses to send an empty id without a clean session."""
    flags = 0x80 | 0x40 | (0x02 if clean else 0)  # username, password, clean session
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 30)
    body = variable + _string(client_id) + _string(username) + _string(password)
    assert len(body) < 128  # one byte of remaining length
    return bytes([0x10, len(body)]) + body


async def connack(mqtt_hub, packet: bytes) -> int:
    context = ssl.create_default_context(cadata=mqtt_hub.hub.ca.ca_cert_pem.decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", mqtt_hub.mqtt.port, ssl=context)
    try:
        writer.write(packet)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.readexactly(4)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    assert answer[:2] == b"\x20\x02", answer  # CONNACK
    return answer[3]


async def test_an_empty_client_id_is_refused(mqtt_hub):
    mqtt_hub.add_client("vera", "consumer", "viewer")
    # MQTT 3.1.1: an empty id needs a clean session (CONNACK 2); with one, the server makes
    # an id up that is not vera's, and the callout refuses it (CONNACK 5).
    assert await connack(mqtt_hub, connect_packet("", "vera", PASSWORD, clean=False)) == 2
    assert await connack(mqtt_hub, connect_packet("", "vera", PASSWORD, clean=True)) == 5
    assert await connack(mqtt_hub, connect_packet("vera", "vera", PASSWORD, clean=False)) == 0


async def test_a_will_message_is_forwarded_like_a_publish(mqtt_hub, tmp_path):
    require_command("mosquitto_sub", package="mosquitto-clients")
    mqtt_hub.add_agent("lamp-agent")
    agent = mqtt_hub.paho("lamp-agent")
    assert await agent.connect() == 0
    assert await agent.subscribe("wot/client/lamp-agent/resp") == 1
    agent.publish(topics.agent_topic("lamp-agent", "td", THING), {"input": TD})
    await agent.next("wot/client/lamp-agent/resp")
    mqtt_hub.add_client("vera", "consumer", "viewer")
    viewer = mqtt_hub.paho("vera")
    assert await viewer.connect() == 0
    assert await viewer.subscribe(LEVEL) == 1
    ca = tmp_path / "ca.pem"
    ca.write_bytes(mqtt_hub.hub.ca.ca_cert_pem)
    # A second agent connection whose will reports a value, killed so that the broker
    # sends its will.
    will_topic = topics.agent_topic("lamp-agent", "prop", THING, "level")
    mosquitto = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", "127.0.0.1", "-p", str(mqtt_hub.mqtt.port), "--cafile", str(ca)),
        *("-u", "lamp-agent", "-P", PASSWORD, "-V", "mqttv311", "-i", "lamp-agent/will"),
        *("--will-topic", will_topic, "--will-payload", '{"value": 77}', "--will-qos", "1"),
        *("-t", "wot/agent/lamp-agent/req"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await until(lambda: _connections(mqtt_hub, "lamp-agent") == 2)
    finally:
        mosquitto.send_signal(signal.SIGKILL)
        await mosquitto.wait()
    # The server publishes the will: the hub takes it as the agent's report.
    _, payload, _ = await viewer.next(LEVEL)
    assert orjson.loads(payload) == 77
    await until(lambda: mqtt_hub.hub.twin.read_property(THING, "level").get("value") == 77)
    assert not agent.disconnected.is_set()


def _connections(mqtt_hub, client_id: str) -> int:
    """How many server connections the hub counts for the client (CONNECT events)."""
    peer = mqtt_hub.hub.nats._peers.get(client_id)
    return 0 if peer is None else len(peer.nats_ids)


@pytest.mark.parametrize("hub_options", [{"mqtt_enabled": True, "mqtt_plain_port": 0}])
async def test_the_plain_port_is_on_loopback_and_serves(running):
    mqtt = running.hub.mqtt
    plain = mqtt.listeners()["mqtt"]
    assert plain["host"] == "127.0.0.1" and plain["url"] == f"mqtt://127.0.0.1:{plain['port']}"
    assert plain["port"] == mqtt.port and "mqtts" not in mqtt.listeners()  # one listener
    running.hub.auth.add_client("vera", "consumer", "viewer", password=PASSWORD)
    vera = Paho(plain["port"], b"", "vera", username="vera", password=PASSWORD, tls=False)
    try:
        assert await vera.connect() == 0
        assert await vera.subscribe("wot/client/vera/resp") == 1
        vera.publish(
            "wot/client/vera/req",
            {"messageType": "request", "operation": "readthing", "thingID": "urn:wothub:authn"},
        )
        _, payload, _ = await vera.next("wot/client/vera/resp")
        assert orjson.loads(payload)["operation"] == "readthing"
    finally:
        vera.close()
