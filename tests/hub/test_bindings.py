"""hub/bindings.py: the hub builds, starts, lists and stops its bindings by name."""

import asyncio

import pytest

from bucketstore import open_store
from hub import bindings as registry
from hub.listeners import read_listeners
from hub.runtime import Hub
from tests.support.running import hub_config
from tests.support.tds import LAMP, lamp_td
from vocabulary.envelope import parse_message
from vocabulary.identity import Client

pytestmark = pytest.mark.timeout(60)


class EchoForms:
    name = "echo"

    def __init__(self, binding):
        self.binding = binding

    def security_definitions(self):
        return {}

    def forms(self, thing_id, kind, name, affordance):
        if kind != "property":
            return []
        return [{"href": f"echo://127.0.0.1:{self.binding.port}/{name}", "op": "readproperty"}]


class EchoBinding:
    """A binding with a real listener on 127.0.0.1 that answers each line with itself."""

    name = "echo"

    def __init__(self, core):
        self.core = core
        self.forms = EchoForms(self)
        self.server = None
        self.port = 0
        self.events = []

    async def start(self):
        self.server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.events.append("started")

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()
        self.events.append("stopped")

    def listeners(self):
        return {"echo": {"host": "127.0.0.1", "port": self.port, "url": self.url}}

    @property
    def url(self):
        return f"echo://127.0.0.1:{self.port}"

    async def _echo(self, reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()


@pytest.fixture
def registered(monkeypatch):
    """The registry as it is, plus what the test registers (gone after the test)."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    return registry


def test_the_built_in_bindings_are_registered_in_start_order():
    # MQTT after NATS: nats-server is the MQTT broker
    assert registry.binding_names() == ["http", "websocket", "nats", "mqtt"]
    assert registry.registration("mqtt").address is not None  # a listener of its own
    assert registry.registration("websocket").address is None  # served over HTTPS


def test_an_unknown_binding_is_refused_with_the_known_names():
    with pytest.raises(KeyError, match="unknown binding 'pigeon'; known: http, websocket"):
        registry.registration("pigeon")


async def test_a_registered_binding_is_built_started_listed_and_stopped(tmp_path, registered):
    built_with = {}

    def echo(hub, built):
        built_with.update(built)
        return EchoBinding(hub.router)

    registered.register_binding("echo", echo, address=lambda config: ("127.0.0.1", 0))
    registered.register_binding("off", lambda hub, built: None, address=None)
    assert registered.binding_names()[-2:] == ["echo", "off"]

    config = hub_config(tmp_path / "home")
    config.home.mkdir(mode=0o700)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    try:
        assert list(hub.bindings) == ["http", "websocket", "echo"]  # mqtt, nats, off: off
        assert list(built_with) == ["http", "websocket"]  # what was built before it
        echo_binding = hub.bindings["echo"]
        assert echo_binding.core is hub.router
        await hub.start()
        assert echo_binding.events == ["started"]
        assert read_listeners(config.home)["listeners"]["echo"]["url"] == echo_binding.url
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_binding.port)
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        writer.close()
        # Its forms are in every twin TD.
        hub.auth.add_client("lamp-agent", "agent", "agent")
        agent = hub.router.connect(Client("lamp-agent", "agent"), "test")
        register = {"messageType": "request", "operation": "updatething", "input": lamp_td()}
        assert hub.router.handle(agent, parse_message(register, "lamp-agent")).error is None
        hrefs = [f["href"] for f in hub.router.twin_td(LAMP)["properties"]["on"]["forms"]]
        assert f"{echo_binding.url}/on" in hrefs
    finally:
        await hub.stop()
        store.close()
    assert echo_binding.events == ["started", "stopped"]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", echo_binding.port)
