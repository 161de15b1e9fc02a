"""Hub clusters in tests: ``wothub serve`` nodes as subprocesses on loopback, each with
its own home and nats-server, routes between them, and the shared secrets installed in
every home before the first start (the homes and arguments: hub/local_cluster.py, which
bench/cluster.py shares)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from hub.local_cluster import NodeHome, node_homes
from tests.support.served import Process, serve_env, wait_listeners
from vocabulary.things import CLIENTS_THING


class Node:
    """One node: ``wothub serve --node NAME`` with routes to the others."""

    def __init__(self, plan: NodeHome) -> None:
        self.plan = plan
        self.name = plan.name
        self.home = plan.home
        self.route_port = plan.route_port
        self.process = Process(plan.name)
        self.listeners: dict = {}

    @property
    def url(self) -> str:
        return self.listeners["https"]["local_url"]

    @property
    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.home / "certs" / "ca.pem"))

    async def start(self, routes: list[int], *args: str) -> None:
        await self.process.start(*self.plan.serve_args(routes), *args, env=serve_env())

    async def ready(self, timeout: float = 60.0) -> None:
        self.listeners = await wait_listeners(self.home, self.process, timeout)

    def session(self, token: str | None = None) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connector = aiohttp.TCPConnector(ssl=self.ssl)
        return aiohttp.ClientSession(self.url, headers=headers, connector=connector)

    async def login(self, client_id: str, password: str) -> str:
        """A token for the client, logged in at this node (checked to succeed)."""
        async with self.session() as http:
            body = {"clientID": client_id, "password": password}
            async with http.post("/authn/login", json=body) as answer:
                assert answer.status == 200, await answer.text()
                return (await answer.json())["token"]

    async def clients_action(self, token: str, action: str, **data: Any) -> Any:
        """An action of the hub's clients Thing at this node (checked to succeed)."""
        path = "/things/" + quote(CLIENTS_THING, safe="") + "/actions/" + action
        async with self.session(token) as http, http.post(path, json=data) as answer:
            assert answer.status in (200, 201), await answer.text()
            return await answer.json()

    async def stop(self) -> int:
        return await self.process.stop()

    def kill(self) -> None:
        """SIGKILL: the node's nats-server dies with it (its parent-death signal)."""
        assert self.process.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.process.kill()


class Cluster:
    """``count`` nodes named n1, n2, ... under ``directory``; each routes to all others."""

    def __init__(self, directory: Path, count: int = 3) -> None:
        self.nodes = [Node(plan) for plan in node_homes(directory, count)]
        self.ports = [node.route_port for node in self.nodes]

    async def start(self, *args: str, timeout: float = 60.0) -> list[Node]:
        """Every node, with ``args`` added to `wothub serve`."""
        for node in self.nodes:
            await node.start([p for p in self.ports if p != node.route_port], *args)
        await asyncio.gather(*(node.ready(timeout) for node in self.nodes))
        return self.nodes

    def admin_password(self) -> str:
        """The first-run admin's password: in the home of the node that made the admin."""
        found = [n.home / "admin.password" for n in self.nodes]
        files = [path for path in found if path.exists()]
        assert len(files) == 1, f"admin.password in {files}"
        return files[0].read_text().strip()

    async def stop(self) -> None:
        codes = await asyncio.gather(
            *(n.stop() for n in self.nodes if n.process.process is not None),
            return_exceptions=True,
        )
        problems = [c for c in codes if isinstance(c, BaseException)]
        if problems:
            raise problems[0]
