"""clients/device.py's Outbox: what a device emitted while the hub was unreachable,
values coalesced per property, events in order up to a limit; and the same rules end to
end, over each device binding, while a real hub restarts on the same home and ports."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clients import connect
from clients.device import Outbox
from tests.support.gate import Gate
from tests.support.running import PASSWORD, started_hub
from tests.support.tds import LAMP, lamp_td
from tests.waiting import until


def test_values_are_coalesced_per_property_and_events_kept_in_order():
    outbox = Outbox(max_events=3)
    outbox.add_value("urn:lamp", "brightness", 10)
    outbox.add_event("urn:lamp", "overheated", 80)
    outbox.add_value("urn:lamp", "on", True)
    outbox.add_value("urn:lamp", "brightness", 20)  # replaces 10, now the newest value
    outbox.add_event("urn:lamp", "overheated", 81)
    assert len(outbox) == 4
    assert outbox.take() == [
        ("property", "urn:lamp", "on", True),
        ("property", "urn:lamp", "brightness", 20),
        ("event", "urn:lamp", "overheated", 80),
        ("event", "urn:lamp", "overheated", 81),
    ]
    assert len(outbox) == 0 and outbox.take() == []


def test_past_the_limit_the_oldest_events_are_dropped_and_counted():
    outbox = Outbox(max_events=2)
    for data in range(5):
        outbox.add_event("urn:lamp", "overheated", data)
    assert [item[3] for item in outbox.take()] == [3, 4]
    assert outbox.dropped == 3


# -- a hub restart ----------------------------------------------------------------------

BUSES = {"mqtt_enabled": True, "nats_enabled": True}


def device_url(binding: str, port: int) -> str:
    return {
        "websocket": f"wss://127.0.0.1:{port}/ws",
        "mqtt": f"mqtts://127.0.0.1:{port}",
        "nats": f"nats://127.0.0.1:{port}",
    }[binding]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("binding", ("websocket", "mqtt", "nats"))
async def test_what_a_device_emits_while_the_hub_restarts_follows_the_outbox_rules(
    tmp_path, binding
):
    home = tmp_path / "home"
    first_hub = contextlib.AsyncExitStack()
    first = await first_hub.enter_async_context(started_hub(home, **BUSES))
    try:
        first.add_client("lamp-agent", "agent", "agent")
        first.add_client("mia", "consumer", "manager")
        ca = first.hub.ca.ca_cert_pem
        ports = first.listener_ports()
        behind = {"websocket": "http_port", "mqtt": "mqtt_port", "nats": "nats_port"}[binding]
        # The device reaches the hub through a gate: held back after the restart until
        # the consumer below is subscribed, so it sees what the outbox sends.
        async with (
            Gate(ports[behind]) as gate,
            connect(
                device_url(binding, gate.port), client_id="lamp-agent", password=PASSWORD, ca=ca
            ) as agent,
        ):
            device = await agent.expose(lamp_td())
            outbox = device.link.outbox
            outbox.max_events = 3  # a small limit, so that some are dropped
            await device.emit_property_change("brightness", 1)

            await first_hub.aclose()  # the hub stops (and its store closes)
            await until(lambda: not device.link.connected, 10)
            gate.shut()
            for level in (2, 3, 4):
                await device.emit_property_change("brightness", level)
            await device.emit_property_change("on", True)
            for data in range(80, 85):
                await device.emit_event("overheated", data)
            assert len(outbox) == 2 + 3 and outbox.dropped == 2

            async with (
                started_hub(home, **BUSES, **ports) as second,
                connect(second.url, client_id="mia", password=PASSWORD, ca=ca) as consumer,
            ):
                lamp = await consumer.consume(LAMP)
                async with (
                    lamp.observe_property("brightness") as values,
                    lamp.subscribe_event("overheated") as events,
                ):
                    gate.open()  # the device reconnects and sends its outbox
                    # The latest value of each property, then the events kept, in order.
                    assert await asyncio.wait_for(anext(values), 30) == 4
                    assert [await asyncio.wait_for(anext(events), 10) for _ in range(3)] == [
                        82,
                        83,
                        84,
                    ]
                    assert await lamp.read_property("on") is True
                    # A barrier: a value emitted now comes next, nothing came in between.
                    await until(lambda: device.link.connected and not outbox, 10)
                    await device.emit_property_change("brightness", 50)
                    assert await asyncio.wait_for(anext(values), 10) == 50
    finally:
        await first_hub.aclose()
