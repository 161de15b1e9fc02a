"""Value history in the twin core, on both its stores: the real LevelDB store and a
JetStream stream on the session's nats-server (cluster mode): what is kept, in what
order, paged and downsampled, retention, restart, and bad parameters."""

import asyncio
import random
from typing import Any

import pytest

from bucketstore import open_store
from digitwin import history_jetstream
from digitwin.core import DigiTwin, TwinConfig
from digitwin.history import MAX_TIME, HistoryConfig, Retention, ThingHistory
from tests.support.tds import thing_td
from tests.waiting import until
from vocabulary import clock
from vocabulary.problems import BadRequest, NotFound

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
METER = "urn:dev:ops:meter-1"
OTHER = "urn:dev:ops:meter-2"


def meter_td(thing_id: str = METER) -> dict[str, Any]:
    """A number, a mode (text) and an event with and one without data."""
    return thing_td(
        thing_id,
        "Meter",
        properties={
            "level": {"type": "number", "forms": [{"href": "https://m.local/l"}]},
            "mode": {"type": "string", "forms": [{"href": "https://m.local/m"}]},
            "on": {"type": "boolean", "forms": [{"href": "https://m.local/o"}]},
        },
        events={
            "alarm": {"data": {"type": "integer"}, "forms": [{"href": "https://m.local/a"}]},
            "tick": {"forms": [{"href": "https://m.local/t"}]},
        },
    )


def at(seconds: float) -> str:
    return clock.rfc3339(T0 + seconds)


def make_twin(store, history: HistoryConfig | None = None) -> DigiTwin:
    twin = DigiTwin(store, TwinConfig(history=history or HistoryConfig()))
    for thing_id in (METER, OTHER):
        if twin.thing(thing_id) is None:
            twin.update_thing(meter_td(thing_id), "agent-1")
    return twin


@pytest.fixture(params=["leveldb", "jetstream"])
def store(request, store_path):
    """Each test on the LevelDB store and on a JetStream store (its own prefix, so its
    own history stream)."""
    if request.param == "jetstream":
        yield request.getfixturevalue("jetstream_store_factory")()
        return
    with open_store(store_path) as opened:
        yield opened


@pytest.fixture
def twin(store) -> DigiTwin:
    return make_twin(store)


def everything(twin: DigiTwin, name: str, kind: str = "property", **params: Any) -> list:
    """Every page of a query, followed by its cursors, concatenated."""
    items, pages = [], 0
    while True:
        page = twin.query_history(METER, kind, name, dict(params))
        items += page["items"]
        pages += 1
        if "cursor" not in page:
            return items
        assert len(page["items"]) == params.get("limit", 100)
        params["cursor"] = page["cursor"]
        assert pages < 10_000


def test_values_come_back_in_order_across_many_pages(twin):
    for i in range(2345):
        twin.report_property(METER, "level", i, at(i * 0.5))
    newest = everything(twin, "level", limit=100)
    assert [item["value"] for item in newest] == list(range(2344, -1, -1))
    assert newest[0]["time"] == at(2344 * 0.5)
    oldest = everything(twin, "level", limit=1000, order="oldest")
    assert [item["value"] for item in oldest] == list(range(2345))
    # The other Thing's and the other property's series are apart.
    twin.report_property(OTHER, "level", -1, at(0))
    twin.report_property(METER, "mode", "eco", at(0))
    assert everything(twin, "level", order="oldest", limit=1000) == oldest


def test_values_of_one_millisecond_keep_their_order(twin):
    for i in range(5):
        twin.report_property(METER, "level", i, at(1))
    twin.flush()  # some written, some still waiting: the order holds across both
    for i in range(5, 10):
        twin.report_property(METER, "level", i, at(1))
    page = twin.query_history(METER, "property", "level", {"order": "oldest"})
    assert [item["value"] for item in page["items"]] == list(range(10))


def test_from_and_to_are_included(twin):
    for i in range(100):
        twin.report_property(METER, "level", i, at(i))
    params = {"from": at(10), "to": at(20), "order": "oldest"}
    page = twin.query_history(METER, "property", "level", params)
    assert [item["value"] for item in page["items"]] == list(range(10, 21))
    # Any offset is taken, and the times come back in UTC.
    params = {"from": clock.rfc3339(T0 + 10).replace("Z", "+00:00"), "to": at(11)}
    page = twin.query_history(METER, "property", "level", params)
    assert [item["value"] for item in page["items"]] == [11, 10]
    assert page["items"][0]["time"].endswith("Z")


