"""clients/nats.py against a real hub: a client closed while nats-py is reconnecting
closes, instead of raising a ``CancelledError`` nobody asked for
(vocabulary/nats_close.py says why nats-py raises one)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from clients.nats import NatsConsumer
from tests.support.gate import Gate
from tests.support.running import PASSWORD
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hub_options() -> dict:
    return {"nats_enabled": True}


async def test_a_client_closed_while_it_reconnects_closes(running):
    running.hub.auth.add_client("mia", "consumer", "viewer", password=PASSWORD)
    hub_nats = urlparse(running.hub.nats.url)
    async with Gate(hub_nats.port) as gate:
        client = await NatsConsumer.connect(
            f"tls://127.0.0.1:{gate.port}",
            "mia",
            password=PASSWORD,
            ca_pem=running.hub.ca.ca_cert_pem,
            ping_interval=0.2,  # a silent hub is found out after two unanswered pings
            max_outstanding_pings=1,
        )
        gate.freeze()
        await until(lambda: client.nc.is_reconnecting, 10)
        # nats-py has scheduled its reconnect task; one turn of the loop runs it to its
        # wait for the old TLS socket to close, which the frozen gate keeps waiting.
        await asyncio.sleep(0)
        await client.close()
        assert client.nc.is_closed
