"""A real hub (LevelDB in a temp dir, the hub CA, HTTPS and WebSocket on 127.0.0.1, a
free port) and aiohttp clients that trust its CA. Devices are real WebSocket agents
(``running.device``: the project's client on the hub's own /ws endpoint); a few tests
still play one with a router connection (``running.agent``), as a binding would hand
messages over."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bucketstore import open_store
from clients.websocket import WsClient
from hub.config import Config
from hub.runtime import Hub
from tests.support.ws import ws_url
from tests.waiting import until
from vocabulary.envelope import Message, new_id, parse_message
from vocabulary.identity import Client

PASSWORD = "correct horse battery"
# Every client may read the login Thing's TD: the cheapest request, used as a barrier.
BARRIER = ("readthing", "urn:wothub:authn")


class Device:
    """A device connected over the hub's WebSocket binding with the project's client
    (``clients/websocket.py``) and a token, as a real agent connects. Messages
    come and go as on the wire; what the hub sends is handed to tests as envelope
    ``Message`` objects, like a router connection's."""

    def __init__(self, running: RunningHub, client_id: str, token: str) -> None:
        self.running = running
        self.client_id = client_id
        # Its Things: those its agent owned when it connected, then those it registered
        # (tests.support.devices), in that order.
        self.things: list[str] = running.hub.twin.things_of(client_id)
        self._requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[Message]] = {}  # correlationID -> response
        self._errors: dict[str, Message] = {}  # error responses to reports and answers
        # Requests queued while the device was away come before connect() returns.
        self.client = WsClient(
            ws_url(running),
            ca=running.ssl,
            token=token,
            reconnect=False,
            on_request=self._requests.put_nowait,
            on_message=self._received,
            max_queue=100,  # the client's own queue of these, unread here
        )

    def _received(self, wire: dict[str, Any]) -> None:
        """A response nobody in the client waited for (the hub sends an agent nothing
        else on its own): to the request sent with ``send``, or an error response to a
        report or an answer. Several tasks may send at once."""
        message = _message(wire)
        waiter = self._waiting.pop(message.correlation_id or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
        elif message.correlation_id:
            self._errors[message.correlation_id] = message

    async def send(self, raw: dict[str, Any], timeout: float = 10.0) -> Message | None:
        """Send one envelope message as is. A request returns the hub's response; a
        report or an answer returns the hub's error response for it, or None when there
        was none (a barrier request behind it proves that: frames are handled in order)."""
        raw = dict(raw)
        if raw["messageType"] == "request":
            correlation_id = raw.setdefault("correlationID", new_id())
            waiter = self._waiting[correlation_id] = asyncio.get_running_loop().create_future()
            try:
                await self.client.send(raw)
                async with asyncio.timeout(timeout):
                    return await waiter
            finally:
                self._waiting.pop(correlation_id, None)
        raw.setdefault("messageID", new_id())
        await self.client.send(raw)
        await self.client.request(*BARRIER, timeout=timeout)
        for key in (raw["messageID"], raw.get("correlationID")):
            error = self._errors.pop(key, None) if key else None
            if error is not None:
                return error
        return None

    async def next_request(self, timeout: float = 5.0) -> Message:
        """The next request the hub sent this device (invokeaction, writeproperty,
        cancelaction)."""
        async with asyncio.timeout(timeout):
            return _message(await self._requests.get())

    def pending(self) -> int:
        """Requests received and not taken yet."""
        return self._requests.qsize()

    async def close(self) -> None:
        """Disconnect, and wait until the hub has seen it (what is sent to the device
        from then on waits in the hub)."""
        router = self.running.hub.router
        before = router.open_connections().get("websocket", 0)
        await self.client.close()
        await until(lambda: router.open_connections().get("websocket", 0) < before, 5)


def _message(wire: dict[str, Any]) -> Message:
    """What the hub sent, as the envelope type (checked by the strict parser)."""
    return parse_message(wire, wire.get("senderID"))


class RunningHub:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.url = hub.http_server.url
        self.ssl = ssl.create_default_context(cadata=hub.ca.ca_cert_pem.decode())
        self.devices: list[Device] = []
        self.stopped = False

    async def stop(self) -> None:
        """Stop the hub now (a test of what stopping does)."""
        self.stopped = True
        await self.hub.stop()

    def session(self, token: str | None = None, **kwargs) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return aiohttp.ClientSession(
            self.url, headers=headers, connector=aiohttp.TCPConnector(ssl=self.ssl), **kwargs
        )

    def binding_urls(self) -> dict[str, str]:
        """Where a client reaches each binding (MQTT and NATS when they are enabled)."""
        hub = self.hub
        urls = {"http": self.url, "websocket": ws_url(self)}
        if hub.config.mqtt_enabled:
            urls["mqtt"] = f"mqtts://127.0.0.1:{hub.mqtt.port}"
        if hub.config.nats_enabled:
            urls["nats"] = hub.nats.url
        return urls

    def listener_ports(self) -> dict[str, int]:
        """The hub's ports as configuration options: a restart binds the same ones."""
        hub = self.hub
        return {
            "http_port": hub.http_server.port,
            "mqtt_port": hub.mqtt.port,
            "nats_port": hub.nats.server.port,
            "nats_ws_port": hub.nats.server.ws_port,
        }

    def add_client(self, client_id: str, kind: str = "consumer", role: str = "viewer") -> str:
        """Add a client with PASSWORD; returns a token for it."""
        self.hub.auth.add_client(client_id, kind, role, password=PASSWORD)
        return self.hub.auth.new_token(client_id)["token"]

    async def device(self, client_id: str) -> Device:
        """A device connected over the WebSocket binding with a token (the account is
        added, as an agent with PASSWORD, if it is not there yet)."""
        if self.hub.auth.accounts.get(client_id) is None:
            self.hub.auth.add_client(client_id, "agent", "agent", password=PASSWORD)
        device = Device(self, client_id, self.hub.auth.new_token(client_id)["token"])
        await device.client.connect()
        self.devices.append(device)
        return device

    async def close_devices(self) -> None:
        """Close the devices' clients (before the hub stops, or after it stopped them)."""
        for device in self.devices:
            await device.client.close()

    def agent(self, client_id: str):
        """A device connected through the router's agent interface (as a binding would);
        for tests of the router or the hub's metrics, not of how devices connect."""
        if self.hub.auth.accounts.get(client_id) is None:
            self.hub.auth.add_client(client_id, "agent", "agent", password=PASSWORD)
        return self.hub.router.connect(Client(client_id, "agent"), "test")

    def send(self, connection, raw: dict):
        """An agent's message through the router, as a binding hands it over."""
        return self.hub.router.handle(connection, parse_message(raw, connection.client.id))

    def add_thing(self, agent_id: str, td: dict) -> None:
        """``td`` registered for ``agent_id`` through the router (as a binding would), the
        agent then disconnected: the Thing is there, its device offline."""
        agent = self.agent(agent_id)
        request = {"messageType": "request", "operation": "updatething", "correlationID": "r"}
        response = self.send(agent, {**request, "input": td})
        assert response.error is None, response.error
        self.hub.router.disconnect(agent)


def hub_config(home, **overrides) -> Config:
    """A hub configuration for tests: every listener on 127.0.0.1 and a free port; the
    bus bindings off unless asked for (their tests enable them)."""
    options = {
        "http_host": "127.0.0.1",
        "http_port": 0,
        "sync_wait": 0.5,
        "action_timeout": 1.0,
        "flush_interval": 0.2,
        "mqtt_enabled": False,
        "mqtt_host": "127.0.0.1",
        "mqtt_port": 0,
        "nats_enabled": False,
        "nats_host": "127.0.0.1",
        "nats_port": 0,
        "nats_ws_port": 0,
        **overrides,
    }
    return Config(home=home, **options)


@pytest.fixture
def hub_options() -> dict:
    """Config overrides for ``running``; a test module overrides this fixture."""
    return {}


@contextlib.asynccontextmanager
async def started_hub(home: Path, **options) -> AsyncIterator[RunningHub]:
    """A hub as ``running`` starts it (``options``: Config overrides), for a test that
    needs one of its own; stopped on exit unless the test stopped it (``stop()``). A home
    that exists is used again (a restart)."""
    config = hub_config(home, **options)
    config.home.mkdir(mode=0o700, exist_ok=True)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    running = RunningHub(hub)
    try:
        yield running
    finally:
        await running.close_devices()
        if not running.stopped:
            await hub.stop()
        store.close()


@pytest.fixture
async def running(tmp_path, hub_options):
    async with started_hub(tmp_path / "home", **hub_options) as running:
        yield running


@pytest.fixture
async def admin(running):
    """An aiohttp session logged in as an administrator."""
    token = running.add_client("ada", "consumer", "admin")
    async with running.session(token) as session:
        yield session


@pytest.fixture
async def viewer(running):
    """An aiohttp session logged in as a viewer (vera)."""
    token = running.add_client("vera", "consumer", "viewer")
    async with running.session(token) as session:
        yield session
