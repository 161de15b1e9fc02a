"""Two nodes' twins on one shared store (the jetstream backend): a TD registered,
changed or removed on one node, and the values one node wrote, are what the other node
reads, even where it held a copy (issue 22: reads served locally from a replica)."""

import asyncio
import copy

from digitwin.core import DigiTwin
from digitwin.twins import Twin, TwinCache
from tests.waiting import until


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
