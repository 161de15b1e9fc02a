"""The ``send_texts`` scope extension (bindings/websocket/protocol.py): several text
frames in one write, in order; ``ClientDisconnected`` once the client is gone; a
``TimeoutError`` when the client stops reading. A small Starlette app on the hub's
HttpServer class (plain, on 127.0.0.1) and real clients: the ``websockets`` library, and
a raw socket that completes the handshake and then reads nothing."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.utils import ClientDisconnected
from websockets.asyncio.client import connect

from bindings.common.asgi_server import HttpServer
from bindings.websocket.protocol import SEND_TEXTS_EXTENSION, WebSocketProtocol

pytestmark = pytest.mark.timeout(60)


class App:
    """/ws: accepts, then runs ``self.script(send_texts, websocket)``; what it raised (or
    "done") lands in ``outcome``."""

    def __init__(self) -> None:
        self.script = None
        self.outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        self.asgi = Starlette(routes=[WebSocketRoute("/ws", self.endpoint)])

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        send_texts = websocket.scope["extensions"][SEND_TEXTS_EXTENSION]
        try:
            await self.script(send_texts, websocket)
            self.outcome.set_result("done")
        except Exception as exc:  # the test looks at what it was
            self.outcome.set_result(exc)


@pytest.fixture
async def served():
    app = App()
    async with HttpServer(app.asgi, ws=WebSocketProtocol, shutdown_timeout=1) as server:
        yield app, server.url.replace("http://", "ws://") + "/ws"


async def test_the_frames_of_each_call_arrive_whole_and_in_order(served):
    app, url = served

    async def script(send_texts, websocket) -> None:
        await send_texts([b'{"n":1}', b'{"n":2}', '{"t":"température"}'.encode()], 1.0)
        await send_texts([b'{"n":3}'], 1.0)
        await websocket.receive()  # until the client closes

    app.script = script
    async with connect(url) as ws:
        got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(4)]
    assert got == ['{"n":1}', '{"n":2}', '{"t":"température"}', '{"n":3}']
    assert all(isinstance(text, str) for text in got)  # text frames, not binary


async def test_after_the_client_left_it_raises_client_disconnected(served):
    app, url = served
    left = asyncio.Event()

    async def script(send_texts, websocket) -> None:
        assert (await websocket.receive())["type"] == "websocket.disconnect"
        left.set()
        await send_texts([b"{}"], 1.0)

    app.script = script
    async with connect(url):
        pass
    await asyncio.wait_for(left.wait(), 5)
    outcome = await asyncio.wait_for(app.outcome, 5)
    assert isinstance(outcome, ClientDisconnected) and isinstance(outcome, OSError)


async def test_a_client_that_reads_nothing_makes_it_time_out(served):
    app, url = served
    sent = []

    async def script(send_texts, websocket) -> None:
        payload = b'"' + b"x" * 65536 + b'"'
        for _ in range(2000):  # bounded: loopback buffers fill long before 130 MB
            await send_texts([payload], 0.5)
            sent.append(len(payload))

    app.script = script
    host, port = url.removeprefix("ws://").removesuffix("/ws").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101"), head
        # Nothing more is read: the socket buffers fill, then the server's writes stall.
        outcome = await asyncio.wait_for(app.outcome, 30)
        assert isinstance(outcome, TimeoutError), outcome
        assert 0 < len(sent) < 2000
    finally:
        writer.transport.abort()
