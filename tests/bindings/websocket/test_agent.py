"""An agent on the WebSocket endpoint, end to end: a real hub (HTTPS + WebSocket on
127.0.0.1, LevelDB), the agent on the independent ``websockets`` library, consumers on
aiohttp (the hub's Python client) and, for the offline queue, the HTTP API."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect

from clients.websocket import WsClient, WsError
from tests.support.tds import LAMP, lamp_td
from tests.support.ws import receive, send, socket, ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


async def test_agent_lifecycle(running):
    agent_token = running.add_client("lamp-agent", "agent", "agent")
    consumer_token = running.add_client("otto", "consumer", "operator")
    async with socket(running, agent_token) as agent:
        assert agent.subprotocol == "webthingprotocol"
        await send(
            agent, messageType="request", operation="updatething", correlationID="r1",
            input=lamp_td(),
        )  # fmt: skip
        registered = await receive(agent)
        assert registered["messageType"] == "response"
        assert registered["correlationID"] == "r1"
        assert registered["output"] == {"id": LAMP, "created": True}
        assert running.hub.twin.owner_of(LAMP) == "lamp-agent"

        async with WsClient(ws_url(running), ca=running.ssl, token=consumer_token) as consumer:
            await consumer.observe_property(LAMP, "brightness")
            await consumer.subscribe_event(LAMP, "overheated")

            # Values and events reach the subscriber, in order, as notifications.
            await send(
                agent, messageType="notification", operation="observeproperty",
                thingID=LAMP, name="brightness", value=40,
            )  # fmt: skip
            await send(
                agent, messageType="notification", operation="subscribeevent",
                thingID=LAMP, name="overheated", value=81.5,
            )  # fmt: skip
            first = await consumer.next_message(5)
            second = await consumer.next_message(5)
            assert (first["messageType"], first["operation"]) == ("notification", "observeproperty")
            assert (first["name"], first["value"]) == ("brightness", 40)
            assert (second["operation"], second["name"], second["value"]) == (
                "subscribeevent",
                "overheated",
                81.5,
            )
            assert await consumer.read_property(LAMP, "brightness") == 40

            # A request reaches the agent; it answers running, then completed.
            invoked = await consumer.invoke(LAMP, "fade", {"level": 30})
            assert invoked["status"] == "delivered"
            action_id = invoked["actionID"]
            request = await receive(agent)
            assert request["messageType"] == "request"
            assert request["operation"] == "invokeaction"
            assert request["input"] == {"level": 30}
            assert request["senderID"] == "otto"
            assert request["correlationID"] == request["actionID"] == action_id
            answer = {
                "messageType": "response",
                "operation": "invokeaction",
                "thingID": LAMP,
                "name": "fade",
                "correlationID": request["correlationID"],
                "actionID": action_id,
            }
            await send(agent, **answer, status="running")
            running_response = await consumer.next_message(5)
            assert running_response["status"] == "running"
            assert running_response["correlationID"] == invoked["correlationID"]
            assert (await consumer.query_action(LAMP, action_id))["status"] == "running"
            await send(agent, **answer, status="completed", output=30)
            done = await consumer.action_result(action_id, timeout=5)
            assert done["status"] == "completed" and done["output"] == 30
            status = await consumer.query_action(LAMP, action_id)
            assert status["status"] == "completed" and status["output"] == 30

            # The agent replaces its TD, then deletes it.
            await send(
                agent, messageType="request", operation="updatething", correlationID="r2",
                input=lamp_td(title="Lamp, renamed"),
            )  # fmt: skip
            updated = await receive(agent)
            assert updated["output"] == {"id": LAMP, "created": False}
            assert (await consumer.read_thing(LAMP))["title"] == "Lamp, renamed"

            await send(
                agent, messageType="request", operation="deletething", thingID=LAMP,
                correlationID="r3",
            )  # fmt: skip
            deleted = await receive(agent)
            assert (deleted["correlationID"], deleted["status"]) == ("r3", "completed")
            with pytest.raises(WsError) as gone:
                await consumer.read_thing(LAMP)
            assert gone.value.status == 404
    assert running.hub.twin.thing(LAMP) is None


async def test_agent_failure_answer_reaches_the_invoker(running):
    agent_token = running.add_client("lamp-agent", "agent", "agent")
    consumer_token = running.add_client("otto", "consumer", "operator")
    async with (
        WsClient(ws_url(running), ca=running.ssl, token=agent_token) as agent,
        WsClient(ws_url(running), ca=running.ssl, token=consumer_token) as consumer,
    ):
        await agent.register(lamp_td())
        invoked = await consumer.invoke(LAMP, "fade", {"level": 5})
        request = await agent.next_request(5)
        await agent.answer(request, status="failed", error="the bulb is broken")
        result = await consumer.action_result(invoked["actionID"], timeout=5)
        assert result["status"] == "failed"
        assert result["error"]["detail"] == "the bulb is broken"


async def test_offline_queue_is_delivered_first_when_the_agent_connects(running, tmp_path):
    agent_token = running.add_client("lamp-agent", "agent", "agent")
    operator_token = running.add_client("otto", "consumer", "operator")
    viewer_token = running.add_client("vera", "consumer", "viewer")
    url = ws_url(running)
    # The agent registers, then goes away.
    async with WsClient(url, ca=running.ssl, token=agent_token) as agent:
        await agent.register(lamp_td())
    await until(lambda: running.hub.twin.presence(LAMP).get("online") is False)

    async with (
        running.session(operator_token) as http,
        connect(
            url,
            ssl=running.ssl,
            additional_headers={"Authorization": f"Bearer {viewer_token}"},
            subprotocols=["webthingprotocol"],
            open_timeout=10,
        ) as watcher,
    ):
        await send(
            watcher, messageType="request", operation="subscribeevent", thingID=LAMP,
            name="overheated", correlationID="s1",
        )  # fmt: skip
        assert (await receive(watcher))["status"] == "completed"

        fade, queued = f"/things/{LAMP}/actions/fade", {"Prefer": "respond-async"}  # offline
        async with http.post(fade, json={"level": 70}, headers=queued) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            location = resp.headers["Location"]
        assert body["status"] == "pending"
        action_id = body["id"]

        # The agent comes back: the queued request is the first thing it gets.
        agent = WsClient(url, ca=running.ssl, token=agent_token)
        await agent.connect()
        try:
            request = await agent.next_request(5)
            assert request["operation"] == "invokeaction"
            assert request["actionID"] == action_id
            assert request["input"] == {"level": 70}
            assert request["senderID"] == "otto"
            await agent.answer(request, status="running")
            await agent.report_event(LAMP, "overheated", 95.0)
            await agent.answer(request, output=70)

            event = await receive(watcher)
            assert (event["messageType"], event["operation"]) == ("notification", "subscribeevent")
            assert event["value"] == 95.0

            # WebSocket consumers that did not invoke learn the result by queryaction
            # (action-status subscriptions are offered by SSE only).
            await send(
                watcher, messageType="request", operation="queryaction", thingID=LAMP,
                actionID=action_id, correlationID="q1",
            )  # fmt: skip
            query = await receive(watcher)
            assert query["output"]["status"] == "completed"
            assert query["output"]["output"] == 70

            async with http.get(location) as resp:
                status = await resp.json()
                assert resp.status == 200, status
            assert status["status"] == "completed"
            assert status["output"] == 70
        finally:
            await agent.close()


async def test_agent_may_not_report_for_a_thing_it_does_not_own(running):
    owner_token = running.add_client("lamp-agent", "agent", "agent")
    other_token = running.add_client("rogue-agent", "agent", "agent")
    url = ws_url(running)
    async with WsClient(url, ca=running.ssl, token=owner_token) as owner:
        await owner.register(lamp_td())
        await owner.report_property(LAMP, "brightness", 10)
        await until(lambda: running.hub.twin.read_property(LAMP, "brightness").get("value") == 10)
    async with socket(running, other_token) as rogue:
        await send(
            rogue, messageType="notification", operation="observeproperty", thingID=LAMP,
            name="brightness", value=99, messageID="report-1",
        )  # fmt: skip
        refused = await receive(rogue)
        assert refused["messageType"] == "response"
        assert refused["correlationID"] == "report-1"
        assert refused["status"] == "failed"
        assert refused["error"]["status"] == 403
        await send(
            rogue, messageType="notification", operation="subscribeevent", thingID=LAMP,
            name="overheated", value=120.0, messageID="report-2",
        )  # fmt: skip
        assert (await receive(rogue))["error"]["status"] == 403
        await send(
            rogue, messageType="request", operation="deletething", thingID=LAMP,
            correlationID="d1",
        )  # fmt: skip
        assert (await receive(rogue))["error"]["status"] == 403
        # Registering a TD that another agent owns is refused too.
        await send(
            rogue, messageType="request", operation="updatething", correlationID="u1",
            input=lamp_td(title="Mine now"),
        )  # fmt: skip
        taken = await receive(rogue)
        assert taken["status"] == "failed" and taken["error"]["status"] in (403, 409)
    assert running.hub.twin.read_property(LAMP, "brightness")["value"] == 10
    assert running.hub.twin.thing(LAMP).td["title"] == "Lamp"
    assert running.hub.twin.owner_of(LAMP) == "lamp-agent"


async def test_viewer_may_not_invoke_and_nothing_is_queued(running):
    agent_token = running.add_client("lamp-agent", "agent", "agent")
    viewer_token = running.add_client("vera", "consumer", "viewer")
    operator_token = running.add_client("otto", "consumer", "operator")
    url = ws_url(running)
    async with (
        WsClient(url, ca=running.ssl, token=agent_token) as agent,
        WsClient(url, ca=running.ssl, token=viewer_token) as viewer,
        WsClient(url, ca=running.ssl, token=operator_token) as operator,
    ):
        await agent.register(lamp_td())
        with pytest.raises(WsError) as refused:
            await viewer.invoke(LAMP, "fade", {"level": 1})
        assert refused.value.status == 403
        assert refused.value.problem["operation"] == "invokeaction"
        with pytest.raises(WsError) as refused_write:
            await viewer.write_property(LAMP, "brightness", 3)
        assert refused_write.value.status == 403
        assert list(running.hub.twin.requests_of(LAMP)) == []
        # barrier: an operator's request is the first the agent gets
        await operator.invoke(LAMP, "fade", {"level": 2})
        first = await agent.next_request(5)
        assert (first["operation"], first["input"]) == ("invokeaction", {"level": 2}), first
        # Reading is what a viewer may do.
        assert await viewer.read_all_properties(LAMP) == {}
