"""What a device does over its connection (``running.device``, a real WebSocket agent):
register its TDs, report property values and events, answer the requests it is sent.
``thing`` is the device's first Thing (``Device.things``) unless a test names another."""

from __future__ import annotations

from tests.support.running import Device
from tests.support.tds import lamp_td
from vocabulary.envelope import new_id

AGENT = "lamp-agent"


async def register(running, agent_id: str = AGENT, td: dict | None = None) -> Device:
    """Connect the agent and register ``td`` (the shared lamp by default)."""
    return await register_all(running, agent_id, [td or lamp_td()])


async def register_all(running, agent_id: str, tds: list[dict]) -> Device:
    """Connect the agent and register its TDs, each checked to succeed."""
    device = await running.device(agent_id)
    for td in tds:
        wire = {
            "messageType": "request",
            "operation": "updatething",
            "correlationID": new_id(),
            "input": td,
        }
        response = await device.send(wire)
        assert response.error is None, response.error
        if td["id"] not in device.things:
            device.things.append(td["id"])
    return device


async def report(device: Device, name: str, value, thing: str | None = None) -> None:
    """A property value, as the device reports it (checked to be accepted)."""
    await _notify(device, "observeproperty", name, thing, value=value)


async def emit(device: Device, name: str, value=None, thing: str | None = None) -> None:
    """An event (``value`` None: an event without data)."""
    await _notify(
        device, "subscribeevent", name, thing, **({} if value is None else {"value": value})
    )


async def _notify(device: Device, operation: str, name: str, thing: str | None, **data) -> None:
    wire = {
        "messageType": "notification",
        "operation": operation,
        "thingID": thing or device.things[0],
        "name": name,
        **data,
    }
    error = await device.send(wire)
    assert error is None, error.error


async def answer(device: Device, delivered, **fields) -> None:
    """The device's response to a request it was sent (``fields``: status, output, error)."""
    wire = {
        "messageType": "response",
        "operation": delivered.operation,
        "thingID": delivered.thing_id,
        "name": delivered.name,
        "correlationID": delivered.correlation_id,
        "actionID": delivered.action_id,
        **fields,
    }
    error = await device.send(wire)
    assert error is None, error.error
