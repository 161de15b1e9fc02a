"""A real hub (LevelDB in a temp dir, the hub CA, HTTPS and WebSocket on 127.0.0.1, a
free port) and aiohttp clients that trust its CA. Devices can also be played by router
connections (the router's agent interface), as a binding would hand messages over."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from auth.identity import Client
from bucketstore import open_store
from digitwin.envelope import parse_message
from hub.config import Config
from hub.runtime import Hub

PASSWORD = "correct horse battery"


class RunningHub:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.url = hub.http_server.url
        self.ssl = ssl.create_default_context(cadata=hub.ca.ca_cert_pem.decode())

    def session(self, token: str | None = None, **kwargs) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return aiohttp.ClientSession(
            self.url, headers=headers, connector=aiohttp.TCPConnector(ssl=self.ssl), **kwargs
        )

    def add_client(self, client_id: str, kind: str = "consumer", role: str = "viewer") -> str:
        """Add a client with PASSWORD; returns a token for it."""
        self.hub.auth.add_client(client_id, kind, role, password=PASSWORD)
        return self.hub.auth.new_token(client_id)["token"]

    def agent(self, client_id: str):
        """A device connected through the router's agent interface (as a binding would)."""
        if self.hub.auth.accounts.get(client_id) is None:
            self.hub.auth.add_client(client_id, "agent", "agent", password=PASSWORD)
        return self.hub.router.connect(Client(client_id, "agent"), "test")

    def send(self, connection, raw: dict):
        """An agent's message through the router, as a binding hands it over."""
        return self.hub.router.handle(connection, parse_message(raw, connection.client.id))


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


@pytest.fixture
async def running(tmp_path, hub_options):
    config = hub_config(tmp_path / "home", **hub_options)
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    await hub.start()
    try:
        yield RunningHub(hub)
    finally:
        await hub.stop()
        store.close()


@pytest.fixture
async def admin(running):
    """An aiohttp session logged in as an administrator."""
    token = running.add_client("ada", "consumer", "admin")
    async with running.session(token) as session:
        yield session
