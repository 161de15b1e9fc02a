"""docs/websocket.md, Limits and keep-alive: the hub pings every connection (every 20 s)
and closes one that does not answer a ping in time (20 s) with close code 1011.

Both times are uvicorn's ``ws_ping_interval`` and ``ws_ping_timeout``, read for each new
connection; the test shortens them on the running hub rather than wait 40 s. aiohttp with
``autoping=False`` hands the hub's pings to the test, which answers them or not."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.tds import SIGN, sign_td

pytestmark = pytest.mark.timeout(30)

INTERVAL, TIMEOUT = 0.5, 2.0  # seconds, standing in for 20 and 20 (slack for a busy machine)


@pytest.fixture
def quick_pings(running):
    config = running.hub.http_server.config
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (20.0, 20.0)  # as documented
    config.ws_ping_interval, config.ws_ping_timeout = INTERVAL, TIMEOUT
    return running


async def test_a_client_that_answers_pings_stays_connected(quick_pings):
    quick_pings.add_thing("sign-agent", sign_td())
    token = quick_pings.add_client("vic", "consumer", "viewer")
    async with (
        quick_pings.session(token) as session,
        session.ws_connect("/ws", autoping=False, protocols=["webthingprotocol"]) as ws,
    ):
        for _ in range(4):  # four pings: well past one interval plus the timeout
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.PING, message
            await ws.pong(message.data)
        await ws.send_json(
            {
                "messageType": "request",
                "operation": "readallproperties",
                "thingID": SIGN,
                "correlationID": "still-here",
            }
        )
        while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.PING:
            await ws.pong(message.data)
        answer = message.json()
        assert answer["correlationID"] == "still-here" and answer.get("error") is None


async def test_a_client_that_never_answers_is_closed_with_1011(quick_pings):
    token = quick_pings.add_client("vic", "consumer", "viewer")
    async with (
        quick_pings.session(token) as session,
        session.ws_connect("/ws", autoping=False, protocols=["webthingprotocol"]) as ws,
    ):
        first = await ws.receive(timeout=5)
        assert first.type == aiohttp.WSMsgType.PING  # and no pong goes back
        while (message := await ws.receive(timeout=5)).type == aiohttp.WSMsgType.PING:
            pass
        assert message.type == aiohttp.WSMsgType.CLOSE, message
        assert message.data == 1011
