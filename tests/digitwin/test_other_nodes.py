"""Two nodes' twins on one shared store (the jetstream backend): a TD registered,
changed or removed on one node, and the values one node wrote, are what the other node
reads, even where it held a copy (issue 22: reads served locally from a replica)."""

import asyncio
import copy

from digitwin.core import DigiTwin
from digitwin.requests import RequestQueue
from digitwin.twins import Twin, TwinCache
from tests.waiting import until
from vocabulary.envelope import CANCELLED, COMPLETED
from vocabulary.problems import Conflict


async def test_tds_and_values_written_on_one_node_are_read_on_the_other(
    jetstream_store_factory, lamp
):
    one, two = DigiTwin(jetstream_store_factory()), DigiTwin(jetstream_store_factory())
    two.follow_other_nodes(asyncio.get_running_loop())
    thing = lamp["id"]

    one.update_thing(lamp, "lamp-agent")
    await until(lambda: two.thing(thing) is not None, timeout=5)
    assert two.twin_td(thing)["title"] == lamp["title"]  # now a copy on node two
    assert "value" not in two.read_property(thing, "status")

    changed = copy.deepcopy(lamp)
    changed["title"] = "Lamp, renamed"
    one.update_thing(changed, "lamp-agent")
    await until(lambda: two.twin_td(thing)["title"] == "Lamp, renamed", timeout=1)

    one.report_property(thing, "status", "on")
    one.flush()  # the write-behind of values, as the hub's timer does it
    await until(lambda: two.read_property(thing, "status").get("value") == "on", timeout=1)

    one.delete_thing(thing, "lamp-agent")
    await until(lambda: two.twin_td(thing) is None, timeout=1)
    assert two.thing(thing) is None


def test_the_write_behind_of_more_twins_than_one_jetstream_batch_holds(
    jetstream_store_factory,
):
    """A JetStream batch holds at most 1,000 keys; the flush writes in batches."""
    values = jetstream_store_factory().bucket("twins")
    cache = TwinCache(
        values, lambda thing_id, raw: Twin(thing_id, "agent", {}, {}, {}, {}), max_active=5000
    )
    for i in range(2 * values.max_batch + 1):
        twin = cache.get(f"urn:dev:t{i}")
        twin.properties["level"] = {"value": i, "timestamp": "2026-12-06T00:00:00Z"}
        cache.mark_dirty(twin)
    assert cache.flush() == 2 * values.max_batch + 1
    assert values.count() == 2 * values.max_batch + 1
    assert Twin.parse_values(values.get("urn:dev:t7"))[0]["level"]["value"] == 7


async def test_two_nodes_queueing_for_one_thing_keep_one_order_and_one_outcome(
    jetstream_store_factory,
):
    """Requests queued on two nodes at once get distinct arrival numbers (the shared
    counter is taken by compare-and-set), and of two nodes moving one record to
    different ends, one wins and the other is refused as it would be on one node."""
    one = RequestQueue(jetstream_store_factory().bucket("requests"))
    two = RequestQueue(jetstream_store_factory().bucket("requests"))

    async def queue(node, count):
        for i in range(count):
            await asyncio.to_thread(node.add, "invokeaction", "urn:dev:x", "go", "vera", i)

    await asyncio.gather(queue(one, 15), queue(two, 15))
    await until(lambda: len(one.open_for_thing("urn:dev:x")) == 30, timeout=5)
    seqs = [record.seq for record in one.open_for_thing("urn:dev:x")]
    assert seqs == sorted(seqs) and len(set(seqs)) == 30

    record = one.open_for_thing("urn:dev:x")[0]
    outcomes = await asyncio.gather(
        asyncio.to_thread(one.update, record, COMPLETED),
        asyncio.to_thread(two.update, record, CANCELLED),
        return_exceptions=True,
    )
    refused = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    done = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert len(refused) == 1 and len(done) == 1
    await until(lambda: two.get(record.id).status == done[0].status, timeout=5)
