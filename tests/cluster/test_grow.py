"""A single hub grows into a cluster: it runs alone first (its admin, a client it was
given), then starts as the first of three nodes; its store is copied into the cluster's,
so the cluster has what the single hub had, and makes no admin of its own."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.cluster import Cluster
from tests.support.served import Process, serve_env, wait_listeners
from vocabulary.things import CLIENTS_THING

pytestmark = pytest.mark.timeout(180)

FRIEND_PASSWORD = "an old friend's password"


async def login(session, client_id, password):
    answer = await session.post("/authn/login", json={"clientID": client_id, "password": password})
    assert answer.status == 200, await answer.text()
    return (await answer.json())["token"]


async def test_a_single_hub_becomes_the_first_node_and_keeps_its_data(tmp_path):
    cluster = Cluster(tmp_path)
    first = cluster.nodes[0]

    # The single hub, on the first node's home (the cluster's secrets are its own).
    single = Process("single")
    await single.start("serve", "--home", str(first.home), env=serve_env())
    try:
        first.listeners = await wait_listeners(first.home, single)
        password = (first.home / "admin.password").read_text().strip()
        async with first.session() as http:
            admin = await login(http, "admin", password)
        async with first.session(admin) as http:
            answer = await http.post(
                "/things/" + quote(CLIENTS_THING, safe="") + "/actions/addClient",
                json={
                    "clientID": "old-friend",
                    "kind": "consumer",
                    "role": "viewer",
                    "password": FRIEND_PASSWORD,
                },
            )
            assert answer.status in (200, 201), await answer.text()
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
            async with node.session() as http:
                await login(http, "old-friend", FRIEND_PASSWORD)
                await login(http, "admin", password)
    finally:
        await cluster.stop()
