"""Managed nats-servers as the nodes of one hub cluster (``ClusterListener``): routes with
TLS both ways from the CA the nodes share, one set of accounts, JetStream replicated
across the nodes; a server whose certificate is another CA's is not let in."""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl

import nats
from nats.errors import NoRespondersError
from nats.js.api import KeyValueConfig
from nats.js.errors import APIError, ServiceUnavailableError

from bindings.nats.server import ClusterListener, NatsKeys, NatsServer, free_ports
from bucketstore import open_store
from certs import CertificateAuthority
from tests.waiting import until


def node_server(home, shared, keys, node, port, routes, *, cluster="wothub"):
    """A node's managed server: its home holds a copy of the shared CA, and its own node
    certificate issued from it."""
    shutil.copytree(shared / "certs", home / "certs", dirs_exist_ok=True)
    store = open_store(home / "store")
    ca = CertificateAuthority.load_or_create(home, store.bucket("certs"))
    server_cert = ca.ensure_server_certificate([])
    node_cert = ca.ensure_node_certificate(node, [])
    listener = ClusterListener(
        cluster, node, "127.0.0.1", port, tuple(routes), node_cert.cert_path, node_cert.key_path
    )
    server = NatsServer(
        home,
        port=0,
        ws_port=None,
        cert_file=server_cert.cert_path,
        key_file=server_cert.key_path,
        ca_file=ca.ca_cert_path,
        keys=keys,
        cluster=listener,
    )
    return server, ca, store


async def connect(server, ca, seed):
    tls = ssl.create_default_context(cadata=ca.ca_cert_pem.decode())
    return await nats.connect(server.url, tls=tls, nkeys_seed_str=seed, allow_reconnect=False)


async def test_three_nodes_route_messages_and_replicate_jetstream(tmp_path):
    shared = tmp_path / "shared"
    with open_store(tmp_path / "shared-store") as store:
        CertificateAuthority.load_or_create(shared, store.bucket("certs"))
    keys = NatsKeys.load_or_create(shared / "nats")
    *ports, foreign_port = free_ports(4)
    nodes = []
    for i, port in enumerate(ports):
        routes = [f"127.0.0.1:{p}" for p in ports if p != port]
        nodes.append(node_server(tmp_path / f"n{i + 1}", shared, keys, f"n{i + 1}", port, routes))
    # A fourth server with a CA of its own routes to the first: it must stay out.
    foreign_shared = tmp_path / "foreign"
    with open_store(tmp_path / "foreign-store") as store:
        CertificateAuthority.load_or_create(foreign_shared, store.bucket("certs"))
    foreign = node_server(
        tmp_path / "f", foreign_shared, keys, "f1", foreign_port, [f"127.0.0.1:{ports[0]}"]
    )
    assert "verify: true" in nodes[0][0].config()
    connections = []
    try:
        for server, _, _ in (*nodes, foreign):
            await server.start()
            assert server.server_name == server.cluster.node  # stable: JetStream's peer name
        first, third = nodes[0], nodes[2]
        one = await connect(first[0], first[1], keys.hub_user.seed)
        three = await connect(third[0], third[1], keys.hub_user.seed)
        connections += [one, three]

        # A message published at node 1 reaches a subscriber at node 3 (once the routes
        # carry the subscription: published until one arrives, within a deadline).
        got: list[bytes] = []

        async def keep(msg) -> None:
            got.append(msg.data)

        await three.subscribe("test.route", cb=keep)
        await three.flush()

        async def arrived() -> bool:
            await one.publish("test.route", b"hello")
            await one.flush()
            return bool(got)

        await until(arrived, timeout=20)
        assert set(got) == {b"hello"}

        # A key-value bucket with three replicas: written at node 1, read at node 3.
        js_one, js_three = one.jetstream(), three.jetstream()
        kv = None

        async def created() -> bool:  # JetStream elects its meta leader first
            nonlocal kv
            with contextlib.suppress(APIError, ServiceUnavailableError, TimeoutError):
                kv = await js_one.create_key_value(KeyValueConfig(bucket="t", replicas=3))
            return kv is not None

        await until(created, timeout=30)

        async def put() -> bool:  # and then the stream its own leader
            with contextlib.suppress(NoRespondersError, ServiceUnavailableError, TimeoutError):
                await kv.put("k", b"v")
                return True
            return False

        await until(put, timeout=30)
        info = await js_three.stream_info("KV_t")
        assert info.config.num_replicas == 3
        assert {info.cluster.leader, *(peer.name for peer in info.cluster.replicas)} == {
            "n1",
            "n2",
            "n3",
        }
        assert (await (await js_three.key_value("t")).get("k")).value == b"v"

        # Node 1 knows the three nodes only: the foreign server's route was refused.
        sys_one = await connect(first[0], first[1], keys.sys_user.seed)
        connections.append(sys_one)
        foreign_log = foreign[0].log_path

        def refused() -> bool:
            return foreign_log.exists() and "certificate signed by unknown authority" in (
                foreign_log.read_text()
            )

        await until(refused, timeout=20)
        names: set[str] = set()

        async def pong(msg) -> None:
            names.add(json.loads(msg.data)["server"]["name"])

        inbox = sys_one.new_inbox()
        await sys_one.subscribe(inbox, cb=pong)
        await sys_one.publish("$SYS.REQ.SERVER.PING", b"", reply=inbox)
        await until(lambda: len(names) >= 3, timeout=10)
        # Only servers joined to node 1's cluster get the ping at all.
        assert names == {"n1", "n2", "n3"}
    finally:
        for connection in connections:
            await connection.close()
        for server, _, store in (*nodes, foreign):
            await server.stop()
            store.close()
