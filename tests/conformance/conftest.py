"""The conformance suite's fixtures: one set of tests, the binding a fixture parameter
(as tests/bucketstore runs one suite over every backend). The hub is the real one of
tests/support (``running``) with the bus bindings a test needs turned on; the clients
are the adapters of adapters.py, the only binding-specific code."""

from __future__ import annotations

import pytest

from tests.support.running import RunningHub

from .adapters import (
    HttpConsumerSide,
    MqttAgent,
    MqttConsumer,
    NatsAgentSide,
    NatsConsumerSide,
    WebSocketAgent,
    WebSocketConsumer,
    token_for,
)

BINDINGS = ("http", "websocket", "mqtt", "nats")
# Devices do not use HTTP: on the HTTP binding the agent is a WebSocket one.
AGENT_BINDINGS = ("websocket", "mqtt", "nats")
AGENT_OF = {"http": "websocket", "websocket": "websocket", "mqtt": "mqtt", "nats": "nats"}
_AGENTS = {"websocket": WebSocketAgent, "mqtt": MqttAgent, "nats": NatsAgentSide}


@pytest.fixture(params=BINDINGS)
def binding(request) -> str:
    return request.param


@pytest.fixture
def bindings_used(binding) -> set[str]:
    """The bindings the test talks over; a module testing pairs overrides this."""
    return {binding, AGENT_OF[binding]}


@pytest.fixture
def hub_options(bindings_used) -> dict:
    return {"mqtt_enabled": "mqtt" in bindings_used, "nats_enabled": "nats" in bindings_used}


class Clients:
    """Agents and consumers on any binding of one running hub; closed after the test."""

    def __init__(self, running: RunningHub) -> None:
        self.running = running
        self._open: list = []

    async def agent(self, binding: str, client_id: str = "lamp-agent"):
        agent = await _AGENTS[binding].connect(self.running, client_id)
        self._open.append(agent)
        return agent

    async def consumer(self, binding: str, client_id: str = "otto", role: str = "manager"):
        running = self.running
        if binding == "http":
            token = token_for(running, client_id, "consumer", role)
            consumer = HttpConsumerSide(running, client_id, token)
        elif binding == "websocket":
            token = token_for(running, client_id, "consumer", role)
            consumer = await WebSocketConsumer.connect(running, client_id, token)
        elif binding == "mqtt":
            consumer = await MqttConsumer.connect(running, client_id, role)
        else:
            consumer = await NatsConsumerSide.connect(running, client_id, role)
        self._open.append(consumer)
        return consumer

    async def online(self, thing_id: str) -> bool:
        """Whether the Thing's agent is connected, as the hub's presence API says."""
        async with (
            self.running.session(self._admin_token()) as session,
            session.get("/presence", params={"id": thing_id}) as response,
        ):
            assert response.status == 200, await response.text()
            return (await response.json())[thing_id]["online"]

    def _admin_token(self) -> str:
        return token_for(self.running, "conformance-admin", "consumer", "admin")

    async def close(self) -> None:
        for side in reversed(self._open):
            await side.close()


@pytest.fixture
async def clients(running):
    clients = Clients(running)
    try:
        yield clients
    finally:
        await clients.close()
