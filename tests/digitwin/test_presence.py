"""Agents' presence across the nodes of a cluster, two nodes' twins on one real shared
store (the jetstream backend): an agent connected at one node is online at the other;
a node taken for dead is taken out of its agents' records; a node counted gone while
it was alive (its lease renewals stalled) puts its connected agents back at once, and
their Things are announced online again."""

import asyncio

from digitwin.core import DigiTwin
from tests.waiting import until
from vocabulary.envelope import Message


def node(store, name: str, notes: list[Message]) -> DigiTwin:
    twin = DigiTwin(store, notify=notes.append)
    twin.agent_presence.node = name
    twin.agent_presence.node_alive = lambda other: True  # the leases' say, here: alive
    return twin


async def test_a_node_counted_gone_while_alive_puts_its_agents_back(jetstream_store_factory, lamp):
    one_notes: list[Message] = []
    one = node(jetstream_store_factory(), "n1", one_notes)
    two = node(jetstream_store_factory(), "n2", [])
    one.follow_other_nodes(asyncio.get_running_loop())
    one.update_thing(lamp, "lamp-agent")
    await until(lambda: two.thing(lamp["id"]) is not None, timeout=5)
    assert one.set_presence("lamp-agent", True) == [lamp["id"]]
    await until(lambda: two.presence(lamp["id"])["online"], timeout=5)

    one_notes.clear()
    assert two.node_gone("n1") == ["lamp-agent"]  # n2 took n1 for dead
    # n1 still has the connection: it puts itself back, and says so.
    await until(lambda: one_notes, timeout=5)
    announced = [(m.operation, m.thing_id, m.value["online"]) for m in one_notes]
    assert announced == [("updatepresence", lamp["id"], True)]
    await until(lambda: two.presence(lamp["id"])["online"], timeout=5)

    # An agent gone from n1 is not put back when another node changes its record.
    assert one.set_presence("lamp-agent", False) == [lamp["id"]]
    await until(lambda: not two.presence(lamp["id"])["online"], timeout=5)
    assert two.set_presence("lamp-agent", True) == [lamp["id"]]  # at n2 now
    assert two.set_presence("lamp-agent", False) == [lamp["id"]]
    # The barrier: another agent still at n1, taken out by n2 after those changes; the
    # store's changes reach n1 in order, so when n1 has put it back, it has seen them.
    other = {**lamp, "id": "urn:dev:presence:other-lamp"}
    one.update_thing(other, "other-agent")
    one.set_presence("other-agent", True)
    await until(lambda: two.presence(other["id"])["online"], timeout=5)
    one_notes.clear()
    assert two.node_gone("n1") == ["other-agent"]
    await until(lambda: one_notes, timeout=5)
    announced = [(m.thing_id, m.value["online"]) for m in one_notes]
    assert announced == [(other["id"], True)]  # and nothing of lamp-agent
    assert not one.presence(lamp["id"])["online"]
