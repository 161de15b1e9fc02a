"""``wothub serve --workers 2`` (hub/workers.py): two hub processes on one nats-server,
each client's messages in the partition of one of them, HTTPS shared by both.

One subprocess for the whole story, as an operator runs it: both workers are up, both
serve HTTPS, NATS agents of both partitions see their requests and report 200 values
each, which an SSE consumer sees in order whichever worker serves its stream, a NATS
consumer (whose request subjects are mapped too) reads them, an MQTT agent's reports
arrive in order, and SIGTERM stops everything within the bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from urllib.parse import quote

import aiohttp
import pytest

from bindings.nats.partitions import partition_of
from clients.nats import NatsAgent, NatsConsumer
from hub.runtime import STOP_SECONDS
from hub.workers import _STOP_BOUND
from tests.support.http import url
from tests.support.mqtt import Paho
from tests.support.served import Process, serve_env, wait_listeners
from tests.support.sse import stream
from tests.support.tds import lamp_td
from tests.waiting import until
from vocabulary.addresses import encode
from vocabulary.things import CLIENTS_THING

pytestmark = pytest.mark.timeout(240)

PASSWORD = "a worker's lamp password"
VALUES = 200  # reported per agent, in sequence
INVOKES = 10  # actions per agent, in sequence
SEQ = {"seq": {"type": "integer", "forms": [{"href": "https://lamp.local/seq"}]}}


def _agents(count_per_partition: int) -> list[str]:
    """Agent ids, ``count_per_partition`` in each of the two workers' partitions."""
    chosen: dict[int, list[str]] = {0: [], 1: []}
    for n in range(100):
        client_id = f"lamp-{n}"
        part = chosen[partition_of(encode(client_id), 2)]
        if len(part) < count_per_partition:
            part.append(client_id)
    return chosen[0] + chosen[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Served:
    def __init__(self, home) -> None:
        self.home = home
        self.process = Process("wothub --workers 2")
        self.listeners: dict = {}

    @property
    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.home / "certs" / "ca.pem"))

    @property
    def ca_pem(self) -> bytes:
        return (self.home / "certs" / "ca.pem").read_bytes()

    def session(self, token: str | None = None, **options) -> aiohttp.ClientSession:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connector = aiohttp.TCPConnector(ssl=self.ssl, **options)
        base = self.listeners["https"]["local_url"]
        return aiohttp.ClientSession(base, headers=headers, connector=connector)

    async def login(self, client_id: str, password: str) -> str:
        async with self.session() as http:
            answer = await http.post(
                "/authn/login", json={"clientID": client_id, "password": password}
            )
            assert answer.status == 200, await answer.text()
            return (await answer.json())["token"]


@pytest.fixture
async def served(tmp_path):
    hub = Served(tmp_path / "home")
    await hub.process.start("serve", "--home", str(hub.home), "--workers", "2", env=serve_env())
    try:
        hub.listeners = await wait_listeners(hub.home, hub.process, timeout=90)
        yield hub
    finally:
        assert hub.process.process is not None
        if hub.process.process.returncode is None:
            await hub.process.stop(timeout=_STOP_BOUND + 5)


async def test_two_workers_share_the_port_and_keep_each_clients_order(served):
    parent = served.process.process
    assert parent is not None
    # Both workers are up: each wrote its own listeners file; the parent wrote the hub's.
    workers = [json.loads((served.home / f"listeners-w{i}.json").read_text()) for i in (1, 2)]
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and parent.pid not in pids and all(map(_alive, pids))
    assert {w["listeners"]["https"]["port"] for w in workers} == {served.listeners["https"]["port"]}

    # HTTPS: new connections reach both workers (the kernel spreads them).
    answered: set[tuple[int, int]] = set()
    for _ in range(200):
        async with served.session(force_close=True) as http, http.get("/health") as answer:
            body = await answer.json()
            answered.add((body["worker"], body["pid"]))
        if len(answered) == 2:
            break
    assert {pid for _, pid in answered} == pids, answered

    admin = await served.login("admin", (served.home / "admin.password").read_text().strip())
    agents = _agents(2)
    async with served.session(admin) as http:
        for client_id, kind, role in [
            *((a, "agent", "agent") for a in agents),
            ("otto", "consumer", "operator"),
            ("mqtt-lamp", "agent", "agent"),
        ]:
            answer = await http.post(
                "/things/" + quote(CLIENTS_THING, safe="") + "/actions/addClient",
                json={"clientID": client_id, "kind": kind, "role": role, "password": PASSWORD},
            )
            assert answer.status in (200, 201), await answer.text()
    nats_url = served.listeners["nats"]["local_url"]

    # NATS agents in both partitions, each with one Thing; each answers its requests.
    seen: dict[str, list[int]] = {a: [] for a in agents}
    things = {a: f"urn:dev:ops:workers-{a}" for a in agents}
    connected = []
    for client_id in agents:
        agent = await NatsAgent.connect(
            nats_url, client_id, password=PASSWORD, ca_pem=served.ca_pem
        )
        connected.append(agent)

        def handle(request, client_id=client_id):
            seen[client_id].append(request["input"]["level"])
            return request["input"]["level"]

        agent.on_request = handle
        await agent.update_thing(lamp_td(things[client_id], properties=SEQ))
    try:
        await _requests_reach_agents(served, admin, things, seen)
        await _reports_in_order(served, admin, connected, things)
        await _nats_consumer(served, nats_url, things)
        await _mqtt_agent_in_order(served, admin)
        await until(lambda: _online(served, admin, things.values(), True), 5)
    finally:
        for agent in connected:
            await agent.close()
    # Offline once their connections closed: the worker of each agent's partition holds
    # its connection to the router, whichever worker's callout let it log in.
    await until(lambda: _online(served, admin, things.values(), False), 5)

    # SIGTERM to the parent stops the workers and nats-server within the bound.
    server_pid = int((served.home / "nats" / "nats-server.pid").read_text())
    started = time.monotonic()
    code = await served.process.stop(timeout=_STOP_BOUND + 5)
    took = time.monotonic() - started
    assert code == 0, served.process.output
    assert took < _STOP_BOUND, took
    assert took < STOP_SECONDS, f"a quiet hub stops well within its bound: {took}"
    await until(lambda: not any(_alive(p) for p in (*pids, server_pid)), 5)
    assert not (served.home / "listeners.json").exists()


