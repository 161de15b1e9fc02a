"""A Python client of the hub's WebSocket endpoint (aiohttp), for consumers and agents.

::

    async with WsClient("wss://hub.lan:8444/ws", ca="ca.pem", token=token) as hub:
        print(await hub.read_property("urn:dev:lamp", "on"))
        await hub.observe_property("urn:dev:lamp", "brightness")
        async for message in hub.notifications():
            print(message["name"], message.get("value"))

An agent::

    async def registered(client):                  # after every (re)connection
        await client.update_thing(td)

    async with WsClient(url, ca=ca, token=agent_token, on_connect=registered) as agent:
        await agent.report_property(td["id"], "on", True)
        async for request in agent.requests():       # invokeaction, writeproperty, cancel
            await agent.answer(request, status="running")
            await agent.answer(request, output=42)   # status "completed"

``request`` sends one request with a fresh ``correlationID`` and returns the hub's first
response (a dict, as on the wire); an error response raises ``HubError`` (its RFC 9457
problem in ``problem``, the response in ``response``), no response in time
``HubTimeout`` (clients/errors.py). An ``invokeaction`` or ``writeproperty`` gets later responses
with the same correlationID as the request moves on: they go to ``notifications()`` and
the ``on_message`` callbacks like every message nobody waits for, and ``action_result``
waits for the last one. Notifications sent by the hub (``observeproperty``,
``subscribeevent``...) are delivered to ``notifications()`` (one queue, bounded by
``max_queue``: when nobody reads it the oldest are dropped and counted in ``dropped``)
and to the callbacks; requests the hub sends an agent go to ``requests()`` (unbounded:
the hub sends only as many as consumers ask for) and the ``on_request`` callbacks.
Error responses to fire-and-forget messages (an agent's refused report, whose
``correlationID`` is the report's ``messageID``) arrive on ``notifications()`` too.

Authentication: ``token`` goes in an ``Authorization: Bearer`` header (or, with
``first_frame=True``, in the first frame, as a browser would send it); ``basic`` =
(client id, password) uses HTTP Basic; ``client_cert`` = (certificate, key) uses a
client certificate (each PEM text/bytes or a file path). ``ca`` is the hub CA (PEM or a
path; an ``ssl.SSLContext`` is used as is); without it the system's trust store applies.

The credentials are the client's ``Session`` (clients/session.py; ``session=`` to share
one with its other connections): every (re)connect sends its current token, or its
password.

After a dropped connection (``reconnect=True``) the client connects again, waiting 0.1 s
and doubling up to 5 s between attempts, sends its subscriptions again (the
observe/subscribe requests it made and did not undo), then calls ``on_connect``. An agent
gets the requests queued meanwhile from the hub. Requests waiting for a response when
the connection dropped fail with ``Disconnected``; new ones wait for the connection
within their timeout. When the hub closes for bad credentials (4401) the session renews
the token (refresh, else a new login) and the client reconnects with the new one; when
it cannot (the session has ended), and after repeated bad frames (1008), the close is
final: ``closed`` is set and ``close_code`` / ``close_reason`` say why, and ``connect``
and requests raise ``Unauthorized`` or ``Disconnected``. A hub that cannot be reached
raises ``HubUnreachable``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import ssl
import tempfile
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from vocabulary.envelope import ABSENT

from .backoff import Backoff
from .errors import (
    ClientError,
    Disconnected,
    HubError,
    HubTimeout,
    Unauthorized,
    hub_error,
    refused,
)
from .http import connection_error
from .results import FinalResponses
from .session import Session

log = logging.getLogger("wothub.wsclient")

__all__ = ["ABSENT", "SUBPROTOCOL", "WsClient", "WsDisconnected", "WsError"]

# The old names of clients/errors.py's classes, kept for one release.
WsError = HubError
WsDisconnected = Disconnected

SUBPROTOCOL = "webthingprotocol"
FINAL_CLOSE_CODES = frozenset({4401, 1008})  # not worth reconnecting after these
_SUBSCRIBE = {
    "observeproperty": "unobserveproperty",
    "observeallproperties": "unobserveallproperties",
    "subscribeevent": "unsubscribeevent",
    "subscribeallevents": "unsubscribeallevents",
}
_UNSUBSCRIBE = {undo: do for do, undo in _SUBSCRIBE.items()}
_FIELDS = {"action_id": "actionID", "ttl": "ttl", "message_id": "messageID"}

Callback = Callable[[dict[str, Any]], Any]


def _pem_or_path(value: str | bytes | os.PathLike[str]) -> tuple[str | None, str | None]:
    """(PEM text, None) or (None, path)."""
    if isinstance(value, bytes):
        return value.decode("ascii"), None
    if isinstance(value, str) and "-----BEGIN" in value:
        return value, None
    return None, os.fspath(value)


def ssl_context(
    ca: str | bytes | os.PathLike[str] | ssl.SSLContext | None = None,
    client_cert: tuple[Any, Any] | None = None,
) -> ssl.SSLContext:
    """The client's TLS context: trusting ``ca`` (else the system store), presenting
    ``client_cert`` = (certificate, key) when given."""
    if isinstance(ca, ssl.SSLContext):
        context = ca
    elif ca is None:
        context = ssl.create_default_context()
    else:
        pem, path = _pem_or_path(ca)
        context = ssl.create_default_context(cadata=pem, cafile=path)
    if client_cert is not None:
        files = []
        try:
            paths = []
            for part in client_cert:
                pem, path = _pem_or_path(part)
                if pem is not None:
                    handle = tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False)  # noqa: SIM115
                    files.append(handle.name)
                    with handle:
                        os.chmod(handle.name, 0o600)
                        handle.write(pem)
                    path = handle.name
                paths.append(path)
            context.load_cert_chain(paths[0], paths[1])
        finally:
            for name in files:
                with contextlib.suppress(OSError):
                    Path(name).unlink()
    return context


class WsClient:
    def __init__(
        self,
        url: str,
        *,
        ca: str | bytes | os.PathLike[str] | ssl.SSLContext | None = None,
        token: str | None = None,
        client_cert: tuple[Any, Any] | None = None,
        reconnect: bool = True,
        basic: tuple[str, str] | None = None,
        first_frame: bool = False,
        on_connect: Callable[[WsClient], Awaitable[Any] | Any] | None = None,
        on_message: Callback | None = None,
        on_request: Callback | None = None,
        max_queue: int = 10_000,
        heartbeat: float | None = 30.0,
        max_msg_size: int = 16 << 20,
        connect_timeout: float = 10.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
        session: Session | None = None,
    ) -> None:
        self.url = url
        self.reconnect = reconnect
        self._ssl = ssl_context(ca, client_cert) if url.startswith("wss:") else None
        if session is None:
            client_id, password = basic or (None, None)
            session = Session(client_id, password=password, token=token)
        self.session = session
        session.when_ended(self._session_ended)
        self._sent: str | None = None  # the credential of the last attempt
        self._first_frame = first_frame
        self.on_connect = on_connect
        self._message_callbacks: list[Callback] = [on_message] if on_message else []
        self._request_callbacks: list[Callback] = [on_request] if on_request else []
        self.max_queue = max_queue
        self._heartbeat = heartbeat
        self._max_msg_size = max_msg_size
        self.connect_timeout = connect_timeout
        self.min_backoff, self.max_backoff = min_backoff, max_backoff

        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self.closed = asyncio.Event()  # set once the client gave up or was closed
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.connections = 0  # how many times a connection was opened
        self.dropped = 0  # notifications dropped because the queue was full
        self._supervisor: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._subscriptions: OrderedDict[tuple[str, str | None, str | None], None] = OrderedDict()
        self._messages: deque[dict[str, Any]] = deque()
        self._message_ready = asyncio.Event()
        self._requests: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._results = FinalResponses()

    # -- connection life cycle ----------------------------------------------------------

    async def __aenter__(self) -> WsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def connect(self) -> None:
        """Open the first connection (raises if it fails: ``HubUnreachable``, or with the
        close code ``Unauthorized`` (4401) or ``Disconnected``); then keep it open in the
        background."""
        if self._supervisor is not None:
            raise RuntimeError("already connected")
        self._session = aiohttp.ClientSession()
        try:
            await self._open()
        except BaseException:
            await self._session.close()
            self._session = None
            raise
        self._supervisor = asyncio.create_task(self._supervise(), name=f"wsclient {self.url}")

    async def close(self) -> None:
        """Close the connection and stop reconnecting; waiting requests fail."""
        self.reconnect = False
        supervisor, self._supervisor = self._supervisor, None
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await supervisor
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._finish(None, "closed by the client")

    async def wait_closed(self, timeout: float | None = None) -> int | None:
        """Wait until the connection ends for good; the close code."""
        async with asyncio.timeout(timeout):
            await self.closed.wait()
        return self.close_code

    def _headers(self) -> dict[str, str]:
        session = self.session
        self._sent = session.secret()
        if session.password is not None:
            pair = f"{session.client_id}:{session.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if session.token and not self._first_frame:
            return {"Authorization": f"Bearer {session.token}"}
        return {}

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        """One connection attempt, authenticated and with the subscriptions in place."""
        assert self._session is not None
        try:
            ws = await self._session.ws_connect(
                self.url,
                ssl=self._ssl if self._ssl is not None else True,
                headers=self._headers(),
                protocols=(SUBPROTOCOL,),
                heartbeat=self._heartbeat,
                max_msg_size=self._max_msg_size,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:  # e.g. 404: not the hub's /ws
            raise refused(exc.status, f"{self.url}: {exc.message}") from exc
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            raise connection_error(self.url, exc) from exc
        try:
            token = self.session.token
            if token and self._first_frame and self.session.password is None:
                await ws.send_str(orjson.dumps({"authorization": f"Bearer {token}"}).decode())
            self._ws = ws
            self.close_code = self.close_reason = None
            self.connections += 1
            self._connected.set()
            self._reader = asyncio.create_task(self._read(ws))
            await self._confirm()
            for operation, thing_id, name in list(self._subscriptions):
                try:
                    await self.request(operation, thing_id, name, timeout=self.connect_timeout)
                except HubError as exc:  # e.g. the Thing is gone: drop that one
                    log.warning("%s %s %s refused again: %s", operation, thing_id, name, exc)
                    self._subscriptions.pop((operation, thing_id, name), None)
            if self.on_connect is not None:
                result = self.on_connect(self)
                if asyncio.iscoroutine(result):
                    await result
        except BaseException:
            self._connected.clear()
            await ws.close()
            reader = self._reader
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            if ws.close_code in FINAL_CLOSE_CODES or self.close_code in FINAL_CLOSE_CODES:
                raise _final_close(self.close_code, self.close_reason) from None
            raise
        return ws

    async def _confirm(self) -> None:
        """The hub accepts every WebSocket handshake and refuses bad credentials with a
        close frame (4401): a cheap request that everyone may make (the login Thing's
        TD) proves the connection is authenticated before ``connect`` returns."""
        await self.request("readthing", "urn:wothub:authn", timeout=self.connect_timeout)

    async def _supervise(self) -> None:
        backoff = Backoff(self.min_backoff, self.max_backoff)
        while True:
            assert self._reader is not None
            with contextlib.suppress(Exception):
                await asyncio.shield(self._reader)
            if not self.reconnect or not await self._may_reconnect():
                self._finish(self.close_code, self.close_reason)
                return
            log.info("reconnecting to %s (closed %s)", self.url, self.close_code)
            while True:
                try:
                    await self.session.pause(backoff)  # the pause, then what to send
                    await self._open()
                    backoff.reset()
                    break
                except Exception as exc:  # unreachable, refused, on_connect failed...
                    if not self.reconnect or not await self._may_reconnect():
                        self._finish(self.close_code, self.close_reason)
                        return
                    log.info("reconnecting to %s failed: %s", self.url, exc)

    def _session_ended(self) -> None:
        """No reconnect; the open connection is closed (the hub refuses what it sends)."""
        self.reconnect = False
        ws = self._ws
        if ws is not None and not ws.closed:
            asyncio.ensure_future(ws.close())  # noqa: RUF006 - the supervisor sees it end

    async def _may_reconnect(self) -> bool:
        """Whether to connect again after the last close: not after repeated bad frames
        (1008) nor once the session has ended; after bad credentials (4401) once the
        session has renewed them."""
        if self.session.ended is not None or self.close_code == 1008:
            return False
        if self.close_code != 4401:
            return True
        try:
            return await self.session.renew(self._sent)
        except Unauthorized:
            return False
        except ClientError as exc:  # the hub's HTTPS is away too: ask again next time
            log.info("renewing the credentials for %s failed: %s", self.url, exc)
            return True

    def _finish(self, code: int | None, reason: str | None) -> None:
        self._connected.clear()
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self._fail_pending(self._closed_error())
        if not self.closed.is_set():
            self.closed.set()
            self._message_ready.set()
            self._requests.put_nowait(None)

    def _closed_error(self) -> ClientError:
        """What a request on the closed client raises: why the session ended, else the
        close (``Unauthorized`` for 4401)."""
        if self.session.ended is not None:
            return self.session.ended
        if self.close_code in FINAL_CLOSE_CODES:
            return _final_close(self.close_code, self.close_reason)
        return Disconnected(f"closed ({self.close_code} {self.close_reason})")

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    # -- receiving --------------------------------------------------------------------------

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            while True:
                frame = await ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    try:
                        message = orjson.loads(frame.data)
                    except orjson.JSONDecodeError:
                        log.warning("the hub sent a frame that is not JSON")
                        continue
                    if isinstance(message, dict):
                        self._dispatch(message)
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    self.close_reason = frame.extra or None
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    log.info("connection error: %s", ws.exception())
                    self.close_reason = str(ws.exception())
                    break
                elif frame.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
        finally:
            self.close_code = ws.close_code if ws.close_code is not None else 1006
            if ws is self._ws:
                self._connected.clear()
            self._fail_pending(
                Disconnected(f"connection lost ({self.close_code} {self.close_reason})")
            )

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("messageType")
        if kind == "response":
            future = self._pending.pop(message.get("correlationID") or "", None)
            if future is not None and not future.done():
                if message.get("error") is not None and message.get("status") == "failed":
                    future.set_exception(hub_error(message["error"], response=message))
                else:
                    future.set_result(message)
                return
            self._results.record(message)
        elif kind == "request":
            self._requests.put_nowait(message)
            for callback in self._request_callbacks:
                self._call(callback, message)
            return
        self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        if len(self._messages) >= self.max_queue:
            self._messages.popleft()
            self.dropped += 1
        self._messages.append(message)
        self._message_ready.set()
        for callback in self._message_callbacks:
            self._call(callback, message)

    def _call(self, callback: Callback, message: dict[str, Any]) -> None:
        try:
            result = callback(message)
            if asyncio.iscoroutine(result):
                asyncio.ensure_future(result)  # noqa: RUF006
        except Exception:
            log.exception("a callback failed")

    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(message)`` for each notification (and response nobody waits
        for); a coroutine it returns is scheduled."""
        self._message_callbacks.append(callback)

    def remove_callback(self, callback: Callback) -> None:
        """Stop calling a callback ``add_callback`` added."""
        with contextlib.suppress(ValueError):
            self._message_callbacks.remove(callback)

    def add_request_callback(self, callback: Callback) -> None:
        """Call ``callback(request)`` for each request the hub sends (agents)."""
        self._request_callbacks.append(callback)

    async def next_message(self, timeout: float | None = None) -> dict[str, Any]:
        """The next notification (or response nobody waited for); TimeoutError after
        ``timeout``, ``Disconnected`` once closed and drained."""
        async with asyncio.timeout(timeout):
            while not self._messages:
                if self.closed.is_set():
                    raise Disconnected("closed")
                self._message_ready.clear()
                await self._message_ready.wait()
        return self._messages.popleft()

    async def notifications(self) -> AsyncIterator[dict[str, Any]]:
        """Notifications and responses nobody waited for, until the client is closed."""
        while True:
            try:
                yield await self.next_message()
            except Disconnected:
                return

    async def next_request(self, timeout: float | None = None) -> dict[str, Any]:
        """The next request from the hub (agents); ``Disconnected`` once closed."""
        async with asyncio.timeout(timeout):
            request = await self._requests.get()
        if request is None:
            self._requests.put_nowait(None)
            raise Disconnected("closed")
        return request

    async def requests(self) -> AsyncIterator[dict[str, Any]]:
        """Requests from the hub (``invokeaction``, ``writeproperty``, ``cancelaction``),
        queued ones first, until the client is closed."""
        while True:
            try:
                yield await self.next_request()
            except Disconnected:
                return

    # -- sending ----------------------------------------------------------------------------

    async def send(self, message: dict[str, Any], *, timeout: float = 10) -> None:
        """Send one message as is, waiting up to ``timeout`` for a connection."""
        try:
            async with asyncio.timeout(timeout):
                await self._wait_connected()
        except TimeoutError:
            raise Disconnected("not connected") from None
        ws = self._ws
        if ws is None or ws.closed:
            raise Disconnected("not connected")
        try:
            await ws.send_str(orjson.dumps(message).decode())
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise Disconnected(str(exc)) from exc

    async def _wait_connected(self) -> None:
        """Until connected; ``Disconnected`` once the client is closed for good."""
        while not self._connected.is_set():
            if self.closed.is_set():
                raise self._closed_error()
            connected = asyncio.ensure_future(self._connected.wait())
            closed = asyncio.ensure_future(self.closed.wait())
            try:
                await asyncio.wait({connected, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                connected.cancel()
                closed.cancel()
        if self.closed.is_set():
            raise self._closed_error()

    async def request(
        self,
        operation: str,
        thing_id: str | None = None,
        name: str | None = None,
        input: Any = ABSENT,
        *,
        timeout: float = 10,
        **fields: Any,
    ) -> dict[str, Any]:
        """Send a request and return its response; ``fields`` are further envelope
        fields (``action_id``, ``ttl`` or their wire names). Raises ``HubError`` for an
        error response, ``HubTimeout`` when none comes in time."""
        correlation_id = f"{self._prefix}-{next(self._ids)}"
        message: dict[str, Any] = {
            "messageType": "request",
            "operation": operation,
            "correlationID": correlation_id,
        }
        if thing_id is not None:
            message["thingID"] = thing_id
        if name is not None:
            message["name"] = name
        if input is not ABSENT:
            message["input"] = input
        for key, value in fields.items():
            if value is not None:
                message[_FIELDS.get(key, key)] = value
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._wait_connected()
                self._pending[correlation_id] = future
                try:
                    await self.send(message)
                    response = await future
                finally:
                    self._pending.pop(correlation_id, None)
        except TimeoutError:
            raise HubTimeout(f"no response to {operation} in {timeout} s") from None
        key = (operation, thing_id, name)
        if operation in _SUBSCRIBE:
            self._subscriptions[key] = None
        elif operation in _UNSUBSCRIBE:
            self._subscriptions.pop((_UNSUBSCRIBE[operation], thing_id, name), None)
        return response

    @property
    def subscriptions(self) -> list[tuple[str, str | None, str | None]]:
        """(operation, thingID, name) of the subscriptions sent again on reconnection."""
        return list(self._subscriptions)

    # -- consumers --------------------------------------------------------------------------

    async def read_property(self, thing_id: str, name: str, *, timeout: float = 10) -> Any:
        """The property's last reported value (ABSENT if none yet)."""
        response = await self.request("readproperty", thing_id, name, timeout=timeout)
        return response.get("output", ABSENT)

    async def read_all_properties(self, thing_id: str, *, timeout: float = 10) -> dict:
        response = await self.request("readallproperties", thing_id, timeout=timeout)
        return response.get("output", {})

    async def write_property(
        self, thing_id: str, name: str, value: Any, *, ttl: float | None = None, timeout=10
    ) -> dict[str, Any]:
        """Queue a write for the agent; the response has ``status`` and ``actionID``."""
        return await self.request("writeproperty", thing_id, name, value, ttl=ttl, timeout=timeout)

    async def invoke_action(
        self,
        thing_id: str,
        name: str,
        input: Any = ABSENT,
        *,
        ttl: float | None = None,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """Invoke an action; the response has ``status`` and ``actionID`` (use
        ``action_result`` for the end)."""
        return await self.request("invokeaction", thing_id, name, input, ttl=ttl, timeout=timeout)

    invoke = invoke_action  # the old name, kept for one release

    async def action_result(self, action_id: str, *, timeout: float = 10) -> dict[str, Any]:
        """The last response (completed, failed, expired or cancelled) of a request this
        client invoked or wrote on this connection."""
        try:
            return await self._results.wait(action_id, timeout)
        except TimeoutError:
            raise HubTimeout(f"action {action_id} did not end in {timeout} s") from None

    async def query_action(
        self, thing_id: str, action_id: str, *, timeout: float = 10
    ) -> dict[str, Any]:
        """The ActionStatus object (the envelope wants the Thing's id with the action's)."""
        response = await self.request("queryaction", thing_id, action_id=action_id, timeout=timeout)
        return response["output"]

    async def cancel_action(
        self, thing_id: str, action_id: str, *, timeout: float = 10
    ) -> dict[str, Any]:
        """Cancel; the ActionStatus, now cancelled."""
        response = await self.request(
            "cancelaction", thing_id, action_id=action_id, timeout=timeout
        )
        return response["output"]

    async def observe_property(
        self, thing_id: str | None, name: str | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        """Observe one property, or with ``name=None`` all of a Thing's (or, also without
        ``thing_id``, of every Thing)."""
        operation = "observeproperty" if name is not None else "observeallproperties"
        return await self.request(operation, thing_id, name, timeout=timeout)

    async def unobserve_property(
        self, thing_id: str | None, name: str | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        operation = "unobserveproperty" if name is not None else "unobserveallproperties"
        return await self.request(operation, thing_id, name, timeout=timeout)

    async def subscribe_event(
        self, thing_id: str | None, name: str | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        """Subscribe to one event, or with ``name=None`` all of a Thing's (or every
        Thing's)."""
        operation = "subscribeevent" if name is not None else "subscribeallevents"
        return await self.request(operation, thing_id, name, timeout=timeout)

    async def unsubscribe_event(
        self, thing_id: str | None, name: str | None = None, *, timeout: float = 10
    ) -> dict[str, Any]:
        operation = "unsubscribeevent" if name is not None else "unsubscribeallevents"
        return await self.request(operation, thing_id, name, timeout=timeout)

    async def read_thing(self, thing_id: str, *, timeout: float = 10) -> dict[str, Any]:
        """The twin TD."""
        return (await self.request("readthing", thing_id, timeout=timeout))["output"]

    # -- agents -----------------------------------------------------------------------------

    async def update_thing(self, td: dict[str, Any], *, timeout: float = 10) -> dict[str, Any]:
        """Register or replace a TD; {"id", "created"}."""
        response = await self.request("updatething", td.get("id"), input=td, timeout=timeout)
        return response["output"]

    register = update_thing  # the old name, kept for one release

    async def delete_thing(self, thing_id: str, *, timeout: float = 10) -> dict[str, Any]:
        return await self.request("deletething", thing_id, timeout=timeout)

    async def report_property(
        self, thing_id: str, name: str, value: Any, *, timestamp: str | None = None
    ) -> None:
        """Report a property value (no response unless it is refused)."""
        await self._notify("observeproperty", thing_id, name, value, timestamp)

    async def report_properties(
        self, thing_id: str, values: dict[str, Any], *, timestamp: str | None = None
    ) -> None:
        await self._notify("observeallproperties", thing_id, None, values, timestamp)

    async def report_event(
        self, thing_id: str, name: str, data: Any = ABSENT, *, timestamp: str | None = None
    ) -> None:
        """Report an event (no response unless it is refused)."""
        await self._notify("subscribeevent", thing_id, name, data, timestamp)

    async def _notify(
        self, operation: str, thing_id: str, name: str | None, value: Any, timestamp: str | None
    ) -> None:
        message: dict[str, Any] = {
            "messageType": "notification",
            "operation": operation,
            "thingID": thing_id,
        }
        if name is not None:
            message["name"] = name
        if value is not ABSENT:
            message["value"] = value
        if timestamp:
            message["timestamp"] = timestamp
        await self.send(message)

    async def answer(
        self,
        request: dict[str, Any],
        *,
        output: Any = ABSENT,
        status: str = "completed",
        error: dict[str, Any] | str | None = None,
    ) -> None:
        """Answer a request the hub sent: ``running`` (progress), ``completed`` (with
        ``output``) or ``failed`` (``error``: a problem object or a detail text)."""
        if status not in ("running", "completed", "failed"):
            raise ValueError(f"an agent answers running, completed or failed, not {status}")
        message: dict[str, Any] = {
            "messageType": "response",
            "operation": request["operation"],
            "correlationID": request.get("correlationID") or request["actionID"],
            "status": status,
        }
        for wire in ("thingID", "name", "actionID"):
            if request.get(wire) is not None:
                message[wire] = request[wire]
        if output is not ABSENT:
            message["output"] = output
        if isinstance(error, str):
            error = {"type": "about:blank", "title": "Failed", "status": 500, "detail": error}
        if error is not None:
            message["error"] = error
        await self.send(message)


def _final_close(code: int | None, reason: str | None) -> ClientError:
    """The error for a close the client does not come back from: bad credentials (4401)
    or repeated bad frames (1008)."""
    text = f"the hub closed the connection: {code} {reason}"
    return refused(401, text) if code == 4401 else Disconnected(text)
