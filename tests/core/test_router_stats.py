"""Router.stats(): the core's counters and state, as /metrics reads them at scrape time."""

import time

from core.limits import Limits
from core.stats import LATENCY_BUCKETS, Timings
from tests.support.messages import notification, request

from .conftest import CoreHub, drain

LAMP = "urn:dev:ops:32473-lamp-1"


async def test_stats_count_messages_refusals_connections_and_state(tmp_path):
    hub = await CoreHub(tmp_path / "store").open(
        limits=Limits(max_requests_per_second=0.01, request_burst=6)  # no refill meanwhile
    )
    try:
        empty = hub.router.stats()
        assert empty.messages_in == {} and empty.refused == {} and empty.connections == {}
        agent = hub.connect("lamp-agent", "agent")
        hub.register(agent)
        hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=5))
        viewer = hub.connect("vera", "viewer")
        hub.router.handle(viewer, request("observeproperty", LAMP, "brightness"))
        hub.router.handle(viewer, request("readproperty", LAMP, "brightness"))
        refused = hub.router.handle(viewer, request("invokeaction", LAMP, "toggle"))
        assert refused.error["status"] == 403
        hub.router.disconnect(agent)  # offline: the operator's action stays pending
        operator = hub.connect("otto", "operator")
        assert hub.router.handle(operator, request("invokeaction", LAMP, "toggle")).error is None
        hub.router.handle(agent, notification("observeproperty", LAMP, "brightness", value=6))
        for _ in range(4):  # the viewer's burst of 6 is spent by its 7th message
            last = hub.router.handle(viewer, request("readproperty", LAMP, "brightness"))
        assert last.error["status"] == 429

        stats = hub.router.stats()
        assert stats.messages_in[("test", "readproperty")] == 5
        assert stats.messages_out[("test", "readproperty")] == 5  # 4 values, 1 refusal
        assert stats.messages_in[("test", "updatething")] == 1
        assert stats.messages_out[("test", "observeproperty")] == 1 + 1  # response, value
        assert stats.refused == {(403, "forbidden"): 1, (429, "max_requests_per_second"): 1}
        assert stats.connections == {"test": 2} and stats.subscribers == {"test": 1}
        assert stats.things == 1  # the lamp (this router has no service Things)
        assert stats.requests_open == {"pending": 1}
        assert stats.twins_dirty == 1 and stats.twins_active >= 1
        handled = sum(stats.messages_in.values())
        assert sum(stats.router_seconds.counts) == handled == 11
        assert 0 < stats.router_seconds.sum < 5

        hub.router.flush()
        hub.router.expire(now=time.time() + 7200)  # past the default expiry
        later = hub.router.stats()
        assert (later.store_batches, later.store_batch_twins, later.twins_dirty) == (1, 1, 0)
        assert sum(later.store_batch_seconds.counts) == 1
        assert later.actions_expired == 1 and later.requests_open == {}
        # A snapshot is a copy: what happened since does not change it.
        assert stats.store_batches == 0 and stats.actions_expired == 0
        await drain(viewer)
    finally:
        await hub.close()


def test_timings_count_each_duration_under_the_first_bound_it_does_not_exceed():
    timings = Timings()
    for seconds in (0.0, LATENCY_BUCKETS[0], 0.00006, 0.3, 7.0):
        timings.observe(seconds)
    assert timings.counts[:3] == [2, 1, 0]  # a bound includes itself (Prometheus "le")
    assert timings.counts[LATENCY_BUCKETS.index(0.5)] == 1
    assert timings.counts[-1] == 1  # past the last finite bound
    assert sum(timings.counts) == 5 and abs(timings.sum - 7.30011) < 1e-9
