"""The Python WebSocket client (clients/websocket.py) against a real hub:
correlated requests, errors, notifications by iterator and callback, requests for
agents, and reconnecting with its subscriptions after the hub drops the connection."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clients.errors import Disconnected, HubError
from clients.websocket import ABSENT, WsClient
from tests.support.tds import LAMP, lamp_td
from tests.support.ws import ws_url
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def agent(running):
    token = running.add_client("lamp-agent", "agent", "agent")
    registrations = []

    async def register(client: WsClient) -> None:
        registrations.append(await client.update_thing(lamp_td()))

    client = WsClient(ws_url(running), ca=running.ssl, token=token, on_connect=register)
    client.registrations = registrations
    async with client:
        yield client


async def test_concurrent_requests_are_matched_by_correlation_id(running, agent):
    token = running.add_client("vera")
    async with WsClient(ws_url(running), ca=running.hub.ca.ca_cert_pem, token=token) as client:
        assert await client.read_property(LAMP, "brightness") is ABSENT
        await agent.report_property(LAMP, "brightness", 12)
        await until(lambda: running.hub.twin.read_property(LAMP, "brightness").get("value"))
        results = await asyncio.gather(
            *(client.request("readproperty", LAMP, "brightness") for _ in range(50)),
            *(client.request("readthing", LAMP) for _ in range(10)),
        )
        assert len({r["correlationID"] for r in results}) == 60
        assert all(r["output"] == 12 for r in results[:50])
        assert all(r["output"]["id"] == LAMP for r in results[50:])

        with pytest.raises(HubError) as missing:
            await client.read_thing("urn:dev:nothing")
        assert missing.value.status == 404
        assert missing.value.problem["title"] == "Not Found"
        assert missing.value.response["status"] == "failed"
        with pytest.raises(HubError) as refused:
            await client.invoke_action(LAMP, "toggle")
        assert refused.value.status == 403


async def test_agent_requests_iterator_and_answer(running, agent):
    assert agent.registrations == [{"id": LAMP, "created": True}]
    token = running.add_client("otto", "consumer", "operator")
    async with WsClient(ws_url(running), ca=running.ssl, token=token) as consumer:
        invoked = [await consumer.invoke_action(LAMP, "toggle") for _ in range(3)]
        seen = []
        async with asyncio.timeout(10):
            async for request in agent.requests():
                seen.append(request)
                await agent.answer(request, status="running")
                await agent.answer(request, output=len(seen))
                if len(seen) == 3:
                    break
        assert [r["actionID"] for r in seen] == [i["actionID"] for i in invoked]
        for number, response in enumerate(invoked, 1):
            result = await consumer.action_result(response["actionID"], timeout=5)
            assert (result["status"], result["output"]) == ("completed", number)
        # The progress responses went to the notifications, in order.
        updates = [await consumer.next_message(5) for _ in range(6)]
        assert [u["status"] for u in updates] == ["running", "completed"] * 3
        assert all(u["messageType"] == "response" for u in updates)
        with pytest.raises(ValueError):
            await agent.answer(seen[0], status="delivered")


async def test_notifications_by_iterator_and_callback(running, agent):
    token = running.add_client("vera")
    heard = []
    async with WsClient(
        ws_url(running), ca=running.ssl, token=token, on_message=heard.append
    ) as client:
        await client.observe_property(LAMP, "brightness")
        await client.subscribe_event(LAMP)  # every event of the lamp
        for value in (1, 2, 3):
            await agent.report_property(LAMP, "brightness", value)
        await agent.report_event(LAMP, "overheated", 99.5)
        got = []
        async with asyncio.timeout(10):
            async for message in client.notifications():
                got.append((message["operation"], message.get("value")))
                if len(got) == 4:
                    break
        assert got == [
            ("observeproperty", 1),
            ("observeproperty", 2),
            ("observeproperty", 3),
            ("subscribeevent", 99.5),
        ]
        assert [(m["operation"], m.get("value")) for m in heard] == got
        assert client.subscriptions == [
            ("observeproperty", LAMP, "brightness"),
            ("subscribeallevents", LAMP, None),
        ]
        await client.unsubscribe_event(LAMP)
        assert client.subscriptions == [("observeproperty", LAMP, "brightness")]

        # An agent's refused report comes back as an error response on its queue.
        await agent.report_property(LAMP, "brightness", 400)
        refusal = await agent.next_message(5)
        assert refusal["status"] == "failed" and refusal["error"]["status"] == 400
    # Closing ends the iterators.
    assert [m async for m in client.notifications()] == []
    with pytest.raises(Disconnected):
        await client.request("readthing", LAMP)


async def test_reconnects_and_subscribes_again(running, agent):
    token = running.add_client("vera")
    connected = []
    client = WsClient(
        ws_url(running),
        ca=running.ssl,
        token=token,
        on_connect=lambda c: connected.append(c.connections),
    )
    async with client:
        await client.observe_property(LAMP, "brightness")
        await agent.report_property(LAMP, "brightness", 1)
        assert (await client.next_message(5))["value"] == 1

        started = asyncio.get_running_loop().time()
        running.hub.websocket.close_all()  # the hub drops every connection (1001)
        await until(lambda: client.connections == 2 and agent.connections == 2)
        await until(lambda: client.connected and len(connected) == 2)
        assert asyncio.get_running_loop().time() - started < 5
        assert connected == [1, 2]  # on_connect after each connection
        # The agent's on_connect registered its lamp_td() again (updated, not created).
        assert agent.registrations == [
            {"id": LAMP, "created": True},
            {"id": LAMP, "created": False},
        ]
        # Notifications resume: the subscription was sent again.
        await agent.report_property(LAMP, "brightness", 2)
        assert (await client.next_message(5))["value"] == 2
        assert await client.read_property(LAMP, "brightness") == 2


async def test_requests_fail_when_the_connection_drops_and_wait_for_a_new_one(running, agent):
    token = running.add_client("otto", "consumer", "operator")
    async with WsClient(ws_url(running), ca=running.ssl, token=token) as client:
        # A request in flight when the connection drops fails with Disconnected (or
        # was answered just before: both are fine).
        waiting = asyncio.create_task(client.request("readproperty", LAMP, "brightness"))
        running.hub.websocket.close_all()
        with contextlib.suppress(Disconnected):
            await waiting
        # A request made while disconnected waits for the reconnection.
        response = await client.request("readthing", LAMP, timeout=10)
        assert response["output"]["id"] == LAMP
        # nothing stray came (a second answer, say): a new value observed is the next message
        await client.observe_property(LAMP, "brightness")
        await agent.report_property(LAMP, "brightness", 3)
        message = await client.next_message(5)
        assert (message["operation"], message["value"]) == ("observeproperty", 3), message


async def test_no_reconnect_when_told_not_to(running, agent):
    token = running.add_client("vera")
    client = WsClient(ws_url(running), ca=running.ssl, token=token, reconnect=False)
    await client.connect()
    try:
        running.hub.websocket.close_all()
        assert await client.wait_closed(timeout=5) == 1001
        assert client.close_reason == "the hub is stopping"
        with pytest.raises(Disconnected):
            await client.read_thing(LAMP)
    finally:
        await client.close()
