"""The state document in cluster mode (docs/digitwin.md, docs/cluster.md): a write asked
at node 2 and declined by the agent at node 1 is in the state document at node 2 (its
in-memory copy follows the write records another node changed) and in an SSE state
stream at node 3 (the other nodes' state changes are relayed like twin notifications)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from clients.websocket import WsClient
from tests.support.cluster import Cluster
from tests.support.sse import stream
from tests.support.tds import lamp_td
from tests.waiting import until

pytestmark = pytest.mark.timeout(180)

THING = "urn:dev:ops:state-lamp"
STATE = "/things/" + quote(THING, safe="") + "/state"
REFUSED = {"type": "about:blank", "title": "Unprocessable", "status": 422, "detail": "too bright"}


async def test_a_write_declined_at_one_node_is_in_the_state_at_the_others(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        one, two, three = await cluster.start()
        admin = await one.login("admin", cluster.admin_password())
        await one.add_client(admin, "lamp", "agent", "agent", "a lamp pw")
        await one.add_client(admin, "mia", "consumer", "manager", "mia's pw")
        mia = await two.login("mia", "mia's pw")
        agent = WsClient(
            one.url.replace("https://", "wss://", 1) + "/ws",
            ca=one.ssl,
            token=await one.login("lamp", "a lamp pw"),
            reconnect=False,
        )
        async with agent, two.session(mia) as at_two, three.session(mia) as at_three:
            await agent.update_thing(lamp_td(THING))
            await agent.report_property(THING, "brightness", 10)

            async def state_at_two() -> dict | None:
                async with at_two.get(STATE) as answer:
                    return (await answer.json()) if answer.status == 200 else None

            async def reported_at_two() -> bool:
                state = await state_at_two() or {"properties": {}}
                return "reported" in state["properties"].get("brightness", {})

            async def known_at_three() -> bool:
                async with at_three.get(STATE) as answer:
                    return answer.status == 200

            # Node 2 reads the state first, once node 1 wrote the value (behind, within
            # about a second), so it holds the twin with its declined writes (none yet)
            # and nothing drops it later; node 3 watches.
            await until(reported_at_two, 10)
            await until(known_at_three, 10)
            async with stream(at_three, STATE) as events:
                path = STATE.removesuffix("/state") + "/properties/brightness"
                async with at_two.put(path, json=95) as written:
                    # queued here for an agent at another node: that node delivers it
                    assert written.status == 202, await written.text()
                request = await agent.next_request(10)
                await agent.answer(request, status="failed", error=REFUSED)

                queued, declined = await events.take(2, timeout=10)
                assert queued["event"] == declined["event"] == "brightness"
                assert queued["data"]["desired"]["value"] == 95
                assert "desired" not in declined["data"]
                assert declined["data"]["declined"]["value"] == 95
                assert declined["data"]["declined"]["id"] == request["actionID"]

            async def declined_at_two() -> bool:
                brightness = (await state_at_two() or {})["properties"]["brightness"]
                return "desired" not in brightness and "declined" in brightness

            await until(declined_at_two, 10)
            state = await state_at_two()
            assert state is not None and state["delta"] == {}
            entry = state["properties"]["brightness"]
            assert entry["declined"]["error"]["detail"] == "too bright"
            assert entry["declined"]["senderID"] == "mia"
            assert entry["reported"]["value"] == 10
    finally:
        await cluster.stop()
