"""Each client's messages to one hub worker (bindings/nats/partitions.py): nats-server's
subject mapping computes the partition the hub expects, and a client's connection to
the router lives in the worker of its partition, whichever worker's callout let each
of its NATS connections in.
"""

from __future__ import annotations

import asyncio
import contextlib

import nats
import pytest

from bindings.nats import partitions
from bindings.nats.server import find_binary, free_port
from clients.nats import NatsAgent
from hub.cluster_secrets import export_secrets, install_secrets
from hub.runtime import Hub
from tests.support.nats_server import nats_server
from tests.support.running import PASSWORD, hub_config
from tests.support.tds import lamp_td
from tests.waiting import until
from vocabulary.addresses import encode

pytestmark = pytest.mark.timeout(120)

THING = "urn:dev:ops:partitioned-lamp"


async def test_nats_server_maps_each_client_to_the_partition_the_hub_computes(tmp_path):
    port = free_port()
    config = tmp_path / "nats.conf"
    config.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        "accounts { APP: { users: [ { user: hub, password: hub } ],\n"
        f"    {partitions.mappings(3)} }} }}\n"
    )
    assert find_binary()
    async with nats_server(config):
        nc = await nats.connect(f"nats://127.0.0.1:{port}", user="hub", password="hub")
        heard: list[str] = []

        async def hear(msg) -> None:
            heard.append(msg.subject)

        await nc.subscribe(">", cb=hear)
        ids = [encode(f"client {n}/é") for n in range(30)]
        sent = []
        for client in ids:
            sent += [
                f"wot.agent.{client}.hello",
                f"wot.agent.{client}.td.{encode('urn:dev:1')}",
                f"wot.agent.{client}.prop.t.n",
                f"wot.client.{client}.req.readproperty",
                f"wot.client.{client}.req",
            ]
        sent.append(f"wot.agent.{ids[0]}.req")  # the hub's requests to an agent: as they are
        for subject in sent:
            await nc.publish(subject, b"")
        await nc.flush()
        await until(lambda: len(heard) == len(sent), 5)
        await nc.close()
    expected = [partitions.mapped(s, 3) for s in sent[:-1]] + [sent[-1]]
    assert heard == expected
    assert {s.split(".")[3] for s in heard[:-1]} == {"0", "1", "2"}
    assert [partitions.unmapped(s) for s in heard[:-1]] == sent[:-1]


@pytest.fixture
async def workers(tmp_path, jetstream_store_factory):
    """Two in-process hubs as the two workers of one machine: one nats-server with the
    mapping for two partitions, their stores on one JetStream."""
    port = free_port()
    hubs: list[Hub] = []
    for index in (1, 2):
        home = tmp_path / f"w{index}"
        if hubs:
            install_secrets(home, export_secrets(hubs[0].config.home))
        config = hub_config(
            home,
            nats_enabled=True,
            nats_url=f"nats://127.0.0.1:{port}",
            cluster_node=f"w{index}",
            workers=2,
            worker=index,
        )
        hubs.append(Hub(config, jetstream_store_factory()))
    ca = hubs[0].ca
    (tmp_path / "nats.conf").write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f'tls {{ cert_file: "{ca.server_cert_path}", key_file: "{ca.server_key_path}", '
        f'ca_file: "{ca.ca_cert_path}", timeout: 2 }}\n'
        + hubs[0].nats.keys.auth_config(partitions=2)
    )
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(nats_server(tmp_path / "nats.conf"))
        for hub in hubs:
            stack.push_async_callback(hub.stop)
            await hub.start()
        yield hubs


async def test_an_agent_is_online_until_its_last_connection_closes(workers):
    """Its connections' logins were answered by both workers' callouts: the worker of its
    partition still knows each of them, from the server's CONNECT events."""
    owner = workers[partitions.partition_of(encode("lamp-agent"), 2)]
    other = workers[1 - workers.index(owner)]
    owner.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
    url, ca = owner.nats.url, owner.ca.ca_cert_pem
    agents: list[NatsAgent] = []
    try:
        # Connections until each worker's callout let at least one of them in.
        for _ in range(40):
            agents.append(await NatsAgent.connect(url, "lamp-agent", password=PASSWORD, ca_pem=ca))
            if all(w.nats._logins.of_client("lamp-agent") for w in workers):
                break
        known_to_owner = owner.nats._logins.of_client("lamp-agent")
        assert known_to_owner and other.nats._logins.of_client("lamp-agent")
        # Every CONNECT event came to the owner before the agent's first message.
        keys = {_key(a) for a in agents}
        await until(lambda: owner.nats._open_by_client.get("lamp-agent", set()) >= keys, 5)
        await agents[0].update_thing(lamp_td(THING))
        for hub in workers:
            await until(lambda hub=hub: hub.twin.presence(THING)["online"], 5)
        assert "lamp-agent" not in other.nats._peers  # its messages go to the owner only

        # The connections the owner's callout saw close first: the others keep it online.
        mine = [a for a in agents if _key(a) in known_to_owner]
        rest = [a for a in agents if _key(a) not in known_to_owner]
        for agent in mine:
            await agent.close()
        # (the owner handles a DISCONNECT event at once: gone from its open connections,
        # it would have dropped the agent's connection to the router too)
        await until(lambda: not owner.nats._open_by_client["lamp-agent"] & known_to_owner, 5)
        assert "lamp-agent" in owner.nats._peers
        assert owner.twin.presence(THING)["online"]
        for agent in rest:
            await agent.close()
        for hub in workers:
            await until(lambda hub=hub: not hub.twin.presence(THING)["online"], 5)
    finally:
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)


def _key(agent: NatsAgent) -> tuple[str, int]:
    return (agent.nc._server_info["server_id"], agent.nc._client_id)


async def test_a_worker_that_starts_again_gets_its_agents_back(workers, jetstream_store_factory):
    """Its agents stayed connected to nats-server while it was away: the new worker
    closes their connections, they reconnect and say hello to it."""
    owner = workers[partitions.partition_of(encode("lamp-agent"), 2)]
    other = workers[1 - workers.index(owner)]
    owner.auth.add_client("lamp-agent", "agent", "agent", password=PASSWORD)
    agent = await NatsAgent.connect(
        owner.nats.url, "lamp-agent", password=PASSWORD, ca_pem=owner.ca.ca_cert_pem
    )
    try:
        await agent.update_thing(lamp_td(THING))
        await until(lambda: other.twin.presence(THING)["online"], 5)
        await owner.stop()
        await until(lambda: not other.twin.presence(THING)["online"], 5)

        again = Hub(owner.config, jetstream_store_factory())
        try:
            await again.start()
            await until(lambda: "lamp-agent" in again.nats._peers, 10)
            await until(lambda: other.twin.presence(THING)["online"], 5)
        finally:
            await again.stop()
    finally:
        await agent.close()
