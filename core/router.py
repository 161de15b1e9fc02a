"""The router: every message from every binding passes through here.

authenticate (the binding) -> authorize -> dispatch (the DigiTwin core) -> deliver (to
agents) and fan out (to subscribers).

Bindings open a ``Connection`` per client connection with ``connect``, hand every parsed
message to ``handle`` (which returns the response, if any), and write out what the
connection's outbox yields. The router also delivers queued requests when an agent
connects, tells invokers how their requests end, and expires requests and TDs on time.

This class is the facade bindings and hub/ use; the work is done by one module per flow:
connections (who is connected, per-client limits), dispatch (one message, routed),
delivery (actions and writes to agents and back), fanout (notifications to
subscribers), queries (reads from the twin), things (TD changes) and timers (expiry and
write-behind). The bindings' view of it is ``core.contract.Core``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bucketstore import BucketStore
from digitwin.core import DigiTwin, TwinConfig
from digitwin.groups import Groups
from digitwin.notifications import NotificationLog
from digitwin.selection import Selection
from vocabulary import operations as ops
from vocabulary.envelope import Message

from .access import Access
from .authz import Authorizer, Client
from .connection import Connection
from .connections import Connections
from .delivery import Delivery
from .dispatch import Dispatch
from .fanout import SUBSCRIPTION_OPS, FanOut
from .groups import GroupOps
from .limits import Limits
from .queries import Queries
from .services import ServiceThing
from .stats import CoreStats, Counters, snapshot
from .subscriptions import Subscriptions
from .things import Things, td_size_check
from .timers import Timers


class Router:
    def __init__(
        self,
        store: BucketStore,
        authorizer: Authorizer,
        *,
        twin_config: TwinConfig | None = None,
        flush_interval: float = 1.0,
        housekeeping_interval: float = 30.0,
        log_size: int = 10_000,
        max_notifications: int = 1000,
        limits: Limits | None = None,
    ) -> None:
        """The router and the twin core it routes to, on ``store``."""
        self.limits = limits or Limits()
        self.authorizer = authorizer
        self.counters = Counters()
        self.log = NotificationLog(log_size)
        self._notifications_ready: Callable[[], Awaitable[None]] | None = None
        self.subscriptions = Subscriptions()
        # The twin announces its changes to the fan-out, built below (it needs the twin).
        self.twin = DigiTwin(
            store,
            twin_config,
            notify=lambda message: self._fanout.publish(message),
            check_td_size=td_size_check(self.limits),
        )
        twin, counters = self.twin, self.counters
        access = Access(twin, authorizer)
        self._connections = Connections(
            twin, self.subscriptions, self.limits, counters, max_notifications=max_notifications
        )
        admit = self._connections.admit
        self._timers = Timers(
            twin,
            counters,
            flush_interval=flush_interval,
            housekeeping_interval=housekeeping_interval,
        )
        self._queries = Queries(twin, access, admit)
        self._delivery = Delivery(
            twin,
            access,
            self._connections,
            self._queries,
            self.limits,
            counters,
            new_deadline=self._timers.wake,
        )
        self._fanout = FanOut(
            twin,
            access,
            self.subscriptions,
            self.log,
            counters,
            request_changed=self._delivery.changed,
            group_members=lambda group_id: self._groups.members_of_thing(group_id),
        )
        # Groups of Things and the operations on them (core/groups.py, docs/groups.md).
        self._groups = GroupOps(Groups(store.bucket("groups")), twin, access, self._delivery, admit)
        self._groups.changed = self._fanout.groups_changed
        things = Things(twin, access, self.limits, admit, new_deadline=self._timers.wake)
        self._things = things
        queries, delivery = self._queries, self._delivery
        self._dispatch = Dispatch(
            twin,
            access,
            self._connections,
            self.limits,
            counters,
            requests={
                ops.READ_PROPERTY: queries.read_property,
                ops.READ_ALL_PROPERTIES: queries.read_properties,
                ops.READ_MULTIPLE_PROPERTIES: queries.read_properties,
                ops.WRITE_PROPERTY: delivery.queue,
                ops.INVOKE_ACTION: delivery.queue,
                ops.QUERY_ACTION: queries.query_action,
                ops.QUERY_ALL_ACTIONS: queries.query_all_actions,
                ops.CANCEL_ACTION: delivery.cancel,
                ops.READ_THING: queries.read_thing,
                ops.QUERY_HISTORY: queries.query_history,
                ops.READ_STATE: queries.read_state,
                ops.UPDATE_THING: things.update_thing,
                ops.DELETE_THING: things.delete_thing,
                **{op: self._fanout.subscription for op in SUBSCRIPTION_OPS},
            },
            answer=delivery.answer,
        )

    @property
    def groups(self) -> GroupOps:
        """Groups of Things: define, read, write and invoke on every member (each
        member operation authorized on that member: core/groups.py)."""
        return self._groups

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        await self._timers.start()

    async def stop(self) -> None:
        await self._timers.stop()
        self._connections.close_all("hub stopping")
        self.twin.flush()

    def follow_other_nodes(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cluster mode: requests that other nodes sharing the store queue for agents
        connected here are delivered from here (once: claimed in the store), and this
        node's askers and waiters hear how their requests go at other nodes. The work
        is done on ``loop``. Nothing is ever reported on LevelDB. (The twin follows
        the other nodes through ``DigiTwin.follow_other_nodes``.) A group another node
        defines or removes changes the members of the groups observed here."""
        self._delivery.follow_other_nodes(loop)
        self._groups.follow_other_nodes(loop)

    def add_service(self, service: ServiceThing) -> None:
        """Register one of the hub's own Things (its TD is replaced on every start)."""
        self._delivery.add_service(service)

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
        connection = self._connections.connect(
            client, binding, receives_requests=receives_requests, counted=counted
        )
        if receives_requests and client.is_agent:
            if len(self._connections.of_client(client.id)) == 1:  # it just came online
                self._delivery.restore_configuration(client.id)
            self._delivery.deliver_queued(connection)
        return connection

    def connect_relay(self, binding: str, *, max_notifications: int = 100_000) -> Connection:
        """A connection for a binding's own use that may subscribe to every notification
        without authorization: a bus binding relays them to topics whose permissions the
        bus enforces. It receives no requests and counts as no client."""
        return self._connections.connect_relay(binding, max_notifications)

    def disconnect(self, connection: Connection) -> None:
        self._connections.disconnect(connection)

    def end_client(self, client_id: str, reason: str) -> int:
        """Close every connection of a client: those that receive requests and every
        subscribed one (SSE streams, WebSocket, bus links). For a client removed or
        disabled, or whose role or password changed: what it subscribed to was allowed
        for who it was; it reconnects, and is checked, as who it is now."""
        return self._connections.end_client(client_id, reason)

    def admit(self, client: Client) -> None:
        """Take one request from the client's rate (max_requests_per_second); over it,
        LimitExceeded with the seconds to wait. The router calls this for every message
        it handles; bindings call it for what they serve without a message."""
        self._connections.admit(client)

    def connections(self) -> int:
        """Open connections that receive requests."""
        return self._connections.count()

    def connections_of(self, client_id: str) -> list[Connection]:
        """The client's connections that receive requests, oldest first."""
        return self._connections.of_client(client_id)

    @property
    def max_notifications(self) -> int:
        """How many notifications a new connection may have queued before it overflows."""
        return self._connections.max_notifications

    @max_notifications.setter
    def max_notifications(self, value: int) -> None:
        self._connections.max_notifications = value

    def open_connections(self) -> dict[str, int]:
        """Open client connections per binding (HTTP exchanges excluded)."""
        return self._connections.open_by_binding()

    def subscribers(self) -> dict[str, int]:
        """Connections with at least one subscription, per binding."""
        return self._fanout.subscribers()

    # -- messages --------------------------------------------------------------------------

    def handle(self, connection: Connection, message: Message) -> Message | None:
        """Authorize and carry out one message; returns the response to send back, if any
        (an error response when refused: nothing escapes as an exception)."""
        return self._dispatch.handle(connection, message)

    # -- subscriptions and notifications ---------------------------------------------------

    def subscribe(
        self,
        connection: Connection,
        kind: str,
        thing_id: str | None = None,
        name: str | None = None,
    ) -> None:
        """Subscribe a connection (authorized first); bindings use this directly for the
        kinds that have no WoT operation (presence, directory, action status)."""
        self._fanout.subscribe(connection, kind, thing_id, name)

    def replace_subscriptions(
        self, connection: Connection, wanted: Iterable[tuple[str, str | None, str | None]]
    ) -> None:
        """Make (kind, thing id or None, name or None) each the connection's only
        subscriptions, without checks: for a binding that authorized each one itself with
        ``authorize`` (MQTT, when it plans a topic filter)."""
        self._fanout.replace(connection, wanted)

    def publish_from_other_node(self, message: Message) -> None:
        """A twin notification of another node (cluster mode, docs/cluster.md) to this
        node's subscribers, as this node's own go: authorized per subscriber, in the
        notification log, an action status to its waiters here. Not to the bus relays
        (the bus had it from that node) and not into the twin (that node wrote it)."""
        self._fanout.publish(message, to_relays=False)

    def watched(self) -> bool:
        """Whether any client's connection here subscribes to notifications (SSE,
        WebSocket): a cluster node follows the other nodes' notifications only then."""
        return self._fanout.subscriptions.watched()

    def on_watch(self, callback: Callable[[], None]) -> None:
        """Have ``callback()`` called whenever a client's connection subscribes."""
        self._fanout.on_watch = callback

    def on_notifications_ready(self, ready: Callable[[], Awaitable[None]]) -> None:
        """What ``notifications_ready`` awaits (a cluster node's relay of the others)."""
        self._notifications_ready = ready

    async def notifications_ready(self) -> None:
        """Returns once every notification a new subscription wants reaches this node:
        at once, except on a cluster node that just started following the others."""
        if self._notifications_ready is not None:
            await self._notifications_ready()

    def notification_gap(self) -> None:
        """Some notifications never reached this node's log (it did not follow the
        other nodes for a while): a resume from before now gets a resync."""
        self.log.gap()

    def replay(self, connection: Connection, after: int) -> bool:
        """Queue the notifications after sequence number ``after`` that the connection's
        subscriptions want; False when the log no longer has them all."""
        return self._fanout.replay(connection, after)

    @property
    def epoch(self) -> str:
        """Changes at every start: sequence numbers of another epoch are not this log's."""
        return self.log.epoch

    # -- actions and writes ----------------------------------------------------------------

    def wait_for(self, record_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future of the request's final ActionStatus (for bindings that answer
        synchronously); already done when the request has ended."""
        return self._delivery.wait_for(record_id)

    def stop_waiting(self, record_id: str, future: asyncio.Future[dict[str, Any]]) -> None:
        """Forget a ``wait_for`` future the binding no longer waits on."""
        self._delivery.stop_waiting(record_id, future)

    def request_status(self, record_id: str) -> dict[str, Any]:
        """The ActionStatus of a request the caller was just answered about (by handle,
        which authorized it): what a binding reports after waiting."""
        return self._queries.request_status(record_id)

    def check_writes(self, client: Client, thing_id: str, values: dict[str, Any]) -> None:
        """Refuse a set of property writes unless every one would be accepted, so a
        writemultipleproperties is queued whole or not at all."""
        self._delivery.check_writes(client, thing_id, values)

    def requests_by_name(
        self, client: Client, thing_id: str, operation: str
    ) -> dict[str, list[dict[str, Any]]]:
        """The Thing's actions (``invokeaction``) or property writes (``writeproperty``)
        as ActionStatus, grouped by name, newest first: who may query the Thing's actions
        may list either (WoT has no operation for listing writes)."""
        return self._queries.requests_by_name(client, thing_id, operation)

    # -- the directory ---------------------------------------------------------------------

    def list_things(
        self,
        client: Client,
        offset: int = 0,
        limit: int | None = None,
        selection: Selection | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the enriched twin TDs the client may read, in id order, and how many
        there are in all; ``selection``: only those (by agent, @type). Agents see their
        own Things only."""
        return self._queries.list_things(client, offset, limit, selection)

    def search_things(
        self, client: Client, query: str, selection: Selection | None = None
    ) -> list[Any]:
        """RFC 9535 JSONPath over the enriched TDs the client may read (``selection``:
        over those only)."""
        return self._queries.search_things(client, query, selection)

    def thing_description(
        self, client: Client, thing_id: str, *, admit: bool = True
    ) -> dict[str, Any]:
        """The enriched twin TD (what a directory serves for one Thing). ``admit=False``
        when it is not the client's request (a notification rendered for its stream)."""
        return self._queries.thing_description(client, thing_id, admit=admit)

    def patch_thing(self, client: Client, thing_id: str, patch: Any) -> None:
        """Apply an RFC 7396 merge patch to a TD (WoT Discovery partial update)."""
        self._things.patch_thing(client, thing_id, patch)

    def property_state(self, client: Client, thing_id: str, name: str) -> dict[str, Any]:
        """{"value", "timestamp"} as reported, plus "desired" while a write waits."""
        return self._queries.property_state(client, thing_id, name)

    def thing_presence(self, client: Client, thing_id: str) -> dict[str, Any]:
        """{"owner", "online", "lastSeen"}: the Thing's agent and whether it is connected."""
        return self._queries.thing_presence(client, thing_id)

    # -- the twin as bindings may read it, unchecked (they check with authorize) -----------

    def twin_td(self, thing_id: str) -> dict[str, Any] | None:
        """The TD consumers see, with the hub's forms; None for an unknown Thing."""
        return self.twin.twin_td(thing_id)

    def owner_of(self, thing_id: str) -> str | None:
        return self.twin.owner_of(thing_id)

    def twins_after(
        self, after: str | None, limit: int
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """A page of (twin TD, {property: latest value}) in Thing id order after the id
        ``after`` (None: from the first): a binding's walk over every Thing, e.g. to
        publish them all again at start."""
        return self.twin.twins_after(after, limit)

    def read_all_properties(self, thing_id: str) -> dict[str, dict[str, Any]]:
        """Every readable property's {"value", "timestamp"} (NotFound: no such Thing)."""
        return self.twin.read_all_properties(thing_id)

    def authorize(
        self, client: Client, operation: str, thing_id: str | None, owner: str | None
    ) -> str | None:
        """None when the client may; otherwise why not (``Authorizer.authorize``)."""
        return self.authorizer.authorize(client, operation, thing_id, owner)

    # -- timers and figures ------------------------------------------------------------------

    def expire(self, now: float | None = None) -> None:
        """Expire the requests and TDs whose time has come (the deadline loop's round)."""
        self._timers.expire(now)

    def flush(self) -> int:
        """Write the changed twins' values (one batch); timed for the stats."""
        return self._timers.flush()

    def stats(self) -> CoreStats:
        """The counters since start and the state now (what /metrics shows)."""
        twins = self.twin.stats()
        return snapshot(
            self.counters,
            connections=self.open_connections(),
            subscribers=self.subscribers(),
            things=self.twin.count_things(),
            twins_active=twins.active,
            twins_dirty=twins.dirty,
            requests_open=self.twin.requests.open_by_status(),
        )