def plain_start(millis: int, step_ms: int) -> int:
    """Where the bucket of a time starts: the last k * step at or before it, moved down
    to its whole minute when the step is 2 minutes or more (docs/history.md)."""

    def begins(k: int) -> int:
        edge = k * step_ms
        return edge - edge % 60_000 if step_ms >= 120_000 else edge

    k = millis // step_ms
    while begins(k + 1) <= millis:
        k += 1
    return begins(k)


def plain_buckets(points: list[tuple[float, Any]], step: float) -> list[dict[str, Any]]:
    """The expected buckets, the obvious way: every point held, grouped, then computed."""
    step_ms = round(step * 1000)
    groups: dict[int, list[tuple[int, Any]]] = {}
    for seconds, value in points:
        millis = round((T0 + seconds) * 1000)
        groups.setdefault(plain_start(millis, step_ms), []).append((millis, value))
    out = []
    for start in sorted(groups):
        values = [v for _, v in groups[start]]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        bucket = {"time": clock.rfc3339(start / 1000), "count": len(values)}
        if numbers:
            bucket |= {"min": min(numbers), "max": max(numbers)}
            bucket["mean"] = sum(numbers) / len(numbers)
        bucket["last"] = groups[start][-1][1]
        out.append(bucket)
    return out


def assert_same_buckets(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for bucket, want in zip(got, expected, strict=True):
        assert {k: v for k, v in bucket.items() if k != "mean"} == {
            k: v for k, v in want.items() if k != "mean"
        }
        assert bucket["mean"] == pytest.approx(want["mean"])


def report_random_levels(twin, seed: int, count: int, gaps: tuple[float, ...]) -> list:
    """``count`` reports of METER's level, whole or fractional numbers, ``gaps`` seconds
    apart (at random); their (seconds, value)."""
    rng = random.Random(seed)
    points, seconds = [], 0.0
    for _ in range(count):
        seconds += rng.choice(gaps)
        value = rng.choice((rng.randint(-50, 50), round(rng.uniform(-1e3, 1e3), 3)))
        points.append((round(seconds, 3), value))
        twin.report_property(METER, "level", value, at(round(seconds, 3)))
    return points


def test_downsampling_matches_a_plain_computation(twin):
    points = report_random_levels(twin, 24, 5000, (0.001, 0.2, 1.0, 3.7, 30.0))
    expected = plain_buckets(points, 7.0)
    got = everything(twin, "level", step="7s", order="oldest", limit=1000)
    assert len(got) == len(expected) > 1000  # several pages of buckets
    assert_same_buckets(got, expected)
    # Newest first (each mean summed in the other order: equal up to rounding).
    assert_same_buckets(everything(twin, "level", step="7s", limit=333), expected[::-1])
    # A range cut inside: only the values within it count.
    params = {"from": at(100), "to": at(2000), "step": "1h", "order": "oldest"}
    inside = [(s, v) for s, v in points if 100 <= s <= 2000]
    assert [
        b["count"] for b in twin.query_history(METER, "property", "level", params)["items"]
    ] == [b["count"] for b in plain_buckets(inside, 3600.0)]
    # Steps of whole minutes (on JetStream: from the per-minute rollups), whole and cut.
    assert_same_buckets(
        everything(twin, "level", step="2m", order="oldest", limit=7), plain_buckets(points, 120.0)
    )
    assert_same_buckets(
        everything(twin, "level", step="1m", limit=50), plain_buckets(points, 60.0)[::-1]
    )
    for params in (
        {"from": at(100.5), "to": at(2000.25), "step": "5m", "order": "oldest"},
        {"from": at(100.5), "to": at(2000.25), "step": "5m"},
        {"from": at(130), "to": at(150), "step": "1m"},
    ):
        inside = [
            (s, v)
            for s, v in points
            if 100.5 <= s <= 2000.25 and (params["step"] == "5m" or 130 <= s <= 150)
        ]
        want = plain_buckets(inside, 300.0 if params["step"] == "5m" else 60.0)
        got = twin.query_history(METER, "property", "level", params)["items"]
        assert_same_buckets(got, want if params.get("order") else want[::-1])


def test_steps_of_two_minutes_or_more_have_edges_on_whole_minutes(twin):
    """A step such as 172.8 s: each bucket is whole minutes (on JetStream: from the
    per-minute rollups, and raw values only for the minutes cut by from and to), the same
    buckets as a plain computation over those edges, on both stores."""
    points = report_random_levels(twin, 35, 4000, (0.001, 0.5, 1.0, 4.3, 41.0))
    for step, text in ((172.8, "172800ms"), (150.0, "150s"), (450.0, "450s")):
        expected = plain_buckets(points, step)
        got = everything(twin, "level", step=text, order="oldest", limit=30)
        assert len(got) == len(expected) > 30  # several pages
        assert_same_buckets(got, expected)
        assert_same_buckets(everything(twin, "level", step=text, limit=41), expected[::-1])
        for order in ("oldest", "newest"):  # a range cut inside minutes, at both ends
            params = {"from": at(100.5), "to": at(5000.25), "step": text, "order": order}
            inside = [(s, v) for s, v in points if 100.5 <= s <= 5000.25]
            want = plain_buckets(inside, step)
            got = twin.query_history(METER, "property", "level", params)["items"]
            assert_same_buckets(got, want if order == "oldest" else want[::-1])
    # A bucket's time is its first whole minute: 172.8 s from T0's minute steps on it.
    times = [b["time"] for b in everything(twin, "level", step="172800ms", order="oldest")]
    assert all(time.endswith(":00.000Z") for time in times)


def test_a_minute_split_across_flushes_and_writers(store):
    """The rollup of a minute whose values came in several flushes, and (JetStream) from a
    second writer on the same store (another node, or the hub after a restart), sums
    them all."""
    twin = make_twin(store)
    values = [3, 7.5, 0.25, -2, 10, 1, 4]
    for i, value in enumerate(values[:3]):
        twin.report_property(METER, "level", value, at(120 + i))
    twin.flush()
    twin.report_property(METER, "level", values[3], at(130))
    twin.flush()
    other = make_twin(store) if store.backend == "jetstream" else twin
    other.report_property(METER, "level", values[4], at(140))
    other.report_property(METER, "level", values[5], at(150))
    other.flush()
    twin.report_property(METER, "level", values[6], at(165))  # the next minute
    points = [(120 + i, v) for i, v in enumerate(values[:3])]
    points += [(130, values[3]), (140, values[4]), (150, values[5]), (165, values[6])]
    for twin_ in (twin, other):
        got = everything(twin_, "level", step="1m", order="oldest")
        assert_same_buckets(got, plain_buckets(points, 60.0))


def test_downsampling_values_that_are_not_numbers(twin):
    twin.report_property(METER, "on", True, at(1))
    twin.report_property(METER, "on", False, at(2))
    twin.report_property(METER, "mode", "eco", at(3))
    twin.report_property(METER, "mode", "boost", at(4))
    on = twin.query_history(METER, "property", "on", {"step": "1m"})["items"]
    assert on == [{"time": clock.rfc3339(T0 - T0 % 60), "count": 2, "last": False}]
    mode = twin.query_history(METER, "property", "mode", {"step": "1m"})["items"]
    assert mode == [{"time": clock.rfc3339(T0 - T0 % 60), "count": 2, "last": "boost"}]


def test_events_with_and_without_data(twin):
    twin.report_event(METER, "alarm", 3, at(1))
    twin.report_event(METER, "alarm", 7, at(2))
    twin.report_event(METER, "tick", timestamp=at(3))
    alarms = twin.query_history(METER, "event", "alarm", {"order": "oldest"})["items"]
    assert alarms == [{"time": at(1), "value": 3}, {"time": at(2), "value": 7}]
    assert twin.query_history(METER, "event", "tick", {})["items"] == [
        {"time": at(3), "value": None}
    ]
    # An event's history is not a property's of the same name, nor is "alarm" a property.
    with pytest.raises(NotFound):
        twin.query_history(METER, "property", "alarm", {})


@pytest.mark.parametrize("backend", ["leveldb", "jetstream"])
def test_history_survives_a_restart(backend, store_path, request):
    def open_() -> Any:
        if backend == "jetstream":  # a new store on the same prefix: the hub restarted
            return request.getfixturevalue("jetstream_store_factory")()
        return open_store(store_path)

    with open_() as store:
        twin = make_twin(store)
        for i in range(50):
            twin.report_property(METER, "level", i, at(i))
        twin.set_history_setting(OTHER, ThingHistory(enabled=False))
        twin.close()  # the hub's stop: values written behind are flushed
    with open_() as store:
        twin = make_twin(store)
        page = twin.query_history(METER, "property", "level", {"limit": 1000})
        assert [item["value"] for item in page["items"]] == list(range(49, -1, -1))
        twin.report_property(OTHER, "level", 1, at(1))  # the setting held too
        assert twin.query_history(OTHER, "property", "level", {})["items"] == []


def test_retention_by_age(store):
    """By the values' times. On JetStream the hub-wide max_age is the stream's (by the
    time the server stored a value, see test_the_stream_has_the_hub_wide_limits), so
    this is a Thing's own, stricter one there."""
    now = T0 + 10 * 86400
    if store.backend == "jetstream":
        day = ThingHistory(max_age=86400.0)
        config = HistoryConfig(retention=Retention(max_age=30 * 86400.0), things={METER: day})
    else:
        config = HistoryConfig(retention=Retention(max_age=86400.0))
    twin = make_twin(store, config)
    for day in range(10):
        for hour in range(24):
            twin.report_property(METER, "level", day * 100 + hour, at(day * 86400 + hour * 3600))
    twin.flush()
    assert twin.prune_history(now=now) > 0
    kept = everything(twin, "level", order="oldest", limit=1000)
    assert [item["value"] for item in kept] == list(range(900, 924))
    assert all(item["time"] >= clock.rfc3339(now - 86400) for item in kept)


def test_retention_by_count_with_a_thing_of_its_own(store):
    config = HistoryConfig(
        retention=Retention(max_age=0, max_count=50),
        things={OTHER: ThingHistory(max_count=5)},
    )
    twin = make_twin(store, config)
    for i in range(2500):
        twin.report_property(METER, "level", i, at(i))
        twin.report_property(OTHER, "level", i, at(i))
    twin.report_property(METER, "mode", "eco", at(1))  # a series under its limit
    twin.flush()
    # Bounded steps until done: the first one's budget is twice the values written
    # since the last step (pruning keeps up), the others' as asked; a step ends once
    # over its budget (by a chunk of 1,000 keys at most). On JetStream the server keeps
    # the hub-wide count (the stream's per-subject limit); the steps purge OTHER's.
    visited = twin.prune_history(budget=100, now=T0)
    if store.backend == "leveldb":
        assert visited < 2 * 5001 + 1000
    while step := twin.prune_history(budget=100, now=T0):
        assert step < 100 + 1000
        visited += step
    assert visited >= (5000 if store.backend == "leveldb" else 1)
    level = everything(twin, "level", order="oldest", limit=1000)
    assert [item["value"] for item in level] == list(range(2450, 2500))
    other = twin.query_history(OTHER, "property", "level", {"order": "oldest"})["items"]
    assert [item["value"] for item in other] == list(range(2495, 2500))
    assert [i["value"] for i in twin.query_history(METER, "property", "mode", {})["items"]] == [
        "eco"
    ]
    # The next sweep waits for its interval.
    assert twin.prune_history(now=T0 + 1) == 0


def test_history_off_per_thing_and_per_affordance(store):
    config = HistoryConfig(things={OTHER: ThingHistory(enabled=False)})
    twin = make_twin(store, config)
    twin.set_history_setting(METER, ThingHistory(off_properties=frozenset({"mode"})))
    for thing_id in (METER, OTHER):
        twin.report_property(thing_id, "level", 1, at(1))
        twin.report_property(thing_id, "mode", "eco", at(1))
    assert len(twin.query_history(METER, "property", "level", {})["items"]) == 1
    assert twin.query_history(METER, "property", "mode", {})["items"] == []
    assert twin.query_history(OTHER, "property", "level", {})["items"] == []
    # The administrators' setting wins over the file's; removing it brings the file's back.
    twin.set_history_setting(OTHER, ThingHistory(enabled=True))
    twin.report_property(OTHER, "level", 2, at(2))
    assert len(twin.query_history(OTHER, "property", "level", {})["items"]) == 1
    twin.set_history_setting(OTHER, None)
    twin.report_property(OTHER, "level", 3, at(3))
    assert len(twin.query_history(OTHER, "property", "level", {})["items"]) == 1
    # Hub-wide off, one Thing on.
    hub_off = HistoryConfig(enabled=False, things={METER: ThingHistory(enabled=True)})
    twin = make_twin(store, hub_off)
    twin.report_property(METER, "mode", "boost", at(5))
    twin.report_property(OTHER, "mode", "boost", at(5))
    assert twin.query_history(OTHER, "property", "mode", {})["items"] == []
    # METER's mode is still off by the stored setting; its level is on.
    twin.report_property(METER, "level", 9, at(5))
    assert twin.query_history(METER, "property", "level", {})["items"][0]["value"] == 9


def test_a_removed_thing_takes_its_history_along(store):
    twin = make_twin(store, HistoryConfig(retention=Retention(max_age=0)))  # kept for ever
    for i in range(30):
        twin.report_property(METER, "level", i, at(i))
        twin.report_property(OTHER, "level", i, at(i))
    twin.flush()
    twin.delete_thing(METER, "agent-1")
    twin.prune_history(now=clock.now())
    twin.update_thing(meter_td(), "agent-1")
    assert twin.query_history(METER, "property", "level", {})["items"] == []
    assert len(twin.query_history(OTHER, "property", "level", {})["items"]) == 30


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01"}, "to"),
        ({"from": at(10), "to": at(5)}, "from"),
        ({"limit": 0}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": True}, "limit"),
        ({"order": "up"}, "order"),
        ({"cursor": "x"}, "cursor"),
        ({"step": "5"}, "step"),
        ({"step": "0s"}, "step"),
        ({"step": "1y"}, "step"),
        ({"since": at(1)}, "since"),
    ],
)
def test_bad_parameters_are_named(twin, params, parameter):
    with pytest.raises(BadRequest) as refused:
        twin.query_history(METER, "property", "level", params)
    assert refused.value.extensions["parameter"] == parameter
    assert parameter in refused.value.detail


