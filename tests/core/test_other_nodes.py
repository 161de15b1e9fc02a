"""Requests across nodes (issue 22, cluster mode): routers on JetStream stores that share
one server, as hub nodes do. A request queued at one node reaches its agent at the node
it is connected to, once (claimed in the store) and in order per Thing, and the node
that asked hears how it ends."""

import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from tests.support.messages import answer, notification, request
from tests.support.tds import LAMP
from tests.waiting import until
from vocabulary.problems import NotFound

from .conftest import CoreHub, drain, receive


@pytest.fixture
async def nodes(tmp_path, jetstream_store_factory):
    """Three nodes sharing the store, each following the others (as the hub's runtime
    does); the lamp's TD registered at node 0 and known at all of them."""
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        opened = []
        for i in range(3):
            hub = CoreHub(tmp_path / f"n{i}", open_store=lambda _path: jetstream_store_factory())
            await hub.open()
            stack.push_async_callback(hub.close)
            hub.twin.follow_other_nodes(loop)
            hub.router.follow_other_nodes(loop)
            opened.append(hub)
        agent = opened[0].connect("lamp-agent", "agent")
        opened[0].register(agent)
        opened[0].router.disconnect(agent)
        for hub in opened:
            await until(lambda hub=hub: hub.twin.owner_of(LAMP) == "lamp-agent", timeout=5)
        yield opened


def invoke(node, consumer, name="toggle", **fields):
    accepted = node.router.handle(consumer, request("invokeaction", LAMP, name, **fields))
    assert accepted.error is None, accepted.error
    return accepted


def requests_in(messages):
    return [m for m in messages if m.operation == "invokeaction"]


async def test_a_request_at_one_node_reaches_the_agent_at_another_and_back(nodes):
    one, two = nodes[0], nodes[1]
    agent = one.connect("lamp-agent", "agent")
    operator = two.connect("otto", "operator")

    accepted = invoke(two, operator, "fade", input={"level": 30}, correlationID="mine")
    assert accepted.status == "pending"  # no agent at node two
    waiter = two.router.wait_for(accepted.action_id)
    delivered = await receive(agent, timeout=5)
    assert (delivered.name, delivered.input) == ("fade", {"level": 30})
    assert delivered.action_id == accepted.action_id and delivered.sender_id == "otto"

    told = await receive(operator, timeout=5)
    assert (told.status, told.correlation_id) == ("delivered", "mine")
    one.router.handle(agent, answer(delivered, status="running"))
    told = await receive(operator, timeout=5)
    assert told.status == "running"
    one.router.handle(agent, answer(delivered, output=30))
    status = await asyncio.wait_for(waiter, 5)
    assert (status["status"], status["output"]) == ("completed", 30)
    told = await receive(operator, timeout=5)
    assert (told.status, told.output, told.correlation_id) == ("completed", 30, "mine")

    # Barrier: the next request is the next thing each of them gets; nothing was told
    # or delivered twice in between.
    barrier = invoke(two, operator)
    assert [m.action_id for m in requests_in([await receive(agent, timeout=5)])] == [
        barrier.action_id
    ]
    assert (await receive(operator, timeout=5)).action_id == barrier.action_id
    assert await drain(operator) == []


async def test_requests_from_two_nodes_reach_the_agent_in_arrival_order(nodes):
    one, two = nodes[0], nodes[1]
    agent = one.connect("lamp-agent", "agent")
    otto, olga = two.connect("otto", "operator"), one.connect("olga", "operator")

    first, second = invoke(two, otto), invoke(two, otto)
    # A request queued here while an older one from node two is in this node's
    # replica, not delivered yet: the older one goes first. (Waits without letting the
    # event loop run, which would deliver the older one first anyway.)
    third = invoke(two, otto)
    deadline = time.monotonic() + 5
    while third.action_id not in [r.id for r in one.twin.requests.open_for_thing(LAMP)]:
        assert time.monotonic() < deadline, "node one's replica never got the request"
        time.sleep(0.001)  # polling the replica, which another thread fills
    fourth = invoke(one, olga)

    expected = [r.action_id for r in (first, second, third, fourth)]
    got = [await receive(agent, timeout=5) for _ in expected]
    assert [m.action_id for m in got] == expected
    for delivered in got:
        one.router.handle(agent, answer(delivered))
    await until(lambda: all(two.twin.get_request(i).final for i in expected), timeout=5)
    assert await drain(agent) == []


