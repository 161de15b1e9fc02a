"""The router: every message from every binding passes through here.

authenticate (the binding) -> authorize (the Authorizer) -> dispatch (the DigiTwin core)
-> deliver (to agents) and fan out (to subscribers).

Bindings open a ``Connection`` per client connection with ``connect``, hand every parsed
message to ``handle`` (which returns the response, if any), and write out what the
connection's outbox yields. The router also delivers queued requests when an agent
connects, tells invokers how their requests end, and expires requests and TDs on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin
from digitwin.notifications import NotificationLog
from digitwin.requests import Record
from digitwin.search import search
from hub.logs import current as _log_context
from hub.metrics import HubMetrics
from vocabulary import clock
from vocabulary import operations as ops
from vocabulary.envelope import (
    ABSENT,
    COMPLETED,
    DELIVERED,
    FAILED,
    NOTIFICATION,
    PENDING,
    REQUEST,
    RESPONSE,
    RUNNING,
    TERMINAL,
    Message,
)
from vocabulary.problems import BadRequest, Conflict, Forbidden, NotFound, Problem
from vocabulary.things import DIRECTORY_THING

from .authz import Authorizer, Client
from .connection import Connection
from .limits import LimitExceeded, Limits, RateLimiter, check_size
from .services import ServiceThing
from .subscriptions import (
    ACTION,
    DIRECTORY,
    EVENT,
    KIND_OF_NOTIFICATION,
    PRESENCE,
    PROPERTY,
    Subscriptions,
)

log = logging.getLogger("wothub.router")

# A Thing owned by the hub (the directory itself), to ask whether a client may read
# Things it does not own.
_ANY_THING = DIRECTORY_THING

# The permission a subscription of each kind needs, per Thing.
_PERMISSION_OF_KIND = {
    PROPERTY: ops.OBSERVE_PROPERTY,
    EVENT: ops.SUBSCRIBE_EVENT,
    ACTION: ops.QUERY_ACTION,
    PRESENCE: ops.READ_THING,
    DIRECTORY: ops.READ_THING,
}
# Subscribe / unsubscribe requests: operation -> (kind, subscribe?, per affordance?)
_SUBSCRIPTION_OPS = {
    ops.OBSERVE_PROPERTY: (PROPERTY, True, True),
    ops.UNOBSERVE_PROPERTY: (PROPERTY, False, True),
    ops.OBSERVE_ALL_PROPERTIES: (PROPERTY, True, False),
    ops.UNOBSERVE_ALL_PROPERTIES: (PROPERTY, False, False),
    ops.SUBSCRIBE_EVENT: (EVENT, True, True),
    ops.UNSUBSCRIBE_EVENT: (EVENT, False, True),
    ops.SUBSCRIBE_ALL_EVENTS: (EVENT, True, False),
    ops.UNSUBSCRIBE_ALL_EVENTS: (EVENT, False, False),
}


class Router:
    def __init__(
        self,
        twin: DigiTwin,
        authorizer: Authorizer,
        *,
        flush_interval: float = 1.0,
        housekeeping_interval: float = 30.0,
        log_size: int = 10_000,
        max_notifications: int = 1000,
        limits: Limits | None = None,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.twin = twin
        self.authorizer = authorizer
        self.flush_interval = flush_interval
        self.housekeeping_interval = housekeeping_interval
        self.max_notifications = max_notifications
        self.log = NotificationLog(log_size)
        self.subscriptions = Subscriptions()
        self._connections: dict[str, list[Connection]] = {}  # client id -> its connections
        self._origin: dict[str, tuple[Connection, str | None]] = {}  # request id -> asker
        self._waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._services: dict[str, ServiceThing] = {}
        self.limits = limits or Limits()
        self.metrics = metrics or HubMetrics()
        self.metrics.watch(self)
        if self.limits.max_td_bytes is not None:  # whole TDs and merge-patch results
            twin.directory.check_size = self._check_td_size
        rate = self.limits.max_requests_per_second
        self._rate = RateLimiter(rate, self.limits.request_burst) if rate else None
        self._open: dict[str, int] = {}  # client id -> connections counted against its limit
        self._open_by_binding: dict[str, int] = {}
        twin.notify = self._publish
        self._requests: dict[str, Callable[[Connection, Message], Message]] = {
            ops.READ_PROPERTY: self._read_property,
            ops.READ_ALL_PROPERTIES: self._read_properties,
            ops.READ_MULTIPLE_PROPERTIES: self._read_properties,
            ops.WRITE_PROPERTY: self._queue_request,
            ops.INVOKE_ACTION: self._queue_request,
            ops.QUERY_ACTION: self._query_action,
            ops.QUERY_ALL_ACTIONS: self._query_all_actions,
            ops.CANCEL_ACTION: self._cancel_action,
            ops.READ_THING: self._read_thing,
            ops.UPDATE_THING: self._update_thing,
            ops.DELETE_THING: self._delete_thing,
            **{op: self._subscription for op in _SUBSCRIPTION_OPS},
        }
        self._reports: dict[str, Callable[[Connection, Message], None]] = {
            ops.OBSERVE_PROPERTY: self._report_property,
            ops.OBSERVE_ALL_PROPERTIES: self._report_properties,
            ops.SUBSCRIBE_EVENT: self._report_event,
        }

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._deadline_loop(), name="router-deadlines"),
            asyncio.create_task(self._flush_loop(), name="router-flush"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for connections in list(self._connections.values()):
            for connection in list(connections):
                connection.close("hub stopping")
                self.disconnect(connection)
        self.twin.flush()

    def add_service(self, service: ServiceThing) -> None:
        """Register one of the hub's own Things (its TD is replaced on every start)."""
        self.twin.update_thing(service.td, HUB_ID, keep_owner=True)
        self._services[service.thing_id] = service

    # -- connections -------------------------------------------------------------------

    def connect(
        self,
        client: Client,
        binding: str,
        *,
        receives_requests: bool = True,
        counted: bool = True,
    ) -> Connection:
        """Open a connection; an agent's first one makes it online and delivers its queue.
        A connection that cannot carry requests to an agent (an SSE stream, one HTTP
        exchange) says so, and then neither changes presence nor gets requests.

        A ``counted`` connection (every one but a single HTTP exchange, or a second
        router connection for the same network connection) counts against the client's
        ``max_connections_per_client``: over it, LimitExceeded; ``disconnect`` releases it."""
        if counted:
            self._count_connection(client, binding)
        connection = Connection(client, binding, max_notifications=self.max_notifications)
        connection.counted = counted
        if not receives_requests:
            return connection
        first = client.id not in self._connections
        self._connections.setdefault(client.id, []).append(connection)
        log.debug("connected %s on %s", client.id, binding)
        if client.is_agent:
            if first:
                self.twin.set_presence(client.id, True)
            for record in self.twin.open_requests_of_agent(client.id):
                self._deliver(record, connection)
        return connection

    def connect_relay(self, binding: str, *, max_notifications: int = 100_000) -> Connection:
        """A connection for a binding's own use that may subscribe to every notification
        without authorization: a bus binding relays them to topics whose permissions the
        bus enforces. It receives no requests and counts as no client."""
        connection = Connection(
            Client(HUB_ID, "admin"), binding, max_notifications=max_notifications
        )
        connection.trusted = True
        return connection

    def disconnect(self, connection: Connection) -> None:
        connection.close("disconnected")
        self.subscriptions.drop(connection)
        if connection.counted:
            connection.counted = False
            self._uncount_connection(connection.client.id, connection.binding)
        client = connection.client
        connections = self._connections.get(client.id)
        if connections is None or connection not in connections:
            return  # a connection that never received requests
        connections.remove(connection)
        if not connections:
            self._connections.pop(client.id, None)
            if client.is_agent:
                self.twin.set_presence(client.id, False)
        log.debug("disconnected %s from %s", client.id, connection.binding)

    def end_client(self, client_id: str, reason: str) -> int:
        """Close every connection of a client: those that receive requests and every
        subscribed one (SSE streams, WebSocket, bus links). For a client removed or
        disabled, or whose role or password changed: what it subscribed to was allowed
        for who it was; it reconnects, and is checked, as who it is now."""
        ending = {
            *self._connections.get(client_id, []),
            *(c for c in self.subscriptions.connections() if c.client.id == client_id),
        }
        for connection in ending:
            connection.close(reason)
            self.disconnect(connection)
        if ending:
            log.info("closed %d connection(s) of %s: %s", len(ending), client_id, reason)
        return len(ending)

    def connections(self) -> int:
        return sum(len(c) for c in self._connections.values())

    def open_connections(self) -> dict[str, int]:
        """Open client connections per binding (HTTP exchanges excluded)."""
        return {binding: n for binding, n in self._open_by_binding.items() if n}

    def subscribers(self) -> dict[str, int]:
        """Connections with at least one subscription, per binding."""
        counts: dict[str, int] = {}
        for connection in self.subscriptions.connections():
            counts[connection.binding] = counts.get(connection.binding, 0) + 1
        return counts

    def _count_connection(self, client: Client, binding: str) -> None:
        open_now = self._open.get(client.id, 0)
        maximum = self.limits.max_connections_per_client
        if maximum is not None and open_now >= maximum:
            self.metrics.refused(429, "max_connections_per_client")
            raise LimitExceeded(
                "max_connections_per_client",
                f"{client.id} has {open_now} connections open, the most the hub allows "
                f"one client (max_connections_per_client); close one first",
                retry_after=5,
            )
        self._open[client.id] = open_now + 1
        self._open_by_binding[binding] = self._open_by_binding.get(binding, 0) + 1

    def _uncount_connection(self, client_id: str, binding: str) -> None:
        left = self._open.get(client_id, 0) - 1
        if left > 0:
            self._open[client_id] = left
        else:
            self._open.pop(client_id, None)
        self._open_by_binding[binding] = max(0, self._open_by_binding.get(binding, 0) - 1)

    def admit(self, client: Client) -> None:
        """Take one request from the client's rate (max_requests_per_second); over it,
        LimitExceeded with the seconds to wait. The router calls this for every message
        it handles; bindings call it for what they serve without a message."""
        try:
            self._take_rate(client)
        except LimitExceeded:
            self.metrics.refused(429, "max_requests_per_second")
            raise

    def _take_rate(self, client: Client) -> None:
        """``admit`` without counting the refusal (handle counts its error responses)."""
        if self._rate is None:
            return
        wait = self._rate.take(client.id)
        if wait:
            raise LimitExceeded(
                "max_requests_per_second",
                f"{client.id} sent more than {self._rate.rate:g} requests a second "
                f"(max_requests_per_second, bursts of {self._rate.burst:g}); slow down",
                retry_after=wait,
            )

    def subscribe(
        self,
        connection: Connection,
        kind: str,
        thing_id: str | None = None,
        name: str | None = None,
    ) -> None:
        """Subscribe a connection (authorized first); bindings use this directly for the
        kinds that have no WoT operation (presence, directory, action status)."""
        if not connection.trusted:
            owner = self.twin.owner_of(thing_id) if thing_id else None
            self._authorize(connection.client, _PERMISSION_OF_KIND[kind], thing_id, owner)
        if thing_id is not None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        self.subscriptions.add(connection, kind, thing_id, name)

    def replay(self, connection: Connection, after: int) -> bool:
        """Queue the notifications after sequence number ``after`` that the connection's
        subscriptions want; False when the log no longer has them all."""
        missed = self.log.after(after)
        if missed is None:
            return False
        for notification in missed:
            message = notification.message
            kind = KIND_OF_NOTIFICATION[message.operation]
            wildcard = self.subscriptions.wants(connection, kind, message.thing_id, message.name)
            if wildcard is None or (wildcard and not self._may_see(connection, kind, message)):
                continue
            connection.notify(notification.seq, message)
        return True

    def wait_for(self, record_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future of the request's final ActionStatus (for bindings that answer
        synchronously); already done when the request has ended."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        record = self.twin.get_request(record_id)
        if record.final:
            future.set_result(record.to_status())
        else:
            self._waiters.setdefault(record_id, []).append(future)
        return future

    def stop_waiting(self, record_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        """Forget a ``wait_for`` future the binding no longer waits on."""
        waiters = self._waiters.get(record_id)
        if waiters is not None and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[record_id]
        future.cancel()

    def request_status(self, record_id: str) -> dict[str, Any]:
        """The ActionStatus of a request the caller was just answered about (by handle,
        which authorized it): what a binding reports after waiting."""
        return self.twin.get_request(record_id).to_status()

    # -- the directory ---------------------------------------------------------------------

    def list_things(
        self, client: Client, offset: int = 0, limit: int | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the enriched twin TDs the client may read, in id order, and how many
        there are in all. Agents see their own Things only."""
        self.admit(client)
        self._authorize(client, ops.READ_THING, None, None)
        if self._reads_every_thing(client):
            page = list(self.twin.list_things(offset, limit, enriched=True))
            return page, self.twin.count_things()
        own = sorted(self.twin.things_of(client.id))
        chosen = own[offset:] if limit is None else own[offset : offset + limit]
        return [td for i in chosen if (td := self.twin.enriched_td(i)) is not None], len(own)

    def search_things(self, client: Client, query: str) -> list[Any]:
        """RFC 9535 JSONPath over the enriched TDs the client may read."""
        self.admit(client)
        self._authorize(client, ops.READ_THING, None, None)
        if self._reads_every_thing(client):
            return self.twin.search_things(query)
        return search(
            query, (self.twin.enriched_td(i) for i in sorted(self.twin.things_of(client.id)))
        )

    def thing_description(
        self, client: Client, thing_id: str, *, admit: bool = True
    ) -> dict[str, Any]:
        """The enriched twin TD (what a directory serves for one Thing). ``admit=False``
        when it is not the client's request (a notification rendered for its stream)."""
        if admit:
            self.admit(client)
        self._authorize(client, ops.READ_THING, thing_id, self.twin.owner_of(thing_id))
        td = self.twin.enriched_td(thing_id)
        if td is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        return td

    def patch_thing(self, client: Client, thing_id: str, patch: Any) -> None:
        """Apply an RFC 7396 merge patch to a TD (WoT Discovery partial update)."""
        self.admit(client)
        owner = self.twin.owner_of(thing_id)
        if owner is None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        self._authorize(client, ops.UPDATE_THING, thing_id, owner)
        keep = self.authorizer.overrides_ownership(client)
        record = self.twin.patch_thing(thing_id, patch, client.id, keep_owner=keep)
        if self._wake is not None and record.expires is not None:
            self._wake.set()

    def property_state(self, client: Client, thing_id: str, name: str) -> dict[str, Any]:
        """{"value", "timestamp"} as reported, plus "desired" while a write waits."""
        self.admit(client)
        self._authorize(client, ops.READ_PROPERTY, thing_id, self.twin.owner_of(thing_id))
        return self.twin.read_property(thing_id, name)

    def thing_presence(self, client: Client, thing_id: str) -> dict[str, Any]:
        """{"owner", "online", "lastSeen"}: the Thing's agent and whether it is connected."""
        owner = self.twin.owner_of(thing_id)
        if owner is None and self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if owner != client.id:  # who may list a Thing may see its presence
            self._authorize(client, ops.READ_THING, None, None)
            if not self._reads_every_thing(client):
                raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        if owner == HUB_ID:  # the hub's own Things are there whenever the hub answers
            return {"owner": owner, "online": True}
        return {"owner": owner, **self.twin.presence(thing_id)}

    def check_writes(self, client: Client, thing_id: str, values: dict[str, Any]) -> None:
        """Refuse a set of property writes unless every one would be accepted, so a
        writemultipleproperties is queued whole or not at all."""
        self._authorize(client, ops.WRITE_PROPERTY, thing_id, self.twin.owner_of(thing_id))
        self._check_queueable(thing_id, [(f"the value of {n!r}", v) for n, v in values.items()])
        for name, value in values.items():
            self.twin.check_write(thing_id, name, value)

    def _check_queueable(self, thing_id: str, inputs: list[tuple[str, Any]]) -> None:
        """The limits on queued requests, for ``inputs`` ((what, data) each) about to be
        queued together: their sizes, and room for all of them in the Thing's queue."""
        limits = self.limits
        for what, data in inputs:
            check_size("max_value_bytes", limits.max_value_bytes, data, what)
        maximum = limits.max_queued_actions
        if maximum is not None:
            queued = self.twin.requests.count_open(thing_id, maximum)
            if queued + len(inputs) > maximum:
                raise LimitExceeded(
                    "max_queued_actions",
                    f"{thing_id} has {queued} actions and writes waiting for its agent; "
                    f"{len(inputs)} more would pass the most the hub queues for one Thing "
                    f"(max_queued_actions); try again when the agent has taken some",
                    retry_after=30,
                )

    def _check_td_size(self, td: dict[str, Any], owner: str | None) -> None:
        if owner != HUB_ID:  # the hub's own Things are not a client's TDs
            check_size("max_td_bytes", self.limits.max_td_bytes, td, "the TD")

    def _reads_every_thing(self, client: Client) -> bool:
        """May the client read a Thing it does not own? (Agents may not.)"""
        return self.authorizer.authorize(client, ops.READ_THING, _ANY_THING, HUB_ID) is None

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, connection: Connection, message: Message) -> Message | None:
        """Authorize and carry out one message; returns the response to send back, if any
        (an error response when refused: nothing escapes as an exception)."""
        started = time.perf_counter()
        message.sender_id = connection.client.id
        metrics = self.metrics
        metrics.messages_in(connection.binding, message.operation).inc()
        context = _log_context.set((connection, message))
        try:
            response = self._dispatch(connection, message)
            if response is not None:
                metrics.messages_out(connection.binding, message.operation).inc()
                if response.error is not None:
                    metrics.refused_problem(response.error)
            return response
        finally:
            _log_context.reset(context)
            metrics.router_seconds.observe(time.perf_counter() - started)

    def _dispatch(self, connection: Connection, message: Message) -> Message | None:
        try:
            if not connection.trusted and message.message_type != RESPONSE:
                self._take_rate(connection.client)
            if message.message_type == REQUEST:
                handler = self._requests.get(message.operation)
                if handler is None:
                    raise BadRequest(f"{message.operation} is not a request the hub takes")
                return handler(connection, message)
            if message.message_type == NOTIFICATION:
                report = self._reports.get(message.operation)
                if report is None:
                    raise BadRequest(
                        f"agents report with observeproperty, observeallproperties or "
                        f"subscribeevent notifications, not {message.operation}"
                    )
                report(connection, message)
                return None
            self._answer(connection, message)
            return None
        except Problem as problem:
            return _error_response(message, problem)

    def _authorize(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> None:
        reason = self.authorizer.authorize(client, operation, thing_id, owner)
        if reason is not None:
            log.warning(
                "refused %s (%s): %s on %s: %s", client.id, client.role, operation, thing_id, reason
            )
            raise Forbidden(reason, operation=operation)

    def _thing_access(self, connection: Connection, operation: str, thing_id: str) -> None:
        self._authorize(connection.client, operation, thing_id, self.twin.owner_of(thing_id))

    # -- consumer requests ---------------------------------------------------------------

    def _read_property(self, connection: Connection, message: Message) -> Message:
        self._thing_access(connection, ops.READ_PROPERTY, message.thing_id)
        entry = self.twin.read_property(message.thing_id, message.name)
        return _response(
            message,
            output=entry.get("value", ABSENT),
            timestamp=entry.get("timestamp", ""),
        )

    def _read_properties(self, connection: Connection, message: Message) -> Message:
        self._thing_access(connection, message.operation, message.thing_id)
        if message.operation == ops.READ_MULTIPLE_PROPERTIES:
            names = message.data
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise BadRequest("readmultipleproperties takes an array of property names")
            # Each one read: an unknown name is refused (404), a write-only one too (405).
            values = {name: self.twin.read_property(message.thing_id, name) for name in names}
        else:
            values = self.twin.read_all_properties(message.thing_id)
        output = {name: entry["value"] for name, entry in values.items() if "value" in entry}
        return _response(message, output=output)

    def _queue_request(self, connection: Connection, message: Message) -> Message:
        service = self._services.get(message.thing_id)
        if service is not None:
            return self._invoke_service(connection, message, service)
        self._thing_access(connection, message.operation, message.thing_id)
        what = "the action input" if message.operation == ops.INVOKE_ACTION else "the value"
        self._check_queueable(message.thing_id, [(what, message.data)])
        record = self.twin.request(
            message.operation,
            message.thing_id,
            message.name,
            message.data,
            connection.client.id,
            correlation_id=message.correlation_id,
            ttl=message.ttl,
        )
        record = self._deliver(record)
        self._origin[record.id] = (connection, message.correlation_id)
        if self._wake is not None:
            self._wake.set()  # the new expiry may be the next deadline
        return _response(message, status=record.status, action_id=record.id)

    def _invoke_service(
        self, connection: Connection, message: Message, service: ServiceThing
    ) -> Message:
        """The hub's own Things answer at once; nothing is queued."""
        if message.operation != ops.INVOKE_ACTION:
            raise BadRequest(f"{message.thing_id} has no writable properties")
        self._thing_access(connection, ops.INVOKE_ACTION, message.thing_id)
        self.twin.check_action_input(message.thing_id, message.name, message.data)
        output = service.invoke(connection.client, message.name, message.data)
        log.info("%s used %s %s", connection.client.id, message.thing_id, message.name)
        return _response(message, output=output, status=COMPLETED)

    def _find_request(self, connection: Connection, message: Message, permission: str) -> Record:
        record = self.twin.get_request(message.action_id)
        if (message.thing_id is not None and record.thing_id != message.thing_id) or (
            message.name is not None and record.name != message.name
        ):
            where = message.thing_id if message.name is None else f"{message.name!r}"
            raise NotFound(f"{where} has no request {message.action_id}")
        owner = record.sender_id if permission == ops.CANCEL_ACTION else None
        owner = owner or self.twin.owner_of(record.thing_id)
        self._authorize(connection.client, permission, record.thing_id, owner)
        return record

    def _query_action(self, connection: Connection, message: Message) -> Message:
        record = self._find_request(connection, message, ops.QUERY_ACTION)
        return _response(message, output=record.to_status(), status=record.status)

    def _query_all_actions(self, connection: Connection, message: Message) -> Message:
        grouped = self.requests_by_name(connection.client, message.thing_id, ops.INVOKE_ACTION)
        return _response(message, output=grouped)

    def requests_by_name(
        self, client: Client, thing_id: str, operation: str
    ) -> dict[str, list[dict[str, Any]]]:
        """The Thing's actions (``invokeaction``) or property writes (``writeproperty``)
        as ActionStatus, grouped by name, newest first: who may query the Thing's actions
        may list either (WoT has no operation for listing writes)."""
        self._authorize(client, ops.QUERY_ALL_ACTIONS, thing_id, self.twin.owner_of(thing_id))
        if self.twin.thing(thing_id) is None:
            raise NotFound(f"no Thing {thing_id}", thingID=thing_id)
        grouped: dict[str, list[dict[str, Any]]] = {}
        for record in self.twin.requests_of(thing_id):
            if record.operation == operation:
                grouped.setdefault(record.name, []).append(record.to_status())
        return grouped

    def _cancel_action(self, connection: Connection, message: Message) -> Message:
        record = self._find_request(connection, message, ops.CANCEL_ACTION)
        if record.final:
            raise Conflict(f"{record.operation} {record.id} has already ended ({record.status})")
        at_agent = record.status in (DELIVERED, RUNNING)
        record = self.twin.update_request(
            record,
            "cancelled",
            error={
                "type": "about:blank",
                "title": "Cancelled",
                "status": 410,
                "detail": f"cancelled by {connection.client.id}",
            },
        )
        if at_agent:
            for agent in self._agent_connections(record.thing_id)[-1:]:
                agent.send(
                    Message(
                        REQUEST,
                        ops.CANCEL_ACTION,
                        record.thing_id,
                        record.name,
                        action_id=record.id,
                        sender_id=connection.client.id,
                    )
                )
        return _response(message, output=record.to_status(), status=record.status)

    def _read_thing(self, connection: Connection, message: Message) -> Message:
        self._thing_access(connection, ops.READ_THING, message.thing_id)
        td = self.twin.twin_td(message.thing_id)
        if td is None:
            raise NotFound(f"no Thing {message.thing_id}", thingID=message.thing_id)
        return _response(message, output=td)

    def _update_thing(self, connection: Connection, message: Message) -> Message:
        td = message.data
        thing_id = td.get("id") if isinstance(td, dict) else None
        if thing_id is not None and not isinstance(thing_id, str):
            raise BadRequest("the TD's id must be a string")
        if message.thing_id is not None and thing_id is not None and message.thing_id != thing_id:
            raise BadRequest(f"thingID {message.thing_id} differs from the TD's id {thing_id}")
        owner = self.twin.owner_of(thing_id) if thing_id else None
        self._authorize(connection.client, ops.UPDATE_THING, thing_id, owner)
        maximum = self.limits.max_things_per_agent
        if owner is None and maximum is not None and connection.client.is_agent:
            owned = len(self.twin.things_of(connection.client.id))
            if owned >= maximum:
                raise LimitExceeded(
                    "max_things_per_agent",
                    f"{connection.client.id} has registered {owned} Things, the most the "
                    f"hub takes from one agent (max_things_per_agent); delete one first",
                    retry_after=60,
                )
        keep = self.authorizer.overrides_ownership(connection.client)
        record, created = self.twin.update_thing(td, connection.client.id, keep_owner=keep)
        if self._wake is not None and record.expires is not None:
            self._wake.set()
        return _response(
            message, thing_id=record.thing_id, output={"id": record.thing_id, "created": created}
        )

    def _delete_thing(self, connection: Connection, message: Message) -> Message:
        self._thing_access(connection, ops.DELETE_THING, message.thing_id)
        keep = self.authorizer.overrides_ownership(connection.client)
        self.twin.delete_thing(message.thing_id, connection.client.id, keep_owner=keep)
        return _response(message, status=COMPLETED)

    def _subscription(self, connection: Connection, message: Message) -> Message:
        kind, subscribe, named = _SUBSCRIPTION_OPS[message.operation]
        name = message.name if named else None
        if subscribe:
            self.subscribe(connection, kind, message.thing_id, name)
            if named:  # the affordance must exist and be readable (not write-only)
                read = self.twin.read_property if kind == PROPERTY else self.twin.read_event
                try:
                    read(message.thing_id, message.name)
                except Problem:
                    self.subscriptions.remove(connection, kind, message.thing_id, name)
                    raise
        else:
            self.subscriptions.remove(connection, kind, message.thing_id, name)
        return _response(message, status=COMPLETED)

    # -- what agents send ------------------------------------------------------------------

    def _report_property(self, connection: Connection, message: Message) -> None:
        self._thing_access(connection, ops.REPORT_PROPERTY, message.thing_id)
        if message.data is ABSENT:
            raise BadRequest("a property report needs a value")
        check_size("max_value_bytes", self.limits.max_value_bytes, message.data, "the value")
        self.twin.report_property(message.thing_id, message.name, message.data, message.timestamp)

    def _report_properties(self, connection: Connection, message: Message) -> None:
        self._thing_access(connection, ops.REPORT_PROPERTY, message.thing_id)
        values = message.data
        if not isinstance(values, dict) or not values:
            raise BadRequest("observeallproperties reports an object of property values")
        check_size("max_value_bytes", self.limits.max_value_bytes, values, "the values")
        for name, value in values.items():
            self.twin.report_property(message.thing_id, name, value, message.timestamp)

    def _report_event(self, connection: Connection, message: Message) -> None:
        self._thing_access(connection, ops.REPORT_EVENT, message.thing_id)
        check_size("max_value_bytes", self.limits.max_value_bytes, message.data, "the event")
        self.twin.report_event(message.thing_id, message.name, message.data, message.timestamp)

    def _answer(self, connection: Connection, message: Message) -> None:
        """An agent's response to a request it was given: progress or the result."""
        record_id = message.action_id or message.correlation_id
        record = self.twin.get_request(record_id)
        self._thing_access(connection, ops.ANSWER_REQUEST, record.thing_id)
        status = message.status or (FAILED if message.error else COMPLETED)
        if status not in (RUNNING, COMPLETED, FAILED):
            raise BadRequest(f"an agent answers with running, completed or failed, not {status}")
        error = message.error
        if status == FAILED and error is None:
            error = {"type": "about:blank", "title": "Failed", "status": 500, "detail": "failed"}
        self.twin.update_request(record, status, output=message.output, error=error)

    # -- delivery and fan-out --------------------------------------------------------------

    def _agent_connections(self, thing_id: str) -> list[Connection]:
        owner = self.twin.owner_of(thing_id)
        return [c for c in self._connections.get(owner or "", []) if not c.closed]

    def _deliver(self, record: Record, connection: Connection | None = None) -> Record:
        """Send a request to its agent now if it is connected (newest connection);
        returns the record as it is now."""
        if connection is None:
            connections = self._agent_connections(record.thing_id)
            if not connections:
                return record
            connection = connections[-1]
        self.metrics.messages_out(connection.binding, record.operation).inc()
        connection.send(
            Message(
                REQUEST,
                record.operation,
                record.thing_id,
                record.name,
                input=record.input,
                correlation_id=record.id,
                action_id=record.id,
                sender_id=record.sender_id,
                timestamp=clock.rfc3339(record.time_requested),
            )
        )
        if record.status in (PENDING, DELIVERED):
            return self.twin.update_request(record, DELIVERED)
        return record

    def _publish(self, message: Message) -> None:
        """The core's notifications: number them, log them, fan them out."""
        notification = self.log.append(message)
        if message.operation == ops.QUERY_ACTION:
            self._request_changed(message.value)
        kind = KIND_OF_NOTIFICATION[message.operation]
        for connection, wildcard in self.subscriptions.matching(
            kind, message.thing_id, message.name
        ):
            if wildcard and not self._may_see(connection, kind, message):
                continue
            if connection.notify(notification.seq, message):
                self.metrics.messages_out(connection.binding, message.operation).inc()
            else:
                log.warning("%s fell behind; disconnecting it", connection)
                self.subscriptions.drop(connection)

    def _may_see(self, connection: Connection, kind: str, message: Message) -> bool:
        if connection.trusted:
            return True
        if message.operation == ops.DELETE_THING and isinstance(message.value, dict):
            owner = message.value.get("owner")  # the TD, and its owner, are gone
        else:
            owner = self.twin.owner_of(message.thing_id)
        permission = _PERMISSION_OF_KIND[kind]
        try:
            reason = self.authorizer.authorize(
                connection.client, permission, message.thing_id, owner
            )
        except Problem:  # the client was removed or disabled meanwhile
            return False
        return reason is None

    def _request_changed(self, status: dict[str, Any]) -> None:
        """Tell whoever asked for a request how it is doing, and wake synchronous waiters."""
        record_id = status["id"]
        final = status["status"] in TERMINAL
        origin = self._origin.pop(record_id, None) if final else self._origin.get(record_id)
        if origin is not None:
            connection, correlation_id = origin
            if connection.closed:
                self._origin.pop(record_id, None)
            else:
                self.metrics.messages_out(connection.binding, status["operation"]).inc()
                connection.send(
                    Message(
                        RESPONSE,
                        status["operation"],
                        status["thingID"],
                        status["name"],
                        output=status.get("output", ABSENT),
                        error=status.get("error"),
                        status=status["status"],
                        correlation_id=correlation_id,
                        action_id=record_id,
                    )
                )
        if final:
            for future in self._waiters.pop(record_id, []):
                if not future.done():
                    future.set_result(status)

    # -- timers ------------------------------------------------------------------------------

    async def _deadline_loop(self) -> None:
        """Expire requests and TDs when their time comes, even if nothing else happens."""
        assert self._wake is not None
        while True:
            deadline = self.twin.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - clock.now()) + 0.002
            self._wake.clear()
            # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
            # that arrives as the wait completes, and then stop() would hang.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            try:
                self.expire()
            except Exception:  # keep the loop alive: the next round tries again
                log.exception("expiring requests and TDs failed")

    def expire(self, now: float | None = None) -> None:
        expired = self.twin.expire_requests(now)
        if expired:
            self.metrics.actions_expired.inc(len(expired))
        self.twin.purge_expired_things(now)

    def flush(self) -> int:
        """Write the changed twins' values (one batch); timed for the metrics."""
        started = time.perf_counter()
        written = self.twin.flush()
        if written:
            metrics = self.metrics
            metrics.store_batches.inc()
            metrics.store_batch_twins.inc(written)
            metrics.store_batch_seconds.observe(time.perf_counter() - started)
        return written

    async def _flush_loop(self) -> None:
        """Write changed twins behind, unload idle ones, prune old request records."""
        since_housekeeping = 0.0
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.flush()
                since_housekeeping += self.flush_interval
                if since_housekeeping >= self.housekeeping_interval:
                    since_housekeeping = 0.0
                    self.twin.unload_idle()
                    self.twin.requests.prune()
            except Exception:
                log.exception("writing twins failed; will retry")


def _response(
    request: Message,
    *,
    output: Any = ABSENT,
    status: str | None = None,
    action_id: str | None = None,
    thing_id: str | None = None,
    timestamp: str = "",
) -> Message:
    return Message(
        RESPONSE,
        request.operation,
        thing_id or request.thing_id,
        request.name,
        output=output,
        status=status,
        correlation_id=request.correlation_id,
        action_id=action_id,
        timestamp=timestamp,
    )


def _error_response(message: Message, problem: Problem) -> Message:
    return Message(
        RESPONSE,
        message.operation,
        message.thing_id,
        message.name,
        error=problem.to_dict(),
        status=FAILED,
        correlation_id=message.correlation_id or message.message_id,
        action_id=message.action_id,
    )
