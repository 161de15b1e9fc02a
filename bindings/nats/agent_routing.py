"""Which node handles an agent's messages, in a cluster (docs/cluster.md).

nats-server gives a queue group's message to a member on any server of the cluster, not
to one on the server where it was published (measured with three routed servers: 30
messages published at the first went 8, 6 and 16 to the members at the three). An
agent's messages must all reach one node, in order: that node writes its Things and
holds its presence. So in a cluster each server's agents have one node that handles
them (``handler``), and that node subscribes to an agent's subjects (no queue group)
while the agent's newest connection is at one of its servers, and only then:
nats-server routes the agent's messages to that node alone. The subscription is made
before the agent's login is answered (the node whose auth callout lets it in asks the
handler of the server it connects at, ``FOLLOW``), so its first message already has a
subscriber. For a moment, when an agent moves, two nodes are subscribed; each handles
only the messages of an agent whose newest connection is at a server it handles.

The handler of a server: of the hubs connected to that server, the first by name; when
none is, the first by name of all hubs alive. A managed node's server is its own, so
there it is that node. On a NATS cluster that someone else runs (docs/cluster.md, "On a
NATS cluster you run"), a server may have no hub, or lose its hub (the server and its
agents' connections stay), or have several. Every hub knows the others alive and their
servers from their leases (``set_hubs``), so they agree on each server's handler once
they agree on the leases.

Where each connection is comes from nats-server's connect and disconnect events, which
every node receives (with the server's name). Whose connection it is comes from the
event when the event says it (an MQTT client id, a password login's user name), and
otherwise from the node whose auth callout let it in, which tells the others
(``LOGINS``). A message from a client whose connection is not known yet waits for it,
``HOLD`` seconds at most. A managed node that dies takes its server and its connections
with it, without a goodbye: ``server_gone`` forgets them when its lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from vocabulary.channels import MQTT as topics

log = logging.getLogger("wothub.nats")

# Only the hub's own NATS users may use them: no client's permissions name them.
LOGINS = "wothub.node.login"
FOLLOW = "wothub.node.follow"  # .<node>: subscribe to an agent that logs in at its server
EXPECT = 5.0  # seconds a node keeps the subscription of an agent whose login it made ready
HOLD = 1.0  # seconds a message of an unknown connection waits for it
_HIDDEN_USERS = ("", "[REDACTED]")  # a certificate or token login: not its client id

Key = tuple[str, int]  # (server id, connection id)


class AgentRouting:
    def __init__(self, node: str, server_name: str) -> None:
        self.node = node  # this hub
        self.server_name = server_name  # the nats-server it is connected to
        self._hubs: dict[str, str] = {node: server_name}  # the hubs alive -> their server
        self._handlers: dict[str, str] = {}  # server -> the hub that handles its agents
        self._connections: dict[Key, tuple[str, str, bool]] = {}  # (server, start, mqtt)
        self._clients: dict[Key, str] = {}  # -> client id
        self._of_client: dict[str, set[Key]] = {}
        self._held: dict[str, list[tuple[float, Callable[[], Any]]]] = {}

    # -- what the events and the logins say --------------------------------------------

    def connected(self, key: Key, server_name: str, info: dict[str, Any]) -> None:
        mqtt = info.get("client_type") == "mqtt"
        self._connections[key] = (server_name, str(info.get("start", "")), mqtt)
        client_id = _client_of(info)
        if client_id is not None:
            self.logged_in(key, client_id)
        else:
            self._release(self._clients.get(key))

    def logged_in(self, key: Key, client_id: str) -> None:
        """Whose connection ``key`` is (this node's callout, or another node's note)."""
        self._clients[key] = client_id
        self._of_client.setdefault(client_id, set()).add(key)
        self._release(client_id)

    def disconnected(self, key: Key) -> str | None:
        """Forget a connection; its client id, if known."""
        self._connections.pop(key, None)
        client_id = self._clients.pop(key, None)
        if client_id is not None:
            keys = self._of_client.get(client_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._of_client[client_id]
        return client_id

    def server_gone(self, server_name: str) -> list[str]:
        """A node died: forget its connections; the clients they were of."""
        gone = [key for key, (name, *_) in self._connections.items() if name == server_name]
        return [c for c in (self.disconnected(key) for key in gone) if c is not None]

    def client_of(self, key: Key) -> str | None:
        return self._clients.get(key)

    def server_ids(self, server_name: str) -> set[str]:
        """The ids (new at each start of a server) of that server's connections."""
        return {key[0] for key, (name, *_) in self._connections.items() if name == server_name}

    def clients_at(self, server_name: str) -> dict[str, bool]:
        """The known clients of the connections at that server: whether it is MQTT."""
        return {
            self._clients[key]: mqtt
            for key, (name, _, mqtt) in self._connections.items()
            if name == server_name and key in self._clients
        }

    # -- which hub handles the agents at a server --------------------------------------

    def handler(self, server_name: str) -> str:
        """The hub that handles the agents connected at ``server_name``."""
        chosen = self._handlers.get(server_name)
        if chosen is None:
            at_server = [hub for hub, server in self._hubs.items() if server == server_name]
            chosen = self._handlers[server_name] = min(at_server or self._hubs)
        return chosen

    def set_hubs(self, hubs: dict[str, str]) -> set[str]:
        """The hubs alive now, each with its server (this one is added). Returns the
        servers whose agents this hub handles now and did not before, or the reverse."""
        servers = {name for name, *_ in self._connections.values()}
        servers |= {*self._hubs.values(), *hubs.values()}
        before = {server for server in servers if self.handler(server) == self.node}
        self._hubs = {**hubs, self.node: self.server_name}
        self._handlers.clear()
        return before ^ {server for server in servers if self.handler(server) == self.node}

    # -- a message from a client -------------------------------------------------------

    def here(self, client_id: str) -> bool | None:
        """Whether this node handles the client's messages: this node handles the server
        of its newest connection. None while no connection of it is known."""
        newest = None
        for key in self._of_client.get(client_id, ()):
            where = self._connections.get(key)
            if where is not None and (newest is None or where[1] > newest[1]):
                newest = where
        if newest is None:
            return None
        return self.handler(newest[0]) == self.node

    def hold(self, client_id: str, handle: Callable[[], Any]) -> None:
        """Keep ``handle`` (the message's handling) until the client's connection is
        known, at most ``HOLD`` seconds."""
        loop = asyncio.get_running_loop()
        held = self._held.setdefault(client_id, [])
        held.append((loop.time() + HOLD, handle))
        if len(held) == 1:
            loop.call_later(HOLD, self._expire, client_id)

    def _release(self, client_id: str | None) -> None:
        if client_id is None or client_id not in self._held or self.here(client_id) is None:
            return
        held = self._held.pop(client_id)
        if self.here(client_id):
            for _, handle in held:
                handle()

    def _expire(self, client_id: str) -> None:
        held = self._held.get(client_id)
        if not held:
            return
        now = asyncio.get_running_loop().time()
        kept = [(deadline, handle) for deadline, handle in held if deadline > now]
        if len(kept) < len(held):
            log.debug(
                "dropped %d message(s) of %s: no connection of it known",
                len(held) - len(kept),
                client_id,
            )
        if kept:
            self._held[client_id] = kept
            asyncio.get_running_loop().call_later(kept[0][0] - now, self._expire, client_id)
        else:
            del self._held[client_id]


def _client_of(info: dict[str, Any]) -> str | None:
    """The client id an event names, when it names it: an MQTT connection's client id
    (``<id>`` or ``<id>/<suffix>``, percent-encoded), a password login's user name."""
    mqtt_id = info.get("client_id")
    if info.get("client_type") == "mqtt" and isinstance(mqtt_id, str) and mqtt_id:
        try:
            return topics.decode(mqtt_id.split("/", 1)[0])
        except (UnicodeDecodeError, ValueError):
            return None
    user = info.get("user")
    if isinstance(user, str) and user not in _HIDDEN_USERS:
        return user
    return None
