"""uvicorn's WebSocket protocol (websockets-sansio) with one more scope extension:
``send_texts``, which puts several text frames on the wire with one write.

Through ASGI every frame is its own ``websocket.send``: its own TLS record and its own
system call, the largest cost of a notification fan-out (docs/performance.md, issue 21).
A writer that has several messages ready (bindings/common/outbox.py ``pump_batches``)
hands them to ``send_texts`` instead: the frames are made by the same websockets
protocol object as uvicorn's own sends, in order, and written together.

``await send_texts(payloads, stall_timeout)``: each payload is UTF-8 text (JSON bytes);
it raises ``ClientDisconnected`` (an ``OSError``, as uvicorn's send does) once the client
is gone, and ``TimeoutError`` when the socket's buffer stays full (the client stopped
reading) for ``stall_timeout`` seconds. A timer is set only then, not for every write.
It is for an accepted WebSocket only, before the application closes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

SEND_TEXTS_EXTENSION = "wothub.websocket.send_texts"


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        app, send_texts = self.app, self.send_texts

        async def app_with_send_texts(scope: dict[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[SEND_TEXTS_EXTENSION] = send_texts
            return await app(scope, receive, send)

        self.app = app_with_send_texts

    async def send_texts(self, payloads: Sequence[bytes], stall_timeout: float) -> None:
        if not self.writable.is_set():  # flow control: the client reads slower than we write
            async with asyncio.timeout(stall_timeout):
                await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError("send_texts needs an accepted WebSocket that is not closing")
        try:
            for payload in payloads:
                self.conn.send_text(payload)
        except InvalidState:  # the client's close frame came first
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))
