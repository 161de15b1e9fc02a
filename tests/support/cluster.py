"""Hub clusters in tests: ``wothub serve`` nodes as subprocesses on loopback, each with
its own home and nats-server, routes between them, and the shared secrets (the CA, the
NATS keys, the token key) installed in every home before the first start, as a joining
node gets them (hub/cluster_secrets.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import aiohttp

from auth.tokens import TokenSigner
from bindings.nats.server import NatsKeys, free_port
from bucketstore.memory import MemoryStore
from certs import CertificateAuthority
from hub.cluster_secrets import export_secrets, install_secrets
from tests.support.served import Process, serve_env, wait_listeners


def cluster_secrets(home: Path) -> dict[str, str]:
    """A first node's secrets, made in ``home`` as its first start would."""
    CertificateAuthority.load_or_create(home, MemoryStore().bucket("certs"))
    NatsKeys.load_or_create(home / "nats")
    TokenSigner.load_or_create(home)
    return export_secrets(home)


class Node:
    """One node: ``wothub serve --node NAME`` with routes to the others."""

    def __init__(self, name: str, home: Path, route_port: int) -> None:
        self.name = name
        self.home = home
        self.route_port = route_port
        self.process = Process(name)
        self.listeners: dict = {}

    @property
    def url(self) -> str:
        return self.listeners["https"]["local_url"]

    @property
    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.home / "certs" / "ca.pem"))

    async def start(self, routes: list[int], *args: str) -> None:
        await self.process.start(
            "serve",
            "--home",
            str(self.home),
            "--node",
            self.name,
            "--cluster-port",
            str(self.route_port),
            *(arg for port in routes for arg in ("--route", f"127.0.0.1:{port}")),
            *args,
            env=serve_env(),
        )

    async def ready(self, timeout: float = 60.0) -> None:
        self.listeners = await wait_listeners(self.home, self.process, timeout)

    def session(self, token: str | None = None) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connector = aiohttp.TCPConnector(ssl=self.ssl)
        return aiohttp.ClientSession(self.url, headers=headers, connector=connector)

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
        secrets = cluster_secrets(directory / "secrets")
        ports = [free_port() for _ in range(count)]
        self.nodes = []
        for i, port in enumerate(ports, 1):
            home = directory / f"n{i}"
            install_secrets(home, secrets)
            self.nodes.append(Node(f"n{i}", home, port))
        self.ports = ports

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
