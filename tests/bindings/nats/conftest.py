"""A real hub (the ``running`` fixture of tests/support/running.py: LevelDB, HTTPS on
127.0.0.1) plus the NATS binding on the same router, auth and CA, with its managed
nats-server on free ports; nats-py clients through clients/nats.py."""

from __future__ import annotations

import asyncio
import re
import ssl
import time

import nats
import pytest

from bindings.nats import NatsBinding
from clients.nats import NatsAgent, NatsConsumer
from tests.support.running import PASSWORD
from tests.support.tds import CLICKED, lamp_td
from tests.waiting import until

LAMP = "urn:dev:ops:lamp.1/a"  # "." and "/" in the id: one percent-encoded token


def td(thing_id: str = LAMP) -> dict:
    """The shared lamp with a bus-friendly shape: a ``fade`` that takes a plain integer,
    and an event without data."""
    fade = {"input": {"type": "integer"}, "forms": [{"href": "x"}]}
    return lamp_td(thing_id, only=("brightness",), actions={"fade": fade}, events=CLICKED)


class NatsHub:
    def __init__(self, running, binding: NatsBinding) -> None:
        self.running = running
        self.hub = running.hub
        self.binding = binding
        self.url = binding.url
        self.ws_url = binding.server.ws_url
        self.ca_pem = running.hub.ca.ca_cert_pem

    def add(self, client_id: str, kind: str = "consumer", role: str = "viewer") -> None:
        self.hub.auth.add_client(client_id, kind, role, password=PASSWORD)

    async def agent(self, client_id: str, **kwargs) -> NatsAgent:
        if self.hub.auth.accounts.get(client_id) is None:
            self.add(client_id, "agent", "agent")
        if "token" not in kwargs and "certificate" not in kwargs:
            kwargs.setdefault("password", PASSWORD)
        async with asyncio.timeout(10):
            return await NatsAgent.connect(self.url, client_id, ca_pem=self.ca_pem, **kwargs)

    async def consumer(self, client_id: str, role: str = "viewer", **kwargs) -> NatsConsumer:
        if self.hub.auth.accounts.get(client_id) is None:
            self.add(client_id, "consumer", role)
        if "token" not in kwargs and "certificate" not in kwargs:
            kwargs.setdefault("password", PASSWORD)
        async with asyncio.timeout(10):
            return await NatsConsumer.connect(self.url, client_id, ca_pem=self.ca_pem, **kwargs)


class Watched:
    """A raw nats-py connection that keeps what happened to it: the server's error
    reports, when it was disconnected, whether it reconnected or gave up."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.disconnects: list[float] = []  # time.monotonic() of each
        self.reconnects = 0
        self.closed = False
        self.nc: nats.NATS | None = None

    @classmethod
    async def connect(
        cls, nats_hub: NatsHub, client_id: str | None, *, url: str | None = None, **options
    ) -> Watched:
        """``client_id`` with the test password, unless ``options`` has other credentials;
        reconnects quickly, three times at most."""
        self = cls()

        async def error_cb(exc: Exception) -> None:
            self.errors.append(str(exc))

        async def disconnected_cb() -> None:
            self.disconnects.append(time.monotonic())

        async def reconnected_cb() -> None:
            self.reconnects += 1

        async def closed_cb() -> None:
            self.closed = True

        if client_id is not None and "token" not in options:
            options.setdefault("user", client_id)
            options.setdefault("password", PASSWORD)
        options.setdefault("tls", ssl.create_default_context(cadata=nats_hub.ca_pem.decode()))
        options.setdefault("reconnect_time_wait", 0.1)
        options.setdefault("max_reconnect_attempts", 3)
        self.nc = await nats.connect(
            url or nats_hub.url,
            inbox_prefix=f"_INBOX.{client_id}" if client_id else "_INBOX",
            connect_timeout=5,
            error_cb=error_cb,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            closed_cb=closed_cb,
            **options,
        )
        return self

    async def refusals(self, ops: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Each ("publish" or "subscribe", subject) in turn; those the server refused.
        The server's error reports may come after a PONG, so ``flush`` proves nothing;
        they do come in order: a refused publish to a subject of its own is the barrier."""
        assert self.nc is not None
        self.errors.clear()
        for what, subject in ops:
            if what == "publish":
                await self.nc.publish(subject, b"{}")
            else:
                await self.nc.subscribe(subject)
        barrier = f"refusal.barrier.{len(ops)}"  # no role may publish under refusal.>
        await self.nc.publish(barrier, b"")
        await until(lambda: ("publish", barrier) in {_refusal(e) for e in self.errors})
        refused = {_refusal(error) for error in self.errors}
        asked = {(what, subject.lower()): (what, subject) for what, subject in ops}
        return {asked[key] for key in refused if key in asked}

    async def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.close()


def _refusal(error: str) -> tuple[str, str] | None:
    """("publish" or "subscribe", subject) of a permissions violation as nats-py reports
    it (in lower case)."""
    found = re.search(r'permissions violation for (publish|subscription) to "([^"]*)"', error)
    if found is None:
        return None
    return ("publish" if found[1] == "publish" else "subscribe", found[2])


@pytest.fixture
def hub_options() -> dict:
    return {"nats_enabled": True}


@pytest.fixture
async def nats_hub(running):
    binding = running.hub.nats
    clients = []
    nh = NatsHub(running, binding)
    original_agent, original_consumer = nh.agent, nh.consumer

    async def agent(*args, **kwargs):
        client = await original_agent(*args, **kwargs)
        clients.append(client)
        return client

    async def consumer(*args, **kwargs):
        client = await original_consumer(*args, **kwargs)
        clients.append(client)
        return client

    nh.agent, nh.consumer = agent, consumer
    try:
        yield nh
    finally:
        for client in clients:
            await client.close()
