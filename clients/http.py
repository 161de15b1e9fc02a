"""A Python consumer of the hub's HTTPS API (aiohttp): logins, the directory, twins and
Server-Sent Events that resume after a dropped connection.

::

    async with HttpConsumer("https://hub.lan:8444", ca="ca.pem") as hub:
        await hub.login("ops", password)
        async for td in hub.things():
            print(td["id"])
        async with hub.observe_property("urn:dev:lamp", "brightness") as changes:
            async for event, value, event_id in changes:
                ...

Errors are those of clients/errors.py: an error response raises ``HubError`` (or its
``Unauthorized``, ``Forbidden``, ``NotFound``) with the RFC 9457 problem in ``problem``;
a hub that cannot be reached raises ``HubUnreachable``, a connection lost during a
request ``Disconnected``, an answer that does not come within ``timeout`` ``HubTimeout``.
A request refused with 401 (an expired or revoked token) renews the token once, by
refresh or else a new login with the password, and is sent again; the login, the token
and the renewal are the client's ``Session`` (clients/session.py), which may be shared
with other connections of the same client.
"""

from __future__ import annotations

import json
import logging
import math
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from yarl import URL

from vocabulary.envelope import ABSENT

from .backoff import Backoff
from .errors import (
    ClientError,
    Disconnected,
    HubError,
    HubTimeout,
    HubUnreachable,
    hub_error,
    reason,
)
from .session import Session

log = logging.getLogger("wothub.client")

__all__ = [
    "ABSENT",
    "ActionStatus",
    "EventStream",
    "HttpConsumer",
    "HubError",  # clients.errors' classes, still importable from here for one release
    "HubUnreachable",
    "SseEvent",
]

_SAFE = ":@!$&'()*+,;="  # what stays unencoded in a path segment (as the hub's paths.py)
JSON_TYPES = ("application/json", "application/td+json", "application/ld+json")
MERGE_PATCH = "application/merge-patch+json"
# Seconds ``invoke_action`` lets the hub wait for the device before it answers with the status.
ACTION_WAIT = 2.0
DIRECTORY_EVENT_TYPES = ("thing_created", "thing_updated", "thing_deleted")


class ActionStatus(dict):
    """An action's (or queued write's) status as the hub sends it; ``href`` is where to
    query (``query_action``) or cancel (``cancel_action``) it."""

    @property
    def href(self) -> str | None:
        return self.get("href")

    @property
    def status(self) -> str | None:
        """The WoT profile's value: pending, running, completed or failed."""
        return self.get("status")

    @property
    def done(self) -> bool:
        return self.get("status") in ("completed", "failed")

    @property
    def output(self) -> Any:
        return self.get("output", ABSENT)


class SseEvent(NamedTuple):
    """One Server-Sent Event: its name, its data (JSON decoded when it is JSON) and id."""

    event: str
    data: Any
    id: str | None


