"""Operating endpoints on the HTTPS port: ``/metrics``, ``/health``, ``/ready`` and the
backup download (docs/operations.md).

- ``GET /health``: 200 while the process serves HTTP at all (liveness); no auth.
- ``GET /ready``: 200 when the store is open, every listener is up and the managed
  nats-server runs; else 503 with a problem listing what is not (``checks``); no auth.
- ``GET /metrics``: Prometheus text, for administrators; for anyone only with
  ``[metrics] public = true``. Loopback gets no exception: behind a reverse proxy on the
  same host every request comes from loopback.
- ``POST /admin/backup``: a gzipped tar of a consistent snapshot (hub/backup.py);
  admins only.
- The join of a cluster node: ``POST /admin/join-token``, ``GET /cluster/ca`` and
  ``POST /cluster/join`` (hub/cluster_join.py).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.join_tokens import BUCKET as JOIN_TOKENS_BUCKET
from auth.join_tokens import JoinTokens
from auth.service import AuthService
from bindings.common.asgi_server import HttpServer
from bindings.http.app import HttpBinding
from bindings.mqtt import MqttBinding
from bindings.nats import NatsBinding
from bucketstore import BucketStore
from certs import CertificateAuthority
from core.router import Router
from vocabulary.identity import Client
from vocabulary.problems import Forbidden

from .backup import BACKUP_PATH, make_backup
from .cluster_join import ClusterJoin
from .cluster_status import ClusterStatus
from .config import Config
from .metrics import CONTENT_TYPE
from .node_leases import NodeLeases

ADMIN = "admin"


class RunningHub(Protocol):
    """What the endpoints read of the running hub (``hub.runtime.Hub`` has it): a Protocol,
    so that this module, which the runtime imports, does not import the runtime back."""

    config: Config
    store: BucketStore
    auth: AuthService
    ca: CertificateAuthority
    router: Router
    http: HttpBinding
    http_server: HttpServer
    mqtt: MqttBinding | None
    nats: NatsBinding | None
    leases: NodeLeases | None  # a cluster node's
    started: bool  # every listener is up


class Operations:
    def __init__(self, hub: RunningHub) -> None:
        self.hub = hub
        self.join = ClusterJoin(
            JoinTokens(hub.store.bucket(JOIN_TOKENS_BUCKET)),
            hub.config.home,
            hub.ca,
            hub.auth.throttle,
            self._require_admin,
            lambda: hub.http.forms.base_url,
        )
        self.cluster = ClusterStatus(hub, hub.router.twin.agent_presence, self._require_admin)

    def routes(self) -> list[Route]:
        return [
            Route("/health", self.health, methods=["GET", "HEAD"]),
            Route("/ready", self.ready, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route(BACKUP_PATH, self.backup, methods=["POST"]),
            *self.join.routes(),
            *self.cluster.routes(),
        ]

    async def health(self, request: Request) -> Response:
        node = self.hub.config.cluster_node
        body: dict[str, Any] = {"status": "ok", **({"node": node} if node else {})}
        if self.hub.config.worker:  # which of the workers answered (hub/workers.py)
            body.update(worker=self.hub.config.worker, pid=os.getpid())
        return _json(body)

    async def ready(self, request: Request) -> Response:
        checks = self.checks()
        failing = [name for name, ok in checks.items() if not ok]
        if not failing:
            return _json({"status": "ready", "checks": checks})
        problem = {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": f"not ready: {', '.join(failing)}",
            "checks": checks,
        }
        return Response(
            orjson.dumps(problem),
            503,
            {"Retry-After": "5"},
            media_type="application/problem+json",
        )

    def checks(self) -> dict[str, bool]:
        hub = self.hub
        checks = {
            "store": not hub.store.closed,
            "https": hub.http_server.running and hub.started,
        }
        if hub.mqtt is not None:
            checks["mqtt"] = hub.mqtt.ready
        if hub.nats is not None:
            server = hub.nats.server
            if hub.config.nats_url is None:  # managed: the process must be alive
                process = server.process if server is not None else None
                checks["nats-server"] = process is not None and process.returncode is None
            checks["nats"] = hub.nats.url is not None and hub.started
        return checks

    async def metrics(self, request: Request) -> Response:
        if not self.hub.config.metrics_public:
            await self._require_admin(request)
        return Response(self.hub.metrics.exposition(), media_type=CONTENT_TYPE)

    async def backup(self, request: Request) -> Response:
        await self._require_admin(request)
        hub = self.hub
        path = await make_backup(
            hub.store, hub.config.home, flush=hub.router.flush, history=hub.twin.history
        )
        return FileResponse(
            path,
            media_type="application/gzip",
            filename="wothub-backup.tar.gz",
            background=BackgroundTask(os.unlink, path),
        )

    async def _require_admin(self, request: Request) -> Client:
        client = await self.hub.http.context.client(request)  # 401 without credentials
        self.hub.router.admit(client)
        if client.role != ADMIN:
            raise Forbidden(f"{request.url.path} is for administrators; {client.id} is not one")
        return client


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


class CountRefusals:
    """ASGI middleware counting HTTP 401 answers in the metrics (authentication happens
    in the HTTP binding before any message reaches the router, which counts the rest)."""

    def __init__(self, app: ASGIApp, metrics: Any) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.metrics.refused(401, "unauthorized")
            await send(message)

        await self.app(scope, receive, counting_send)