def test_unknown_things_and_affordances(twin):
    with pytest.raises(NotFound):
        twin.query_history("urn:dev:ops:nothing", "property", "level", {})
    with pytest.raises(NotFound):
        twin.query_history(METER, "property", "nothing", {})
    assert twin.query_history(METER, "event", "alarm", {}) == {"items": []}


async def test_on_jetstream_history_and_settings_reach_the_other_node(jetstream_store_factory):
    """Cluster mode: the same history on the jetstream backend; a value written by one
    node is read by the other, and so is an administrator's setting."""
    config = HistoryConfig(retention=Retention(0, 3))  # the nodes share the stream's limits
    one = make_twin(jetstream_store_factory(), config)
    two = make_twin(jetstream_store_factory(), config)
    two.follow_other_nodes(asyncio.get_running_loop())
    for i in range(5):
        one.report_property(METER, "level", i, at(i))
    one.flush()
    one.prune_history(now=T0)
    params = {"order": "oldest"}

    def levels(twin: DigiTwin) -> list:
        return [
            item["value"]
            for item in twin.query_history(METER, "property", "level", params)["items"]
        ]

    assert levels(one) == [2, 3, 4]
    await until(lambda: levels(two) == [2, 3, 4], timeout=5)
    one.set_history_setting(METER, ThingHistory(enabled=False))
    await until(lambda: not two.history.keeps(METER, "p", "level"), timeout=5)


