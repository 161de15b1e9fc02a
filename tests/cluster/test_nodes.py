"""Three `wothub serve` nodes on loopback, each its own home and nats-server, routes
between them, the store in the cluster's JetStream: what one node acknowledges, the
others have; a token one node issues, the others accept; a logout at one is refused at
the others at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from clients.websocket import WsClient
from tests.support.cluster import Cluster
from tests.support.served import serve_env
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(180)

THING = "urn:dev:ops:cluster-lamp/1"


async def cluster_status(node, token):
    """``wothub cluster status --json`` against the node, as an operator runs it."""
    command = [sys.executable, "-m", "hub.cli", "cluster", "status", "--url", node.url]
    command += ["--ca", str(node.home / "certs" / "ca.pem"), "--token", token, "--json"]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=serve_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def status_of(node, path, token):
    async with node.session(token) as http, http.get(path) as answer:
        return answer.status


async def test_three_nodes_share_accounts_tokens_and_things(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        for node in (one, two, three):
            assert f"node {node.name}" in node.process.output  # the start line names it
            async with node.session() as http, http.get("/health") as answer:
                assert await answer.json() == {"status": "ok", "node": node.name}
        admin = await one.login("admin", cluster.admin_password())

        # An agent added at node 2 logs in at node 3 and registers a TD there.
        await two.add_client(admin, "lamp", "agent", "agent", "a lamp's password")
        agent_token = await three.login("lamp", "a lamp's password")
        agent = WsClient(
            three.url.replace("https://", "wss://", 1) + "/ws",
            ca=three.ssl,
            token=agent_token,
            reconnect=False,
        )
        async with agent:
            await agent.request("updatething", THING, input=lamp_td(THING), timeout=10)

            # `wothub cluster status` at node 1: three nodes alive, the agent at node 3,
            # every bucket with its three replicas.
            report = {}

            async def lamp_seen():
                report.update(await cluster_status(one, admin))
                return report["agents"].get("lamp") == ["n3"]

            await until(lamp_seen, 5)
            assert report["cluster"] == "wothub" and report["node"] == "n1"
            assert sorted(n["node"] for n in report["nodes"] if n["alive"]) == ["n1", "n2", "n3"]
            buckets = {b["bucket"]: b for b in report["store"]["buckets"]}
            assert {"clients", "things", "presence", "nodes"} <= set(buckets)
            assert all(b["replicas"] == 3 and b["leader"] for b in buckets.values())

        # Acknowledged at node 3: node 1 has it as soon as its replica does.
        path = "/things/" + quote(THING, safe="")

        async def at_node_one():
            return await status_of(one, path, admin) == 200

        await until(at_node_one, 5)

        # Two nodes change the same client at the same moment: neither change is lost.
        await one.add_client(admin, "carol", "consumer", "viewer")
        for round_ in range(5):
            role = ("operator", "manager")[round_ % 2]
            password = f"carol's password {round_}"
            await asyncio.gather(
                one.clients_action(admin, "setRole", clientID="carol", role=role),
                two.clients_action(admin, "setPassword", clientID="carol", password=password),
            )
            account = await three.clients_action(
                admin, "setEnabled", clientID="carol", enabled=True
            )
            assert account["role"] == role, f"round {round_}: the role was lost"
            await three.login("carol", password)  # and the password was not

        # Each node's metrics say which node they are from.
        async with two.session(admin) as http, http.get("/metrics") as answer:
            assert 'wothub_node_info{cluster="wothub",node="n2"} 1.0' in await answer.text()

        # A token issued by node 1 works at node 2; logging out at node 1 ends it at
        # node 2 within a second.
        assert await status_of(two, "/things", admin) == 200
        async with one.session(admin) as http:
            answer = await http.post("/authn/logout")
            assert answer.status in (200, 204), await answer.text()
        started = time.monotonic()

        async def refused_at_two():
            return await status_of(two, "/things", admin) == 401

        await until(refused_at_two, 1)
        assert time.monotonic() - started < 1.5
    finally:
        await cluster.stop()
