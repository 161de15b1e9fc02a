"""``GET /admin/cluster`` (administrators): the cluster as this node sees it, for
``wothub cluster status`` (docs/cluster.md, "Watching a cluster"): the nodes with their
leases (alive or not, where they serve, their agents), where each agent is connected,
and the store's health (each bucket's replicas and their state). On a single node the
same answer says there is no cluster."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bucketstore import BucketStore, BucketStoreError
from digitwin.presence import Presence
from vocabulary.identity import Client

from .config import Config
from .node_leases import NodeLeases

STATUS_PATH = "/admin/cluster"


class _Hub(Protocol):
    config: Config
    store: BucketStore
    leases: NodeLeases | None


class ClusterStatus:
    def __init__(
        self,
        hub: _Hub,
        presence: Presence,
        require_admin: Callable[[Request], Awaitable[Client]],
    ) -> None:
        self.hub = hub
        self.presence = presence
        self.require_admin = require_admin

    def routes(self) -> list[Route]:
        return [Route(STATUS_PATH, self.status, methods=["GET"])]

    async def status(self, request: Request) -> Response:
        await self.require_admin(request)
        return Response(orjson.dumps(await self.report()), media_type="application/json")

    async def report(self) -> dict[str, Any]:
        config, leases = self.hub.config, self.hub.leases
        try:  # a question to the servers: off the event loop
            store = await asyncio.to_thread(self.hub.store.health)
        except BucketStoreError as exc:
            store = {"backend": config.store_name, "error": str(exc)}
        return {
            "cluster": config.cluster_name if config.cluster_mode else None,
            "node": config.cluster_node,
            "nodes": leases.nodes() if leases is not None else [],
            "agents": self.presence.connected(),
            "store": store,
        }
