"""A node dies: three nodes, an MQTT agent at node 1 given every node's URL, an SSE
consumer at node 3, a NATS consumer, writes and actions through node 2's HTTP API. Then
node 1 (hub and nats-server) is killed with SIGKILL: the agent is back, at another node,
within 5 s; an action and a write asked meanwhile reach it once, in order; the consumers
keep receiving; what was acknowledged is at the surviving nodes; node 1 comes back and
catches up."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from urllib.parse import quote

import nats
import pytest

from clients.mqtt import MqttClient
from tests.support.cluster import Cluster, until_available
from tests.support.sse import stream
from tests.support.tds import lamp_td
from tests.waiting import until
from vocabulary.channels import NATS as subjects

pytestmark = pytest.mark.timeout(240)

THING = "urn:dev:ops:failover-lamp"
THING_PATH = "/things/" + quote(THING, safe="")
AGENT_PASSWORD = "the lamp's password"
MIA_PASSWORD = "mia's own password"


async def invoke(node, token, level):
    """``fade`` through the node's HTTP API, answered at once with its status; asked
    again while the node answers 503 (its store had no stream leader in time: no leader
    took the write, so "once" below still holds; docs/cluster.md)."""
    async with node.session(token) as http:
        status, body = await until_available(
            http,
            "POST",
            f"{THING_PATH}/actions/fade",
            json={"level": level},
            headers={"Prefer": "respond-async"},
        )
    assert status == 201, body
    return json.loads(body)["href"]


async def write(node, token, brightness):
    """A write of ``brightness`` through the node's HTTP API, with the device away: 202
    and the queued write's status (asked again while the node answers 503, as above)."""
    async with node.session(token) as http:
        status, body = await until_available(
            http, "PUT", f"{THING_PATH}/properties/brightness", json=brightness
        )
    assert status == 202, body
    return json.loads(body)["href"]


async def status_at(node, token, href):
    path = href[href.index("/things/") :]
    async with node.session(token) as http, http.get(path) as answer:
        return answer.status, await answer.json()


def mqtt_urls(nodes):
    return [f"mqtts://127.0.0.1:{node.listeners['mqtts']['port']}" for node in nodes]


async def test_a_killed_node_loses_nothing_acknowledged(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        admin = await one.login("admin", cluster.admin_password())
        await one.add_client(admin, "lamp", "agent", "agent", AGENT_PASSWORD)
        await two.add_client(admin, "mia", "consumer", "manager", MIA_PASSWORD)
        mia = await two.login("mia", MIA_PASSWORD)

        # The agent at node 1, knowing every node.
        ca_pem = (one.home / "certs" / "ca.pem").read_bytes()
        agent = MqttClient(
            mqtt_urls([one, two, three]), "lamp", password=AGENT_PASSWORD, ca_pem=ca_pem, agent=True
        )
        await agent.connect()
        assert (agent.host, agent.port) == agent.brokers[0]
        await agent.update_thing(lamp_td(THING))
        requests = agent.requests()

        # A NATS consumer at node 2 and an SSE consumer at node 3.
        tls = ssl.create_default_context(cadata=ca_pem.decode())
        nats_url = two.listeners["nats"]["local_url"]
        bus = await nats.connect(
            nats_url, tls=tls, user="mia", password=MIA_PASSWORD, allow_reconnect=False
        )
        values: asyncio.Queue = asyncio.Queue()

        async def on_value(msg):
            await values.put(json.loads(msg.data))

        await bus.subscribe(subjects.twin(THING, "prop", "brightness"), cb=on_value)
        await bus.flush()
        async with (
            three.session(mia) as http,
            stream(http, f"{THING_PATH}/properties/brightness") as sse,
        ):
            agent.report_property(THING, "brightness", 10)
            assert (await sse.next(10))["data"] == 10
            assert await asyncio.wait_for(values.get(), 10) == 10

            # An action asked at node 2 reaches the agent at node 1 and ends there.
            href = await invoke(two, mia, 20)
            request = await anext_within(requests, 10)
            assert request["input"] == {"level": 20}
            agent.answer(request, output=20)

            async def completed(href=href):
                status, body = await status_at(two, mia, href)
                return status == 200 and body["status"] == "completed"

            await until(completed, 10)

            # Node 1 dies: no goodbye from its hub or its nats-server.
            killed = time.monotonic()
            one.kill()
            href_meanwhile = await invoke(two, mia, 30)  # queued: the agent is away
            write_meanwhile = await write(two, mia, 35)
            await until(
                lambda: agent.connected and (agent.host, agent.port) != agent.brokers[0], 10
            )
            reconnected = time.monotonic() - killed
            assert reconnected < 5, f"the agent came back after {reconnected:.1f} s"

            # The action and the write asked meanwhile reach it once, in order, at its
            # new node.
            request = await anext_within(requests, 10)
            assert request["input"] == {"level": 30}
            agent.answer(request, output=30)
            request = await anext_within(requests, 10)
            assert (request["operation"], request["input"]) == ("writeproperty", 35)
            agent.answer(request)
            barrier = await invoke(two, mia, 31)
            request = await anext_within(requests, 10)
            assert request["input"] == {"level": 31}, "the queued action came twice"
            agent.answer(request, output=31)

            # Both consumers keep receiving.
            agent.report_property(THING, "brightness", 40)
            assert (await sse.next(10))["data"] == 40
            assert await next_not(values, 10, 10) == 40

            for done in (href_meanwhile, write_meanwhile, barrier):

                async def ended(done=done):
                    status, body = await status_at(three, mia, done)
                    return status == 200 and body["status"] == "completed"

                try:
                    await until(ended, 10)
                except TimeoutError:
                    state = await status_at(three, mia, done)
                    raise AssertionError(f"{done} did not end: at node 3 {state}") from None

        # Everything acknowledged is at the surviving nodes.
        for node in (two, three):
            async with node.session(admin) as http, http.get(THING_PATH) as answer:
                assert answer.status == 200
            clients = await node.clients_action(admin, "listClients")
            assert {"admin", "lamp", "mia"} <= {c["clientID"] for c in clients}
            status, body = await status_at(node, mia, href)
            assert (status, body["status"], body["output"]) == (200, "completed", 20)

        # Node 1 comes back and catches up: what happened while it was away is there.
        await two.add_client(admin, "late", "consumer", "viewer", "a late one's password")
        await one.start([p for p in cluster.ports if p != one.route_port])
        await one.ready()
        late = await one.login("late", "a late one's password")
        status, body = await status_at(one, late, href_meanwhile)
        assert (status, body["status"]) == (200, "completed")

        await agent.close()
        await bus.close()
    finally:
        await cluster.stop()


async def anext_within(requests, timeout):
    async with asyncio.timeout(timeout):
        return await anext(requests)


async def next_not(queue, skipped, timeout):
    """The next value on ``queue`` that is not ``skipped`` (a retained one again)."""
    async with asyncio.timeout(timeout):
        while (value := await queue.get()) == skipped:
            pass
        return value
