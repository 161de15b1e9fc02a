"""vocabulary/nats_close.py with nats-py against a real hub: a close that is cancelled
from outside still ends in ``CancelledError`` (only nats-py's own is dropped; the
stray one is tests/clients/test_nats.py's case)."""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlparse

import nats
import pytest

from tests.support.gate import Gate
from tests.support.running import PASSWORD
from tests.waiting import until
from vocabulary.nats_close import close_connection

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hub_options() -> dict:
    return {"nats_enabled": True}


async def test_a_close_cancelled_from_outside_is_cancelled(running):
    running.hub.auth.add_client("mia", "consumer", "viewer", password=PASSWORD)
    hub_nats = urlparse(running.hub.nats.url)
    tls = ssl.create_default_context(cadata=running.hub.ca.ca_cert_pem.decode())
    async with Gate(hub_nats.port) as gate:
        nc = await nats.connect(
            f"tls://127.0.0.1:{gate.port}", user="mia", password=PASSWORD, tls=tls
        )
        gate.freeze()  # the close waits for the hub's close_notify, which never comes
        closing = asyncio.create_task(close_connection(nc))
        await until(lambda: nc.is_closed, 10)  # the close has begun
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
