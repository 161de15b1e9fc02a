"""The node leases on a real JetStream store: a lease left by a run that did not stop
cleanly tells when that run was last alive, and one node of those alive is the first."""

from __future__ import annotations

import asyncio

from hub.node_leases import NodeLeases
from tests.waiting import until
from vocabulary import clock


def leases_of(store, node: str, gone: list) -> NodeLeases:
    return NodeLeases(store.bucket("nodes"), node, dict, lambda n, seen: gone.append((n, seen)))


async def test_a_lease_left_over_by_a_killed_run_and_the_first_node_alive(
    jetstream_store_factory,
):
    loop = asyncio.get_running_loop()
    gone: list = []
    b = leases_of(jetstream_store_factory(), "node-b", gone)
    assert b.left_over() is None  # never ran
    before = clock.now()
    b.start(loop)
    a = leases_of(jetstream_store_factory(), "node-a", gone)
    a.start(loop)
    try:
        await until(lambda: b.alive("node-a"), 5)
        assert a.first_alive() and not b.first_alive()
        # node-b killed: its task ends, its lease stays; its next run finds it there.
        b._task.cancel()
        restarted = leases_of(jetstream_store_factory(), "node-b", gone)
        last = restarted.left_over()
        assert last is not None and before - 1 <= last <= clock.now() + 1
        # A clean stop removes the lease: nothing left over.
        restarted.start(loop)
        await restarted.stop()
        assert leases_of(jetstream_store_factory(), "node-b", gone).left_over() is None
        await until(lambda: ("node-b", None) in gone, 5)  # node-a saw it stop
    finally:
        await a.stop()
        await b.stop()
