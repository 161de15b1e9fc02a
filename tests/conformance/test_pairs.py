"""Where the agent's binding and the consumer's may differ: an action invoked on one
binding is answered by an agent on another, and the output comes back. Every agent
binding (WebSocket, MQTT, NATS) with every consumer binding (HTTP, WebSocket, MQTT,
NATS)."""

from __future__ import annotations

import pytest

from tests.support.tds import LAMP, lamp_td

from .conftest import AGENT_BINDINGS, BINDINGS

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(
    params=[(agent, consumer) for agent in AGENT_BINDINGS for consumer in BINDINGS],
    ids=lambda pair: f"{pair[0]}-agent-{pair[1]}-consumer",
)
def pair(request) -> tuple[str, str]:
    return request.param


@pytest.fixture
def bindings_used(pair) -> set[str]:
    return set(pair)


async def test_an_invoked_action_is_answered_by_the_agent_and_its_output_returned(clients, pair):
    agent_binding, consumer_binding = pair
    agent = await clients.agent(agent_binding)
    await agent.register(lamp_td())
    consumer = await clients.consumer(consumer_binding, role="operator")
    action_id, state = await consumer.invoke(LAMP, "fade", {"level": 30})
    assert state in ("delivered", "pending")  # HTTP's ActionStatus keeps "pending"
    request = await agent.next_request()
    assert request["operation"] == "invokeaction"
    assert (request["thingID"], request["name"], request["input"]) == (LAMP, "fade", {"level": 30})
    assert request["actionID"] == action_id
    assert request["senderID"] == "otto"
    await agent.answer(request, 30)
    outcome = await consumer.outcome(LAMP, action_id)
    assert (outcome["status"], outcome["output"]) == ("completed", 30)
    assert outcome["senderID"] == "otto"