class HttpConsumer:
    """A consumer of one hub. ``ca``: the hub CA as PEM (bytes or str) or a file path
    (None: the system's trust store); ``client_cert``: (certificate, key) file paths to
    log in with a certificate; ``token``: a bearer token to use as is; ``timeout``:
    seconds for a request (streams only for connecting; ``idle_timeout`` is how long a
    stream may stay silent, pings included, before it is taken as dropped).
    ``session``: the client's login shared with its other connections (then ``token``
    is not given)."""

    def __init__(
        self,
        base_url: str,
        *,
        ca: bytes | str | os.PathLike[str] | None = None,
        token: str | None = None,
        client_cert: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
        timeout: float = 30.0,
        idle_timeout: float = 60.0,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        session: Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if session is None:
            session = Session(token=token)
            session.add_refresher(self.refresh_token, needs_connection=False)
        elif token is not None:
            raise ValueError("give the token to the session")
        self.session = session
        session.login_with(self.login_token)
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._ssl = _ssl_context(ca, client_cert)
        self._session: aiohttp.ClientSession | None = None
        self._streams: set[EventStream] = set()
        self.closed = False

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> HttpConsumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End every stream and the connections. Does not log out (see ``logout``)."""
        self.closed = True
        for stream in list(self._streams):
            await stream.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("this HttpConsumer is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    # -- logging in ----------------------------------------------------------------------

    @property
    def token(self) -> str | None:
        """The session's current token."""
        return self.session.token

    @token.setter
    def token(self, token: str | None) -> None:
        self.session.use_token(token)

    @property
    def client_id(self) -> str | None:
        return self.session.client_id

    async def login(self, client_id: str, password: str) -> dict[str, Any]:
        """Log in with a password: {"token", "expires", "clientID", "role"}. The password
        is kept to log in again should the session end."""
        session = self.session
        answer = await self.login_token(client_id, password)
        session.client_id, session.password = client_id, password
        session.use(answer)
        return answer

    async def refresh(self) -> dict[str, Any]:
        """A new token for this session (the current one may have expired)."""
        return dict(await self.session.refresh())

    async def logout(self) -> None:
        """End the session; the token (and the remembered password) are forgotten."""
        try:
            if self.token:
                await self._call("POST", "/authn/logout", renew=False)
        finally:
            self.session.forget()

    async def login_token(self, client_id: str, password: str) -> dict[str, Any]:
        """``POST /authn/login``: the answer, the session left as it is."""
        return await self._call(
            "POST",
            "/authn/login",
            json={"clientID": client_id, "password": password},
            auth=False,
        )

    async def refresh_token(self, token: str) -> dict[str, Any]:
        """``POST /authn/refresh`` of ``token``: the answer, the session left as it is."""
        return await self._call("POST", "/authn/refresh", json={"token": token}, auth=False)

    # -- the directory -------------------------------------------------------------------

    async def things(self, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every TD the client may read, a page at a time (following ``Link: rel=next``)."""
        url: str | URL | None = self._url("/things", {"limit": page_size})
        while url is not None:
            response = await self._send("GET", url)
            page = response.data
            if not isinstance(page, list):
                raise HubError(502, {"title": "Bad Gateway", "detail": "not a list of TDs"})
            for td in page:
                yield td
            following = response.links.get("next")
            url = following.get("url") if following else None

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        """The twin TD."""
        return await self._call("GET", _thing_path(thing_id))

    async def update_thing(self, td: Mapping[str, Any]) -> dict[str, Any]:
        """Register or replace a TD under its id: {"id", "created"} (True when new)."""
        response = await self._send(
            "PUT", self._url(_thing_path(td["id"])), json=td, content_type="application/td+json"
        )
        return {"id": td["id"], "created": response.status == 201}

    async def create_thing(self, td: Mapping[str, Any]) -> str:
        """Register a TD without an id (POST /things); the id the directory gave it."""
        response = await self._send(
            "POST", self._url("/things"), json=td, content_type="application/td+json"
        )
        return response.headers["Location"]  # the id itself (docs/http.md)

    async def patch_thing(self, thing_id: str, patch: Mapping[str, Any]) -> None:
        """A JSON merge patch (RFC 7396) of a TD."""
        await self._send(
            "PATCH", self._url(_thing_path(thing_id)), json=patch, content_type=MERGE_PATCH
        )

    async def delete_thing(self, thing_id: str) -> None:
        await self._call("DELETE", _thing_path(thing_id))

    async def search(self, jsonpath: str) -> list[Any]:
        """RFC 9535 JSONPath over the TDs the client may read."""
        return await self._call("GET", "/search/jsonpath", params={"query": jsonpath})

    # -- twins ---------------------------------------------------------------------------

    async def read_property(self, thing_id: str, name: str) -> Any:
        return await self._call("GET", _affordance_path(thing_id, "properties", name))

    def history(
        self,
        thing_id: str,
        name: str,
        *,
        event: bool = False,
        total: int | None = None,
        **query: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """A property's (or an ``event``'s) history, item by item, page after page, at
        most ``total`` items. ``query``: from, to, order, step (docs/history.md); None
        values are left out."""
        params = {key: value for key, value in query.items() if value is not None}

        async def page(params: dict[str, Any]) -> dict[str, Any]:
            return await self.history_page(thing_id, name, event=event, **params)

        return history_items(page, params, total)

    async def history_page(
        self, thing_id: str, name: str, *, event: bool = False, **query: Any
    ) -> dict[str, Any]:
        """One page of a history: {"items": [...], "cursor" when there may be more}
        (pass it as ``cursor`` for the next page)."""
        member = "events" if event else "properties"
        path = f"{_affordance_path(thing_id, member, name)}/history"
        return await self._call("GET", path, params=query)

    async def read_all_properties(self, thing_id: str) -> dict[str, Any]:
        return await self._call("GET", _affordance_path(thing_id, "properties"))

    async def read_state(self, thing_id: str) -> dict[str, Any]:
        """The Thing's state document: reported, desired, declined, delta (docs/digitwin.md)."""
        return await self._call("GET", f"{_thing_path(thing_id)}/state")

    async def write_property(
        self, thing_id: str, name: str, value: Any, *, wait: float | None = None
    ) -> ActionStatus | None:
        """None when the device took the value; its ActionStatus while it is queued."""
        response = await self._send(
            "PUT",
            self._url(_affordance_path(thing_id, "properties", name)),
            json=value,
            headers=_prefer(wait, False),
            extra_time=wait,
        )
        return ActionStatus(response.data) if response.status == 202 else None

    async def write_properties(self, thing_id: str, values: Mapping[str, Any]) -> list[Any] | None:
        """Several writes at once: None when all were taken, else their statuses."""
        response = await self._send(
            "PUT", self._url(_affordance_path(thing_id, "properties")), json=values
        )
        if response.status == 202:
            return [ActionStatus(s) for s in response.data]
        return None

    async def invoke_action(
        self,
        thing_id: str,
        name: str,
        input: Any = ABSENT,
        *,
        wait: float | None = None,
        respond_async: bool = False,
    ) -> Any:
        """The action's output (None when it has none) when it finished in time, else its
        ``ActionStatus`` (``href`` to query or cancel it). ``wait``: seconds the hub may
        wait for the device (``Prefer: wait``, default ``ACTION_WAIT``); ``respond_async``:
        do not wait at all."""
        wait = ACTION_WAIT if wait is None else wait
        response = await self._send(
            "POST",
            self._url(_affordance_path(thing_id, "actions", name)),
            json=input,
            headers=_prefer(wait, respond_async),
            extra_time=wait,
        )
        if response.status == 201:
            return ActionStatus(response.data)
        return None if response.status == 204 else response.data

    invoke = invoke_action  # the old name, kept for one release

    async def query_action(self, href: str) -> ActionStatus:
        return ActionStatus(await self._call_href("GET", href))

    async def cancel_action(self, href: str) -> None:
        await self._call_href("DELETE", href)

    async def query_all_actions(self, thing_id: str) -> dict[str, list[ActionStatus]]:
        """Per action name, the statuses the hub keeps."""
        grouped = await self._call("GET", _affordance_path(thing_id, "actions"))
        return {name: [ActionStatus(s) for s in statuses] for name, statuses in grouped.items()}

    async def invoke_service(self, thing_id: str, action: str, input: Any = ABSENT) -> Any:
        """An action of one of the hub's own Things (``urn:wothub:clients``,
        ``urn:wothub:certs``, ``urn:wothub:authn``): they answer at once."""
        result = await self.invoke_action(thing_id, action, input)
        if isinstance(result, ActionStatus):  # not a service Thing after all
            raise HubError(
                502,
                {"title": "Bad Gateway", "detail": f"{thing_id} queued {action}: {result.href}"},
            )
        return result

    # -- notifications (SSE) -------------------------------------------------------------

    def observe_property(self, thing_id: str, name: str | None = None) -> EventStream:
        """(name, value, id) each time the property changes; with ``name=None``, each
        time one of the Thing's properties does."""
        return EventStream(self, _affordance_path(thing_id, "properties", name))

    def subscribe_event(self, thing_id: str, name: str | None = None) -> EventStream:
        """(name, data, id) each time the device reports the event; with ``name=None``,
        any of the Thing's events."""
        return EventStream(self, _affordance_path(thing_id, "events", name))

    def directory_events(self, type: str | None = None, diff: bool = False) -> EventStream:
        """(thing_created | thing_updated | thing_deleted, data, id) for TD changes.
        ``type`` keeps one of them; ``diff`` sends the new TD (created) or the changes
        (updated) instead of just {"id"}."""
        if type is not None and type not in DIRECTORY_EVENT_TYPES:
            raise ValueError(f"type is one of {DIRECTORY_EVENT_TYPES}, not {type!r}")
        path = "/events" if type is None else f"/events/{type}"
        return EventStream(self, path, {"diff": "true"} if diff else None)

    # -- internals -----------------------------------------------------------------------

    def _url(self, path: str, params: Mapping[str, Any] | None = None) -> URL:
        query = f"?{urlencode(params)}" if params else ""
        return URL(f"{self.base_url}{path}{query}", encoded=True)

    def _href_url(self, href: str) -> URL:
        """An ActionStatus href: the hub writes it with its public URL, which may not be
        the one this client reaches it at, so the path is taken onto ``base_url``."""
        if href.startswith(self.base_url + "/"):
            return URL(href, encoded=True)
        parts = urlsplit(href)
        base_path = urlsplit(self.base_url).path
        path = parts.path
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path) :]
        query = f"?{parts.query}" if parts.query else ""
        return URL(f"{self.base_url}{path}{query}", encoded=True)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = ABSENT,
        params: Mapping[str, Any] | None = None,
        auth: bool = True,
        renew: bool = True,
    ) -> Any:
        response = await self._send(
            method, self._url(path, params), json=json, auth=auth, renew=renew
        )
        return response.data

    async def _call_href(self, method: str, href: str) -> Any:
        return (await self._send(method, self._href_url(href))).data

    async def _send(
        self,
        method: str,
        url: str | URL,
        *,
        json: Any = ABSENT,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        renew: bool = True,
        extra_time: float | None = None,
    ) -> _Response:
        body = None if json is ABSENT else _dumps(json)
        timeout = aiohttp.ClientTimeout(total=self.timeout + (extra_time or 0.0))
        for attempt in (1, 2):
            sent_token = self.token if auth else None
            all_headers = {"Accept": "application/json", **(headers or {})}
            if body is not None:
                all_headers["Content-Type"] = content_type
            if sent_token:
                all_headers["Authorization"] = f"Bearer {sent_token}"
            try:
                async with self._http().request(
                    method, url, data=body, headers=all_headers, timeout=timeout
                ) as response:
                    raw = await response.read()
                    result = _Response(
                        response.status, response.headers, response.links, raw, response
                    )
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise connection_error(self.base_url, exc) from exc
            if (
                result.status == 401
                and auth
                and renew
                and attempt == 1
                and await self.session.renew(sent_token)
            ):
                continue
            if result.status >= 400:
                raise hub_error(result.problem(), status=result.status)
            return result
        raise AssertionError("unreachable")

    async def _open_stream(self, path: str, last_event_id: str | None) -> aiohttp.ClientResponse:
        """GET ``path`` as text/event-stream; the open response, or an error raised."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.idle_timeout
        )
        url = URL(f"{self.base_url}{path}", encoded=True)
        for attempt in (1, 2):
            sent_token = self.token
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if sent_token:
                headers["Authorization"] = f"Bearer {sent_token}"
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = await self._http().get(url, headers=headers, timeout=timeout)
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                raise connection_error(self.base_url, exc) from exc
            if response.status == 200:
                return response
            try:
                raw = await response.read()
            except (aiohttp.ClientError, TimeoutError):
                raw = b""
            finally:
                response.release()
            if response.status == 401 and attempt == 1 and await self.session.renew(sent_token):
                continue
            problem = _problem(response.status, response.headers, raw)
            raise hub_error(problem, status=response.status)
        raise AssertionError("unreachable")


class EventStream:
    """Notifications from one SSE resource, as ``SseEvent`` (event, data, id) tuples.

    Iterate it (``async for event, data, event_id in stream``); ``async with`` opens
    the stream before the block starts (so nothing sent after that is missed) and
    closes it after. A dropped connection is opened again with ``Last-Event-ID``, after
    a delay that doubles from ``reconnect_delay`` to ``max_reconnect_delay``, so the
    hub sends what was missed; when it no longer can, the next event is ``resync``
    and the caller should read the state again. Errors other than a dropped
    connection or a 5xx (e.g. 403, or 404 when the Thing was deleted) are raised.
    The stream ends when it is closed or the client is closed.
    """

    def __init__(
        self, consumer: HttpConsumer, path: str, params: Mapping[str, str] | None = None
    ) -> None:
        self._consumer = consumer
        self._path = path + (f"?{urlencode(params)}" if params else "")
        self.last_event_id: str | None = None
        self.reconnects = 0  # how many times the stream was opened again
        self._response: aiohttp.ClientResponse | None = None
        self._parser: _SseParser | None = None
        self._opened_once = False
        self._closed = False
        self._backoff = Backoff(consumer.reconnect_delay, consumer.max_reconnect_delay)

    async def __aenter__(self) -> EventStream:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> EventStream:
        return self

    async def open(self) -> None:
        """Open the stream now (iterating opens it otherwise); errors are raised."""
        if self._response is None and not self._closed:
            await self._connect()

    async def aclose(self) -> None:
        self._closed = True
        self._consumer._streams.discard(self)
        self._drop()

    async def __anext__(self) -> SseEvent:
        while True:
            if self._closed or self._consumer.closed:
                self._drop()
                raise StopAsyncIteration
            if self._response is None:
                if not self._opened_once:
                    await self._connect()
                else:
                    await self._reconnect()
                continue
            parser = self._parser
            assert parser is not None
            try:
                event = await parser.next_event()
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                log.debug("stream %s dropped: %s", self._path, exc)
                event = None
            finally:
                self.last_event_id = parser.last_id
            if event is None:
                self._drop()
                continue
            too_slow = isinstance(event.data, dict) and event.data.get("status") == 503
            if event.event == "error" and too_slow:  # the hub closes the stream after it
                log.debug("stream %s: %s", self._path, event.data.get("detail"))
                self._drop()
                continue
            self._backoff.reset()
            return event

    async def _connect(self) -> None:
        consumer = self._consumer
        self._response = await consumer._open_stream(self._path, self.last_event_id)
        self._parser = _SseParser(self._response.content, self.last_event_id)
        consumer._streams.add(self)
        self._opened_once = True

    async def _reconnect(self) -> None:
        """Open the stream again, retrying with backoff while the hub is away."""
        consumer = self._consumer
        while not (self._closed or consumer.closed):
            await self._backoff.pause()
            if self._closed or consumer.closed:
                return
            try:
                await self._connect()
                self.reconnects += 1
                return
            except HubUnreachable as exc:
                if exc.tls:
                    raise
                log.debug("reconnecting %s: %s", self._path, exc)
            except (Disconnected, HubTimeout) as exc:
                log.debug("reconnecting %s: %s", self._path, exc)
            except HubError as exc:
                if exc.status < 500:
                    raise
                log.debug("reconnecting %s: %s", self._path, exc)
            except RuntimeError:  # the consumer closed meanwhile
                return

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        self._parser = None


# -- Server-Sent Events parsing ----------------------------------------------------------


class _SseParser:
    """Server-Sent Events from one response (the HTML Living Standard's parsing, without
    ``retry``). Its state lives here, not in a coroutine, so a cancelled read (a
    caller's timeout) loses nothing. ``last_id`` is the stream's last event id buffer:
    it outlives events, and an ``id:`` in a block without data still sets it."""

    def __init__(self, content: aiohttp.StreamReader, last_id: str | None) -> None:
        self._content = content
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self.last_id = last_id

    async def _line(self) -> str | None:
        """The next line (LF or CRLF ended), however long; None at EOF."""
        while b"\n" not in self._buffer:
            chunk = await self._content.readany()
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.removesuffix(b"\r").decode("utf-8", errors="replace")

    async def next_event(self) -> SseEvent | None:
        """The next event; None at the end of the stream."""
        while (line := await self._line()) is not None:
            if not line:
                event, data = self._event or "message", self._data
                self._event, self._data = "", []
                if data:
                    return SseEvent(event, _loads("\n".join(data)), self.last_id)
                continue  # a block of comments or ids only: nothing to dispatch
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                self._event = value
            elif field == "data":
                self._data.append(value)
            elif field == "id" and "\0" not in value:
                self.last_id = value or None
        return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- helpers -----------------------------------------------------------------------------


class _Response:
    def __init__(
        self,
        status: int,
        headers: Any,
        links: Any,
        raw: bytes,
        response: aiohttp.ClientResponse,
    ) -> None:
        self.status = status
        self.headers = headers
        self.links = links
        self.raw = raw
        self._content_type = response.content_type

    @property
    def data(self) -> Any:
        if not self.raw:
            return None
        if self._content_type in JSON_TYPES or self._content_type.endswith("+json"):
            return json.loads(self.raw)
        return self.raw.decode("utf-8", errors="replace")

    def problem(self) -> dict[str, Any]:
        return _problem(self.status, self.headers, self.raw)


def _problem(status: int, headers: Any, raw: bytes) -> dict[str, Any]:
    try:
        problem = json.loads(raw) if raw else None
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = raw.decode("utf-8", errors="replace").strip()[:200]
        problem = {"title": reason(status), "status": status}
        if text:
            problem["detail"] = text
    return problem


def connection_error(url: str, exc: BaseException) -> ClientError:
    """What an aiohttp request (or WebSocket handshake) that got no response means: the
    hub could not be reached (no connection, or its certificate not verified), it did
    not answer in time, or the connection was lost."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return HubUnreachable(url, _reason_of(exc), tls=True)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        return HubUnreachable(url, _reason_of(exc))
    if isinstance(exc, TimeoutError):
        return HubTimeout(f"{url}: no answer in time")
    return Disconnected(f"{url}: {_reason_of(exc)}")


def _reason_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return str(exc.certificate_error)
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        return os.strerror(error.errno) if error.errno else str(error)
    return str(exc) or type(exc).__name__


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _prefer(wait: float | None, respond_async: bool) -> dict[str, str]:
    if respond_async:
        return {"Prefer": "respond-async"}
    if wait is not None:
        return {"Prefer": f"wait={max(0, math.ceil(wait))}"}
    return {}


def _segment(value: str) -> str:
    return quote(value, safe=_SAFE)


def _thing_path(thing_id: str) -> str:
    return f"/things/{_segment(thing_id)}"


def _affordance_path(thing_id: str, member: str, name: str | None = None) -> str:
    path = f"{_thing_path(thing_id)}/{member}"
    return path if name is None else f"{path}/{_segment(name)}"


def _ssl_context(
    ca: bytes | str | os.PathLike[str] | None,
    client_cert: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None,
) -> ssl.SSLContext:
    if ca is None:
        context = ssl.create_default_context()
    elif isinstance(ca, bytes):
        context = ssl.create_default_context(cadata=ca.decode("ascii"))
    elif isinstance(ca, str) and "-----BEGIN" in ca:
        context = ssl.create_default_context(cadata=ca)
    else:
        context = ssl.create_default_context(cafile=os.fspath(Path(ca)))
    if client_cert is not None:
        cert, key = client_cert
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    return context


HISTORY_PAGE = 1000  # the most items the hub gives in one history page


async def history_items(
    page: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
    query: dict[str, Any],
    total: int | None,
) -> AsyncIterator[dict[str, Any]]:
    """The items of a history, page after page (``page(query)`` reads one), at most
    ``total`` in all: the last page asks only for what is left. A total below 1 goes
    to the hub, which refuses it (BadRequest)."""
    query, left = dict(query), total
    while True:
        query["limit"] = HISTORY_PAGE if left is None else min(left, HISTORY_PAGE)
        answer = await page(query)
        for item in answer["items"]:
            yield item
        if left is not None:
            left -= len(answer["items"])
        if "cursor" not in answer or (left is not None and left <= 0):
            return
        query["cursor"] = answer["cursor"]
