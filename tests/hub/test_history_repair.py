"""The hub's repairs of a killed node's history rollups (cluster mode), on a real
JetStream store: once the minutes are settled, the repair runs and queries by minute
count the dead writer's values again."""

from __future__ import annotations

from digitwin.core import DigiTwin, TwinConfig
from digitwin.history import HistoryConfig
from hub.history_repair import HistoryRepairs
from tests.support.tds import thing_td
from tests.waiting import until
from vocabulary import clock

METER = "urn:dev:ops:repaired-meter"


def twin_on(store, now: list[float]) -> DigiTwin:
    twin = DigiTwin(store, TwinConfig(history=HistoryConfig()))
    twin.history.now = lambda: now[0]  # the hub's clock, simulated: minutes go by at once
    if twin.thing(METER) is None:
        properties = {"level": {"type": "number", "forms": [{"href": "https://m.local/l"}]}}
        twin.update_thing(thing_td(METER, "Meter", properties=properties), "agent-1")
    return twin


def counts_by_minute(twin: DigiTwin) -> dict[str, int]:
    page = twin.query_history(METER, "property", "level", {"step": "1m", "order": "oldest"})
    return {bucket["time"]: bucket["count"] for bucket in page["items"]}


async def test_a_repair_waits_until_settled_then_counts_the_dead_writers_values(
    jetstream_store_factory,
):
    # Near the real clock: the repair finds the series by the server's storage times.
    base = (int(clock.now()) // 60 - 1) * 60
    now = [float(base)]
    dead, live = twin_on(jetstream_store_factory(), now), twin_on(jetstream_store_factory(), now)
    for second in range(90):  # a value a second, a flush a second, then killed
        now[0] = base + second + 0.5
        dead.report_property(METER, "level", second, clock.rfc3339(base + second))
        dead.flush()
    last_alive = now[0]
    del dead  # no close(): the minute it was filling is never published
    now[0] = live.history.repair_settled_at(last_alive)  # settled: the repair may run
    assert counts_by_minute(live) == {clock.rfc3339(base): 60}  # the second minute lost

    repairs = HistoryRepairs(live.history)
    repairs.after_death("node-2", last_alive)
    want = {clock.rfc3339(base): 60, clock.rfc3339(base + 60): 30}
    await until(lambda: counts_by_minute(live) == want, 10)
    await until(lambda: not repairs._tasks, 10)  # it ended (logged)

    # A repair still waiting for its minutes is cancelled at the hub's stop.
    repairs.after_death("node-3", now[0])
    assert len(repairs._tasks) == 1
    await repairs.stop()
    await until(lambda: not repairs._tasks, 5)  # its done callback ran
