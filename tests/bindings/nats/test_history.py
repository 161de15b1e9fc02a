"""The history query on NATS: ``queryhistory`` on the consumer's request subject, which
the auth callout grants every role that may read Things (docs/messages.md)."""

from __future__ import annotations

import pytest

from clients.errors import HubError
from tests.bindings.nats.conftest import LAMP, td
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


async def test_a_viewer_queries_history_over_nats(nats_hub):
    agent = await nats_hub.agent("lamp-agent")
    await agent.register(td())
    for level in (5, 6, 7):
        await agent.report_property(LAMP, "brightness", level)
    await until(lambda: nats_hub.hub.twin.read_property(LAMP, "brightness").get("value") == 7)
    consumer = await nats_hub.consumer("vera")
    response = await consumer.request(
        "queryhistory", LAMP, "brightness", input={"order": "oldest", "limit": 2}
    )
    output = response["output"]
    assert [item["value"] for item in output["items"]] == [5, 6]
    response = await consumer.request(
        "queryhistory", LAMP, "brightness", input={"order": "oldest", "cursor": output["cursor"]}
    )
    assert [item["value"] for item in response["output"]["items"]] == [7]
    with pytest.raises(HubError) as refused:
        await consumer.request("queryhistory", LAMP, "brightness", input={"order": "up"})
    assert refused.value.status == 400
