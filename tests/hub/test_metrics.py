"""/metrics: the figures move as traffic flows, and who may read them."""

from __future__ import annotations

import time

import pytest

from digitwin.history import ThingHistory
from tests.support.http import ASYNC
from tests.support.metrics import scrape, value
from tests.support.tds import SIGN, sign_td
from tests.support.ws import ask, socket
from vocabulary.envelope import parse_message
from vocabulary.identity import Client

pytestmark = pytest.mark.timeout(60)


async def test_metrics_follow_the_traffic(running):
    before = await scrape(running)
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("otto", "consumer", "operator")
    async with running.session(token) as consumer:
        for _ in range(3):
            async with consumer.get(f"/things/{SIGN}/properties/text") as response:
                assert response.status == 503  # never reported: still a message handled
        for _ in range(2):  # the agent is offline: both stay queued
            say = f"/things/{SIGN}/actions/say"
            async with consumer.post(say, json="hi", headers=ASYNC) as response:
                assert response.status == 201
    async with (
        running.session("not-a-token") as stranger,
        stranger.get(f"/things/{SIGN}") as response,
    ):
        assert response.status == 401
    viewer = running.add_client("vic", "consumer", "viewer")
    async with socket(running, viewer) as ws:
        answer = await ask(
            ws, operation="invokeaction", thingID=SIGN, name="say", input="x", correlationID="1"
        )
        assert answer["error"]["status"] == 403
        await ask(ws, operation="subscribeevent", thingID=SIGN, name="said", correlationID="2")
        during = await scrape(running)
    after = await scrape(running)

    reads = {"binding": "http", "operation": "readproperty"}
    name = "wothub_messages_in_total"
    assert value(after, name, **reads) - value(before, name, **reads) == 3
    assert value(after, "wothub_messages_in_total", binding="http", operation="invokeaction") == 2
    assert value(after, "wothub_messages_out_total", binding="http", operation="invokeaction") == 2
    assert value(after, name, binding="websocket", operation="invokeaction") == 1
    handled = "wothub_router_seconds_count"
    assert value(after, handled) - value(before, handled) >= 7
    assert value(after, "wothub_actions_queued", state="pending") == 2
    assert value(after, "wothub_twins", state="active") >= 1
    assert value(after, "wothub_refused_total", status="401", reason="unauthorized") == 1
    assert value(after, "wothub_refused_total", status="403", reason="forbidden") == 1
    # While the WebSocket was open it was a connection and a subscriber; then not.
    assert value(during, "wothub_connections", binding="websocket") == 1
    assert value(during, "wothub_subscribers", binding="websocket") == 1
    assert value(after, "wothub_connections", binding="websocket") == 0
    assert value(after, "wothub_subscribers", binding="websocket") == 0


async def test_expired_actions_and_write_batches_are_counted(running):
    running.add_thing("sign-agent", sign_td())
    router = running.hub.router
    running.add_client("ada", "consumer", "admin")
    consumer = router.connect(Client("ada", "admin"), "test")
    invoke = {
        "messageType": "request",
        "operation": "invokeaction",
        "thingID": SIGN,
        "name": "say",
        "input": "hi",
        "correlationID": "c",
    }
    assert router.handle(consumer, parse_message(invoke, "ada")).error is None
    agent = running.agent("sign-agent")
    report = {"operation": "observeproperty", "thingID": SIGN, "name": "text", "value": "a"}
    running.send(agent, {"messageType": "notification", **report})
    router.disconnect(agent)
    router.flush()
    router.expire(now=time.time() + 7200)  # past the default expiry
    samples = await scrape(running)
    assert value(samples, "wothub_actions_expired_total") == 1
    assert value(samples, "wothub_store_write_batches_total") >= 1
    assert value(samples, "wothub_store_write_batch_seconds_count") >= 1


async def test_scrapes_need_an_admin_even_from_loopback(running):
    # The test client is on 127.0.0.1, as a reverse proxy on the hub's host would be.
    async with running.session() as anyone, anyone.get("/metrics") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    viewer = running.add_client("vic", "consumer", "viewer")
    async with running.session(viewer) as consumer, consumer.get("/metrics") as response:
        assert response.status == 403
        assert "administrators" in (await response.json())["detail"]
    admin = running.add_client("ada", "consumer", "admin")
    async with running.session(admin) as consumer, consumer.get("/metrics") as response:
        assert response.status == 200
        assert "wothub_router_seconds" in await response.text()


@pytest.mark.parametrize("hub_options", [{"metrics_public": True}])
async def test_public_metrics_need_no_credentials(running):
    async with running.session() as anyone, anyone.get("/metrics") as response:
        assert response.status == 200
        assert "wothub_router_seconds" in await response.text()


async def test_credentials_refused_on_any_binding_are_counted(running):
    from websockets.exceptions import ConnectionClosed

    before = await scrape(running)
    async with socket(running, "not-a-token") as ws:  # WebSocket: closed with 4401
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    async with running.session() as anyone:
        login = {"clientID": "nobody", "password": "wrong password"}
        async with anyone.post("/authn/login", json=login) as response:
            assert response.status == 401
    after = await scrape(running)
    refused = {"status": "401", "reason": "invalid_credentials"}
    name = "wothub_refused_total"
    assert value(after, name, **refused) - value(before, name, **refused) == 2


async def test_history_values_written_pruned_and_queries_are_counted(running):
    running.add_thing("sign-agent", sign_td())
    before = await scrape(running)
    agent = running.agent("sign-agent")
    for n in range(5):
        report = {"operation": "observeproperty", "thingID": SIGN, "name": "text"}
        running.send(agent, {"messageType": "notification", "value": f"v{n}", **report})
    running.hub.router.disconnect(agent)
    running.hub.router.flush()
    token = running.add_client("otto", "consumer", "operator")
    async with running.session(token) as consumer:
        for query in ("", "?step=1m"):
            address = f"/things/{SIGN}/properties/text/history{query}"
            async with consumer.get(address) as response:
                assert response.status == 200
    # A Thing's own retention of 2 values: the pruning step deletes 3.
    twin = running.hub.twin
    twin.set_history_setting(SIGN, ThingHistory(max_count=2))
    while twin.prune_history(now=time.time() + 3600):
        pass
    after = await scrape(running)

    def moved(name: str) -> float:
        return value(after, name) - value(before, name)

    assert moved("wothub_history_values_written_total") == 5
    assert moved("wothub_history_values_pruned_total") == 3
    assert moved("wothub_history_queries_total") == 2
    assert moved("wothub_history_query_seconds_total") > 0
    assert value(after, "wothub_history_values_dropped_total") == 0
