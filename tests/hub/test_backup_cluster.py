"""A backup in cluster mode holds the history stream's values, and restoring it into an
empty cluster (its first node adopts the restored store) puts them back in the stream,
with their per-minute rollups made again: every query answers as before."""

from __future__ import annotations

import pytest

from bucketstore import open_store
from digitwin.core import DigiTwin, TwinConfig
from digitwin.history import EVENT, PROPERTY, HistoryConfig, open_history, series_prefix
from digitwin.history_query import parse_query, run_query
from hub.backup import make_backup, restore
from hub.cluster_node import ClusterNode
from tests.support.running import hub_config
from tests.support.tds import thing_td
from vocabulary import clock

pytestmark = pytest.mark.timeout(120)

T0 = 1_700_000_000.0
METER = "urn:dev:ops:meter-1"
QUERIES = (
    {"limit": 1000, "order": "oldest"},
    {"limit": 50},
    {"step": "1m", "limit": 1000, "order": "oldest"},  # from the rollups on the stream
    {"step": "172800ms", "limit": 100},
    {"from": clock.rfc3339(T0 + 100.5), "to": clock.rfc3339(T0 + 900.2), "step": "5m"},
)


def meter_td() -> dict:
    return thing_td(
        METER,
        "Meter",
        properties={"level": {"type": "number", "forms": [{"href": "https://m.local/l"}]}},
        events={"alarm": {"data": {"type": "integer"}, "forms": [{"href": "https://m.local/a"}]}},
    )


def answers(history) -> list:
    out = []
    for kind, name in ((PROPERTY, "level"), (EVENT, "alarm")):
        prefix = series_prefix(METER, kind, name)
        out += [run_query(history, prefix, parse_query(params)) for params in QUERIES]
    return out


async def test_history_stream_goes_into_a_backup_and_back_into_a_cluster(
    tmp_path, jetstream_server, jetstream_store_factory
):
    store = jetstream_store_factory()
    twin = DigiTwin(store, TwinConfig(history=HistoryConfig()))
    twin.update_thing(meter_td(), "agent-1")
    for i in range(3000):
        twin.report_property(METER, "level", i % 23 - 7.25, clock.rfc3339(T0 + i * 0.4))
        if i % 100 == 0:
            twin.report_event(METER, "alarm", i, clock.rfc3339(T0 + i * 0.4))
        if i % 700 == 0:  # several flushes: a minute's rollup published more than once
            twin.flush()
    twin.flush()
    before = answers(twin.history)
    assert len(before[0]["items"]) == 1000 and before[2]["items"]

    home = tmp_path / "home"
    home.mkdir()
    backup = await make_backup(store, home, flush=twin.flush, history=twin.history)
    restored = tmp_path / "restored"
    restore(backup, restored)
    backup.unlink()

    # The restored home's store is a single hub's: its history bucket answers alike.
    with open_store(restored / "store", "leveldb") as single:
        assert single.bucket("history").count() == 3000 + 30
        assert answers(open_history(single)) == before
        assert single.bucket("things").count() >= 1

    # The first node of a new, empty cluster adopts it: values into the stream, rollups
    # made again, the Thing in the directory.
    config = hub_config(
        restored, cluster_node="n1", nats_url=jetstream_server.url, nats_enabled=True
    )
    cluster = jetstream_store_factory(prefix="restored")
    assert ClusterNode(config).adopt_single_hub(cluster) >= 3030
    again = DigiTwin(cluster, TwinConfig(history=HistoryConfig()))
    assert again.thing(METER) is not None
    assert without_sequences(answers(again.history)) == without_sequences(before)


def without_sequences(pages: list) -> list:
    """A raw page's cursor holds the stream's sequence number, which the new cluster's
    stream numbers anew: the time part and the items stay the same."""
    return [{**page, "cursor": page["cursor"][:13]} if "cursor" in page else page for page in pages]
