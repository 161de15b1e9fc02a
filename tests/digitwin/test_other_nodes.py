"""Two nodes' twins on one shared store (the jetstream backend): a TD registered,
changed or removed on one node, and the values one node wrote, are what the other node
reads, even where it held a copy (issue 22: reads served locally from a replica), and
the writes one node queued or ended are in the other's state document."""

import asyncio
import copy

from digitwin.core import DigiTwin
from digitwin.requests import RequestQueue
from digitwin.twins import Twin, TwinCache
from tests.waiting import until
from vocabulary.envelope import CANCELLED, COMPLETED, FAILED
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


async def test_the_state_at_a_node_follows_writes_queued_and_ended_at_another(
    jetstream_store_factory, lamp
):
    """An active twin's desired and declined writes follow the write records another
    node queues and ends (docs/digitwin.md, the state document)."""
    one, two = DigiTwin(jetstream_store_factory()), DigiTwin(jetstream_store_factory())
    two.follow_other_nodes(asyncio.get_running_loop())
    thing = lamp["id"]
    one.update_thing(lamp, "lamp-agent")
    await until(lambda: two.thing(thing) is not None, timeout=5)

    def status_at_two() -> dict:
        return two.read_state(thing)["properties"]["status"]

    assert status_at_two() == {}  # active on node two, nothing desired or declined
    refused = one.request("writeproperty", thing, "status", "dim", "mia")
    await until(lambda: status_at_two().get("desired", {}).get("id") == refused.id, timeout=5)
    one.update_request(refused, FAILED, error={"status": 422, "title": "Unprocessable"})
    await until(lambda: "declined" in status_at_two(), timeout=5)
    assert "desired" not in status_at_two() and status_at_two()["declined"]["id"] == refused.id
    assert two.read_state(thing)["delta"] == {}

    accepted = one.request("writeproperty", thing, "status", "on", "mia")
    one.update_request(accepted, COMPLETED)  # accepted: nothing is declined any more
    await until(lambda: status_at_two() == {}, timeout=5)


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


def test_a_node_queueing_after_another_reads_the_others_request_at_once(
    jetstream_store_factory,
):
    """A node that queues a request reads its Thing's open requests right away to
    deliver them in order. When another node queued one just before, the later node
    must see it then, even though its replica is behind (here: still applying a large
    batch that a third node wrote first): the arrival number it learned from the server
    comes with the request that number follows."""
    one, two, three = (RequestQueue(jetstream_store_factory().bucket("requests")) for _ in range(3))
    filler = three._bucket
    for round_ in range(5):
        thing = f"urn:dev:x{round_}"
        filler.batch(set={f"f\x00{round_}\x00{i}": b"." * 100 for i in range(1000)})
        first = two.add("invokeaction", thing, "go", "vera", "first")
        second = one.add("invokeaction", thing, "go", "vera", "second")
        assert [r.id for r in one.open_for_thing(thing)] == [first.id, second.id], round_


async def test_a_group_of_requests_larger_than_one_jetstream_batch_while_another_node_queues(
    jetstream_store_factory,
):
    """add_many writes a group's records in atomic batches within JetStream's limit,
    each taking its arrival numbers from the shared counter by compare-and-set: with
    another node queueing for the same Things meanwhile, every record is stored once,
    with its own number, in one order per Thing."""
    one = RequestQueue(jetstream_store_factory().bucket("requests"))
    two = RequestQueue(jetstream_store_factory().bucket("requests"))
    things = [f"urn:dev:g{i:03d}" for i in range(300)]
    per_batch = (one._bucket.max_batch - 1) // 4
    assert len(things) * 2 > 2 * per_batch  # three batches at least

    async def queue_singly(count):
        for i in range(count):
            await asyncio.to_thread(two.add, "invokeaction", things[i], "go", "vera", i)

    many, _ = await asyncio.gather(
        asyncio.to_thread(one.add_many, "invokeaction", things * 2, "go", "gus", 1),
        queue_singly(20),
    )
    assert len(many) == 600 and len({record.seq for record in many}) == 600
    assert [record.seq for record in many] == sorted(record.seq for record in many)
    await until(lambda: sum(two.count_open(t) for t in things) == 620, timeout=10)
    for thing in things[:20]:
        seqs = [record.seq for record in two.open_for_thing(thing)]
        assert len(seqs) == 3 and seqs == sorted(seqs) and len(set(seqs)) == 3
