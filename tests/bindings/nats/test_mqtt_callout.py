"""MQTT clients through nats-server's MQTT listener and the hub's auth callout (issue 19):
their MQTT client id must be theirs, the callout's permissions decide what they may
subscribe to (``wot/twin/#`` needs ``wot.twin`` too; ``#`` and ``$SYS/#`` are refused
whole), and a change to the client closes its open MQTT connections within a second,
whose reconnect goes through the callout again.

Until the managed nats-server has its ``mqtt {}`` listener (branch mqtt19), this runs
against a nats-server started here in external mode: the hub's accounts and callout
blocks plus ``jetstream`` and ``mqtt`` (plain MQTT on loopback), as docs/nats.md tells
an operator to configure one. paho-mqtt clients."""

from __future__ import annotations

import contextlib
import time

import pytest

from bindings.nats.server import free_ports
from tests.support.mqtt import Paho
from tests.support.nats_server import external_config, hub_on, nats_server
from tests.waiting import until

from .conftest import PASSWORD

pytestmark = pytest.mark.timeout(90)

WITHIN = 1.0  # seconds from the change to the disconnect
REFUSED = 0x80  # SUBACK failure


@pytest.fixture
async def mqtt_hub(tmp_path):
    """(hub, MQTT port): the hub on an external nats-server with an MQTT listener."""
    port, mqtt_port = free_ports(2)
    async with contextlib.AsyncExitStack() as stack:
        hub = await stack.enter_async_context(hub_on(tmp_path / "home", f"nats://127.0.0.1:{port}"))
        config = external_config(hub, port).replace(
            "APP: { users:",
            "APP: { jetstream: enabled, users:",  # MQTT sessions live there
        )
        config += (
            f'jetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
            f'mqtt {{ listen: "127.0.0.1:{mqtt_port}" }}\n'
        )
        (tmp_path / "external.conf").write_text(config)
        await stack.enter_async_context(nats_server(tmp_path / "external.conf"))
        await hub.start()
        hub.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
        hub.auth.add_client("vera", "consumer", "viewer", password=PASSWORD)
        yield hub, mqtt_port


@contextlib.asynccontextmanager
async def paho(mqtt_port: int, hub, mqtt_id: str, user: str):
    client = Paho(
        mqtt_port, hub.ca.ca_cert_pem, mqtt_id, username=user, password=PASSWORD, tls=False
    )
    try:
        yield client
    finally:
        client.close()


async def test_an_mqtt_client_id_must_be_the_clients_own(mqtt_hub):
    hub, port = mqtt_hub
    for mqtt_id, accepted in (
        ("lamp-agent", True),
        ("lamp-agent/kitchen", True),
        ("vera", False),  # another client's: it would take vera's session over
        ("lamp-agent2", False),
        ("", False),  # nats-server makes one up, which the hub cannot tell from a chosen one
    ):
        async with paho(port, hub, mqtt_id, "lamp-agent") as client:
            code = await client.connect()
            assert (code == 0) == accepted, (mqtt_id, code)


async def test_subscriptions_follow_the_callouts_permissions(mqtt_hub):
    hub, port = mqtt_hub
    async with (
        paho(port, hub, "vera", "vera") as viewer,
        paho(port, hub, "lamp-agent", "lamp-agent") as agent,
    ):
        assert await viewer.connect() == 0 and await agent.connect() == 0
        assert await viewer.subscribe("wot/twin/#") == 1
        assert await viewer.subscribe("wot/twin/+/prop/+") == 1
        assert await viewer.subscribe("wot/client/vera/resp") == 1
        for refused in ("#", "$SYS/#", "wot/agent/lamp-agent/req", "wot/client/otto/resp"):
            assert await viewer.subscribe(refused) == REFUSED, refused
        assert await agent.subscribe("wot/agent/lamp-agent/req") == 1
        for refused in ("wot/twin/#", "wot/agent/fan-agent/req", "#"):
            assert await agent.subscribe(refused) == REFUSED, refused


@pytest.mark.parametrize("change", ["removed", "new role"])
async def test_a_changed_client_is_ejected_within_a_second(mqtt_hub, change):
    hub, port = mqtt_hub
    async with paho(port, hub, "vera/phone", "vera") as viewer:
        disconnects: list[float] = []
        connacks: list[int] = []
        viewer.client.on_disconnect = lambda *args: disconnects.append(time.monotonic())
        assert await viewer.connect() == 0
        viewer.client.on_connect = lambda c, u, flags, code, p: connacks.append(code.value)
        since = time.monotonic()
        if change == "removed":
            hub.auth.remove_client("vera")
        else:
            hub.auth.update_client("vera", role="operator")
        await until(lambda: disconnects, WITHIN * 5)
        assert disconnects[0] - since < WITHIN
        await until(lambda: connacks, 10)  # paho reconnects by itself, after a second
        if change == "removed":
            assert connacks[0] != 0  # refused by the callout
        else:
            assert connacks[0] == 0
            viewer.subacks.clear()
            assert await viewer.subscribe("wot/twin/#") == 1
