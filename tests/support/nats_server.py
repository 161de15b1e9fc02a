"""A nats-server of the test's own (the hub in external mode, docs/nats.md): its
configuration as an operator writes it, the server process, and a hub that uses it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from bindings.nats.server import find_binary
from bucketstore import open_store
from bucketstore.memory import MemoryStore
from certs import CertificateAuthority
from hub.cluster_node import MAX_PAYLOAD
from hub.runtime import Hub
from tests.support.running import hub_config


def external_config(hub: Hub, port: int) -> str:
    """What docs/nats.md tells an operator to configure: a TLS listener with the hub's
    certificate and the hub's accounts and auth_callout blocks."""
    ca = hub.ca
    return (
        f'listen: "127.0.0.1:{port}"\n'
        f'tls {{ cert_file: "{ca.server_cert_path}", key_file: "{ca.server_key_path}", '
        f'ca_file: "{ca.ca_cert_path}", timeout: 2 }}\n' + hub.nats.keys.auth_config()
    )


@contextlib.asynccontextmanager
async def nats_server(config_path):
    process = await asyncio.create_subprocess_exec(
        find_binary(),
        "-c",
        str(config_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    drain = None
    try:
        lines = []
        async with asyncio.timeout(20):
            while b"Server is ready" not in (line := await process.stderr.readline()):
                assert line, f"nats-server exited: {b''.join(lines).decode()}"
                lines.append(line)
        drain = asyncio.create_task(process.stderr.read())  # keeps its pipe from filling
        yield
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(10):
            await process.wait()
        if drain is not None:
            drain.cancel()


@contextlib.asynccontextmanager
async def hub_on(home, url: str):
    config = hub_config(home, nats_enabled=True, nats_url=url)
    store = open_store(config.store_path, "leveldb")
    hub = Hub(config, store)
    try:
        yield hub
    finally:
        await hub.stop()
        store.close()


def routed_config(
    secrets: Path,
    hub_blocks: str,
    name: str,
    port: int,
    cluster_port: int,
    routes: list[int],
    store_dir: Path,
) -> str:
    """One server of a NATS cluster with JetStream, as docs/cluster.md ("On a NATS cluster
    you run") tells an operator to configure it for the hubs: a TLS client listener with
    a server certificate from the hubs' CA, JetStream, routes to the other servers (plain
    on loopback here; TLS is the operator's choice), and ``hub_blocks``, what
    ``wothub cluster nats-config`` prints. ``secrets``: a home with the hubs' secrets."""
    ca = CertificateAuthority.load_or_create(secrets, MemoryStore().bucket("certs"))
    server = ca.ensure_server_certificate([])
    others = ", ".join(f'"nats-route://127.0.0.1:{other}"' for other in routes)
    return (
        f"server_name: {name}\n"
        f'listen: "127.0.0.1:{port}"\n'
        f'tls {{ cert_file: "{server.cert_path}", key_file: "{server.key_path}", '
        f'ca_file: "{ca.ca_cert_path}", timeout: 2 }}\n'
        f"max_payload: {MAX_PAYLOAD}\n"
        f'jetstream {{ store_dir: "{store_dir}" }}\n'
        f'cluster {{ name: ops, listen: "127.0.0.1:{cluster_port}", routes: [ {others} ] }}\n'
        + hub_blocks
    )
