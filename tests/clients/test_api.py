"""clients/api.py: the same consumer scenario over the four bindings, against a real hub
with every binding and a real WebSocket device (``running.device``): read, write,
invoke with the device online, offline and back, observe, subscribe, and the same error
classes for the same refusals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

import clients.http
from clients import ActionHandle, connect
from clients.errors import BadRequest, Forbidden, HubError, NotFound
from tests.support.running import PASSWORD, Device, RunningHub
from tests.support.tds import LAMP, lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(120)

BINDINGS = ("http", "websocket", "mqtt", "nats")


@pytest.fixture
def hub_options() -> dict:
    return {"mqtt_enabled": True, "nats_enabled": True}


def hub_for(running: RunningHub, binding: str, client_id: str, **options: Any):
    """``connect`` to ``binding`` as ``client_id`` with PASSWORD, trusting the hub CA."""
    url = running.binding_urls()[binding]
    return connect(
        url, client_id=client_id, password=PASSWORD, ca=running.hub.ca.ca_cert_pem, **options
    )


async def report(device: Device, operation: str, name: str, value: Any) -> None:
    """A value or an event from the device, taken by the hub when this returns."""
    refusal = await device.send(
        {"messageType": "notification", "operation": operation,
         "thingID": LAMP, "name": name, "value": value}
    )  # fmt: skip
    assert refusal is None, refusal


@contextlib.asynccontextmanager
async def serving(device: Device) -> AsyncIterator[list[dict[str, Any]]]:
    """The device answers each request: an action's output is its input's level, a
    write has none. Yields the requests it answered."""
    answered: list[dict[str, Any]] = []

    async def serve() -> None:
        while True:
            request = (await device.next_request(timeout=60)).to_dict()
            level = request.get("input", {}) if request["operation"] == "invokeaction" else {}
            await device.client.answer(request, output=level.get("level"))
            answered.append(request)

    task = asyncio.create_task(serve())
    try:
        yield answered
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def lamp_device(running: RunningHub) -> Device:
    device = await running.device("lamp-agent")
    await device.client.update_thing(lamp_td())
    await report(device, "observeproperty", "brightness", 10)
    return device


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_consumer_reads_writes_invokes_observes_and_subscribes(running, binding):
    device = await lamp_device(running)
    running.add_client("mia", "consumer", "manager")
    async with hub_for(running, binding, "mia") as hub:
        assert hub.binding == binding
        lamp = await hub.consume(LAMP)
        assert lamp.id == LAMP and "fade" in lamp.td["actions"]
        assert await lamp.read_property("brightness") == 10
        assert await lamp.read_all_properties() == {"brightness": 10}

        async with lamp.observe_property("brightness") as values:
            await report(device, "observeproperty", "brightness", 20)
            assert await asyncio.wait_for(anext(values), 10) == 20
        async with lamp.subscribe_event("overheated") as events:
            await report(device, "subscribeevent", "overheated", 81.5)
            assert await asyncio.wait_for(anext(events), 10) == 81.5

        # The device online: the call returns the end.
        async with serving(device) as answered:
            assert await lamp.write_property("brightness", 30) is None
            assert await lamp.invoke_action("fade", {"level": 40}) == 40
        assert [r["operation"] for r in answered] == ["writeproperty", "invokeaction"]

        # The device offline: the hub queues the request, the call returns a handle.
        await device.close()
        queued = await lamp.invoke_action("fade", {"level": 50})
        assert isinstance(queued, ActionHandle) and queued.state == "pending"
        assert await queued.status() == "pending"
        write = await lamp.write_property("on", True)
        assert isinstance(write, ActionHandle) and write.state == "pending"
        cancelled = await lamp.invoke_action("fade", {"level": 60})
        await cancelled.cancel()
        with pytest.raises(HubError) as ended:
            await asyncio.wait_for(cancelled.result(), 10)
        assert ended.value.status == 410 and cancelled.state == "cancelled"

        # The device back: it gets what was queued, the handles end.
        device = await running.device("lamp-agent")
        async with serving(device) as answered:
            assert await asyncio.wait_for(queued.result(), 20) == 50
            assert await asyncio.wait_for(write.result(), 20) is None
        assert [r.get("input") for r in answered] == [{"level": 50}, True]
        assert queued.state == "completed" and write.state == "completed"


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_same_refusal_raises_the_same_error(running, binding):
    await lamp_device(running)
    running.add_client("vera", "consumer", "viewer")
    running.add_client("mia", "consumer", "manager")
    async with hub_for(running, binding, "vera") as hub:
        with pytest.raises(NotFound):
            await hub.consume("urn:dev:ops:no-such-lamp")
        lamp = await hub.consume(LAMP)
        with pytest.raises(NotFound):
            await lamp.read_property("no-such-property")
        with pytest.raises(NotFound):
            lamp.observe_property("no-such-property")
        with pytest.raises(NotFound):
            lamp.subscribe_event("no-such-event")
        with pytest.raises(Forbidden):
            await lamp.invoke_action("toggle")
        with pytest.raises(Forbidden):
            await lamp.write_property("brightness", 1)
        with pytest.raises(HubError) as unread:
            await lamp.read_property("on")  # never reported
        assert unread.value.status == 503
    async with hub_for(running, binding, "mia") as hub:
        lamp = await hub.consume(LAMP)
        with pytest.raises(BadRequest):
            await lamp.invoke_action("fade", {"level": 500})
        with pytest.raises(NotFound):
            await lamp.invoke_action("no-such-action")


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_directory_is_browsed_and_searched(running, binding):
    await lamp_device(running)
    running.add_client("vera", "consumer", "viewer")
    # Served over HTTPS; on a bus the client finds it in the hub's TD, or is told where.
    for where in ({}, {"http_url": running.url}):
        async with hub_for(running, binding, "vera", **where) as hub:
            ids = [td["id"] async for td in hub.things()]
            assert LAMP in ids
            assert await hub.search("$[?@.title=='Lamp'].id") == [LAMP]


@pytest.mark.parametrize("binding", BINDINGS)
async def test_history_is_read_the_same_way_on_every_binding(running, binding, monkeypatch):
    device = await lamp_device(running)  # brightness 10
    for level in (11, 12):
        await report(device, "observeproperty", "brightness", level)
    await report(device, "subscribeevent", "overheated", 81.5)
    running.add_client("vera", "consumer", "viewer")
    async with hub_for(running, binding, "vera") as hub:
        lamp = await hub.consume(LAMP)
        oldest = await lamp.history("brightness", order="oldest")
        assert [item["value"] for item in oldest] == [10, 11, 12]
        assert [item["value"] async for item in lamp.history("brightness", limit=2)] == [12, 11]
        since = datetime.fromisoformat(oldest[1]["time"])
        # from that millisecond on, newest first (10 too, when it came in the same ms)
        expected = [i["value"] for i in oldest if datetime.fromisoformat(i["time"]) >= since]
        assert [item["value"] for item in await lamp.history("brightness", since=since)] == (
            expected[::-1]
        )
        assert [item["value"] for item in await lamp.history("overheated", event=True)] == [81.5]
        (bucket,) = await lamp.history("brightness", step="1w")
        assert (bucket["count"], bucket["min"], bucket["max"], bucket["last"]) == (3, 10, 12, 12)

        monkeypatch.setattr(clients.http, "HISTORY_PAGE", 2)  # the pages are followed
        values = [item["value"] async for item in lamp.history("brightness", order="oldest")]
        assert values == [10, 11, 12]
        assert [item["value"] for item in await lamp.history("brightness", limit=3)] == [12, 11, 10]

        for bad in ({"order": "sideways"}, {"step": "fortnight"}, {"limit": 0}, {"since": "noon"}):
            with pytest.raises(BadRequest):
                await lamp.history("brightness", **bad)
        with pytest.raises(NotFound):
            await lamp.history("no-such-property")

    # An agent reads its own Thing's history, not another agent's.
    async with hub_for(running, binding, "lamp-agent") as hub:
        lamp = await hub.consume(lamp_td())
        assert len(await lamp.history("brightness")) == 3
    running.add_client("sign-agent", "agent", "agent")
    async with hub_for(running, binding, "sign-agent") as hub:
        lamp = await hub.consume(lamp_td())
        with pytest.raises(Forbidden):
            await lamp.history("brightness")


@pytest.mark.parametrize("binding", BINDINGS)
async def test_the_state_is_read_the_same_way_on_every_binding(running, binding):
    device = await lamp_device(running)  # brightness 10
    await device.close()
    running.add_client("mia", "consumer", "manager")
    async with hub_for(running, binding, "mia") as hub:
        lamp = await hub.consume(LAMP)
        assert isinstance(await lamp.write_property("brightness", 60, wait=0), ActionHandle)
        state = await lamp.read_state()
        brightness = state["properties"]["brightness"]
        assert brightness["reported"]["value"] == 10 and brightness["desired"]["value"] == 60
        assert brightness["desired"]["senderID"] == "mia" and state["delta"] == {"brightness": 60}
        with pytest.raises(NotFound):
            await (await hub.consume({**lamp_td(), "id": "urn:dev:ops:nothing"})).read_state()


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_twin_td_gives_the_hubs_address_and_the_thing(running, binding):
    await lamp_device(running)
    running.add_client("vera", "consumer", "viewer")
    async with hub_for(running, "http", "vera") as hub:
        twin_td = (await hub.consume(LAMP)).td
    ca = running.hub.ca.ca_cert_pem
    async with connect(twin_td, binding=binding, client_id="vera", password=PASSWORD, ca=ca) as hub:
        assert hub.binding == binding
        lamp = await hub.consume(twin_td)
        assert await lamp.read_property("brightness") == 10
        assert await hub.search("$[?@.title=='Lamp'].id") == [LAMP]  # its HTTPS forms

    # Over a connection, a TD's forms do not choose the way: the hub does, by the id.
    elsewhere = lamp_td()  # the device's own TD: its forms name the device
    async with hub_for(running, binding, "vera") as hub:
        assert await (await hub.consume(elsewhere)).read_property("brightness") == 10
        with pytest.raises(ValueError):
            await hub.consume({"title": "no id"})
    with pytest.raises(ValueError):  # the device's forms are no hub's over MQTT
        connect(elsewhere, binding="mqtt", client_id="vera")


# -- the device side -------------------------------------------------------------------


@pytest.mark.parametrize("binding", BINDINGS)  # over https: the same server's WebSocket
async def test_a_device_exposes_a_thing_and_serves_requests(running, binding):
    running.add_client("lamp-agent", "agent", "agent")
    running.add_client("mia", "consumer", "manager")
    written: list[Any] = []
    async with (
        hub_for(running, binding, "lamp-agent") as agent,
        hub_for(running, "http", "mia") as consumer,
    ):
        device = await agent.expose(lamp_td())
        device.set_action_handler("fade", lambda input: input["level"])
        device.set_property_write_handler("brightness", written.append)
        lamp = await consumer.consume(LAMP)

        await device.emit_property_change("brightness", 10)
        await until(lambda: lamp.read_all_properties(), 10)
        assert await lamp.read_property("brightness") == 10
        async with lamp.subscribe_event("overheated") as events:
            await device.emit_event("overheated", 81.5)
            assert await asyncio.wait_for(anext(events), 10) == 81.5

        assert await lamp.invoke_action("fade", {"level": 40}) == 40
        assert await lamp.write_property("brightness", 30) is None
        assert written == [30]
        with pytest.raises(HubError) as unhandled:  # the device has no handler for it
            await lamp.invoke_action("toggle")
        assert unhandled.value.status == 501

    # Requests queued while the device was away are handed to its handlers on connect.
    async with hub_for(running, "http", "mia") as consumer:
        lamp = await consumer.consume(LAMP)
        queued = await lamp.invoke_action("fade", {"level": 50})
        assert isinstance(queued, ActionHandle) and queued.state == "pending"
        async with hub_for(running, binding, "lamp-agent") as agent:
            device = await agent.expose(lamp_td())
            device.set_action_handler("fade", lambda input: input["level"])
            assert await asyncio.wait_for(queued.result(), 20) == 50
