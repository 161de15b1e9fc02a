"""Cluster mode: the notifications of one node reach the SSE and WebSocket subscribers of
another (bindings/nats/other_nodes.py, docs/cluster.md).

Two in-process hubs are two nodes: the same secrets, one nats-server that both use in
external mode (their auth callouts share its queue group), and JetStream stores that
share their buckets on the session's JetStream server, as cluster mode's nodes share
theirs. Each follows the other nodes, as the runtime makes a cluster node do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import nats
import pytest

from bindings.nats.server import free_port
from hub.cluster_secrets import export_secrets, install_secrets
from hub.runtime import Hub
from tests.support.devices import AGENT, answer, register, report
from tests.support.http import url
from tests.support.nats_server import external_config, nats_server
from tests.support.running import PASSWORD, RunningHub, hub_config
from tests.support.sse import stream
from tests.support.tds import LAMP, lamp_td
from tests.support.ws import ask, receive, socket
from tests.waiting import until
from vocabulary import twin_wire

pytestmark = pytest.mark.timeout(120)

OTHER = "urn:dev:ops:32473-lamp-2"  # a Thing whose agent is on node 2


@pytest.fixture
async def nodes(tmp_path, jetstream_store_factory):
    port = free_port()
    nats_url = f"nats://127.0.0.1:{port}"
    hubs: list[Hub] = []
    for index in (1, 2):
        home = tmp_path / f"node{index}"
        if hubs:  # a node joins with the first one's secrets
            install_secrets(home, export_secrets(hubs[0].config.home))
        config = hub_config(home, nats_enabled=True, nats_url=nats_url, action_timeout=20.0)
        hub = Hub(config, jetstream_store_factory())
        hub.nats.follow_other_nodes = True  # what the runtime sets in cluster mode
        hubs.append(hub)
    config_path = tmp_path / "nats.conf"
    config_path.write_text(external_config(hubs[0], port))
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(nats_server(config_path))
        running = []
        for hub in hubs:
            stack.push_async_callback(hub.stop)
            await hub.start()
            running.append(RunningHub(hub))
            stack.push_async_callback(running[-1].close_devices)
        yield running


async def _known(node: RunningHub, *thing_ids: str) -> None:
    """The node's copy of the shared store has the Things (as the other node wrote them)."""
    await until(lambda: all(node.hub.twin.thing(t) is not None for t in thing_ids), 10)


async def _observe(node: RunningHub, token: str, *thing_ids: str):
    """A WebSocket consumer observing the Things' brightness (subscribed on return)."""
    ws = await socket(node, token)
    for thing_id in thing_ids:
        answer = await ask(
            ws,
            operation="observeproperty",
            thingID=thing_id,
            name="brightness",
            correlationID=f"observe {thing_id}",
        )
        assert answer.get("error") is None, answer
    return ws


async def _values(ws, count: int) -> list[tuple[str, object]]:
    return [((m := await receive(ws))["thingID"], m["value"]) for _ in range(count)]


