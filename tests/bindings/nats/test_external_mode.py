"""docs/nats.md, Managed and external mode: with ``[nats] url`` the hub runs no
nats-server of its own but connects to an existing one, configured with the blocks the
hub generates (``NatsKeys.auth_config()``) and TLS with the hub's certificate. The keys
stay in ``<home>/nats/keys.json`` (0600) across restarts, so that configuration stays
valid: the test starts nats-server itself, once, and the hub twice."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from bindings.nats.server import find_binary
from bucketstore import open_store
from clients.nats import NatsAgent, NatsConsumer
from hub.runtime import Hub
from tests.support.running import PASSWORD, hub_config
from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def external_config(hub: Hub, port: int) -> str:
    """What docs/nats.md tells an operator to configure: a TLS listener with the hub's
    certificate and the hub's accounts and auth_callout blocks."""
    ca = hub.ca
    return (
        f'listen: "127.0.0.1:{port}"\n'
        f'tls {{ cert_file: "{ca.server_cert_path}", key_file: "{ca.server_key_path}", '
        f'ca_file: "{ca.ca_cert_path}", timeout: 2 }}\n' + hub.nats.keys.auth_config()
    )


@contextlib.asynccontextmanager
async def nats_server(config_path):
    process = await asyncio.create_subprocess_exec(
        find_binary(),
        "-c",
        str(config_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    drain = None
    try:
        lines = []
        async with asyncio.timeout(20):
            while b"Server is ready" not in (line := await process.stderr.readline()):
                assert line, f"nats-server exited: {b''.join(lines).decode()}"
                lines.append(line)
        drain = asyncio.create_task(process.stderr.read())  # keeps its pipe from filling
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
        if drain is not None:
            drain.cancel()


@contextlib.asynccontextmanager
async def hub_on(home, url: str):
    config = hub_config(home, nats_enabled=True, nats_url=url)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    try:
        yield hub
    finally:
        await hub.stop()
        store.close()


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
