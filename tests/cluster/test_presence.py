"""Presence across nodes: an agent connected to one node is online at every node; when
its node stops it is offline at once, when its node is killed within the lease's TTL;
it is online again once it connects to another node."""

from __future__ import annotations

import time

import pytest

from clients.websocket import WsClient
from hub.node_leases import RENEW, TTL
from tests.support.cluster import Cluster
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(180)

THING = "urn:dev:ops:cluster-presence/1"
PASSWORD = "a lamp's password"


async def online_at(node, token):
    """The Thing's agent's presence as the node's directory says it."""
    async with node.session(token) as http, http.get("/presence", params={"id": THING}) as answer:
        assert answer.status == 200, await answer.text()
        return (await answer.json())[THING]["online"]


def agent_at(node, token):
    return WsClient(
        node.url.replace("https://", "wss://", 1) + "/ws",
        ca=node.ssl,
        token=token,
        reconnect=False,
    )


async def test_presence_is_the_clusters_and_a_dead_nodes_agents_go_offline(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        admin = await one.login("admin", cluster.admin_password())
        await one.add_client(admin, "lamp", "agent", "agent", PASSWORD)
        token = await one.login("lamp", PASSWORD)

        # Connected to node 1: online at node 2 and node 3 as soon as their stores know.
        agent = agent_at(one, token)
        await agent.connect()
        await agent.request("updatething", THING, input=lamp_td(THING), timeout=10)
        await until(lambda: online_at(two, admin), 5)
        await until(lambda: online_at(three, admin), 5)

        # It moves to node 2 (node 1's connection closed): still online everywhere.
        await agent.close()
        await until(lambda: _not(online_at(three, admin)), 5)
        agent = agent_at(two, token)
        await agent.connect()
        await until(lambda: online_at(three, admin), 5)

        # Node 2 is killed: nobody says goodbye for it; its lease runs out.
        killed = time.monotonic()
        two.kill()
        await until(lambda: _not(online_at(three, admin)), TTL + 3 * RENEW + 5)
        took = time.monotonic() - killed
        assert took < TTL + 3 * RENEW + 2, took
        await until(lambda: _not(online_at(one, admin)), 2 * RENEW + 1)  # its own check

        # It connects to node 3: online again.
        agent = agent_at(three, token)
        await agent.connect()
        await until(lambda: online_at(one, admin), 5)
        await agent.close()
    finally:
        await cluster.stop()


async def _not(awaitable):
    return not await awaitable
