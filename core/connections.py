"""Who is connected: router connections per client, agents' presence, and the per-client
limits on connections and request rate.

A connection that receives requests (an agent's, or a consumer's for its responses) is
kept per client; an agent is online while it has one. Connections that cannot carry
requests (an SSE stream, one HTTP exchange) are not kept here; they may still subscribe.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from auth.accounts import HUB_ID
from digitwin.core import DigiTwin

from .authz import Client
from .connection import Connection
from .limits import LimitExceeded, Limits, RateLimiter
from .stats import Counters
from .subscriptions import Subscriptions

log = logging.getLogger("wothub.router")

# The client whose message the router is handling (Dispatch.handle sets it), its request
# taken from the rate: what the router calls for it inside (a hub Thing's group or query
# operations) takes none. One message, one request.
ADMITTED: ContextVar[str | None] = ContextVar("admitted", default=None)


class Connections:
    def __init__(
        self,
        twin: DigiTwin,
        subscriptions: Subscriptions,
        limits: Limits,
        counters: Counters,
        *,
        max_notifications: int,
    ) -> None:
        self.twin = twin
        self.subscriptions = subscriptions
        self.limits = limits
        self.counters = counters
        self.max_notifications = max_notifications
        self._of_client: dict[str, list[Connection]] = {}  # client id -> its connections
        rate = limits.max_requests_per_second
        self._rate = RateLimiter(rate, limits.request_burst) if rate else None
        self._open: dict[str, int] = {}  # client id -> connections counted against its limit
        self._open_by_binding: dict[str, int] = {}

    def connect(
        self, client: Client, binding: str, *, receives_requests: bool, counted: bool
    ) -> Connection:
        """Open a connection; an agent's first one that receives requests makes it online
        (the caller then delivers its queue)."""
        if counted:
            self._count(client, binding)
        connection = Connection(client, binding, max_notifications=self.max_notifications)
        connection.counted = counted
        if not receives_requests:
            return connection
        first = client.id not in self._of_client
        self._of_client.setdefault(client.id, []).append(connection)
        log.debug("connected %s on %s", client.id, binding)
        if client.is_agent and first:
            self.twin.set_presence(client.id, True)
        return connection

    def connect_relay(self, binding: str, max_notifications: int) -> Connection:
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
            self._uncount(connection.client.id, connection.binding)
        client = connection.client
        connections = self._of_client.get(client.id)
        if connections is None or connection not in connections:
            return  # a connection that never received requests
        connections.remove(connection)
        if not connections:
            self._of_client.pop(client.id, None)
            if client.is_agent:
                self.twin.set_presence(client.id, False)
        log.debug("disconnected %s from %s", client.id, connection.binding)

    def end_client(self, client_id: str, reason: str) -> int:
        ending = {
            *self._of_client.get(client_id, []),
            *(c for c in self.subscriptions.connections() if c.client.id == client_id),
        }
        for connection in ending:
            connection.close(reason)
            self.disconnect(connection)
        if ending:
            log.info("closed %d connection(s) of %s: %s", len(ending), client_id, reason)
        return len(ending)

    def close_all(self, reason: str) -> None:
        for connections in list(self._of_client.values()):
            for connection in list(connections):
                connection.close(reason)
                self.disconnect(connection)

    def of_client(self, client_id: str) -> list[Connection]:
        """The client's connections that receive requests, oldest first."""
        return list(self._of_client.get(client_id, []))

    def of_agent(self, thing_id: str) -> list[Connection]:
        """The open connections of the Thing's agent, oldest first."""
        owner = self.twin.owner_of(thing_id)
        return [c for c in self._of_client.get(owner or "", []) if not c.closed]

    def count(self) -> int:
        return sum(len(c) for c in self._of_client.values())

    def open_by_binding(self) -> dict[str, int]:
        return {binding: n for binding, n in self._open_by_binding.items() if n}

    # -- limits ----------------------------------------------------------------------------

    def admit(self, client: Client) -> None:
        if ADMITTED.get() == client.id:  # its message took the request already
            return
        try:
            self.take_rate(client)
        except LimitExceeded:
            self.counters.refuse(429, "max_requests_per_second")
            raise

    def take_rate(self, client: Client) -> None:
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

    def _count(self, client: Client, binding: str) -> None:
        open_now = self._open.get(client.id, 0)
        maximum = self.limits.max_connections_per_client
        if maximum is not None and open_now >= maximum:
            self.counters.refuse(429, "max_connections_per_client")
            raise LimitExceeded(
                "max_connections_per_client",
                f"{client.id} has {open_now} connections open, the most the hub allows "
                f"one client (max_connections_per_client); close one first",
                retry_after=5,
            )
        self._open[client.id] = open_now + 1
        self._open_by_binding[binding] = self._open_by_binding.get(binding, 0) + 1

    def _uncount(self, client_id: str, binding: str) -> None:
        left = self._open.get(client_id, 0) - 1
        if left > 0:
            self._open[client_id] = left
        else:
            self._open.pop(client_id, None)
        self._open_by_binding[binding] = max(0, self._open_by_binding.get(binding, 0) - 1)