def test_the_stream_has_the_hub_wide_limits(jetstream_store_factory):
    """On JetStream, the hub-wide retention is the history stream's per-subject limits,
    and its replicas are the store's; nothing of history is in a bucket."""
    store = jetstream_store_factory()
    twin = make_twin(store, HistoryConfig(retention=Retention(max_age=3600.0, max_count=7)))
    twin.report_property(METER, "level", 1, at(1))
    twin.flush()

    async def stream_config() -> Any:
        js = store.connection.jetstream()
        return (await js.stream_info(twin.history.stream)).config

    config = store.call(stream_config, "reading the stream")
    assert config.max_msgs_per_subject == 7 and config.max_age == 3600.0
    assert config.num_replicas == store.replicas and config.allow_direct
    assert "history" not in store.buckets()
    # A hub started with other limits changes the stream's.
    make_twin(store, HistoryConfig(retention=Retention(max_age=0, max_count=0)))
    config = store.call(stream_config, "reading the stream")
    assert config.max_msgs_per_subject == -1 and not config.max_age


def test_a_node_changes_the_streams_limits_only_when_its_own_changed(
    jetstream_store_factory, caplog, tmp_path
):
    """Cluster nodes share one stream: a node sets its limits at its start only when they
    changed since its last start (or it creates the stream). A node restarted with its
    old limits, or a new node with others, keeps the stream's and says so."""
    store = jetstream_store_factory()
    day, hour, week = (
        Retention(max_age=s, max_count=c) for s, c in ((86400, 0), (3600, 9), (604800, 5))
    )

    def start(node: str, retention: Retention) -> Retention:
        """A node starts: the limits its history works with; the stream's must match."""
        noted = tmp_path / f"history-limits-{node}.json"  # in the node's home
        twin = make_twin(store, HistoryConfig(retention=retention, limits_file=noted))
        js_config = store.call(
            lambda: store.connection.jetstream().stream_info(twin.history.stream), "reading"
        ).config
        stream = Retention(js_config.max_age or 0.0, max(0, js_config.max_msgs_per_subject))
        assert twin.history.config.retention == stream
        return stream

    assert start("a", day) == day  # creates the stream
    assert start("b", day) == day
    assert start("a", hour) == hour  # a's file changed: its limits apply
    caplog.clear()
    assert start("b", day) == hour  # b's did not: the stream's stay, with a warning
    assert "the stream's limits stay" in caplog.text
    assert start("c", week) == hour  # a new node does not change them either
    assert start("b", week) == week  # b's file changed now
    assert start("a", hour) == week  # a's did not since its last start


