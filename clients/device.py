"""The agent side of clients/api.py (WoT's ExposedThing): ``device = await
hub.expose(td)`` registers the TD; handlers answer the hub's requests (those queued
while the device was away come first, on connect); ``emit_property_change`` and
``emit_event`` report values. While the hub is unreachable what is emitted waits in a
bounded ``Outbox`` and goes out after the reconnect (docs/client.md, "The outbox").

An ``AgentLink`` per binding carries it: WebSocket (the hub's own connection), MQTT (a
second session of the client, ``agent=True``), NATS (a ``NatsAgent``). HTTP carries no
requests to agents: over ``https`` the device is served by the same hub's WebSocket.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from vocabulary.envelope import ABSENT
from vocabulary.things import AUTHN_THING

from .errors import ClientError, Disconnected, HubError, NotSupported
from .mqtt import MqttClient
from .nats import NatsAgent
from .transports import (
    Credentials,
    HttpTransport,
    MqttTransport,
    NatsTransport,
    Transport,
    WsTransport,
    hub_urls,
)
from .websocket import WsClient

log = logging.getLogger("wothub.client.device")

Handler = Callable[[Any], Awaitable[Any] | Any]
# Events an outbox keeps while the hub is unreachable; past this the oldest are dropped.
MAX_EVENTS = 1000


class Outbox:
    """What a device emitted while it could not send: the latest value of each property
    (a newer one replaces it) and the events in order, at most ``max_events`` (the
    oldest dropped past that, counted in ``dropped``). ``take`` empties it: the values
    first, then the events."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.max_events = max_events
        self.dropped = 0
        self._values: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._events: deque[tuple[str, str, Any]] = deque()

    def __len__(self) -> int:
        return len(self._values) + len(self._events)

    def add_value(self, thing_id: str, name: str, value: Any) -> None:
        self._values.pop((thing_id, name), None)  # the newest goes last
        self._values[(thing_id, name)] = value

    def add_event(self, thing_id: str, name: str, data: Any) -> None:
        if len(self._events) >= self.max_events:
            self._events.popleft()
            self.dropped += 1
        self._events.append((thing_id, name, data))

    def take(self) -> list[tuple[str, str, str, Any]]:
        """("property" | "event", thing id, name, value), in the order to send them."""
        taken = [("property", t, n, v) for (t, n), v in self._values.items()]
        taken += [("event", t, n, d) for t, n, d in self._events]
        self._values.clear()
        self._events.clear()
        return taken