@pytest.mark.parametrize("wait_for_the_replica", [True, False])
async def test_a_request_for_an_offline_agent_is_delivered_once_where_it_connects(
    nodes, wait_for_the_replica
):
    one, two = nodes[0], nodes[1]
    operator = two.connect("otto", "operator")
    accepted = invoke(two, operator)
    assert accepted.status == "pending"
    if wait_for_the_replica:  # node one knows of it before the agent comes
        await until(lambda: one.twin.requests.get(accepted.action_id) is not None, timeout=5)
    agent = one.connect("lamp-agent", "agent")

    delivered = await receive(agent, timeout=5)
    assert delivered.action_id == accepted.action_id
    waiter = two.router.wait_for(accepted.action_id)
    one.router.handle(agent, answer(delivered))
    assert (await asyncio.wait_for(waiter, 5))["status"] == "completed"
    barrier = invoke(two, operator)
    assert (await receive(agent, timeout=5)).action_id == barrier.action_id


async def test_an_agent_connected_at_two_nodes_gets_each_request_once(nodes):
    """The agent reconnected at node two while node one still holds its old connection:
    both nodes try to deliver what node three queues; one claims each request."""
    one, two, three = nodes
    at_one, at_two = one.connect("lamp-agent", "agent"), two.connect("lamp-agent", "agent")
    operator = three.connect("otto", "operator")
    rounds = 10
    queued = [invoke(three, operator).action_id for _ in range(rounds)]

    got = {one: [], two: []}

    async def answered_all():
        for node, connection in ((one, at_one), (two, at_two)):
            for delivered in await drain(connection):
                got[node].append(delivered.action_id)
                node.router.handle(connection, answer(delivered))
        return sum(len(ids) for ids in got.values()) >= rounds

    await until(answered_all, timeout=10)
    await until(lambda: all(three.twin.get_request(i).final for i in queued), timeout=5)
    # Ended, so no node can claim them any more: everything ever sent is in the outboxes.
    for node, connection in ((one, at_one), (two, at_two)):
        got[node] += [m.action_id for m in await drain(connection)]
    assert sorted(got[one] + got[two]) == sorted(queued)  # each one once
    for ids in got.values():  # and in arrival order at each connection
        assert ids == [i for i in queued if i in ids]


async def test_a_cancel_at_one_node_reaches_the_agent_at_another(nodes):
    one, two = nodes[0], nodes[1]
    agent = one.connect("lamp-agent", "agent")
    operator = two.connect("otto", "operator")
    accepted = invoke(two, operator)
    delivered = await receive(agent, timeout=5)
    await until(lambda: two.twin.get_request(accepted.action_id).status == "delivered", 5)
    waiter = two.router.wait_for(accepted.action_id)

    cancelled = two.router.handle(
        operator, request("cancelaction", LAMP, actionID=accepted.action_id)
    )
    assert cancelled.output["status"] == "cancelled"
    assert (await asyncio.wait_for(waiter, 5))["status"] == "cancelled"
    told = await receive(agent, timeout=5)
    assert (told.operation, told.action_id) == ("cancelaction", delivered.action_id)
    refused = one.router.handle(agent, answer(delivered))  # too late
    assert refused.error["status"] == 409
    barrier = invoke(two, operator)
    assert (await receive(agent, timeout=5)).action_id == barrier.action_id


