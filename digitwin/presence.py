"""Agents' presence: online while connected to this node, or to another node of a cluster
that is alive; the last time each agent was seen, kept in the store.

Each agent has one record in the ``presence`` bucket: ``lastSeen`` (when it last came
or went) and ``nodes``, the cluster nodes it is connected to now. A node changes only
its own entry, by compare-and-set, so two nodes never lose each other's change. This
node trusts its own connections (``local``) over its entry in the record: a node that
died and restarted has no connection yet, whatever its old entry says. Another node's
entry counts while that node is alive (``node_alive``, from the nodes' leases; never on
one node). When a node dies, ``remove_node`` takes its entries out; a node counted gone
while it was alive puts its own back (``restore``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from bucketstore import Bucket
from vocabulary import clock

_ATTEMPTS = 20  # compare-and-set tries of one change


class Presence:
    def __init__(self, bucket: Bucket, node: str = "") -> None:
        self.bucket = bucket
        self.node = node  # this node's name in a cluster; "" on one node
        self.local: set[str] = set()  # agents connected to this node now
        # Whether another node is alive (hub/cluster_leases.py sets it in a cluster).
        self.node_alive: Callable[[str], bool] = lambda node: False

    def mark(self, agent_id: str, online: bool) -> bool:
        """This node's connection of the agent came or went; whether that changed it."""
        if online == (agent_id in self.local):
            return False
        if online:
            self.local.add(agent_id)
        else:
            self.local.discard(agent_id)
        mine = {self.node}
        self._change(agent_id, lambda nodes: nodes | mine if online else nodes - mine, clock.now())
        return True

    def remove_node(self, node: str, seen: float | None = None) -> list[str]:
        """Take a node that is gone out of every record (``seen``: when it was last
        alive, the agents' lastSeen); returns the agents whose record this call changed
        (another node may have done it first)."""
        changed = []
        for agent_id, raw in list(self.bucket.items()):
            if node not in _nodes(raw):
                continue
            gone = self._change(
                agent_id, lambda nodes: nodes - {node}, seen or clock.now(), always=False
            )
            if gone:
                changed.append(agent_id)
        return changed

    def restore(self, agent_id: str) -> bool:
        """Put this node back into the agent's record if the agent is connected here but
        another node took this node out (it counted this node gone while it stalled);
        whether that changed the record."""
        if agent_id not in self.local:
            return False
        mine = {self.node}  # a record that has it already is not written (always=False)
        return self._change(agent_id, lambda nodes: nodes | mine, clock.now(), always=False)

    def status(self, agent_id: str) -> dict[str, Any]:
        """{"online": bool, "lastSeen": RFC 3339 or absent}."""
        raw = self.bucket.get(agent_id)
        out: dict[str, Any] = {"online": self.online(agent_id, raw)}
        if raw:
            out["lastSeen"] = clock.rfc3339(orjson.loads(raw)["lastSeen"])
        return out

    def connected(self) -> dict[str, list[str]]:
        """Agent -> the nodes it is connected to, for each agent connected anywhere
        (this node's own connections as it knows them, the others' from the store)."""
        out = {}
        for agent_id, raw in self.bucket.items():
            nodes = {n for n in _nodes(raw) - {self.node} if self.node_alive(n)}
            if agent_id in self.local:
                nodes.add(self.node)
            if nodes:
                out[agent_id] = sorted(nodes)
        return out

    def online(self, agent_id: str, raw: bytes | None = None) -> bool:
        if agent_id in self.local:
            return True
        if raw is None:
            raw = self.bucket.get(agent_id)
        others = _nodes(raw) - {self.node}
        return any(self.node_alive(node) for node in others)

    def _change(
        self,
        agent_id: str,
        change: Callable[[set[str]], set[str]],
        now: float,
        *,
        always: bool = True,
    ) -> bool:
        """Write the record with ``change`` applied to its nodes, if it is still as
        read (read again otherwise); whether it wrote. Unless ``always``, a change that
        changes no node writes nothing (another node did it first)."""
        for _ in range(_ATTEMPTS):
            raw = self.bucket.get(agent_id)
            before = _nodes(raw)
            nodes = change(before)
            if nodes == before and not always:
                return False
            new = orjson.dumps({"lastSeen": now, "nodes": sorted(nodes)})
            if self.bucket.swap(agent_id, raw, new):
                return True
        return False


def _nodes(raw: bytes | None) -> set[str]:
    return set(orjson.loads(raw).get("nodes", ())) if raw else set()
