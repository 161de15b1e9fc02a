"""nats-server processes with JetStream for the bucket store's jetstream backend: one
server, or a loopback cluster of three (synchronous: the bucket store tests are); and,
as fixtures for every test package (a pytest plugin, see tests/conftest.py), a server
for the session and JetStreamStores on it."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from bindings.nats.server import find_binary, free_port, free_ports
from bucketstore.jetstream import JetStreamStore

READY_TIMEOUT = 20.0
MAX_PAYLOAD = 8 << 20  # the conformance suite stores a 1 MiB value (plus headers)


class JetStreamServer:
    """One nats-server with JetStream on 127.0.0.1, its store in ``home``."""

    def __init__(self, home: Path, name: str = "js", cluster: str = "", port: int = 0) -> None:
        self.home = home
        self.name = name
        self.port = port or free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.cluster = cluster  # a cluster { } block, or ""
        self.process: subprocess.Popen | None = None
        self._log: list[str] = []

    def config(self) -> str:
        return (
            f'server_name: "{self.name}"\n'
            f'listen: "127.0.0.1:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{self.home / "jetstream"}" }}\n' + self.cluster
        )

    def start(self) -> JetStreamServer:
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "server.conf"
        path.write_text(self.config())
        self.process = subprocess.Popen(
            [find_binary(), "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def drain() -> None:  # keeps the pipe from filling, notes readiness
            assert self.process is not None and self.process.stderr is not None
            for line in self.process.stderr:
                self._log.append(line)
                if "Server is ready" in line:
                    ready.set()
            ready.set()  # it exited

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(READY_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"nats-server {self.name} did not start: {''.join(self._log)}")
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, as in a crash."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def cluster_of_three(home: Path) -> list[JetStreamServer]:
    """Three servers routed to each other (cluster "c1"), started; JetStream elects its
    meta leader shortly after, so the first stream may need a retry (the store does)."""
    ports = free_ports(6)  # each server's client port and route port
    route_ports = ports[3:]
    routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports)
    servers = [
        JetStreamServer(
            home / f"n{i}",
            name=f"n{i}",
            cluster=f'cluster {{ name: c1, listen: "127.0.0.1:{port}", routes: [{routes}] }}\n',
            port=client_port,
        )
        for i, (client_port, port) in enumerate(zip(ports[:3], route_ports, strict=True))
    ]
    started = []
    try:
        for server in servers:
            started.append(server.start())
    except BaseException:
        for server in started:
            server.stop()
        raise
    return servers


_prefixes = itertools.count()


@pytest.fixture(scope="session")
def jetstream_server(tmp_path_factory):
    """One nats-server with JetStream for the session; each store takes a fresh prefix,
    so no two tests share a bucket."""
    server = JetStreamServer(tmp_path_factory.mktemp("jetstream")).start()
    yield server
    server.stop()


@pytest.fixture
def jetstream_store_factory(jetstream_server):
    """Opens JetStreamStores on the session's server, under one prefix (so they share
    buckets) unless told otherwise; closes them at the end of the test."""
    opened = []
    prefix = f"t{next(_prefixes)}"

    def open_(**options):
        options = {"servers": jetstream_server.url, "prefix": prefix, **options}
        store = JetStreamStore(**options)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
