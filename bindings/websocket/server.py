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
import time
from collections import deque
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bindings.common.asgi_server import ABORT_EXTENSION
from bindings.common.web_credentials import WebCredentials, authorization_credentials
from core.connection import OVERFLOW, Connection, ConnectionClosed
from core.contract import Core
from vocabulary.envelope import EnvelopeError, Message, error_frame, parse_message
from vocabulary.identity import Client
from vocabulary.problems import Problem

from .forms import PATH, SUBPROTOCOL, WebSocketForms

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
        self._encoded: dict[int, tuple[Message, str]] = {}  # fan-out encodes once

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
        client_id = connection.client.id
        bad_frames: deque[float] = deque()
        while not connection.closed:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            problem = self._handle_frame(connection, frame)
            if problem is None:
                continue
            log.info("bad frame from %s: %s", client_id, problem["error"]["detail"])
            connection.send(problem)  # ordered with the responses
            now = time.monotonic()
            bad_frames.append(now)
            while bad_frames and bad_frames[0] < now - self.bad_frame_window:
                bad_frames.popleft()
            if len(bad_frames) > self.max_bad_frames:
                log.warning("closing %s: too many bad frames", connection)
                await asyncio.sleep(0)  # let the writer send the last error first
                connection.close("too many bad frames")
                await _close(websocket, CLOSE_POLICY, "too many bad messages")
                return

    def _handle_frame(self, connection: Connection, frame: dict[str, Any]) -> dict | None:
        """Carry one frame to the router; an error response (as a dict) if it is bad."""
        text = frame.get("text")
        if text is None:
            return error_frame(None, 400, "binary frames are not accepted: send JSON text")
        if len(text) > self.max_message_bytes:
            return error_frame(
                None,
                413,
                f"a message of {len(text)} characters is over the limit of "
                f"{self.max_message_bytes}",
            )
        try:
            message = parse_message(text, connection.client.id)
        except EnvelopeError as exc:
            return error_frame(
                _reply_id(text),
                400,
                f"not a valid message: {exc}",
                validationErrors=[{"field": exc.field, "description": exc.description}],
            )
        response = self.router.handle(connection, message)
        if response is not None:
            connection.send(response)
        return None

    async def _write(self, websocket: WebSocket, connection: Connection) -> None:
        try:
            while True:
                _, message = await connection.next()
                try:
                    async with asyncio.timeout(self.send_timeout):
                        await websocket.send_text(self._encode(message))
                except TimeoutError:
                    # The client stopped reading: a close frame would wait behind the
                    # full buffer for ever, so drop the connection outright.
                    log.warning("%s stopped reading; dropping it", connection)
                    connection.close(OVERFLOW)
                    _abort(websocket)
                    return
        except ConnectionClosed as closed:
            if closed.reason == OVERFLOW:
                log.warning("%s fell behind; disconnecting it", connection)
                await _close(websocket, CLOSE_TOO_SLOW, "too slow: notifications piled up")
            elif closed.reason == "hub stopping":
                await _close(websocket, CLOSE_GOING_AWAY, "the hub is stopping")
            elif closed.reason != "disconnected":  # e.g. the client was removed or changed
                await _close(websocket, CLOSE_UNAUTHENTICATED, closed.reason)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away mid-send

    def _encode(self, message: Message | dict) -> str:
        if isinstance(message, dict):
            return orjson.dumps(message).decode()
        cached = self._encoded.get(id(message))
        if cached is not None and cached[0] is message:
            return cached[1]
        text = message.to_json().decode()
        if len(self._encoded) >= 1024:
            self._encoded.clear()
        self._encoded[id(message)] = (message, text)
        return text


def _reply_id(text: str) -> str | None:
    """The id a bad message's error response should carry: its correlationID or
    messageID, when the frame is JSON at all."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("correlationID", "messageID"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def _abort(websocket: WebSocket) -> None:
    abort = websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is not None:
        abort()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason[:120])  # a close reason fits in 123 bytes
