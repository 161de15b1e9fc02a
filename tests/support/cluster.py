"""Hub clusters in tests: ``wothub serve`` nodes as subprocesses on loopback, each with
its own home and nats-server, routes between them, and the shared secrets installed in
every home before the first start (the homes and arguments: hub/local_cluster.py, which
bench/cluster.py shares)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from bindings.nats.server import _alive  # the server's own check: /proc, zombies dead
from hub.local_cluster import NodeHome, node_homes
from tests.support.served import Process, serve_env, wait_listeners
from tests.waiting import until
from vocabulary.things import CLIENTS_THING

UNAVAILABLE_WAIT = 30.0  # seconds a test asks again while a node answers 503


async def until_available(
    http: aiohttp.ClientSession, method: str, path: str, **options: Any
) -> tuple[int, bytes]:
    """``method`` ``path`` until the node answers other than 503, as a client asks again:
    right after a node died its streams elect new leaders (nats-server's followers wait
    4-9 s; docs/cluster.md), and meanwhile the node's store gives up after its timeout
    (5 s) with a 503. That answer's (status, body); an AssertionError naming the last
    503 after ``UNAVAILABLE_WAIT``."""
    answers: list[tuple[int, bytes]] = []

    async def answered() -> bool:
        async with http.request(method, path, **options) as answer:
            answers.append((answer.status, await answer.read()))
        return answers[-1][0] != 503

    try:
        await until(answered, UNAVAILABLE_WAIT)
    except TimeoutError:
        last = answers[-1:]
        waited = f"still 503 after {UNAVAILABLE_WAIT} s"
        raise AssertionError(f"{method} {path}: {waited}: {last}") from None
    return answers[-1]


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

    async def start_on(self, nats_url: str, *args: str) -> None:
        """``wothub serve --node NAME --nats-url URL``: a hub on a NATS cluster that
        someone else runs (docs/cluster.md, "On a NATS cluster you run")."""
        serve = ["serve", "--home", str(self.home), "--node", self.name, "--nats-url", nats_url]
        await self.process.start(*serve, *args, env=serve_env())

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
        """An action of the hub's clients Thing at this node (checked to succeed), asked
        again while the node answers 503 (``until_available``)."""
        path = "/things/" + quote(CLIENTS_THING, safe="") + "/actions/" + action
        async with self.session(token) as http:
            status, body = await until_available(http, "POST", path, json=data)
        assert status in (200, 201), body
        return orjson.loads(body)

    async def add_client(
        self, token: str, client_id: str, kind: str, role: str, password: str | None = None
    ) -> Any:
        """``addClient`` at this node (checked to succeed); without a password, the hub
        makes one."""
        fields = {"clientID": client_id, "kind": kind, "role": role}
        if password is not None:
            fields["password"] = password
        return await self.clients_action(token, "addClient", **fields)

    async def online(self, token: str, thing_id: str) -> bool:
        """The Thing's agent's presence as this node's directory says it."""
        params = {"id": thing_id}
        async with self.session(token) as http, http.get("/presence", params=params) as answer:
            assert answer.status == 200, await answer.text()
            return (await answer.json())[thing_id]["online"]

    async def agents(self, token: str) -> dict[str, list[str]]:
        """Each connected agent and the nodes that handle it (GET /admin/cluster)."""
        async with self.session(token) as http, http.get("/admin/cluster") as answer:
            assert answer.status == 200, await answer.text()
            return (await answer.json())["agents"]

    async def stop(self) -> int:
        return await self.process.stop()

    def kill(self) -> None:
        """SIGKILL: the node's nats-server dies with it (its parent-death signal)."""
        assert self.process.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.process.kill()

    async def kill_with_server(self, timeout: float = 10.0) -> None:
        """SIGKILL to the node's nats-server, then to its hub (before the hub could
        start the server again), as a power cut would end both; returns once both are
        gone, so nothing writes into the home any more."""
        assert self.process.process is not None
        server = int((self.home / "nats" / "nats-server.pid").read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)
        self.kill()
        async with asyncio.timeout(timeout):
            await self.process.process.wait()
        await until(lambda: not _alive(server), timeout)


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
        """Every node stopped; their output printed, which pytest shows when a test fails."""
        for node in self.nodes:
            print(f"----- {node.name} -----\n{node.process.output}")
        codes = await asyncio.gather(
            *(n.stop() for n in self.nodes if n.process.process is not None),
            return_exceptions=True,
        )
        problems = [c for c in codes if isinstance(c, BaseException)]
        if problems:
            raise problems[0]
