"""A single hub's value history, adopted by the first cluster node: its LevelDB
``history`` bucket goes into the cluster's history stream, where queries find it."""

from bucketstore import open_store
from digitwin.history import EVENT, PROPERTY, open_history, series_prefix
from digitwin.history_query import parse_query, run_query
from hub.cluster_node import copy_history
from vocabulary import clock

T0 = 1_700_000_000.0
THING = "urn:dev:ops:meter-1"


def test_the_history_bucket_goes_into_the_history_stream(tmp_path, jetstream_store_factory):
    with open_store(tmp_path / "store") as single:
        before = open_history(single)
        for i in range(2500):
            before.append(THING, PROPERTY, "level", i % 17 - 3.5, clock.rfc3339(T0 + i * 0.7))
        before.append(THING, EVENT, "alarm", {"code": 7}, clock.rfc3339(T0 + 5))
        before.flush()
        cluster = open_history(jetstream_store_factory())
        assert copy_history(single.bucket("history").items(), cluster) == 2501
        for kind, name in ((PROPERTY, "level"), (EVENT, "alarm")):
            prefix = series_prefix(THING, kind, name)
            for params in ({"limit": 1000, "order": "oldest"}, {"step": "1m", "limit": 1000}):
                query = parse_query(params)
                want = run_query(before, prefix, query)["items"]
                assert want and run_query(cluster, prefix, query)["items"] == want