async def test_the_asker_at_another_node_is_told_each_state_once(nodes):
    """Node two reads the record when the store reports a change, so two changes may
    read as one state (and the same change may also come as a notification): a state
    already told is not told again. Here the agent repeats its progress."""
    one, two = nodes[0], nodes[1]
    agent = one.connect("lamp-agent", "agent")
    operator = two.connect("otto", "operator")
    accepted = invoke(two, operator)
    delivered = await receive(agent, timeout=5)
    assert (await receive(operator, timeout=5)).status == "delivered"
    one.router.handle(agent, answer(delivered, status="running", output=50))
    assert (await receive(operator, timeout=5)).output == 50
    one.router.handle(agent, answer(delivered, status="running", output=50))
    one.router.handle(agent, answer(delivered, status="running", output=80))
    assert (await receive(operator, timeout=5)).output == 80
    waiter = two.router.wait_for(accepted.action_id)
    one.router.handle(agent, answer(delivered, output=100))
    assert (await asyncio.wait_for(waiter, 5))["output"] == 100
    assert [(m.status, m.output) for m in await drain(operator)] == [("completed", 100)]


async def test_a_group_request_at_one_node_follows_older_ones_to_the_agent_at_another(nodes):
    """A group's requests are queued in a batch; with other nodes, each member's pending
    requests still reach its agent in arrival order, once, where the agent is
    connected: the group's after the older one queued at the third node."""
    one, two, three = nodes
    agent = one.connect("lamp-agent", "agent")
    mia, olga = two.connect("mia", "manager"), three.connect("olga", "operator")
    manager = mia.client
    two.router.groups.define(manager, "lamps", {"members": [LAMP]})

    older = invoke(three, olga)
    group = two.router.groups.request(manager, "lamps", "invokeaction", "toggle")
    assert list(group["members"]) == [LAMP] and group["refused"] == {}
    got = [await receive(agent, timeout=5) for _ in range(2)]
    assert [m.action_id for m in got] == [
        older.action_id,
        two.router.groups.status(manager, group["id"])["members"][LAMP]["id"],
    ]
    for delivered in got:
        one.router.handle(agent, answer(delivered))
    await until(
        lambda: two.router.groups.status(manager, group["id"])["status"] == "completed",
        timeout=5,
    )
    assert await drain(agent) == []


def members_at(node, name):
    """The members a node's replica of the store lists for the group (None: no group)."""
    try:
        return node.router.groups.groups.get(name).members
    except NotFound:
        return None


async def test_a_group_redefined_at_one_node_changes_who_is_observed_at_another(nodes):
    """An observer of a group at node two gets the notifications of the members node one
    defines once node two has the new definition, not only after the next TD change
    there."""
    one, two = nodes[0], nodes[1]
    agent = two.connect("lamp-agent", "agent")
    mia, vera = one.connect("mia", "manager"), two.connect("vera", "viewer")
    one.router.groups.define(mia.client, "lamps", {"members": ["urn:dev:not-this-lamp"]})
    await until(lambda: members_at(two, "lamps") == ["urn:dev:not-this-lamp"], timeout=5)
    observing = two.router.handle(vera, request("observeallproperties", "urn:wothub:group:lamps"))
    assert observing.error is None, observing.error

    def report(value):
        message = notification("observeproperty", LAMP, "brightness", value=value)
        assert two.router.handle(agent, message) is None

    report(1)
    assert await drain(vera) == []  # not a member
    one.router.groups.define(mia.client, "lamps", {"members": [LAMP]})
    # Node two learns of it through its store's watch, then its router: reported until
    # a value reaches the observer (without following, none ever does).
    values, got = iter(range(2, 10_000)), []

    async def observed() -> bool:
        report(next(values))
        got.extend(await drain(vera))
        return bool(got)

    await until(observed, timeout=5)
    assert {(m.thing_id, m.name) for m in got} == {(LAMP, "brightness")}
