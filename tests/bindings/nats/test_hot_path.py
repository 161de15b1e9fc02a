"""What the fast path must keep under load (issue 21): the order of one Thing's values,
and the refusal of reports an agent may not make, in a burst sent without waiting."""

from __future__ import annotations

import orjson

from bindings.nats import subjects
from tests.waiting import until

from .conftest import LAMP, td

OTHER = "urn:dev:ops:lamp-2"
BURST = 2000


async def test_a_burst_keeps_its_order_and_foreign_reports_stay_refused(nats_hub):
    owner = await nats_hub.agent("burst-agent")
    await owner.update_thing(td(LAMP))
    other = await nats_hub.agent("other-agent")
    await other.update_thing(td(OTHER))
    consumer = await nats_hub.consumer("burst-viewer")
    mine: list[int] = []
    theirs: list[int] = []
    await consumer.observe_property(LAMP, "brightness", callback=lambda n: mine.append(n["value"]))
    await consumer.observe_property(
        OTHER, "brightness", callback=lambda n: theirs.append(n["value"])
    )
    refusals: list[dict] = []

    async def keep(msg) -> None:
        refusals.append(orjson.loads(msg.data))

    await owner.nc.subscribe(subjects.agent("burst-agent", subjects.REQ), cb=keep)
    await consumer.nc.flush()
    await owner.nc.flush()

    # Every tenth message names the other agent's Thing on the owner's own subject:
    # the hub, not the server, must refuse those, however fast they come.
    foreign = subjects.agent("burst-agent", subjects.PROP, OTHER, "brightness")
    expected = []
    for i in range(BURST):
        if i % 10 == 9:
            await owner.nc.publish(foreign, orjson.dumps({"value": i % 100}))
        else:
            await owner.report_property(LAMP, "brightness", i % 100)
            expected.append(i % 100)
    await owner.nc.flush()

    await until(lambda: len(mine) == len(expected), timeout=30)
    await until(lambda: len(refusals) == BURST // 10, timeout=30)
    assert mine == expected  # every value, in the order sent
    assert all(r["error"]["status"] == 403 for r in refusals)
    # The barrier: a value of the other Thing by its own agent comes after any stray one.
    await other.report_property(OTHER, "brightness", 7)
    await until(lambda: theirs, timeout=10)
    assert theirs == [7]


async def test_the_relay_keeps_up_with_many_things_in_turn(nats_hub):
    """Values of several Things interleaved: each Thing's arrive in its own order."""
    agent = await nats_hub.agent("many-agent")
    things = [f"urn:dev:ops:many-{i}" for i in range(5)]
    for thing in things:
        await agent.update_thing(td(thing))
    consumer = await nats_hub.consumer("many-viewer")
    seen: dict[str, list[int]] = {thing: [] for thing in things}
    await consumer.observe(
        None, lambda n: seen[n["thingID"]].append(n["value"]), kind="prop", name=None
    )
    await consumer.nc.flush()
    for i in range(300):
        for thing in things:
            await agent.report_property(thing, "brightness", i % 101)
    await agent.nc.flush()
    await until(lambda: all(len(v) == 300 for v in seen.values()), timeout=30)
    for values in seen.values():
        assert values == [i % 101 for i in range(300)]
