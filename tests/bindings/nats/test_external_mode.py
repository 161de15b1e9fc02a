"""docs/nats.md, Managed and external mode: with ``[nats] url`` the hub runs no
nats-server of its own but connects to an existing one, configured with the blocks the
hub generates (``NatsKeys.auth_config()``) and TLS with the hub's certificate. The keys
stay in ``<home>/nats/keys.json`` (0600) across restarts, so that configuration stays
valid: the test starts nats-server itself, once, and the hub twice."""

from __future__ import annotations

import contextlib

import pytest

from bindings.nats.server import free_port
from clients.nats import NatsAgent, NatsConsumer
from tests.support.nats_server import external_config, hub_on, nats_server
from tests.support.running import PASSWORD
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(90)


async def test_the_hub_uses_an_external_server_and_keeps_its_keys(tmp_path):
    home = tmp_path / "home"
    url = f"nats://127.0.0.1:{free_port()}"
    keys = home / "nats" / "keys.json"
    async with contextlib.AsyncExitStack() as server:
        async with hub_on(home, url) as hub:
            assert keys.stat().st_mode & 0o777 == 0o600
            kept = keys.read_bytes()
            config_path = tmp_path / "external.conf"
            config_path.write_text(external_config(hub, int(url.rsplit(":", 1)[1])))
            await server.enter_async_context(nats_server(config_path))
            await hub.start()
            assert hub.nats.server is None  # no nats-server of its own
            assert hub.nats.listeners() == {"nats": {"url": url, "external": True}}
            ca = hub.ca.ca_cert_pem
            hub.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
            hub.auth.add_client("vera", "consumer", "viewer", password=PASSWORD)
            agent = await NatsAgent.connect(url, "lamp-agent", password=PASSWORD, ca_pem=ca)
            try:
                assert (await agent.register(sign_td()))["id"] == SIGN
            finally:
                await agent.close()
        # The same home again: the same keys, so the server's configuration holds.
        async with hub_on(home, url) as again:
            assert keys.read_bytes() == kept
            await again.start()
            consumer = await NatsConsumer.connect(url, "vera", password=PASSWORD, ca_pem=ca)
            try:
                assert (await consumer.read_thing(SIGN))["id"] == SIGN
            finally:
                await consumer.close()