async def _requests_reach_agents(served, token, things, seen) -> None:
    """HTTP invokes, on whichever worker, reach each agent in order (the worker of its
    partition delivers them) and answer with the agent's output."""
    async with served.session(token, force_close=True) as http:
        for client_id, thing in things.items():
            await until(lambda thing=thing: _exists(http, thing), 10)
            for level in range(INVOKES):
                answer = await http.post(url(thing, "actions", "fade"), json={"level": level})
                assert answer.status == 200, await answer.text()
                assert await answer.json() == level
            assert seen[client_id] == list(range(INVOKES))


async def _exists(http, thing) -> bool:
    async with http.get(url(thing)) as answer:
        return answer.status == 200


async def _reports_in_order(served, token, agents, things) -> None:
    """Each agent reports VALUES values; an SSE stream per Thing (on whichever worker
    its connection landed) sees each Thing's values in order."""
    async with served.session(token) as http:
        streams = []
        for agent in agents:
            path = url(things[agent.client_id], "properties", "seq")
            streams.append(await _open(http, path))
        try:

            async def report(agent) -> None:
                for value in range(VALUES):
                    await agent.report_property(things[agent.client_id], "seq", value)
                    if value % 20 == 19:
                        await agent.nc.flush()  # paced: a burst, then the next

            async def read(sse) -> list[int]:
                return [(await sse.next(timeout=20))["data"] for _ in range(VALUES)]

            results = await asyncio.gather(
                *(read(sse) for _, sse in streams), *(report(agent) for agent in agents)
            )
            for values in results[: len(streams)]:
                assert values == list(range(VALUES))
        finally:
            for context, _ in streams:
                await context.__aexit__(None, None, None)


async def _open(http, path):
    """An SSE stream, once the worker it lands on knows the Thing."""
    deadline = time.monotonic() + 10
    while True:
        context = stream(http, path)
        try:
            return context, await context.__aenter__()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)  # polled: the worker's store replica catches up


async def _nats_consumer(served, nats_url, things) -> None:
    """A NATS consumer's requests are partitioned too: its mapped request subjects are
    granted, and it reads what the agents reported."""
    consumer = await NatsConsumer.connect(nats_url, "otto", password=PASSWORD, ca_pem=served.ca_pem)
    try:
        for thing in things.values():
            # A worker of another partition reads what the store has: the values are
            # written behind (flush_interval), as across cluster nodes.
            await until(
                lambda thing=thing: _equals(consumer.read_property(thing, "seq"), VALUES - 1),
                5,
            )
        assert not consumer.errors, consumer.errors
    finally:
        await consumer.close()


async def _online(served, token, things, wanted: bool) -> bool:
    """Whether every Thing's agent is ``wanted`` (online or not), as a worker says."""
    async with served.session(token) as http:
        for thing in things:
            async with http.get("/presence", params={"id": thing}) as answer:
                assert answer.status == 200, await answer.text()
                if (await answer.json())[thing]["online"] != wanted:
                    return False
    return True


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def _mqtt_agent_in_order(served, token) -> None:
    """An MQTT agent's topics are mapped like NATS subjects: its reports reach its worker,
    in order."""
    thing = "urn:dev:ops:workers-mqtt"
    port = served.listeners["mqtts"]["port"]
    agent = Paho(port, served.ca_pem, "mqtt-lamp", username="mqtt-lamp", password=PASSWORD)
    assert await agent.connect() == 0
    try:
        agent.publish(
            f"wot/agent/mqtt-lamp/td/{encode(thing)}",
            json.dumps({"input": lamp_td(thing, properties=SEQ)}),
        )
        async with served.session(token) as http:
            await until(lambda: _exists(http, thing), 10)
            _, sse = context_and_sse = await _open(http, url(thing, "properties", "seq"))
            try:
                for value in range(50):
                    agent.publish(
                        f"wot/agent/mqtt-lamp/prop/{encode(thing)}/seq",
                        json.dumps({"value": value}),
                    )
                assert [(await sse.next(timeout=20))["data"] for _ in range(50)] == list(range(50))
            finally:
                await context_and_sse[0].__aexit__(None, None, None)
    finally:
        agent.close()
