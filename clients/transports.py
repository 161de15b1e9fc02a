"""The consumer side of the four clients behind one interface (``Transport``), for
clients/api.py: the same calls, the same results and the same errors whichever binding
the URL names. Each transport wraps the binding's own client (``HttpConsumer``,
``WsClient``, ``MqttClient``, ``NatsConsumer``) and only evens out what differs:

- results: a property read is its value, and raises 503 when the device has not
  reported it yet (HTTP's answer); a request's state is a ``status`` dict (``id``,
  ``thingID``, ``name``, ``state``: pending, delivered, running, completed, failed,
  expired or cancelled, and ``output``, ``error``, ``href`` when there are);
- notifications: a stream of values (the property's value, the event's data), only
  those sent after the stream opened (MQTT's retained value is left out);
- waiting for a request's end: pushed by the hub on the buses, polled on HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from vocabulary.envelope import ABSENT
from vocabulary.things import AUTHN_THING

from .errors import Disconnected, HubTimeout, refused
from .http import ActionStatus, EventStream, HttpConsumer
from .mqtt import MqttClient, TwinStream
from .nats import NatsConsumer
from .session import Session
from .websocket import WsClient

Ca = bytes | str | os.PathLike[str] | None
PROPERTY, EVENT = "property", "event"
# Notifications a stream keeps for a reader that is slow: past this the oldest go.
STREAM_QUEUE = 10_000


class Stream(Protocol):
    """The values of one property or event, from when ``open`` returned."""

    async def open(self) -> None: ...
    async def next(self) -> Any: ...
    async def close(self) -> None: ...


class Transport(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def read_thing(self, thing_id: str) -> dict[str, Any]: ...
    async def read_property(self, thing_id: str, name: str) -> Any: ...
    async def read_all_properties(self, thing_id: str) -> dict[str, Any]: ...
    async def write_property(
        self, thing_id: str, name: str, value: Any, wait: float
    ) -> dict[str, Any]: ...
    async def invoke_action(
        self, thing_id: str, name: str, input: Any, wait: float
    ) -> dict[str, Any]: ...
    async def query_action(self, status: Mapping[str, Any]) -> dict[str, Any]: ...
    async def cancel_action(self, status: Mapping[str, Any]) -> None: ...
    async def action_ended(
        self, status: Mapping[str, Any], within: float
    ) -> dict[str, Any] | None: ...
    def stream(self, thing_id: str, kind: str, name: str) -> Stream: ...
    async def history_page(
        self, thing_id: str, kind: str, name: str, query: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    async def read_state(self, thing_id: str) -> dict[str, Any]: ...


class Credentials:
    """Who logs in and how: ``password`` (with ``client_id``) or ``token``, or a
    ``client_cert`` (certificate, key) file pair; ``ca`` the hub CA (PEM or a path;
    None: the system's trust store). ``session`` is the one login every connection of
    the client uses (its current token, clients/session.py)."""

    def __init__(
        self,
        client_id: str,
        *,
        password: str | None = None,
        token: str | None = None,
        ca: Ca = None,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        if password is not None and token is not None:
            raise ValueError("give a password or a token, not both")
        self.client_id = client_id
        self.password = password
        self.token = token
        self.ca = ca
        self.client_cert = client_cert
        self.session = Session(client_id, password=password, token=token)

    def ca_pem(self) -> bytes | None:
        """The CA as PEM bytes (what the MQTT and NATS clients take)."""
        ca = self.ca
        if ca is None or isinstance(ca, bytes):
            return ca
        if isinstance(ca, str) and "-----BEGIN" in ca:
            return ca.encode("ascii")
        return Path(ca).read_bytes()


def no_value(thing_id: str, name: str) -> Exception:
    """A read of a property the device has not reported: HTTP's 503, on every binding."""
    return refused(503, f"the device has not reported {name!r} of {thing_id} yet")


def status_of(data: Mapping[str, Any], thing_id: str, name: str | None) -> dict[str, Any]:
    """A request's status, the same shape from every binding (see the module's text)."""
    state = data.get("state") or data.get("status")  # HTTP's finer state is ``state``
    status: dict[str, Any] = {
        "id": data.get("actionID") or data.get("id"),
        "thingID": data.get("thingID") or thing_id,
        "name": data.get("name") or name,
        "state": state,
    }
    for key in ("output", "error", "href"):
        if data.get(key, ABSENT) is not ABSENT:
            status[key] = data[key]
    return status


class _Values:
    """The values a stream received and nobody took yet (the oldest dropped past
    ``STREAM_QUEUE``); ``end`` wakes a reader of a closed stream."""

    def __init__(self) -> None:
        self._values: deque[Any] = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self.dropped = 0

    def put(self, value: Any) -> None:
        if len(self._values) >= STREAM_QUEUE:
            self._values.popleft()
            self.dropped += 1
        self._values.append(value)
        self._ready.set()

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def get(self) -> Any:
        while not self._values:
            if self._ended:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._values.popleft()


# -- HTTP ---------------------------------------------------------------------------------


class HttpTransport:
    """``https://``: the HTTP binding (SSE for notifications). A request's end is polled:
    the binding tells nobody but the invoker waiting with ``Prefer: wait``."""

    binding = "http"

    def __init__(
        self, url: str, credentials: Credentials, timeout: float, *, refresher: bool = True
    ) -> None:
        self.session = credentials.session
        self.client = HttpConsumer(
            url,
            ca=credentials.ca,
            client_cert=credentials.client_cert,
            timeout=timeout,
            session=self.session,
        )
        # The directory's second connection (``refresher=False``) is not: the hub's
        # connection decides how to refresh (clients/api.py).
        self._refresher = refresher

    async def open(self) -> None:
        if self._refresher:
            self.session.add_refresher(self.client.refresh_token, needs_connection=False)
        if self.session.token is None and self.session.password is not None:
            await self.session.login()

    async def close(self) -> None:
        self.session.remove_refresher(self.client.refresh_token)
        await self.client.close()

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return await self.client.read_thing(thing_id)

    async def read_property(self, thing_id: str, name: str) -> Any:
        return await self.client.read_property(thing_id, name)

    async def read_all_properties(self, thing_id: str) -> dict[str, Any]:
        return await self.client.read_all_properties(thing_id)

    async def write_property(
        self, thing_id: str, name: str, value: Any, wait: float
    ) -> dict[str, Any]:
        status = await self.client.write_property(thing_id, name, value, wait=wait)
        if status is None:  # the device took it in time
            return {"id": None, "thingID": thing_id, "name": name, "state": "completed"}
        return status_of(status, thing_id, name)

    async def invoke_action(
        self, thing_id: str, name: str, input: Any, wait: float
    ) -> dict[str, Any]:
        result = await self.client.invoke_action(thing_id, name, input, wait=wait)
        if isinstance(result, ActionStatus):
            return status_of(result, thing_id, name)
        return {
            "id": None,
            "thingID": thing_id,
            "name": name,
            "state": "completed",
            "output": result,
        }

    async def query_action(self, status: Mapping[str, Any]) -> dict[str, Any]:
        answer = await self.client.query_action(status["href"])
        return status_of(answer, status["thingID"], status["name"]) | {"href": status["href"]}

    async def cancel_action(self, status: Mapping[str, Any]) -> None:
        await self.client.cancel_action(status["href"])

    async def action_ended(self, status: Mapping[str, Any], within: float) -> None:
        await asyncio.sleep(within)  # nothing is pushed: the caller polls after this pause

    def stream(self, thing_id: str, kind: str, name: str) -> Stream:
        if kind == PROPERTY:
            return _SseStream(self.client.observe_property(thing_id, name))
        return _SseStream(self.client.subscribe_event(thing_id, name))

    async def history_page(
        self, thing_id: str, kind: str, name: str, query: Mapping[str, Any]
    ) -> dict[str, Any]:
        return await self.client.history_page(thing_id, name, event=kind == EVENT, **query)

    async def read_state(self, thing_id: str) -> dict[str, Any]:
        return await self.client.read_state(thing_id)

    def things(self, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        return self.client.things(page_size)

    async def search(self, jsonpath: str) -> list[Any]:
        return await self.client.search(jsonpath)


class _SseStream:
    def __init__(self, events: EventStream) -> None:
        self._events = events

    async def open(self) -> None:
        await self._events.open()

    async def next(self) -> Any:
        while True:
            event = await anext(self._events)
            if event.event != "resync":  # values were missed; the stream goes on
                return event.data

    async def close(self) -> None:
        await self._events.aclose()


# -- the buses ------------------------------------------------------------------------------


class _BusTransport:
    """What WebSocket, MQTT and NATS share: requests are envelopes, a request's later
    states come pushed as responses. A subclass supplies ``_request`` (the response,
    an error response raised) and ``_final`` (the last response of a request, within
    some seconds, else None)."""

    client: Any  # the binding's client (WsClient, MqttClient, NatsConsumer)
    session: Session

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        raise NotImplementedError

    def _client(self) -> Any:
        return self.client

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def open(self) -> None:
        await self.client.connect()
        self.session.add_refresher(self.refresh_token, needs_connection=True)

    async def close(self) -> None:
        self.session.remove_refresher(self.refresh_token)
        if self.client is not None:
            await self.client.close()

    async def _final(self, action_id: str, within: float) -> dict[str, Any] | None:
        """The request's last response within ``within`` seconds, else None."""
        try:
            return await self._client().action_result(action_id, timeout=within)
        except HubTimeout:
            return None

    async def refresh_token(self, token: str) -> dict[str, Any]:
        """The ``refresh`` action of the hub's authn Thing, over this connection
        (``Disconnected`` at once while there is none)."""
        if not self.connected:
            raise Disconnected("not connected")
        response = await self._request(
            "invokeaction", AUTHN_THING, "refresh", input={"token": token}
        )
        return response.get("output")

    async def read_thing(self, thing_id: str) -> dict[str, Any]:
        return (await self._request("readthing", thing_id))["output"]

    async def read_property(self, thing_id: str, name: str) -> Any:
        response = await self._request("readproperty", thing_id, name)
        if "output" not in response:
            raise no_value(thing_id, name)
        return response["output"]

    async def read_all_properties(self, thing_id: str) -> dict[str, Any]:
        return (await self._request("readallproperties", thing_id)).get("output") or {}

    async def write_property(
        self, thing_id: str, name: str, value: Any, wait: float
    ) -> dict[str, Any]:
        response = await self._request("writeproperty", thing_id, name, input=value)
        return await self._settled(status_of(response, thing_id, name), wait)

    async def invoke_action(
        self, thing_id: str, name: str, input: Any, wait: float
    ) -> dict[str, Any]:
        fields = {} if input is ABSENT else {"input": input}
        response = await self._request("invokeaction", thing_id, name, **fields)
        return await self._settled(status_of(response, thing_id, name), wait)

    async def _settled(self, status: dict[str, Any], wait: float) -> dict[str, Any]:
        """The request's end when it comes within ``wait`` seconds; its first state at
        once when the hub queued it (the agent is offline)."""
        if status["state"] in ("delivered", "running") and wait > 0:
            final = await self.action_ended(status, wait)
            if final is not None:
                return final
        return status

    async def query_action(self, status: Mapping[str, Any]) -> dict[str, Any]:
        response = await self._request("queryaction", status["thingID"], actionID=status["id"])
        return status_of(response["output"], status["thingID"], status["name"])

    async def cancel_action(self, status: Mapping[str, Any]) -> None:
        await self._request("cancelaction", status["thingID"], actionID=status["id"])

    async def action_ended(self, status: Mapping[str, Any], within: float) -> dict[str, Any] | None:
        final = await self._final(status["id"], within)
        return None if final is None else status_of(final, status["thingID"], status["name"])

    async def history_page(
        self, thing_id: str, kind: str, name: str, query: Mapping[str, Any]
    ) -> dict[str, Any]:
        response = await self._request(
            "queryhistory", thing_id, name, input={**query, "kind": kind}
        )
        return response["output"]

    async def read_state(self, thing_id: str) -> dict[str, Any]:
        return (await self._request("readstate", thing_id))["output"]


class WsTransport(_BusTransport):
    """``wss://``: the Web Thing Protocol WebSocket (``/ws``). The client reconnects by
    itself and subscribes again."""

    binding = "websocket"

    def __init__(self, url: str, credentials: Credentials, timeout: float) -> None:
        self.timeout = timeout
        self.session = credentials.session
        self.client = WsClient(
            url,
            ca=credentials.ca,
            client_cert=credentials.client_cert,
            connect_timeout=timeout,
            session=self.session,
        )
        self._subscribed: dict[tuple[str, str, str], int] = {}  # how many streams each

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        return await self.client.request(operation, thing_id, name, timeout=self.timeout, **fields)

    def stream(self, thing_id: str, kind: str, name: str) -> Stream:
        return _WsStream(self, thing_id, kind, name)


class _WsStream:
    """Notifications of one property or event, picked from the client's by a callback.
    The subscription request is sent once per (Thing, name), undone by the last stream."""

    def __init__(self, transport: WsTransport, thing_id: str, kind: str, name: str) -> None:
        self._transport = transport
        self._operation = "observeproperty" if kind == PROPERTY else "subscribeevent"
        self._key = (self._operation, thing_id, name)
        self._values = _Values()
        self._opened = False

    def _received(self, message: dict[str, Any]) -> None:
        operation, thing_id, name = self._key
        if (
            message.get("messageType") == "notification"
            and message.get("operation") == operation
            and message.get("thingID") == thing_id
            and message.get("name") == name
        ):
            self._values.put(message.get("value"))

    async def open(self) -> None:
        if self._opened:
            return
        transport = self._transport
        transport.client.add_callback(self._received)
        count = transport._subscribed.get(self._key, 0)
        try:
            if count == 0:
                await transport._request(*self._key)
        except BaseException:
            transport.client.remove_callback(self._received)
            raise
        transport._subscribed[self._key] = count + 1
        self._opened = True

    async def next(self) -> Any:
        await self.open()
        return await self._values.get()

    async def close(self) -> None:
        self._values.end()
        if not self._opened:
            return
        self._opened = False
        transport = self._transport
        transport.client.remove_callback(self._received)
        count = transport._subscribed.pop(self._key) - 1
        if count:
            transport._subscribed[self._key] = count
            return
        operation, thing_id, name = self._key
        undo = "unobserveproperty" if operation == "observeproperty" else "unsubscribeevent"
        with contextlib.suppress(Exception):  # closed or gone: nothing left to undo
            await transport._request(undo, thing_id, name)


class MqttTransport(_BusTransport):
    """``mqtts://`` (``mqtt://`` on loopback): MQTT 3.1.1 through the hub's nats-server.
    The client reconnects by itself and subscribes again."""

    binding = "mqtt"

    def __init__(self, url: str, credentials: Credentials, timeout: float) -> None:
        self.url = url
        self.session = credentials.session
        cert, key = credentials.client_cert or (None, None)
        self.client = MqttClient(
            url,
            credentials.client_id,
            ca_pem=credentials.ca_pem(),
            certfile=cert,
            keyfile=key,
            timeout=timeout,
            session=self.session,
        )

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        return await self.client.request(operation, thing_id, name, **fields)

    def stream(self, thing_id: str, kind: str, name: str) -> Stream:
        if kind == PROPERTY:
            return _MqttStream(self.client.observe_property(thing_id, name, retained=False))
        return _MqttStream(self.client.subscribe_event(thing_id, name))


class _MqttStream:
    def __init__(self, twin: TwinStream) -> None:
        self._twin = twin

    async def open(self) -> None:
        await self._twin.open()

    async def next(self) -> Any:
        _topic, value = await anext(self._twin)
        return value

    async def close(self) -> None:
        await self._twin.aclose()


class NatsTransport(_BusTransport):
    """``nats://`` or ``tls://``: NATS, the hub's nats-server. nats-py reconnects by
    itself and keeps its subscriptions."""

    binding = "nats"

    def __init__(self, url: str, credentials: Credentials, timeout: float) -> None:
        self.url = url
        self.credentials = credentials
        self.session = credentials.session
        self.timeout = timeout
        self.client: NatsConsumer | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.nc.is_connected

    async def open(self) -> None:
        credentials = self.credentials
        self.client = await NatsConsumer.connect(
            self.url,
            credentials.client_id,
            certificate=credentials.client_cert,
            ca_pem=credentials.ca_pem(),
            connect_timeout=self.timeout,
            session=self.session,
        )
        self.session.add_refresher(self.refresh_token, needs_connection=True)

    def _client(self) -> NatsConsumer:
        if self.client is None:
            raise RuntimeError("not connected")
        return self.client

    async def _request(self, operation: str, thing_id: str, name: str | None = None, **fields):
        return await self._client().request(
            operation, thing_id, name, timeout=self.timeout, **fields
        )

    def stream(self, thing_id: str, kind: str, name: str) -> Stream:
        return _NatsStream(self._client(), thing_id, "prop" if kind == PROPERTY else "event", name)


class _NatsStream:
    def __init__(self, client: NatsConsumer, thing_id: str, kind: str, name: str) -> None:
        self._client = client
        self._args = (thing_id, kind, name)
        self._values = _Values()
        self._subscription: Any = None

    async def open(self) -> None:
        if self._subscription is not None:
            return
        thing_id, kind, name = self._args

        def received(message: dict[str, Any]) -> None:
            self._values.put(message.get("value"))

        self._subscription = await self._client.observe(thing_id, received, kind=kind, name=name)
        await self._client.flush()  # the server has the subscription

    async def next(self) -> Any:
        await self.open()
        return await self._values.get()

    async def close(self) -> None:
        self._values.end()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


# -- which one --------------------------------------------------------------------------------

TRANSPORTS: dict[str, type] = {
    "https": HttpTransport,
    "http": HttpTransport,
    "wss": WsTransport,
    "ws": WsTransport,
    "mqtts": MqttTransport,
    "mqtt": MqttTransport,
    "nats": NatsTransport,
    "tls": NatsTransport,
}


def hub_urls(td: Mapping[str, Any]) -> dict[str, str]:
    """Where a twin TD's forms say the hub is, per binding, in the TD's order:
    {"http": "https://host:8444", "websocket": "wss://host:8444/ws", "mqtt":
    "mqtts://host:8883", "nats": "nats://host:4222"}. Forms this client has no
    transport for, and relative hrefs, are left out."""
    urls: dict[str, str] = {}
    for form in _forms(td):
        href = form.get("href")
        if not isinstance(href, str) or "://" not in href:
            continue
        scheme, _, rest = href.partition("://")
        kind = TRANSPORTS.get(scheme.lower())
        if kind is None or kind.binding in urls:
            continue
        if kind is HttpTransport:  # the hub's API is under {base}/things/{id}/...
            base, found, _ = href.partition("/things/")
            if not found:
                continue
            urls[kind.binding] = base
        elif kind is WsTransport:  # the one endpoint
            urls[kind.binding] = href
        else:  # the broker's address; the path is the topic
            urls[kind.binding] = f"{scheme}://{rest.split('/', 1)[0]}"
    return urls


def _forms(td: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The TD's forms: the Thing's, then each affordance's."""
    yield from td.get("forms") or ()
    for member in ("properties", "actions", "events"):
        for affordance in (td.get(member) or {}).values():
            yield from affordance.get("forms") or ()


def transport_for(url: str, credentials: Credentials, timeout: float) -> Transport:
    """The transport the URL's scheme names."""
    scheme = url.partition("://")[0].lower()
    kind = TRANSPORTS.get(scheme)
    if kind is None:
        known = ", ".join(TRANSPORTS)
        raise ValueError(f"no transport for {url!r}: the scheme is one of {known}")
    return kind(url, credentials, timeout)
