"""Every limit hit over HTTP and over WebSocket, and refused with its name: HTTP 413 or
429 (with Retry-After) and a problem whose ``limit`` member names it; on WebSocket an
error response with the same problem."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.http import ASYNC
from tests.support.tds import SIGN, sign_td
from tests.support.ws import ask, receive, send, socket
from tests.waiting import until

pytestmark = pytest.mark.timeout(60)

SMALL = {
    "max_td_bytes": 4000,
    "max_value_bytes": 100,
    "max_things_per_agent": 2,
    "max_queued_actions": 2,
    "max_connections_per_client": 2,
}
LONG = "y" * 200  # over max_value_bytes


def limited(**options):
    return pytest.mark.parametrize("hub_options", [{**SMALL, **options}])


def assert_refused(problem: dict, status: int, limit: str) -> None:
    assert problem["status"] == status, problem
    assert problem["limit"] == limit, problem
    assert limit in problem["detail"]
    if status == 429:
        assert problem["retryAfter"] >= 1


async def assert_http_refused(response, status: int, limit: str) -> None:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert_refused(await response.json(), status, limit)
    if status == 429:
        assert int(response.headers["Retry-After"]) >= 1


# -- TD size ---------------------------------------------------------------------------------


@limited()
async def test_td_size_over_http(running):
    token = running.add_client("sign-agent", "agent", "agent")
    async with running.session(token) as agent:
        async with agent.put(f"/things/{SIGN}", json=sign_td(padding=100)) as ok:
            assert ok.status in (200, 201), await ok.text()
        async with agent.put(f"/things/{SIGN}", json=sign_td(padding=5000)) as refused:
            await assert_http_refused(refused, 413, "max_td_bytes")
        patch = {"description": "z" * 5000}
        async with agent.patch(
            f"/things/{SIGN}", json=patch, headers={"Content-Type": "application/merge-patch+json"}
        ) as refused:
            await assert_http_refused(refused, 413, "max_td_bytes")
        # Patches each under the limit may not grow the TD past it: the result counts.
        headers = {"Content-Type": "application/merge-patch+json"}
        statuses = []
        for i in range(5):
            patch = {f"note{i}": "z" * 1500}
            async with agent.patch(f"/things/{SIGN}", json=patch, headers=headers) as response:
                statuses.append(response.status)
                if response.status != 204:
                    await assert_http_refused(response, 413, "max_td_bytes")
        assert statuses[0] == 204 and statuses[-1] == 413, statuses


@limited()
async def test_td_size_over_websocket(running):
    token = running.add_client("sign-agent", "agent", "agent")
    async with socket(running, token) as ws:
        answer = await ask(
            ws, operation="updatething", correlationID="big", input=sign_td(padding=5000)
        )
        assert_refused(answer["error"], 413, "max_td_bytes")
    assert running.hub.twin.thing(SIGN) is None


# -- value sizes -------------------------------------------------------------------------------


@limited()
async def test_value_and_input_size_over_http(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("mia", "consumer", "manager")
    async with running.session(token) as consumer:
        url = f"/things/{SIGN}/properties/text"
        async with consumer.put(url, json=LONG) as refused:
            await assert_http_refused(refused, 413, "max_value_bytes")
        async with consumer.post(f"/things/{SIGN}/actions/say", json=LONG) as refused:
            await assert_http_refused(refused, 413, "max_value_bytes")
        async with consumer.put(url, json="short", headers={"Prefer": "respond-async"}) as ok:
            assert ok.status == 202


@limited()
async def test_value_event_and_input_size_over_websocket(running):
    running.add_thing("sign-agent", sign_td())
    agent_token = running.add_client("sign-agent-2", "agent", "agent")
    consumer_token = running.add_client("mia", "consumer", "manager")
    async with socket(running, agent_token) as agent:
        other = sign_td("urn:dev:ops:ops-sign-2")
        answer = await ask(agent, operation="updatething", correlationID="td2", input=other)
        assert answer.get("error") is None, answer
        for operation, name in (("observeproperty", "text"), ("subscribeevent", "said")):
            await send(
                agent,
                messageType="notification",
                operation=operation,
                thingID=other["id"],
                name=name,
                value=LONG,
                messageID=f"m-{name}",
            )
            error = await receive(agent)
            assert_refused(error["error"], 413, "max_value_bytes")
    async with socket(running, consumer_token) as consumer:
        for operation, name in (("writeproperty", "text"), ("invokeaction", "say")):
            answer = await ask(
                consumer,
                operation=operation,
                thingID=SIGN,
                name=name,
                input=LONG,
                correlationID=operation,
            )
            assert_refused(answer["error"], 413, "max_value_bytes")


# -- counts --------------------------------------------------------------------------------


@limited()
async def test_things_per_agent_over_http(running):
    token = running.add_client("sign-agent", "agent", "agent")
    async with running.session(token) as agent:
        for n in (1, 2):
            async with agent.put(f"/things/urn:s:{n}", json=sign_td(f"urn:s:{n}")) as ok:
                assert ok.status == 201
        async with agent.put("/things/urn:s:1", json=sign_td("urn:s:1")) as update:
            assert update.status in (200, 204)  # replacing one of its own is fine
        async with agent.put("/things/urn:s:3", json=sign_td("urn:s:3")) as refused:
            await assert_http_refused(refused, 429, "max_things_per_agent")


@limited()
async def test_things_per_agent_over_websocket(running):
    token = running.add_client("sign-agent", "agent", "agent")
    async with socket(running, token) as ws:
        for n in (1, 2, 3):
            answer = await ask(
                ws, operation="updatething", correlationID=f"t{n}", input=sign_td(f"urn:s:{n}")
            )
        assert_refused(answer["error"], 429, "max_things_per_agent")
    assert running.hub.twin.things_of("sign-agent") == ["urn:s:1", "urn:s:2"]


@limited()
async def test_queued_actions_per_thing_over_http_and_websocket(running):
    running.add_thing("sign-agent", sign_td())  # its agent is offline: actions queue up
    token = running.add_client("otto", "consumer", "operator")
    async with running.session(token) as consumer:
        url = f"/things/{SIGN}/actions/say"
        for _ in range(2):
            async with consumer.post(url, json="hi", headers=ASYNC) as accepted:
                assert accepted.status == 201
        async with consumer.post(url, json="hi") as refused:
            await assert_http_refused(refused, 429, "max_queued_actions")
    async with socket(running, token) as ws:
        answer = await ask(
            ws, operation="invokeaction", thingID=SIGN, name="say", input="hi", correlationID="q"
        )
        assert_refused(answer["error"], 429, "max_queued_actions")
    assert len(running.hub.twin.requests.open_for_thing(SIGN)) == 2


# -- rate and connections ------------------------------------------------------------------------


@limited(max_requests_per_second=1.0, request_burst=3)
async def test_request_rate_over_http(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    async with running.session(token) as consumer:
        statuses = []
        for _ in range(5):  # bounded: a burst of 3, then refusals
            async with consumer.get(f"/things/{SIGN}") as response:
                statuses.append(response.status)
                if response.status == 429:
                    await assert_http_refused(response, 429, "max_requests_per_second")
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses[3:]
    other = running.add_client("wendy", "consumer", "viewer")  # per client: others go on
    async with running.session(other) as consumer, consumer.get(f"/things/{SIGN}") as ok:
        assert ok.status == 200


@limited(max_requests_per_second=1.0, request_burst=3)
async def test_request_rate_over_websocket(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    async with socket(running, token) as ws:
        answers = [
            await ask(ws, operation="readallproperties", thingID=SIGN, correlationID=f"r{n}")
            for n in range(5)
        ]
    errors = [a["error"] for a in answers if a.get("error")]
    assert answers[0].get("error") is None
    assert errors, answers
    assert_refused(errors[0], 429, "max_requests_per_second")


@limited()
async def test_connections_per_client_over_websocket_and_sse(running):
    running.add_thing("sign-agent", sign_td())
    token = running.add_client("vic", "consumer", "viewer")
    async with socket(running, token), socket(running, token):
        async with socket(running, token) as third:
            refusal = await receive(third)
            assert_refused(refusal["error"], 429, "max_connections_per_client")
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(third.recv(), 5)
            assert closed.value.rcvd.code == 1013
        # An SSE stream counts too.
        async with running.session(token) as consumer:
            headers = {"Accept": "text/event-stream"}
            async with consumer.get(f"/things/{SIGN}/events/said", headers=headers) as refused:
                await assert_http_refused(refused, 429, "max_connections_per_client")
    # Closed connections are released.
    await until(lambda: not running.hub.router.open_connections())
    async with socket(running, token) as again:
        answer = await ask(again, operation="readallproperties", thingID=SIGN, correlationID="x")
        assert answer.get("error") is None
