"""A node loses its disk and rejoins under its name: three nodes hold some acknowledged
state (a TD, client accounts, an action record, property values); node 3's hub and its
nats-server are killed with SIGKILL and its whole home is deleted. It gets a new home
the documented way (a join token from node 1, `wothub cluster join`), starts again as
n3 with the same routes, and JetStream copies the replicas back onto it: the state is
readable at node 3, logins work there, and an SSE consumer at node 3 gets a value that
an agent at node 1 reports."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from urllib.parse import quote

import pytest

from clients.websocket import WsClient
from tests.support.cluster import Cluster
from tests.support.served import serve_env
from tests.support.sse import stream
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(240)

THING = "urn:dev:ops:rejoin-lamp"
THING_PATH = "/things/" + quote(THING, safe="")
LAMP_PASSWORD = "the lamp's password"
MIA_PASSWORD = "mia's own password"
LATE_PASSWORD = "a late one's password"


async def wothub(*args: str) -> str:
    """A `wothub` command as an operator runs it; its output (checked to succeed)."""
    command = [sys.executable, "-m", "hub.cli", *args]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=serve_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def get(node, token, path):
    async with node.session(token) as http, http.get(path) as answer:
        return answer.status, await answer.json()


async def every_replica_current(node, token) -> bool:
    """Whether ``wothub cluster status`` at ``node`` shows each bucket on n1, n2 and n3,
    every replica current."""
    report = json.loads(
        await wothub(
            "cluster", "status", "--url", node.url, "--ca",
            str(node.home / "certs" / "ca.pem"), "--token", token, "--json",
        )
    )  # fmt: skip
    buckets = report["store"]["buckets"]
    assert {"clients", "sessions", "things", "twins", "requests"} <= {b["bucket"] for b in buckets}
    if any("error" in bucket for bucket in buckets):
        return False  # a stream that did not answer in time (electing its leader): not yet
    for bucket in buckets:
        peers = bucket["peers"]
        if {bucket["leader"], *(p["name"] for p in peers)} != {"n1", "n2", "n3"}:
            return False
        if any(p["offline"] or not p["current"] for p in peers):
            return False
    return True


async def test_a_node_that_lost_its_disk_rejoins_under_its_name_and_catches_up(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        password = cluster.admin_password()  # its file may be in the home that goes
        admin = await one.login("admin", password)
        for node, client_id, kind, role, secret in (
            (one, "lamp", "agent", "agent", LAMP_PASSWORD),
            (two, "mia", "consumer", "manager", MIA_PASSWORD),
        ):
            await node.add_client(admin, client_id, kind, role, secret)
        mia = await two.login("mia", MIA_PASSWORD)

        # The agent at node 1: its TD, a value, an action asked at node 2 and completed.
        agent = WsClient(
            one.url.replace("https://", "wss://", 1) + "/ws",
            ca=one.ssl,
            token=await one.login("lamp", LAMP_PASSWORD),
            reconnect=False,
        )
        await agent.connect()
        await agent.update_thing(lamp_td(THING))
        await agent.report_property(THING, "brightness", 10)
        async with two.session(mia) as http:
            answer = await http.post(
                f"{THING_PATH}/actions/fade",
                json={"level": 20},
                headers={"Prefer": "respond-async"},
            )
            assert answer.status == 201, await answer.text()
            action = (await answer.json())["href"]
            action = action[action.index("/things/") :]
        request = await agent.next_request(10)
        await agent.answer(request, output=20)

        async def acknowledged_at_node_three():
            # Both acknowledged and in node 3's replicas: the value is written behind.
            status, record = await get(three, mia, action)
            value = await get(three, mia, f"{THING_PATH}/properties/brightness")
            return status == 200 and record["status"] == "completed" and value == (200, 10)

        await until(acknowledged_at_node_three, 10)

        # Node 3 dies, hub and nats-server, and its disk with it.
        await three.kill_with_server()
        shutil.rmtree(three.home)

        # Meanwhile the cluster goes on: a client is added, the value changes.
        await two.add_client(admin, "late", "consumer", "viewer", LATE_PASSWORD)
        await agent.report_property(THING, "brightness", 30)

        # A new home, the documented way: a join token from node 1, then the join.
        issued = json.loads(
            await wothub(
                "cluster", "join-token", "--url", one.url, "--ca",
                str(one.home / "certs" / "ca.pem"), "--token", admin, "--json",
            )
        )  # fmt: skip
        joined = await wothub(
            "cluster", "join", issued["url"], "--token", issued["token"],
            "--ca-fingerprint", issued["caFingerprint"], "--home", str(three.home),
        )  # fmt: skip
        assert "joined the cluster" in joined

        # Under its old name, with the same routes.
        await three.start([p for p in cluster.ports if p != three.route_port])
        await three.ready()
        assert not (three.home / "admin.password").exists()  # no second admin

        # JetStream has put a current replica of every bucket on it again, as node 1 and
        # node 3 itself see it.
        await until(lambda: every_replica_current(one, admin), 30)
        await until(lambda: every_replica_current(three, admin), 30)

        # What was acknowledged before and while it was away is readable at node 3.
        assert (await get(three, admin, THING_PATH))[0] == 200
        clients = await three.clients_action(admin, "listClients")
        assert {"admin", "lamp", "mia", "late"} <= {c["clientID"] for c in clients}
        status, record = await get(three, mia, action)
        assert (status, record["status"], record["output"]) == (200, "completed", 20)

        async def latest_value():
            return await get(three, mia, f"{THING_PATH}/properties/brightness") == (200, 30)

        await until(latest_value, 5)

        # Logins work at node 3, and it works: an SSE consumer there gets what the agent
        # at node 1 reports.
        await three.login("admin", password)
        late = await three.login("late", LATE_PASSWORD)
        async with (
            three.session(late) as http,
            stream(http, f"{THING_PATH}/properties/brightness") as sse,
        ):
            await agent.report_property(THING, "brightness", 40)
            assert (await sse.next(10))["data"] == 40
        await agent.close()

        # Its replicas count again: with node 1 killed, nodes 2 and 3 are the quorum,
        # and a login at node 3 (a session written to the store) succeeds.
        await one.kill_with_server()

        async def login_at_three():
            async with three.session() as http:
                body = {"clientID": "mia", "password": MIA_PASSWORD}
                async with http.post("/authn/login", json=body) as answer:
                    return answer.status == 200

        await until(login_at_three, 20)  # stream leaders on node 1 move meanwhile
    finally:
        await cluster.stop()