def test_newest_first_over_interleaved_series_and_time_bounds(jetstream_store_factory):
    """Newest first reads windows of the stream backwards: with many series written in
    turn (a sparse subject), across pages, with time bounds found by binary search."""
    twin = make_twin(jetstream_store_factory())
    for i in range(3000):
        twin.report_property(OTHER, "level", i, at(i))
        twin.report_property(OTHER, "mode", str(i), at(i))
        if i % 10 == 0:
            twin.report_property(METER, "level", i, at(i))
    got = everything(twin, "level", limit=37)
    assert [item["value"] for item in got] == list(range(2990, -1, -10))
    params = {"from": at(1005), "to": at(2000), "limit": 1000}
    page = twin.query_history(METER, "property", "level", params)
    assert [item["value"] for item in page["items"]] == list(range(2000, 1005, -10))
    params["order"] = "oldest"
    page = twin.query_history(METER, "property", "level", params)
    assert [item["value"] for item in page["items"]] == list(range(1010, 2001, 10))


def test_many_minutes_in_one_flush(twin):
    """Values of many minutes written at one flush (as the write-behind batch does):
    each minute's rollup is kept, in time order."""
    points = [(i * 7.5, i % 13 - 6) for i in range(2000)]  # over four hours
    for seconds, value in points:
        twin.history.append(METER, "p", "level", value, at(seconds))
    twin.flush()
    got = everything(twin, "level", step="1m", order="oldest", limit=100)
    assert_same_buckets(got, plain_buckets(points, 60.0))
    got = everything(twin, "level", step="10m", limit=7)
    assert_same_buckets(got, plain_buckets(points, 600.0)[::-1])


