"""A single hub grows into a cluster: it runs alone first (its admin, a client it was
given), then starts as the first of three nodes; its store is copied into the cluster's,
so the cluster has what the single hub had, and makes no admin of its own."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster
from tests.support.served import Process, serve_env, wait_listeners

pytestmark = pytest.mark.timeout(180)

FRIEND_PASSWORD = "an old friend's password"


async def test_a_single_hub_becomes_the_first_node_and_keeps_its_data(tmp_path):
    cluster = Cluster(tmp_path)
    first = cluster.nodes[0]

    # The single hub, on the first node's home (the cluster's secrets are its own).
    single = Process("single")
    await single.start("serve", "--home", str(first.home), env=serve_env())
    try:
        first.listeners = await wait_listeners(first.home, single)
        password = (first.home / "admin.password").read_text().strip()
        admin = await first.login("admin", password)
        await first.add_client(admin, "old-friend", "consumer", "viewer", FRIEND_PASSWORD)
    finally:
        assert await single.stop() == 0, single.output

    try:
        one, two, three = await cluster.start()
        assert "copied this home's single-hub store into the cluster" in one.process.output
        assert not (first.home / "store").exists()
        assert list(first.home.glob("store.adopted-*"))
        # The single hub's admin and client log in at every node; no other admin.
        assert cluster.admin_password() == password
        for node in (one, two, three):
            await node.login("old-friend", FRIEND_PASSWORD)
            await node.login("admin", password)
    finally:
        await cluster.stop()
