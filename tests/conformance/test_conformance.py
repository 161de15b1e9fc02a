"""The contract every binding keeps (docs/messages.md and each binding's page); runs once
per binding: HTTP+SSE (consumers; its devices are WebSocket agents), WebSocket, MQTT and
NATS. What differs by design (how a notification looks on the wire, how a consumer that
falls behind is told) is spelled out per binding here, from the docs."""

from __future__ import annotations

import re

import pytest

from tests.support.tds import LAMP, lamp_td
from tests.waiting import until

from .adapters import Refused, token_for
from .conftest import AGENT_OF

pytestmark = pytest.mark.timeout(60)

# The scheme of each binding's forms in a twin TD.
FORM_SCHEME = {"http": "https://", "websocket": "wss://", "mqtt": "mqtts://", "nats": "nats://"}
# Bindings whose notifications are envelopes; SSE sends the value as the event's data
# (the name as its event), MQTT twin topics the raw value (docs/mqtt.md).
ENVELOPED = {"websocket", "nats"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# How a consumer that falls behind is cut off: docs/websocket.md (1013), docs/http.md
# (an error event with status 503, then the stream ends), docs/digitwin.md ("its binding
# tells the client and disconnects it"); NATS and MQTT (through nats-server) tell nothing
# (see the report of issue 18).
CUT_OFF = {
    "http": "error 503",
    "websocket": "close 1013 too slow: notifications piled up",
    "mqtt": "subscriptions dropped",  # MQTT goes through nats-server too
    "nats": "subscriptions dropped",
}
OTHER_LAMP = "urn:dev:ops:32473-lamp-2"


def lamp_with_pin() -> dict:
    """The lamp with a write-only property (a PIN is set, never read back)."""
    td = lamp_td()
    td["properties"]["pin"] = {
        "type": "string",
        "writeOnly": True,
        "forms": [{"href": "https://lamp.local/pin"}],
    }
    return td


async def registered_lamp(clients, binding: str, td: dict | None = None):
    agent = await clients.agent(AGENT_OF[binding])
    await agent.register(td or lamp_td())
    return agent


async def offline_lamp(clients, binding: str) -> None:
    """The lamp registered by its agent, which then went away."""
    agent = await registered_lamp(clients, binding)
    await agent.close()
    await until(lambda: _offline(clients))


async def _offline(clients) -> bool:
    return not await clients.online(LAMP)


# -- registering and reading ---------------------------------------------------------------


async def test_a_registered_td_is_read_back_with_the_bindings_forms(clients, binding):
    agent = await clients.agent(AGENT_OF[binding])
    assert await agent.register(lamp_td()) == {"id": LAMP, "created": True}
    assert await agent.register(lamp_with_pin()) == {"id": LAMP, "created": False}
    consumer = await clients.consumer(binding, role="viewer")
    td = await consumer.read_thing(LAMP)
    assert td["id"] == LAMP and td["title"] == "Lamp"
    assert set(td["properties"]) == {"on", "brightness", "model", "pin"}
    # Writes have no MQTT form: over MQTT they go to the client's own request topic.
    writable = form_ops(td["properties"]["brightness"], binding)
    assert ("writeproperty" in writable) == (binding != "mqtt"), writable
    assert "writeproperty" not in form_ops(td["properties"]["model"], binding)
    # Issue 18: the WebSocket and NATS forms offered reads of write-only properties.
    pin = form_ops(td["properties"]["pin"], binding)
    assert not pin & {"readproperty", "observeproperty", "unobserveproperty"}, pin
    # (MQTT has no form for a write-only property: docs/mqtt.md.)
    assert ("writeproperty" in pin) == (binding != "mqtt"), pin


def form_ops(affordance: dict, binding: str) -> set[str]:
    """The operations the binding's forms of one affordance offer."""
    offered: set[str] = set()
    for form in affordance["forms"]:
        if form["href"].startswith(FORM_SCHEME[binding]):
            op = form.get("op", [])
            offered.update([op] if isinstance(op, str) else op)
    return offered


# -- notifications -------------------------------------------------------------------------


async def test_a_reported_value_reaches_its_observer(clients, binding):
    agent = await registered_lamp(clients, binding)
    consumer = await clients.consumer(binding, role="viewer")
    await consumer.observe_property(LAMP, "brightness")
    assert await agent.report_property(LAMP, "brightness", 40) is None
    note = await consumer.next_note()
    assert (note.thing_id, note.name, note.value) == (LAMP, "brightness", 40)
    assert (note.envelope is not None) == (binding in ENVELOPED)
    if binding in ENVELOPED:
        envelope = note.envelope
        assert envelope["messageType"] == "notification"
        assert envelope["operation"] == "observeproperty"
        assert TIMESTAMP.match(envelope["timestamp"]), envelope
        assert envelope["messageID"]
    if binding == "http":
        assert re.fullmatch(r"[^-]+-\d+", note.event_id), note.event_id  # <epoch>-<seq>
    assert await consumer.read_property(LAMP, "brightness") == 40


async def test_an_event_reaches_its_subscriber(clients, binding):
    agent = await registered_lamp(clients, binding)
    consumer = await clients.consumer(binding, role="viewer")
    await consumer.subscribe_event(LAMP, "overheated")
    assert await agent.report_event(LAMP, "overheated", 81.5) is None
    note = await consumer.next_note()
    assert (note.thing_id, note.name, note.value) == (LAMP, "overheated", 81.5)
    if binding in ENVELOPED:
        assert note.envelope["operation"] == "subscribeevent"
        assert note.envelope["messageType"] == "notification"


# -- requests while the agent is away --------------------------------------------------------


async def test_requests_queued_while_the_agent_is_away_come_in_order_when_it_returns(
    clients, binding
):
    await offline_lamp(clients, binding)
    consumer = await clients.consumer(binding)
    action_id, state = await consumer.invoke(LAMP, "fade", {"level": 30})
    assert state == "pending"
    assert await consumer.write_property(LAMP, "brightness", 70) == "pending"
    assert (await consumer.query_action(LAMP, action_id))["status"] == "pending"

    agent = await clients.agent(AGENT_OF[binding])  # back
    fade = await agent.next_request()
    assert (fade["operation"], fade["name"], fade["input"]) == (
        "invokeaction",
        "fade",
        {"level": 30},
    )
    assert fade["actionID"] == action_id
    write = await agent.next_request()
    assert (write["operation"], write["name"], write["input"]) == (
        "writeproperty",
        "brightness",
        70,
    )
    await agent.answer(fade, 30)
    outcome = await consumer.outcome(LAMP, action_id)
    assert (outcome["status"], outcome["output"]) == ("completed", 30)


async def test_a_cancelled_request_is_never_delivered(clients, binding):
    await offline_lamp(clients, binding)
    consumer = await clients.consumer(binding)
    cancelled_id, _ = await consumer.invoke(LAMP, "fade", {"level": 10})
    status = await consumer.cancel_action(LAMP, cancelled_id)
    assert status["status"] == "cancelled"
    toggle_id, _ = await consumer.invoke(LAMP, "toggle")  # the barrier
    agent = await clients.agent(AGENT_OF[binding])
    first = await agent.next_request()
    assert (first["name"], first["actionID"]) == ("toggle", toggle_id)
    assert (await consumer.query_action(LAMP, cancelled_id))["status"] == "cancelled"


# -- refusals: the same problem status on every binding ----------------------------------------

REFUSED = {
    "an unknown Thing": 404,
    "a write of a readOnly property": 400,
    "an action input its schema refuses": 400,
    "a viewer invoking an action": 403,
    "a read of a writeOnly property": 405,
    "an agent reporting for a Thing it does not own": 403,
}


async def test_refusals_carry_the_same_status_on_every_binding(clients, binding):
    await registered_lamp(clients, binding, lamp_with_pin())
    viewer = await clients.consumer(binding, "vic", role="viewer")
    manager = await clients.consumer(binding, "otto", role="manager")
    intruder = await clients.agent(AGENT_OF[binding], "intruder")
    await intruder.register(lamp_td(OTHER_LAMP))
    calls = {
        "an unknown Thing": viewer.read_property("urn:dev:ops:no-such-lamp", "on"),
        "a write of a readOnly property": manager.write_property(LAMP, "model", "X1"),
        "an action input its schema refuses": manager.invoke(LAMP, "fade", {"level": 500}),
        "a viewer invoking an action": viewer.invoke(LAMP, "toggle"),
        "a read of a writeOnly property": viewer.read_property(LAMP, "pin"),
    }
    statuses = {case: await _refusal_status(call) for case, call in calls.items()}
    refusal = await intruder.report_property(LAMP, "brightness", 1)
    statuses["an agent reporting for a Thing it does not own"] = (refusal or {}).get("status")
    # On NATS the server itself refuses a publish the client's permissions do not allow
    # (docs/nats.md): the client raises that as the same 403.
    assert statuses == REFUSED
    assert await intruder.report_property(OTHER_LAMP, "brightness", 1) is None  # its own


async def _refusal_status(call) -> int | str | None:
    try:
        await call
    except Refused as refused:
        return refused.status
    return "accepted"


# -- a consumer that falls behind ---------------------------------------------------------------


async def test_a_consumer_that_falls_behind_is_cut_off_and_the_hub_goes_on(
    running, clients, binding
):
    # The router's bound on queued notifications (1000; no configuration key sets it)
    # made 2: one report of the lamp's three properties overflows it at once, before
    # the binding's writer can send anything, so nothing of the backlog goes out.
    running.hub.router.max_notifications = 2
    token_for(running, "lamp-agent", "agent", "agent")
    device = await running.device("lamp-agent")
    await device.client.register(lamp_td())
    consumer = await clients.consumer(binding, role="viewer")
    stalled = await consumer.observe_all_and_stall(LAMP)
    report = {"messageType": "notification", "operation": "observeallproperties"}
    values = {"on": True, "brightness": 5, "model": "X1"}
    assert await device.send({**report, "thingID": LAMP, "value": values}) is None
    assert await consumer.cut_off(stalled) == CUT_OFF[binding]
    assert consumer.notes.empty()  # the backlog was dropped, not sent
    assert await device.send({**report, "thingID": LAMP, "value": {"brightness": 6}}) is None
    fresh = await clients.consumer(binding, "vera", role="viewer")
    assert await fresh.read_property(LAMP, "brightness") == 6