async def test_a_value_reaches_every_stream_once_and_the_bus_once(nodes):
    one, two = nodes
    lamp = await register(one)  # its agent on node 1
    other = await register(two, "other-agent", lamp_td(OTHER))  # its agent on node 2
    await _known(one, OTHER)
    await _known(two, LAMP)
    viewer_two = two.add_client("vera", "consumer", "viewer")
    viewer_one = one.add_client("otto", "consumer", "viewer")

    # A NATS consumer of every twin value: nats-server delivers each node's own.
    bus: list[tuple[str, bytes, dict]] = []
    tls = ssl.create_default_context(cadata=one.hub.ca.ca_cert_pem.decode())
    nc = await nats.connect(
        one.hub.nats.url, tls=tls, user="vera", password=PASSWORD, inbox_prefix="_INBOX.vera"
    )

    async def heard(msg) -> None:
        bus.append((msg.subject, msg.data, msg.headers or {}))

    await nc.subscribe("wot.twin.*.prop.brightness", cb=heard)
    await nc.flush()
    try:
        async with (
            two.session(viewer_two) as session,
            stream(session, url(LAMP, "properties", "brightness")) as sse,
            await _observe(two, viewer_two, LAMP) as ws_two,
            await _observe(one, viewer_one, LAMP, OTHER) as ws_one,
        ):
            await report(lamp, "brightness", 10)
            await report(lamp, "brightness", 11)
            # Node 2's SSE and WebSocket consumers get node 1's values, once each.
            assert [(await sse.next())["data"] for _ in range(2)] == [10, 11]
            assert await _values(ws_two, 2) == [(LAMP, 10), (LAMP, 11)]
            # Node 1 skips its own, which nats-server brings back to it: node 2's 50 comes
            # after them (the server queued them for node 1 before it gave them to node 2).
            await report(other, "brightness", 50)
            assert await _values(ws_one, 3) == [(LAMP, 10), (LAMP, 11), (OTHER, 50)]
            # On the bus, each value once: node 2 sends no copy. Had it sent any, it would
            # have come before node 2's own 50, which it published after them (and node
            # 1's 10 and 11 came before: node 2 had them from the server before the 50).
            await until(lambda: any(subject.split(".")[2] == OTHER for subject, _, _ in bus), 10)
            values = [(subject.split(".")[2], data) for subject, data, _ in bus]
            assert sorted(values) == [(LAMP, b"10"), (LAMP, b"11"), (OTHER, b"50")], values
            nodes_of = {subject.split(".")[2]: h[twin_wire.NODE] for subject, _, h in bus}
            assert nodes_of == {LAMP: one.hub.nats.node_id, OTHER: two.hub.nats.node_id}
            # Node 2's streams got nothing more of node 1's meanwhile either.
            await report(lamp, "brightness", 12)
            await sse.next_is(12)
            assert await _values(ws_two, 1) == [(LAMP, 12)]
    finally:
        await nc.close()


async def test_a_client_that_may_not_see_the_thing_gets_nothing_of_it(nodes):
    one, two = nodes
    lamp = await register(one)
    await register(one, "other-agent", lamp_td(OTHER))  # both agents on node 1
    await _known(two, LAMP, OTHER)
    agent_token = two.hub.auth.new_token("other-agent")["token"]
    viewer_token = two.add_client("vera", "consumer", "viewer")
    async with (
        two.session(agent_token) as agent_session,
        stream(agent_session, "/events") as agents_stream,  # an agent sees its own Things
        two.session(viewer_token) as viewer_session,
        stream(viewer_session, "/events") as viewers_stream,
    ):
        # Both TDs changed on node 1, the lamp's first (node 1 publishes them in order).
        await register(one, td=lamp_td(title="Lamp, moved"), agent_id=lamp.client_id)
        await register(one, "other-agent", lamp_td(OTHER, title="Other, moved"))
        updated = [("thing_updated", {"id": LAMP}), ("thing_updated", {"id": OTHER})]
        got = [(e["event"], e["data"]) for e in await viewers_stream.take(2)]
        assert got == updated
        # The agent's stream on node 2 skipped the lamp: its own Thing's change is next.
        event = await agents_stream.next()
        assert (event["event"], event["data"]) == updated[1]


