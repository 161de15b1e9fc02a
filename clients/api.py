"""One client API over every binding, shaped like the WoT Scripting API (docs/client.md)::

    from clients import connect

    async with connect("wss://hub.lan:8444/ws", client_id="otto", password=pw, ca="ca.pem") as hub:
        lamp = await hub.consume("urn:dev:ops:32473-lamp-1")
        print(await lamp.read_property("brightness"))
        await lamp.write_property("on", True)
        level = await lamp.invoke_action("fade", {"level": 30})   # or an ActionHandle
        async with lamp.observe_property("brightness") as values:
            async for value in values:
                ...

The URL's scheme picks the binding (clients/transports.py); the calls, the results and
the errors (clients/errors.py) are the same on all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator, Mapping
from datetime import datetime
from typing import Any

from vocabulary import clock
from vocabulary.envelope import ABSENT
from vocabulary.things import AUTHN_THING

from .device import AgentLink, ExposedThing, agent_link
from .errors import HubTimeout, NotSupported, hub_error
from .http import history_items
from .results import TERMINAL
from .transports import (
    EVENT,
    PROPERTY,
    Credentials,
    HttpTransport,
    Stream,
    Transport,
    hub_urls,
    transport_for,
)

# Seconds an action or a write may take before the call returns an ActionHandle instead
# of its end (the hub answers at once when it queues the request: the agent is offline).
WAIT = 2.0
# How often a handle asks for its request's state when nothing is pushed (HTTP), at the
# most: from 0.1 s, doubling.
MAX_POLL = 2.0
# History items asked for at once: the hub's most per page.
# The hub's status for a request that ended without an error of its own.
_ENDED = {"failed": 500, "expired": 408, "cancelled": 410}


def connect(
    url: str | Mapping[str, Any],
    *,
    client_id: str,
    password: str | None = None,
    token: str | None = None,
    ca: bytes | str | None = None,
    client_cert: tuple[str, str] | None = None,
    http_url: str | None = None,
    binding: str | None = None,
    timeout: float = 10.0,
) -> Hub:
    """A connection to the hub at ``url`` over the binding its scheme names: ``https``,
    ``wss``, ``mqtts`` (``mqtt`` on loopback), ``nats`` or ``tls``. Open it with
    ``async with`` (closed at the end) or ``await``. ``http_url``: where the directory
    is, for ``things`` and ``search`` over MQTT and NATS (by default where the hub's own
    TD says; HTTPS and WebSocket know).

    ``url`` may be a twin TD instead: the hub's address is then the one its forms give
    for ``binding`` (http, websocket, mqtt or nats; without it, the binding of its
    first form), and ``http_url`` the one its HTTPS forms give."""
    if not isinstance(url, str):
        url, http_url = _address_in(url, binding, http_url)
    elif binding is not None:
        raise ValueError("binding= picks a form of a TD; a URL's scheme names its own")
    credentials = Credentials(
        client_id, password=password, token=token, ca=ca, client_cert=client_cert
    )
    return Hub(url, credentials, http_url=http_url, timeout=timeout)


def _address_in(
    td: Mapping[str, Any], binding: str | None, http_url: str | None
) -> tuple[str, str | None]:
    """The hub's URL for ``binding`` in a twin TD's forms, and its HTTPS URL."""
    urls = hub_urls(td)
    if not urls:
        raise ValueError(f"the TD {td.get('id')!r} has no form with the hub's address")
    if binding is None:
        binding = next(iter(urls))
    if binding not in urls:
        known = ", ".join(urls)
        raise ValueError(f"the TD {td.get('id')!r} has no {binding} form (it has {known})")
    return urls[binding], http_url or urls.get("http")


class Hub:
    """One client's connection to the hub: consume Things, browse the directory."""

    def __init__(
        self, url: str, credentials: Credentials, *, http_url: str | None, timeout: float
    ) -> None:
        self.url = url
        self.client_id = credentials.client_id
        self.timeout = timeout
        self._credentials = credentials
        self.transport: Transport = transport_for(url, credentials, timeout)
        self.binding: str = self.transport.binding  # type: ignore[attr-defined]
        self._http_url = http_url or _https_of(url)
        self._directory: HttpTransport | None = (
            self.transport if isinstance(self.transport, HttpTransport) else None
        )
        self._subscriptions: set[Subscription] = set()
        self._agent: AgentLink | None = None
        # The client's login, for every connection it opens (docs/client.md, "Logins
        # and tokens"): a bus refreshes over itself, else over HTTPS when it is known.
        self.session = credentials.session
        if self._directory is None and self._http_url is not None:
            self.session.add_refresher(self._refresh_over_https, needs_connection=False)

    async def open(self) -> Hub:
        await self.transport.open()
        self.session.keep_fresh()
        return self

    def __await__(self) -> Generator[Any, None, Hub]:
        return self.open().__await__()

    async def __aenter__(self) -> Hub:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """End every subscription and the connection."""
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        if self._agent is not None:
            await self._agent.close()
        await self.session.close()
        if self._directory is not None and self._directory is not self.transport:
            await self._directory.close()
        await self.transport.close()

    # -- consuming ------------------------------------------------------------------------

    async def consume(self, thing: str | Mapping[str, Any]) -> ConsumedThing:
        """The Thing with this id (its twin TD is read: ``NotFound`` when there is none
        the client may read), or described by this TD. Its calls go over this
        connection to the twin with the TD's ``id``, whichever binding (or device) the
        TD's forms name: a consumer reaches a Thing through the hub."""
        if isinstance(thing, str):
            return ConsumedThing(self, await self.transport.read_thing(thing))
        if not isinstance(thing.get("id"), str):
            raise ValueError("a TD to consume needs its id: the twin's name in the hub")
        return ConsumedThing(self, dict(thing))

    # -- exposing -------------------------------------------------------------------------

    async def expose(self, td: Mapping[str, Any]) -> ExposedThing:
        """Serve the Thing ``td`` describes as its agent (the client's role must be
        agent or service): the TD is registered; set its handlers, emit its values.
        Over HTTPS, the same hub's WebSocket serves it (HTTP carries no requests to agents)."""
        if self._agent is None:
            link = agent_link(self.transport, self._credentials)
            await link.open()
            self._agent = link
        return await self._agent.expose(dict(td))

    # -- the directory --------------------------------------------------------------------

    async def things(self, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Every twin TD the client may read, a page at a time."""
        directory = await self._directory_client()
        async for td in directory.things(page_size):
            yield td

    async def search(self, jsonpath: str) -> list[Any]:
        """RFC 9535 JSONPath over the TDs the client may read."""
        return await (await self._directory_client()).search(jsonpath)

    async def _directory_client(self) -> HttpTransport:
        """The directory is the HTTP binding's: on a bus, a second connection to it, at
        ``http_url`` or where the HTTPS forms of the hub's own TD say."""
        if self._directory is None:
            url = self._http_url or await self._https_address()
            directory = HttpTransport(url, self._credentials, self.timeout, refresher=False)
            await directory.open()
            self._directory = directory
        return self._directory

    async def _refresh_over_https(self, token: str) -> Mapping[str, Any]:
        """A refresh over the directory's HTTPS connection (opened for it if need be)."""
        directory = await self._directory_client()
        return await directory.client.refresh_token(token)

    async def _https_address(self) -> str:
        url = hub_urls(await self.transport.read_thing(AUTHN_THING)).get("http")
        if url is None:
            raise NotSupported(
                f"the directory is served over HTTPS, and the hub's TD names no HTTPS "
                f"address: connect({self.url!r}, http_url='https://...') to browse it"
            )
        return url


class ConsumedThing:
    """A Thing seen through its twin in the hub (WoT's ConsumedThing). ``td`` is its TD,
    ``id`` its id."""

    def __init__(self, hub: Hub, td: dict[str, Any]) -> None:
        self.hub = hub
        self.td = td
        self.id: str = td["id"]
        self.title: str | None = td.get("title")

    def __repr__(self) -> str:
        return f"ConsumedThing({self.id!r})"

    async def read_property(self, name: str) -> Any:
        """The property's last reported value (``HubError`` 503 when there is none yet)."""
        return await self.hub.transport.read_property(self.id, name)

    async def read_all_properties(self) -> dict[str, Any]:
        """{name: value} of the properties that have a value."""
        return await self.hub.transport.read_all_properties(self.id)

    async def read_state(self) -> dict[str, Any]:
        """The twin's state document (docs/digitwin.md): per property what the device
        reported, the write waiting for it (desired) and the last one it refused
        (declined), and the delta {name: desired value differing from the reported}."""
        return await self.hub.transport.read_state(self.id)

    async def write_property(
        self, name: str, value: Any, *, wait: float = WAIT
    ) -> ActionHandle | None:
        """None when the device took the value within ``wait`` seconds; an
        ``ActionHandle`` of the queued write otherwise (the device is offline or slow)."""
        status = await self.hub.transport.write_property(self.id, name, value, wait)
        if status["state"] in TERMINAL:
            _outcome(status)
            return None
        return ActionHandle(self.hub, status)

    async def invoke_action(self, name: str, input: Any = ABSENT, *, wait: float = WAIT) -> Any:
        """The action's output (None without one) when it ends within ``wait`` seconds;
        an ``ActionHandle`` otherwise (the hub queued it: the device is offline, or it
        takes longer). A failed action raises its error."""
        status = await self.hub.transport.invoke_action(self.id, name, input, wait)
        if status["state"] in TERMINAL:
            return _outcome(status)
        return ActionHandle(self.hub, status)

    def observe_property(self, name: str) -> Subscription:
        """The property's new values, from when the subscription opened (``async with``
        opens it and closes it after; iterating opens it too)."""
        self._named("properties", name)
        return Subscription(self.hub, self.hub.transport.stream(self.id, PROPERTY, name))

    def subscribe_event(self, name: str) -> Subscription:
        """The event's data each time the device reports it."""
        self._named("events", name)
        return Subscription(self.hub, self.hub.transport.stream(self.id, EVENT, name))

    def history(
        self,
        name: str,
        *,
        event: bool = False,
        since: datetime | str | None = None,
        to: datetime | str | None = None,
        step: str | None = None,
        limit: int | None = None,
        order: str = "newest",
    ) -> History:
        """The property's (or the ``event``'s) past values, as the hub kept them
        (docs/history.md): ``async for item in`` follows the pages, ``await`` gives a
        list. ``since`` and ``to`` (both included): datetimes or RFC 3339 text; ``step``
        a duration (``10s``, ``1h``...) to downsample into buckets; ``limit`` the most
        items in all (None: every one in the range); ``order`` newest or oldest first."""
        query = {"from": _rfc3339(since), "to": _rfc3339(to), "step": step, "order": order}
        kind = EVENT if event else PROPERTY
        return History(self.hub, self.id, kind, name, _present(query), limit)

    def _named(self, member: str, name: str) -> None:
        """``NotFound`` for a name the TD does not have, as the hub answers a read: the
        buses would take a subscription to it and never send anything."""
        if name not in (self.td.get(member) or {}):
            kind = {"properties": "property", "events": "event"}[member]
            raise hub_error(
                {"title": "Not Found", "status": 404, "detail": f"{self.id} has no {kind} {name!r}"}
            )


class ActionHandle:
    """An action (or a property write) the hub queued: ``await handle`` gives its
    output when it ends (or raises its error); ``status()`` its state now; ``cancel()``."""

    def __init__(self, hub: Hub, status: dict[str, Any]) -> None:
        self.hub = hub
        self.last = status  # the latest status known
        self.id: str = status["id"]
        self.thing_id: str = status["thingID"]
        self.name: str = status["name"]

    def __repr__(self) -> str:
        return f"ActionHandle({self.thing_id!r}, {self.name!r}, {self.id!r}, {self.state!r})"

    @property
    def state(self) -> str:
        """The latest state known: pending, delivered, running, completed, failed,
        expired or cancelled."""
        return self.last["state"]

    async def status(self) -> str:
        """Ask the hub for the request's state now."""
        self.last = await self.hub.transport.query_action(self.last)
        return self.state

    async def cancel(self) -> None:
        """Cancel it (``Conflict`` when it has already ended)."""
        await self.hub.transport.cancel_action(self.last)

    async def result(self, timeout: float | None = None) -> Any:
        """The output when the request ends (``HubTimeout`` after ``timeout`` s)."""
        transport, delay = self.hub.transport, 0.1
        try:
            async with asyncio.timeout(timeout):
                while self.state not in TERMINAL:
                    final = await transport.action_ended(self.last, delay)
                    if final is not None:
                        self.last = final
                    else:  # nothing pushed (HTTP), or it came while nobody listened
                        await self.status()
                    delay = min(delay * 2, MAX_POLL)
        except TimeoutError:
            raise HubTimeout(f"{self.name} {self.id} did not end in {timeout} s") from None
        return _outcome(self.last)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()


class History:
    """Items of one property's or event's history, newest first unless asked otherwise:
    {"time", "value"}, or with a step one bucket each: {"time", "count", "min",
    "max", "mean", "last"} (docs/history.md). Asks the hub for a page at a time."""

    def __init__(
        self,
        hub: Hub,
        thing_id: str,
        kind: str,
        name: str,
        query: dict[str, Any],
        limit: int | None,
    ) -> None:
        self.hub = hub
        self._where = (thing_id, kind, name)
        self._query = query
        self._limit = limit

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._items()

    def _items(self) -> AsyncIterator[dict[str, Any]]:
        async def page(query: dict[str, Any]) -> dict[str, Any]:
            return await self.hub.transport.history_page(*self._where, query)

        return history_items(page, self._query, self._limit)

    async def list(self) -> list[dict[str, Any]]:
        return [item async for item in self]

    def __await__(self) -> Generator[Any, None, list[dict[str, Any]]]:
        return self.list().__await__()


class Subscription:
    """Values of one property or event as an async iterator; ``async with`` opens the
    subscription before the block (nothing sent after is missed) and ends it after."""

    def __init__(self, hub: Hub, stream: Stream) -> None:
        self.hub = hub
        self._stream = stream
        self._closed = False

    async def open(self) -> Subscription:
        if self._closed:
            raise RuntimeError("this subscription is closed")
        await self._stream.open()
        self.hub._subscriptions.add(self)
        return self

    async def __aenter__(self) -> Subscription:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        await self.open()
        return await self._stream.next()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.hub._subscriptions.discard(self)
        await self._stream.close()


def _outcome(status: Mapping[str, Any]) -> Any:
    """The output of a request that ended; its error raised when it did not complete."""
    state = status["state"]
    if state == "completed":
        output = status.get("output", ABSENT)
        return None if output is ABSENT else output
    error = status.get("error") or {"title": state, "status": _ENDED.get(state, 500)}
    raise hub_error(error)


def _rfc3339(moment: datetime | str | None) -> str | None:
    """A datetime as the hub's RFC 3339 text (a naive one is local time, as Python
    takes it); text as it is, for the hub to check."""
    if not isinstance(moment, datetime):
        return moment
    return clock.rfc3339(moment.timestamp())


def _present(query: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in query.items() if value is not None}


def _https_of(url: str) -> str | None:
    """The HTTPS address of a hub reached at ``url``: itself, or the server of its
    WebSocket endpoint (``wss://host:port/ws``); None for the buses."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme in ("https", "http"):
        return url
    if scheme in ("wss", "ws"):
        host = rest.split("/", 1)[0]
        return f"{'https' if scheme == 'wss' else 'http'}://{host}"
    return None


__all__ = ["WAIT", "ActionHandle", "ConsumedThing", "History", "Hub", "Subscription", "connect"]
