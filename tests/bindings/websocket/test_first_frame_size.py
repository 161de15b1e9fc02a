"""docs/websocket.md, Connecting and Limits: a client without an Authorization header may
log in with its first frame, ``{"authorization": "Bearer <token>"}``, of at most 16 KiB;
a larger first frame is refused like a missing login (close code 4401)."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.ws import receive, ws_url

pytestmark = pytest.mark.timeout(30)

LIMIT = 16 * 1024  # characters of the first frame


def login_frame(token: str, size: int) -> str:
    """The login frame padded with JSON whitespace to exactly ``size`` characters."""
    frame = json.dumps({"authorization": f"Bearer {token}"})
    return frame[:-1] + " " * (size - len(frame)) + "}"


async def first_frame_login(running, frame: str):
    async with connect(ws_url(running), ssl=running.ssl, open_timeout=10) as ws:
        await ws.send(frame)
        request = {"messageType": "request", "operation": "readallproperties"}
        await ws.send(
            json.dumps({**request, "thingID": "urn:wothub:clients", "correlationID": "a"})
        )
        return await receive(ws)


async def test_a_16_kib_first_frame_logs_in(running):
    token = running.add_client("vic", "consumer", "viewer")
    frame = login_frame(token, LIMIT)
    assert len(frame) == LIMIT
    answer = await first_frame_login(running, frame)
    assert answer["correlationID"] == "a"  # served (a 403 or values; not a close)


async def test_a_larger_first_frame_is_refused_with_4401(running):
    token = running.add_client("vic", "consumer", "viewer")
    with pytest.raises(ConnectionClosed) as closed:
        await first_frame_login(running, login_frame(token, LIMIT + 1))
    assert closed.value.rcvd.code == 4401
    assert closed.value.rcvd.reason.startswith("unauthenticated:")
