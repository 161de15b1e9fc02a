"""Cluster mode on a NATS cluster that someone else runs (docs/cluster.md, "On a NATS
cluster you run"): three routed nats-servers with JetStream, configured as the docs tell
an operator, and three ``wothub serve --node nX --nats-url tls://...`` hubs, one at each
server, sharing one set of secrets. A client added at one hub logs in at another; a NATS
agent at server 1 is handled by hub 1: its values reach an SSE consumer at hub 3, an
action asked at hub 2 reaches it once; it is online at every hub. Hub 1 is killed (its
server stays): the agent, still connected to server 1, is handled by hub 2 once hub 1's
lease runs out; hub 1 starts again and takes its server's agents back. The agent is never
disconnected."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from bindings.nats.server import free_ports
from clients.nats import NatsAgent
from hub.node_leases import RENEW, TTL
from tests.support.cluster import Cluster
from tests.support.nats_server import nats_server, routed_config
from tests.support.served import serve_env
from tests.support.sse import stream
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(240)

THING = "urn:dev:ops:external-lamp"
THING_PATH = "/things/" + quote(THING, safe="")
LAMP_PASSWORD = "the lamp's password"
MIA_PASSWORD = "mia's own password"
# From a hub's death to its agents handled by another: its lease runs out (TTL, checked
# every RENEW), then the other hub asks the server for the agents' connections.
TAKEOVER = TTL + 2 * RENEW + 3


@contextlib.asynccontextmanager
async def nats_cluster(directory, route_ports):
    """Three routed servers s1, s2, s3 (cluster ports ``route_ports``), with the blocks
    that ``wothub cluster nats-config`` prints for the hubs' secrets; their client URLs."""
    secrets = directory / "secrets"
    command = [sys.executable, "-m", "hub.cli", "cluster", "nats-config", "--home", str(secrets)]
    printed = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=serve_env(), timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    ports = free_ports(len(route_ports), avoid=route_ports)
    async with contextlib.AsyncExitStack() as servers:
        for i, (port, cluster_port) in enumerate(zip(ports, route_ports, strict=True), 1):
            routes = [p for p in route_ports if p != cluster_port]
            config = directory / f"s{i}.conf"
            store = directory / f"s{i}"
            name = f"s{i}"
            config.write_text(
                routed_config(secrets, printed.stdout, name, port, cluster_port, routes, store)
            )
            await servers.enter_async_context(nats_server(config))
        yield [f"tls://127.0.0.1:{port}" for port in ports]


async def fade(node, token, level):
    """``fade`` through the node's HTTP API, waiting for its output."""
    async with node.session(token) as http:
        answer = await http.post(f"{THING_PATH}/actions/fade", json={"level": level})
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def fade_answered(node, token, agent, level):
    """An action asked at ``node`` reaches the agent, which answers it: its output."""

    async def answer_it():
        request = await asyncio.wait_for(agent.requests.get(), 15)
        assert request["input"] == {"level": level}, f"not the request for {level}: {request}"
        await agent.answer(request, output=level)

    output, _ = await asyncio.gather(fade(node, token, level), answer_it())
    return output


async def test_hubs_on_an_external_nats_cluster(tmp_path):
    cluster = Cluster(tmp_path)  # the homes, with the shared secrets installed
    one, two, three = cluster.nodes
    async with nats_cluster(tmp_path, cluster.ports) as urls:
        try:
            for node, url in zip(cluster.nodes, urls, strict=True):
                await node.start_on(url, "--replicas", "3")
            await asyncio.gather(*(node.ready() for node in cluster.nodes))
            admin = await one.login("admin", cluster.admin_password())

            # Clients added at hub 1 log in at hub 3.
            await one.add_client(admin, "lamp", "agent", "agent", LAMP_PASSWORD)
            await one.add_client(admin, "mia", "consumer", "manager", MIA_PASSWORD)
            mia = await three.login("mia", MIA_PASSWORD)

            # A NATS agent at server 1: handled by hub 1, online at every hub.
            ca_pem = (one.home / "certs" / "ca.pem").read_bytes()
            agent = await NatsAgent.connect(urls[0], "lamp", password=LAMP_PASSWORD, ca_pem=ca_pem)
            await agent.update_thing(lamp_td(THING))
            for node in cluster.nodes:
                await until(lambda node=node: node.online(admin, THING), 5)
            assert await one.agents(admin) == {"lamp": ["n1"]}

            async with (
                three.session(mia) as http,
                stream(http, f"{THING_PATH}/properties/brightness") as sse,
            ):
                # Its values reach an SSE consumer at hub 3.
                await agent.report_property(THING, "brightness", 10)
                assert (await sse.next(10))["data"] == 10

                # An action asked at hub 2 reaches it once, and its output comes back.
                assert await fade_answered(two, mia, agent, 20) == 20
                assert await fade_answered(two, mia, agent, 21) == 21  # and not 20 again

                # Hub 1 dies; server 1 and the agent's connection to it stay. Once hub
                # 1's lease runs out, hub 2 (the first by name of the hubs alive) takes
                # server 1's agents where they are.
                killed = time.monotonic()
                one.kill()

                async def handled_by(node):
                    return await three.agents(admin) == {"lamp": [node]}

                # An action asked meanwhile waits for it, and reaches it once taken.
                assert await fade_answered(two, mia, agent, 30) == 30
                await until(lambda: handled_by("n2"), TAKEOVER)
                took = time.monotonic() - killed
                assert took > TTL - RENEW, f"hub 1 counted dead after {took:.1f} s"
                assert agent.nc.connected_url.port == int(urls[0].rsplit(":", 1)[1])
                assert agent.nc.stats["reconnects"] == 0  # it was not disconnected
                for node in (two, three):
                    await until(lambda node=node: node.online(admin, THING), 5)
                await agent.report_property(THING, "brightness", 31)
                assert (await sse.next(10))["data"] == 31
                assert await fade_answered(two, mia, agent, 32) == 32  # and not 30 again

                # Hub 1 starts again: it handles its server's agents again.
                await one.start_on(urls[0], "--replicas", "3")
                await one.ready()

                await until(lambda: handled_by("n1"), TAKEOVER)
                assert agent.nc.stats["reconnects"] == 0
                for node in cluster.nodes:
                    await until(lambda node=node: node.online(admin, THING), 5)
                assert await fade_answered(three, mia, agent, 40) == 40
                assert await fade_answered(three, mia, agent, 41) == 41
                await agent.report_property(THING, "brightness", 42)
                assert (await sse.next(10))["data"] == 42
            await agent.close()
        finally:
            await cluster.stop()
            for node in cluster.nodes:  # shown when the test fails
                print(f"--- {node.name}\n{node.process.output}")
