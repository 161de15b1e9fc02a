"""A client that is removed, disabled, or whose role changes loses its open connections:
its subscriptions were checked for who it was, so its streams end and it reconnects,
checked as who it is now. Real SSE and WebSocket clients; the device is a WebSocket agent."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support.devices import register, report
from tests.support.http import url
from tests.support.sse import stream
from tests.support.tds import SLASHED_LAMP as LAMP
from tests.support.tds import http_lamp_td
from tests.support.ws import ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


async def ended(sse) -> bool:
    """True once the stream has ended (read to its end, events before it skipped)."""
    async with asyncio.timeout(10):
        while True:
            try:
                await sse.next(5)
            except (EOFError, aiohttp.ClientPayloadError, ConnectionError):
                return True


@pytest.mark.parametrize(
    "change",
    [
        lambda auth: auth.remove_client("vera"),
        lambda auth: auth.update_client("vera", enabled=False),
        lambda auth: auth.update_client("vera", role="operator"),
    ],
    ids=["removed", "disabled", "role changed"],
)
async def test_an_sse_stream_of_a_changed_client_ends(running, change):
    conn = await register(running, td=http_lamp_td())
    token = running.add_client("vera", "consumer", "viewer")
    others = running.add_client("otto", "consumer", "viewer")
    async with (
        running.session(token) as vera,
        running.session(others) as otto,
        stream(vera, url(LAMP, "properties", "brightness")) as vera_sse,
        stream(otto, url(LAMP, "properties", "brightness")) as otto_sse,
    ):
        await report(conn, "brightness", 1)
        assert (await vera_sse.next())["data"] == 1 and (await otto_sse.next())["data"] == 1
        change(running.hub.auth)
        await until(lambda: len(running.hub.http.context.streams) == 1)
        await report(conn, "brightness", 2)
        assert (await otto_sse.next())["data"] == 2  # another client's stream goes on
        assert await ended(vera_sse)


async def test_a_websocket_consumer_that_is_disabled_is_closed(running):
    conn = await register(running, td=http_lamp_td())
    token = running.add_client("vera", "consumer", "viewer")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            ws_url(running),
            protocols=["webthingprotocol"],
            headers={"Authorization": f"Bearer {token}"},
            ssl=running.ssl,
        ) as ws,
    ):
        request = {
            "messageType": "request",
            "operation": "observeproperty",
            "thingID": LAMP,
            "name": "brightness",
            "correlationID": "c1",
        }
        await ws.send_json(request)
        async with asyncio.timeout(10):
            while (await ws.receive_json()).get("correlationID") != "c1":
                pass
        running.hub.auth.update_client("vera", enabled=False)
        async with asyncio.timeout(10):
            while (await ws.receive()).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                pass
        assert ws.close_code == 4401
    await report(conn, "brightness", 3)  # the hub goes on serving the device
