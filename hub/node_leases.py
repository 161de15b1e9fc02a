"""Which nodes of a cluster are alive: each node renews its lease, its record in the
``nodes`` bucket, every ``RENEW`` seconds. Another node counts as alive while its
renewals keep coming, as this node's store reports them (``Bucket.on_change``), timed on
this node's own clock: no two machines' clocks are compared. It is gone ``TTL`` seconds
after its last renewal (killed, cut off) or at once when it removes its lease (stopped);
``on_gone`` is then told once, and its agents go offline (DigiTwin.node_gone).

The lease record also says where the node serves (``record()``), for
``wothub cluster status``, and which nats-server it is connected to (``server``):
``hubs()`` gives that of every node alive, from which every node works out which node
handles the agents at each server (bindings/nats/agent_routing.py); ``on_members`` is
told when a node comes, goes or changes its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson

from bucketstore import Bucket, BucketStoreError
from vocabulary import clock

log = logging.getLogger("wothub.cluster")

RENEW = 1.0  # seconds between two renewals of this node's lease
TTL = 5.0  # seconds without a renewal after which another node is gone


class NodeLeases:
    def __init__(
        self,
        bucket: Bucket,
        node: str,
        record: Callable[[], dict[str, Any]],
        on_gone: Callable[[str, float | None], object],
    ) -> None:
        self.bucket = bucket
        self.node = node
        self.record = record  # what this node's lease says besides its renewal time
        self.on_gone = on_gone  # (node, when it was last alive, wall clock)
        self.on_members: Callable[[], object] | None = None
        self._servers: dict[str, str | None] = {}  # each node's server, as its lease says
        self._seen: dict[str, float] = {}  # another node -> time.monotonic() of a renewal
        self._gone: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.bucket.on_change(self._changed, loop)
        now = time.monotonic()
        # The others are alive until shown otherwise, for one TTL.
        for node, raw in self.bucket.items():
            if node != self.node:
                self._seen[node] = now
                self._servers[node] = _server(raw)
        self._renew()
        self._task = loop.create_task(self._run(), name="node-lease")

    def alive(self, node: str) -> bool:
        if node == self.node:
            return True
        seen = self._seen.get(node)
        return seen is not None and time.monotonic() - seen < TTL

    def left_over(self) -> float | None:
        """When this node's previous run was last alive (wall clock) if it did not stop
        cleanly: its lease is still there (a clean stop removes it). Asked before
        ``start``, which renews it; None otherwise."""
        raw = self.bucket.get(self.node)
        return clock.parse_rfc3339(orjson.loads(raw)["renewed"]) if raw else None

    def first_alive(self) -> bool:
        """Whether this node has the first name of the nodes alive, as it knows them: the
        one that does a job for the others (a repair). Views differ for a moment when
        nodes come and go, so such a job must be safe to do twice."""
        return all(node > self.node for node in self._seen if self.alive(node))

    def hubs(self) -> dict[str, str]:
        """Each node alive whose lease names its nats-server (this one included, as its
        last renewal said), with that server."""
        return {
            node: server
            for node, server in self._servers.items()
            if server is not None and self.alive(node)
        }

    def renew(self) -> None:
        """Renew now (what the record says changed: the others learn it at once)."""
        self._renew()

    def nodes(self) -> list[dict[str, Any]]:
        """Every node with a lease: its record, ``alive``, and the seconds since this
        node last saw it renewed."""
        now = time.monotonic()
        out = []
        for node, raw in self.bucket.items():
            entry = orjson.loads(raw)
            entry["alive"] = self.alive(node)
            if node != self.node and self._seen.get(node, -TTL) >= 0:
                entry["seenAgo"] = round(now - self._seen[node], 1)
            out.append(entry)
        return out

    async def stop(self) -> None:
        """Stop renewing and remove the lease: the other nodes know at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(BucketStoreError):
            self.bucket.delete(self.node)

    # -- internals -------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RENEW)  # the renewal period, not a wait for anything
            try:
                self._renew()
                self._find_gone()
            except BucketStoreError as exc:  # no quorum now: leases stay as they are
                log.warning("node lease of %s not renewed: %s", self.node, exc)

    def _renew(self) -> None:
        lease = {**self.record(), "node": self.node, "renewed": clock.rfc3339(clock.now())}
        self.bucket.set(self.node, orjson.dumps(lease))
        self._servers[self.node] = lease.get("server")

    def _changed(self, node: str) -> None:
        if node == self.node:
            return
        raw = self.bucket.get(node)
        if raw is None:  # removed: that node stopped
            self._seen[node] = -TTL  # long ago: gone now
            self._went(node, None)
            return
        server = _server(raw)
        changed = not self.alive(node) or self._servers.get(node) != server
        self._seen[node] = time.monotonic()
        self._servers[node] = server
        if node in self._gone:
            self._gone.discard(node)
            log.info("node %s is back", node)
        if changed:
            self._members_changed()

    def _find_gone(self) -> None:
        now = time.monotonic()
        for node, seen in list(self._seen.items()):
            if now - seen >= TTL and node not in self._gone:
                raw = self.bucket.get(node)
                last = clock.parse_rfc3339(orjson.loads(raw)["renewed"]) if raw else None
                self._went(node, last)
                if raw is not None:  # no node renews it any more; unless it came back
                    self.bucket.swap(node, raw, None)

    def _went(self, node: str, last: float | None) -> None:
        if node in self._gone:
            return
        try:
            self.on_gone(node, last)
        except BucketStoreError as exc:  # tried again at the next check
            log.warning("node %s is gone; its agents not marked offline yet: %s", node, exc)
            return
        self._gone.add(node)
        log.warning("node %s is gone: its agents are offline", node)
        self._members_changed()

    def _members_changed(self) -> None:
        if self.on_members is not None:
            self.on_members()


def _server(raw: bytes) -> str | None:
    server = orjson.loads(raw).get("server")
    return server if isinstance(server, str) else None
