"""The WebSocket endpoint (``/ws`` on the hub's HTTPS port).

One connection carries the envelope (docs/messages.md) both ways: an agent registers
TDs, reports values and events, and receives requests (those queued while it was away
first) and answers them; a consumer sends requests and gets responses and the
notifications it subscribed to. Every frame is parsed and checked before it reaches
the router; a bad one gets an error response naming the problem, and a client that
keeps sending bad frames is disconnected.

Authentication: the ``Authorization`` header (Bearer or Basic) and the client
certificate at the handshake, ranked by auth's one policy (docs/auth.md); without
either, for browsers that cannot set headers, the first frame
``{"authorization": "Bearer <token>"}``. Without it the connection is closed with code
4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bindings.common.asgi_server import ABORT_EXTENSION
from bindings.common.bad_messages import BadMessages
from bindings.common.encoded import EncodeCache
from bindings.common.outbox import Stalled, chunks, pump_batches
from bindings.common.receive import Receiver
from bindings.common.web_credentials import WebCredentials, authorization_credentials
from core.connection import OVERFLOW, Connection
from core.contract import Core
from vocabulary.envelope import Message, error_frame
from vocabulary.identity import Client
from vocabulary.operations import SUBSCRIBING_OPERATIONS
from vocabulary.problems import Problem

from .forms import PATH, SUBPROTOCOL, WebSocketForms
from .protocol import SEND_TEXTS_EXTENSION

log = logging.getLogger("wothub.websocket")

# Close codes (RFC 6455 section 7.4; 4000-4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_POLICY = 1008  # repeated bad frames
CLOSE_TOO_SLOW = 1013  # "try again later": the client fell behind its notifications
CLOSE_TRY_LATER = 1013  # and: a limit refused the connection (the error frame names it)
CLOSE_GOING_AWAY = 1001  # the hub is stopping

_SCHEMES = ("bearer", "basic")  # what a first-frame login may carry


class WebSocketBinding:
    def __init__(
        self,
        router: Core,
        credentials: WebCredentials,
        forms: WebSocketForms,
        *,
        max_message_bytes: int = 1 << 20,
        max_bad_frames: int = 20,
        bad_frame_window: float = 10.0,
        auth_timeout: float = 10.0,
        send_timeout: float = 10.0,
    ) -> None:
        self.router = router
        self.credentials = credentials
        self.forms = forms
        self.max_message_bytes = max_message_bytes
        self.max_bad_frames = max_bad_frames
        self.bad_frame_window = bad_frame_window
        self.auth_timeout = auth_timeout
        self.send_timeout = send_timeout
        self._open: set[Connection] = set()
        self._encoded = EncodeCache()
        self.receiver = Receiver(router, max_message_bytes, log)

    def routes(self) -> list[WebSocketRoute]:
        return [WebSocketRoute(PATH, self.endpoint)]

    def close_all(self) -> None:
        """End every connection (the hub is stopping); their writers close the sockets."""
        for connection in list(self._open):
            connection.close("hub stopping")

    async def endpoint(self, websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        client = await self._authenticate(websocket)
        if client is None:
            return
        try:
            connection = self.router.connect(client, "websocket")
        except Problem as problem:  # a limit (max_connections_per_client): say which
            refusal = error_frame(None, problem.status, problem.detail, **problem.extensions)
            with contextlib.suppress(Exception):
                await websocket.send_text(orjson.dumps(refusal).decode())
            await _close(websocket, CLOSE_TRY_LATER, f"refused: {problem.detail}")
            return
        self._open.add(connection)
        writer = asyncio.create_task(self._write(websocket, connection))
        try:
            await self._read(websocket, connection)
        finally:
            self._open.discard(connection)
            self.router.disconnect(connection)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    # -- authentication --------------------------------------------------------------

    async def _authenticate(self, websocket: WebSocket) -> Client | None:
        try:
            client = await self.credentials.optional_client(websocket)
            if client is None:
                client = await self._first_frame_login(websocket)
        except Problem as problem:
            await _close(websocket, CLOSE_UNAUTHENTICATED, f"unauthenticated: {problem.detail}")
            return None
        except (TimeoutError, WebSocketDisconnect):
            await _close(
                websocket,
                CLOSE_UNAUTHENTICATED,
                "unauthenticated: send an Authorization header, a client certificate or "
                '{"authorization": "Bearer <token>"} first',
            )
            return None
        return client

    async def _first_frame_login(self, websocket: WebSocket) -> Client:
        async with asyncio.timeout(self.auth_timeout):
            frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1000))
        text = frame.get("text")
        try:
            data = orjson.loads(text) if text and len(text) <= 16384 else None
        except orjson.JSONDecodeError:
            data = None
        header = data.get("authorization") if isinstance(data, dict) else None
        if not isinstance(header, str) or header.partition(" ")[0].lower() not in _SCHEMES:
            raise TimeoutError  # not a login: same answer as none at all
        return await self.credentials.login(authorization_credentials(header), websocket)

    # -- reading and writing ----------------------------------------------------------

    async def _read(self, websocket: WebSocket, connection: Connection) -> None:
        bad = BadMessages(self.max_bad_frames, self.bad_frame_window)
        held: list[Message] = []  # a new subscription's response, until it may go

        def reply(answer: Message | dict) -> None:
            if (
                isinstance(answer, Message)
                and answer.operation in SUBSCRIBING_OPERATIONS
                and answer.error is None
            ):
                held.append(answer)
            else:
                connection.send(answer)  # ordered with the responses and notifications

        while not connection.closed:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None:
                detail = "binary frames are not accepted: send JSON text"
                self.receiver.refuse(connection, reply, 400, detail)
            elif self.receiver.receive(connection, text, reply):
                if held:
                    # As an SSE stream: answered once the node has every notification
                    # the subscription wants (a cluster node: the others' too). The next
                    # frame is read after it, so the responses keep their order.
                    await self.router.notifications_ready()
                    connection.send(held.pop())
                continue
            if bad.count():
                log.warning("closing %s: too many bad frames", connection)
                await asyncio.sleep(0)  # let the writer send the last error first
                connection.close("too many bad frames")
                await _close(websocket, CLOSE_POLICY, "too many bad messages")
                return

    async def _write(self, websocket: WebSocket, connection: Connection) -> None:
        """Put the outbox on the wire: what is ready at once goes out in one write
        (``send_texts``, bindings/websocket/protocol.py) of at most about
        ``BATCH_BYTES`` (bindings/common/outbox.py)."""
        send_texts = websocket.scope.get("extensions", {}).get(SEND_TEXTS_EXTENSION)
        if send_texts is None:  # another ASGI server: a frame at a time
            send_texts = _one_by_one(websocket)

        async def write(payloads: list[bytes]) -> None:
            try:
                await send_texts(payloads, self.send_timeout)
            except TimeoutError:
                # The client stopped reading: a close frame would wait behind the full
                # buffer for ever, so drop the connection outright.
                _abort(websocket)
                raise Stalled from None

        async def send(batch: list[tuple[int | None, Message | dict]]) -> None:
            # Each envelope is encoded once for every subscriber (the cache).
            for payloads in chunks(self._encoded.envelope(message) for _seq, message in batch):
                await write(payloads)

        async def end(reason: str) -> None:
            if reason == OVERFLOW:
                await _close(websocket, CLOSE_TOO_SLOW, "too slow: notifications piled up")
            elif reason == "hub stopping":
                await _close(websocket, CLOSE_GOING_AWAY, "the hub is stopping")
            elif reason != "disconnected":  # e.g. the client was removed or changed
                await _close(websocket, CLOSE_UNAUTHENTICATED, reason)

        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # it went away
            await pump_batches(connection, send, end)


def _one_by_one(websocket: WebSocket) -> Callable[[list[bytes], float], Awaitable[None]]:
    async def send_texts(payloads: list[bytes], stall_timeout: float) -> None:
        for payload in payloads:
            async with asyncio.timeout(stall_timeout):
                await websocket.send_text(payload.decode())

    return send_texts


def _abort(websocket: WebSocket) -> None:
    abort = websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is not None:
        abort()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason[:120])  # a close reason fits in 123 bytes
