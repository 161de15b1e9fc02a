"""docs/auth.md and docs/nats.md: the ``service`` role has both the agent's and the
consumer's subjects, so one service registers and reports for its own Things and sends
manager requests (a write to another agent's Thing)."""

from __future__ import annotations

import pytest

from tests.support.tds import SIGN, sign_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

OWN = "urn:dev:ops:svc-own-1"


async def test_a_service_is_an_agent_for_its_things_and_a_manager_for_others(running, nats_hub):
    running.add_thing("sign-agent", sign_td())
    nats_hub.add("svc", "service", "service")
    as_agent = await nats_hub.agent("svc")
    as_consumer = await nats_hub.consumer("svc")
    assert (await as_agent.register(sign_td(OWN)))["id"] == OWN
    await as_agent.report_property(OWN, "text", "mine")
    # Two NATS connections are not ordered with each other: wait for the report first.
    await until(lambda: running.hub.twin.read_property(OWN, "text").get("value") == "mine")
    assert await as_consumer.read_property(OWN, "text") == "mine"
    written = await as_consumer.write_property(SIGN, "text", "hi")
    assert written.get("error") is None, written
    assert running.hub.twin.requests.open_for_thing(SIGN)  # queued for the offline agent