async def test_an_sse_stream_resumes_on_the_same_node_with_its_event_id(nodes):
    one, two = nodes
    lamp = await register(one)
    await _known(two, LAMP)
    token = two.add_client("vera", "consumer", "viewer")
    path = url(LAMP, "properties", "brightness")
    async with two.session(token) as session:
        async with stream(session, path) as watching:  # open all along: it sees 21 and 22
            async with stream(session, path) as sse:
                await report(lamp, "brightness", 20)
                last = (await sse.next())["id"]
            await report(lamp, "brightness", 21)
            await report(lamp, "brightness", 22)
            assert [e["data"] for e in await watching.take(3)] == [20, 21, 22]
        async with stream(session, path, last_event_id=last) as resumed:
            events = await resumed.take(2)
            assert [e["data"] for e in events] == [21, 22]
            assert all(e["id"].startswith(two.hub.router.epoch + "-") for e in events)
    # Event ids are per node: node 1's log numbers the same values its own way.
    token_one = one.hub.auth.new_token("vera")["token"]
    async with (
        one.session(token_one) as session,
        stream(session, path, last_event_id=last) as elsewhere,
    ):
        assert (await elsewhere.next())["event"] == "resync"


async def test_a_node_nobody_watches_drops_the_others_notifications_then_resyncs(nodes):
    one, two = nodes
    relay = two.hub.nats._other_nodes
    relay.grace = 0.0  # the drop starts at the next check
    lamp = await register(one)
    await _known(two, LAMP)
    token = two.add_client("vera", "consumer", "viewer")
    path = url(LAMP, "properties", "brightness")
    async with two.session(token) as session:
        async with stream(session, path) as sse:
            await report(lamp, "brightness", 30)
            last = (await sse.next())["id"]
        await until(lambda: not relay.watched and relay._twin is None, 5)  # nobody watches
        await report(lamp, "brightness", 31)  # not even received at node 2
        async with stream(session, path, last_event_id=last) as resumed:
            assert relay.watched  # the new stream turned it on before it was answered
            assert (await resumed.next())["event"] == "resync"
            await report(lamp, "brightness", 32)
            assert (await resumed.next())["data"] == 32


async def test_an_action_asked_on_one_node_ends_there_when_answered_on_the_other(nodes):
    one, two = nodes
    lamp = await register(one)
    await lamp.close()  # offline: what node 2 queues waits in the shared store
    await _known(two, LAMP)
    token = two.add_client("olga", "consumer", "operator")

    async def invoke() -> tuple[int, object]:
        # synchronous: node 2 waits for the action's end (up to action_timeout)
        path = url(LAMP, "actions", "fade")
        async with (
            two.session(token) as session,
            session.post(path, json={"level": 30}) as sent,
        ):
            return sent.status, await sent.json()

    invoking = asyncio.create_task(invoke())
    try:
        await until(lambda: one.hub.twin.open_requests_of_agent(AGENT), 10)
        device = await one.device(AGENT)  # back, on node 1: it is given the request
        request = await device.next_request()
        assert (request.name, request.input) == ("fade", {"level": 30})
        await answer(device, request, status="completed", output=30)
        async with asyncio.timeout(10):
            assert await invoking == (200, 30)
    finally:
        invoking.cancel()


async def test_a_websocket_subscription_is_answered_once_the_node_follows_again(nodes, monkeypatch):
    one, two = nodes
    relay = two.hub.nats._other_nodes
    relay.grace = 0.0  # the drop starts at the next check
    lamp = await register(one)
    await _known(two, LAMP)
    token = two.add_client("vera", "consumer", "viewer")
    await until(lambda: not relay.watched and relay._twin is None, 5)  # nobody watches

    # A slow link to nats-server: node 2's subscription to the twin notifications
    # reaches it half a second late (a sleep that simulates the latency).
    nc = relay._nc
    subscribe = nc.subscribe

    async def slow_subscribe(subject, *args, **kwargs):
        await asyncio.sleep(0.5)
        return await subscribe(subject, *args, **kwargs)

    monkeypatch.setattr(nc, "subscribe", slow_subscribe)

    # The subscription is answered only once node 2 follows node 1 again: a value node 1
    # publishes right after the answer reaches it.
    async with await _observe(two, token, LAMP) as ws:
        assert relay._twin is not None
        await report(lamp, "brightness", 40)
        assert await _values(ws, 1) == [(LAMP, 40)]