def test_a_things_stricter_retention_prunes_its_rollups_too(jetstream_store_factory):
    """On JetStream a Thing's own max_count and max_age purge its series' per-minute
    rollups of the minutes before the first value kept, not only the values; the
    queries by minute still match the values kept."""
    store = jetstream_store_factory()
    config = HistoryConfig(
        retention=Retention(max_age=0, max_count=0),
        things={METER: ThingHistory(max_count=300), OTHER: ThingHistory(max_age=600.0)},
    )
    twin = make_twin(store, config)
    points = [(i * 4.0, i % 11) for i in range(900)]  # an hour, 15 values a minute
    for seconds, value in points:
        for thing_id in (METER, OTHER):
            twin.report_property(thing_id, "level", value, at(seconds))
    twin.flush()
    history = twin.history

    def rollup_minutes(thing_id: str) -> list[int]:
        """The minutes of every rollup the series has (read from its first one on)."""
        return [minute for minute, _ in history.rollups(f"{thing_id}\0p\0level\0", 0, MAX_TIME)]

    minutes = sorted({round((T0 + s) * 1000) // 60_000 * 60_000 for s, _ in points})
    assert rollup_minutes(METER) == rollup_minutes(OTHER) == minutes
    assert history.counters.written == 1800
    while twin.prune_history(now=T0 + 3600):
        pass
    assert history.counters.pruned == 600 + 750  # values only, not their rollups
    # METER keeps its 300 newest values (from 2400 s on: minute 40), OTHER its last 600 s.
    first_minute = {METER: T0 + 2400, OTHER: T0 + 3000}
    for thing_id, first in first_minute.items():
        minute = int(first * 1000) - int(first * 1000) % 60_000
        assert rollup_minutes(thing_id)[0] == minute
        kept = [(s, v) for s, v in points if T0 + s >= first]
        page = twin.query_history(thing_id, "property", "level", {"step": "1m", "limit": 100})
        assert_same_buckets(page["items"], plain_buckets(kept, 60.0)[::-1])


def rollups_by_minute(store, twin: DigiTwin, *, late: bool = False) -> dict[int, int]:
    """How many rollup messages the stream holds for each minute of METER's level (on
    its late subject: ``late``)."""
    history = twin.history
    subject = history.rollup_subject(history.subject(f"{METER}\0p\0level\0"))
    subject = history.late_subject(subject) if late else subject

    async def minutes() -> dict[int, int]:
        counts: dict[int, int] = {}
        js = store.connection.jetstream(timeout=store.timeout)
        info = await js.stream_info(history.stream, subjects_filter=subject)
        sub = await js.subscribe(subject, ordered_consumer=True)
        try:
            for _ in range((info.state.subjects or {}).get(subject, 0)):
                minute = int((await sub.next_msg(timeout=5)).data[:13])
                counts[minute] = counts.get(minute, 0) + 1
        finally:
            await sub.unsubscribe()
        return counts

    return store.call(minutes, "reading rollups")


def minute_of(seconds: float) -> int:
    millis = round((T0 + seconds) * 1000)
    return millis - millis % 60_000


def test_a_series_flushed_every_second_has_one_rollup_a_minute(jetstream_store_factory):
    """On JetStream, at the hub's pace (a value a second, hub-stamped, a flush a second
    on a simulated clock): one rollup message per minute once it has ended, none for
    the minute still filling; queries by minute stay exact (that minute read from its
    values), also at another node; a late value for a published minute adds a second
    rollup; a clean stop in mid-minute publishes it, and the next writer's rollup of
    that minute adds up."""
    store = jetstream_store_factory()
    now = [T0]
    twin, other = make_twin(store), make_twin(jetstream_store_factory())
    for twin_ in (twin, other):
        twin_.history.now = lambda: now[0]
    points: list[tuple[float, Any]] = []

    def report(twin_: DigiTwin, seconds: float, value: float) -> None:
        twin_.report_property(METER, "level", value, at(seconds))
        points.append((seconds, value))

    def assert_exact() -> None:
        points.sort(key=lambda point: point[0])  # a late value's place is by its time
        for twin_ in (twin, other):
            got = everything(twin_, "level", step="1m", order="oldest")
            assert_same_buckets(got, plain_buckets(points, 60.0))
            to = max(5.5, now[0] - T0)  # from and to cut minutes
            params = {"from": at(5.5), "to": at(to), "step": "2m", "order": "oldest"}
            inside = [(s, v) for s, v in points if 5.5 <= s <= to]
            got = twin_.query_history(METER, "property", "level", params)["items"]
            assert_same_buckets(got, plain_buckets(inside, 120.0))

    # T0 is 20 s into its minute: 22:13:20 to 22:18:49, six minutes, the last one open.
    for second in range(330):
        now[0] = T0 + second + 0.5  # the flush after the value's report
        report(twin, second, round(20 + (second % 37) / 3, 2))
        twin.flush()
        if second % 47 == 0:
            assert_exact()
    assert rollups_by_minute(store, twin) == {minute_of(s): 1 for s in range(0, 300, 60)}
    assert_exact()  # the open minute (22:18) and the one before it from their values

    # A value stamped by its device for a minute published already: a second rollup
    # (on the series' late subject, so that its rollup subject stays in time order).
    report(twin, 100.25, 99.5)  # 22:15:00.250
    twin.flush()
    assert rollups_by_minute(store, twin, late=True) == {minute_of(100): 1}
    assert rollups_by_minute(store, twin)[minute_of(100)] == 1
    for second in range(330, 335):  # the next values are in time order again
        now[0] = T0 + second + 0.5
        report(twin, second, 7)
        twin.flush()
    assert_exact()

    # A clean stop in mid-minute publishes the minute still filling; the hub restarted
    # (a new writer) continues that minute, and its rollup of it adds up.
    twin.close()
    assert rollups_by_minute(store, other)[minute_of(320)] == 1
    twin = make_twin(jetstream_store_factory())
    twin.history.now = lambda: now[0]
    for second in range(335, 410):  # to 22:20:09
        now[0] = T0 + second + 0.5
        report(twin, second, second % 5)
        twin.flush()
    counts = rollups_by_minute(store, twin)
    assert counts[minute_of(320)] == 2 and counts[minute_of(340)] == 1  # 22:18 and 22:19
    assert minute_of(409) not in counts  # 22:20 is still filling
    assert_exact()


def test_a_writer_that_died_has_its_minutes_repaired(jetstream_store_factory, caplog, monkeypatch):
    """On JetStream, a writer dropped without a clean stop (killed) never publishes the
    rollup of the minute it was filling: queries by minute miss its values once that
    minute is settled. Another writer's repair of the dead one's window publishes full
    rollups made from the values: queries by minute equal the plain computation again, a
    second repair (another node) changes nothing, and late values after it still add."""
    store = jetstream_store_factory()
    # The server stamps messages with its own clock, which the repair reads to find the
    # series written in the window: a simulated clock near the real one, a minute back.
    base = (int(clock.now()) // 60 - 1) * 60
    now = [float(base)]
    dead, live = make_twin(store), make_twin(jetstream_store_factory())
    for twin_ in (dead, live):
        twin_.history.now = lambda: now[0]
    points: list[tuple[float, Any]] = []

    def report(twin_: DigiTwin, seconds: float, value: float) -> None:
        twin_.report_property(METER, "level", value, clock.rfc3339(base + seconds))
        points.append((base + seconds - T0, value))

    def assert_exact(twin_: DigiTwin) -> None:
        points.sort(key=lambda point: point[0])
        got = everything(twin_, "level", step="1m", order="oldest")
        assert_same_buckets(got, plain_buckets(points, 60.0))
        params = {"from": clock.rfc3339(base + 5.5), "step": "2m", "order": "oldest"}
        inside = [(s, v) for s, v in points if s >= base + 5.5 - T0]
        got = twin_.query_history(METER, "property", "level", params)["items"]
        assert_same_buckets(got, plain_buckets(inside, 120.0))

    # Both write the series (the live one every 10 s) for two and a half minutes; the
    # dead one is then dropped without close(): the minute it was filling is lost.
    for second in range(150):
        now[0] = base + second + 0.5
        report(dead, second, round(10 + (second % 23) / 4, 2))
        dead.flush()
        if second % 10 == 0:
            report(live, second + 0.25, -second)
            live.flush()
    last_alive = now[0]
    del dead
    with pytest.raises(ValueError, match="settled"):
        live.history.repair(last_alive)  # its minutes may still get their rollups
    for second in range(150, 400):  # the live one goes on until the window is settled
        now[0] = base + second + 0.5
        report(live, second + 0.25, second % 7)
        live.flush()
    assert now[0] >= live.history.repair_settled_at(last_alive)
    lost = base + 120  # the minute the dead writer was filling
    got = {b["time"]: b["count"] for b in everything(live, "level", step="1m")}
    assert got[clock.rfc3339(lost)] == 33  # the live writer's only: 3, then 30 (of 63)

    report_ = live.history.repair(last_alive)
    assert report_["series"] == 1 and report_["rollups"] == 4  # 2 min before to 1 after
    assert_exact(live)
    # Another node repairs the same window: the same answer.
    other = make_twin(jetstream_store_factory())
    other.history.now = lambda: now[0]
    assert other.history.repair(last_alive)["rollups"] == 4
    for twin_ in (live, other):
        assert_exact(twin_)
    assert "repaired the rollups of" in caplog.text and "4 full rollups of 1 series" in caplog.text
    # A repair stops finding series after so many values (logged); what it sums is whole.
    monkeypatch.setattr(history_jetstream, "REPAIR_VALUES", 50)
    assert other.history.repair(last_alive)["cut"] == 1
    assert "stopped at 50 values read" in caplog.text
    assert_exact(other)
    # A value of a repaired minute after the repair (its device's time) still adds.
    report(live, 130.5, 1000)
    live.flush()
    for second in range(400, 405):  # the next values are in time order again
        now[0] = base + second + 0.5
        report(live, second + 0.25, 8)
        live.flush()
    for twin_ in (live, other):
        assert_exact(twin_)