class ExposedThing:
    """A Thing this client serves as its agent."""

    def __init__(self, link: AgentLink, td: dict[str, Any]) -> None:
        self.link = link
        self.td = td
        self.id: str = td["id"]
        self._action_handlers: dict[str, Handler] = {}
        self._write_handlers: dict[str, Handler] = {}

    def set_action_handler(self, name: str, handler: Handler) -> None:
        """``handler(input)`` (sync or async) runs the action; what it returns is the
        output, an exception it raises fails the action (its text is the detail)."""
        self._action_handlers[name] = handler

    def set_property_write_handler(self, name: str, handler: Handler) -> None:
        """``handler(value)`` takes a write of the property; an exception refuses it."""
        self._write_handlers[name] = handler

    async def emit_property_change(self, name: str, value: Any) -> None:
        """Report the property's new value (kept in the outbox while the hub is away)."""
        await self.link.emit("property", self.id, name, value)

    async def emit_event(self, name: str, data: Any = None) -> None:
        """Report the event (kept in the outbox while the hub is away)."""
        await self.link.emit("event", self.id, name, data)

    async def _handle(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """(output, None) or (None, the problem) for one request from the hub."""
        operation, name = request.get("operation"), request.get("name")
        handlers = self._action_handlers if operation == "invokeaction" else self._write_handlers
        handler = handlers.get(name or "")
        if handler is None:
            detail = f"{self.id} has no handler for {operation} {name!r}"
            return None, {"type": "about:blank", "title": "Not Implemented", "status": 501,
                          "detail": detail}  # fmt: skip
        try:
            result = handler(request.get("input"))
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:  # the handler's failure is the request's, not the link's
            detail = str(exc) or type(exc).__name__
            return None, {"type": "about:blank", "title": "Failed", "status": 500,
                          "detail": detail}  # fmt: skip
        return (None if operation == "writeproperty" else result), None


class AgentLink:
    """One binding's agent connection for the exposed Things of one client. A subclass
    supplies ``_register``, ``_report`` (raises when it could not send), ``_answer`` and
    ``connected``; this class routes requests to the Things and keeps the outbox."""

    def __init__(self, max_events: int = MAX_EVENTS) -> None:
        self.things: dict[str, ExposedThing] = {}
        self.outbox = Outbox(max_events)
        self._flushing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # Requests for Things not exposed yet: the hub sends what it queued on connect,
        # before ``expose`` registered the Thing again.
        self._early: dict[str, list[dict[str, Any]]] = {}

    @property
    def connected(self) -> bool:
        raise NotImplementedError

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _register(self, td: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def _report(self, kind: str, thing_id: str, name: str, value: Any) -> None:
        raise NotImplementedError

    async def _answer(self, request: dict[str, Any], output: Any, error: Any) -> None:
        raise NotImplementedError

    async def expose(self, td: dict[str, Any]) -> ExposedThing:
        """Register ``td`` (a TD without ``id`` gets one from the hub) and serve the
        requests for it that came before."""
        answer = await self._register(td)
        td = {**td, "id": answer["id"]}
        thing = self.things[td["id"]] = ExposedThing(self, td)
        for request in self._early.pop(td["id"], []):
            self._spawn(self._serve(request))
        return thing

    async def emit(self, kind: str, thing_id: str, name: str, value: Any) -> None:
        if self.connected and not self.outbox:
            try:
                await self._report(kind, thing_id, name, value)
                return
            except (Disconnected, ConnectionError, HubError) as exc:
                log.info("%s %s of %s kept for later: %s", kind, name, thing_id, exc)
        if kind == "property":
            self.outbox.add_value(thing_id, name, value)
        else:
            self.outbox.add_event(thing_id, name, value)
        if self.connected:  # what waited goes first
            await self.flush()

    async def flush(self) -> None:
        """Send what the outbox holds (after a reconnect); what fails goes back in."""
        async with self._flushing:
            waiting = self.outbox.take()
            for index, (kind, thing_id, name, value) in enumerate(waiting):
                try:
                    await self._report(kind, thing_id, name, value)
                except ClientError as exc:
                    log.info("the outbox waits again: %s", exc)
                    for kind, thing_id, name, value in waiting[index:]:
                        if kind == "property":
                            self.outbox.add_value(thing_id, name, value)
                        else:
                            self.outbox.add_event(thing_id, name, value)
                    return

    def _reconnected(self) -> None:
        self._spawn(self.flush())

    def _request(self, request: dict[str, Any]) -> None:
        """A request from the hub: to its Thing's handler, in a task of its own."""
        if request.get("operation") not in ("invokeaction", "writeproperty"):
            return  # a cancelaction: the handler runs to its end; its answer is refused
        thing_id = request.get("thingID") or ""
        if thing_id not in self.things:
            self._early.setdefault(thing_id, []).append(request)
            return
        self._spawn(self._serve(request))

    async def _serve(self, request: dict[str, Any]) -> None:
        output, error = await self.things[request["thingID"]]._handle(request)
        try:
            await self._answer(request, output, error)
        except ClientError as exc:  # the hub sends it again after the reconnect
            log.info("answering %s failed: %s", request.get("actionID"), exc)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class WsAgentLink(AgentLink):
    """The hub's WebSocket connection serves as the agent's too."""

    def __init__(self, client: WsClient) -> None:
        super().__init__()
        self.client = client

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def open(self) -> None:
        self.client.on_connect = lambda _client: self._reconnected()
        self._spawn(self._take_requests())

    async def _take_requests(self) -> None:
        async for request in self.client.requests():  # those queued on connect first
            self._request(request)

    async def _register(self, td: dict[str, Any]) -> dict[str, Any]:
        return await self.client.update_thing(td)

    async def _report(self, kind: str, thing_id: str, name: str, value: Any) -> None:
        if kind == "property":
            await self.client.report_property(thing_id, name, value)
        else:
            await self.client.report_event(thing_id, name, ABSENT if value is None else value)

    async def _answer(self, request: dict[str, Any], output: Any, error: Any) -> None:
        if error is not None:
            await self.client.answer(request, status="failed", error=error)
        else:
            await self.client.answer(request, output=ABSENT if output is None else output)


class HttpsAgentLink(WsAgentLink):
    """HTTP carries no requests to agents: a device of a client connected over HTTPS is
    served by the hub's WebSocket, a second connection with the client's one session,
    at the address the WebSocket forms of the hub's own TD give (else ``/ws`` of the same
    server, where the hub serves it)."""

    def __init__(self, transport: HttpTransport, credentials: Credentials) -> None:
        self._https, self._credentials = transport, credentials
        self._ws: WsTransport | None = None
        super().__init__(None)  # type: ignore[arg-type]  # the client comes with open()

    async def open(self) -> None:
        https = self._https
        url = hub_urls(await https.read_thing(AUTHN_THING)).get("websocket")
        if url is None:
            url = https.client.base_url.replace("http", "ws", 1) + "/ws"  # https -> wss
        self._ws = WsTransport(url, self._credentials, https.client.timeout)
        self.client = self._ws.client
        await self._ws.open()
        await super().open()

    async def close(self) -> None:
        await super().close()
        if self._ws is not None:
            await self._ws.close()


class MqttAgentLink(AgentLink):
    """A second MQTT session of the client (``{id}/agent``), as an agent: a persistent
    session, subscribed to its requests, saying hello on every (re)connect."""

    def __init__(self, transport: MqttTransport, credentials: Credentials) -> None:
        super().__init__()
        consumer = transport.client
        self.client = MqttClient(
            transport.url,
            credentials.client_id,
            ca_pem=credentials.ca_pem(),
            timeout=consumer.timeout,
            session_suffix="agent",
            agent=True,
            session=credentials.session,
        )

    @property
    def connected(self) -> bool:
        return self.client.connected

    async def open(self) -> None:
        self.client.on_reconnect = self._reconnected
        await self.client.connect()
        self._spawn(self._take_requests())

    async def _take_requests(self) -> None:
        async for request in self.client.requests():
            self._request(request)

    async def close(self) -> None:
        await super().close()
        await self.client.close()

    async def _register(self, td: dict[str, Any]) -> dict[str, Any]:
        return await self.client.update_thing(td)

    async def _report(self, kind: str, thing_id: str, name: str, value: Any) -> None:
        if not self.client.connected:
            raise Disconnected("not connected")
        if kind == "property":
            self.client.report_property(thing_id, name, value)
        else:
            self.client.report_event(thing_id, name, value)

    async def _answer(self, request: dict[str, Any], output: Any, error: Any) -> None:
        if error is not None:
            self.client.answer(request, status="failed", error=error)
        else:
            self.client.answer(request, output=output)


class NatsAgentLink(AgentLink):
    """A ``NatsAgent`` connection of the client."""

    def __init__(self, transport: NatsTransport, credentials: Credentials) -> None:
        super().__init__()
        self.url, self.credentials, self.timeout = transport.url, credentials, transport.timeout
        self.client: NatsAgent | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.nc.is_connected

    async def open(self) -> None:
        async def reconnected() -> None:
            self._reconnected()

        credentials = self.credentials
        self.client = await NatsAgent.connect(
            self.url,
            credentials.client_id,
            certificate=credentials.client_cert,
            ca_pem=credentials.ca_pem(),
            connect_timeout=self.timeout,
            reconnected_cb=reconnected,
            session=credentials.session,
        )
        self._spawn(self._take_requests(self.client))

    async def _take_requests(self, client: NatsAgent) -> None:
        while True:
            self._request(await client.requests.get())

    async def close(self) -> None:
        await super().close()
        if self.client is not None:
            await self.client.close()

    def _agent(self) -> NatsAgent:
        if self.client is None:
            raise Disconnected("not connected")
        return self.client

    async def _register(self, td: dict[str, Any]) -> dict[str, Any]:
        return await self._agent().update_thing(td, timeout=self.timeout)

    async def _report(self, kind: str, thing_id: str, name: str, value: Any) -> None:
        if not self.connected:
            raise Disconnected("not connected")
        if kind == "property":
            await self._agent().report_property(thing_id, name, value)
        else:
            await self._agent().report_event(thing_id, name, value)

    async def _answer(self, request: dict[str, Any], output: Any, error: Any) -> None:
        if error is not None:
            await self._agent().answer(request, status="failed", error=error)
        else:
            await self._agent().answer(request, output=output)


def agent_link(transport: Transport, credentials: Credentials) -> AgentLink:
    """The agent connection for the binding of ``transport``."""
    if isinstance(transport, WsTransport):
        return WsAgentLink(transport.client)
    if isinstance(transport, MqttTransport):
        return MqttAgentLink(transport, credentials)
    if isinstance(transport, NatsTransport):
        return NatsAgentLink(transport, credentials)
    if isinstance(transport, HttpTransport):
        return HttpsAgentLink(transport, credentials)
    raise NotSupported(f"no agent connection for {type(transport).__name__}")


__all__ = ["MAX_EVENTS", "AgentLink", "ExposedThing", "Outbox", "agent_link"]
