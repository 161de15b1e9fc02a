"""A request to ``urn:wothub:groups`` takes one request from the client's rate
(max_requests_per_second), as any other, on every binding: the router's, not one more
for each group operation it makes inside."""

from __future__ import annotations

import itertools

import pytest

from vocabulary.things import GROUPS_THING

from .adapters import Refused

pytestmark = pytest.mark.timeout(60)

BURST = 6


@pytest.fixture
def hub_options(bindings_used) -> dict:
    return {
        "mqtt_enabled": "mqtt" in bindings_used,
        "nats_enabled": "nats" in bindings_used,
        "max_requests_per_second": 0.05,  # no request comes back during the test
        "request_burst": BURST,
    }


async def requests_until_refused(ask) -> int:
    """How many of ``ask()`` pass before the first 429 (at most BURST + 1 asked)."""
    for passed in range(BURST + 1):
        try:
            await ask()
        except Refused as refused:
            assert refused.status == 429, refused.problem
            assert refused.problem.get("limit") == "max_requests_per_second"
            return passed
    return BURST + 1


async def test_a_group_request_takes_one_request_from_the_rate(clients, binding):
    """Two managers made the same way (connecting may cost a request: a WebSocket
    client proves its login with one): as many group requests pass as plain reads."""
    founder = await clients.consumer(binding, "gus", "manager")
    await founder.service(
        GROUPS_THING, "defineGroup", {"name": "lamps", "members": ["urn:dev:rate:lamp"]}
    )
    reader = await clients.consumer(binding, "otto", "manager")
    grouper = await clients.consumer(binding, "mia", "manager")
    plain = await requests_until_refused(lambda: reader.read_thing(GROUPS_THING))
    actions = itertools.cycle(["readGroup", "getGroup"])
    grouped = await requests_until_refused(
        lambda: grouper.service(GROUPS_THING, next(actions), {"name": "lamps"})
    )
    assert 0 < plain < BURST + 1
    assert grouped == plain
