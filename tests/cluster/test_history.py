"""History in cluster mode (docs/history.md, "Cluster mode"): a value an agent reports
at one node is in another node's history query, read from the cluster's history stream."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from clients.websocket import WsClient
from tests.support.cluster import Cluster
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(180)

THING = "urn:dev:ops:history-lamp"


async def test_a_value_reported_at_one_node_is_in_the_history_at_another(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, _three = await cluster.start()
        admin = await one.login("admin", cluster.admin_password())
        await one.add_client(admin, "lamp", "agent", "agent", "a lamp pw")
        token = await one.login("lamp", "a lamp pw")
        url = one.url.replace("https://", "wss://", 1) + "/ws"
        agent = WsClient(url, ca=one.ssl, token=token, reconnect=False)
        history = f"/things/{quote(THING, safe='')}/properties/brightness/history?order=oldest"
        async with agent:
            await agent.request("updatething", THING, input=lamp_td(THING), timeout=10)
            for level in (10, 20, 30):
                await agent.report_property(THING, "brightness", level)

            seen: list = []

            async def at_node_two() -> bool:
                async with two.session(admin) as http, http.get(history) as answer:
                    if answer.status != 200:  # the TD may not have reached node two yet
                        return False
                    seen[:] = [item["value"] for item in (await answer.json())["items"]]
                return seen == [10, 20, 30]

            await until(at_node_two, 10)  # node one's write-behind flush: about a second
    finally:
        await cluster.stop()
