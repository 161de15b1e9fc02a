"""``wothub serve`` nodes on this machine's loopback, for tests and benchmarks
(tests/support/cluster.py, bench/cluster.py): the environment that puts every listener
on 127.0.0.1 and a free port, and the homes of a cluster's nodes, each with the shared
secrets (the CA, the NATS keys, the token key) installed before its first start, as a
joining node gets them (hub/cluster_secrets.py), and the ``serve`` arguments that route
each node to all the others."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bindings.nats.server import free_ports

from .cluster_secrets import export_secrets, install_secrets, make_secrets

LOOPBACK_FREE_PORTS = {
    "WOTHUB_HTTP_HOST": "127.0.0.1",
    "WOTHUB_HTTP_PORT": "0",
    "WOTHUB_MQTT_HOST": "127.0.0.1",
    "WOTHUB_MQTT_PORT": "0",
    "WOTHUB_NATS_HOST": "127.0.0.1",
    "WOTHUB_NATS_PORT": "0",
    "WOTHUB_NATS_WS_PORT": "0",
}


def serve_env(**extra: str) -> dict[str, str]:
    """This process's environment without its WOTHUB_* settings, every listener on
    loopback and a free port, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOTHUB_")}
    return {**env, **LOOPBACK_FREE_PORTS, **extra}


def cluster_secrets(home: Path) -> dict[str, str]:
    """A first node's secrets, made in ``home`` as its first start would."""
    make_secrets(home)
    return export_secrets(home)


@dataclass(frozen=True)
class NodeHome:
    """One node: its name, its home (secrets installed) and its route port."""

    name: str
    home: Path
    route_port: int

    def serve_args(self, routes: list[int]) -> list[str]:
        """``wothub serve`` arguments for this node, routed to ``routes`` (ports)."""
        return [
            "serve",
            "--home",
            str(self.home),
            "--node",
            self.name,
            "--cluster-port",
            str(self.route_port),
            *(arg for port in routes for arg in ("--route", f"127.0.0.1:{port}")),
        ]


def node_homes(directory: Path, count: int) -> list[NodeHome]:
    """``count`` nodes named n1, n2, ... with homes under ``directory`` that share one
    set of secrets (made in ``directory/secrets``), each with a free route port."""
    secrets = cluster_secrets(directory / "secrets")
    nodes = []
    for i, route_port in enumerate(free_ports(count), 1):
        home = directory / f"n{i}"
        install_secrets(home, secrets)
        nodes.append(NodeHome(f"n{i}", home, route_port))
    return nodes


def other_routes(nodes: list[NodeHome], node: NodeHome) -> list[int]:
    """The route ports of every node but ``node``: where it connects."""
    return [other.route_port for other in nodes if other is not node]
